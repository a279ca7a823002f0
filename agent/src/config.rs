//! The install config: what the installer or an MDM profile writes next to the
//! managed policy (`AgentPaths::install_config()`, JSON). It says where policy
//! comes from and whom to trust; it is not policy itself, and IT's policy
//! server cannot change it.
//!
//! ```json
//! {
//!   "device_id": "LAPTOP-0042",
//!   "policy_url": "https://policy.example.com/rampart/policy.json",
//!   "public_keys": ["RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"],
//!   "allow_unsigned_local_policy": false,
//!   "update_public_keys": ["ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTAxMjM="],
//!   "update_source": {"kind": "manifest", "url": "https://releases.example.com/rampart/manifest.json"}
//! }
//! ```
//!
//! Unknown fields are errors, like in policy: a misspelt `public_key` must not
//! silently leave the agent trusting nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};
use crate::policy::fetch::UrlError;
use crate::policy::verify::{PinnedKey, PinnedKeys};

/// Largest install config the agent reads.
pub const MAX_INSTALL_CONFIG_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallConfig {
    /// Identifies this device in reports to IT.
    pub device_id: String,
    /// Where `policy.json` lives; `policy.json.minisig` is expected beside it.
    /// `https://` required, except to loopback (127.0.0.0/8, ::1, localhost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_url: Option<String>,
    /// minisign public keys (the base64 line of a `.pub` file, or the whole
    /// file's text). A policy signed by any of them is trusted: list the old
    /// and the new key while rotating.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Accept a managed policy file that has no `.minisig` beside it.
    #[serde(default)]
    pub allow_unsigned_local_policy: bool,
    /// Ed25519 public keys (standard base64 of the 32 raw bytes, as
    /// `zipsign gen-key` writes them) that release archives must be signed
    /// with (zipsign). Separate from `public_keys`: signing policy and
    /// signing releases are different jobs, often different people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_public_keys: Vec<String>,
    /// Where the agent looks for new releases; none means it never updates
    /// itself (a package manager does, as with the .deb).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_source: Option<UpdateSource>,
    /// PEM certificates the Duo client trusts besides the system's roots:
    /// an on-prem TLS proxy's CA (and a test server's self-signed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<PathBuf>,
    /// Added with issue 15. The file holding the deployment secret, sent
    /// with each report as `Authorization: Bearer …` (docs/reporting.md).
    /// A file, not a field here: this file is readable by every user (doctor
    /// and diagnose read it), the secret's is the service's alone (0600;
    /// SYSTEM and Administrators on Windows). Absolute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_secret_file: Option<PathBuf>,
}

/// A release feed for self-update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSource {
    pub kind: UpdateSourceKind,
    /// `github`: the API base plus `owner/repo`, e.g.
    /// `https://api.github.com/repos/acme/rampart`; `manifest`: the URL of
    /// the manifest JSON. `https://` required, except to loopback.
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateSourceKind {
    /// GitHub-style releases API (`/releases`).
    Github,
    /// One static JSON listing releases: the easiest to self-host.
    Manifest,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] FsError),
    #[error("install config {path} is not valid: {error}")]
    Invalid {
        path: PathBuf,
        error: InstallConfigError,
    },
    /// MDM's settings (managed preferences, Group Policy) cannot be read
    /// as install config.
    #[error("the install config from MDM ({origin}) is not valid: {error}")]
    Mdm {
        origin: String,
        error: crate::mdm::MdmError,
    },
}

/// What is wrong with an install config's text. Every message starts with
/// the field it is about, so that IT can find it in the file; the installer
/// shows the same words.
#[derive(Debug, thiserror::Error)]
pub enum InstallConfigError {
    // The causes' words are part of each message, so no variant names them
    // as its `source`: an error chain would say them twice.
    /// Not JSON, an unknown or missing field, a wrong type: serde's words,
    /// which name the field.
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("device_id: must be a non-empty line of text")]
    DeviceId,
    #[error("policy_url: {0}")]
    PolicyUrl(UrlError),
    #[error(
        "public_keys: a policy_url needs at least one public key, remote policy is never accepted unsigned"
    )]
    NoPublicKeys,
    /// `reason`: `PinnedKey::parse`'s words.
    #[error("public_keys[{index}]: {reason}")]
    PublicKey { index: usize, reason: String },
    #[error(
        "report_secret_file: \"{0}\" must be an absolute path (the service does not run in the directory you are in)"
    )]
    RelativeSecretFile(PathBuf),
    #[error("update_source.url: {0}")]
    UpdateSourceUrl(UrlError),
    #[error(
        "update_public_keys: an update_source needs at least one key, releases are never installed unsigned"
    )]
    NoUpdateKeys,
    #[error("update_public_keys[{index}]: not base64: {reason}")]
    UpdateKeyNotBase64 {
        index: usize,
        reason: data_encoding::DecodeError,
    },
    #[error("update_public_keys[{index}]: an Ed25519 key is 32 bytes, this is {len}")]
    UpdateKeyLength { index: usize, len: usize },
}

