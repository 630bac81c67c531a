#!/usr/bin/env bash
# Builds the libFuzzer binary of the long run on the stable toolchain: SanitizerCoverage
# instrumentation (what cargo-fuzz passes, without its nightly-only sanitizer flags), the
# `fuzz` profile, the host triple named explicitly so build scripts and proc macros stay
# uninstrumented. No `--cfg fuzzing`: the code under
# test is the code that ships. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares" \
  cargo build --locked --profile fuzz --target "$triple" -p mpic-fuzz --features libfuzzer --bin mpic-fuzz >&2
echo "${CARGO_TARGET_DIR:-target}/$triple/fuzz/mpic-fuzz"
