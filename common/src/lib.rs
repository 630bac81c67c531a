//! Shared pieces of the MPIC service: the wire contract of `docs/api.md`, target
//! normalisation, error-type strings, configuration loading and TLS set-up.

pub mod api;
pub mod config;
pub mod dcv;
pub mod devcerts;
pub mod digest;
pub mod http;
pub mod method_labels;
pub mod metrics;
pub mod operations;
pub mod outcome;
pub mod reload;
pub mod serve;
pub mod service_main;
pub mod strict_json;
pub mod target;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod validate;

#[cfg(test)]
mod golden_tests;
