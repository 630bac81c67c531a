//! Integration tests of the coordinator: service tests against real perspectives (and
//! deliberately faulty ones) on loopback behind mutual TLS, the end-to-end fleet of real
//! binaries, each perspective with its own `unbound`, and Open MPIC's API compliance suite run
//! offline against such a fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod compliance;
mod drain;
mod e2e;
mod hostile;
mod observability;
mod reload;
mod rules;
mod service;
mod support;
mod telemetry;
