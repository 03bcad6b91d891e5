# shellcheck shell=bash
# Sourced by ./spark-submit.sh and ./test.sh: gets a working checkout, wherever it was cloned, to
# "ready to run" with no manual steps.
#
#   source scripts/bootstrap.sh --setup             # what the wrappers do
#   source scripts/bootstrap.sh --check-java-only   # only the Java check (used by the tests)
#
# --setup: cd to the repo root, pick the locked stack ($DEEPSPARK_STACK, default `current`: one of
# locks/*.txt), create its venv (${DEEPSPARK_VENV:-.venv} for current, .venv-<stack> otherwise)
# with the newest python3.X that the lock's `# python:` line admits, (re)install `.[<extras>]` under
# the lock's constraints whenever pyproject.toml or the lock changed since the last install, check
# for Java, and export:
#   DEEPSPARK_STACK, DEEPSPARK_ROOT, DEEPSPARK_VENV, DEEPSPARK_PYTHON (absolute path of the venv's
#   python), PYSPARK_PYTHON, PYSPARK_DRIVER_PYTHON (= DEEPSPARK_PYTHON), SPARK_LOCAL_IP (127.0.0.1
#   unless set), PYTHONUNBUFFERED=1, PYTHONSAFEPATH=1.
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

# The stacks there are: every locks/<stack>.txt.
deepspark_stacks() {
    local f names=()
    for f in locks/*.txt; do
        f="${f##*/}"
        names+=("${f%.txt}")
    done
    echo "${names[*]}"
}

