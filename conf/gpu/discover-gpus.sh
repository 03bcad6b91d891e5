#!/usr/bin/env bash
# Spark GPU discovery script: Spark runs it on each driver, executor or standalone worker that is
# configured with it (spark.{driver,executor,worker}.resource.gpu.discoveryScript) and reads the
# node's GPU addresses from stdout as one JSON object:
#
#   {"name": "gpu", "addresses": ["0","1"]}
#
# The addresses are nvidia-smi's GPU indices, the numbering CUDA_VISIBLE_DEVICES uses. No GPU, or
# no nvidia-smi, is an error (non-zero exit, one line on stderr): a node configured to have GPUs
# that has none should stop Spark at startup, not train on the CPU.
set -euo pipefail

die() {
    echo "discover-gpus.sh: $*" >&2
    exit 1
}

command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found on PATH (no NVIDIA driver?)"
listing="$(nvidia-smi --query-gpu=index --format=csv,noheader)" ||
    die "nvidia-smi --query-gpu=index failed (exit status $?)"

addresses=()
while IFS= read -r line; do
    line="${line//[[:space:]]/}"
    [[ -z "$line" ]] && continue
    [[ "$line" =~ ^[0-9]+$ ]] || die "unexpected nvidia-smi output line: $line"
    addresses+=("\"$line\"")
done <<<"$listing"

((${#addresses[@]})) || die "nvidia-smi lists no GPU"
joined="$(IFS=,; echo "${addresses[*]}")"
echo "{\"name\": \"gpu\", \"addresses\": [$joined]}"
