//! Windows security as data: the security descriptors Rampart puts on its
//! named pipe and on `%ProgramData%\Rampart`, and the pure rules that read
//! them back (is this DACL too open? is this token an administrator's?).
//!
//! Everything here is plain string and number work, compiled and tested on
//! every OS; the Win32 calls that apply and read descriptors live in [`ffi`]
//! (Windows only), the one module that may use `unsafe`.

use std::path::{Path, PathBuf};

use rampart_shared::user::{ADMINISTRATORS_SID, LOCAL_SYSTEM_SID};

#[cfg(windows)]
pub mod ffi;

/// `SE_GROUP_ENABLED`: the group counts in access checks.
pub const SE_GROUP_ENABLED: u32 = 0x4;
/// `SE_GROUP_USE_FOR_DENY_ONLY`: the group only matches deny ACEs (what UAC
/// leaves of Administrators in an admin's unelevated token).
pub const SE_GROUP_USE_FOR_DENY_ONLY: u32 = 0x10;

/// Whether a token with this user and these groups (SID string, attributes)
/// is an administrator: LocalSystem, or Administrators enabled (elevated).
pub fn token_is_admin(user_sid: &str, groups: &[(String, u32)]) -> bool {
    user_sid == LOCAL_SYSTEM_SID
        || groups.iter().any(|(sid, attributes)| {
            sid == ADMINISTRATORS_SID
                && attributes & SE_GROUP_ENABLED != 0
                && attributes & SE_GROUP_USE_FOR_DENY_ONLY == 0
        })
}

/// What a pipe client may do: read, write data and attributes, but not
/// `FILE_CREATE_PIPE_INSTANCE` (0x4), which would let it serve a rogue
/// instance of the agent's pipe to other clients. A client opening with
/// GENERIC_READ | GENERIC_WRITE needs no more: the pipe file system's
/// generic mapping leaves out that right.
const PIPE_CLIENT_RIGHTS: &str = "0x12019b";

/// The pipe's DACL. Protected (nothing inherited); network logons denied
/// first; LocalSystem, Administrators and the agent's own user full control
/// (its own user needs FILE_CREATE_PIPE_INSTANCE for every later instance,
/// also when a system-mode agent runs as someone else, as in a test). The
/// system agent admits every authenticated local user (the request rules
/// decide the rest); a dev or embedded agent only its own user.
pub fn pipe_sddl(system: bool, own_sid: &str) -> String {
    let clients = if system { "AU" } else { own_sid };
    format!(
        "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;{own_sid})(A;;{PIPE_CLIENT_RIGHTS};;;{clients})"
    )
}

/// The top of the data directory (`%ProgramData%\Rampart`): SYSTEM and
/// Administrators full control, inherited by everything created below;
/// users may list it and read it, but nothing they read here is inherited by
/// new files, so a later file (the Duo key, a temp file) is admins' only.
pub const DATA_ROOT_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;FRFX;;;BU)";
/// The config files IT puts there (`agent.json`, `policy.json`): users read.
pub const CONFIG_FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)";
/// `state\` and `logs\`: SYSTEM and Administrators only.
pub const PRIVATE_DIR_SDDL: &str = "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)";
/// A secret the service reads (the deployment secret for reports): SYSTEM
/// and Administrators only, set explicitly rather than trusted to
/// inheritance, since an administrator may have copied the file in with
/// the ACL of wherever it came from.
pub const SECRET_FILE_SDDL: &str = "D:P(A;;FA;;;SY)(A;;FA;;;BA)";

/// One place under the data root and the DACL it should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    pub path: PathBuf,
    pub sddl: &'static str,
    /// Whether users other than SYSTEM and Administrators may read it.
    pub users_read: bool,
}

