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
//!   "allow_unsigned_local_policy": false
//! }
//! ```
//!
//! Unknown fields are errors, like in policy: a misspelt `public_key` must not
//! silently leave the agent trusting nothing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, FsError};
use crate::policy::verify::{PinnedKey, PinnedKeys};

/// Largest install config the agent reads.
pub const MAX_INSTALL_CONFIG_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Read(#[from] FsError),
    #[error("install config {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
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
            .map_err(|message| ConfigError::Invalid {
                path: path.to_owned(),
                message,
            })
    }

    /// Parses and checks an install config; the error names the field.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let config: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.device_id.trim().is_empty() || self.device_id.chars().any(char::is_control) {
            return Err("device_id: must be a non-empty line of text".into());
        }
        if let Some(url) = &self.policy_url {
            crate::policy::fetch::check_policy_url(url).map_err(|e| format!("policy_url: {e}"))?;
            if self.public_keys.is_empty() {
                return Err(
                    "public_keys: a policy_url needs at least one public key, remote policy is never accepted unsigned"
                        .into(),
                );
            }
        }
        self.pinned_keys()?;
        Ok(())
    }

    /// The public keys, decoded. Errors name the key's index.
    pub fn pinned_keys(&self) -> Result<PinnedKeys, String> {
        let mut keys = Vec::with_capacity(self.public_keys.len());
        for (i, text) in self.public_keys.iter().enumerate() {
            keys.push(PinnedKey::parse(text).map_err(|e| format!("public_keys[{i}]: {e}"))?);
        }
        Ok(PinnedKeys::new(keys))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

    fn parse(json: &str) -> Result<InstallConfig, String> {
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
            let err = parse(json).unwrap_err();
            assert!(err.contains(want), "{json}: {err}");
        }
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
