//! What install, configure and uninstall do, as plans of steps (data, carried
//! out by `exec`): the command line's options, the install config they make
//! (validated by the agent's own `InstallConfig`), and the steps per OS.

use std::path::{Path, PathBuf};

use rampart_agent::config::{InstallConfig, InstallConfigError, UpdateSource};
use rampart_agent::winsec;

use crate::layout::{Layout, TargetOs, WINDOWS_RUN_KEY, argv, s};
use crate::plan::{Plan, Step, When};
use crate::render::{self, SystemdUnit};

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// The agent binary to install.
    pub agent_source: PathBuf,
    /// The app binary, if there is one to install (no app: no autostart).
    pub app_source: Option<PathBuf>,
    /// The sign-in PAM module (Linux), if it came with the binaries:
    /// installed, never added to a PAM stack (docs/signin.md).
    pub pam_source: Option<PathBuf>,
    pub policy_url: Option<String>,
    /// Contents of minisign `.pub` files.
    pub public_keys: Vec<String>,
    /// What `public_keys` does to the keys already in the install config.
    pub key_change: KeyChange,
    pub device_id: Option<String>,
    /// Where the agent looks for releases (self-update).
    pub update_source: Option<UpdateSource>,
    /// Release-signing Ed25519 keys (base64 of 32 bytes).
    pub update_keys: Vec<String>,
    /// The Duo secret key, written to [`Layout::duo_key_file`] (0600): the
    /// policy names that file, never the key.
    pub duo_secret_key: Option<zeroize::Zeroizing<String>>,
    /// Extra CA certificates (PEM, already checked with the agent's own
    /// reader), copied to [`Layout::extra_ca_file`]; the install config names
    /// that absolute path.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// The deployment secret for reports, checked, written to
    /// [`Layout::report_secret_file`] (0600; SYSTEM and Administrators on
    /// Windows): the install config names that file, never the secret.
    pub report_secret: Option<zeroize::Zeroizing<String>>,
}

impl InstallOptions {
    /// Whether any flag names something that goes in the install config.
    pub fn sets_config(&self) -> bool {
        self.policy_url.is_some()
            || !self.public_keys.is_empty()
            || self.device_id.is_some()
            || self.update_source.is_some()
            || !self.update_keys.is_empty()
            || self.extra_ca_pem.is_some()
            || self.report_secret.is_some()
    }
}

/// `--pubkey` replaces the pinned keys, `--add-pubkey` adds to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyChange {
    #[default]
    Replace,
    Add,
}

/// The pinned keys after `opts`: replaced, or the new ones added to
/// `existing` (a key already there is not added twice).
fn changed_keys(existing: &[String], opts: &InstallOptions) -> Vec<String> {
    let given = opts.public_keys.iter().map(|k| k.trim().to_owned());
    match opts.key_change {
        KeyChange::Replace => given.collect(),
        KeyChange::Add => {
            let mut keys = existing.to_vec();
            for key in given {
                if !keys.iter().any(|k| same_key(k, &key)) {
                    keys.push(key);
                }
            }
            keys
        }
    }
}

/// Two spellings of one key (a whole `.pub` file, or its base64 line).
fn same_key(a: &str, b: &str) -> bool {
    let line = |t: &str| {
        t.lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .map(str::to_owned)
    };
    line(a).is_some() && line(a) == line(b)
}

