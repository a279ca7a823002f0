//! `rampart-agent policy ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use rampart_shared::ipc::{Request, Response};
use serde_json::json;

use crate::ipc::client::{Client, ClientError};
use crate::paths::default_client_socket;

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
    /// The agent's socket (default: $RAMPART_SOCKET, your dev agent, or the service).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Show(args) => show(args),
    }
}

fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let socket = args.socket.unwrap_or_else(default_client_socket);
    let reply = super::block_on(async {
        let mut client = Client::connect(&socket, super::CLIENT_NAME).await?;
        client.request(Request::PolicyShow).await
    })?;
    let (source, policy) = match reply {
        Ok(Response::Policy { source, policy }) => (source, policy),
        Ok(other) => bail!("unexpected reply from the agent: {other:?}"),
        Err(err @ (ClientError::NotRunning { .. } | ClientError::Connect { .. })) => {
            eprintln!("rampart-agent: {err}");
            return Ok(ExitCode::from(super::status::EXIT_UNREACHABLE));
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"source": source, "policy": policy}))?
        );
    } else {
        println!(
            "Policy in force: {} (serial {})",
            source.label(),
            policy.serial
        );
        println!("{}", serde_json::to_string_pretty(&policy)?);
    }
    Ok(ExitCode::SUCCESS)
}
