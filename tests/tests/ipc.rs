//! The real agent binary on a temporary socket, met by well-behaved and
//! hostile clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::thread;
use std::time::{Duration, Instant};

use rampart_tests::agent::{AgentProcess, cli_with_socket, system_agent_for_other_users};
use rampart_tests::ipc::RawClient;
use serde_json::{Value, json};

fn error_code(frame: &Value) -> &str {
    frame["error"]["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error frame: {frame}"))
}

#[test]
fn handshake_with_a_wrong_protocol_version_gets_a_clear_error_and_is_closed() {
    let agent = AgentProcess::start_dev(&[]);
    let mut client = RawClient::connect(&agent.socket);
    let reply = client.call(
        1,
        json!({"type": "hello", "protocol": 99, "client": "from-the-future/9.0"}),
    );
    assert_eq!(error_code(&reply), "protocol_mismatch");
    assert_eq!(reply["error"]["id"], 1);
    let message = reply["error"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("speaks IPC protocol 1")
            && message.contains("from-the-future/9.0")
            && message.contains("99"),
        "{message}"
    );
    assert!(client.is_closed_by_agent());
}

#[test]
fn requests_before_hello_are_refused() {
    let agent = AgentProcess::start_dev(&[]);
    let mut client = RawClient::connect(&agent.socket);
    let reply = client.call(4, json!({"type": "status"}));
    assert_eq!(error_code(&reply), "handshake_required");
    assert!(client.is_closed_by_agent());
}

#[test]
fn status_policy_and_unknown_requests_on_one_connection() {
    let agent = AgentProcess::start_dev(&[]);
    let mut client = RawClient::greeted(&agent.socket);
    let status = client.call(1, json!({"type": "status"}));
    let status = &status["reply"]["response"]["status"];
    assert_eq!(status["schema"], 1);
    assert_eq!(status["agent"]["mode"], "dev");
    assert_eq!(status["agent"]["pid"], agent.pid());
    assert_eq!(status["mfa"]["state"], "not_set_up");

    let unknown = client.call(2, json!({"type": "launch_missiles"}));
    assert_eq!(error_code(&unknown), "unknown_request");
    assert_eq!(unknown["error"]["id"], 2);

    // The connection survives an unknown request (a newer client) ...
    let policy = client.call(3, json!({"type": "policy_show"}));
    assert_eq!(policy["reply"]["response"]["source"], "managed_file");
    assert_eq!(policy["reply"]["response"]["policy"]["serial"], 1);
    assert_eq!(
        policy["reply"]["response"]["policy"]["clock"]["ntp_servers"],
        json!(["127.0.0.1:9"])
    );
}

#[test]
fn garbage_is_refused_and_closed_without_disturbing_others() {
    let agent = AgentProcess::start_dev(&[]);
    let mut good = RawClient::greeted(&agent.socket);
    let mut bad = RawClient::connect(&agent.socket);
    bad.send_raw(b"\x16\x03\x01 this is not json\n").unwrap();
    let reply = bad.read().unwrap();
    assert_eq!(error_code(&reply), "bad_frame");
    assert_eq!(reply["error"]["id"], Value::Null);
    assert!(bad.is_closed_by_agent());
    let status = good.call(1, json!({"type": "status"}));
    assert_eq!(status["reply"]["id"], 1);
}

