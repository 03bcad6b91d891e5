# shellcheck shell=bash
# Sourced by ./spark-submit.sh and ./test.sh: gets a working checkout, wherever it was cloned, to
# "ready to run" with no manual steps.
#
#   source scripts/bootstrap.sh --setup             # what the wrappers do
#   source scripts/bootstrap.sh --check-java-only   # only the Java check (used by the tests)
#
# --setup: cd to the repo root, create the venv at ${DEEPSPARK_VENV:-.venv} with Python 3.11 if it
# is missing, (re)install `.[dev]` into it whenever pyproject.toml (the one place that holds the
# pins) changed since the last install, check for Java, and export:
#   DEEPSPARK_ROOT, DEEPSPARK_VENV, DEEPSPARK_PYTHON (absolute path of the venv's python),
#   PYSPARK_PYTHON, PYSPARK_DRIVER_PYTHON (= DEEPSPARK_PYTHON), SPARK_LOCAL_IP (127.0.0.1 unless
#   set), PYTHONUNBUFFERED=1, PYTHONSAFEPATH=1.
# Every failure is one `error: ...` line on stderr (the pip log tail precedes it) and status 1.
#
# Only bash builtins run before the Java check, so it works with an empty PATH. Errors are checked
# explicitly: callers use `set -e`, but bash ignores -e inside a function called from `||`.

DEEPSPARK_JAVA_HINT="java not found: Spark needs Java 17 (Debian/Ubuntu: apt-get install -y \
openjdk-17-jre-headless; or set JAVA_HOME)"

deepspark_error() {
    echo "error: $*" >&2
}

# The same rule as deepspark.spark.require_java: $JAVA_HOME/bin/java, else java on the PATH.
deepspark_require_java() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] || command -v java >/dev/null 2>&1
    then
        return 0
    fi
    deepspark_error "$DEEPSPARK_JAVA_HINT"
    return 1
}

# Prints the first of python3.11 / python3 that really is 3.11 (a pyenv shim can exist on the
# PATH yet not run, so each candidate is run, not just looked up).
deepspark_find_python311() {
    local candidate
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
                >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

deepspark_create_venv() {
    local python log="work/logs/install.log"
    if ! python="$(deepspark_find_python311)"; then
        deepspark_error "Python 3.11 is needed to create $DEEPSPARK_VENV (deepspark requires" \
            ">=3.11,<3.12): install python3.11, or point DEEPSPARK_VENV at a 3.11 venv"
        return 1
    fi
    mkdir -p work/logs || return 1
    if ! "$python" -m venv "$DEEPSPARK_VENV" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        deepspark_error "could not create $DEEPSPARK_VENV with $python (Debian/Ubuntu:" \
            "apt-get install -y python3.11-venv); full log: $log"
        return 1
    fi
}

# pip is slow even when nothing changed, so install only when pyproject.toml's hash differs from
# the one stamped inside the venv by the last successful install (a new venv has no stamp).
deepspark_install() {
    local py="$DEEPSPARK_VENV/bin/python" stamp="$DEEPSPARK_VENV/.deepspark-pyproject.sha256"
    local log="work/logs/install.log" want have=""
    want="$("$py" -c 'import hashlib, pathlib, sys
print(hashlib.sha256(pathlib.Path(sys.argv[1]).read_bytes()).hexdigest())' pyproject.toml)" \
        || return 1
    [[ -f "$stamp" ]] && have="$(<"$stamp")"
    [[ "$want" == "$have" ]] && return 0

    echo "installing deepspark and its pinned stack into $DEEPSPARK_VENV (first run: ~2 min)..." >&2
    mkdir -p work/logs || return 1
    # torch's +cpu wheel comes from pip's configured find-links; no index is named here.
    if ! "$py" -m pip install --disable-pip-version-check -e '.[dev]' >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        deepspark_error "installing deepspark into $DEEPSPARK_VENV failed; full log: $log"
        return 1
    fi
    echo "$want" >"$stamp"
}

deepspark_bootstrap() {
    # Everything below is relative to the repo root, found from this file's own location.
    local here="${BASH_SOURCE[0]%/*}"
    [[ "$here" == "${BASH_SOURCE[0]}" ]] && here=.
    DEEPSPARK_ROOT="$(cd "$here/.." && pwd)" || return 1
    cd "$DEEPSPARK_ROOT" || return 1

    deepspark_require_java || return 1

    DEEPSPARK_VENV="${DEEPSPARK_VENV:-.venv}"
    if [[ ! -x "$DEEPSPARK_VENV/bin/python" ]]; then
        deepspark_create_venv || return 1
    fi
    if ! "$DEEPSPARK_VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'
    then
        deepspark_error "$DEEPSPARK_VENV is not a Python 3.11 venv: remove it and run again"
        return 1
    fi
    deepspark_install || return 1

    # Absolute, not resolved through symlinks: the venv's bin/python is what activates the venv.
    DEEPSPARK_PYTHON="$(cd "$DEEPSPARK_VENV" && pwd)/bin/python" || return 1
    export DEEPSPARK_ROOT DEEPSPARK_VENV DEEPSPARK_PYTHON
    export PYSPARK_PYTHON="$DEEPSPARK_PYTHON" PYSPARK_DRIVER_PYTHON="$DEEPSPARK_PYTHON"
    # Spark otherwise binds to whatever the hostname resolves to, which breaks on many laptops/VMs.
    export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
    export PYTHONUNBUFFERED=1
    # Python puts a script's own folder first on sys.path, so a job named like a stdlib module
    # (profile.py, say) would shadow it for pyspark. Jobs import only the installed deepspark
    # package, so they do not need their folder on the path.
    export PYTHONSAFEPATH=1
}

deepspark_main() {
    case "${1:-}" in
        --setup) deepspark_bootstrap ;;
        --check-java-only) deepspark_require_java ;;
        *) deepspark_error "usage: source scripts/bootstrap.sh --setup|--check-java-only"; false ;;
    esac
}

# `return` ends a sourced file (the caller then fails under its own set -e); run as a script, exit.
# shellcheck disable=SC2317
deepspark_main "$@" || { return 1 2>/dev/null || exit 1; }
