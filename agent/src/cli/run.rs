//! `rampart-agent run`: the service in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rampart_shared::ipc::LogLevel;
use rampart_shared::status::AgentMode;
use tracing_subscriber::{EnvFilter, reload};

use crate::ipc::server::IpcTimeouts;
use crate::paths::AgentPaths;
use crate::service::{AgentConfig, LogControl};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run as the current user with per-user paths (no root needed).
    #[arg(long)]
    pub dev: bool,
    /// Listen on this socket instead of the mode's default.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The install config (policy URL, pinned keys, device id). The managed
    /// policy file, `policy.json`, is read from the same directory.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep state (and logs) under this directory instead of the mode's default.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `rampart_agent=debug` (also $RUST_LOG).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Run under the Windows service control manager (what the installed
    /// service's command line says; Windows only).
    #[arg(long, hide = true)]
    pub windows_service: bool,
    /// Seconds a client has to send a complete frame (tests use small values).
    #[arg(long, value_name = "MS", default_value_t = 5000, hide = true)]
    pub frame_timeout_ms: u64,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let log_control = init_logging(args.log.as_deref())?;
    let mode = if args.dev {
        AgentMode::Dev
    } else {
        AgentMode::System
    };
    let mut paths = AgentPaths::for_mode(mode)?;
    let install_config = args.config.clone();
    if let Some(file) = &args.config {
        paths.config_dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_owned();
    }
    if let Some(socket) = args.socket {
        paths.socket = socket;
    }
    if let Some(dir) = args.state_dir {
        paths.log_dir = dir.join("logs");
        paths.state_dir = dir;
    }
    let mut config = AgentConfig::new(mode, paths);
    if let Some(file) = install_config {
        // An explicit --config must exist: a typo must not silently mean
        // "no pinned keys".
        match crate::config::InstallConfig::load(&file) {
            Ok(Some(install)) => config.install = Some(install),
            Ok(None) => anyhow::bail!("install config {} does not exist", file.display()),
            Err(e) => return Err(e).context("cannot use --config"),
        }
        config.install_error = None;
    }
    let config = AgentConfig {
        ipc_timeouts: IpcTimeouts {
            frame: Duration::from_millis(args.frame_timeout_ms),
            ..IpcTimeouts::default()
        },
        log_control: Some(log_control),
        ..config
    };

    if args.windows_service {
        #[cfg(windows)]
        {
            super::windows_service::run_as_service(config)?;
            return Ok(ExitCode::SUCCESS);
        }
        #[cfg(not(windows))]
        anyhow::bail!("--windows-service is for the Windows service control manager only");
    }
    serve(config, shutdown_signal)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs the agent until the future made by `shutdown` (inside the runtime,
/// so that it may register signal handlers) resolves.
pub(crate) fn serve<F, S>(config: AgentConfig, shutdown: S) -> anyhow::Result<()>
where
    S: FnOnce() -> anyhow::Result<F>,
    F: std::future::Future<Output = ()>,
{
    // Two threads: IPC stays responsive while a check is under way, and the
    // agent's footprint stays small.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives as soon as the socket is up
        // must still mean a clean stop.
        let shutdown = shutdown()?;
        let agent = crate::start(config)
            .await
            .context("cannot start the agent")?;
        eprintln!("rampart-agent: listening on {}", agent.socket().display());
        shutdown.await;
        tracing::info!("shutdown requested");
        agent.stop().await?;
        anyhow::Ok(())
    })
}

/// Registers for SIGTERM and SIGINT now; the future resolves on either.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// Logs to stderr with a filter that IPC can change at run time.
fn init_logging(filter: Option<&str>) -> anyhow::Result<LogControl> {
    use tracing_subscriber::prelude::*;
    let initial = match filter {
        Some(f) => EnvFilter::try_new(f).with_context(|| format!("bad --log filter \"{f}\""))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (filter, handle) = reload::Layer::new(initial);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .try_init()
        .context("cannot install the logger")?;
    Ok(Arc::new(move |level: LogLevel| {
        handle
            .reload(EnvFilter::new(level.as_str()))
            .map_err(|e| format!("cannot change the log level: {e}"))
    }))
}
