//! `rampart-agent run`: the service in the foreground.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rampart_shared::ipc::LogLevel;
use rampart_shared::status::AgentMode;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::reload;

use crate::ipc::server::IpcTimeouts;
use crate::paths::AgentPaths;
use crate::service::{AgentConfig, LogControl, LogControlError};

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
    let mode = if args.dev {
        AgentMode::Dev
    } else {
        AgentMode::System
    };
    let paths = AgentPaths::with_overrides(
        mode,
        args.config.as_deref(),
        args.state_dir.as_deref(),
        args.socket.as_deref(),
    )?;
    let install_config = args.config.clone();
    // Logging starts once the log directory is known; the guard flushes the
    // file writer when `run` returns.
    let (log_control, _log_guard) = init_logging(args.log.as_deref(), &paths.log_dir)?;
    raise_file_limit();
    let mut config = AgentConfig::new(mode, paths);
    if let Some(file) = install_config {
        // An explicit --config must exist: a typo must not silently mean
        // "no pinned keys".
        match crate::config::InstallConfig::load_effective(&file) {
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

    // An update that a kill or a power cut interrupted is finished or
    // undone before anything else; if that put the previous binary back
    // over this one, this process is the wrong code: exit, and the service
    // manager starts the right one.
    if mode == AgentMode::System
        && let Ok(exe) = std::env::current_exe()
        && crate::update::health::at_start(&config.paths.state_dir, &exe)
    {
        eprintln!(
            "rampart-agent: an interrupted update was undone; exiting so the service manager starts the previous binary"
        );
        return Ok(ExitCode::from(EXIT_RESTART));
    }

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

/// The exit code that asks the service manager for a restart after an
/// update's rollback at start. Windows' recovery actions take a non-zero
/// code (with failure actions on non-crash failures set, which the service
/// sets for itself); systemd's `Restart=always` and launchd's `KeepAlive`
/// restart on any.
pub const EXIT_RESTART: u8 = 75;

/// What `serve` ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    Stopped,
    /// Stopped after installing a release; the trial's outcome.
    Updated(crate::update::health::TrialOutcome),
}

/// What the service tells its service manager as it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    /// Stopped on request: stay stopped.
    Clean,
    /// Start again: the binary in place is the one to run now (after an
    /// update, whether its trial passed or rolled back). A non-zero code,
    /// so that Windows' recovery actions restart the service.
    Restart(u8),
    Failed,
}

impl Served {
    pub fn stop_code(result: &anyhow::Result<Self>) -> StopCode {
        match result {
            Ok(Self::Stopped) => StopCode::Clean,
            Ok(Self::Updated(_)) => StopCode::Restart(EXIT_RESTART),
            Err(_) => StopCode::Failed,
        }
    }
}

/// Runs the agent until the future made by `shutdown` (inside the runtime,
/// so that it may register signal handlers) resolves.
fn tracing_level(level: LogLevel) -> tracing::Level {
    match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    }
}

/// Log lines that may wait for the log file's writer thread.
const LOG_QUEUE_LINES: usize = 2_048;

pub(crate) fn serve<F, S>(config: AgentConfig, shutdown: S) -> anyhow::Result<Served>
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
    let state_dir = config.paths.state_dir.clone();
    let socket = config.paths.socket.clone();
    let result = runtime.block_on(async move {
        // Handlers first: a SIGTERM that arrives as soon as the socket is up
        // must still mean a clean stop.
        let shutdown = shutdown()?;
        if let Some(control) = config.log_control.clone() {
            cycle_log_level_on_sigusr2(control)?;
        }
        let mut agent = crate::start(config)
            .await
            .context("cannot start the agent")?;
        eprintln!("rampart-agent: listening on {}", agent.socket().display());
        let updated = tokio::select! {
            () = shutdown => {
                tracing::info!("shutdown requested");
                agent.stop().await?;
                false
            }
            reason = agent.stopped() => {
                // The agent stopped on its own: after a self-update the
                // service manager starts the new binary.
                matches!(reason?, crate::StopReason::Updated { .. })
            }
        };
        anyhow::Ok(updated)
    });
    // Dropping the runtime would wait for every blocking task (a name lookup
    // or a write to a stalled disk) without limit, and a Windows service is
    // "running" to the SCM until this returns: seen under Wine as `sc stop`
    // never reaching STOPPED although the agent had stopped.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    if !result? {
        return Ok(Served::Stopped);
    }
    // The socket is free: the new binary must reach "serving" on it, or the
    // previous one comes back (update::health).
    let trial = crate::update::health::run_trial(
        &state_dir,
        &socket,
        &crate::update::health::trial_args(),
        crate::update::health::SERVING_DEADLINE,
    );
    eprintln!(
        "rampart-agent: update trial: {trial:?}; exiting so the service manager starts the binary in place"
    );
    Ok(Served::Updated(trial))
}