impl InstallConfig {
    /// Reads the install config. `Ok(None)` when there is none (a dev machine,
    /// or an install without IT): built-in policy or an unsigned-refused
    /// managed file only.
    pub fn load(path: &Path) -> Result<Option<Self>, ConfigError> {
        let Some(bytes) = fsutil::read_capped(path, MAX_INSTALL_CONFIG_BYTES)? else {
            return Ok(None);
        };
        Self::parse(&bytes)
            .map(Some)
            .map_err(|error| ConfigError::Invalid {
                path: path.to_owned(),
                error,
            })
    }

    /// The install config in force: the file at `path` with what MDM set
    /// (macOS managed preferences, Windows Group Policy) over it, MDM
    /// winning per key (`crate::mdm`). What the service, doctor and
    /// diagnose read.
    pub fn load_effective(path: &Path) -> Result<Option<Self>, ConfigError> {
        crate::mdm::load_effective(path).map(|merged| merged.map(|m| m.config))
    }

    /// Parses and checks an install config; the error names the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, InstallConfigError> {
        let config: Self = serde_json::from_slice(bytes).map_err(InstallConfigError::Json)?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), InstallConfigError> {
        if self.device_id.trim().is_empty() || self.device_id.chars().any(char::is_control) {
            return Err(InstallConfigError::DeviceId);
        }
        if let Some(url) = &self.policy_url {
            crate::policy::fetch::check_policy_url(url).map_err(InstallConfigError::PolicyUrl)?;
            if self.public_keys.is_empty() {
                return Err(InstallConfigError::NoPublicKeys);
            }
        }
        self.pinned_keys()?;
        self.update_keys()?;
        if let Some(file) = &self.report_secret_file
            && !file.is_absolute()
        {
            return Err(InstallConfigError::RelativeSecretFile(file.clone()));
        }
        if let Some(source) = &self.update_source {
            crate::policy::fetch::check_policy_url(&source.url)
                .map_err(InstallConfigError::UpdateSourceUrl)?;
            if self.update_public_keys.is_empty() {
                return Err(InstallConfigError::NoUpdateKeys);
            }
        }
        Ok(())
    }

    /// The release-signing keys, decoded. Errors name the key's index.
    pub fn update_keys(&self) -> Result<Vec<[u8; 32]>, InstallConfigError> {
        self.update_public_keys
            .iter()
            .enumerate()
            .map(|(index, text)| {
                let bytes = data_encoding::BASE64
                    .decode(text.trim().as_bytes())
                    .map_err(|reason| InstallConfigError::UpdateKeyNotBase64 { index, reason })?;
                <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    InstallConfigError::UpdateKeyLength {
                        index,
                        len: bytes.len(),
                    }
                })
            })
            .collect()
    }

    /// The public keys, decoded. Errors name the key's index.
    pub fn pinned_keys(&self) -> Result<PinnedKeys, InstallConfigError> {
        let mut keys = Vec::with_capacity(self.public_keys.len());
        for (index, text) in self.public_keys.iter().enumerate() {
            keys.push(
                PinnedKey::parse(text)
                    .map_err(|reason| InstallConfigError::PublicKey { index, reason })?,
            );
        }
        Ok(PinnedKeys::new(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    fn parse(json: &str) -> Result<InstallConfig, InstallConfigError> {
        InstallConfig::parse(json.as_bytes())
    }

    #[test]
    fn a_full_config_parses_and_defaults_apply() {
        let c = parse(&format!(
            r#"{{"device_id": "d1", "policy_url": "https://p.example.com/policy.json", "public_keys": ["{KEY}"]}}"#
        ))
        .unwrap();
        assert_eq!(
            c.policy_url.as_deref(),
            Some("https://p.example.com/policy.json")
        );
        assert!(!c.allow_unsigned_local_policy);
        assert_eq!(c.pinned_keys().unwrap().len(), 1);
        let minimal = parse(r#"{"device_id": "d1"}"#).unwrap();
        assert_eq!(minimal.policy_url, None);
        assert!(minimal.public_keys.is_empty());
    }

    #[test]
    fn a_whole_pub_file_is_accepted_as_a_key() {
        let file = format!("untrusted comment: minisign public key 5F1A\\n{KEY}\\n");
        let c = parse(&format!(
            r#"{{"device_id": "d1", "public_keys": ["{file}"]}}"#
        ))
        .unwrap();
        assert_eq!(c.pinned_keys().unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"device_id": "d1", "public_key": []}"#,
                "unknown field `public_key`",
            ),
            (
                r#"{"policy_url": "https://x.example"}"#,
                "missing field `device_id`",
            ),
            (r#"{"device_id": " "}"#, "device_id: must be"),
            (
                r#"{"device_id": "d", "policy_url": "http://p.example.com/p.json", "public_keys": ["x"]}"#,
                "uses plain http, which is only allowed to loopback",
            ),
            (
                r#"{"device_id": "d", "policy_url": "https://p.example.com/p.json"}"#,
                "public_keys: a policy_url needs at least one public key",
            ),
            (
                r#"{"device_id": "d", "public_keys": ["not a key"]}"#,
                "public_keys[0]: ",
            ),
            (
                r#"{"device_id": "d", "allow_unsigned_local_policy": "yes"}"#,
                "invalid type: string",
            ),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    #[test]
    fn update_source_needs_keys_and_keys_must_be_ed25519() {
        let key = "ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTAxMjM=";
        let ok = parse(&format!(
            r#"{{"device_id": "d", "update_public_keys": ["{key}"],
                "update_source": {{"kind": "github", "url": "https://api.example.com/repos/a/b"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            ok.update_keys().unwrap(),
            [*b"fakekeyfakekeyfakekeyfakekey0123"]
        );
        assert_eq!(
            ok.update_source.map(|s| s.kind),
            Some(UpdateSourceKind::Github)
        );
        for (json, want) in [
            (
                r#"{"device_id": "d", "update_source": {"kind": "manifest", "url": "https://u.example.com/m.json"}}"#.to_owned(),
                "update_public_keys: an update_source needs at least one key",
            ),
            (
                r#"{"device_id": "d", "update_public_keys": ["AAAA"]}"#.to_owned(),
                "update_public_keys[0]: an Ed25519 key is 32 bytes, this is 3",
            ),
            (
                format!(
                    r#"{{"device_id": "d", "update_public_keys": ["{key}"], "update_source": {{"kind": "manifest", "url": "http://u.example.com/m.json"}}}}"#
                ),
                "update_source.url: ",
            ),
            (
                r#"{"device_id": "d", "update_source": {"kind": "s3", "url": "x"}}"#.to_owned(),
                "unknown variant `s3`",
            ),
        ] {
            let err = parse(&json).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
    }

    /// A config from before `report_secret_file` decodes without one, and
    /// the path must be absolute.
    #[test]
    fn report_secret_file_is_optional_and_absolute() {
        let old = parse(
            r#"{"device_id": "d1", "public_keys": [], "allow_unsigned_local_policy": false}"#,
        )
        .unwrap();
        assert_eq!(old.report_secret_file, None);
        assert!(
            !serde_json::to_string(&old)
                .unwrap()
                .contains("report_secret_file")
        );
        let abs = if cfg!(windows) {
            r#"C:\\ProgramData\\Rampart\\report.secret"#
        } else {
            "/etc/rampart/report.secret"
        };
        let c = parse(&format!(
            r#"{{"device_id": "d1", "report_secret_file": "{abs}"}}"#
        ))
        .unwrap();
        assert!(c.report_secret_file.is_some());
        let err = parse(r#"{"device_id": "d1", "report_secret_file": "report.secret"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("report_secret_file: \"report.secret\" must be an absolute path"),
            "{err}"
        );
    }

    #[test]
    fn loopback_http_is_allowed_for_tests() {
        let c = parse(&format!(
            r#"{{"device_id": "d", "policy_url": "http://127.0.0.1:8080/policy.json", "public_keys": ["{KEY}"]}}"#
        ));
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn load_reports_the_path_and_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.json");
        assert_eq!(InstallConfig::load(&path).unwrap(), None);
        fsutil::write_atomic(&path, b"{\"device_id\": 3}").unwrap();
        let err = InstallConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("install config {} is not valid: ", path.display())),
            "{err}"
        );
    }
}
