//! `pam_rampart.so` under Debian's `pamtester`: the module built from this
//! workspace, a PAM service file in /etc/pam.d for the test's lifetime
//! (pamtester takes a service name, and libpam reads /etc/pam.d; writing
//! there needs root, as the tests run in CI), and pamtester's transcript.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{cargo_build, real_servers_required, target_dir};

/// The module, built now; `None` (reported as skipped, or a failure under
/// `RAMPART_REQUIRE_REAL_SERVERS=1`) when this test cannot write /etc/pam.d.
pub fn module() -> Option<PathBuf> {
    if !rustix::process::geteuid().is_root() {
        let msg = "the PAM tests write a service file to /etc/pam.d and so run as root";
        assert!(
            !real_servers_required(),
            "RAMPART_REQUIRE_REAL_SERVERS=1 and {msg}"
        );
        eprintln!("\n!!!! SKIPPED: {msg} !!!!\n");
        return None;
    }
    cargo_build(&["-p", "rampart-pam", "--lib"]);
    let so = target_dir().join("libpam_rampart.so");
    assert!(so.is_file(), "{} was not built", so.display());
    Some(so)
}

/// `/etc/pam.d/rampart-test-PID-N`, removed when dropped.
pub struct PamService {
    pub name: String,
    path: PathBuf,
    pamtester: PathBuf,
}

/// What pamtester printed (stdout and stderr in order) and whether it
/// authenticated.
#[derive(Debug)]
pub struct Transcript {
    pub success: bool,
    pub text: String,
}

impl PamService {
    /// A stack of `auth required MODULE ARGS` then `auth required
    /// pam_permit.so`: what the module's line decides is what pamtester
    /// sees, and PAM_IGNORE leaves it to pam_permit.
    pub fn write(pamtester: &Path, module: &Path, args: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "rampart-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new("/etc/pam.d").join(&name);
        let stack = format!(
            "auth required {} {args}\nauth required pam_permit.so\naccount required pam_permit.so\n",
            module.display()
        );
        std::fs::write(&path, stack).expect("write a PAM service file to /etc/pam.d");
        Self {
            name,
            path,
            pamtester: pamtester.to_owned(),
        }
    }

    /// `printf '%s\n' INPUT | pamtester -v SERVICE USER authenticate`.
    pub fn authenticate(&self, user: &str, input: &str) -> Transcript {
        self.run(Command::new("sh"), user, input)
    }

    /// The same as the local user `uid` (through `setpriv`): a screen
    /// locker runs PAM as the person at the screen, not as root.
    pub fn authenticate_as(&self, setpriv: &Path, uid: u32, user: &str, input: &str) -> Transcript {
        let mut cmd = Command::new(setpriv);
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg("sh")
            .env("HOME", "/nonexistent");
        self.run(cmd, user, input)
    }

    fn run(&self, mut sh: Command, user: &str, input: &str) -> Transcript {
        let mut child = sh
            .args(["-c", "exec \"$0\" -v \"$@\" 2>&1"])
            .arg(&self.pamtester)
            .args([self.name.as_str(), user, "authenticate"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run pamtester");
        if let Some(mut stdin) = child.stdin.take() {
            // pamtester may exit without reading (no prompt): ignore EPIPE.
            let _ = stdin.write_all(format!("{input}\n").as_bytes());
        }
        let out = child.wait_with_output().expect("wait for pamtester");
        Transcript {
            success: out.status.success(),
            text: String::from_utf8_lossy(&out.stdout).into_owned(),
        }
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