/// How long blocking tasks may run on after the agent has stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

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

/// The soft file limit to ask for, given the current soft and hard limits
/// (`None`: unlimited): the hard limit, or [`FILES_WHEN_UNLIMITED`] where
/// the hard limit is "unlimited" (macOS says so, and refuses that much);
/// `None` when the soft limit is already there.
pub fn file_limit_target(soft: Option<u64>, hard: Option<u64>) -> Option<u64> {
    let want = hard.unwrap_or(FILES_WHEN_UNLIMITED);
    match soft {
        Some(soft) if soft < want => Some(want),
        _ => None,
    }
}

/// macOS's OPEN_MAX, the most `setrlimit` accepts there without knowing
/// kern.maxfilesperproc.
pub const FILES_WHEN_UNLIMITED: u64 = 10_240;

/// Raises the soft limit on open files to the hard limit: the default soft
/// limit (1024) is what one user's connections exhausted, failing the
/// owner's MFA save with "Too many open files". The IPC server sizes its
/// connection limits from the result.
#[cfg(unix)]
fn raise_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let before = getrlimit(Resource::Nofile);
    let Some(target) = file_limit_target(before.current, before.maximum) else {
        tracing::info!(soft = ?before.current, hard = ?before.maximum, "open-file limit");
        return;
    };
    let raised = Rlimit {
        current: Some(target),
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = ?before.current, to = target, "raised the open-file limit"),
        Err(error) => tracing::warn!(%error, soft = ?before.current, hard = ?before.maximum,
            "cannot raise the open-file limit; the agent serves fewer connections"),
    }
}

#[cfg(not(unix))]
fn raise_file_limit() {}

/// The level SIGUSR2 moves to from `current`: info → debug → trace → info.
pub fn next_level(current: LogLevel) -> LogLevel {
    match current {
        LogLevel::Debug => LogLevel::Trace,
        LogLevel::Trace => LogLevel::Info,
        LogLevel::Error | LogLevel::Warn | LogLevel::Info => LogLevel::Debug,
    }
}