#[test]
fn a_frame_over_64_kib_is_refused_while_another_client_is_served() {
    let agent = AgentProcess::start_dev(&[]);
    let mut other = RawClient::greeted(&agent.socket);
    let mut big = RawClient::greeted(&agent.socket);
    // Start the oversized frame, then check the other client mid-way.
    big.send_raw(&[b'x'; 40 * 1024]).unwrap();
    assert_eq!(other.call(1, json!({"type": "status"}))["reply"]["id"], 1);
    // The rest may not all be accepted once the agent closes the connection.
    let _ = big.send_raw(&[b'x'; 40 * 1024]);
    let reply = big.read().expect("an error before the close");
    assert_eq!(error_code(&reply), "frame_too_large");
    assert!(
        reply["error"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536")
    );
    assert!(big.is_closed_by_agent());
    assert_eq!(other.call(2, json!({"type": "status"}))["reply"]["id"], 2);
}

#[test]
fn a_frame_of_exactly_64_kib_is_accepted() {
    let agent = AgentProcess::start_dev(&[]);
    let mut client = RawClient::greeted(&agent.socket);
    // Pad a valid request with JSON whitespace up to the cap, newline included.
    let body = json!({"id": 5, "request": {"type": "status"}}).to_string();
    let mut frame = body.into_bytes();
    frame.splice(1..1, std::iter::repeat_n(b' ', 64 * 1024 - frame.len() - 1));
    frame.push(b'\n');
    assert_eq!(frame.len(), 64 * 1024);
    client.send_raw(&frame).unwrap();
    assert_eq!(client.read().unwrap()["reply"]["id"], 5);
}

#[test]
fn two_hundred_concurrent_status_clients_are_all_answered() {
    let agent = AgentProcess::start_dev(&[]);
    let socket = agent.socket.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let socket = socket.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut client = RawClient::greeted(&socket);
                barrier.wait();
                let reply = client.call(i, json!({"type": "status"}));
                reply["reply"]["id"] == i && reply["reply"]["response"]["status"]["schema"] == 1
            })
        })
        .collect();
    let answered = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|ok| *ok)
        .count();
    assert_eq!(answered, 200);
}

