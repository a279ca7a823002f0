//! The fixtures every MFA test shares: one moment, one organization's
//! policy (TOTP or Duo), one user. Kept here so the machine's, Duo's and
//! the engine's tests cannot drift apart on what "jane" or "the policy" is.

use chrono::{DateTime, Utc};
use rampart_shared::policy::{Links, Policy, Provider, ProviderKind};
use rampart_shared::user::UserId;
use rampart_shared::version::Version;

use super::Peer;
use super::machine::{Ctx, Enrollment, UserKey};
use super::recovery::{self, RecoveryHash};

/// 2026-11-18, the start of a TOTP step.
pub const T0: i64 = 1_795_000_020;

/// The Duo API host of [`duo_policy`].
pub const DUO_HOST: &str = "api-1234abcd.duosecurity.com";

/// The offline guide of [`policy`].
pub const GUIDE_URL: &str = "https://it.acme.example/offline";

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

/// ACME's signed policy (serial 7): MFA required, with the built-in TOTP
/// provider.
pub fn policy() -> Policy {
    let defaults = Policy::default();
    Policy {
        organization: "ACME Corp".into(),
        serial: 7,
        links: Links {
            offline_guide_url: GUIDE_URL.into(),
            ..defaults.links.clone()
        },
        ..defaults
    }
}

/// [`policy`] with Duo as the provider; Duo usernames are
/// `{login}@acme.example`.
pub fn duo_policy() -> Policy {
    let mut p = policy();
    p.mfa.required = true;
    p.mfa.provider = Provider::Duo {
        api_host: DUO_HOST.into(),
        integration_key: "DIWJ8X6AEYOR5OMC6TQ1".into(),
        secret_key_file: "/etc/rampart/duo.key".into(),
        username: "{user}@acme.example".into(),
    };
    p
}

/// `now` is seconds since the epoch; the clock was never measured.
pub fn ctx(policy: &Policy, now: i64) -> Ctx<'_> {
    Ctx {
        now: at(now),
        policy,
        agent_version: Version::new(0, 1, 0),
        clock: Default::default(),
    }
}

pub fn jane_key() -> UserKey {
    UserKey {
        id: UserId::Uid(1000),
        name: "jane".into(),
    }
}

/// Jane's enrollment before she starts, under `provider`.
pub fn new_enrollment(provider: ProviderKind) -> Enrollment {
    Enrollment::new(jane_key(), provider)
}

/// Jane at her own window.
pub fn jane() -> Peer {
    Peer {
        id: UserId::Uid(1000),
        admin: false,
        user_name: "jane".into(),
    }
}

pub fn root() -> Peer {
    Peer {
        id: UserId::ROOT,
        admin: true,
        user_name: "root".into(),
    }
}

/// Which stored hash `code` is (as shown to the user), if any: how a test
/// tells which codes a list still accepts.
pub fn matching_code(hashes: &[RecoveryHash], code: &str) -> Option<usize> {
    hashes
        .iter()
        .position(|h| recovery::hash_with(code, &h.salt, h.cost).unwrap() == h.hash)
}
