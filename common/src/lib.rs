//! Shared pieces of the MPIC service: the wire contract of `docs/api.md`, target
//! normalisation, error-type strings, configuration loading and TLS set-up.

pub mod target;
