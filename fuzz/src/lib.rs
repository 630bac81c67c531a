//! Fuzz and property targets over everything that reads hostile input: request bodies, targets,
//! CAA and persistent-validation records, DNS messages, redirect `Location`s, TLS-ALPN
//! certificates and the YAML configurations.
//!
//! Each target is a function over bytes ([`targets`]) that panics when an invariant breaks.
//! Two engines drive them, both on the stable toolchain:
//!
//! * [`smoke`]: the short run inside `cargo test` — the seed corpus of each target
//!   (`corpus/<target>/`), then a bounded number of seeded random mutations of it;
//! * libFuzzer (`src/bin/libfuzzer.rs`, feature `libfuzzer`): the long, coverage-guided run.
//!
//! README.md in this folder lists the targets, the commands and the figures of the last long
//! run.

pub mod input;
pub mod smoke;
pub mod targets;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the folder of its seeds under `corpus/`, and `MPIC_FUZZ_TARGET` of the
    /// libFuzzer binary.
    pub name: &'static str,
    /// Feeds the bytes to the code under test and checks the invariants; panics on a breach.
    pub run: fn(&[u8]),
    /// Fragments the smoke run's mutations insert (tokens of the grammar under test).
    pub dictionary: &'static [&'static [u8]],
    /// Mutations of the short run in `cargo test`: about 1.5 s of one core in a debug build.
    pub smoke_iterations: u64,
}

/// Every target, in the order of the README.
pub const TARGETS: &[Target] = &[
    Target {
        name: "request_json",
        run: targets::request_json::run,
        dictionary: targets::request_json::DICTIONARY,
        smoke_iterations: 75_000,
    },
    Target {
        name: "target_name",
        run: targets::target_name::run,
        dictionary: targets::target_name::DICTIONARY,
        smoke_iterations: 150_000,
    },
    Target {
        name: "caa_value",
        run: targets::caa_value::run,
        dictionary: targets::caa_value::DICTIONARY,
        smoke_iterations: 300_000,
    },
    Target {
        name: "caa_policy",
        run: targets::caa_policy::run,
        dictionary: targets::caa_value::DICTIONARY,
        smoke_iterations: 300_000,
    },
    Target {
        name: "dns_persistent",
        run: targets::dns_persistent::run,
        dictionary: targets::dns_persistent::DICTIONARY,
        smoke_iterations: 150_000,
    },
    Target {
        name: "dns_answer",
        run: targets::dns_answer::run,
        dictionary: targets::dns_answer::DICTIONARY,
        smoke_iterations: 100_000,
    },
    Target {
        name: "redirect",
        run: targets::redirect::run,
        dictionary: targets::redirect::DICTIONARY,
        smoke_iterations: 150_000,
    },
    Target {
        name: "tls_alpn",
        run: targets::tls_alpn::run,
        dictionary: targets::tls_alpn::DICTIONARY,
        // Each certificate that parses has its self-signature verified, once per target
        // checked: fewer mutations fit in the same time.
        smoke_iterations: 25_000,
    },
    Target {
        name: "config_yaml",
        run: targets::config_yaml::run,
        dictionary: targets::config_yaml::DICTIONARY,
        smoke_iterations: 10_000,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
