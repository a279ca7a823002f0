//! Rampart's Windows binaries, run under Wine on this Linux machine.
//!
//! `scripts/cross.sh` builds them; `scripts/test.sh` exports where they are
//! (`RAMPART_WINDOWS_BIN_DIR`) and the Wine it set up (`WINE`, `WINEPREFIX`,
//! from `scripts/wine-env.sh`). Without them a test is skipped loudly, or
//! fails under `RAMPART_REQUIRE_REAL_SERVERS=1`.
//!
//! When the tests run as root, every Windows process starts in a network
//! namespace of its own with only loopback up (`unshare -n`): whatever a
//! Windows binary resolves, nothing leaves this machine. Named pipes and X11
//! go through Unix sockets in the file system, which a network namespace
//! does not cut.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::agent::write_install_config;
use crate::real_servers_required;

#[derive(Clone)]
pub struct Wine {
    loader: PathBuf,
    prefix: PathBuf,
    bin_dir: PathBuf,
    isolate_network: bool,
    env: Vec<(String, String)>,
}

impl Wine {
    /// The Wine set up by `scripts/test.sh`; `None` (after a loud skip
    /// message) when there is none.
    pub fn find() -> Option<Self> {
        let env = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let found = match (
            env("RAMPART_WINDOWS_BIN_DIR"),
            env("WINE"),
            env("WINEPREFIX"),
        ) {
            (Some(bin_dir), Some(loader), Some(prefix))
                if loader.is_file() && bin_dir.join("rampart-agent.exe").is_file() =>
            {
                Some(Self {
                    loader,
                    prefix,
                    bin_dir,
                    isolate_network: rustix::process::geteuid().is_root(),
                    env: Vec::new(),
                })
            }
            _ => None,
        };
        if found.is_none() {
            let msg = "no Windows build under Wine: run ./scripts/test.sh (it builds with \
                       scripts/cross.sh and sets RAMPART_WINDOWS_BIN_DIR, WINE and WINEPREFIX)";
            assert!(
                !real_servers_required(),
                "RAMPART_REQUIRE_REAL_SERVERS=1 and {msg}"
            );
            eprintln!("\n!!!! SKIPPED: {msg} !!!!\n");
        }
        found
    }

    /// This Wine with `name=value` in every program's environment.
    pub fn with_env(&self, name: &str, value: &str) -> Self {
        let mut wine = self.clone();
        wine.env.push((name.to_owned(), value.to_owned()));
        wine
    }

    pub fn exe(&self, name: &str) -> PathBuf {
        self.bin_dir.join(format!("{name}.exe"))
    }

