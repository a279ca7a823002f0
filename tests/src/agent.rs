//! The real `rampart-agent` binary, started in an isolated directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{short_tempdir, workspace_bin};

pub struct AgentProcess {
    child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
    args: Vec<std::ffi::OsString>,
    /// Extra environment, kept for restarts.
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

impl AgentProcess {
    /// `rampart-agent run --dev` with its socket, state and home in a fresh
    /// temporary directory.
    pub fn start_dev(extra_args: &[&str]) -> Self {
        Self::start(&["--dev"], &loopback_policy(1), extra_args)
    }

    /// Dev mode with `policy` as the managed (unsigned, allowed) policy file.
    pub fn start_dev_with_policy(policy: &Value, extra_args: &[&str]) -> Self {
        Self::start(&["--dev"], policy, extra_args)
    }

    /// Dev mode with `policy`, and `install` merged into the install config
    /// (e.g. `{"extra_ca_file": …}`).
    pub fn start_dev_with_install(policy: &Value, install: &Value, extra_args: &[&str]) -> Self {
        Self::start_with(&["--dev"], policy, install, extra_args)
    }

    /// System mode (world-connectable socket), still confined to a temporary
    /// directory: for tests about other local users.
    pub fn start_system(extra_args: &[&str]) -> Self {
        Self::start(&[], &loopback_policy(1), extra_args)
    }

    /// Dev mode with `policy`; `prepare` runs on the fresh directory before
    /// the agent starts (e.g. to mount a tiny file system as `state/`).
    pub fn start_dev_prepared(policy: &Value, prepare: impl FnOnce(&Path)) -> Self {
        Self::start_prepared(&["--dev"], policy, &json!({}), &[], prepare)
    }

    fn start(mode_args: &[&str], policy: &Value, extra_args: &[&str]) -> Self {
        Self::start_with(mode_args, policy, &json!({}), extra_args)
    }

    fn start_with(
        mode_args: &[&str],
        policy: &Value,
        install: &Value,
        extra_args: &[&str],
    ) -> Self {
        Self::start_prepared(mode_args, policy, install, extra_args, |_| {})
    }

    /// Dev mode with `policy` and extra environment for the agent's process
    /// (e.g. libfaketime's, to move its wall clock while it runs).
    pub fn start_dev_with_env(
        policy: &Value,
        install: &Value,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let env = env
            .iter()
            .map(|(k, v)| (std::ffi::OsString::from(k), v.to_os_string()))
            .collect();
        Self::start_full(&["--dev"], policy, install, &[], |_| {}, env)
    }

    fn start_prepared(
        mode_args: &[&str],
        policy: &Value,
        install: &Value,
        extra_args: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Self {
        Self::start_full(mode_args, policy, install, extra_args, prepare, Vec::new())
    }

    fn start_full(
        mode_args: &[&str],
        policy: &Value,
        install: &Value,
        extra_args: &[&str],
        prepare: impl FnOnce(&Path),
        env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    ) -> Self {
        let dir = short_tempdir();
        prepare(dir.path());
        let socket = dir.path().join("agent.sock");
        let config = write_install_config_with(dir.path(), policy, install);
        let mut args: Vec<std::ffi::OsString> = vec!["run".into()];
        args.extend(mode_args.iter().map(Into::into));
        args.extend(["--socket".into(), socket.clone().into()]);
        args.extend(["--state-dir".into(), dir.path().join("state").into()]);
        args.extend(["--config".into(), config.into()]);
        if !extra_args.contains(&"--log") {
            args.extend(["--log".into(), "info".into()]);
        }
        args.extend(extra_args.iter().map(Into::into));
        let child = spawn_agent(&args, &env, dir.path());
        let agent = Self {
            child,
            dir,
            socket,
            args,
            env,
        };
        agent.wait_until_listening();
        agent
    }

    /// Kills the agent (SIGKILL) and starts it again on the same directory,
    /// socket and arguments: a crash and a restart by the service manager.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.child = spawn_agent(&self.args, &self.env, self.dir.path());
        self.wait_until_listening();
    }

    /// Stops the agent cleanly (SIGTERM) and starts it again on the same
    /// directory, socket and arguments: a reboot, or `systemctl restart`.
    pub fn restart(&mut self) {
        let status = self.terminate();
        assert!(status.success(), "rampart-agent exited with {status}");
        self.child = spawn_agent(&self.args, &self.env, self.dir.path());
        self.wait_until_listening();
    }