/// What a key flag does to the keys in place, in one sentence for the
/// person running the installer: replacing a different set is said aloud,
/// since the keys it drops stop being trusted.
pub fn key_change_note(existing: Option<&[u8]>, opts: &InstallOptions) -> Option<String> {
    if opts.public_keys.is_empty() {
        return None;
    }
    let before = existing
        .and_then(|bytes| InstallConfig::parse(bytes).ok())
        .map(|c| c.public_keys)
        .unwrap_or_default();
    let after = changed_keys(&before, opts);
    let dropped = before
        .iter()
        .filter(|k| !after.iter().any(|a| same_key(a, k)))
        .count();
    let added = after
        .iter()
        .filter(|k| !before.iter().any(|b| same_key(b, k)))
        .count();
    match opts.key_change {
        KeyChange::Replace if dropped > 0 => Some(format!(
            "--pubkey replaces the policy keys: {dropped} key(s) in place will no longer be trusted, {} will be. \
             To keep them and add one (key rotation), use --add-pubkey instead.",
            after.len()
        )),
        KeyChange::Replace => None,
        KeyChange::Add => Some(format!(
            "--add-pubkey: {added} key(s) added, {} trusted in all",
            after.len()
        )),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("the existing install config cannot be updated: {0}")]
    ExistingConfig(InstallConfigError),
    /// The agent's own check refused what the flags make (or, in theory,
    /// serde could not write it: the same words as a parse error).
    #[error("the install config from these flags is not valid: {0}")]
    Config(InstallConfigError),
}

/// The install config to write, if any: `None` keeps the existing file (an
/// upgrade without flags). Flags given on an upgrade change only what they
/// name.
/// `report_secret_file`: where the secret goes, when `opts` has one.
/// `extra_ca_file`: where the CA certificates go, when `opts` has them.
pub fn install_config(
    opts: &InstallOptions,
    existing: Option<&[u8]>,
    default_device_id: &str,
    report_secret_file: &Path,
    extra_ca_file: &Path,
) -> Result<Option<Vec<u8>>, PlanError> {
    let config = match existing {
        Some(_) if !opts.sets_config() => return Ok(None),
        Some(bytes) => InstallConfig::parse(bytes).map_err(PlanError::ExistingConfig)?,
        None => InstallConfig {
            device_id: default_device_id.to_owned(),
            ..InstallConfig::default()
        },
    };
    let mut config = config;
    if let Some(id) = &opts.device_id {
        config.device_id = id.clone();
    }
    if let Some(url) = &opts.policy_url {
        config.policy_url = Some(url.clone());
    }
    if !opts.public_keys.is_empty() {
        config.public_keys = changed_keys(&config.public_keys, opts);
    }
    if let Some(source) = &opts.update_source {
        config.update_source = Some(source.clone());
    }
    if opts.extra_ca_pem.is_some() {
        config.extra_ca_file = Some(extra_ca_file.to_owned());
    }
    if opts.report_secret.is_some() {
        config.report_secret_file = Some(report_secret_file.to_owned());
    }
    if !opts.update_keys.is_empty() {
        config.update_public_keys = opts
            .update_keys
            .iter()
            .map(|k| k.trim().to_owned())
            .collect();
    }
    let mut bytes = serde_json::to_vec_pretty(&config)
        .map_err(|e| PlanError::Config(InstallConfigError::Json(e)))?;
    bytes.push(b'\n');
    // The agent must accept what we write: check it with the agent's own rule.
    InstallConfig::parse(&bytes).map_err(PlanError::Config)?;
    Ok(Some(bytes))
}

