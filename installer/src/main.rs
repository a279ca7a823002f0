//! `rampart-installer`: installs and removes the Rampart service and the app's
//! autostart. The install plan (systemd, launchd, Windows service) is not
//! written yet; until it is, this binary says so instead of doing half a job.

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "rampart-installer",
    version,
    about = "Install or remove the Rampart agent service and the app's autostart"
)]
struct Cli {}

fn main() -> ExitCode {
    Cli::parse();
    eprintln!(
        "rampart-installer {}: installing is not implemented yet. Run the agent with \
         `rampart-agent run` under your service manager, or `rampart-agent run --dev` as yourself.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
