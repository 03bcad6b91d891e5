#!/usr/bin/env bash
# Check that each lock resolves from the package index alone: no local wheel cache, no extra
# index, no pip configuration of this machine. A dry run (nothing is installed) in a throwaway venv:
#
#   scripts/check-locks.sh              # every stack
#   scripts/check-locks.sh spark35      # one
#
# torch==2.13.0 then resolves to the index's build (CUDA on Linux x86_64), with its nvidia-*
# packages at the lock's versions. With uv on the PATH (as in CI) uv does the dry run, with its
# configuration off and every cached index answer revalidated (--refresh): seconds per stack,
# where pip fetches each stack's 450 MB pyspark sdist to read its metadata (about 90 s each).
# What would be installed goes to work/logs/check-<stack>.json (pip's report) or .txt (uv's).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
stacks=("$@")
if ((${#stacks[@]} == 0)); then
    for f in locks/*.txt; do stacks+=("$(basename "$f" .txt)"); done
fi
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
mkdir -p work/logs
status=0

# dry_run STACK EXTRAS REPORT: what installing the lock would install, written to REPORT.
dry_run() {
    if [[ "$3" == *.txt ]]; then
        env -u UV_FIND_LINKS -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL uv pip install --dry-run \
            --refresh --no-config --python "$venv/bin/python" -c "locks/$1.txt" ".[$2]" \
            >"$3" 2>&1 || { cat "$3" >&2; return 1; }
    else
        PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= "$venv/bin/pip" --isolated install --dry-run \
            --ignore-installed --disable-pip-version-check --quiet --report "$3" \
            -c "locks/$1.txt" ".[$2]"
    fi
}

for stack in "${stacks[@]}"; do
    extras="$(sed -n 's/^# extras: *//p' "locks/$stack.txt")"
    report="work/logs/check-$stack.json"
    command -v uv >/dev/null 2>&1 && report="work/logs/check-$stack.txt"
    set -x
    if dry_run "$stack" "$extras" "$report"; then
        { set +x; } 2>/dev/null
        "$venv/bin/python" - "$report" "locks/$stack.txt" <<'PY'
import json, re, sys
report, lock = sys.argv[1], sys.argv[2]
if report.endswith(".json"):  # pip's report
    got = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(open(report))["install"]}
else:  # uv's dry run: one " + name==version" line per package it would install
    got = dict(m.groups() for m in re.finditer(r"^ \+ (\S+?)==(\S+)", open(report).read(), re.M))
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pins = {}
for line in open(lock):
    m = re.match(r"^([A-Za-z0-9_.-]+)==([^;\s]+)", line)
    if m:
        pins.setdefault(norm(m[1]), set()).add(m[2])
off = [f"{n} {v}" for n, v in got.items() if norm(n) != "deepspark" and v not in pins.get(norm(n), {v})]
unlocked = [n for n in got if norm(n) not in pins and norm(n) != "deepspark"]
print(f"{lock}: resolves from the index alone: {len(got)} packages, torch {got.get('torch')},"
      f" off-lock {off or 'none'}, not in the lock {unlocked or 'none'}")
sys.exit(1 if off or unlocked else 0)
PY
    else
        { set +x; } 2>/dev/null
        echo "error: locks/$stack.txt does not resolve from the index alone" >&2
        status=1
    fi
done
exit "$status"
