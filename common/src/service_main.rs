//! What both services' `main` do alike: telemetry, the configuration file (checked before any
//! port is bound; an unusable one stops the process with one line naming the field and exit
//! status 2), `--check`, the listeners, and serving until SIGTERM or Ctrl-C, then shutting
//! down as the configuration's `shutdown:` says (`serve::Lifecycle`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _, Parser};

/// The arguments of a service binary.
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

/// The whole `main` of a service binary: parses `--config` (or `MPIC_CONFIG`) and `--check`,
/// then [`run`]s `S`.
pub async fn main<S: Service>() -> ExitCode {
    let matches = Args::command()
        .name(S::NAME)
        .about(S::ABOUT)
        .version(env!("CARGO_PKG_VERSION"))
        .get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    run::<S>(&args.config, args.check).await
}

/// A service binary: how to load its configuration, bind and serve.
pub trait Service: Sized {
    /// The loaded configuration (with the secrets it points at).
    type Config;

    /// The binary's name, in telemetry and error lines.
    const NAME: &'static str;

    /// What it does, for `--help`.
    const ABOUT: &'static str;

    /// Reads and checks the configuration file.
    fn load(path: &Path) -> Result<Self::Config, String>;

    /// Checks what needs the configuration as a whole and binds the listeners.
    fn bind(config: Self::Config) -> impl Future<Output = Result<Self, String>>;

    /// Logs that it serves, and where.
    fn announce(&self);

    /// Serves until `shutdown` completes, then drains.
    fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>>;
}

/// Runs `S` with the configuration at `config`: with `check`, only loads, binds and says so.
pub async fn run<S: Service>(config: &Path, check: bool) -> ExitCode {
    let _telemetry = crate::telemetry::init(S::NAME);
    let loaded = match S::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            return ExitCode::from(2);
        }
    };
    let service = match S::bind(loaded).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            return ExitCode::from(2);
        }
    };
    if check {
        println!("configuration ok");
        return ExitCode::SUCCESS;
    }
    service.announce();
    match service.serve(crate::serve::shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            ExitCode::FAILURE
        }
    }
}
