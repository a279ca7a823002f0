//! `rampart-installer`: installs and removes the Rampart agent service and
//! the app's autostart. It computes a [`Plan`] as data (files, modes,
//! service definitions, commands), then [`execute`]s it, for real or staged
//! under a root directory (`--root`, used by tests and packaging).
//!
//! Service definitions are rendered by pure functions in [`render`] for every
//! OS, so all of them are tested on any machine.

pub mod detect;
pub mod exec;
pub mod install;
pub mod layout;
pub mod plan;
pub mod render;

use std::path::{Path, PathBuf};

pub use exec::{ExecError, Target, execute};
pub use install::{
    InstallOptions, KeyChange, PlanError, configure_plan, install_config, install_plan,
    key_change_note, unconfigure_plan, uninstall_plan,
};
pub use layout::{Layout, TargetOs};
pub use plan::{Owner, Plan, Step, When};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The install plan for `target`: reads the existing install config (kept on
/// upgrade unless flags change it), nothing else.
pub fn plan_install(
    layout: &Layout,
    target: &Target,
    opts: &InstallOptions,
) -> Result<Plan, InstallError> {
    let existing = read_existing_config(layout, target)?;
    let config = install_config(
        opts,
        existing.as_deref(),
        &default_device_id(),
        &layout.report_secret_file(),
        &layout.extra_ca_file(),
    )?;
    Ok(install_plan(layout, opts, config))
}

/// The plan of `configure`: the install config from `opts` merged into the
/// existing one. No flag with a value writes no config, not even on a first
/// install: an MSI deployed without properties leaves it to GPO or MDM, and
/// the agent runs on its built-in policy until one arrives.
pub fn plan_configure(
    layout: &Layout,
    target: &Target,
    opts: &InstallOptions,
) -> Result<Plan, InstallError> {
    let config = if opts.sets_config() {
        let existing = read_existing_config(layout, target)?;
        install_config(
            opts,
            existing.as_deref(),
            &default_device_id(),
            &layout.report_secret_file(),
            &layout.extra_ca_file(),
        )?
    } else {
        None
    };
    Ok(configure_plan(layout, config, opts.report_secret.as_ref()))
}

pub fn read_existing_config(
    layout: &Layout,
    target: &Target,
) -> Result<Option<Vec<u8>>, InstallError> {
    let existing_path = target_path(target, &layout.config_file);
    match std::fs::read(&existing_path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Read {
            path: existing_path,
            source,
        }),
    }
}

/// `path` as it is seen through `target` (under its root, if any).
pub fn target_path(target: &Target, path: &Path) -> PathBuf {
    match &target.root {
        None => path.to_owned(),
        Some(root) => root.join(
            path.components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect::<PathBuf>(),
        ),
    }
}

/// The host name, the device id when `--device-id` is not given.
pub fn default_device_id() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok());
    from_file
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unnamed-device".to_owned())
}

/// Each file an install puts in place and whether it is there.
pub fn status(layout: &Layout, target: &Target) -> Vec<(PathBuf, bool)> {
    let mut paths = vec![
        layout.agent_bin.clone(),
        layout.app_bin.clone(),
        layout.config_file.clone(),
    ];
    paths.extend(layout.service_file.clone());
    paths.extend(layout.app_autostart_file.clone());
    paths.push(layout.state_dir.clone());
    paths
        .into_iter()
        .map(|p| {
            let present = target_path(target, &p).exists();
            (p, present)
        })
        .collect()
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
