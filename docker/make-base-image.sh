#!/usr/bin/env bash
# Makes a Debian bookworm base image on a Docker engine that cannot pull anything: a
# `debootstrap --variant=minbase` root filesystem imported with `docker import`.
#
#   docker/make-base-image.sh [IMAGE]        (default mpic-local/debian:bookworm)
#
# The Dockerfiles take it as `--build-arg DEBIAN_IMAGE=IMAGE` (and RUST_IMAGE for the
# host-binaries path), in place of the official `debian:bookworm-slim`. The Debian mirror is
# read from this machine's own apt sources at run time and written into the image's apt
# sources, so `apt-get install` works in the Dockerfiles exactly as in the official image.
# Nothing is done when IMAGE already exists (delete it to rebuild: `docker rmi IMAGE`).
# Needs root (debootstrap) and about 70 s.
set -euo pipefail

image=${1:-mpic-local/debian:bookworm}
suite=bookworm

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "make-base-image: $image already exists"
    exit 0
fi

# The first http(s) URI of the host's apt sources whose suite is "$suite" (deb822 .sources
# files first, then one-line .list files), and the same for "$suite-security".
apt_uri() {
    local want=$1 f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v want="$want" '
            function flush() { if (uri != "" && types ~ /(^| )deb( |$)/) { n = split(suites, s, " "); for (i = 1; i <= n; i++) if (s[i] == want) { print uri; exit } } uri = ""; suites = ""; types = "" }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "types:" { $1 = ""; types = $0 }
            tolower($1) == "uris:" { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v want="$want" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == want) { print $i; exit } }' "$f"
    done
}

mirror=$(apt_uri "$suite" | head -n1)
security=$(apt_uri "$suite-security" | head -n1)
if [ -z "$mirror" ]; then
    echo "make-base-image: no apt source for suite $suite in /etc/apt (sources.list or sources.list.d)" >&2
    exit 1
fi

if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "make-base-image: debootstrap is not installed and installing it needs root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Another install may hold dpkg's lock (unattended upgrades, a parallel CI step): wait
    # for it rather than fail.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends debootstrap >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
    echo "make-base-image: debootstrap needs root (sudo docker/build-images.sh)" >&2
    exit 1
fi
PATH=$PATH:/usr/sbin:/sbin

work=$(mktemp -d "${TMPDIR:-/tmp}/mpic-rootfs.XXXXXX")
root=$work/root
# debootstrap mounts proc and sys inside the root while it works: never delete through a
# mount that is still there.
unmount_all() {
    local m
    for m in dev/pts dev proc sys; do
        if mountpoint -q "$root/$m" 2>/dev/null; then umount -l "$root/$m" || true; fi
    done
}
trap 'unmount_all; rm -rf --one-file-system "$work"' EXIT

echo "make-base-image: debootstrap --variant=minbase $suite from the host's apt mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

{
    echo "deb $mirror $suite main"
    echo "deb $mirror $suite-updates main"
    if [ -n "$security" ]; then echo "deb $security $suite-security main"; fi
} >"$root/etc/apt/sources.list"
# Like the official image: no caches or documentation left behind by apt in later layers.
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
EOF
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$root/etc/apt/apt.conf.d/docker-no-recommends"
# No daemon may start during a package's postinst inside a build.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
unmount_all
rm -rf --one-file-system "${root:?}"/var/lib/apt/lists/* "${root:?}"/var/cache/apt/*.bin \
    "${root:?}"/var/cache/apt/archives/*.deb "${root:?}"/var/log/* "${root:?}"/run/*
# Docker provides /dev, /proc and /sys in every container; the image carries empty directories.
rm -rf --one-file-system "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/*

tar --numeric-owner -C "$root" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --message "debootstrap --variant=minbase $suite" \
        - "$image" >/dev/null
echo "make-base-image: imported $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
