//! `rampart-agent status` (being written on main; helpers: do not edit).
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
pub fn run(_args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("not yet")
}
