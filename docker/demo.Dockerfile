# The compose `demo` profile's servers: an authoritative NSD for demo.test and a tiny web
# server for the acme-http-01 file. Same approach as docker/unbound.Dockerfile: Debian's
# binaries plus the libraries `ldd` lists, FROM scratch, no shell, non-root, the demo data
# (docker/demo/) baked in.
#
#   docker build -f docker/demo.Dockerfile --target demo-nsd -t mpic/demo-nsd:local .
#   docker build -f docker/demo.Dockerfile --target demo-web -t mpic/demo-web:local .
#   (add --build-arg DEBIAN_IMAGE=<local base> with no registry; docker/build-images.sh does)

ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends nsd mini-httpd \
 && rm -rf /var/lib/apt/lists/*
COPY docker/rootfs-copy.sh /usr/local/bin/rootfs-copy
COPY docker/demo/nsd.conf /nsd/etc/nsd/nsd.conf
COPY docker/demo/demo.test.zone /nsd/etc/nsd/zones/demo.test.zone
COPY docker/demo/www/ /web/www/
RUN set -eu; \
    rootfs-copy /nsd /usr/sbin/nsd /usr/sbin/nsd-checkconf /usr/sbin/nsd-checkzone; \
    rootfs-copy /web /usr/sbin/mini_httpd; \
    for r in /nsd /web; do \
        mkdir -p "$r/tmp" "$r/etc"; chmod 1777 "$r/tmp"; \
        printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"; \
    done; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnsd:x:10054:10054:nsd:/nonexistent:/sbin/nologin\n' >/nsd/etc/passwd; \
    printf 'root:x:0:\nnsd:x:10054:\n' >/nsd/etc/group; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nweb:x:10080:10080:web:/nonexistent:/sbin/nologin\n' >/web/etc/passwd; \
    printf 'root:x:0:\nweb:x:10080:\n' >/web/etc/group; \
    chmod -R a+rX /nsd/etc/nsd /web/www; \
    chroot /nsd /usr/sbin/nsd-checkconf /etc/nsd/nsd.conf; \
    chroot /nsd /usr/sbin/nsd-checkzone demo.test /etc/nsd/zones/demo.test.zone

FROM scratch AS demo-nsd
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mpic-demo-nsd" \
      org.opencontainers.image.description="Authoritative NSD for the demo.test zone of the mpic compose demo" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0 AND BSD-3-Clause"
COPY --from=build /nsd/ /
USER 10054:10054
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["/usr/sbin/nsd", "-d", "-c", "/etc/nsd/nsd.conf"]

FROM scratch AS demo-web
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mpic-demo-web" \
      org.opencontainers.image.description="Static web server for the acme-http-01 file of the mpic compose demo" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0 AND BSD-2-Clause"
COPY --from=build /web/ /
USER 10080:10080
EXPOSE 80
# Foreground, loopback only (it shares the network namespace of one perspective), access log
# on stderr.
ENTRYPOINT ["/usr/sbin/mini_httpd", "-D", "-h", "127.0.0.1", "-p", "80", "-d", "/www", "-l", "/dev/stderr", "-T", "utf-8"]
