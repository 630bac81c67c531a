//! The targets, one file each. Every target takes any bytes, runs them through the code a
//! hostile client or server reaches, and panics when an invariant named in its file breaks.

pub mod caa_policy;
pub mod caa_value;
pub mod config_yaml;
pub mod dns_answer;
pub mod dns_persistent;
pub mod redirect;
pub mod request_json;
pub mod target_name;
pub mod tls_alpn;
