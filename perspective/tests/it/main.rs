//! Integration tests of the perspective: component tests of each check against the test kit's
//! DNS server, service tests through the router, and end-to-end tests of the real binary
//! resolving through a real Unbound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod caa_component;
mod dcv_dns;
mod dcv_dnssec;
mod dcv_tls_alpn;
mod dcv_web;
mod e2e;
mod malformed;
mod operations;
mod reload;
mod support;
