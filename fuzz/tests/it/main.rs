//! The short run of every fuzz target (seeds, then seeded mutations: `mpic_fuzz::smoke`), and
//! the checks that keep the seed corpus honest.

#![allow(clippy::unwrap_used, reason = "tests")]

mod seeds;

use mpic_fuzz::{TARGETS, smoke};

fn short_run(name: &str) {
    let target = mpic_fuzz::target(name).unwrap();
    let report = smoke::run(target);
    assert!(report.seeds > 0, "{name}");
}

#[test]
fn request_json() {
    short_run("request_json");
}

#[test]
fn target_name() {
    short_run("target_name");
}

#[test]
fn caa_value() {
    short_run("caa_value");
}

#[test]
fn caa_policy() {
    short_run("caa_policy");
}

#[test]
fn dns_persistent() {
    short_run("dns_persistent");
}

#[test]
fn dns_answer() {
    short_run("dns_answer");
}

#[test]
fn redirect() {
    short_run("redirect");
}

#[test]
fn tls_alpn() {
    short_run("tls_alpn");
}

#[test]
fn config_yaml() {
    short_run("config_yaml");
}

/// Each target has a line in the README, and a test above (the list is the same).
#[test]
fn every_target_is_documented() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for target in TARGETS {
        assert!(
            readme.contains(&format!("| `{}` |", target.name)),
            "fuzz/README.md has no line for {}",
            target.name
        );
    }
}
