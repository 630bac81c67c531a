#!/usr/bin/env bash
# Builds every mpic image on a Docker engine that cannot pull anything (no registry):
#
#   1. a Debian bookworm base image from debootstrap (docker/make-base-image.sh; once),
#   2. the static Rust binaries on the host:
#        RUSTFLAGS="-C target-feature=+crt-static --cfg getrandom_backend=\"linux_getrandom\"" \
#        cargo build --release --target x86_64-unknown-linux-gnu --locked
#      staged (stripped) in docker/prebuilt/,
#   3. docker build of the same Dockerfiles a registry user builds, with
#        --build-arg DEBIAN_IMAGE=<base> --build-arg RUST_IMAGE=<base> --build-arg BINARIES=host
#        (and SOURCES=docker/prebuilt/README.md: nothing to compile, nothing to copy)
#
# Images (tagged :local and :<workspace version>): mpic/perspective, mpic/coordinator, mpic/cli,
# mpic/unbound, mpic/demo-nsd, mpic/demo-web — the names compose.yaml uses.
#
#   docker/build-images.sh              everything
#   MPIC_SKIP_CARGO=1 docker/build-images.sh   reuse the binaries already in docker/prebuilt/
#
# It checks first what every step needs (the engine, cargo and its target) and makes the base
# image before compiling anything, so that a step that cannot succeed fails in seconds; a
# Debian-based image that fails while cargo compiles stops the compilation.
#
# Environment: MPIC_BASE_IMAGE (default mpic-local/debian:bookworm), MPIC_TAG (default local),
# CARGO_TARGET_DIR (default target). Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."

base=${MPIC_BASE_IMAGE:-mpic-local/debian:bookworm}
tag=${MPIC_TAG:-local}
target_dir=${CARGO_TARGET_DIR:-target}
triple=x86_64-unknown-linux-gnu
version=$(awk '/^\[workspace.package\]/ { p = 1; next } /^\[/ { p = 0 } p && $1 == "version" { gsub(/"/, "", $3); print $3; exit }' Cargo.toml)
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain 2>/dev/null | head -n1)" ]; then revision="$revision-dirty"; fi
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)

step_start=0
step() {
    step_start=$(date +%s)
    echo "build-images: $*"
}
step_done() {
    echo "build-images:   done in $(($(date +%s) - step_start)) s"
}

# docker build, quiet unless it fails (the legacy builder's output is long).
build() {
    local log
    log=$(mktemp)
    if ! docker build --force-rm "$@" >"$log" 2>&1; then
        grep -v -e 'DEPRECATED: The legacy builder' -e 'Install the buildx component' -e 'docs.docker.com/go/buildx' "$log" | tail -n 40 >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

total_start=$(date +%s)
common=(--build-arg "DEBIAN_IMAGE=$base" --build-arg "VERSION=$version"
    --build-arg "REVISION=$revision" --build-arg "CREATED=$created")

fail() {
    echo "build-images: $*" >&2
    exit 1
}

# ---- Before anything slow: what every later step needs --------------------------------------
# A missing tool or an unreachable engine is said now, not after minutes of compiling.
step "checking the tools"
command -v docker >/dev/null || fail "docker is not installed"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info): start it, or run as a user allowed to use it"
if [ "${MPIC_SKIP_CARGO:-0}" != 1 ]; then
    command -v cargo >/dev/null || fail "cargo is not installed (https://rustup.rs), or set MPIC_SKIP_CARGO=1 with binaries in docker/prebuilt/"
    if command -v rustup >/dev/null && ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
        fail "the Rust target $triple is not installed: rustup target add $triple"
    fi
fi
step_done
# The base image, before compiling: it needs root, debootstrap (installed with apt, which
# waits for dpkg's lock when another install holds it) and the host's Debian mirror, and any
# of them missing makes the whole build useless.
step "base image $base (debootstrap + docker import; skipped when present)"
bash docker/make-base-image.sh "$base" || fail "the base image $base could not be made (above); nothing was compiled"
step_done

# The Debian side (network- and disk-bound) runs in the background while cargo compiles
# (CPU-bound): the images that need no Rust binary, then the Debian stage of
# docker/Dockerfile (its CA bundle and passwd), so that the Rust images only add their
# binaries at the end. If it fails, the compilation is stopped at once.
debian_side() {
    step "mpic/unbound:$tag (docker/unbound.Dockerfile)"
    build -f docker/unbound.Dockerfile "${common[@]}" -t "mpic/unbound:$tag" -t "mpic/unbound:$version" .
    step_done
    for target in demo-nsd demo-web; do
        step "mpic/$target:$tag (docker/demo.Dockerfile)"
        build -f docker/demo.Dockerfile --target "$target" "${common[@]}" \
            -t "mpic/$target:$tag" -t "mpic/$target:$version" .
        step_done
    done
    step "the Debian stage of docker/Dockerfile (CA bundle, passwd)"
    build -f docker/Dockerfile --target runtime-files "${common[@]}" .
    step_done
}
echo "build-images: in the background: the Unbound and demo images"
debian_log=$(mktemp)
debian_side >"$debian_log" 2>&1 &
debian_pid=$!
debian_failed() {
    echo "build-images: the Debian side's log:" >&2
    sed 's/^/  /' "$debian_log" >&2
    rm -f "$debian_log"
    fail "a Debian-based image failed (above)"
}

if [ "${MPIC_SKIP_CARGO:-0}" != 1 ]; then
    step "static binaries: cargo build --release --target $triple (crt-static)"
    RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
        cargo build --release --locked --target "$triple" \
        --bin mpic-perspective --bin mpic-coordinator --bin mpic &
    cargo_pid=$!
    # Whichever ends first: a failed Debian side stops the compilation rather than let it run
    # for minutes towards a build that cannot finish.
    ended=
    status=0
    wait -n -p ended "$cargo_pid" "$debian_pid" || status=$?
    if [ "$ended" = "$debian_pid" ]; then
        debian_pid=
        if [ "$status" -ne 0 ]; then
            kill "$cargo_pid" 2>/dev/null || true
            wait "$cargo_pid" 2>/dev/null || true
            debian_failed
        fi
        wait "$cargo_pid" || fail "cargo build failed"
    elif [ "$status" -ne 0 ]; then
        fail "cargo build failed"
    fi
    for b in mpic-perspective mpic-coordinator mpic; do
        install -m 0755 "$target_dir/$triple/release/$b" "docker/prebuilt/$b"
        strip "docker/prebuilt/$b"
    done
    step_done
fi
for b in mpic-perspective mpic-coordinator mpic; do
    if [ ! -x "docker/prebuilt/$b" ]; then
        fail "docker/prebuilt/$b is missing (run without MPIC_SKIP_CARGO)"
    fi
done

step "waiting for the background builds"
if [ -n "$debian_pid" ] && ! wait "$debian_pid"; then
    debian_failed
fi
sed 's/^/  /' "$debian_log"
rm -f "$debian_log"
step_done

for target in perspective coordinator cli; do
    step "mpic/$target:$tag (docker/Dockerfile, BINARIES=host)"
    build -f docker/Dockerfile --target "$target" "${common[@]}" \
        --build-arg "RUST_IMAGE=$base" --build-arg BINARIES=host \
        --build-arg SOURCES=docker/prebuilt/README.md \
        -t "mpic/$target:$tag" -t "mpic/$target:$version" .
    step_done
done

docker images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
    grep -E "^mpic/[a-z-]+:$tag\b" | sed 's/^/build-images:   /'
echo "build-images: all images built in $(($(date +%s) - total_start)) s"
