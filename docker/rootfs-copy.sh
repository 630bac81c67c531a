#!/bin/sh
# rootfs-copy DEST FILE...
#
# Copies each executable FILE, and every shared library `ldd` lists for it (the dynamic loader
# included), into DEST under the same paths: the root filesystem of a FROM scratch image that
# runs Debian's dynamically linked binaries (unbound, drill, nsd, mini_httpd) with no shell,
# no package manager and nothing else. Used inside the Debian build stages of
# docker/unbound.Dockerfile and docker/demo.Dockerfile.
set -eu
dest=$1
shift
for file in "$@"; do
    cp -L --parents "$file" "$dest"
    ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
        while read -r lib; do
            [ -e "$dest$lib" ] || cp -L --parents "$lib" "$dest"
        done
done
