//! The real `rampart-agent` binary, started in an isolated directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{short_tempdir, workspace_bin};

pub struct AgentProcess {
    child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
}

impl AgentProcess {
    /// `rampart-agent run --dev` with its socket, state and home in a fresh
    /// temporary directory.
    pub fn start_dev(extra_args: &[&str]) -> Self {
        Self::start(&["--dev"], extra_args)
    }

    /// System mode (world-connectable socket), still confined to a temporary
    /// directory: for tests about other local users.
    pub fn start_system(extra_args: &[&str]) -> Self {
        Self::start(&[], extra_args)
    }

    fn start(mode_args: &[&str], extra_args: &[&str]) -> Self {
        let dir = short_tempdir();
        let socket = dir.path().join("agent.sock");
        let mut cmd = Command::new(workspace_bin("rampart-agent"));
        cmd.arg("run")
            .args(mode_args)
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--log", "warn"])
            .args(extra_args);
        isolate_home(&mut cmd, dir.path());
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().expect("start rampart-agent");
        let agent = Self { child, dir, socket };
        agent.wait_until_listening();
        agent
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "rampart-agent did not listen on {} within 20 s",
            self.socket.display()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `rampart-agent ARGS --socket <this agent's socket>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_with_socket(args, &self.socket, self.dir.path())
    }

    /// SIGKILL: no chance to clean up, like a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for rampart-agent") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rampart-agent ignored SIGTERM for 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn cli_with_socket(args: &[&str], socket: &Path, home: &Path) -> Output {
    let mut cmd = Command::new(workspace_bin("rampart-agent"));
    cmd.args(args).arg("--socket").arg(socket);
    isolate_home(&mut cmd, home);
    cmd.output().expect("run rampart-agent")
}

/// Points every per-user directory at `home` so nothing touches the real ones.
pub fn isolate_home(cmd: &mut Command, home: &Path) {
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("xdg-state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("RAMPART_SOCKET");
}

pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a live child has a non-zero pid");
    rustix::process::kill_process(pid, signal).expect("send a signal to rampart-agent");
}
