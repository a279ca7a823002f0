//! Whether a candidate document replaces the policy in force: a pure function
//! of the candidate, the trusted keys, the last accepted record and `now`.

use chrono::{DateTime, Utc};
use rampart_shared::policy::{Policy, parse_policy};
use rampart_shared::status::PolicySource;
use serde::{Deserialize, Serialize};

use super::verify::{KeyId, PinnedKeys};

/// A document offered by one source.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub document: &'a [u8],
    /// The `.minisig` text; `None` when there is none.
    pub signature: Option<&'a str>,
    /// [`PolicySource::Remote`] or [`PolicySource::ManagedFile`].
    pub source: PolicySource,
}

/// Whom to trust, from the install config.
#[derive(Debug, Clone, Copy)]
pub struct Trust<'a> {
    pub keys: &'a PinnedKeys,
    pub allow_unsigned_local_policy: bool,
}

/// The last document the agent accepted, as stored in the state directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedRecord {
    /// The document exactly as signed (it passed `parse_policy`, so UTF-8).
    pub document: String,
    pub signature: Option<String>,
    pub serial: u64,
    /// `remote` or `managed_file`: where it came from when accepted.
    pub source: PolicySource,
    /// The URL it was fetched from (remote only).
    pub url: Option<String>,
    pub fetched_at: DateTime<Utc>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A new policy: put it in force and remember it.
    Accept {
        policy: Box<Policy>,
        signed_by: Option<KeyId>,
    },
    /// Byte for byte the last accepted document (same serial): nothing to do
    /// beyond noting where it was seen.
    Unchanged { policy: Box<Policy> },
    /// Keep the policy in force; the reason goes to `PolicySection.error`.
    Reject(String),
}

