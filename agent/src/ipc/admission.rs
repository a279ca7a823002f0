//! Who gets a connection: a cap per peer user, with slots kept for
//! administrators and for the enrollment owner, so that one local user
//! holding thousands of connections cannot lock root out of `status` nor the
//! owner out of their enrollment.
//!
//! The decision ([`admit`]) is a pure function of the counts; [`Connections`]
//! keeps the counts and hands out a [`Slot`] that gives its place back when
//! the connection ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rampart_shared::user::UserId;

use super::Peer;

/// Connections served at once when the file limit allows it.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections one user (other than an administrator) may hold. The app
/// holds one subscription plus a short-lived request connection; the CLI
/// one. 64 leaves room for a few apps, scripts and monitoring loops.
pub const PER_USER: usize = 64;
/// Slots only administrators may take.
pub const KEPT_FOR_ADMINS: usize = 16;
/// Slots only the enrollment owner (or an administrator) may take.
pub const KEPT_FOR_OWNER: usize = 16;
/// File descriptors left for the agent's own work (state writes, NTP and
/// HTTPS sockets, the log) below the file limit: under a full house the
/// owner's MFA save must not fail with "Too many open files".
pub const FILES_KEPT_FOR_THE_AGENT: u64 = 256;

/// A user's quiet subscribers are closed after the subscriber idle limit only
/// while the user holds more connections than this: an app (one quiet
/// subscription; old apps never send a keepalive) is never cut, a user
/// hoarding connections loses the quiet ones.
pub const QUIET_SUBSCRIBERS_KEPT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_user: usize,
    pub kept_for_admins: usize,
    pub kept_for_owner: usize,
}

impl Limits {
    /// The limits for a process whose soft file limit is `nofile` (`None`:
    /// no such limit, as on Windows).
    pub fn for_file_limit(nofile: Option<u64>) -> Self {
        let total = match nofile {
            Some(n) => usize::try_from(n.saturating_sub(FILES_KEPT_FOR_THE_AGENT))
                .unwrap_or(MAX_CONNECTIONS)
                .min(MAX_CONNECTIONS),
            None => MAX_CONNECTIONS,
        };
        // A tiny file limit still leaves root a way in.
        let total = total.max(KEPT_FOR_ADMINS + KEPT_FOR_OWNER + 1);
        Self {
            total,
            per_user: PER_USER,
            kept_for_admins: KEPT_FOR_ADMINS,
            kept_for_owner: KEPT_FOR_OWNER,
        }
    }
}

/// How the agent regards a peer for admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Root, LocalSystem or an elevated administrator: no per-user cap.
    Admin,
    /// The enrollment owner, or the agent's own user (dev mode).
    Owner,
    Other,
}

