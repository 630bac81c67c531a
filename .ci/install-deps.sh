#!/usr/bin/env bash
# Installs the Debian packages the end-to-end DNS fixtures (tests/src/fixtures.rs), the
# sidecar config check (unbound/unbound.conf) and the pebble-challtestsrv peer tests need.
# Idempotent and fast: when every binary (and the root trust anchor file) is already present,
# it does nothing.
#
#   unbound        unbound, unbound-checkconf                   (the perspective's resolver)
#   dns-root-data  /usr/share/dns/root.key                      (root anchor for the config test)
#   nsd            nsd, nsd-checkconf, nsd-checkzone            (authoritative server for test zones)
#   ldnsutils      ldns-keygen, ldns-signzone                   (sign the test zones)
#   bind9-dnsutils dig                                          (debugging by hand)
#   procps         kill                                         (fixtures stop servers with SIGTERM)
#   pebble         pebble-challtestsrv                          (independent http-01 / tls-alpn-01 peer)
set -euo pipefail

packages=(unbound dns-root-data nsd ldnsutils bind9-dnsutils procps pebble)
binaries=(unbound unbound-checkconf nsd nsd-checkconf nsd-checkzone ldns-keygen ldns-signzone dig kill pebble-challtestsrv)
files=(/usr/share/dns/root.key)

missing=0
for b in "${binaries[@]}"; do
    # nsd and unbound live in /usr/sbin, which is not on every user's PATH.
    if ! type -P "$b" >/dev/null && [ ! -x "/usr/sbin/$b" ]; then
        missing=1
        break
    fi
done
for f in "${files[@]}"; do
    [ -e "$f" ] || missing=1
done

if [ "$missing" -eq 0 ]; then
    echo "install-deps: all test tools already present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}"

# Debian's postinst may try to start the daemons (not on machines without systemd/invoke-rc.d
# policy); the tests run their own instances on loopback ports, so stop any that did start.
for svc in unbound nsd; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
        $SUDO systemctl stop "$svc" || true
    fi
done

for b in "${binaries[@]}"; do
    if ! type -P "$b" >/dev/null && [ ! -x "/usr/sbin/$b" ]; then
        echo "install-deps: $b still missing after install" >&2
        exit 1
    fi
done
echo "install-deps: installed ${packages[*]}"
