#!/usr/bin/env bash
# API fuzzing from the OpenAPI document: schemathesis (PyPI) against the `/openapi.json` a
# local fleet serves (`mpic dev`: a coordinator and its perspectives in one process), with
# every check schemathesis offers but one (`--checks all`: no 5xx, status codes, content
# types, headers and bodies conform to the document, non-conforming input refused with a 4xx,
# 405 and Allow for other methods, auth not ignored, ...) and both
# positive and negative data (`--mode all`), a bounded number of examples per operation and a
# fixed seed. The one check left out is `positive_data_acceptance` ("conforming input is
# accepted"): the document states every rule JSON Schema can express (lengths, patterns,
# bounds, which parameters go with which check type), but not the semantic ones — a name valid
# under UTS-46, a prefix that keeps the name within 253 octets, a regex that compiles, a
# quorum within the BR table for the cohort size asked, the configured catalogue — so
# conforming input that breaks one of those is rightly a 400 naming the field. Two passes:
#
#   1. every operation, with the API key;
#   2. every operation but POST /mpic without credentials: what the document declares public
#      must answer without a key (or the document must declare the key and the 401).
#
# The fleet's resolver is a closed loopback port, so no name resolves and no fuzzed name is
# ever looked up or dialled; every check comes back as a failed entry (HTTP 200). IP-literal
# targets are refused by the perspectives when special-use, but a public address would be
# dialled: run this where egress does not matter or is blocked.
#
# schemathesis goes into a virtualenv in .ci/.venv-schemathesis (not under version control).
# The script builds nothing: it runs the `mpic` binary it is given.
#
#   .ci/schemathesis.sh           MPIC_BIN=path/to/mpic (default target/debug/mpic)
#
#   SCHEMATHESIS_MAX_EXAMPLES   examples per operation and phase (default 100)
#   SCHEMATHESIS_SEED           the seed (default 20261204)
#   SCHEMATHESIS_REPORT_DIR     JUnit and NDJSON reports, the fleet's log (default
#                               ${CARGO_TARGET_DIR:-target}/schemathesis)
#
# Exit status: 0 when schemathesis finds nothing, 1 when it reports failures or errors, 2 when
# the fleet or the tools could not be set up.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
venv=.ci/.venv-schemathesis
# hypothesis generates the data: pinned too, so that the seed means the same examples.
requirements=(schemathesis==4.32.5 hypothesis==6.170.27)
examples=${SCHEMATHESIS_MAX_EXAMPLES:-100}
seed=${SCHEMATHESIS_SEED:-20261204}
report_dir=${SCHEMATHESIS_REPORT_DIR:-${CARGO_TARGET_DIR:-target}/schemathesis}
perspectives=6

log() { echo "schemathesis: $*"; }

# --- tools -----------------------------------------------------------------------------------
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1 ||
    [ "$(cat "$venv/.requirements" 2>/dev/null)" != "${requirements[*]}" ]; then
    log "installing ${requirements[*]} into $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 keeps venv (and ensurepip) in a separate package.
        rm -rf "$venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
    echo "${requirements[*]}" >"$venv/.requirements"
fi
log "$("$venv/bin/schemathesis" --version) ready ($((SECONDS - start)) s)"

mpic=${MPIC_BIN:-${CARGO_TARGET_DIR:-target}/debug/mpic}
if [ ! -x "$mpic" ]; then
    echo "schemathesis: no mpic binary at $mpic (build it, or set MPIC_BIN)" >&2
    exit 2
fi

