//! The long, coverage-guided run: libFuzzer over the target that `MPIC_FUZZ_TARGET` names
//! (fuzz/README.md has the build and run commands).

#![no_main]

use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| (target().run)(data));

fn target() -> &'static mpic_fuzz::Target {
    static TARGET: OnceLock<&'static mpic_fuzz::Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let name = std::env::var("MPIC_FUZZ_TARGET").unwrap_or_default();
        mpic_fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = mpic_fuzz::TARGETS.iter().map(|t| t.name).collect();
            panic!(
                "MPIC_FUZZ_TARGET={name:?}: set it to one of {}",
                names.join(", ")
            )
        })
    })
}
