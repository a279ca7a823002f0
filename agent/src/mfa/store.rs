//! The per-user state file: `mfa-<uid>-<login name, percent-encoded>.json`
//! on Unix, `mfa-<SID>@<login name, percent-encoded>.json` on Windows (a SID
//! has dashes of its own; the encoding always escapes `@`), 0600 in a 0700
//! directory, replaced atomically on every change.
//!
//! Architecture invariant: [`StoredSecret`] is the only type whose `Serialize`
//! writes the TOTP secret, and it is private to this module; the file is the
//! secret's only way out of the agent after pairing.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rampart_shared::mfa::{EnrollmentStep, Evidence};
use rampart_shared::percent;
use rampart_shared::policy::ProviderKind;
use rampart_shared::signin::SigninCounts;
use rampart_shared::totp::Secret;
use rampart_shared::user::UserId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

use super::duo::types::DuoState;
use super::machine::{Enrollment, UserKey};
use super::recovery::{HashCost, RecoveryHash, from_hex, to_hex};
use crate::fsutil::{self, FsError};

pub const STATE_VERSION: u32 = 1;
const MAX_STATE_BYTES: u64 = 64 * 1024;
const PREFIX: &str = "mfa-";
const SUFFIX: &str = ".json";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Io(#[from] FsError),
    #[error("{path} is not a valid MFA state file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} has state version {found}; this agent reads version {STATE_VERSION}")]
    UnsupportedVersion { path: PathBuf, found: u64 },
}

pub fn file_name(owner: &UserKey) -> String {
    let name = percent::encode(&owner.name);
    match &owner.id {
        UserId::Uid(uid) => format!("{PREFIX}{uid}-{name}{SUFFIX}"),
        UserId::Sid(sid) => format!("{PREFIX}{sid}@{name}{SUFFIX}"),
    }
}

/// The owner a state file's name claims, if it is one of ours.
pub fn owner_from_file_name(name: &str) -> Option<UserKey> {
    let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (id, encoded) = if rest.starts_with("S-") {
        let (sid, encoded) = rest.split_once('@')?;
        if !UserId::is_sid_text(sid) {
            return None;
        }
        (UserId::Sid(sid.to_owned()), encoded)
    } else {
        let (uid, encoded) = rest.split_once('-')?;
        (UserId::Uid(uid.parse().ok()?), encoded)
    };
    Some(UserKey {
        id,
        name: percent_decode(encoded)?,
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The secret as the state file holds it: base32.
struct StoredSecret(Secret);

impl Serialize for StoredSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = self.0.to_base32();
        let result = s.serialize_str(&text);
        text.zeroize();
        result
    }
}

impl<'de> Deserialize<'de> for StoredSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut text = String::deserialize(d)?;
        let secret = Secret::from_base32(&text).map_err(serde::de::Error::custom);
        text.zeroize();
        secret.map(Self)
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// `"uid": 1000`, or on Windows `"sid": "S-1-5-21-…"`.
    #[serde(flatten)]
    id: UserId,
    user: String,
    provider: ProviderKind,
    step: EnrollmentStep,
    #[serde(default)]
    issuer: String,
    secret: Option<StoredSecret>,
    last_accepted_step: Option<u64>,
    consecutive_failures: u32,
    locked_until: Option<DateTime<Utc>>,
    recovery_codes: Vec<StoredHash>,
    verified_at: Option<DateTime<Utc>>,
    enrolled_at: Option<DateTime<Utc>>,
    evidence: Option<Evidence>,
    /// Absent in files written before Duo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duo: Option<DuoState>,
    /// Absent in files written before sign-in verification (issue 19).
    #[serde(default, skip_serializing_if = "is_default")]
    signin: SigninCounts,
}

fn is_default(counts: &SigninCounts) -> bool {
    *counts == SigninCounts::default()
}

#[derive(Serialize, Deserialize)]
struct StoredHash {
    /// Argon2id, v0x13; parameters kept per hash so a later cost change
    /// does not orphan codes already issued.
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    hash: String,
    used_at: Option<DateTime<Utc>>,
}

