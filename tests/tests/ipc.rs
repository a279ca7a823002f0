//! The real agent binary on a temporary socket, met by well-behaved and
//! hostile clients.

use std::thread;
use std::time::{Duration, Instant};

use rampart_tests::agent::{AgentProcess, cli_with_socket};
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
    if !rustix::process::geteuid().is_root() {
        eprintln!("\n!!!! SKIPPED: acting as another local user needs root !!!!\n");
        return;
    }
    let Some(setpriv) = rampart_tests::real_peer("setpriv", "util-linux") else {
        return;
    };
    let agent = AgentProcess::start_system(&[]);
    // The system agent's socket is world-connectable; let `nobody` reach it.
    std::fs::set_permissions(
        agent.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
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
