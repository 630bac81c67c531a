# The Unbound sidecar: Debian's unbound 1.17 with the production configuration
# (unbound/unbound.conf, verbatim) in an otherwise empty image — the binary, the libraries `ldd`
# lists, the root trust anchor, `drill` for the health check and `cp` for seeding the anchor
# into an empty volume (a Kubernetes init container). No shell, no package manager, runs as
# uid 10053.
#
#   docker build -f docker/unbound.Dockerfile -t mpic/unbound:local .                 (registry)
#   docker build -f docker/unbound.Dockerfile --build-arg DEBIAN_IMAGE=<local base> ...  (none;
#   docker/build-images.sh makes the base with debootstrap)
#
# Configurations in the image:
#   /etc/unbound/unbound.conf        the production file, verbatim (the default command)
#   /etc/unbound/unbound-extra.conf  the same plus `include-toplevel: /etc/unbound/extra.d/*.conf`:
#                                    mount additions there (the compose demo's stub zone, a
#                                    Helm value, `do-ip6: no` for a pod without IPv6 loopback)
#
# Port 53 as a non-root user: give the network namespace
# `net.ipv4.ip_unprivileged_port_start=53` (a namespaced sysctl, "safe" in Kubernetes), or
# start it as root (`--user 0`, Unbound then drops to uid 10053 itself).
# The production file also listens on ::1: Docker disables IPv6 in containers unless asked,
# so set `net.ipv6.conf.lo.disable_ipv6=0` on the namespace (compose.yaml does) or add
# `do-ip6: no` through extra.d.
# /var/lib/unbound holds the RFC 5011-maintained root anchor and must stay writable by uid
# 10053: a named Docker volume mounted there starts as a copy of the image's (seeded) anchor;
# an empty one (Kubernetes emptyDir) is seeded with
#   /usr/bin/cp /usr/share/dns/root.key /var/lib/unbound/root.key

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends unbound dns-root-data ldnsutils \
 && rm -rf /var/lib/apt/lists/*
COPY docker/rootfs-copy.sh /usr/local/bin/rootfs-copy
COPY unbound/unbound.conf /rootfs/etc/unbound/unbound.conf
RUN set -eu; \
    rootfs-copy /rootfs /usr/sbin/unbound /usr/sbin/unbound-checkconf /usr/bin/drill /usr/bin/cp; \
    mkdir -p /rootfs/var/lib/unbound /rootfs/usr/share/dns /rootfs/etc/unbound/extra.d /rootfs/tmp; \
    cp /usr/share/dns/root.key /usr/share/dns/root.ds /usr/share/dns/root.hints /rootfs/usr/share/dns/; \
    cp /usr/share/dns/root.key /rootfs/var/lib/unbound/root.key; \
    { cat /rootfs/etc/unbound/unbound.conf; \
      printf '\n# Added by the mpic image: site additions, e.g. the compose demo stub zone.\ninclude-toplevel: "/etc/unbound/extra.d/*.conf"\n'; \
    } >/rootfs/etc/unbound/unbound-extra.conf; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nunbound:x:10053:10053:unbound:/var/lib/unbound:/sbin/nologin\n' >/rootfs/etc/passwd; \
    printf 'root:x:0:\nunbound:x:10053:\n' >/rootfs/etc/group; \
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >/rootfs/etc/nsswitch.conf; \
    chown -R 10053:10053 /rootfs/var/lib/unbound; \
    chmod 1777 /rootfs/tmp; \
    chroot /rootfs /usr/sbin/unbound-checkconf /etc/unbound/unbound.conf; \
    chroot /rootfs /usr/sbin/unbound-checkconf /etc/unbound/unbound-extra.conf; \
    chroot /rootfs /usr/bin/drill -v >/dev/null

FROM scratch AS unbound
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mpic-unbound" \
      org.opencontainers.image.description="DNSSEC-validating Unbound sidecar for one MPIC perspective (one per perspective, never shared)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0 AND BSD-3-Clause"
COPY --from=build /rootfs/ /
USER 10053:10053
EXPOSE 53/udp 53/tcp
# Unbound answers `localhost.` itself (RFC 6761 local zone): proves the resolver serves
# without depending on the Internet being reachable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/bin/drill", "-Q", "localhost.", "@127.0.0.1", "A"]
ENTRYPOINT ["/usr/sbin/unbound", "-d", "-p"]
CMD ["-c", "/etc/unbound/unbound.conf"]
