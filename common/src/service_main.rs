//! What both services' `main` do alike: telemetry, the configuration file (checked before any
//! port is bound; an unusable one stops the process with one line naming the field and exit
//! status 2), `--check`, the listeners, and serving until SIGTERM or Ctrl-C.

use std::path::Path;
use std::process::ExitCode;

/// A service binary: how to load its configuration, bind and serve.
pub trait Service: Sized {
    /// The loaded configuration (with the secrets it points at).
    type Config;

    /// The binary's name, in telemetry and error lines.
    const NAME: &'static str;

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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", S::NAME);
            ExitCode::FAILURE
        }
    }
}