    /// `exe` (a name such as `rampart-agent`) under Wine, with `args`.
    pub fn command(&self, exe: &str, args: &[&str]) -> Command {
        let mut cmd = if self.isolate_network {
            let mut cmd = Command::new("unshare");
            cmd.args(["-n", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#]);
            cmd.arg(&self.loader);
            cmd
        } else {
            Command::new(&self.loader)
        };
        cmd.arg(self.exe(exe))
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("NO_COLOR", "1")
            .env("RAMPART_LOG", "info")
            .env_remove("RAMPART_SOCKET")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Wine's own `reg.exe` with `args` (e.g. `add HKLM\\... /v NAME /d VALUE /f`),
    /// to completion.
    pub fn reg(&self, args: &[&str]) -> Output {
        Command::new(&self.loader)
            .arg("reg")
            .args(args)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null())
            .output()
            .expect("run reg.exe under Wine")
    }

    /// Runs `exe args` to completion (at most `timeout`).
    pub fn run(&self, exe: &str, args: &[&str], timeout: Duration) -> Output {
        let mut child = self
            .command(exe, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a Windows binary under Wine");
        let deadline = Instant::now() + timeout;
        while child.try_wait().expect("wait for Wine").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collect output");
                panic!(
                    "{exe} {args:?} under Wine did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("collect output")
    }

    /// A copy of this Wine prefix, with a Wine session of its own. Wine's
    /// desktop process (explorer.exe) starts with the first program of a
    /// session and keeps that program's display for good; a test that draws
    /// windows needs a session whose every program has its display.
    pub fn private_session(&self) -> PrivateWine {
        let dir = tempfile::Builder::new()
            .prefix("rampart-wine-")
            .tempdir()
            .expect("a directory for a Wine prefix");
        let prefix = dir.path().join("prefix");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&self.prefix)
            .arg(&prefix)
            .status()
            .expect("copy the Wine prefix");
        assert!(status.success(), "copying the Wine prefix failed");
        PrivateWine {
            wine: Self {
                loader: self.loader.clone(),
                prefix,
                bin_dir: self.bin_dir.clone(),
                isolate_network: self.isolate_network,
                env: self.env.clone(),
            },
            _dir: dir,
        }
    }

    /// Tests that use the default pipe names (the service's, or the one a
    /// dev agent takes for this user) hold this: one Wine prefix, one name.
    pub fn default_pipe_lock() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::new(());
        LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A Wine prefix of one test's own; its Wine session ends and the copy is
/// deleted on drop.
pub struct PrivateWine {
    pub wine: Wine,
    _dir: TempDir,
}

impl Drop for PrivateWine {
    fn drop(&mut self) {
        let wineserver = self.wine.loader.with_file_name("wineserver");
        let _ = Command::new(wineserver)
            .arg("-k")
            .env("WINEPREFIX", &self.wine.prefix)
            .status();
    }
}

/// A Linux path as Wine's Z: drive shows it to a Windows program.
pub fn win_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// `rampart-agent.exe run` under Wine, confined to a temporary directory
/// and a loopback-only policy.
pub struct WineAgent {
    child: Child,
    pub dir: TempDir,
    /// The pipe it listens on, as the agent printed it.
    pub pipe: String,
}

impl WineAgent {
    /// `mode_args`: `["--dev"]` or `[]` (system mode); `pipe`: `Some` for
    /// `--socket`, `None` for the mode's default name.
    pub fn start(wine: &Wine, mode_args: &[&str], pipe: Option<&str>) -> Self {
        // Under Wine 8 an agent sometimes never answers its first client
        // (ARCHITECTURE.md, Platforms; never seen on Linux, unknown on real
        // Windows). A probe is that first client; an agent that freezes on
        // it is replaced, said out loud, so the tests meet a working one.
        for attempt in 1..=3 {
            let agent = Self::start_once(wine, mode_args, pipe);
            let probe = wine.run(
                "rampart-agent",
                &["status", "--json", "--socket", &agent.pipe],
                Duration::from_secs(30),
            );
            let err = String::from_utf8_lossy(&probe.stderr);
            if !(err.contains("did not answer within") || err.contains("Pipe busy")) {
                return agent;
            }
            eprintln!(
                "wine: the agent froze on its first client (attempt {attempt} of 3): {}",
                err.trim()
            );
        }
        panic!("rampart-agent.exe froze on its first client three times in a row under Wine");
    }

    fn start_once(wine: &Wine, mode_args: &[&str], pipe: Option<&str>) -> Self {
        let dir = crate::short_tempdir();
        let config = write_install_config(dir.path(), &crate::agent::loopback_policy(1));
        let (config, state) = (win_path(&config), win_path(&dir.path().join("state")));
        let mut args = vec!["run"];
        args.extend_from_slice(mode_args);
        args.extend(["--config", &config, "--state-dir", &state]);
        if let Some(pipe) = pipe {
            args.extend(["--socket", pipe]);
        }
        let log = std::fs::File::create(dir.path().join("agent.log")).expect("create agent.log");
        let child = wine
            .command("rampart-agent", &args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start rampart-agent.exe under Wine");
        let mut agent = Self {
            child,
            dir,
            pipe: String::new(),
        };
        agent.pipe = agent.wait_until_listening();
        agent
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Ends the agent at once, like a crash (Wine's process is the agent's).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The agent prints `listening on NAME` once its pipe accepts clients.
    fn wait_until_listening(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(pipe) = self.log().lines().find_map(|l| {
                l.split_once("listening on ")
                    .map(|(_, p)| p.trim().to_owned())
            }) {
                return pipe;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the agent") {
                panic!("rampart-agent.exe exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "rampart-agent.exe did not listen within 60 s:\n{}",
            self.log()
        );
    }
}

impl Drop for WineAgent {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- rampart-agent.exe log ----\n{}", self.log());
        }
    }
}

/// A raw IPC session with an agent under Wine, through the pipe relay: the
/// test writes and reads the protocol's JSON lines itself.
pub struct PipeSession {
    relay: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl PipeSession {
    pub fn open(wine: &Wine, pipe: &str) -> Self {
        let mut relay = wine
            .command("rampart-pipe-relay", &[pipe])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the pipe relay under Wine");
        let stdin = relay.stdin.take();
        let stdout = relay.stdout.take().expect("relay stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut session = Self {
            relay,
            stdin,
            lines,
        };
        let hello = session.call(
            0,
            json!({"type": "hello", "protocol": 1, "client": "rampart-tests-wine"}),
        );
        assert_eq!(hello["reply"]["response"]["type"], "hello", "{hello}");
        session
    }

    /// Sends one request and returns the frame that answers it (pushes
    /// in between are skipped).
    pub fn call(&mut self, id: u64, request: Value) -> Value {
        let mut line = json!({"id": id, "request": request}).to_string();
        line.push('\n');
        let stdin = self.stdin.as_mut().expect("session open");
        stdin
            .write_all(line.as_bytes())
            .expect("write to the relay");
        stdin.flush().expect("flush the relay");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to request {id} within 60 s"));
            let frame: Value = serde_json::from_str(&line).expect("the agent sends JSON frames");
            // Replies are {"reply": {"id", ...}}, refusals {"error": {"id", ...}}.
            if frame["reply"]["id"] == id || frame["error"]["id"] == id {
                return frame;
            }
        }
    }
}

impl Drop for PipeSession {
    fn drop(&mut self) {
        // Closing stdin ends the relay; kill it if it lingers.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.relay.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.relay.kill();
        let _ = self.relay.wait();
    }
}
