//! The imperative shell of self-update: ask the feed, decide, and if the
//! decision is to update, let self_update download the archive, check its
//! zipsign signature against the pinned keys and extract it *beside* the
//! binary; check the extracted binary's own `--version`; keep the previous
//! binary in the state directory; swap; check `--version` again and put the
//! previous one back if the new one does not answer.
//!
//! self_update's HTTP client is blocking: [`check_and_apply`] runs it on a
//! blocking thread.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use rampart_shared::policy::UpdateChannel;
use rampart_shared::version::{Version, VersionError};

use super::{ClockFacts, UpdateDecision, UpdateOutcome, decide, floor};
use crate::config::{InstallConfigError, UpdateSource, UpdateSourceKind};
use crate::fsutil::FsError;

/// The binary's name in release archives (`rampart-agent` or
/// `rampart-agent.exe` at the archive's root).
pub const BIN_NAME: &str = "rampart-agent";

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
    pub current: Version,
    /// `false`: only check and say what would happen.
    pub apply: bool,
}

/// Why a self-update could not be asked for, checked or carried out. The
/// words end up in `UpdateOutcome::Failed`, the status and the log.
// Each cause's words are part of its variant's message, so no variant names
// them as its `source`: an error chain would say them twice.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The install config's `update_public_keys` cannot be decoded.
    #[error("{0}")]
    Keys(InstallConfigError),
    #[error("cannot find this binary's path: {0}")]
    CurrentExe(io::Error),
    #[error("\"{0}\" is not a GitHub API repository URL (…/repos/OWNER/NAME)")]
    NotGithubRepo(String),
    #[error("\"{0}\" does not end in /repos/OWNER/NAME")]
    NoOwnerName(String),
    #[error("cannot read the release feed: {0}")]
    Feed(self_update::errors::Error),
    #[error("the feed's newest release: {0}")]
    FeedVersion(VersionError),
    /// Download, signature, extraction or our `--version` check (through
    /// `verify_binary`): self_update's words.
    #[error("{0}")]
    Download(self_update::errors::Error),
    #[error("the feed no longer offers {0}")]
    NoLongerOffered(Version),
    #[error(
        "the archive offered as {to} holds rampart-agent {found}, older than {floor}, the newest version installed here"
    )]
    BelowFloor {
        to: Version,
        found: Version,
        floor: Version,
    },
    #[error("the archive offered as {to} holds rampart-agent {found}")]
    NotAsOffered { to: Version, found: Version },
    #[error("{0}")]
    Version(BinaryVersionError),
    /// The directory the previous binary is kept in.
    #[error("{0}")]
    KeepDir(FsError),
    #[error("cannot keep a copy of {exe}: {error}")]
    KeepCopy { exe: PathBuf, error: io::Error },
    #[error("cannot make the new binary executable: {0}")]
    Executable(io::Error),
    #[error("cannot put the new binary in place: {0}")]
    PutInPlace(io::Error),
    #[error("the new binary failed ({why}); the previous one is back in place")]
    RolledBack { why: Misfit },
    #[error("the new binary failed ({why}) and the previous one could not be put back: {error}")]
    NotRolledBack { why: Misfit, error: io::Error },
    #[error("installed, but cannot record the version floor: {0}")]
    Floor(floor::FloorError),
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
        error: VersionError,
    },
}

/// Why the binary just put in place is not the one meant: it names another
/// version, or none.
#[derive(Debug, thiserror::Error)]
pub enum Misfit {
    #[error("it says it is {0}")]
    Says(Version),
    #[error("{0}")]
    NoVersion(BinaryVersionError),
}

/// Checks the feed and, when [`decide`] says so and `apply` is set, updates.
pub async fn check_and_apply(request: UpdateRequest) -> UpdateOutcome {
    match tokio::task::spawn_blocking(move || check_and_apply_blocking(&request)).await {
        Ok(outcome) => outcome,
        Err(e) => UpdateOutcome::Failed(format!("the update task stopped: {e}")),
    }
}

