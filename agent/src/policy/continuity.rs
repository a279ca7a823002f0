//! What stays in force when a source stops offering a usable document: a pure
//! function of what is in force and what the managed file offers now.
//!
//! The rule (issue 15): the last accepted policy, from any source, stays in
//! force across restarts until a newer valid one arrives. A managed file that
//! is deleted, unreadable or rejected never puts the built-in default (serial
//! 0) back; only an administrator's `rampart-agent policy reset` does.

use rampart_shared::status::{KeptPolicy, PolicySource};

/// The policy in force, as far as continuity is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub serial: u64,
    /// Where it was accepted from: `Remote`, `ManagedFile`, or `Builtin`
    /// when nothing was ever accepted (or an administrator reset it).
    pub origin: PolicySource,
}

/// What reading the managed file gave this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedOffer {
    /// No file (deleted, or never there).
    Missing,
    /// Unreadable, or refused by [`super::accept::decide`]; the reason is
    /// reported as `PolicySection.error` on its own.
    Rejected,
    /// Accepted, or the very document already in force.
    Accepted,
}

/// Whether the status must say that a policy is kept, and in which words.
/// `None`: nothing is kept (the managed file is what is in force, or there
/// is nothing to keep).
pub fn kept_after_managed(held: Held, offer: ManagedOffer) -> Option<KeptPolicy> {
    let reason = match (offer, held.origin) {
        (ManagedOffer::Accepted, _) | (_, PolicySource::Builtin) => return None,
        (ManagedOffer::Rejected, _) => "managed file rejected",
        (ManagedOffer::Missing, PolicySource::ManagedFile | PolicySource::LastKnownGood) => {
            "managed file missing"
        }
        // A server's policy kept while the install config names no policy
        // URL any more (no managed file either).
        (ManagedOffer::Missing, PolicySource::Remote) => "no policy URL is configured",
    };
    Some(KeptPolicy {
        serial: held.serial,
        message: format!(
            "{reason}: keeping serial {} (only an administrator's `rampart-agent policy reset` goes back to the built-in default)",
            held.serial
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(serial: u64, origin: PolicySource) -> Held {
        Held { serial, origin }
    }

    #[test]
    fn a_deleted_or_rejected_managed_file_keeps_the_serial() {
        let five = held(5, PolicySource::ManagedFile);
        let missing = kept_after_managed(five, ManagedOffer::Missing).unwrap();
        assert_eq!(missing.serial, 5);
        assert!(
            missing
                .message
                .starts_with("managed file missing: keeping serial 5 ("),
            "{}",
            missing.message
        );
        let rejected = kept_after_managed(five, ManagedOffer::Rejected).unwrap();
        assert!(
            rejected
                .message
                .starts_with("managed file rejected: keeping serial 5 ("),
            "{}",
            rejected.message
        );
        assert!(rejected.message.contains("rampart-agent policy reset"));
    }

    #[test]
    fn nothing_is_kept_when_the_file_is_good_or_nothing_was_accepted() {
        assert_eq!(
            kept_after_managed(held(5, PolicySource::ManagedFile), ManagedOffer::Accepted),
            None
        );
        for offer in [
            ManagedOffer::Missing,
            ManagedOffer::Rejected,
            ManagedOffer::Accepted,
        ] {
            assert_eq!(
                kept_after_managed(held(0, PolicySource::Builtin), offer),
                None
            );
        }
    }

    #[test]
    fn a_server_policy_without_a_url_says_so() {
        let kept =
            kept_after_managed(held(9, PolicySource::Remote), ManagedOffer::Missing).unwrap();
        assert!(
            kept.message
                .starts_with("no policy URL is configured: keeping serial 9"),
            "{}",
            kept.message
        );
        let rejected =
            kept_after_managed(held(9, PolicySource::Remote), ManagedOffer::Rejected).unwrap();
        assert!(
            rejected
                .message
                .starts_with("managed file rejected: keeping serial 9")
        );
    }
}
