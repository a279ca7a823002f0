//! Local IPC: the only module that touches the agent's socket.
//!
//! `server` accepts connections and speaks the protocol from
//! `rampart_shared::ipc`; `client` is the typed client the CLI and the app use;
//! `platform` hides Unix sockets vs named pipes and how a peer is identified.

pub mod admission;
pub mod client;
mod platform;
pub mod server;

pub use platform::{
    BindError, Listener, bind, current_uid, current_user, user_id_by_name, user_name,
};
#[cfg(windows)]
pub use platform::{DEFAULT_PIPE_NAME, user_pipe_name};
use rampart_shared::user::UserId;

/// Who is on the other end of a connection, as the OS vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `None` where the OS could not say (then only unprivileged requests
    /// are served).
    pub user: Option<UserId>,
    /// Root on Unix; on Windows LocalSystem, or a token whose Administrators
    /// group is enabled (an elevated admin, not a UAC-filtered one).
    pub admin: bool,
    pub pid: Option<u32>,
}

impl Peer {
    /// A peer the OS could not identify.
    pub const UNKNOWN: Self = Self {
        user: None,
        admin: false,
        pid: None,
    };
}

/// The access rules, the same on every OS. Any local user who can connect
/// reads status; these say who may do more.
///
/// Whether `peer` may make a privileged request (`set_log_level`) to an
/// agent running as `agent_user`: an administrator, or the agent's own user
/// (dev mode).
pub fn may_administer(peer: &Peer, agent_user: Option<&UserId>) -> bool {
    peer.admin || (peer.user.is_some() && peer.user.as_ref() == agent_user)
}

/// Whether `peer` (whose login name is `peer_name`) may check a sign-in
/// code for the login name `user`, whose id is `target` when the OS or a
/// state file knows it: an administrator for anyone (login, sudo and sshd
/// run PAM as root), anyone else only for their own account (a screen
/// locker runs PAM as the user at the screen).
pub fn may_verify_signin(
    peer: &Peer,
    target: Option<&UserId>,
    peer_name: &str,
    user: &str,
) -> bool {
    if peer.admin {
        return true;
    }
    match (&peer.user, target) {
        (Some(id), Some(target)) => id == target,
        (Some(_), None) => peer_name == user,
        (None, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(user: Option<UserId>, admin: bool) -> Peer {
        Peer {
            user,
            admin,
            pid: None,
        }
    }

    #[test]
    fn only_admins_and_the_agents_own_user_administer() {
        let uid = |u| Some(UserId::Uid(u));
        let agent = UserId::Uid(1000);
        assert!(may_administer(&peer(uid(0), true), Some(&UserId::Uid(998))));
        assert!(may_administer(&peer(uid(1000), false), Some(&agent)));
        assert!(!may_administer(&peer(uid(1001), false), Some(&agent)));
        assert!(!may_administer(&peer(None, false), Some(&agent)));
        assert!(!may_administer(&peer(None, false), None));
        assert!(!may_administer(&Peer::UNKNOWN, None));
    }

    #[test]
    fn a_user_checks_sign_in_codes_only_for_themselves() {
        let jane = peer(Some(UserId::Uid(1000)), false);
        let root = peer(Some(UserId::ROOT), true);
        let bob = UserId::Uid(1001);
        assert!(may_verify_signin(&root, Some(&bob), "root", "bob"));
        assert!(may_verify_signin(&root, None, "root", "ghost"));
        assert!(may_verify_signin(
            &jane,
            Some(&UserId::Uid(1000)),
            "jane",
            "jane"
        ));
        assert!(!may_verify_signin(&jane, Some(&bob), "jane", "bob"));
        // A name that resolves to Jane's uid is Jane, whatever it is spelt as.
        assert!(!may_verify_signin(&jane, Some(&bob), "jane", "jane"));
        // A name nobody knows: only her own name.
        assert!(may_verify_signin(&jane, None, "jane", "jane"));
        assert!(!may_verify_signin(&jane, None, "jane", "ghost"));
        assert!(!may_verify_signin(&Peer::UNKNOWN, None, "", ""));
    }

    #[test]
    fn the_same_rule_holds_for_sids() {
        let sid = |s: &str| UserId::Sid(s.into());
        let jane = sid("S-1-5-21-1-2-3-1001");
        let system = sid("S-1-5-18");
        // The system service runs as LocalSystem; an elevated admin's token
        // comes with `admin` set by the platform layer.
        assert!(may_administer(
            &peer(Some(system.clone()), true),
            Some(&system)
        ));
        assert!(may_administer(
            &peer(Some(sid("S-1-5-21-1-2-3-500")), true),
            Some(&system)
        ));
        assert!(!may_administer(
            &peer(Some(jane.clone()), false),
            Some(&system)
        ));
        // Dev mode: the agent's own user, admin or not.
        assert!(may_administer(
            &peer(Some(jane.clone()), false),
            Some(&jane)
        ));
        assert!(!may_administer(
            &peer(Some(sid("S-1-5-21-1-2-3-1002")), false),
            Some(&jane)
        ));
        // A uid never equals a SID, even with the same digits.
        assert!(!may_administer(
            &peer(Some(UserId::Uid(18)), false),
            Some(&sid("S-1-5-18"))
        ));
    }
}
