//! `rampart-agent log-level LEVEL`: change the running agent's log level, for
//! support to capture detail without a restart. Root or the agent's own user.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use rampart_shared::ipc::{LogLevel, Request, Response};

use crate::ipc::client::Client;
use crate::paths::default_client_socket;

#[derive(Debug, clap::Args)]
pub struct LogLevelArgs {
    #[arg(value_enum)]
    pub level: Level,
    /// The agent's socket (default: $RAMPART_SOCKET, your dev agent, or the service).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Error => Self::Error,
            Level::Warn => Self::Warn,
            Level::Info => Self::Info,
            Level::Debug => Self::Debug,
            Level::Trace => Self::Trace,
        }
    }
}

pub fn run(args: LogLevelArgs) -> anyhow::Result<ExitCode> {
    let socket = args.socket.unwrap_or_else(default_client_socket);
    let level = LogLevel::from(args.level);
    let reply = super::block_on(async {
        let mut client = Client::connect(&socket, super::CLIENT_NAME).await?;
        client.request(Request::SetLogLevel { level }).await
    })??;
    match reply {
        Response::Accepted => {
            outln!("agent log level is now {}", level.as_str())?;
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unexpected reply from the agent: {other:?}"),
    }
}