    /// The state directory given with `--state-dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Everything the agent has logged so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The managed policy file: rewrite it to change policy under the agent.
    pub fn managed_policy_path(&self) -> PathBuf {
        self.dir.path().join("etc").join("policy.json")
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

    /// The agent's status, read over its socket as a client would.
    pub fn status(&self) -> Value {
        crate::ipc::RawClient::greeted(&self.socket).call(1, json!({"type": "status"}))["reply"]
            ["response"]["status"]
            .clone()
    }

    /// Polls the status until `done` holds (the checks, housekeeping and
    /// reports run on the agent's own tasks); panics with the last status
    /// after 30 s.
    pub fn wait_for_status(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.status();
            if done(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A finished TOTP enrollment of the agent's own user, over IPC as the
    /// app drives it: the secret (to make codes with) and the ten recovery
    /// codes. The code used to verify is the current step's, so a sign-in
    /// right after needs the next step's (`totp` at now + 30 s).
    pub fn enroll_totp(&self) -> (rampart_shared::totp::Secret, Vec<String>) {
        use rampart_shared::totp::{self, Params, Secret};
        let mut client = crate::ipc::RawClient::greeted(&self.socket);
        let mut mfa = |id, command: Value| {
            let reply = client.call(id, json!({"type": "mfa", "command": command}));
            reply["reply"]["response"]["view"].clone()
        };
        let view = mfa(1, json!({"type": "start_enrollment"}));
        let grouped = view["pairing"]["secret_grouped"]
            .as_str()
            .expect("a pairing")
            .to_owned();
        let secret = Secret::from_base32(&grouped.replace(' ', "")).expect("a base32 secret");
        let code = totp::totp(&secret, chrono::Utc::now().timestamp(), Params::PRODUCT);
        let view = mfa(2, json!({"type": "verify_code", "code": code}));
        assert_eq!(view["step"], "verified", "{view:#}");
        let codes = view["recovery_codes"]
            .as_array()
            .expect("recovery codes")
            .iter()
            .map(|c| c.as_str().expect("a code").to_owned())
            .collect();
        mfa(3, json!({"type": "confirm_recovery_codes_saved"}));
        let guide = json!({"type": "acknowledge_offline_guide",
            "guide_url": "https://127.0.0.1:9/offline-access"});
        let view = mfa(4, guide);
        assert_eq!(view["step"], "enrolled", "{view:#}");
        (secret, codes)
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
        if std::thread::panicking() {
            eprintln!("---- rampart-agent log ----\n{}", self.log());
        }
    }
}

fn spawn_agent(
    args: &[std::ffi::OsString],
    env: &[(std::ffi::OsString, std::ffi::OsString)],
    dir: &Path,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .expect("open the agent log");
    let mut cmd = Command::new(workspace_bin("rampart-agent"));
    cmd.args(args);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    isolate_home(&mut cmd, dir);
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    cmd.spawn().expect("start rampart-agent")
}

/// A policy whose every endpoint is on loopback, so that an agent under test
/// never reaches past this machine. Nothing listens on port 9 (discard): the
/// clock and network checks fail fast and say so.
pub fn loopback_policy(serial: u64) -> Value {
    json!({
        "schema": 1,
        "serial": serial,
        "mfa": {"required": true},
        "clock": {"ntp_servers": ["127.0.0.1:9"]},
        "links": {
            "offline_guide_url": "https://127.0.0.1:9/offline-access",
            "support_url": "https://127.0.0.1:9/support"
        }
    })
}

/// Writes `DIR/etc/agent.json` (unsigned managed policy allowed) and
/// `DIR/etc/policy.json`; returns the install config's path for `--config`.
pub fn write_install_config(dir: &Path, policy: &Value) -> PathBuf {
    write_install_config_with(dir, policy, &json!({}))
}

/// [`write_install_config`] with `extra`'s fields added to the install config.
pub fn write_install_config_with(dir: &Path, policy: &Value, extra: &Value) -> PathBuf {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).expect("create the config directory");
    let config = etc.join("agent.json");
    let mut install = json!({"device_id": "test-device", "allow_unsigned_local_policy": true});
    if let (Some(base), Some(more)) = (install.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    std::fs::write(&config, install.to_string()).expect("write agent.json");
    std::fs::write(etc.join("policy.json"), policy.to_string()).expect("write policy.json");
    config
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

/// A system agent that other uids can reach (its directory opened to them),
/// and `setpriv` to act as them; `None` (skipped, loudly) when this test
/// cannot act as another user.
#[cfg(unix)]
pub fn system_agent_for_other_users() -> Option<(AgentProcess, PathBuf)> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("\n!!!! SKIPPED: acting as another local user needs root !!!!\n");
        return None;
    }
    let setpriv = crate::real_peer("setpriv", "util-linux")?;
    let agent = AgentProcess::start_system(&[]);
    std::fs::set_permissions(
        agent.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("open the agent's directory to other users");
    Some((agent, setpriv))
}