pub fn save(dir: &Path, e: &Enrollment) -> Result<(), FsError> {
    let file = StateFile {
        version: STATE_VERSION,
        id: e.owner.id.clone(),
        user: e.owner.name.clone(),
        provider: e.provider,
        step: e.step,
        issuer: e.issuer.clone(),
        secret: e.secret.clone().map(StoredSecret),
        last_accepted_step: e.last_accepted_step,
        consecutive_failures: e.consecutive_failures,
        locked_until: e.locked_until,
        recovery_codes: e
            .recovery
            .iter()
            .map(|h| StoredHash {
                m_kib: h.cost.m_kib,
                t: h.cost.t,
                p: h.cost.p,
                salt: to_hex(&h.salt),
                hash: to_hex(&h.hash),
                used_at: h.used_at,
            })
            .collect(),
        verified_at: e.verified_at,
        enrolled_at: e.enrolled_at,
        evidence: e.evidence.clone(),
        duo: e.duo.clone(),
        signin: e.signin.clone(),
    };
    let path = dir.join(file_name(&e.owner));
    let mut bytes = serde_json::to_vec_pretty(&file).map_err(|err| FsError::Write {
        path: path.clone(),
        source: std::io::Error::other(err),
    })?;
    let result = fsutil::write_atomic(&path, &bytes);
    bytes.zeroize();
    result
}

/// `Ok(None)` when the user has no state file yet.
pub fn load(dir: &Path, owner: &UserKey) -> Result<Option<Enrollment>, LoadError> {
    let path = dir.join(file_name(owner));
    let Some(mut bytes) = fsutil::read_capped(&path, MAX_STATE_BYTES)? else {
        return Ok(None);
    };
    let result = parse(&path, &bytes, owner);
    bytes.zeroize();
    result.map(Some)
}