/// The places to set, in order (the root first: setting it re-propagates
/// inheritance to children that do not protect their own DACL).
/// `config_files`: the files users may read (`agent.json`, `policy.json`);
/// `secret_files`: those they may not (the deployment secret).
pub fn data_layout(
    config_dir: &Path,
    config_files: &[PathBuf],
    secret_files: &[PathBuf],
    state_dir: &Path,
    log_dir: &Path,
) -> Vec<Guarded> {
    let mut out = vec![Guarded {
        path: config_dir.to_owned(),
        sddl: DATA_ROOT_SDDL,
        users_read: true,
    }];
    out.extend(config_files.iter().map(|file| Guarded {
        path: file.clone(),
        sddl: CONFIG_FILE_SDDL,
        users_read: true,
    }));
    out.extend(secret_files.iter().map(|file| Guarded {
        path: file.clone(),
        sddl: SECRET_FILE_SDDL,
        users_read: false,
    }));
    for dir in [state_dir, log_dir] {
        out.push(Guarded {
            path: dir.to_owned(),
            sddl: PRIVATE_DIR_SDDL,
            users_read: false,
        });
    }
    out
}

/// The config files the agent reads from its config directory.
pub fn config_files(config_dir: &Path) -> Vec<PathBuf> {
    ["agent.json", "policy.json"]
        .iter()
        .map(|f| config_dir.join(f))
        .collect()
}

/// What the system agent does at start: reads back each guarded place's
/// DACL and, where [`too_open`] finds it too open (or it cannot be read),
/// applies Rampart's and says what it found. Never fails: an agent that
/// cannot fix its ACLs still runs, and says so in its log.
/// `secret_files`: the deployment secret's file, when the install config
/// names one.
#[cfg(windows)]
pub fn enforce(config_dir: &Path, secret_files: &[PathBuf], state_dir: &Path, log_dir: &Path) {
    for g in data_layout(
        config_dir,
        &config_files(config_dir),
        secret_files,
        state_dir,
        log_dir,
    ) {
        if !g.path.exists() {
            continue;
        }
        let (found, findings) = match ffi::read_dacl(&g.path) {
            Ok(sddl) => {
                let findings = too_open(&sddl, g.users_read);
                (sddl, findings)
            }
            Err(e) => (String::new(), vec![e.to_string()]),
        };
        if findings.is_empty() {
            tracing::debug!(path = %g.path.display(), dacl = %found, "ACL as it should be");
            continue;
        }
        tracing::warn!(path = %g.path.display(), dacl = %found, findings = ?findings,
            "ACL too open; setting Rampart's");
        if let Err(e) = ffi::set_dacl(&g.path, g.sddl) {
            tracing::error!(path = %g.path.display(), error = %e, "cannot set the ACL");
            continue;
        }
        // A file system without ACLs (FAT, or Wine, which maps a DACL to
        // Unix mode bits) accepts the call and keeps nothing: say so.
        match ffi::read_dacl(&g.path) {
            Ok(now) if !too_open(&now, g.users_read).is_empty() => {
                tracing::warn!(path = %g.path.display(), dacl = %now,
                    "ACL set, but the file system did not keep it");
            }
            Ok(_) => tracing::info!(path = %g.path.display(), "ACL set"),
            Err(e) => tracing::warn!(path = %g.path.display(), error = %e,
                "ACL set, but cannot be read back"),
        }
    }
}

/// File access rights by their two-letter SDDL names.
fn right_bits(code: &str) -> Option<u32> {
    Some(match code {
        "GA" => 0x1000_0000,
        "GR" => 0x8000_0000,
        "GW" => 0x4000_0000,
        "GX" => 0x2000_0000,
        "FA" => 0x001f_01ff,
        "FR" => 0x0012_0089,
        "FW" => 0x0012_0116,
        "FX" => 0x0012_00a0,
        "RC" => 0x0002_0000,
        "SD" => 0x0001_0000,
        "WD" => 0x0004_0000,
        "WO" => 0x0008_0000,
        // Directory-service names for the low 16 bits, which the converter
        // uses for a mask that matches none of the file names above.
        "CC" => 0x1,
        "DC" => 0x2,
        "LC" => 0x4,
        "SW" => 0x8,
        "RP" => 0x10,
        "WP" => 0x20,
        "DT" => 0x40,
        "LO" => 0x80,
        "CR" => 0x100,
        _ => return None,
    })
}

/// What a user may hold and still only read: `FILE_GENERIC_READ |
/// FILE_GENERIC_EXECUTE` (read data, attributes, extended attributes,
/// traverse, read the DACL, synchronize) and generic read/execute.
const READ_ONLY: u32 = 0x0012_00a9 | 0x8000_0000 | 0x2000_0000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Ace {
    allow: bool,
    mask: u32,
    sid: String,
}