/// The acceptance rule, in order: parse and validate, verify the signature
/// against any pinned key, compare the serial with the highest accepted one
/// (`floor`; equal is only allowed for the very same bytes), and refuse an
/// expired document.
pub fn decide(
    candidate: Candidate<'_>,
    trust: Trust<'_>,
    last: Option<&AcceptedRecord>,
    floor: u64,
    now: DateTime<Utc>,
) -> Decision {
    let from = match candidate.source {
        PolicySource::ManagedFile => "managed policy file",
        _ => "policy from the server",
    };
    let policy = match parse_policy(candidate.document) {
        Ok(p) => p,
        Err(e) => return Decision::Reject(format!("{from} rejected: {e}")),
    };

    let signed_by = match (candidate.signature, candidate.source) {
        (Some(sig), _) => match trust.keys.verify(candidate.document, sig) {
            Ok(id) => Some(id),
            Err(e) => {
                return Decision::Reject(format!(
                    "{from} (serial {}) rejected: {e}",
                    policy.serial
                ));
            }
        },
        (None, PolicySource::ManagedFile) if trust.allow_unsigned_local_policy => None,
        (None, PolicySource::ManagedFile) => {
            return Decision::Reject(format!(
                "{from} (serial {}) rejected: it has no .minisig signature beside it, and the install config does not set allow_unsigned_local_policy",
                policy.serial
            ));
        }
        (None, _) => {
            return Decision::Reject(format!(
                "{from} (serial {}) rejected: it is not signed, and remote policy is never accepted unsigned",
                policy.serial
            ));
        }
    };

    let same_as_last = last
        .is_some_and(|l| l.serial == policy.serial && l.document.as_bytes() == candidate.document);
    if policy.serial < floor {
        return Decision::Reject(format!(
            "{from} rejected: serial {} is lower than serial {floor} already accepted (the agent never goes back)",
            policy.serial
        ));
    }
    if policy.serial == floor && floor > 0 && !same_as_last {
        // Without the accepted document (gone after `policy reset`) the
        // agent cannot tell a re-sent copy from a changed one.
        let held = last.is_some_and(|l| l.serial == floor);
        return Decision::Reject(if held {
            format!(
                "{from} rejected: serial {floor} was already accepted with different content; increase the serial with every change"
            )
        } else {
            format!(
                "{from} rejected: serial {floor} was already accepted before (the agent no longer holds that document, e.g. after `rampart-agent policy reset`); sign it again with a higher serial"
            )
        });
    }

    if let Some(expires_at) = policy.expires_at
        && expires_at <= now
    {
        return Decision::Reject(format!(
            "{from} (serial {}) rejected: it expired at {}",
            policy.serial,
            expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }

    if same_as_last {
        Decision::Unchanged {
            policy: Box::new(policy),
        }
    } else {
        Decision::Accept {
            policy: Box::new(policy),
            signed_by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::verify::testkeys::TestKey;
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn doc(serial: u64, extra: &str) -> Vec<u8> {
        format!(r#"{{"schema": 1, "serial": {serial}, "mfa": {{"required": true}}{extra}}}"#)
            .into_bytes()
    }

    fn record(document: &[u8], serial: u64) -> AcceptedRecord {
        AcceptedRecord {
            document: String::from_utf8(document.to_vec()).unwrap(),
            signature: None,
            serial,
            source: PolicySource::Remote,
            url: None,
            fetched_at: now(),
            etag: None,
            last_modified: None,
        }
    }

    struct Case {
        key: TestKey,
        keys: PinnedKeys,
    }

    impl Case {
        fn new() -> Self {
            let key = TestKey::new();
            let keys = key.pinned();
            Self { key, keys }
        }

        fn remote(&self, document: &[u8], last: Option<&AcceptedRecord>, floor: u64) -> Decision {
            let sig = self.key.sign(document);
            let candidate = Candidate {
                document,
                signature: Some(&sig),
                source: PolicySource::Remote,
            };
            decide(candidate, self.trust(false), last, floor, now())
        }

        fn trust(&self, allow_unsigned: bool) -> Trust<'_> {
            Trust {
                keys: &self.keys,
                allow_unsigned_local_policy: allow_unsigned,
            }
        }
    }

    fn reason(d: Decision) -> String {
        match d {
            Decision::Reject(r) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn a_first_signed_policy_is_accepted() {
        let c = Case::new();
        let d = c.remote(&doc(1, ""), None, 0);
        assert!(
            matches!(d, Decision::Accept { ref policy, signed_by: Some(_) } if policy.serial == 1),
            "{d:?}"
        );
    }

    #[test]
    fn serial_rules() {
        let c = Case::new();
        let five = doc(5, "");
        let last = record(&five, 5);
        assert!(matches!(
            c.remote(&doc(6, ""), Some(&last), 5),
            Decision::Accept { .. }
        ));
        assert!(matches!(
            c.remote(&five, Some(&last), 5),
            Decision::Unchanged { .. }
        ));
        assert_eq!(
            reason(c.remote(&doc(4, ""), Some(&last), 5)),
            "policy from the server rejected: serial 4 is lower than serial 5 already accepted (the agent never goes back)"
        );
        assert_eq!(
            reason(c.remote(&doc(5, r#", "organization": "Other""#), Some(&last), 5)),
            "policy from the server rejected: serial 5 was already accepted with different content; increase the serial with every change"
        );
        // The floor survives the record: with no record, an equal serial is not "the same".
        assert!(reason(c.remote(&five, None, 5)).contains(
            "serial 5 was already accepted before (the agent no longer holds that document"
        ));
        // Serial 0 on a fresh device is fine.
        assert!(matches!(
            c.remote(&doc(0, ""), None, 0),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn expiry_is_honoured_even_for_the_same_document() {
        let c = Case::new();
        let expired = doc(3, r#", "expires_at": "2026-11-23T12:00:00Z""#);
        assert_eq!(
            reason(c.remote(&expired, None, 0)),
            "policy from the server (serial 3) rejected: it expired at 2026-11-23T12:00:00Z"
        );
        assert!(reason(c.remote(&expired, Some(&record(&expired, 3)), 3)).contains("expired"));
        let fresh = doc(3, r#", "expires_at": "2026-11-23T12:00:01Z""#);
        assert!(matches!(c.remote(&fresh, None, 0), Decision::Accept { .. }));
    }

    #[test]
    fn validation_comes_first_with_json_paths() {
        let c = Case::new();
        let r = reason(c.remote(
            br#"{"schema": 1, "serial": 2, "mfa": {"requried": true}}"#,
            None,
            0,
        ));
        assert!(
            r.starts_with("policy from the server rejected: policy has 2 problem(s):"),
            "{r}"
        );
        assert!(r.contains("mfa.requried: unknown field"), "{r}");
        assert!(reason(c.remote(b"<html>", None, 0)).contains("not valid JSON"));
    }

    #[test]
    fn a_signed_document_with_a_duplicate_key_is_refused() {
        // Issue 15: signed with "serial": 17 and "serial": 50, it was taken as
        // 50 and then refused 19 and 20 for good.
        let c = Case::new();
        let twice = br#"{"schema": 1, "serial": 17, "mfa": {"required": true}, "serial": 50}"#;
        let r = reason(c.remote(twice, None, 0));
        assert!(
            r.starts_with("policy from the server rejected: policy has 1 problem(s):"),
            "{r}"
        );
        assert!(r.contains("serial: appears more than once"), "{r}");
        // Nothing was accepted, so serial 19 still is.
        assert!(matches!(
            c.remote(&doc(19, ""), None, 0),
            Decision::Accept { .. }
        ));
    }

    #[test]
    fn signatures_are_required_and_checked() {
        let c = Case::new();
        let d = doc(2, "");
        let other = TestKey::new();
        let sig = other.sign(&d);
        let candidate = Candidate {
            document: &d,
            signature: Some(&sig),
            source: PolicySource::Remote,
        };
        assert!(
            reason(decide(candidate, c.trust(false), None, 0, now()))
                .contains("which is not a pinned key")
        );
        let tampered = doc(2, r#", "organization": "Evil""#);
        let good_sig = c.key.sign(&d);
        let candidate = Candidate {
            document: &tampered,
            signature: Some(&good_sig),
            source: PolicySource::Remote,
        };
        assert!(
            reason(decide(candidate, c.trust(true), None, 0, now()))
                .contains("does not match the document")
        );
        let unsigned_remote = Candidate {
            document: &d,
            signature: None,
            source: PolicySource::Remote,
        };
        assert!(
            reason(decide(unsigned_remote, c.trust(true), None, 0, now()))
                .contains("never accepted unsigned")
        );
    }

    #[test]
    fn an_unsigned_managed_file_needs_the_install_config_to_allow_it() {
        let c = Case::new();
        let d = doc(2, "");
        let managed = Candidate {
            document: &d,
            signature: None,
            source: PolicySource::ManagedFile,
        };
        assert!(
            reason(decide(managed, c.trust(false), None, 0, now()))
                .contains("has no .minisig signature beside it, and the install config does not set allow_unsigned_local_policy")
        );
        assert!(matches!(
            decide(managed, c.trust(true), None, 0, now()),
            Decision::Accept {
                signed_by: None,
                ..
            }
        ));
        // A signature that is present is checked even when unsigned files are allowed.
        let bad = Candidate {
            signature: Some("garbage"),
            ..managed
        };
        assert!(
            reason(decide(bad, c.trust(true), None, 0, now())).contains("not a minisign signature")
        );
    }
}
