//! `mpic-perspective`: serve one MPIC perspective.

use std::process::ExitCode;

use mpic_perspective::Perspective;

#[tokio::main]
async fn main() -> ExitCode {
    mpic_common::service_main::main::<Perspective>().await
}