fn parse(path: &Path, bytes: &[u8], owner: &UserKey) -> Result<Enrollment, LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(STATE_VERSION) => {}
        Some(found) => {
            return Err(LoadError::UnsupportedVersion {
                path: path.to_owned(),
                found,
            });
        }
        None => return Err(corrupt("no version number".into())),
    }
    // A bad secret reports only that it is not base32 (see StoredSecret),
    // so this message, which ends up in status, cannot carry it.
    let file: StateFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    if (&file.id, file.user.as_str()) != (&owner.id, owner.name.as_str()) {
        return Err(corrupt(format!(
            "it belongs to {} ({}), not to its file name's user",
            file.id, file.user
        )));
    }
    // Duo keeps the phone's secret itself.
    let needs_secret = file.provider == ProviderKind::Totp
        && !matches!(
            file.step,
            EnrollmentStep::NotSetUp | EnrollmentStep::NotRequired
        );
    if needs_secret && file.secret.is_none() {
        return Err(corrupt(format!("step {:?} without a secret", file.step)));
    }
    let mut recovery = Vec::with_capacity(file.recovery_codes.len());
    for h in file.recovery_codes {
        let (Some(salt), Some(hash)) = (from_hex(&h.salt), from_hex(&h.hash)) else {
            return Err(corrupt("a recovery code hash is not hex".into()));
        };
        recovery.push(RecoveryHash {
            salt,
            hash,
            cost: HashCost {
                m_kib: h.m_kib,
                t: h.t,
                p: h.p,
            },
            used_at: h.used_at,
        });
    }
    Ok(Enrollment {
        owner: owner.clone(),
        provider: file.provider,
        step: match file.step {
            EnrollmentStep::NotRequired => EnrollmentStep::NotSetUp,
            step => step,
        },
        issuer: file.issuer,
        secret: file.secret.map(|s| s.0),
        last_accepted_step: file.last_accepted_step,
        consecutive_failures: file.consecutive_failures,
        locked_until: file.locked_until,
        recovery,
        verified_at: file.verified_at,
        enrolled_at: file.enrolled_at,
        evidence: file.evidence,
        duo: file.duo,
        signin: file.signin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_odd_login_names() {
        let ids = [
            UserId::Uid(1000),
            UserId::Sid("S-1-5-21-3623811015-3361044348-30300820-1013".into()),
        ];
        for id in ids {
            for name in [
                "jane",
                "jane.doe",
                "ACME\\jane",
                "../etc",
                "zoë smith",
                "42-x@y",
            ] {
                let owner = UserKey {
                    id: id.clone(),
                    name: name.into(),
                };
                let file = file_name(&owner);
                assert!(!file.contains(['/', '\\', ' ']), "{file}");
                assert_eq!(owner_from_file_name(&file), Some(owner));
            }
        }
        assert_eq!(owner_from_file_name("policy.json"), None);
        assert_eq!(owner_from_file_name("mfa-x-jane.json"), None);
        assert_eq!(owner_from_file_name("mfa-S-1-5-x@jane.json"), None);
        assert_eq!(owner_from_file_name("mfa-S-1-5-18-jane.json"), None);
    }

    /// A state file exactly as agents before Windows identities wrote it
    /// (TOTP, enrolled, with evidence) still loads, and saves back with the
    /// same fields.
    #[test]
    fn an_old_state_file_still_loads() {
        let old = r#"{
  "version": 1,
  "uid": 1000,
  "user": "jane",
  "provider": "totp",
  "step": "enrolled",
  "issuer": "Acme",
  "secret": "JBSWY3DPEHPK3PXP",
  "last_accepted_step": 59833333,
  "consecutive_failures": 0,
  "locked_until": null,
  "recovery_codes": [
    {"m_kib": 8, "t": 1, "p": 1, "salt": "00112233", "hash": "aabbccdd", "used_at": null}
  ],
  "verified_at": "2026-11-18T11:06:40Z",
  "enrolled_at": "2026-11-18T11:07:40Z",
  "evidence": {
    "acknowledged_at": "2026-11-18T11:07:40Z",
    "uid": 1000,
    "user": "jane",
    "guide_url": "https://it.acme.example/offline",
    "policy_serial": 7,
    "agent_version": "0.1.0"
  }
}"#;
        let tmp = tempfile::tempdir().unwrap();
        let owner = owner_from_file_name("mfa-1000-jane.json").unwrap();
        assert_eq!(owner.id, UserId::Uid(1000));
        std::fs::write(tmp.path().join("mfa-1000-jane.json"), old).unwrap();
        let e = load(tmp.path(), &owner).unwrap().unwrap();
        assert_eq!(e.step, EnrollmentStep::Enrolled);
        assert_eq!(
            e.secret.as_ref().map(Secret::to_base32).as_deref(),
            Some("JBSWY3DPEHPK3PXP")
        );
        let evidence = e.evidence.clone().unwrap();
        assert_eq!(evidence.user_id, UserId::Uid(1000));
        assert_eq!(evidence.policy_serial, 7);

        save(tmp.path(), &e).unwrap();
        let again: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join("mfa-1000-jane.json")).unwrap())
                .unwrap();
        let before: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(again, before);
    }

    #[test]
    fn a_windows_state_file_names_its_sid() {
        let tmp = tempfile::tempdir().unwrap();
        let owner = UserKey {
            id: UserId::Sid("S-1-5-21-1-2-3-1001".into()),
            name: r"ACME\jane".into(),
        };
        let e = Enrollment::new(owner.clone(), ProviderKind::Totp);
        save(tmp.path(), &e).unwrap();
        let name = file_name(&owner);
        assert_eq!(name, "mfa-S-1-5-21-1-2-3-1001@ACME%5Cjane.json");
        let text: serde_json::Value =
            serde_json::from_slice(&std::fs::read(tmp.path().join(&name)).unwrap()).unwrap();
        assert_eq!(text["sid"], "S-1-5-21-1-2-3-1001");
        assert!(text.get("uid").is_none());
        assert_eq!(load(tmp.path(), &owner).unwrap(), Some(e));
        // The same file under another user's name is refused.
        let other = UserKey {
            id: UserId::Sid("S-1-5-21-1-2-3-1002".into()),
            name: owner.name.clone(),
        };
        std::fs::copy(tmp.path().join(&name), tmp.path().join(file_name(&other))).unwrap();
        assert!(matches!(
            load(tmp.path(), &other),
            Err(LoadError::Corrupt { .. })
        ));
    }
}