# A lock's `# python: >=3.A,<3.B` line as the two minor numbers "A B" (the lowest admitted and the
# first refused).
deepspark_python_range() {
    local line
    line="$(grep -m1 '^# python:' "$1")" || return 1
    [[ "$line" =~ \>=3\.([0-9]+),\<3\.([0-9]+) ]] || return 1
    echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

# The minor version of a Python interpreter (3.X -> X), if it runs at all (a pyenv shim can exist on
# the PATH yet not run, so each candidate is run, not just looked up).
deepspark_python_minor() {
    "$1" -c 'import sys; print(sys.version_info[1]) if sys.version_info[0] == 3 else exit(1)' \
        2>/dev/null
}

# Prints the newest python3.X on the PATH that the stack's lock admits (then plain python3).
deepspark_find_python() {
    local low="$1" high="$2" minor candidate found
    for ((minor = high - 1; minor >= low; minor--)); do
        candidate="python3.$minor"
        command -v "$candidate" >/dev/null 2>&1 || continue
        found="$(deepspark_python_minor "$candidate")" || continue
        if [[ "$found" == "$minor" ]]; then
            command -v "$candidate"
            return 0
        fi
    done
    if command -v python3 >/dev/null 2>&1 && found="$(deepspark_python_minor python3)" \
        && ((found >= low && found < high)); then
        command -v python3
        return 0
    fi
    return 1
}

# The Pythons some stack takes: the union of the locks' `# python:` ranges, as "3.11-3.14" (or, were
# there a gap, "3.11-3.12, 3.14").
deepspark_all_pythons() {
    local stack range a b minor taken=() start="" prev="" out=""
    for stack in $(deepspark_stacks); do
        range="$(deepspark_python_range "locks/$stack.txt")" || continue
        read -r a b <<<"$range"
        for ((minor = a; minor < b; minor++)); do taken[minor]=1; done
    done
    # An indexed array lists its indices in ascending order: close a run at each gap, and the last.
    for minor in "${!taken[@]}" end; do
        if [[ -n "$prev" && "$minor" != end ]] && ((minor == prev + 1)); then
            prev="$minor"
            continue
        fi
        if [[ -n "$start" ]]; then
            out="${out:+$out, }3.$start"
            [[ "$prev" != "$start" ]] && out="$out-3.$prev"
        fi
        start="$minor" prev="$minor"
    done
    echo "$out"
}

# One line for "no interpreter fits this stack": which Pythons it takes, which stacks take the ones
# that are here.
deepspark_no_python() {
    local low="$1" high="$2" have="" minor fits=() stack range a b
    if command -v python3 >/dev/null 2>&1 && minor="$(deepspark_python_minor python3)"; then
        have="3.$minor"
        for stack in $(deepspark_stacks); do
            range="$(deepspark_python_range "locks/$stack.txt")" || continue
            read -r a b <<<"$range"
            ((minor >= a && minor < b)) && fits+=("$stack")
        done
    fi
    local hint="install one (e.g. python3.$((high - 1)))"
    if [[ -n "$have" && ${#fits[@]} -gt 0 ]]; then
        hint="$hint, or use a stack for python3 $have: DEEPSPARK_STACK=${fits[0]}"
    elif [[ -n "$have" ]]; then
        hint="$hint; no stack supports python3 $have (deepspark runs on $(deepspark_all_pythons))"
    fi
    deepspark_error "stack $DEEPSPARK_STACK needs Python 3.$low to 3.$((high - 1)), and none" \
        "was found on the PATH: $hint"
}

deepspark_create_venv() {
    local python log="work/logs/install-$DEEPSPARK_STACK.log"
    if ! python="$(deepspark_find_python "$@")"; then
        deepspark_no_python "$@"
        return 1
    fi
    mkdir -p work/logs || return 1
    if ! "$python" -m venv "$DEEPSPARK_VENV" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        deepspark_error "could not create $DEEPSPARK_VENV with $python (Debian/Ubuntu:" \
            "apt-get install -y python3-venv for that version); full log: $log"
        return 1
    fi
}

# pip is slow even when nothing changed, so install only when the hash of pyproject.toml and the
# lock differs from the one stamped inside the venv by the last successful install (a new venv has
# no stamp). The stack's name is stamped too: tests/test_stack.py checks the venv against its lock.
deepspark_install() {
    local py="$DEEPSPARK_VENV/bin/python" stamp="$DEEPSPARK_VENV/.deepspark-install.sha256"
    local lock="locks/$DEEPSPARK_STACK.txt" log="work/logs/install-$DEEPSPARK_STACK.log" want have="" extras
    want="$("$py" -c 'import hashlib, pathlib, sys
print(hashlib.sha256(b"".join(pathlib.Path(p).read_bytes() for p in sys.argv[1:])).hexdigest())' \
        pyproject.toml "$lock")" || return 1
    [[ -f "$stamp" ]] && have="$(<"$stamp")"
    [[ "$want" == "$have" ]] && return 0

    extras="$(sed -n 's/^# extras: *//p' "$lock")"
    echo "installing deepspark and the $DEEPSPARK_STACK stack ($lock) into $DEEPSPARK_VENV" \
        "(first run: ~2 min)..." >&2
    mkdir -p work/logs || return 1
    # The lock is a constraints file: exactly its versions, and only the packages this platform
    # needs. torch==2.13.0 is whatever build pip finds: the index's (CUDA on Linux), or a local
    # CPU wheel where pip is configured with one (docs/STACKS.md: "CPU or CUDA torch").
    # With uv on the PATH, uv installs the same constraints in a fraction of pip's time (parallel
    # downloads; a second venv links torch from its cache): CI installs three stacks this way.
    local install=("$py" -m pip install --disable-pip-version-check) link
    if command -v uv >/dev/null 2>&1; then
        install=(uv pip install --python "$py")
        # uv reads only its own UV_FIND_LINKS: pip's local wheels (a CPU torch) carry over here.
        if [[ -z "${UV_FIND_LINKS:-}" ]]; then
            for link in ${PIP_FIND_LINKS:-}; do install+=(--find-links "$link"); done
        fi
    fi
    if ! "${install[@]}" -c "$lock" -e ".[$extras]" >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        deepspark_error "$lock did not install into $DEEPSPARK_VENV (full log: $log):" \
            "regenerate it with scripts/lock.sh $DEEPSPARK_STACK, or choose another stack" \
            "(DEEPSPARK_STACK=$(deepspark_stacks | tr ' ' '|'))"
        return 1
    fi
    echo "$DEEPSPARK_STACK" >"$DEEPSPARK_VENV/.deepspark-stack"
    echo "$want" >"$stamp"
}

deepspark_bootstrap() {
    # Everything below is relative to the repo root, found from this file's own location.
    local here="${BASH_SOURCE[0]%/*}"
    [[ "$here" == "${BASH_SOURCE[0]}" ]] && here=.
    DEEPSPARK_ROOT="$(cd "$here/.." && pwd)" || return 1
    cd "$DEEPSPARK_ROOT" || return 1

    deepspark_require_java || return 1

    DEEPSPARK_STACK="${DEEPSPARK_STACK:-current}"
    if [[ ! -f "locks/$DEEPSPARK_STACK.txt" ]]; then
        deepspark_error "unknown stack '$DEEPSPARK_STACK' (DEEPSPARK_STACK): choose one of" \
            "$(deepspark_stacks) (docs/STACKS.md)"
        return 1
    fi
    local range low high minor
    range="$(deepspark_python_range "locks/$DEEPSPARK_STACK.txt")" || {
        deepspark_error "locks/$DEEPSPARK_STACK.txt has no '# python: >=3.A,<3.B' line:" \
            "regenerate it with scripts/lock.sh $DEEPSPARK_STACK"
        return 1
    }
    read -r low high <<<"$range"
    # The Quick start stack keeps the plain .venv; the others get one each, so switching stacks
    # never reinstalls over another stack's venv.
    if [[ "$DEEPSPARK_STACK" == current ]]; then
        DEEPSPARK_VENV="${DEEPSPARK_VENV:-.venv}"
    else
        DEEPSPARK_VENV="${DEEPSPARK_VENV:-.venv-$DEEPSPARK_STACK}"
    fi
    if [[ ! -x "$DEEPSPARK_VENV/bin/python" ]]; then
        deepspark_create_venv "$low" "$high" || return 1
    fi
    minor="$(deepspark_python_minor "$DEEPSPARK_VENV/bin/python")" || minor=unknown
    if [[ "$minor" == unknown ]] || ((minor < low || minor >= high)); then
        deepspark_error "$DEEPSPARK_VENV runs Python 3.$minor, but stack $DEEPSPARK_STACK needs" \
            "3.$low to 3.$((high - 1)): remove $DEEPSPARK_VENV and run again"
        return 1
    fi
    deepspark_install || return 1

    # Absolute, not resolved through symlinks: the venv's bin/python is what activates the venv.
    DEEPSPARK_PYTHON="$(cd "$DEEPSPARK_VENV" && pwd)/bin/python" || return 1
    export DEEPSPARK_STACK DEEPSPARK_ROOT DEEPSPARK_VENV DEEPSPARK_PYTHON
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
