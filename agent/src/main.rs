//! `rampart-agent`: the service (`run`) and support's command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rampart_agent::cli;

#[derive(Debug, Parser)]
#[command(
    name = "rampart-agent",
    version,
    about = "Rampart endpoint agent: MFA enrollment, clock and policy checks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent service in the foreground.
    Run(cli::run::RunArgs),
    /// Ask the running agent how this device is doing.
    Status(cli::status::StatusArgs),
    /// Change the running agent's log level (an administrator or the agent's user).
    LogLevel(cli::log_level::LogLevelArgs),
    /// Policy: what is in force, and IT's tools to write and sign it.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Check this device's clock against NTP servers now (no agent needed).
    CheckClock(cli::check_clock::CheckClockArgs),
    /// Check everything support would check, one line each (exit 0/1/2).
    Doctor(cli::doctor::DoctorArgs),
    /// Write a support bundle (.tar.gz) with no secrets in it; --list first.
    Diagnose(cli::diagnose::DiagnoseArgs),
    /// Update this binary from the release feed in the install config.
    Update(cli::update::UpdateArgs),
    /// Write the man pages (for packaging).
    #[command(hide = true)]
    Man(cli::man::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::run(args),
        Command::Status(args) => cli::status::run(args),
        Command::LogLevel(args) => cli::log_level::run(args),
        Command::Policy(command) => cli::policy::run(command),
        Command::CheckClock(args) => cli::check_clock::run(args),
        Command::Doctor(args) => cli::doctor::run(args),
        Command::Diagnose(args) => cli::diagnose::run(args),
        Command::Update(args) => cli::update::run(args),
        Command::Man(args) => {
            use clap::CommandFactory;
            cli::man::write(Cli::command(), &args.dir).map(|_| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rampart-agent: {err:#}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