/// The steps that install (or upgrade) Rampart. `config` is what
/// [`install_config`] decided.
pub fn install_plan(layout: &Layout, opts: &InstallOptions, config: Option<Vec<u8>>) -> Plan {
    let owner = layout.owner.clone();
    let dir = |path: &Path, mode| Step::Dir {
        path: path.to_owned(),
        mode,
        owner: owner.clone(),
    };
    let file = |path: &Path, contents: String| Step::File {
        path: path.to_owned(),
        mode: 0o644,
        owner: owner.clone(),
        contents: contents.into_bytes(),
    };
    let mut steps = Vec::new();
    let cmd = |words: &[&str], may_fail| Step::Command {
        argv: argv(words),
        when: When::Install,
        may_fail,
    };

    // Stop first where replacing a running binary is refused (Windows) or
    // where the service manager needs to forget the old definition (launchd).
    match layout.os {
        TargetOs::Windows => steps.push(cmd(&["sc.exe", "stop", render::WINDOWS_SERVICE], true)),
        TargetOs::Macos => {
            steps.push(cmd(
                &[
                    "launchctl",
                    "bootout",
                    &format!("system/{}", render::LAUNCHD_AGENT_LABEL),
                ],
                true,
            ));
        }
        TargetOs::Linux => {}
    }

    for d in &layout.bin_dirs {
        steps.push(dir(d, 0o755));
    }
    steps.push(Step::Copy {
        from: opts.agent_source.clone(),
        to: layout.agent_bin.clone(),
        mode: 0o755,
    });
    if let Some(app) = &opts.app_source {
        steps.push(Step::Copy {
            from: app.clone(),
            to: layout.app_bin.clone(),
            mode: 0o755,
        });
    }
    if let (Some(module), Some(to)) = (&opts.pam_source, &layout.pam_module) {
        if let Some(lib) = to.parent() {
            steps.push(dir(lib, 0o755));
        }
        steps.push(Step::Copy {
            from: module.clone(),
            to: to.clone(),
            mode: 0o644,
        });
    }
    steps.push(dir(&layout.config_dir, 0o755));
    // Windows: ProgramData's inherited ACL lets users read and create files.
    // The data directory's own goes on before any file is written in it (the
    // Duo key must never be readable by users, not even for a moment); the
    // running agent checks them too.
    let mut acls = Vec::new();
    if layout.os == TargetOs::Windows {
        acls = data_acl_steps(
            layout,
            config.is_some(),
            opts.extra_ca_pem.is_some(),
            opts.report_secret.is_some(),
        );
        steps.push(acls.remove(0));
    }
    if let Some(config) = config {
        // Public keys and URLs only: readable by all, like the unit itself.
        steps.push(Step::File {
            path: layout.config_file.clone(),
            mode: 0o644,
            owner: owner.clone(),
            contents: config,
        });
    }
    if let Some(key) = &opts.duo_secret_key {
        // Root's alone: whoever reads it can act as this Duo integration.
        steps.push(Step::File {
            path: layout.duo_key_file(),
            mode: 0o600,
            owner: owner.clone(),
            contents: format!("{}\n", key.trim()).into_bytes(),
        });
    }
    if let Some(secret) = &opts.report_secret {
        steps.push(report_secret_step(layout, secret));
    }
    if let Some(pem) = &opts.extra_ca_pem {
        // Certificates are public, like the install config naming them.
        steps.push(Step::File {
            path: layout.extra_ca_file(),
            mode: 0o644,
            owner: owner.clone(),
            contents: pem.clone(),
        });
    }
    steps.push(dir(&layout.state_dir, 0o700));
    steps.push(dir(&layout.log_dir, 0o750));
    // The rest of the Windows ACLs, once what they guard exists.
    steps.extend(acls);

    let exec = layout.agent_exec();
    let app_exec = vec![s(&layout.app_bin)];
    match layout.os {
        TargetOs::Linux => {
            if let Some(unit) = &layout.service_file {
                let bin_dir = layout.agent_bin.parent();
                steps.push(file(
                    unit,
                    render::systemd_unit(&SystemdUnit {
                        exec: &exec,
                        self_update_dir: bin_dir,
                    }),
                ));
            }
            if let (Some(entry), Some(_)) = (&layout.app_autostart_file, &opts.app_source) {
                steps.push(file(entry, render::xdg_autostart(&app_exec)));
            }
            steps.push(cmd(&["systemctl", "daemon-reload"], false));
            steps.push(cmd(&["systemctl", "enable", render::SYSTEMD_UNIT], false));
            // restart, not start: an upgrade must run the new binary.
            steps.push(cmd(&["systemctl", "restart", render::SYSTEMD_UNIT], false));
        }
        TargetOs::Macos => {
            if let Some(plist) = &layout.service_file {
                let log = layout.log_dir.join("agent.log");
                steps.push(file(plist, render::launchd_daemon(&exec, &log)));
                steps.push(cmd(&["launchctl", "bootstrap", "system", &s(plist)], false));
            }
            if let (Some(plist), Some(_)) = (&layout.app_autostart_file, &opts.app_source) {
                // Loaded at each user's next login; not forced into running
                // sessions.
                steps.push(file(plist, render::launchd_app(&app_exec)));
            }
        }
        TargetOs::Windows => {
            let bin_path = render::windows_command_line(&exec);
            // `create` fails when the service exists (an upgrade): `config`
            // then brings its command line up to date either way.
            steps.push(cmd(
                &[
                    "sc.exe",
                    "create",
                    render::WINDOWS_SERVICE,
                    "binPath=",
                    &bin_path,
                    "start=",
                    "auto",
                    "DisplayName=",
                    render::WINDOWS_SERVICE_DISPLAY_NAME,
                ],
                true,
            ));
            steps.push(cmd(
                &[
                    "sc.exe",
                    "config",
                    render::WINDOWS_SERVICE,
                    "binPath=",
                    &bin_path,
                    "start=",
                    "auto",
                ],
                false,
            ));
            steps.push(cmd(
                &[
                    "sc.exe",
                    "failure",
                    render::WINDOWS_SERVICE,
                    "reset=",
                    "86400",
                    "actions=",
                    "restart/5000/restart/5000/restart/5000",
                ],
                false,
            ));
            if opts.app_source.is_some() {
                steps.push(cmd(
                    &[
                        "reg.exe",
                        "add",
                        WINDOWS_RUN_KEY,
                        "/v",
                        "Rampart",
                        "/t",
                        "REG_SZ",
                        "/d",
                        &render::windows_command_line(&app_exec),
                        "/f",
                    ],
                    false,
                ));
            }
            steps.push(cmd(&["sc.exe", "start", render::WINDOWS_SERVICE], false));
        }
    }
    Plan { steps }
}

