//! `rampart-agent run` (being written on main; helpers: do not edit).
#[derive(Debug, clap::Args)]
pub struct RunArgs {}
pub fn run(_args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet")
}
