//! `mpic-perspective`: serve one MPIC perspective.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mpic_perspective::Perspective;

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
    let args = Args::parse();
    mpic_common::service_main::run::<Perspective>(&args.config, args.check).await
}
