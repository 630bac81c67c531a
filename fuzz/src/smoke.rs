//! The short run that `cargo test` does for every target: each seed of `corpus/<target>/`,
//! then a fixed number of random mutations of the seeds from a fixed RNG seed, so that a run
//! is the same on every machine and a failure reproduces with the same command.
//!
//! It is not coverage-guided (that is the libFuzzer run's job); it proves on every commit that
//! the seeds still pass and that the neighbourhood of each seed breaks no invariant.
//! `MPIC_FUZZ_ITERATIONS` (default: the target's `smoke_iterations`) and `MPIC_FUZZ_SEED`
//! change the budget and the seed for a longer local run.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};

use crate::Target;

/// The RNG seed when `MPIC_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x6d70_6963_6675_7a7a;

/// Longest input a mutation produces (libFuzzer's run uses the same `-max_len`).
pub const MAX_LEN: usize = 4096;

/// The folder of `target`'s seeds.
pub fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

/// The seeds of `target`, sorted by file name.
///
/// # Panics
///
/// When the folder cannot be read: every target has seeds.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seeds of {target} ({}): {e}", dir.display()));
    let mut seeds: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.file_name().to_string_lossy().into_owned(), bytes))
        })
        .collect();
    seeds.sort();
    seeds
}

/// What one short run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Seeds replayed.
    pub seeds: usize,
    /// Mutated inputs run.
    pub mutations: u64,
}

/// Replays the seeds of `target`, then runs mutations of them; panics with the input that
/// broke an invariant.
pub fn run(target: &Target) -> Report {
    let iterations = env_u64("MPIC_FUZZ_ITERATIONS").unwrap_or(target.smoke_iterations);
    let seed = env_u64("MPIC_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    run_with(target, iterations, seed)
}

/// [`run`] with an explicit budget and RNG seed.
pub fn run_with(target: &Target, iterations: u64, seed: u64) -> Report {
    let seeds = seeds(target.name);
    assert!(!seeds.is_empty(), "{}: no seeds", target.name);
    for (name, bytes) in &seeds {
        attempt(target, bytes, &format!("seed {name}"));
    }
    let mut rng = Rng::new(seed ^ fnv1a(target.name.as_bytes()));
    let mut input = Vec::with_capacity(MAX_LEN);
    for i in 0..iterations {
        input.clear();
        // One time in sixteen, start from nothing: the grammar's smallest inputs.
        if rng.below(16) != 0 {
            input.extend_from_slice(&seeds[rng.below(seeds.len())].1);
        }
        let rounds = 1 + rng.below(4);
        for _ in 0..rounds {
            mutate(&mut input, &mut rng, &seeds, target.dictionary);
        }
        input.truncate(MAX_LEN);
        attempt(target, &input, &format!("mutation {i} (seed {seed:#x})"));
    }
    Report {
        seeds: seeds.len(),
        mutations: iterations,
    }
}

/// Runs one input; on a panic, prints it in a form that can be pasted into a regression test.
fn attempt(target: &Target, input: &[u8], what: &str) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        eprintln!(
            "fuzz target {} failed on {what}; input ({} bytes): b\"{}\"",
            target.name,
            input.len(),
            input.escape_ascii()
        );
        resume_unwind(panic);
    }
}

/// One random edit of `input`.
fn mutate(input: &mut Vec<u8>, rng: &mut Rng, seeds: &[(String, Vec<u8>)], dictionary: &[&[u8]]) {
    const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xff \t\n\r.;:=*-_[]%\\\"{}";
    let len = input.len();
    match rng.below(10) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = rng.byte();
        }
        2 => {
            let at = rng.below(len + 1);
            input.insert(at, rng.byte());
        }
        3 if len > 0 => {
            let from = rng.below(len);
            let to = from + 1 + rng.below((len - from).min(16));
            input.drain(from..to);
        }
        4 if len > 0 => {
            let from = rng.below(len);
            let to = from + 1 + rng.below((len - from).min(32));
            let chunk = input[from..to].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, chunk);
        }
        5 | 6 if !dictionary.is_empty() => {
            let token = dictionary[rng.below(dictionary.len())];
            let at = rng.below(len + 1);
            if rng.below(2) == 0 || len == 0 {
                input.splice(at..at, token.iter().copied());
            } else {
                let end = (at + token.len()).min(len);
                input.splice(at..end, token.iter().copied());
            }
        }
        7 => {
            let other = &seeds[rng.below(seeds.len())].1;
            let keep = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        8 if len > 0 => input.truncate(rng.below(len)),
        _ => {
            let at = rng.below(len + 1);
            input.insert(at, INTERESTING[rng.below(INTERESTING.len())]);
        }
    }
}

/// xorshift64*: small, fast and the same everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        // The remainder of a u64 by a usize fits in a usize.
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}
