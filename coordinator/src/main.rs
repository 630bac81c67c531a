//! `mpic-coordinator`: serve the MPIC API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mpic_coordinator::config::CoordinatorConfig;
use mpic_coordinator::{Coordinator, Secrets};

/// Serve the MPIC API (POST /mpic): cohorts, quorum and fan-out to the perspectives.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The YAML configuration file.
    #[arg(long, env = "MPIC_CONFIG")]
    config: PathBuf,
    /// Check the configuration (and the secrets it points at) and exit.
    #[arg(long)]
    check: bool,
}

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
    let _telemetry = mpic_common::telemetry::init("mpic-coordinator");
    let args = Args::parse();
    let config = match CoordinatorConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpic-coordinator: {e}");
            return ExitCode::from(2);
        }
    };
    let secrets = match Secrets::load(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mpic-coordinator: {}: {e}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let coordinator = match Coordinator::bind(&config, secrets).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpic-coordinator: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    if let Ok(addr) = coordinator.local_addr() {
        tracing::info!(listen = %addr, perspectives = config.perspectives.len(), "coordinator serving");
    }
    match coordinator
        .serve(mpic_common::serve::shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpic-coordinator: {e}");
            ExitCode::FAILURE
        }
    }
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