/// SIGUSR2 raises the log level one step (and wraps back to info), for
/// support to capture detail from a service without a restart or a socket.
#[cfg(unix)]
fn cycle_log_level_on_sigusr2(control: LogControl) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut usr2 = signal(SignalKind::user_defined2())?;
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            let next = next_level(current_level());
            match control(next) {
                Ok(()) => tracing::warn!(level = next.as_str(), "log level changed by SIGUSR2"),
                Err(error) => tracing::warn!(%error, "SIGUSR2: cannot change the log level"),
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn cycle_log_level_on_sigusr2(_control: LogControl) -> anyhow::Result<()> {
    Ok(())
}

/// The level last set through the log control (info until then).
static CURRENT_LEVEL: std::sync::Mutex<LogLevel> = std::sync::Mutex::new(LogLevel::Info);

// Only SIGUSR2 steps from the current level; Windows has no such signal
// (support changes the level over IPC with `rampart-agent log-level`).
#[cfg(unix)]
fn current_level() -> LogLevel {
    CURRENT_LEVEL.lock().map_or(LogLevel::Info, |l| *l)
}

/// Logs to stderr and to files in `log_dir` that roll over by day and by
/// size within a total cap (`logging::files`), with a filter that IPC and
/// SIGUSR2 can change at run time. A log directory that cannot be created
/// leaves stderr only.
fn init_logging(
    filter: Option<&str>,
    log_dir: &std::path::Path,
) -> anyhow::Result<(
    LogControl,
    Option<tracing_appender::non_blocking::WorkerGuard>,
)> {
    use tracing_subscriber::prelude::*;
    // `Targets` (`info`, `rampart_agent=debug,info`) rather than EnvFilter:
    // the same directives people write for a log level, without the regex
    // engine EnvFilter brings (a tenth of the agent binary).
    let initial = match filter {
        Some(f) => f
            .parse::<Targets>()
            .with_context(|| format!("bad --log filter \"{f}\""))?,
        None => std::env::var("RUST_LOG")
            .ok()
            .and_then(|f| f.parse::<Targets>().ok())
            .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO)),
    };
    let initial_text = initial.to_string();
    let known = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];
    if let Some(level) = known.into_iter().find(|l| l.as_str() == initial_text)
        && let Ok(mut current) = CURRENT_LEVEL.lock()
    {
        *current = level;
    }
    let (filter, handle) = reload::Layer::new(initial);
    let mut file_error = None;
    let (file_layer, guard) = match crate::fsutil::ensure_log_dir(log_dir)
        .map_err(|e| e.to_string())
        .and_then(|()| crate::logging::files::LogFiles::open(log_dir).map_err(|e| e.to_string()))
    {
        Ok(appender) => {
            // tracing-appender's default queue holds 128,000 lines in a
            // channel allocated whole at start: 4 MB of the idle agent's
            // memory for a service that logs a few lines a minute. A burst
            // past this many lines is dropped (counted by the appender),
            // never blocks the agent.
            let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .finish(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(writer);
            (Some(layer), Some(guard))
        }
        Err(e) => {
            file_error = Some(e);
            (None, None)
        }
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .with(file_layer)
        .try_init()
        .context("cannot install the logger")?;
    if let Some(error) = file_error {
        tracing::warn!(%error, dir = %log_dir.display(), "logging to stderr only");
    }
    let control: LogControl = Arc::new(move |level: LogLevel| {
        handle
            .reload(Targets::new().with_default(tracing_level(level)))
            .map_err(LogControlError::Reload)?;
        if let Ok(mut current) = CURRENT_LEVEL.lock() {
            *current = level;
        }
        Ok(())
    });
    Ok((control, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 8: after an update the service exited 0, which the Windows
    /// recovery actions (restart on failure) do not act on. Any stop after
    /// an update asks for a restart with a non-zero code; a requested stop
    /// stays clean.
    #[test]
    fn after_an_update_the_service_manager_is_asked_to_restart() {
        use crate::update::health::TrialOutcome;
        for trial in [
            TrialOutcome::Passed { to: "2.0.0".into() },
            TrialOutcome::RolledBack {
                to: "2.0.0".into(),
                why: "it stopped".into(),
            },
            TrialOutcome::NoTrial,
        ] {
            assert_eq!(
                Served::stop_code(&Ok(Served::Updated(trial))),
                StopCode::Restart(75)
            );
        }
        assert_eq!(Served::stop_code(&Ok(Served::Stopped)), StopCode::Clean);
        assert_eq!(
            Served::stop_code(&Err(anyhow::anyhow!("broken"))),
            StopCode::Failed
        );
    }

    #[test]
    fn sigusr2_cycles_info_debug_trace_info() {
        let mut level = LogLevel::Info;
        let mut seen = Vec::new();
        for _ in 0..4 {
            level = next_level(level);
            seen.push(level);
        }
        assert_eq!(
            seen,
            [
                LogLevel::Debug,
                LogLevel::Trace,
                LogLevel::Info,
                LogLevel::Debug
            ]
        );
        assert_eq!(next_level(LogLevel::Warn), LogLevel::Debug);
    }

    #[test]
    fn the_soft_file_limit_rises_to_the_hard_one() {
        assert_eq!(file_limit_target(Some(1024), Some(524_288)), Some(524_288));
        assert_eq!(file_limit_target(Some(524_288), Some(524_288)), None);
        assert_eq!(
            file_limit_target(Some(256), None),
            Some(FILES_WHEN_UNLIMITED)
        );
        assert_eq!(file_limit_target(None, None), None);
        assert_eq!(file_limit_target(Some(20_000), None), None);
    }
}
