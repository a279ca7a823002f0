//! `rampart-agent run --windows-service`: the agent under the Windows service
//! control manager (SCM). The SCM starts the process, the dispatcher calls
//! `service_main` on a thread of its own, and Stop/Shutdown controls end the
//! agent cleanly. Installed by `rampart-installer` (`sc.exe create
//! RampartAgent`) or the MSI (`packaging/windows/rampart.wxs`).

use std::ffi::OsString;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

use crate::service::AgentConfig;

/// The service's name, as the installer and the MSI register it.
pub const SERVICE_NAME: &str = rampart_shared::platform::WINDOWS_SERVICE;

/// ERROR_SERVICE_SPECIFIC_ERROR would need a second code; a plain Win32
/// failure code is what the SCM's recovery actions look at.
const ERROR_EXCEPTION_IN_SERVICE: u32 = 1064;

/// The dispatcher's entry point takes no context: the configuration parsed
/// from the command line waits here for `service_main`.
static CONFIG: Mutex<Option<AgentConfig>> = Mutex::new(None);

define_windows_service!(ffi_service_main, service_main);

/// Hands this thread to the service dispatcher; returns when the service has
/// stopped. Fails at once when the process was not started by the SCM.
pub fn run_as_service(config: AgentConfig) -> anyhow::Result<()> {
    *CONFIG
        .lock()
        .map_err(|_| anyhow::anyhow!("service configuration lock poisoned"))? = Some(config);
    service_dispatcher::start(SERVICE_NAME, ffi_service_main).context(
        "cannot connect to the service control manager (start it with `sc.exe start RampartAgent`)",
    )?;
    Ok(())
}

fn service_main(_arguments: Vec<OsString>) {
    if let Err(err) = run_service() {
        tracing::error!("the Windows service stopped with an error: {err:#}");
    }
}

fn run_service() -> anyhow::Result<()> {
    let config = CONFIG
        .lock()
        .ok()
        .and_then(|mut c| c.take())
        .context("no configuration was handed to the service")?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let handler = move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            let _ = stop_tx.send(true);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    };
    let status = service_control_handler::register(SERVICE_NAME, handler)
        .context("cannot register the service control handler")?;
    let report = |state, accepted, code| {
        status.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: accepted,
            exit_code: ServiceExitCode::Win32(code),
            checkpoint: 0,
            wait_hint: Duration::from_secs(10),
            process_id: None,
        })
    };
    report(
        ServiceState::Running,
        ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN,
        0,
    )?;
    ensure_restart_after_update();
    let result = super::run::serve(config, move || {
        Ok(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
            // The SCM shows "stopping" (and waits the hint) rather than
            // "running" while the agent saves its state and lets go of
            // the pipe.
            if let Err(error) = report(ServiceState::StopPending, ServiceControlAccept::empty(), 0)
            {
                tracing::warn!(%error, "cannot tell the service manager the agent is stopping");
            }
        })
    });
    // After an update the SCM must start the binary now in place: a
    // non-zero exit code is a "non-crash failure", which the recovery
    // actions (restart after 5 s) act on since `ensure_restart_after_update`
    // turned that on.
    let code = match super::run::Served::stop_code(&result) {
        super::run::StopCode::Clean => ServiceExitCode::Win32(0),
        super::run::StopCode::Restart(code) => ServiceExitCode::ServiceSpecific(u32::from(code)),
        super::run::StopCode::Failed => ServiceExitCode::Win32(ERROR_EXCEPTION_IN_SERVICE),
    };
    status.set_service_status(ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: ServiceState::Stopped,
        controls_accepted: ServiceControlAccept::empty(),
        exit_code: code,
        checkpoint: 0,
        wait_hint: Duration::from_secs(10),
        process_id: None,
    })?;
    result.map(|_| ())
}

/// The installer sets restart-on-failure; a stop with a non-zero exit code
/// counts as a failure only with "failure actions on non-crash failures" on,
/// which the service sets for itself at start (it runs as LocalSystem), so
/// that an update's exit brings it back whatever installed it.
fn ensure_restart_after_update() {
    use windows_service::service::ServiceAccess;
    use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
    let set = || -> windows_service::Result<()> {
        let manager = ServiceManager::local_computer(None::<&str>, ServiceManagerAccess::CONNECT)?;
        let service = manager.open_service(SERVICE_NAME, ServiceAccess::CHANGE_CONFIG)?;
        service.set_failure_actions_on_non_crash_failures(true)
    };
    if let Err(error) = set() {
        tracing::warn!(%error, "cannot set restart after update (failure actions on non-crash failures)");
    }
}