/// The steps of `rampart-installer configure`: the install config alone,
/// for a package that installs the binaries and the service itself (the MSI
/// runs it as a deferred custom action with its public properties). On
/// Windows it also puts the data directory's ACLs in place, which the MSI
/// does not; elsewhere `None` changes nothing.
pub fn configure_plan(
    layout: &Layout,
    config: Option<Vec<u8>>,
    report_secret: Option<&zeroize::Zeroizing<String>>,
) -> Plan {
    let windows = layout.os == TargetOs::Windows;
    if config.is_none() && !windows {
        return Plan::default();
    }
    let dir = |path: &Path, mode| Step::Dir {
        path: path.to_owned(),
        mode,
        owner: layout.owner.clone(),
    };
    let mut steps = vec![dir(&layout.config_dir, 0o755)];
    let mut acls: Vec<Step> = Vec::new();
    if windows {
        acls = data_acl_steps(layout, config.is_some(), false, report_secret.is_some());
        // As in `install_plan`: the root's ACL before any file in it.
        steps.push(acls.remove(0));
    }
    if let Some(contents) = config {
        steps.push(Step::File {
            path: layout.config_file.clone(),
            mode: 0o644,
            owner: layout.owner.clone(),
            contents,
        });
    }
    if let Some(secret) = report_secret {
        steps.push(report_secret_step(layout, secret));
    }
    if windows {
        steps.push(dir(&layout.state_dir, 0o700));
        steps.push(dir(&layout.log_dir, 0o750));
        steps.extend(acls);
    }
    Plan { steps }
}

