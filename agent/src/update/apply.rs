//! The imperative shell of self-update: ask the feed, decide, and if the
//! decision is to update: check that the binary's folder can be written
//! (before downloading anything), take the update lock, finish or undo any
//! interrupted swap, download the archive within its bounds into the state
//! directory, check its zipsign signature against the pinned keys, extract
//! the binary beside the installed one, check its own `--version`, and swap
//! through the journal (`swap`). The service's swap ends in a trial
//! (`health`): the floor rises only once the new binary has served.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use rampart_shared::policy::UpdateChannel;
use rampart_shared::version::Version;
use semver::Version as Semver;

use super::fetch::{self, DownloadLimits};
use super::release::{self, Offer};
use super::swap::{self, Journal, Phase, UpdateLock};
use super::{ClockFacts, UpdateDecision, UpdateOutcome, archive, decide, floor};
use crate::config::{InstallConfigError, UpdateSource};

/// The binary's name in release archives (`rampart-agent` or
/// `rampart-agent.exe` at the archive's root).
pub const BIN_NAME: &str = "rampart-agent";

/// The extracted binary is bigger than this only in a broken archive.
const MAX_BINARY_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct UpdateRequest {
    pub source: UpdateSource,
    /// Release-signing Ed25519 keys from the install config; never empty
    /// (the install config refuses an update_source without keys).
    pub keys: Vec<[u8; 32]>,
    pub channel: UpdateChannel,
    pub min_version: Option<Version>,
    pub clock: ClockFacts,
    pub state_dir: PathBuf,
    /// The binary to replace: the running one.
    pub exe: PathBuf,
    pub current: Semver,
    /// `false`: only check and say what would happen.
    pub apply: bool,
    /// The service: leave the swap in its trial phase; the new binary must
    /// reach "serving" (`health::run_trial`) before the floor rises.
    pub trial: bool,
    pub limits: DownloadLimits,
    /// The install config's `extra_ca_file`, trusted beside the system's
    /// roots for the feed and the download.
    pub extra_ca_file: Option<PathBuf>,
}

/// Why the service cannot even build a request.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The install config's `update_public_keys` cannot be decoded.
    #[error("{0}")]
    Keys(InstallConfigError),
    #[error("cannot find this binary's path: {0}")]
    CurrentExe(io::Error),
}

/// Why `binary --version` does not say which version a binary is.
#[derive(Debug, thiserror::Error)]
pub enum BinaryVersionError {
    #[error("cannot run {binary} --version: {error}")]
    Run { binary: PathBuf, error: io::Error },
    #[error("{binary} --version failed ({status})")]
    Failed { binary: PathBuf, status: ExitStatus },
    /// `answer`: its output, trimmed.
    #[error("{binary} --version answered \"{answer}\": {error}")]
    Answer {
        binary: PathBuf,
        answer: String,
        error: release::TagError,
    },
}

/// Checks the feed and, when [`decide`] says so and `apply` is set, updates.
pub async fn check_and_apply(req: UpdateRequest) -> UpdateOutcome {
    if req.keys.is_empty() {
        return UpdateOutcome::failed(
            "no release-signing key is set in the install config",
            "update_public_keys is empty",
        );
    }
    let floor = match floor::load(&req.state_dir, &req.current) {
        Ok(f) => f,
        Err(e) => {
            return UpdateOutcome::failed(
                "the record of installed versions is damaged",
                e.to_string(),
            );
        }
    };
    // A badly wrong clock pauses before any network traffic.
    if let Some(paused) = super::clock_pause(req.clock) {
        return UpdateOutcome::Decided(paused, Vec::new());
    }
    let url = feed_url(&req.source, req.channel);
    let listing = match fetch::listing(req.source.kind, &url, req.extra_ca_file.as_deref()).await {
        Ok(l) => l,
        Err(e) => {
            return UpdateOutcome::CheckFailed {
                words: e.words,
                details: e.details,
            };
        }
    };
    let offer = release::newest(&listing, req.channel, &floor.bad);
    let decision = decide(
        &req.current,
        &floor.floor,
        req.min_version,
        offer.map(|o| &o.version),
        req.channel,
        req.clock,
    );
    let unreadable = listing.unreadable.clone();
    let (UpdateDecision::Update { to }, Some(offer), true) = (&decision, offer, req.apply) else {
        return UpdateOutcome::Decided(decision, unreadable);
    };
    tracing::info!(from = %req.current, %to, "updating");
    match install(&req, offer, &floor.floor).await {
        Ok(()) => UpdateOutcome::Updated {
            from: req.current.clone(),
            to: to.clone(),
        },
        Err(outcome) => {
            tracing::warn!("{outcome}");
            outcome
        }
    }
}