#[test]
fn a_stalled_client_is_dropped_and_others_carry_on() {
    let agent = AgentProcess::start_dev(&["--frame-timeout-ms", "300"]);
    // Says nothing at all.
    let mut silent = RawClient::connect(&agent.socket);
    // Starts a frame and never finishes it, one byte at a time.
    let mut dribbler = RawClient::greeted(&agent.socket);
    dribbler.send_raw(b"{\"id\":1,").unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(100));
        if dribbler.send_raw(b" ").is_err() {
            break;
        }
    }
    let mut fine = RawClient::greeted(&agent.socket);
    assert_eq!(fine.call(1, json!({"type": "status"}))["reply"]["id"], 1);

    let reply = silent.read().expect("a timeout error before the close");
    assert_eq!(error_code(&reply), "timeout");
    assert!(silent.is_closed_by_agent());
    assert!(
        dribbler.is_closed_by_agent(),
        "a client dribbling a frame is dropped"
    );
    // Generous: the point is that it is dropped at all, not how fast.
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn status_cli_summary_json_and_exit_codes() {
    let mut agent = AgentProcess::start_dev(&[]);
    let out = agent.cli(&["status"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "built-in policy: MFA not set up yet\n{text}"
    );
    assert!(
        text.starts_with("Rampart: Action needed\n  - MFA is not set up\n"),
        "{text}"
    );
    for section in ["MFA ", "Clock ", "Network ", "Policy ", "Agent ", "Update "] {
        assert!(
            text.lines().any(|l| l.starts_with(section)),
            "no {section} line in\n{text}"
        );
    }

    let out = agent.cli(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    for key in ["schema", "overall", "policy", "clock", "mfa"] {
        assert!(json.get(key).is_some(), "missing {key}: {json}");
    }
    assert_eq!(json["agent"]["version"], env!("CARGO_PKG_VERSION"));

    let out = agent.cli(&["policy", "show", "--json"]);
    assert!(out.status.success());
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["source"], "managed_file");
    assert_eq!(json["policy"]["clock"]["max_skew_secs"], 30);
    assert_eq!(
        json["policy"]["links"]["offline_guide_url"],
        "https://127.0.0.1:9/offline-access"
    );

    agent.kill();
    let started = Instant::now();
    let out = agent.cli(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("the Rampart agent is not running") && err.contains("rampart-agent run"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "status must give up quickly"
    );
}

#[test]
fn status_against_a_path_where_no_agent_ever_ran() {
    let dir = rampart_tests::short_tempdir();
    let out = cli_with_socket(
        &["status", "--json"],
        &dir.path().join("nothing.sock"),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "no JSON when there is no status");
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut agent = AgentProcess::start_dev(&[]);
    let status = agent.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!agent.socket.exists(), "socket left behind");
}

#[test]
fn a_second_agent_on_the_same_socket_refuses_to_start() {
    let agent = AgentProcess::start_dev(&[]);
    let out =
        rampart_tests::agent::cli_with_socket(&["run", "--dev"], &agent.socket, agent.dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("another Rampart agent is already listening"),
        "{err}"
    );
    // And the first one is unharmed.
    assert_eq!(
        RawClient::greeted(&agent.socket).call(1, json!({"type": "status"}))["reply"]["id"],
        1
    );
}

#[test]
fn another_local_user_may_read_status_but_not_administer() {
    // The system agent's socket is world-connectable; let `nobody` reach it.
    let Some((agent, setpriv)) = system_agent_for_other_users() else {
        return;
    };
    let as_nobody = |args: &[&str]| {
        std::process::Command::new(&setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(rampart_tests::workspace_bin("rampart-agent"))
            .args(args)
            .arg("--socket")
            .arg(&agent.socket)
            .env("HOME", "/nonexistent")
            .output()
            .unwrap()
    };
    let status = as_nobody(&["status", "--json"]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["agent"]["mode"], "system");

    let refused = as_nobody(&["log-level", "debug"]);
    assert!(!refused.status.success());
    let err = String::from_utf8(refused.stderr).unwrap();
    assert!(
        err.contains("permission_denied") && err.contains("not uid 65534"),
        "{err}"
    );

    // Root, on the other hand, may.
    let allowed = agent.cli(&["log-level", "debug"]);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
}

/// Runs `program args` as `uid` (and the same gid) through `setpriv`.
fn as_user(
    setpriv: &std::path::Path,
    uid: u32,
    program: &std::path::Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(setpriv);
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(program)
        .env("HOME", "/nonexistent");
    cmd
}

fn crowd() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_rampart-ipc-crowd").into()
}

/// Issue 15, finding 1: one unprivileged user holding 1030 silent
/// subscribers made root's `rampart-agent status` fail 5 of 5 times.
#[test]
fn one_user_holding_2000_connections_stops_neither_root_nor_the_owner() {
    let Some((agent, setpriv)) = system_agent_for_other_users() else {
        return;
    };
    let socket = agent.socket.to_str().unwrap().to_owned();
    const OWNER: u32 = 65533;
    const ATTACKER: u32 = 65534;
    let owner_mfa = |command: &str| -> Value {
        let out = as_user(&setpriv, OWNER, &crowd())
            .args(["mfa", &socket, command])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The owner enrols first: from now on slots are kept for them.
    let started = owner_mfa("start_enrollment");
    assert_eq!(
        started["reply"]["response"]["view"]["step"], "pairing",
        "{started}"
    );

    let mut attacker = as_user(&setpriv, ATTACKER, &crowd())
        .args(["hold", &socket, "2000"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut report = String::new();
    {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(attacker.stdout.take().unwrap());
        lines.read_line(&mut report).unwrap();
        let mut refusal = String::new();
        lines.read_line(&mut refusal).unwrap();
        eprintln!(
            "attacker (uid {ATTACKER}), 2000 connections: {}",
            report.trim()
        );
        eprintln!("what a refused client reads: {}", refusal.trim());
        assert!(
            refusal.contains("uid 65534 already holds 64 connections"),
            "{refusal}"
        );
    }
    let count = |word: &str| -> usize {
        let words: Vec<&str> = report.split_whitespace().collect();
        let at = words.iter().position(|w| *w == word).unwrap();
        words[at + 1].parse().unwrap()
    };
    assert_eq!(count("held"), 64, "{report}");
    assert_eq!(count("refused") + count("other"), 2000 - 64, "{report}");

    // While the attacker holds its connections: root's status, five times.
    let mut latencies = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let out = agent.cli(&["status", "--json"]);
        latencies.push(started.elapsed());
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "root's status failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(json["agent"]["mode"], "system");
    }
    eprintln!("root's `rampart-agent status` under attack, 5 of 5 answered: {latencies:?}");

    // The attacker's own CLI is told why, not "broken pipe": the agent's
    // refusal arrives before the client's first write fails.
    let own = as_user(
        &setpriv,
        ATTACKER,
        &rampart_tests::workspace_bin("rampart-agent"),
    )
    .args(["status", "--socket", &socket])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&own.stderr);
    eprintln!("the attacker's own `status`: {}", err.trim());
    assert!(!own.status.success(), "{err}");
    assert!(err.contains("already holds 64 connections"), "{err}");

    // And the owner's MFA command.
    let started = Instant::now();
    let resumed = owner_mfa("start_enrollment");
    eprintln!(
        "owner's MFA command under attack answered in {:?}",
        started.elapsed()
    );
    assert_eq!(
        resumed["reply"]["response"]["view"]["step"], "pairing",
        "{resumed}"
    );
    assert!(
        resumed["reply"]["response"]["view"]["error"].is_null(),
        "{resumed}"
    );

    // Fifteen more users, 100 connections each: together they fill every
    // slot ordinary users may take; root and the owner still get in through
    // the slots kept for them.
    let mut others = Vec::new();
    let mut held_by_others = 0;
    for uid in 65518..=65532 {
        let mut child = as_user(&setpriv, uid, &crowd())
            .args(["hold", &socket, "100"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap());
        lines.read_line(&mut line).unwrap();
        // Its second line (the refusal), read so that it never dies of a
        // closed pipe while it should be holding its connections.
        lines.read_line(&mut String::new()).unwrap();
        held_by_others += line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap();
        others.push(child);
    }
    eprintln!(
        "16 users: {} connections held in all (1024 slots, 32 kept for root and the owner)",
        64 + held_by_others
    );
    assert_eq!(64 + held_by_others, 1024 - 32);
    let started = Instant::now();
    let out = agent.cli(&["status", "--json"]);
    eprintln!(
        "root's status with every ordinary slot taken: {:?}",
        started.elapsed()
    );
    assert!(
        serde_json::from_slice::<Value>(&out.stdout).is_ok(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started = Instant::now();
    let again = owner_mfa("start_enrollment");
    eprintln!(
        "owner's MFA command with every ordinary slot taken: {:?}",
        started.elapsed()
    );
    assert_eq!(
        again["reply"]["response"]["view"]["step"], "pairing",
        "{again}"
    );

    for mut child in others.into_iter().chain([attacker]) {
        drop(child.stdin.take());
        child.wait().unwrap();
    }
}

/// Total bytes of the agent's log files.
fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Issue 15, finding 2: 194,600 refused requests in 20 s wrote 25.9 MB of
/// log.
#[test]
fn a_flood_of_refused_requests_writes_a_bounded_log() {
    let Some((agent, setpriv)) = system_agent_for_other_users() else {
        return;
    };
    let log_dir = agent.dir.path().join("state").join("logs");
    let stderr_before = agent.log().len();
    let files_before = log_bytes(&log_dir);
    const N: u64 = 20_000;
    let out = as_user(&setpriv, 65534, &crowd())
        .args(["flood", agent.socket.to_str().unwrap(), &N.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), format!("refused {N}"));
    // The agent's file writer runs on its own thread: let it catch up.
    thread::sleep(Duration::from_millis(500));
    let stderr_added = agent.log().len() - stderr_before;
    let files_added = log_bytes(&log_dir) - files_before;
    let lines: Vec<String> = agent
        .log()
        .lines()
        .filter(|l| {
            l.contains("refused a")
                || l.contains("command refused")
                || l.contains("refused requests")
        })
        .map(str::to_owned)
        .collect();
    eprintln!(
        "{N} refused requests from uid 65534: {files_added} bytes added to the log files, \
         {stderr_added} to stderr, {} log lines mention a refusal (before: one line each, \
         25.9 MB for 194,600)",
        lines.len()
    );
    for line in &lines {
        eprintln!("  {line}");
    }
    assert!(lines.len() <= 4, "{lines:#?}");
    assert!(files_added < 4096, "{files_added} bytes");

    // The files are private.
    for entry in std::fs::read_dir(&log_dir).unwrap().flatten() {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&entry.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", entry.path().display());
    }
}
