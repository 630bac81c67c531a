//! Test kit for the MPIC workspace: real protocol peers on loopback.
//!
//! - [`dns`]: an in-process DNS server built on hickory's types that stands in for a
//!   perspective's resolver in component tests (inline records, recorded queries, misbehaviour
//!   on purpose).
//! - [`fixtures`]: real `nsd` and `unbound` processes, a DNSSEC-signed test zone, and the
//!   configuration overlays the end-to-end tests use.

pub mod dns;
pub mod fixtures;
pub mod process;
