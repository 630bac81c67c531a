//! Test kit for the MPIC workspace: real protocol peers on loopback.
//!
//! - [`dns`]: an in-process DNS server built on hickory's types that stands in for a
//!   perspective's resolver in component tests (inline records, recorded queries, misbehaviour
//!   on purpose).
//! - [`fixtures`]: real `nsd` and `unbound` processes, a DNSSEC-signed test zone, and the
//!   configuration overlays the end-to-end tests use.
//! - [`web`]: HTTP, HTTPS and TLS-ALPN servers for the HTTP and TLS-ALPN methods (routes,
//!   redirects, misbehaviour on purpose, rcgen challenge certificates), and
//!   `pebble-challtestsrv` driven through its management API.
//! - [`tls_probe`]: one request over a fresh TLS connection, saying which certificate the
//!   server presented.
//! - [`volume`]: a directory updated as Kubernetes updates a mounted Secret (a `..data`
//!   symlink swapped atomically), for the reload tests.
//! - [`relay`]: a TCP relay with a switchable backend and a latency, jitter and bandwidth per
//!   direction, standing in for a load balancer during a rolling restart or for distance.
//! - [`dns_relay`]: a UDP (and TCP) relay in front of a DNS server that delays, jitters and
//!   drops datagrams, counting what it forwarded and dropped.
//! - [`impair`]: the delay, jitter, bandwidth and loss both relays apply.

pub mod dns;
pub mod dns_relay;
pub mod fixtures;
pub mod hostile;
pub mod impair;
pub mod process;
pub mod relay;
pub mod temp;
pub mod tls_probe;
pub mod volume;
pub mod web;