fn parse_mask(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    let mut mask = 0;
    for i in (0..text.len()).step_by(2) {
        mask |= right_bits(&text[i..i + 2])?;
    }
    Some(mask)
}

/// Why a read-back DACL cannot be read; `too_open` says it in its finding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum DaclError {
    /// An ACE that does not start with `(`.
    #[error("malformed ACE {0:?}")]
    NoParenthesis(String),
    /// An ACE with fewer than six fields.
    #[error("malformed ACE ({0})")]
    TooFewFields(String),
    #[error("unknown rights {0:?}")]
    UnknownRights(String),
}

/// The DACL part of an SDDL string: its flags and ACEs. `None` for no DACL
/// at all (`D:NO_ACCESS_CONTROL`, or no `D:`), which admits everyone.
fn parse_dacl(sddl: &str) -> Result<Option<(String, Vec<Ace>)>, DaclError> {
    let Some(start) = sddl.find("D:") else {
        return Ok(None);
    };
    let dacl = &sddl[start + 2..];
    // A SACL part may follow; ACE strings never contain "S:(".
    let dacl = dacl.split("S:").next().unwrap_or(dacl);
    let flags_end = dacl.find('(').unwrap_or(dacl.len());
    let flags = dacl[..flags_end].to_owned();
    if flags.contains("NO_ACCESS_CONTROL") {
        return Ok(None);
    }
    let mut aces = Vec::new();
    for part in dacl[flags_end..].split(')') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let body = part
            .strip_prefix('(')
            .ok_or_else(|| DaclError::NoParenthesis(part.to_owned()))?;
        let fields: Vec<&str> = body.split(';').collect();
        let [kind, _flags, rights, _object, _inherit_object, sid, ..] = fields[..] else {
            return Err(DaclError::TooFewFields(body.to_owned()));
        };
        let allow = match kind {
            "A" | "OA" | "XA" | "ZA" => true,
            "D" | "OD" | "XD" => false,
            // Audit, alarm, label and the like grant nothing.
            _ => continue,
        };
        let mask = parse_mask(rights).ok_or_else(|| DaclError::UnknownRights(rights.to_owned()))?;
        aces.push(Ace {
            allow,
            mask,
            sid: sid.to_owned(),
        });
    }
    Ok(Some((flags, aces)))
}

fn is_admin_sid(sid: &str) -> bool {
    matches!(sid, "SY" | "BA" | LOCAL_SYSTEM_SID | ADMINISTRATORS_SID)
}

