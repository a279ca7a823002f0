//! `rampart-agent policy ...`.
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force and where it came from.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print `{"source": ..., "policy": {...}}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Show(_args) => anyhow::bail!("not yet"),
    }
}
