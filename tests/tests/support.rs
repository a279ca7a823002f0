//! Support and IT visibility end to end: `doctor` names what is broken,
//! reports reach a real collector exactly once and in order, and the
//! diagnose bundle never carries a secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use rampart_tests::agent::{
    AgentProcess, cli_with_socket, loopback_policy, signal, write_install_config,
};
use rampart_tests::short_tempdir;
use rustix::process::Signal;
use serde_json::{Value, json};

const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `doctor --json` against the agent files under `dir`.
fn doctor(dir: &Path, socket: &Path) -> (Output, Value) {
    let config = dir.join("etc").join("agent.json");
    let state = dir.join("state");
    let out = cli_with_socket(
        &[
            "doctor",
            "--json",
            "--dev",
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        socket,
        dir,
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

#[test]
fn doctor_without_an_agent_fails_reachability_and_still_checks_what_it_can() {
    let dir = short_tempdir();
    write_install_config(dir.path(), &loopback_policy(1));
    let socket = dir.path().join("agent.sock");
    let (out, report) = doctor(dir.path(), &socket);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(report["exit"], 2);
    let reach = check(&report, "agent reachable");
    assert_eq!(reach["result"], "FAIL");
    assert!(
        reach["figure"].as_str().unwrap().contains("not running"),
        "{reach}"
    );
    // Measured directly, against the loopback policy's dead server.
    let clock = check(&report, "clock");
    let figure = clock["figure"].as_str().unwrap();
    assert!(
        figure.contains("measured now") && figure.contains("127.0.0.1:9"),
        "{clock}"
    );
    assert_eq!(
        check(&report, "MFA")["figure"],
        "not checked: the agent could not be asked"
    );
    assert_ne!(check(&report, "disk space")["result"], "FAIL");
}

#[test]
fn doctor_names_tcp_when_the_policy_server_port_is_closed() {
    let agent = AgentProcess::start_dev(&[]);
    // IT's install config points at a policy server that is not listening.
    let port = closed_port();
    let install = json!({
        "device_id": "test-device",
        "policy_url": format!("http://127.0.0.1:{port}/policy.json"),
        "public_keys": [KEY],
        "allow_unsigned_local_policy": true,
    });
    std::fs::write(
        agent.dir.path().join("etc").join("agent.json"),
        install.to_string(),
    )
    .unwrap();
    let (out, report) = doctor(agent.dir.path(), &agent.socket);
    assert_eq!(out.status.code(), Some(2), "{report:#}");
    assert_eq!(check(&report, "agent reachable")["result"], "PASS");
    assert_eq!(
        check(&report, "socket permissions")["result"],
        "PASS",
        "{report:#}"
    );
    let net = check(&report, "network: policy server");
    assert_eq!(net["result"], "FAIL");
    assert!(
        net["figure"].as_str().unwrap().contains("TCP stage"),
        "{net}"
    );
    // The human form carries the same line.
    let text = agent.cli(&[
        "doctor",
        "--dev",
        "--config",
        agent.dir.path().join("etc/agent.json").to_str().unwrap(),
        "--state-dir",
        agent.dir.path().join("state").to_str().unwrap(),
    ]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAIL  network: policy server") && l.contains("TCP stage")),
        "{text}"
    );
}

/// The text of every file in the agent's log directory.
fn log_files(agent: &AgentProcess) -> String {
    let dir = agent.dir.path().join("state").join("logs");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    text
}

fn wait_for_log(agent: &AgentProcess, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = log_files(agent);
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log files:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_go_to_a_file_and_sigusr2_raises_the_level() {
    let agent = AgentProcess::start_dev(&[]);
    let names: Vec<String> = std::fs::read_dir(agent.dir.path().join("state/logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("agent.") && n.ends_with(".log")),
        "{names:?}"
    );
    wait_for_log(&agent, "the start line", |t| {
        t.contains("Rampart agent started")
    });
    // Stderr still gets the same lines.
    assert!(agent.log().contains("Rampart agent started"));

    signal(agent.pid(), Signal::USR2);
    wait_for_log(&agent, "debug level", |t| {
        t.contains("log level changed by SIGUSR2") && t.contains("level=\"debug\"")
    });
    signal(agent.pid(), Signal::USR2);
    wait_for_log(&agent, "trace level", |t| t.contains("level=\"trace\""));
}
