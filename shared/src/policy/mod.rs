//! Policy schema v1: what IT decides, as a JSON document.
//!
//! Untrusted input goes through [`parse_policy`], which walks the JSON once and
//! reports *every* problem with its JSON path (`mfa.provider.kind: unknown value
//! "dou", expected one of: totp, duo`), instead of serde's first error only.
//! Unknown fields are errors everywhere: a misspelt `requried` must not
//! silently leave MFA off. The serde derives are for documents that already
//! passed this check (IPC, the last-known-good copy written by the agent).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::version::Version;

pub const POLICY_SCHEMA: u64 = 1;

/// Where the built-in links point: the project's own documentation.
pub const DOCS_BASE_URL: &str = "https://github.com/rampart-security/rampart/blob/main/docs";

/// Largest policy document the agent will read, from any source.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub schema: u64,
    /// Increases with every document IT publishes; the agent never goes back.
    pub serial: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Shown to the employee and used as the authenticator app's issuer.
    pub organization: String,
    pub mfa: MfaPolicy,
    pub clock: ClockPolicy,
    pub links: Links,
    pub agent: AgentPolicy,
    pub reporting: Option<Reporting>,
    /// How often the agent polls the policy URL.
    pub poll_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfaPolicy {
    pub required: bool,
    pub provider: Provider,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Provider {
    /// The built-in RFC 6238 provider: works with any authenticator app, offline.
    Totp,
    /// Duo Auth API v2. The secret key lives in a 0600 file, never in policy.
    Duo {
        api_host: String,
        integration_key: String,
        secret_key_file: String,
        /// `{user}` is replaced by the login name.
        username: String,
    },
}

impl Provider {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::Totp => ProviderKind::Totp,
            Self::Duo { .. } => ProviderKind::Duo,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    Totp,
    Duo,
}

impl ProviderKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Totp => "authenticator app (TOTP)",
            Self::Duo => "Duo",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockPolicy {
    /// `host`, `host:port`, or `[v6]:port`.
    pub ntp_servers: Vec<String>,
    pub max_skew_secs: u64,
    pub check_interval_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Links {
    pub offline_guide_url: String,
    pub support_url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    pub min_version: Option<Version>,
    pub update_channel: UpdateChannel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateChannel {
    Stable,
    Beta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reporting {
    pub url: String,
    pub interval_secs: u64,
}

impl Default for Policy {
    /// The built-in policy: what a fresh machine runs before IT says anything.
    fn default() -> Self {
        Self {
            schema: POLICY_SCHEMA,
            serial: 0,
            expires_at: None,
            organization: "Rampart".to_owned(),
            mfa: MfaPolicy {
                required: true,
                provider: Provider::Totp,
            },
            clock: ClockPolicy {
                ntp_servers: ["time.apple.com", "time.windows.com", "pool.ntp.org"]
                    .map(str::to_owned)
                    .to_vec(),
                max_skew_secs: 30,
                check_interval_secs: 3600,
            },
            links: Links {
                offline_guide_url: format!("{DOCS_BASE_URL}/offline-access.md"),
                support_url: format!("{DOCS_BASE_URL}/support.md"),
            },
            agent: AgentPolicy {
                min_version: None,
                update_channel: UpdateChannel::Stable,
            },
            reporting: None,
            poll_interval_secs: 900,
        }
    }
}

/// One thing wrong with a policy document, at a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `mfa.provider.kind`, `clock.ntp_servers[2]`; empty for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is larger than {MAX_POLICY_BYTES} bytes ({0} bytes)")]
    TooLarge(usize),
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    #[error("policy has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::Invalid(problems) => problems.clone(),
            other => vec![Problem {
                path: String::new(),
                message: other.to_string(),
            }],
        }
    }
}

/// Parses and validates an untrusted policy document. A key given twice in
/// one object is a problem at its path, like any other: `serde_json` would
/// silently keep the last one, so a signed `"serial": 17, …, "serial": 50`
/// would mean 50 to the agent while a reviewer (or another parser) read 17.
pub fn parse_policy(bytes: &[u8]) -> Result<Policy, PolicyError> {
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(PolicyError::TooLarge(bytes.len()));
    }
    let mut duplicates = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde::de::DeserializeSeed::deserialize(
        dupcheck::Seed {
            path: String::new(),
            duplicates: &mut duplicates,
        },
        &mut de,
    )
    .and_then(|value| de.end().map(|()| value))
    .map_err(|e| PolicyError::Json(e.to_string()))?;
    match (policy_from_value(&value), duplicates.is_empty()) {
        (result, true) => result,
        (result, false) => {
            let mut problems = duplicates;
            problems.extend(result.err().map(|e| e.problems()).unwrap_or_default());
            Err(PolicyError::Invalid(problems))
        }
    }
}

mod dupcheck;
mod validate;

pub use validate::policy_from_value;

#[cfg(test)]
mod tests;
