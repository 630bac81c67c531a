#!/usr/bin/env bash
# End to end on the Docker engine (issues 6 and 17): builds the images with no registry
# (docker/build-images.sh), starts the compose fleet with the demo profile, waits until it is
# ready, and sends real requests to POST /mpic:
#
#   1. CAA permit and deny, dns-change (TXT), acme-http-01 against demo.test, a wrong
#      dns-change value, a wrong API key;
#   2. `compose stop` one perspective: the verdict still follows the quorum rules (2 of 3, two
#      RIRs) and the stopped perspective is reported as a failed, not completed entry;
#   3. `docker network disconnect` another perspective's namespace: the request still returns
#      within the deadline; with a second perspective stopped as well it waits for the cut-off
#      one only until the per-perspective deadline and is not valid (1 of 3);
#   4. everything restored: 3 of 3 again;
#   5. restarts while a client sends checks: each Unbound, each perspective and each demo web
#      server in turn; after each, 3 of 3 again within FULL_WITHIN seconds, no request failed;
#      a perspective whose Unbound is stopped answers /readyz 503 with the reason;
#   6. a rolling restart under load (20 checks a second, 5 in flight, .ci/compose_load.py):
#      the coordinator, then every perspective, one at a time: no accepted request cut (no
#      reset, no empty reply), no wrong verdict, every answer within the request deadline;
#      while the single coordinator restarts, new connections may be refused, while a
#      perspective restarts nothing is; every drain is logged with its counts, none cut;
#   7. the Grafana dashboard and the alerting rules (.ci/monitoring-check.sh: promtool, and
#      every metric they query exported by this fleet's /metrics).
#
# Tears the fleet down (containers, network, volumes) on every exit, failure included; on
# failure the last log lines of every service are printed first. Prints the time of each step.
#
#   .ci/compose-e2e.sh
#   MPIC_E2E_SKIP_BUILD=1 .ci/compose-e2e.sh    reuse the images already built
#   MPIC_E2E_PORT=18080 (default) host port of the coordinator; MPIC_E2E_PROJECT=mpic-e2e;
#   MPIC_TAG=local (default) the image tag built and run
set -euo pipefail
cd "$(dirname "$0")/.."

project=${MPIC_E2E_PROJECT:-mpic-e2e}
port=${MPIC_E2E_PORT:-18080}
api=http://127.0.0.1:$port
# timeouts of docker/compose/coordinator.yaml
call_deadline_ms=5000
request_deadline_ms=15000
# How soon after a restart every perspective must corroborate again (3 of 3).
full_within=30
# The coordinator's fixed address on the fleet network (.ci/compose-e2e.override.yaml).
direct=http://198.18.53.80:8080

start=$SECONDS
step_start=$SECONDS
step() {
    step_start=$SECONDS
    echo "compose-e2e: [$((SECONDS - start)) s] $*"
}
done_step() {
    echo "compose-e2e:   ok ($((SECONDS - step_start)) s)"
}
fail() {
    echo "compose-e2e: FAILED: $*" >&2
    exit 1
}

# ---- tools ---------------------------------------------------------------------------------
need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v jq >/dev/null || need_apt+=(jq)
command -v python3 >/dev/null || need_apt+=(python3)
if docker compose version >/dev/null 2>&1; then
    compose_bin=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_bin=(docker-compose)
else
    need_apt+=(docker-compose)
    compose_bin=(docker-compose)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info)"

# The fleet's environment: fresh secrets, the demo profile; never the user's .env.
env_file=$(mktemp)
: >"$env_file"
export COMPOSE_PROFILES=demo
export MPIC_TAG=${MPIC_TAG:-local}
export MPIC_PORT=$port
export MPIC_BIND=127.0.0.1
api_key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export MPIC_API_KEYS=$api_key
MPIC_HASH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export MPIC_HASH_SECRET
compose() {
    "${compose_bin[@]}" --env-file "$env_file" -p "$project" -f compose.yaml \
        -f .ci/compose-e2e.override.yaml "$@"
}