pub fn standing(peer: &Peer, owner: Option<&UserId>, agent_user: Option<&UserId>) -> Standing {
    if peer.admin {
        return Standing::Admin;
    }
    match &peer.user {
        Some(user) if Some(user) == owner || Some(user) == agent_user => Standing::Owner,
        _ => Standing::Other,
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user already holds `limit` connections.
    UserFull { limit: usize },
    /// Every slot this user may take is in use.
    AgentFull,
}

/// Whether a new connection from a peer of `standing`, whose user holds
/// `user_open` connections, may have a slot while `total_open` are in use.
pub fn admit(
    limits: &Limits,
    standing: Standing,
    total_open: usize,
    user_open: usize,
) -> Result<(), Refusal> {
    let (cap, usable) = match standing {
        Standing::Admin => (usize::MAX, limits.total),
        Standing::Owner => (
            limits.per_user,
            limits.total.saturating_sub(limits.kept_for_admins),
        ),
        Standing::Other => (
            limits.per_user,
            limits
                .total
                .saturating_sub(limits.kept_for_admins + limits.kept_for_owner),
        ),
    };
    if user_open >= cap {
        return Err(Refusal::UserFull { limit: cap });
    }
    if total_open >= usable {
        return Err(Refusal::AgentFull);
    }
    Ok(())
}

/// Whether a subscriber that has been quiet past the idle limit is closed,
/// given how many connections its user holds.
pub fn closes_quiet_subscriber(user_open: usize) -> bool {
    user_open > QUIET_SUBSCRIBERS_KEPT
}

/// The message a refused client reads before the connection closes.
pub fn refusal_message(refusal: Refusal, user: Option<&UserId>) -> String {
    let who = user.map_or_else(|| "this unidentified user".to_owned(), ToString::to_string);
    match refusal {
        Refusal::UserFull { limit } => format!(
            "{who} already holds {limit} connections to the Rampart agent, the most one user may: close some (other Rampart apps or scripts) and try again"
        ),
        Refusal::AgentFull => "the Rampart agent is serving as many connections as it can; try again in a minute, or ask an administrator to find what holds them (`rampart-agent status` as root still works)".to_owned(),
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_user: HashMap<Option<UserId>, usize>,
}

/// The open connections per user, shared by the accept loop and every
/// connection task.
#[derive(Debug, Clone)]
pub struct Connections {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// A connection's place; dropping it gives the place back.
#[derive(Debug)]
pub struct Slot {
    user: Option<UserId>,
    counts: Arc<Mutex<Counts>>,
}

impl Connections {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            counts: Arc::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn try_admit(&self, user: Option<&UserId>, standing: Standing) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let key = user.cloned();
        let user_open = counts.per_user.get(&key).copied().unwrap_or(0);
        admit(&self.limits, standing, counts.total, user_open)?;
        counts.total += 1;
        *counts.per_user.entry(key.clone()).or_insert(0) += 1;
        Ok(Slot {
            user: key,
            counts: self.counts.clone(),
        })
    }

    /// Connections open now: in total, and held by `user`.
    pub fn open(&self, user: Option<&UserId>) -> (usize, usize) {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let key = user.cloned();
        (
            counts.total,
            counts.per_user.get(&key).copied().unwrap_or(0),
        )
    }
}

impl Slot {
    /// Connections `self`'s user holds now, this one included.
    pub fn user_open(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.per_user.get(&self.user).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.per_user.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        total: 100,
        per_user: 10,
        kept_for_admins: 5,
        kept_for_owner: 5,
    };

    fn peer(uid: u32) -> Peer {
        Peer {
            user: Some(UserId::Uid(uid)),
            admin: uid == 0,
            pid: None,
        }
    }

    #[test]
    fn standing_follows_admin_owner_and_agent_user() {
        let owner = UserId::Uid(1000);
        assert_eq!(standing(&peer(0), Some(&owner), None), Standing::Admin);
        assert_eq!(standing(&peer(1000), Some(&owner), None), Standing::Owner);
        assert_eq!(standing(&peer(1001), Some(&owner), None), Standing::Other);
        // Nobody enrolled yet: everyone but root is an ordinary user.
        assert_eq!(standing(&peer(1000), None, None), Standing::Other);
        // Dev mode: the agent's own user.
        assert_eq!(standing(&peer(1000), None, Some(&owner)), Standing::Owner);
        assert_eq!(standing(&Peer::UNKNOWN, None, None), Standing::Other);
        // A uid never matches a SID.
        let sid = UserId::Sid("S-1-5-21-1-2-3-1000".into());
        assert_eq!(standing(&peer(1000), Some(&sid), None), Standing::Other);
    }

    #[test]
    fn an_ordinary_user_stops_at_the_per_user_cap() {
        assert_eq!(admit(&LIMITS, Standing::Other, 20, 9), Ok(()));
        assert_eq!(
            admit(&LIMITS, Standing::Other, 20, 10),
            Err(Refusal::UserFull { limit: 10 })
        );
        // The owner too: the reserve guarantees them slots, not more of them.
        assert_eq!(
            admit(&LIMITS, Standing::Owner, 20, 10),
            Err(Refusal::UserFull { limit: 10 })
        );
        // Admins have no per-user cap.
        assert_eq!(admit(&LIMITS, Standing::Admin, 20, 500), Ok(()));
    }

    #[test]
    fn the_last_slots_are_kept_for_the_owner_and_then_for_admins() {
        // 90 in use: the ordinary users' share is full.
        assert_eq!(
            admit(&LIMITS, Standing::Other, 90, 0),
            Err(Refusal::AgentFull)
        );
        assert_eq!(admit(&LIMITS, Standing::Owner, 90, 0), Ok(()));
        assert_eq!(admit(&LIMITS, Standing::Admin, 90, 0), Ok(()));
        // 95: only admins.
        assert_eq!(
            admit(&LIMITS, Standing::Owner, 95, 0),
            Err(Refusal::AgentFull)
        );
        assert_eq!(admit(&LIMITS, Standing::Admin, 99, 0), Ok(()));
        assert_eq!(
            admit(&LIMITS, Standing::Admin, 100, 0),
            Err(Refusal::AgentFull)
        );
    }

    #[test]
    fn the_total_follows_the_file_limit_with_room_for_the_agent() {
        assert_eq!(Limits::for_file_limit(None).total, MAX_CONNECTIONS);
        assert_eq!(Limits::for_file_limit(Some(1 << 20)).total, MAX_CONNECTIONS);
        assert_eq!(Limits::for_file_limit(Some(1024)).total, 1024 - 256);
        // Absurdly low: root still gets in.
        let tiny = Limits::for_file_limit(Some(64));
        assert!(admit(&tiny, Standing::Admin, 0, 0).is_ok());
        assert!(tiny.total > tiny.kept_for_admins + tiny.kept_for_owner);
    }

    #[test]
    fn quiet_subscribers_are_closed_only_for_a_user_holding_many() {
        assert!(!closes_quiet_subscriber(1));
        assert!(!closes_quiet_subscriber(QUIET_SUBSCRIBERS_KEPT));
        assert!(closes_quiet_subscriber(QUIET_SUBSCRIBERS_KEPT + 1));
    }

    #[test]
    fn slots_are_counted_per_user_and_given_back() {
        let connections = Connections::new(LIMITS);
        let jane = UserId::Uid(1000);
        let held: Vec<Slot> = (0..10)
            .map(|_| connections.try_admit(Some(&jane), Standing::Other).unwrap())
            .collect();
        assert_eq!(
            connections
                .try_admit(Some(&jane), Standing::Other)
                .unwrap_err(),
            Refusal::UserFull { limit: 10 }
        );
        // Another user is unaffected, and unidentified peers share one count.
        let other = connections
            .try_admit(Some(&UserId::Uid(1001)), Standing::Other)
            .unwrap();
        let unknown = connections.try_admit(None, Standing::Other).unwrap();
        assert_eq!(connections.open(Some(&jane)), (12, 10));
        assert_eq!(held[0].user_open(), 10);
        assert_eq!(connections.open(None), (12, 1));
        drop(held);
        drop(unknown);
        assert_eq!(connections.open(Some(&jane)), (1, 0));
        assert_eq!(other.user_open(), 1);
        assert!(connections.try_admit(Some(&jane), Standing::Other).is_ok());
    }

    #[test]
    fn refusals_say_what_to_do() {
        let jane = UserId::Uid(1000);
        let text = refusal_message(Refusal::UserFull { limit: 64 }, Some(&jane));
        assert!(
            text.starts_with("uid 1000 already holds 64 connections"),
            "{text}"
        );
        assert!(text.contains("close some"), "{text}");
        let text = refusal_message(Refusal::AgentFull, None);
        assert!(text.contains("try again"), "{text}");
    }
}
