#!/usr/bin/env bash
# Run a deepspark job under spark-submit, from a fresh clone, with no manual setup:
#
#   ./spark-submit.sh JOB [--conf FILE]... [--cluster PROFILE] [--master URL] [--dry-run] [k=v ...]
#   ./spark-submit.sh jobs/ingest.py --conf conf/flights.yaml spark.master=local[4]
#   ./spark-submit.sh jobs/pipeline.py --cluster standalone --master spark://host:7077
#   ./spark-submit.sh jobs/train.py --conf conf/digits.yaml --cluster yarn-gpu --dry-run
#
# Paths are relative to the repo root (the script runs from there, wherever it is called from).
# The master, driver memory and Spark settings come from the same resolved config the job loads
# (python -m deepspark.submit), with a cluster profile from conf/clusters/ on top: the master
# (--master, then SPARK_MASTER, win over it), deploy mode, executor resources, a packed venv
# (--archives) where workers lack the stack, and the job overrides that cluster needs. The library
# ships as dist/deepspark-<version>.zip (--py-files), the configs with --files. --dry-run prints
# the exact command instead of running it. The exit status is spark-submit's.
set -euo pipefail

# Without a --conf the job runs its own defaults; Spark options then come from the first of them
# (every job's defaults start with flights), and all of conf/ ships so any default can be read.
readonly DEFAULT_CONF=conf/flights.yaml

usage() {
    sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

die() {
    echo "error: $*" >&2
    exit 1
}

# Single-quote an argument only when the shell would otherwise change it, so the dry run's output
# is both readable and safe to paste.
shell_quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# The spark-submit that ships inside the installed pyspark: always the version the venv pins.
find_spark_submit() {
    SPARK_HOME="$("$DEEPSPARK_PYTHON" -c \
        'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
    export SPARK_HOME
    [[ -x "$SPARK_HOME/bin/spark-submit" ]] || die "no spark-submit in $SPARK_HOME/bin"
    SPARK_SUBMIT="$SPARK_HOME/bin/spark-submit"
}

main() {
    local job="" dry_run=0 arg
    local -a confs=() overrides=() job_args=() options=() ship=() cmd=() submit=() lines=()
    local -a profile_overrides=()
    while (($#)); do
        arg="$1"
        shift
        case "$arg" in
            -h | --help) usage; exit 0 ;;
            --dry-run) dry_run=1 ;;
            --conf) (($#)) || die "--conf needs a FILE"; confs+=("$1"); shift ;;
            --conf=*) confs+=("${arg#--conf=}") ;;
            --cluster | --master)
                (($#)) || die "$arg needs a value"; submit+=("$arg" "$1"); shift ;;
            --cluster=* | --master=*) submit+=("$arg") ;;
            -*) die "unknown option $arg (see --help)" ;;
            *=*) overrides+=("$arg") ;;
            *) [[ -z "$job" ]] || die "unexpected argument $arg (overrides are key=value)"
               job="$arg" ;;
        esac
    done
    [[ -n "$job" ]] || { usage >&2; exit 2; }

    # shellcheck source=scripts/bootstrap.sh
    source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/scripts/bootstrap.sh" --setup
    # Only a real run needs the job file; the dry run just prints the command.
    ((dry_run)) || [[ -f "$job" ]] || die "job not found: $job (paths are relative to $PWD)"
    find_spark_submit

    if ((${#confs[@]})); then
        for arg in "${confs[@]}"; do job_args+=(--conf "$arg"); done
    else
        confs=("$DEFAULT_CONF")
        for arg in conf/*.yaml; do ship+=(--ship "$arg"); done
    fi
    ((dry_run)) && submit+=(--dry-run)

    # One option per line (no value can hold a newline: deepspark.submit refuses those), then a
    # "--" line and the overrides the cluster profile adds to the job's own.
    local submit_out
    submit_out="$("$DEEPSPARK_PYTHON" -m deepspark.submit "${confs[@]/#/--conf=}" \
        ${ship[@]+"${ship[@]}"} ${submit[@]+"${submit[@]}"} --python "$DEEPSPARK_PYTHON" -- \
        ${overrides[@]+"${overrides[@]}"})" || exit 1
    mapfile -t lines <<<"$submit_out"
    for arg in "${lines[@]}"; do
        if ((${#profile_overrides[@]})) || [[ "$arg" == "--" ]]; then
            profile_overrides+=("$arg")
        else
            options+=("$arg")
        fi
    done
    profile_overrides=("${profile_overrides[@]:1}")  # drop the "--" separator
    # The profile's overrides come first, so the user's own key=value still win.
    job_args+=(${profile_overrides[@]+"${profile_overrides[@]}"} ${overrides[@]+"${overrides[@]}"})

    cmd=("$SPARK_SUBMIT" "${options[@]}" "$job" ${job_args[@]+"${job_args[@]}"})
    if ((dry_run)); then
        local out=()
        for arg in "${cmd[@]}"; do out+=("$(shell_quote "$arg")"); done
        echo "${out[*]}"
        exit 0
    fi
    exec "${cmd[@]}"
}

# Sourcing the file (the tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