teardown() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "${load_pid:-}" ]; then
        touch "$loads/stop"
        wait "$load_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ]; then
        echo "compose-e2e: the last log lines of every service:" >&2
        compose logs --no-color --tail=40 >&2 2>&1 || true
        compose ps >&2 2>&1 || true
    fi
    echo "compose-e2e: [$((SECONDS - start)) s] tearing down"
    compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true
    rm -f "$env_file"
    echo "compose-e2e: total $((SECONDS - start)) s"
    exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ---- images ------------------------------------------------------------------------------
if [ "${MPIC_E2E_SKIP_BUILD:-0}" != 1 ]; then
    step "building the images with no registry (docker/build-images.sh)"
    bash docker/build-images.sh
    done_step
fi

step "checking the compose configurations with mpic config check (mpic/cli image)"
for f in docker/compose/coordinator.yaml docker/compose/default/*.yaml docker/compose/demo/*.yaml; do
    docker run --rm --network none -v "$PWD/docker/compose:/docker/compose:ro" "mpic/cli:$MPIC_TAG" \
        config check "/$f" | sed -n 1p
done
compose config -q
done_step

# A fleet left behind by an interrupted run of this script.
compose down -v --remove-orphans --timeout 5 >/dev/null 2>&1 || true

# ---- up and ready ------------------------------------------------------------------------
step "docker compose up (profile demo)"
compose up -d
done_step

# Waits until the service's container reports the health status "healthy".
wait_healthy() {
    local service=$1 limit=$2 id status
    local until=$((SECONDS + limit))
    id=$(compose ps -q "$service")
    [ -n "$id" ] || fail "no container for $service"
    while :; do
        status=$(docker inspect -f '{{.State.Health.Status}}' "$id")
        [ "$status" = healthy ] && return 0
        [ "$SECONDS" -lt "$until" ] || fail "$service is $status after ${limit} s"
        sleep 1
    done
}

step "waiting for a ready fleet (every health check healthy, coordinator /readyz 200)"
for s in unbound-us-east-1 unbound-eu-west-1 unbound-ap-northeast-1 \
    perspective-us-east-1 perspective-eu-west-1 perspective-ap-northeast-1 coordinator; do
    wait_healthy "$s" 120
done
ready=$(curl -sf "$api/readyz") || fail "coordinator /readyz is not 200"
echo "compose-e2e:   /readyz: $ready"
done_step

# ---- requests ----------------------------------------------------------------------------
body=$(mktemp)
# post JSON: POST /mpic with the API key; the body lands in $body, the status in $http,
# the duration (ms) in $ms.
post() {
    local out
    out=$(curl -sS -o "$body" -w '%{http_code} %{time_total}' \
        -H "Authorization: Bearer $api_key" -H 'content-type: application/json' \
        --max-time 60 -d "$1" "$api/mpic")
    http=${out%% *}
    ms=$(awk -v t="${out#* }" 'BEGIN { printf "%d", t * 1000 }')
}
# expect DESCRIPTION JQ_FILTER: the filter must yield true on the last response body.
expect() {
    if ! jq -e "$2" "$body" >/dev/null; then
        echo "compose-e2e: response (HTTP $http, $ms ms):" >&2
        jq . "$body" >&2 || cat "$body" >&2
        if grep -q 'not_implemented' "$body"; then
            fail "$1 — the perspective answers not_implemented for this method (not built yet)"
        fi
        fail "$1 ($2)"
    fi
    echo "compose-e2e:   ok: $1"
}
summary() {
    jq -c '{is_valid, mpic_completed, quorum_result, perspectives: [.perspectives[] | {(.perspective_code): (if .check_response.check_passed then "passed" elif .check_response.check_completed then "failed" else "not completed: " + (.check_response.errors[0].error_message // "?") end)}] | add}' "$body" |
        sed 's/^/compose-e2e:   /'
    echo "compose-e2e:   (HTTP $http in $ms ms)"
}
all_passed='([.perspectives[].check_response.check_passed] | all)'

caa_permit='{"check_type":"caa","domain_or_ip_target":"permit.demo.test"}'
caa_deny='{"check_type":"caa","domain_or_ip_target":"deny.demo.test"}'
dns_change='{"check_type":"dcv","domain_or_ip_target":"demo.test","dcv_check_parameters":{"validation_method":"dns-change","challenge_value":"demo-dns-change-value","dns_record_type":"TXT","dns_name_prefix":"_dnsauth"}}'
dns_change_wrong='{"check_type":"dcv","domain_or_ip_target":"demo.test","dcv_check_parameters":{"validation_method":"dns-change","challenge_value":"some-other-value","dns_record_type":"TXT","dns_name_prefix":"_dnsauth"}}'
http01='{"check_type":"dcv","domain_or_ip_target":"demo.test","dcv_check_parameters":{"validation_method":"acme-http-01","token":"demo-http01-token","key_authorization":"demo-http01-token.demo-account-thumbprint"}}'

step "checks through POST /mpic against demo.test"
post "$caa_permit"
summary
expect "CAA permit: HTTP 200" "$http == 200"
expect "CAA permit: valid, 3/3" '.is_valid == true and .quorum_result == "3/3" and .mpic_completed == true'
expect "CAA permit: every perspective found the apex's issue \"ca.example\"" \
    "$all_passed and ([.perspectives[].check_response.details | .found_at == \"demo.test\" and .reason == \"issuer-authorised\"] | all)"

post "$caa_deny"
summary
expect "CAA deny: not valid, 0/3, every check completed" \
    '.is_valid == false and .quorum_result == "0/3" and ([.perspectives[].check_response.check_completed] | all)'
expect "CAA deny: the reason is issuer-not-listed" \
    '[.perspectives[].check_response.details.reason == "issuer-not-listed"] | all'

post "$dns_change"
summary
expect "dns-change TXT: valid, 3/3" ".is_valid == true and .quorum_result == \"3/3\" and $all_passed"
expect "dns-change TXT: the record was seen at _dnsauth.demo.test" \
    '[.perspectives[].check_response.details | .found_at == "_dnsauth.demo.test" and (.records_seen | index("demo-dns-change-value") != null)] | all'

post "$dns_change_wrong"
summary
expect "dns-change with a value nobody published: not valid, 0/3" '.is_valid == false and .quorum_result == "0/3"'

post "$http01"
summary
expect "acme-http-01: valid, 3/3" ".is_valid == true and .quorum_result == \"3/3\" and $all_passed"
expect "acme-http-01: HTTP 200 from the demo web server (127.0.0.1 in each perspective's namespace)" \
    '[.perspectives[].check_response.details | .response_status_code == 200 and .resolved_ip == "127.0.0.1"] | all'

http=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer not-the-key-0123456789' \
    -H 'content-type: application/json' -d "$caa_permit" "$api/mpic")
[ "$http" = 401 ] || fail "a wrong API key got HTTP $http, not 401"
echo "compose-e2e:   ok: a wrong API key gets 401"
done_step

# ---- a stopped perspective ---------------------------------------------------------------
step "docker compose stop perspective-us-east-1"
compose stop perspective-us-east-1
post "$caa_permit"
summary
expect "one perspective stopped: still valid, 2/3 (quorum 2 of 3, passes from RIPE NCC and APNIC)" \
    '.is_valid == true and .quorum_result == "2/3" and .mpic_completed == true'
expect "the stopped perspective is reported: not completed, remote_check error" \
    '.perspectives[] | select(.perspective_code == "us-east-1") | .check_response | .check_completed == false and .check_passed == false and .errors[0].error_type == "mpic_error:coordinator:remote_check"'
echo "compose-e2e:   coordinator /readyz now: $(curl -s "$api/readyz")"
compose start perspective-us-east-1
wait_healthy perspective-us-east-1 60
done_step

# ---- a perspective cut off its network ---------------------------------------------------
network=${project}_mpic
cut=$(compose ps -q holder-eu-west-1)
step "docker network disconnect $network (holder-eu-west-1: the namespace of perspective-eu-west-1)"
docker network disconnect "$network" "$cut"
post "$caa_permit"
summary
[ "$ms" -lt "$request_deadline_ms" ] || fail "the request took $ms ms, over the ${request_deadline_ms} ms deadline"
expect "eu-west-1 cut off: returns within the deadline, valid 2/3" \
    '.is_valid == true and .quorum_result == "2/3"'
expect "the cut-off perspective is reported: not completed, remote_check error" \
    '.perspectives[] | select(.perspective_code == "eu-west-1") | .check_response | .check_completed == false and .errors[0].error_type == "mpic_error:coordinator:remote_check"'

echo "compose-e2e:   and ap-northeast-1 stopped too: the answer now depends on the cut-off one"
compose stop perspective-ap-northeast-1
post "$caa_permit"
summary
[ "$ms" -lt "$request_deadline_ms" ] || fail "the request took $ms ms, over the ${request_deadline_ms} ms deadline"
[ "$ms" -ge $((call_deadline_ms - 500)) ] || echo "compose-e2e:   (answered before the per-perspective deadline: the cut was noticed early)"
expect "two of three down: not valid, 1/3, answered within the deadline ($ms ms < ${request_deadline_ms} ms)" \
    '.is_valid == false and .quorum_result == "1/3" and .mpic_completed == false'
expect "both failed perspectives are reported as remote_check failures" \
    '[.perspectives[] | select(.perspective_code != "us-east-1") | .check_response | .check_completed == false and .errors[0].error_type == "mpic_error:coordinator:remote_check"] | all'
done_step

# ---- restored ----------------------------------------------------------------------------
step "restoring: reconnect eu-west-1, start ap-northeast-1"
docker network connect --alias perspective-eu-west-1 "$network" "$cut"
compose start perspective-ap-northeast-1
wait_healthy perspective-ap-northeast-1 60
until=$((SECONDS + 60))
until curl -sf "$api/readyz" >/dev/null; do
    [ "$SECONDS" -lt "$until" ] || fail "coordinator /readyz not 200 within 60 s after the restore"
    sleep 1
done
post "$caa_permit"
summary
expect "restored: valid, 3/3" '.is_valid == true and .quorum_result == "3/3"'
done_step
loads=$(mktemp -d)
# The coordinator's metrics now, after the failures above (its counters start again when it
# restarts below); .ci/monitoring-check.sh reads the names of both scrapes.
curl -sf "http://198.18.53.80:9090/metrics" >"$loads/coordinator-before.metrics" ||
    fail "cannot scrape the coordinator's /metrics"

# ---- restarts while a client sends checks -------------------------------------------------
load_pid=
# start_load NAME ARGS...: .ci/compose_load.py against the coordinator's own address, in the
# background, until stop_load.
start_load() {
    local name=$1
    shift
    rm -f "$loads/stop"
    python3 .ci/compose_load.py "$direct/mpic" "$api_key" "$loads/$name.jsonl" "$loads/stop" \
        --deadline-ms "$request_deadline_ms" "$@" >"$loads/$name.out" 2>&1 &
    load_pid=$!
}
# stop_load NAME: stops the load and checks its summary.
stop_load() {
    local name=$1 status=0
    touch "$loads/stop"
    wait "$load_pid" || status=$?
    load_pid=
    sed 's/^/compose-e2e:   /' "$loads/$name.out"
    [ "$status" -eq 0 ] || fail "the load of '$name' saw failed requests (above)"
}
# full_again WHAT: waits until CAA and acme-http-01 are 3/3 again, at most $full_within s.
full_again() {
    local what=$1 started=$SECONDS caa http
    while :; do
        post "$caa_permit"
        caa=$(jq -r .quorum_result "$body" 2>/dev/null || echo "HTTP $http")
        post "$http01"
        http=$(jq -r .quorum_result "$body" 2>/dev/null || echo "HTTP $http")
        if [ "$caa" = 3/3 ] && [ "$http" = 3/3 ]; then
            echo "compose-e2e:   ok: $what: 3/3 again (CAA and acme-http-01) within $((SECONDS - started)) s"
            return 0
        fi
        [ $((SECONDS - started)) -lt "$full_within" ] ||
            fail "$what: not 3/3 within $full_within s (CAA $caa, acme-http-01 $http)"
        sleep 0.5
    done
}
# holder_ip CODE: the address of a perspective's namespace on the fleet network.
holder_ip() {
    docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' \
        "$(compose ps -q "holder-$1")"
}
codes=(us-east-1 eu-west-1 ap-northeast-1)
# `compose restart` and `stop` give each service its stop_grace_period (compose.yaml), which
# covers its pre-stop delay and drain.

step "restarting each Unbound, perspective and demo web server in turn, with checks running"
start_load restarts --rate 4 --concurrency 2 --with-dcv
for code in "${codes[@]}"; do
    t=$SECONDS
    compose restart "unbound-$code" >/dev/null 2>&1
    echo "compose-e2e:   unbound-$code restarted in $((SECONDS - t)) s"
    full_again "after restarting unbound-$code"

    compose stop "unbound-$code" >/dev/null 2>&1
    readyz=
    until=$((SECONDS + 10))
    while :; do
        readyz=$(curl -s -w ' HTTP %{http_code}' "http://$(holder_ip "$code"):9443/readyz" || true)
        case $readyz in *"HTTP 503") break ;; esac
        [ "$SECONDS" -lt "$until" ] || fail "perspective-$code is still ready 10 s after its Unbound stopped: $readyz"
        sleep 0.5
    done
    echo "compose-e2e:   ok: unbound-$code stopped: perspective-$code /readyz says $readyz"
    compose start "unbound-$code" >/dev/null 2>&1
    full_again "after starting unbound-$code again"

    t=$SECONDS
    compose restart "perspective-$code" >/dev/null 2>&1
    echo "compose-e2e:   perspective-$code restarted in $((SECONDS - t)) s"
    full_again "after restarting perspective-$code"

    t=$SECONDS
    compose restart "demo-web-$code" >/dev/null 2>&1
    echo "compose-e2e:   demo-web-$code restarted in $((SECONDS - t)) s"
    full_again "after restarting demo-web-$code"
done
stop_load restarts
done_step

# ---- a rolling restart under load ---------------------------------------------------------
step "rolling restart under load (20 checks/s, 5 in flight): the coordinator"
start_load coordinator --rate 20 --concurrency 5 --allow-refused
sleep 3
t=$SECONDS
compose restart coordinator >/dev/null 2>&1
echo "compose-e2e:   coordinator restarted in $((SECONDS - t)) s"
until=$((SECONDS + 30))
until curl -sf "$direct/healthz" >/dev/null; do
    [ "$SECONDS" -lt "$until" ] || fail "the coordinator does not answer 30 s after its restart"
    sleep 0.2
done
sleep 3
stop_load coordinator
done_step

step "rolling restart under load (20 checks/s, 5 in flight): every perspective, one at a time"
start_load perspectives --rate 20 --concurrency 5
sleep 3
for code in "${codes[@]}"; do
    t=$SECONDS
    compose restart "perspective-$code" >/dev/null 2>&1
    echo "compose-e2e:   perspective-$code restarted in $((SECONDS - t)) s"
    wait_healthy "perspective-$code" 30
    sleep 2
done
stop_load perspectives
done_step

step "the drains, as the services logged them"
for service in coordinator "${codes[@]/#/perspective-}"; do
    lines=$(docker logs "$(compose ps -q "$service")" 2>&1 |
        jq -cR 'fromjson? | select(.message == "draining" or .message == "drained" or .message == "drain deadline passed: requests cut" or (.message // "" | startswith("shutting down")))
            | {message, listener, connections, requests_in_flight, requests_finished, requests_cut, pre_stop_delay_ms, drain_timeout_ms} | with_entries(select(.value != null))')
    echo "$lines" | sed "s/^/compose-e2e:   $service: /"
    drained=$(echo "$lines" | jq -s '[.[] | select(.message == "drained" and .listener == "api")] | length')
    [ "$drained" -ge 1 ] || fail "$service logged no drain of its API"
    if echo "$lines" | jq -e 'select(.message == "drain deadline passed: requests cut" or ((.requests_cut // 0) > 0))' >/dev/null; then
        fail "$service cut requests in a drain"
    fi
done
echo "compose-e2e:   ok: every drain logged its counts; none cut a request"
done_step

step "the dashboard and alerting rules against the metrics this fleet exports (.ci/monitoring-check.sh)"
curl -sf "http://198.18.53.80:9090/metrics" >"$loads/coordinator.metrics" ||
    fail "cannot scrape the coordinator's /metrics"
curl -sf "http://$(holder_ip us-east-1):9443/metrics" >"$loads/perspective.metrics" ||
    fail "cannot scrape perspective-us-east-1's /metrics"
bash .ci/monitoring-check.sh "$loads/coordinator-before.metrics" "$loads/coordinator.metrics" \
    "$loads/perspective.metrics"
done_step
rm -rf "$loads"
rm -f "$body"

echo "compose-e2e: all checks passed"