# --- the fleet -------------------------------------------------------------------------------
mkdir -p "$report_dir"
report_dir=$(cd "$report_dir" && pwd)
work=$(mktemp -d)
fleet_pid=
stop_fleet() {
    if [ -n "$fleet_pid" ] && kill -0 "$fleet_pid" 2>/dev/null; then
        kill "$fleet_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$fleet_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$fleet_pid" 2>/dev/null || true
        wait "$fleet_pid" 2>/dev/null || true
    fi
    fleet_pid=
}
cleanup() {
    stop_fleet
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing listens on, of the given socket type (the kernel's pick, released).
free_port() {
    python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' "$1"
}

port= key=
for try in 1 2 3; do
    port=$(free_port tcp)
    resolver_port=$(free_port udp)
    "$mpic" dev --listen "127.0.0.1:$port" --perspectives "$perspectives" \
        --resolver "127.0.0.1:$resolver_port" >"$work/fleet.out" 2>"$report_dir/fleet.log" &
    fleet_pid=$!
    for _ in $(seq 100); do
        key=$(sed -n 's/^API key: \([^[:space:]]*\).*/\1/p' "$work/fleet.out")
        [ -n "$key" ] && break
        kill -0 "$fleet_pid" 2>/dev/null || break
        sleep 0.1
    done
    ready=
    if [ -n "$key" ]; then
        for _ in $(seq 150); do
            if ! kill -0 "$fleet_pid" 2>/dev/null; then break; fi
            if "$mpic" probe --timeout 2 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
                ready=1
                break
            fi
            sleep 0.2
        done
    fi
    [ -n "$ready" ] && break
    log "fleet did not come up on 127.0.0.1:$port (try $try)"
    tail -n 5 "$report_dir/fleet.log" >&2 || true
    stop_fleet
    key=
done
if [ -z "$key" ]; then
    echo "schemathesis: could not start the fleet (log: $report_dir/fleet.log)" >&2
    exit 2
fi
base=http://127.0.0.1:$port
log "fleet ready at $base with $perspectives perspectives, resolver 127.0.0.1:$resolver_port (closed) ($((SECONDS - start)) s)"

# --- the runs --------------------------------------------------------------------------------
# --generation-with-security-parameters false: the document declares two schemes (bearer, or
#   x-api-key); left on, schemathesis fills the one it is not given with a random value, and
#   a request carrying a wrong key is rightly a 401, which hides everything else.
# --generation-database none: no examples replayed from earlier runs; the seed alone decides.
# --continue-on-failure: keep generating after a scenario's first failure, so one run shows
#   every distinct failure rather than the first of each operation.
common=(
    --checks all
    --exclude-checks positive_data_acceptance
    --mode all
    --max-examples "$examples"
    --seed "$seed"
    --continue-on-failure
    --generation-database none
    --generation-with-security-parameters false
    --request-timeout 30
    --wait-for-schema 30
    --workers 2
    --no-color
)

st=$(pwd)/$venv/bin/schemathesis
# .ci/schemathesis_hooks.py: see its docstring.
hooks_dir=$(pwd)/.ci
status=0
run() {
    local name=$1 what=$2
    shift 2
    local pass_start=$SECONDS rc=0
    log "pass '$name': $what"
    (cd "$work" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$hooks_dir" \
        "$st" run "$base/openapi.json" "${common[@]}" \
        --report junit,ndjson \
        --report-junit-path "$report_dir/$name.junit.xml" \
        --report-ndjson-path "$report_dir/$name.ndjson" \
        "$@") >"$report_dir/$name.txt" 2>&1 || rc=$?
    # The failure details and the summary (the per-operation progress is in the file).
    awk '/^=+ (FAILURES|ERRORS) =+$/ { p = 1 } p' "$report_dir/$name.txt"
    if [ "$rc" -eq 0 ]; then
        log "pass '$name': no failures ($((SECONDS - pass_start)) s)"
    else
        [ -s "$report_dir/$name.txt" ] && ! grep -q '^=* SUMMARY' "$report_dir/$name.txt" &&
            tail -n 30 "$report_dir/$name.txt"
        log "pass '$name': FAILED, exit $rc ($((SECONDS - pass_start)) s)"
        status=1
    fi
    local last
    last=$(grep -E '^=+ .* in [0-9.]+s =+$' "$report_dir/$name.txt" | tail -n 1 | tr -d '=' |
        sed 's/^ *//; s/ *$//' || true)
    summary+=("$name: ${last:-no summary} (exit $rc)")
}

summary=()
run authenticated "every operation, with the API key" -H "Authorization: Bearer $key"
run public "every operation but POST /mpic, without credentials" --exclude-path /mpic

stop_fleet
if grep -q '"level":"ERROR"' "$report_dir/fleet.log"; then
    log "the fleet logged errors:"
    grep '"level":"ERROR"' "$report_dir/fleet.log" | head -n 10 | cut -c1-400
fi

echo
log "summary (seed $seed, $examples examples per operation and phase, $((SECONDS - start)) s):"
for line in "${summary[@]}"; do
    echo "  $line"
done
log "reports, schemathesis output and the fleet's log in $report_dir"
exit "$status"