/// The Windows ACL steps for the data directory and the files this plan
/// writes in it, the root's first.
fn data_acl_steps(
    layout: &Layout,
    writes_config: bool,
    writes_ca: bool,
    writes_secret: bool,
) -> Vec<Step> {
    let config_files: Vec<PathBuf> = writes_config
        .then(|| layout.config_file.clone())
        .into_iter()
        .chain(writes_ca.then(|| layout.extra_ca_file()))
        .collect();
    let secret_files: Vec<PathBuf> = writes_secret
        .then(|| layout.report_secret_file())
        .into_iter()
        .collect();
    winsec::data_layout(
        &layout.config_dir,
        &config_files,
        &secret_files,
        &layout.state_dir,
        &layout.log_dir,
    )
    .into_iter()
    .map(|g| Step::Acl {
        path: g.path,
        sddl: g.sddl,
    })
    .collect()
}

/// The deployment secret's file: root's (SYSTEM's) alone, since whoever
/// reads it can report for any device of the fleet.
fn report_secret_step(layout: &Layout, secret: &zeroize::Zeroizing<String>) -> Step {
    Step::File {
        path: layout.report_secret_file(),
        mode: 0o600,
        owner: layout.owner.clone(),
        contents: format!("{}\n", secret.trim()).into_bytes(),
    }
}

/// `configure --remove`: the install config goes, everything else in the
/// config directory (MDM's policy file, the Duo key) stays.
pub fn unconfigure_plan(layout: &Layout) -> Plan {
    Plan {
        steps: vec![Step::Remove {
            path: layout.config_file.clone(),
        }],
    }
}

/// The steps that remove what [`install_plan`] installed; `purge` also
/// removes state, logs and the whole config directory (MDM's files too).
pub fn uninstall_plan(layout: &Layout, purge: bool) -> Plan {
    let cmd = |words: &[&str], may_fail| Step::Command {
        argv: argv(words),
        when: When::Uninstall,
        may_fail,
    };
    let rm = |p: &Path| Step::Remove { path: p.to_owned() };
    let mut steps = Vec::new();
    match layout.os {
        TargetOs::Linux => steps.push(cmd(
            &["systemctl", "disable", "--now", render::SYSTEMD_UNIT],
            true,
        )),
        TargetOs::Macos => steps.push(cmd(
            &[
                "launchctl",
                "bootout",
                &format!("system/{}", render::LAUNCHD_AGENT_LABEL),
            ],
            true,
        )),
        TargetOs::Windows => {
            steps.push(cmd(&["sc.exe", "stop", render::WINDOWS_SERVICE], true));
            steps.push(cmd(&["sc.exe", "delete", render::WINDOWS_SERVICE], true));
            steps.push(cmd(
                &["reg.exe", "delete", WINDOWS_RUN_KEY, "/v", "Rampart", "/f"],
                true,
            ));
        }
    }
    for f in [&layout.service_file, &layout.app_autostart_file]
        .into_iter()
        .flatten()
    {
        steps.push(rm(f));
    }
    steps.push(rm(&layout.agent_bin));
    steps.push(rm(&layout.app_bin));
    // A PAM line that still names the module fails closed (the module is
    // gone): docs/signin.md says to take the line out first.
    if let Some(module) = &layout.pam_module {
        steps.push(rm(module));
        if let Some(lib) = module.parent() {
            steps.push(rm(lib));
        }
    }
    // What self-update leaves beside the binary while it works.
    for d in layout.bin_dirs.iter().rev() {
        steps.push(rm(d));
    }
    steps.push(rm(&layout.config_file));
    if purge {
        // macOS keeps state inside the config directory: purge it first.
        steps.push(Step::RemoveTree {
            path: layout.state_dir.clone(),
        });
        steps.push(Step::RemoveTree {
            path: layout.log_dir.clone(),
        });
        steps.push(Step::RemoveTree {
            path: layout.config_dir.clone(),
        });
    } else {
        steps.push(rm(&layout.log_dir));
        steps.push(rm(&layout.config_dir));
    }
    if layout.os == TargetOs::Linux {
        steps.push(cmd(&["systemctl", "daemon-reload"], false));
    }
    Plan { steps }
}