/// Why a read-back DACL is more open than Rampart's policy allows, one line
/// per reason; empty when it is fine. `users_read`: whether anyone besides
/// SYSTEM and Administrators may hold read access. Stricter than what
/// Rampart sets is fine (an extra deny ACE, a missing user read).
pub fn too_open(sddl: &str, users_read: bool) -> Vec<String> {
    let (flags, aces) = match parse_dacl(sddl) {
        Ok(Some(dacl)) => dacl,
        Ok(None) => return vec!["it has no DACL: everyone has full control".into()],
        Err(e) => return vec![format!("its DACL cannot be read ({e})")],
    };
    let mut findings = Vec::new();
    if !flags.contains('P') {
        findings.push("it inherits ACEs from its parent (not protected)".into());
    }
    for ace in aces.iter().filter(|a| a.allow && !is_admin_sid(&a.sid)) {
        let allowed = if users_read { READ_ONLY } else { 0 };
        let extra = ace.mask & !allowed;
        if extra != 0 {
            findings.push(format!(
                "{} is allowed 0x{:x}{}",
                ace.sid,
                ace.mask,
                if users_read { ", more than read" } else { "" }
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_system_or_an_enabled_administrators_group() {
        let groups = |attrs: u32| {
            vec![
                ("S-1-1-0".to_owned(), 7),
                (ADMINISTRATORS_SID.to_owned(), attrs),
            ]
        };
        // Elevated: mandatory | enabled-by-default | enabled | owner.
        assert!(token_is_admin("S-1-5-21-1-2-3-500", &groups(0xf)));
        // UAC's filtered token: the group is there for deny only.
        assert!(!token_is_admin(
            "S-1-5-21-1-2-3-500",
            &groups(SE_GROUP_USE_FOR_DENY_ONLY)
        ));
        assert!(!token_is_admin(
            "S-1-5-21-1-2-3-500",
            &groups(SE_GROUP_USE_FOR_DENY_ONLY | SE_GROUP_ENABLED)
        ));
        // Present but disabled.
        assert!(!token_is_admin("S-1-5-21-1-2-3-500", &groups(0x1)));
        assert!(!token_is_admin("S-1-5-21-1-2-3-1001", &[]));
        assert!(token_is_admin(LOCAL_SYSTEM_SID, &[]));
        // Another group's SID that merely starts the same way.
        assert!(!token_is_admin(
            "S-1-5-21-1-2-3-1001",
            &[("S-1-5-32-5440".to_owned(), 0xf)]
        ));
    }

    #[test]
    fn pipe_descriptors() {
        assert_eq!(
            pipe_sddl(true, "S-1-5-18"),
            "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-18)(A;;0x12019b;;;AU)"
        );
        let dev = pipe_sddl(false, "S-1-5-21-1-2-3-1001");
        assert_eq!(
            dev,
            "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-21-1-2-3-1001)\
             (A;;0x12019b;;;S-1-5-21-1-2-3-1001)"
        );
        assert!(!dev.contains(";AU)") && !dev.contains(";BU)"), "{dev}");
        // Clients get no FILE_CREATE_PIPE_INSTANCE.
        assert_eq!(u32::from_str_radix("12019b", 16).unwrap() & 0x4, 0);
    }

    #[test]
    fn what_rampart_sets_passes_its_own_check() {
        assert_eq!(too_open(DATA_ROOT_SDDL, true), Vec::<String>::new());
        assert_eq!(too_open(CONFIG_FILE_SDDL, true), Vec::<String>::new());
        assert_eq!(too_open(PRIVATE_DIR_SDDL, false), Vec::<String>::new());
        // As Windows writes it back: owner and group first, hex masks.
        let back = "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;;0x1200a9;;;BU)";
        assert_eq!(too_open(back, true), Vec::<String>::new());
        let back = "D:PAI(A;OICIID;FA;;;S-1-5-18)(A;OICI;FA;;;S-1-5-32-544)";
        assert_eq!(too_open(back, false), Vec::<String>::new());
    }

    #[test]
    fn openings_are_found() {
        // ProgramData's defaults, inherited: users may create files.
        let inherited = "D:AI(A;OICIID;FA;;;SY)(A;OICIID;FA;;;BA)(A;OICIIOID;GA;;;CO)(A;OICIID;0x1200a9;;;BU)(A;CIID;DCLCRPCR;;;BU)";
        let found = too_open(inherited, true);
        assert!(
            found.iter().any(|f| f.contains("not protected")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("CO is allowed")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f.starts_with("BU is allowed 0x116")),
            "{found:?}"
        );
        // Users' read is too much in state\.
        let found = too_open(DATA_ROOT_SDDL, false);
        assert_eq!(found, ["BU is allowed 0x1200a9"]);
        let found = too_open("D:P(A;;FA;;;SY)(A;;FR;;;WD)", false);
        assert_eq!(found, ["WD is allowed 0x120089"]);
        // Write for everyone in the config.
        let found = too_open("D:P(A;;FA;;;SY)(A;;FW;;;AU)", true);
        assert_eq!(found, ["AU is allowed 0x120116, more than read"]);
        assert_eq!(too_open("D:P(A;;GA;;;BU)", true).len(), 1);
        // No DACL, or one that cannot be read, is too open.
        assert_eq!(too_open("O:SYG:SY", true).len(), 1);
        assert_eq!(too_open("D:NO_ACCESS_CONTROL", true).len(), 1);
        assert_eq!(too_open("D:P(A;;ZZ;;;BU)", true).len(), 1);
        assert_eq!(too_open("D:P(A;;FA", true).len(), 1);
        // Deny ACEs and audit ACEs open nothing.
        assert!(too_open("D:P(D;;FA;;;BU)(A;;FA;;;SY)S:(AU;SA;FA;;;WD)", false).is_empty());
    }

    #[test]
    fn the_layout_guards_config_state_and_logs() {
        let root = Path::new(r"C:\ProgramData\Rampart");
        let secret = root.join("report.secret");
        let layout = data_layout(
            root,
            &config_files(root),
            std::slice::from_ref(&secret),
            &root.join("state"),
            &root.join("logs"),
        );
        assert_eq!(layout.len(), 6);
        assert_eq!(layout[0].path, root);
        assert_eq!(layout[0].sddl, DATA_ROOT_SDDL);
        let private: Vec<_> = layout.iter().filter(|g| !g.users_read).collect();
        assert_eq!(private.len(), 3);
        assert_eq!(private[0].path, secret);
        assert_eq!(private[0].sddl, SECRET_FILE_SDDL);
        assert!(private[1..].iter().all(|g| g.sddl == PRIVATE_DIR_SDDL));
        // Users may read the config files but never the secret.
        assert_eq!(
            too_open("D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FR;;;BU)", false).len(),
            1
        );
        for g in &layout {
            assert!(too_open(g.sddl, g.users_read).is_empty(), "{g:?}");
        }
    }
}

/// Windows only (run under Wine in this project's checks): the ACL really
/// lands on a directory and reads back as set. Wine keeps no DACL (it maps
/// one to Unix mode bits and makes one up from them when asked), so under
/// Wine the test checks the calls succeed and shows what Wine gives back.
#[cfg(all(test, windows))]
mod windows_tests {
    use super::*;

    #[test]
    fn a_dacl_set_on_a_directory_reads_back() {
        let wine = ffi::running_under_wine();
        let me = ffi::current_identity().unwrap();
        eprintln!(
            "wine: {wine}; process token: user {} groups {:?}",
            me.user_sid, me.groups
        );
        eprintln!(
            "admin by Rampart's rule: {}",
            token_is_admin(&me.user_sid, &me.groups)
        );

        let tmp = tempfile::tempdir().unwrap();
        eprintln!("temp dir: {}", ffi::read_dacl(tmp.path()).unwrap());
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        // The test's own user stays in, or a non-admin test on Windows could
        // not remove the directory afterwards.
        let sddl = format!(
            "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;{})",
            me.user_sid
        );
        ffi::set_dacl(&dir, &sddl).unwrap();
        let back = ffi::read_dacl(&dir).unwrap();
        eprintln!("set {sddl}\nread back {back}");
        // Rampart's check of the read-back string: the test's user is
        // neither SYSTEM nor an administrator.
        let findings = too_open(&back, false);
        eprintln!("findings: {findings:?}");
        assert!(
            findings.iter().any(|f| f.contains(&me.user_sid)),
            "{findings:?}"
        );
        if !wine {
            assert!(back.starts_with("D:P"), "{back}");
            for sid in ["SY", "BA"] {
                assert!(back.contains(&format!(";;;{sid})")), "{back}");
            }
            assert_eq!(findings.len(), 1, "{findings:?}");
        }

        let config = tmp.path().join("agent.json");
        std::fs::write(&config, "{}").unwrap();
        ffi::set_dacl(&config, CONFIG_FILE_SDDL).unwrap();
        let back = ffi::read_dacl(&config).unwrap();
        eprintln!("set {CONFIG_FILE_SDDL}\nread back {back}");
        if !wine {
            assert!(too_open(&back, true).is_empty(), "{back}");
            assert!(!too_open(&back, false).is_empty(), "{back}");
        }

        ffi::set_dacl(&dir, PRIVATE_DIR_SDDL).unwrap();
        let back = ffi::read_dacl(&dir).unwrap();
        eprintln!("set {PRIVATE_DIR_SDDL}\nread back {back}");
        if !wine {
            assert!(too_open(&back, false).is_empty(), "{back}");
        }
        // Whether the OS enforces it on this process (not SYSTEM; an admin
        // under Wine). Shown, not asserted.
        let write = std::fs::write(dir.join("probe"), "x");
        eprintln!("writing into it as {}: {write:?}", me.user_sid);
        let _ = ffi::set_dacl(&dir, &sddl);
    }

    #[test]
    fn bad_sddl_is_an_error_not_a_panic() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ffi::set_dacl(tmp.path(), "D:P(this is not sddl)").unwrap_err();
        assert_eq!(
            err.call,
            "ConvertStringSecurityDescriptorToSecurityDescriptorW"
        );
        assert!(ffi::read_dacl(&tmp.path().join("absent")).is_err());
    }
}
