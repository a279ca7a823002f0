//! `rampart-agent update [--check]`: ask the release feed named in the
//! install config and update this binary if a newer, signed release is
//! offered. The running service keeps its old code until it restarts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rampart_shared::policy::UpdateChannel;
use rampart_shared::version::Version;

use crate::config::InstallConfig;
use crate::paths::AgentPaths;
use crate::update::apply::{UpdateRequest, check_and_apply};
use crate::update::fetch::DownloadLimits;
use crate::update::{ClockFacts, UpdateDecision, UpdateOutcome};

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Only check: say what would happen, change nothing.
    #[arg(long)]
    pub check: bool,
    /// The install config naming the feed and the release keys (default:
    /// the system one).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the version floor and the previous binary are kept (default:
    /// the system state directory).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The update channel (the policy's `agent.update_channel`).
    #[arg(long, value_name = "stable|beta", default_value = "stable", value_parser = parse_channel)]
    pub channel: UpdateChannel,
    /// The policy's `agent.min_version`, if any.
    #[arg(long, value_name = "VERSION")]
    pub min_version: Option<Version>,
    /// Time server to measure the clock with before updating (repeat for
    /// several). Default: the servers of the policy beside the install
    /// config (`policy.json`), else of the built-in policy.
    #[arg(long = "ntp-server", value_name = "HOST[:PORT]")]
    pub ntp_servers: Vec<String>,
    /// The whole download's deadline, in seconds (tests use small values).
    #[arg(long, value_name = "SECS", default_value_t = 600, hide = true)]
    pub download_deadline_secs: u64,
    /// Give up when the server sends nothing for this long, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60, hide = true)]
    pub stall_secs: u64,
}

/// The clock, measured with the given time servers or the policy's. No
/// answer at all is `Unknown`, which pauses nothing (as in the service).
fn measure_clock(servers: &[String], config_file: &std::path::Path) -> anyhow::Result<ClockFacts> {
    let policy = std::fs::read(config_file.with_file_name("policy.json"))
        .ok()
        .and_then(|bytes| rampart_shared::policy::parse_policy(&bytes).ok())
        .unwrap_or_default();
    let servers = if servers.is_empty() {
        policy.clock.ntp_servers.clone()
    } else {
        servers.to_vec()
    };
    let report = super::block_on(crate::clock::query_servers(
        &servers,
        std::time::Duration::from_secs(2),
    ))?;
    let section = crate::clock::to_section(
        &report,
        std::time::Duration::from_secs(policy.clock.max_skew_secs),
        chrono::Utc::now(),
    );
    Ok(ClockFacts {
        state: section.state,
        offset_ms: section.offset_ms,
    })
}

fn parse_channel(s: &str) -> Result<UpdateChannel, String> {
    match s {
        "stable" => Ok(UpdateChannel::Stable),
        "beta" => Ok(UpdateChannel::Beta),
        other => Err(format!("unknown channel \"{other}\": stable or beta")),
    }
}

pub fn run(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let system = AgentPaths::system();
    let config_file = args.config.unwrap_or_else(|| system.install_config());
    let config = InstallConfig::load(&config_file)?
        .with_context(|| format!("no install config at {}", config_file.display()))?;
    let source = config.update_source.clone().with_context(|| {
        format!(
            "{} names no update_source: this agent is updated by its package manager",
            config_file.display()
        )
    })?;
    let keys = config.update_keys().map_err(anyhow::Error::msg)?;
    let request = UpdateRequest {
        source,
        keys,
        channel: args.channel,
        min_version: args.min_version,
        // Measured as the service does: a clock hours off pauses updates.
        clock: measure_clock(&args.ntp_servers, &config_file)?,
        state_dir: args.state_dir.unwrap_or(system.state_dir),
        exe: std::env::current_exe().context("cannot find this binary's path")?,
        current: crate::update::release::running(),
        apply: !args.check,
        // No trial: whoever runs the CLI restarts the service, and the
        // service's own start-up is what they watch.
        trial: false,
        limits: DownloadLimits {
            deadline: std::time::Duration::from_secs(args.download_deadline_secs),
            stall: std::time::Duration::from_secs(args.stall_secs),
        },
        extra_ca_file: config.extra_ca_file.clone(),
    };
    // reqwest is built without a bundled crypto provider: ring is the one.
    crate::install_tls_provider();
    let outcome = super::block_on(check_and_apply(request))?;
    // The words people read; the raw text only as details.
    outln!("{outcome}")?;
    if let Some(problem) = outcome.problem() {
        outln!("{}", problem.cause.next_step())?;
        if !problem.details.is_empty() {
            outln!("Details: {}", problem.details)?;
        }
    }
    Ok(match outcome {
        UpdateOutcome::Decided(
            UpdateDecision::UpToDate { .. } | UpdateDecision::Update { .. },
            _,
        )
        | UpdateOutcome::Updated { .. } => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    })
}