pub fn check_and_apply_blocking(req: &UpdateRequest) -> UpdateOutcome {
    if req.keys.is_empty() {
        return UpdateOutcome::Failed("no release-signing key is pinned".into());
    }
    let floor = match floor::load(&req.state_dir, req.current) {
        Ok(f) => f,
        Err(e) => return UpdateOutcome::Failed(e.to_string()),
    };
    // A badly wrong clock pauses before any network traffic.
    if let Some(paused) = super::clock_pause(req.clock) {
        return UpdateOutcome::Decided(paused);
    }
    let offered = match newest_offered(req) {
        Ok(v) => v,
        Err(e) => return UpdateOutcome::Failed(e.to_string()),
    };
    let decision = decide(
        req.current,
        floor,
        req.min_version,
        offered,
        req.channel,
        req.clock,
    );
    let UpdateDecision::Update { to } = decision else {
        return UpdateOutcome::Decided(decision);
    };
    if !req.apply {
        return UpdateOutcome::Decided(decision);
    }
    tracing::info!(from = %req.current, %to, "updating");
    match install(req, to, floor) {
        Ok(()) => UpdateOutcome::Updated {
            from: req.current,
            to,
        },
        Err(why) => {
            tracing::warn!("update to {to} failed: {why}");
            UpdateOutcome::Failed(why.to_string())
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

/// `https://host/api/v3/repos/OWNER/NAME` -> (`https://host/api/v3`, OWNER, NAME).
fn github_parts(url: &str) -> Result<(String, String, String), UpdateError> {
    let url = url.trim_end_matches('/');
    let (base, repo) = url
        .rsplit_once("/repos/")
        .ok_or_else(|| UpdateError::NotGithubRepo(url.to_owned()))?;
    let (owner, name) = repo
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| UpdateError::NoOwnerName(url.to_owned()))?;
    Ok((base.to_owned(), owner.to_owned(), name.to_owned()))
}

/// Settings every self_update builder gets, whatever the backend.
macro_rules! common_settings {
    ($builder:expr, $req:expr) => {
        $builder
            .bin_name(BIN_NAME)
            .current_version($req.current.to_string())
            .verifying_keys($req.keys.clone())
            .no_confirm(true)
            .show_output(false)
            .show_download_progress(false)
            // Our own decision chose the version; "compatible" (no major
            // bump) is not a rule of ours.
            .update_strategy(self_update::UpdateStrategy::Latest)
    };
}

fn newest_offered(req: &UpdateRequest) -> Result<Option<Version>, UpdateError> {
    let url = feed_url(&req.source, req.channel);
    let latest = match req.source.kind {
        UpdateSourceKind::Github => {
            let (base, owner, name) = github_parts(&url)?;
            let mut b = self_update::backends::github::Update::configure();
            common_settings!(b.api_base_url(base).repo_owner(owner).repo_name(name), req);
            b.build().and_then(|u| u.get_latest_release())
        }
        UpdateSourceKind::Manifest => {
            let mut b = self_update::backends::manifest::Update::configure();
            common_settings!(b.manifest_url(url), req);
            b.build().and_then(|u| u.get_latest_release())
        }
    };
    let releases = match latest {
        Ok(r) => r,
        Err(self_update::errors::Error::NoReleaseFound { .. }) => return Ok(None),
        Err(e) => return Err(UpdateError::Feed(e)),
    };
    let Some(release) = releases.latest() else {
        return Ok(None);
    };
    release
        .version()
        .trim_start_matches('v')
        .parse()
        .map(Some)
        .map_err(UpdateError::FeedVersion)
}

/// `<dir>/.rampart-agent.update`: beside the binary, so that the final
/// rename stays on one filesystem.
fn staging_path(exe: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(exe.file_name().unwrap_or_default());
    name.push(".update");
    exe.with_file_name(name)
}

fn install(req: &UpdateRequest, to: Version, floor: Version) -> Result<(), UpdateError> {
    let staging = staging_path(&req.exe);
    let _ = fs::remove_file(&staging);
    let result = download_verified(req, to, floor, &staging).and_then(|()| swap(req, to, &staging));
    let _ = fs::remove_file(&staging);
    result?;
    floor::raise(&req.state_dir, to).map_err(UpdateError::Floor)?;
    Ok(())
}

/// self_update: download, signature, extract, our `--version` check, then
/// move the new binary to `staging` (never over the running one).
fn download_verified(
    req: &UpdateRequest,
    to: Version,
    floor: Version,
    staging: &Path,
) -> Result<(), UpdateError> {
    let url = feed_url(&req.source, req.channel);
    let verify = move |path: &Path| {
        check_binary(path, to, floor)
            .map_err(|e| self_update::errors::Error::verification_rejected(e.to_string()))
    };
    let status = match req.source.kind {
        UpdateSourceKind::Github => {
            let (base, owner, name) = github_parts(&url)?;
            let mut b = self_update::backends::github::Update::configure();
            common_settings!(b.api_base_url(base).repo_owner(owner).repo_name(name), req)
                .bin_install_path(staging)
                .verify_binary(verify);
            b.build().and_then(|u| u.update_extended())
        }
        UpdateSourceKind::Manifest => {
            let mut b = self_update::backends::manifest::Update::configure();
            common_settings!(b.manifest_url(url), req)
                .bin_install_path(staging)
                .verify_binary(verify);
            b.build().and_then(|u| u.update_extended())
        }
    }
    .map_err(UpdateError::Download)?;
    if status.is_up_to_date() || !staging.is_file() {
        return Err(UpdateError::NoLongerOffered(to));
    }
    Ok(())
}

/// Runs `binary --version` and checks it is exactly `to` (and not below the
/// floor): the tag a release is served under proves nothing about the binary
/// inside, even when the archive is properly signed.
pub fn check_binary(binary: &Path, to: Version, floor: Version) -> Result<(), UpdateError> {
    let found = binary_version(binary).map_err(UpdateError::Version)?;
    if found < floor {
        return Err(UpdateError::BelowFloor { to, found, floor });
    }
    if found != to {
        return Err(UpdateError::NotAsOffered { to, found });
    }
    Ok(())
}

fn binary_version(binary: &Path) -> Result<Version, BinaryVersionError> {
    let out = Command::new(binary)
        .arg("--version")
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
    word.parse().map_err(|error| BinaryVersionError::Answer {
        binary: binary.to_owned(),
        answer: text.trim().to_owned(),
        error,
    })
}

/// Keeps the running binary as `state_dir/update/<name>.previous`, renames
/// the staged one over it, and puts the previous one back if the new one
/// does not answer `--version` as `to`.
fn swap(req: &UpdateRequest, to: Version, staging: &Path) -> Result<(), UpdateError> {
    let keep_dir = req.state_dir.join("update");
    crate::fsutil::ensure_private_dir(&keep_dir).map_err(UpdateError::KeepDir)?;
    let previous = keep_dir.join(format!("{BIN_NAME}.previous"));
    fs::copy(&req.exe, &previous).map_err(|error| UpdateError::KeepCopy {
        exe: req.exe.clone(),
        error,
    })?;
    crate::fsutil::set_mode(staging, 0o755).map_err(UpdateError::Executable)?;
    fs::rename(staging, &req.exe).map_err(UpdateError::PutInPlace)?;
    let why = match binary_version(&req.exe) {
        Ok(v) if v == to => return Ok(()),
        Ok(v) => Misfit::Says(v),
        Err(e) => Misfit::NoVersion(e),
    };
    match restore(&previous, &req.exe, staging) {
        Ok(()) => Err(UpdateError::RolledBack { why }),
        Err(error) => Err(UpdateError::NotRolledBack { why, error }),
    }
}

fn restore(previous: &Path, exe: &Path, staging: &Path) -> io::Result<()> {
    fs::copy(previous, staging)?;
    crate::fsutil::set_mode(staging, 0o755)?;
    fs::rename(staging, exe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_urls_split_into_base_owner_and_name() {
        assert_eq!(
            github_parts("https://api.github.com/repos/acme/rampart").unwrap(),
            (
                "https://api.github.com".into(),
                "acme".into(),
                "rampart".into()
            )
        );
        assert_eq!(
            github_parts("http://127.0.0.1:9/api/v3/repos/a/b/")
                .unwrap()
                .0,
            "http://127.0.0.1:9/api/v3"
        );
        assert!(github_parts("https://api.github.com/acme/rampart").is_err());
        assert!(github_parts("https://x/repos/acme").is_err());
    }

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
            staging_path(Path::new("/opt/rampart/bin/rampart-agent")),
            Path::new("/opt/rampart/bin/.rampart-agent.update")
        );
    }

    /// A failed swap says what the new binary said, and whether the
    /// previous one is back.
    #[test]
    fn a_failed_swap_says_why_and_what_is_in_place() {
        let rolled_back = UpdateError::RolledBack {
            why: Misfit::Says("2.0.0".parse().unwrap()),
        };
        assert_eq!(
            rolled_back.to_string(),
            "the new binary failed (it says it is 2.0.0); the previous one is back in place"
        );
        let stuck = UpdateError::NotRolledBack {
            why: Misfit::NoVersion(BinaryVersionError::Run {
                binary: PathBuf::from("/x/rampart-agent"),
                error: io::Error::other("gone"),
            }),
            error: io::Error::other("disk full"),
        };
        assert_eq!(
            stuck.to_string(),
            "the new binary failed (cannot run /x/rampart-agent --version: gone) and the previous \
             one could not be put back: disk full"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_binary_is_checked_by_what_it_says_not_by_its_tag() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rampart-agent");
        fs::write(&bin, "#!/bin/sh\necho rampart-agent 1.1.0\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let v = |s: &str| s.parse::<Version>().unwrap();
        let check = |to, floor| check_binary(&bin, v(to), v(floor)).map_err(|e| e.to_string());
        assert_eq!(check("1.1.0", "1.0.0"), Ok(()));
        assert_eq!(
            check("2.0.0", "1.0.0").unwrap_err(),
            "the archive offered as 2.0.0 holds rampart-agent 1.1.0"
        );
        assert!(
            check("2.0.0", "1.5.0")
                .unwrap_err()
                .contains("older than 1.5.0")
        );
    }
}