/// The feed's URL for a channel: `{channel}` in the configured URL becomes
/// `stable` or `beta`, so each channel can be a feed of its own.
fn feed_url(source: &UpdateSource, channel: UpdateChannel) -> String {
    let name = match channel {
        UpdateChannel::Stable => "stable",
        UpdateChannel::Beta => "beta",
    };
    source.url.replace("{channel}", name)
}

/// Whether the binary's folder takes a new file, before anything is
/// downloaded: probed with a file of this process's own (never the staged
/// binary another updater may be writing), named so that recovery removes
/// it if a kill leaves it.
fn check_writable(exe: &Path) -> Result<(), io::Error> {
    let mut name = swap::staging_path(exe).into_os_string();
    name.push(format!(".probe-{}", std::process::id()));
    let probe = PathBuf::from(name);
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

async fn install(req: &UpdateRequest, offer: &Offer, floor: &Semver) -> Result<(), UpdateOutcome> {
    let to = offer.version.clone();
    let fail = |words: String, details: String| UpdateOutcome::Failed {
        to: Some(to.clone()),
        words,
        details,
    };
    let dir = req.exe.parent().unwrap_or(Path::new("."));
    if let Err(e) = check_writable(&req.exe) {
        return Err(fail(
            format!(
                "Rampart cannot write to {} (where it is installed), so it cannot replace itself; nothing was downloaded",
                dir.display()
            ),
            e.to_string(),
        ));
    }
    let Some(asset) = release::asset_for_this_computer(offer).cloned() else {
        return Err(fail(
            format!(
                "the release has no archive for this computer ({} {})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
            offer
                .assets
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
    };
    let state_dir = req.state_dir.clone();
    let exe = req.exe.clone();
    let prepared = tokio::task::spawn_blocking(move || -> Result<UpdateLock, (String, String)> {
        let lock = UpdateLock::acquire(&state_dir).map_err(|e| (e.to_string(), String::new()))?;
        swap::recover(&state_dir, &exe).map_err(|e| {
            (
                "an interrupted update could not be undone".to_owned(),
                e.to_string(),
            )
        })?;
        crate::fsutil::ensure_private_dir(&swap::tmp_dir(&state_dir)).map_err(|e| {
            (
                "the download folder cannot be made".to_owned(),
                e.to_string(),
            )
        })?;
        Ok(lock)
    })
    .await
    .map_err(|e| fail("the update task stopped".into(), e.to_string()))?
    .map_err(|(words, details)| fail(words, details))?;

    // The asset's own name only if it is a plain file name.
    let file_name = if asset.name.contains(['/', '\\']) || asset.name.starts_with('.') {
        "release.tar.gz".to_owned()
    } else {
        asset.name.clone()
    };
    let archive_path = swap::tmp_dir(&req.state_dir).join(&file_name);
    let max = asset.size.unwrap_or(fetch::DEFAULT_MAX_BYTES);
    let result = match fetch::download(
        &asset.url,
        &archive_path,
        max,
        req.limits,
        req.extra_ca_file.as_deref(),
    )
    .await
    {
        Err(e) => {
            let details = match &e {
                fetch::DownloadError::Net(n) => n.details.clone(),
                other => other.to_string(),
            };
            Err(fail(e.to_string(), details))
        }
        Ok(bytes) => {
            tracing::info!(bytes, url = %asset.url, "release downloaded");
            let req = req.clone();
            let name = asset.name.clone();
            let floor = floor.clone();
            let to = to.clone();
            tokio::task::spawn_blocking(move || {
                put_in_place(&req, &archive_path, &name, &to, &floor)
            })
            .await
            .unwrap_or_else(|e| {
                Err(UpdateOutcome::failed(
                    "the update task stopped",
                    e.to_string(),
                ))
            })
        }
    };
    let _ = fs::remove_dir_all(swap::tmp_dir(&req.state_dir));
    drop(prepared);
    result
}

/// Signature, extraction, `--version`, swap; for the CLI also the floor.
fn put_in_place(
    req: &UpdateRequest,
    archive_path: &Path,
    name: &str,
    offered: &Semver,
    floor: &Semver,
) -> Result<(), UpdateOutcome> {
    let fail = |to: &Semver, words: String, details: String| UpdateOutcome::Failed {
        to: Some(to.clone()),
        words,
        details,
    };
    archive::verify(archive_path, name, &req.keys)
        .map_err(|e| fail(offered, e.to_string(), e.details()))?;
    let staged = swap::staging_path(&req.exe);
    let result = (|| {
        archive::extract_binary(archive_path, &staged, MAX_BINARY_BYTES)
            .map_err(|e| fail(offered, e.to_string(), e.details()))?;
        check_binary(&staged, offered, floor)
            .map_err(|(words, details)| fail(offered, words, details))?;
        let journal = Journal {
            phase: Phase::Swapping,
            exe: req.exe.clone(),
            to: offered.to_string(),
            from: req.current.to_string(),
        };
        let then = req.trial.then_some(Phase::Trial);
        swap::swap_in(&req.state_dir, &staged, &journal, then).map_err(|e| {
            fail(
                offered,
                "the new binary could not be put in place".into(),
                e.to_string(),
            )
        })?;
        // The installed file itself must answer, or the previous comes back.
        if let Err((why, details)) = check_binary(&req.exe, offered, floor) {
            return Err(match swap::roll_back(&req.state_dir, &journal) {
                Ok(()) => UpdateOutcome::RolledBack {
                    to: offered.clone(),
                    why,
                },
                Err(e) => fail(
                    offered,
                    format!(
                        "the new binary failed ({why}) and the previous one could not be put back"
                    ),
                    format!("{details}; {e}"),
                ),
            });
        }
        if !req.trial {
            floor::raise(&req.state_dir, offered).map_err(|e| {
                fail(
                    offered,
                    "installed, but the version floor could not be recorded".into(),
                    e.to_string(),
                )
            })?;
        }
        Ok(())
    })();
    let _ = fs::remove_file(&staged);
    result
}

/// Runs `binary --version` and checks it is exactly `to` (and not below the
/// floor): the tag a release is served under proves nothing about the binary
/// inside, even when the archive is properly signed. The error: plain words
/// and the raw text.
pub fn check_binary(binary: &Path, to: &Semver, floor: &Semver) -> Result<(), (String, String)> {
    let found = binary_version(binary).map_err(|e| {
        (
            "the new binary does not say which version it is".to_owned(),
            e.to_string(),
        )
    })?;
    if found < *floor {
        return Err((
            format!(
                "the archive offered as {to} holds rampart-agent {found}, older than {floor}, the newest version installed here"
            ),
            String::new(),
        ));
    }
    if found != *to {
        return Err((
            format!("the archive offered as {to} holds rampart-agent {found}"),
            String::new(),
        ));
    }
    Ok(())
}

pub fn binary_version(binary: &Path) -> Result<Semver, BinaryVersionError> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|error| BinaryVersionError::Run {
            binary: binary.to_owned(),
            error,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(BinaryVersionError::Failed {
            binary: binary.to_owned(),
            status: out.status,
        });
    }
    // clap prints "rampart-agent 1.2.3".
    let word = text.split_whitespace().nth(1).unwrap_or_default();
    release::parse_tag(word).map_err(|error| BinaryVersionError::Answer {
        binary: binary.to_owned(),
        answer: text.trim().to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpdateSourceKind;

    #[test]
    fn the_channel_picks_the_feed() {
        let source = UpdateSource {
            kind: UpdateSourceKind::Manifest,
            url: "https://r.example.com/{channel}/manifest.json".into(),
        };
        assert_eq!(
            feed_url(&source, UpdateChannel::Beta),
            "https://r.example.com/beta/manifest.json"
        );
        assert_eq!(
            swap::staging_path(Path::new("/opt/rampart/bin/rampart-agent")),
            Path::new("/opt/rampart/bin/.rampart-agent.update")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_binary_is_checked_by_what_it_says_not_by_its_tag() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rampart-agent");
        fs::write(&bin, "#!/bin/sh\necho rampart-agent 1.1.0-beta.2\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let v = |s: &str| Semver::parse(s).unwrap();
        let check = |to, floor| check_binary(&bin, &v(to), &v(floor)).map_err(|e| e.0);
        assert_eq!(check("1.1.0-beta.2", "1.0.0"), Ok(()));
        assert_eq!(
            check("2.0.0", "1.0.0").unwrap_err(),
            "the archive offered as 2.0.0 holds rampart-agent 1.1.0-beta.2"
        );
        assert!(
            check("2.0.0", "1.1.0")
                .unwrap_err()
                .contains("older than 1.1.0")
        );
    }
}
