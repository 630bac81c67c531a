//! `mpic-coordinator`: serve the MPIC API.

use std::process::ExitCode;

use mpic_coordinator::Coordinator;

/// jemalloc with one arena that hands freed pages back to the system at once (built in by
/// `.cargo/config.toml`). A request's allocations move between tokio workers with its task, so
/// the system allocator's per-thread arenas each keep free memory that the others cannot use;
/// one arena with no kept pages holds what is in use and little more (the measurements are in
/// bench/README.md).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    mpic_common::service_main::main::<Coordinator>().await
}

#[cfg(all(test, feature = "jemalloc"))]
mod tests {
    /// The setting is built into the allocator (a build without `.cargo/config.toml`'s
    /// environment would run jemalloc's default of four arenas per CPU).
    #[test]
    fn the_allocator_runs_one_arena_and_keeps_no_free_pages() {
        // The string comes back with its C terminator.
        let conf = tikv_jemalloc_ctl::config::malloc_conf::read();
        assert_eq!(
            conf.ok().map(|c| c.trim_end_matches('\0')),
            Some("narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0"),
            "config.malloc_conf"
        );
        let narenas = tikv_jemalloc_ctl::opt::narenas::read();
        assert_eq!(narenas.ok(), Some(1), "opt.narenas");
    }
}
