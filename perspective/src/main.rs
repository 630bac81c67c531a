//! `mpic-perspective`: serve one MPIC perspective.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mpic_perspective::Perspective;
use mpic_perspective::config::PerspectiveConfig;

/// Serve one MPIC network perspective (CAA and domain-control checks) over mutual TLS.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The YAML configuration file.
    #[arg(long, env = "MPIC_CONFIG")]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let _telemetry = mpic_common::telemetry::init("mpic-perspective");
    let args = Args::parse();
    let config = match PerspectiveConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mpic-perspective: {e}");
            return ExitCode::from(2);
        }
    };
    let perspective = match Perspective::bind(&config).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mpic-perspective: {e:#}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    match perspective.local_addr() {
        Ok(addr) => tracing::info!(
            perspective.code = %config.perspective.code,
            listen = %addr,
            resolver = %config.resolver.address,
            "perspective serving"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the bound address"),
    }
    match perspective
        .serve(mpic_common::serve::shutdown_signal())
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpic-perspective: {e}");
            ExitCode::FAILURE
        }
    }
}
