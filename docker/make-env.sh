#!/usr/bin/env bash
# Writes the .env that compose.yaml reads: a fresh random API key and cohort hash secret, and
# COMPOSE_PROFILES=demo (the demo profile and its configurations).
#
#   docker/make-env.sh              write ./.env (mode 0600; refuses to overwrite one)
#   docker/make-env.sh --no-demo    the same without the demo profile
#   docker/make-env.sh --example    print .env.example (placeholders, no secret)
#
# The key is 32 random bytes in hex; give it to your CA backend as `Authorization: Bearer <key>`.
# Several keys (rotation): MPIC_API_KEYS=key1,key2.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1
example=0
for arg in "$@"; do
    case $arg in
    --no-demo) demo=0 ;;
    --example) example=1 ;;
    *)
        echo "usage: docker/make-env.sh [--no-demo] [--example]" >&2
        exit 2
        ;;
    esac
done

random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

render() {
    local key=$1 secret=$2 profiles=$3
    cat <<EOF
# Environment of compose.yaml (docker compose reads .env next to it). Never commit .env:
# it holds the API key. Regenerate with docker/make-env.sh; restart the coordinator after a
# change (docker compose up -d coordinator).

# The demo profile: an authoritative NSD for demo.test and a web server next to each
# perspective; the same variable selects the demo configurations (docker/compose/demo/).
# Remove the line (or leave it empty) for the fleet without the demo.
COMPOSE_PROFILES=$profiles

# API keys the coordinator accepts (comma-separated, each at least 16 characters).
MPIC_API_KEYS=$key

# Secret of the keyed hash that picks each target's cohort (at least 16 bytes).
MPIC_HASH_SECRET=$secret

# Where the coordinator's API is published on the host (default 127.0.0.1:8080).
#MPIC_BIND=127.0.0.1
#MPIC_PORT=8080

# Image tag (docker/build-images.sh tags :local) and log level.
#MPIC_TAG=local
#RUST_LOG=info
EOF
}

if [ "$example" = 1 ]; then
    {
        echo "# Example only: run docker/make-env.sh to write a .env with fresh secrets. The empty"
        echo "# values below make docker compose stop with a message naming the variable."
        render "" "" demo
    }
    exit 0
fi

if [ -e .env ]; then
    echo "make-env: .env already exists; remove it first to make a new one" >&2
    exit 1
fi
profiles=
[ "$demo" = 1 ] && profiles=demo
umask 077
render "$(random_hex)" "$(random_hex)" "$profiles" >.env
echo "make-env: wrote .env (COMPOSE_PROFILES=${profiles:-<none>}); the API key is MPIC_API_KEYS in it"
