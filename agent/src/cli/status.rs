//! `rampart-agent status`: how this device is doing, in plain words.

use std::path::PathBuf;
use std::process::ExitCode;

use rampart_shared::status::{AgentStatus, Overall, assess, problem_details, section_lines};

use crate::ipc::client::{Client, ClientError};
use crate::paths::default_client_socket;

/// Exit codes, documented in docs/status.md.
pub const EXIT_HEALTHY: u8 = 0;
pub const EXIT_ACTION_NEEDED: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON (schema in docs/status.md); the same as
    /// `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// text (plain words), json, or prometheus (node_exporter's textfile
    /// format: docs/status.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The agent's socket (default: $RAMPART_SOCKET, your dev agent, or the service).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Prometheus,
}

pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let format = if args.json { Format::Json } else { args.format };
    let socket = args.socket.unwrap_or_else(default_client_socket);
    let result = super::block_on(async {
        let mut client = Client::connect(&socket, super::CLIENT_NAME).await?;
        client.status().await
    })?;
    let status = match result {
        Ok(status) => status,
        Err(err @ (ClientError::NotRunning { .. } | ClientError::Connect { .. })) => {
            eprintln!("rampart-agent: {err}");
            if format == Format::Prometheus {
                out!("{}", crate::metrics::unreachable())?;
            }
            return Ok(ExitCode::from(EXIT_UNREACHABLE));
        }
        Err(err) => return Err(err.into()),
    };
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&status)?)?,
        Format::Text => out!("{}", render(&status))?,
        Format::Prometheus => out!("{}", crate::metrics::render(&status, chrono::Utc::now()))?,
    }
    Ok(ExitCode::from(exit_code(status.overall)))
}

pub fn exit_code(overall: Overall) -> u8 {
    match overall {
        Overall::Healthy => EXIT_HEALTHY,
        Overall::ActionNeeded | Overall::Error => EXIT_ACTION_NEEDED,
    }
}

/// The verdict first, then why, then one line per section.
pub fn render(status: &AgentStatus) -> String {
    let assessment = assess(status);
    let mut out = format!("Rampart: {}\n", assessment.overall.label());
    for (_, reason) in &assessment.reasons {
        out.push_str(&format!("  - {reason}\n"));
    }
    out.push('\n');
    for (name, line) in section_lines(status) {
        out.push_str(&format!("{name:<8} {line}\n"));
    }
    let details = problem_details(status);
    if !details.is_empty() {
        out.push_str("\nDetails:\n");
        for (name, text) in details {
            out.push_str(&format!("  {name}: {text}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Core;
    use rampart_shared::status::AgentMode;

    #[test]
    fn verdict_first_then_reasons_then_sections() {
        let now = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let status = Core::fresh_status(AgentMode::Dev, now);
        let text = render(&status);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Rampart: Action needed");
        assert_eq!(lines[1], "  - MFA is not set up");
        assert_eq!(lines[2], "");
        assert_eq!(lines[3], "MFA      Not set up");
        assert_eq!(lines[4], "Clock    Unknown: not checked yet");
        assert!(
            lines[6].starts_with("Policy   built-in default, serial 0"),
            "{}",
            lines[6]
        );
        assert_eq!(exit_code(status.overall), EXIT_ACTION_NEEDED);
    }
}
