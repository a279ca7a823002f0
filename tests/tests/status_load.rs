//! `rampart-status-load`, the client of scripts/bench-status.sh, against a
//! real agent and against a fake one: not timed (the figures are the
//! script's business), only that it counts what it claims to count.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};

use rampart_tests::agent::AgentProcess;
use rampart_tests::short_tempdir;

fn load(socket: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart-status-load"))
        .arg(socket)
        .args(["--connections", "2", "--seconds", "1", "--warmup", "0"])
        .args(["--label", "case"])
        .args(extra)
        .output()
        .expect("run rampart-status-load")
}

/// The row's replies and errors (label, replies, req/s, errors, ...).
fn replies_and_errors(out: &Output) -> (u64, u64) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row: Vec<&str> = stdout
        .lines()
        .find(|l| l.starts_with("case "))
        .unwrap_or_else(|| panic!("no row in {stdout:?}"))
        .split_whitespace()
        .collect();
    (row[1].parse().unwrap(), row[3].parse().unwrap())
}

#[test]
fn closed_and_open_loop_against_a_real_agent_count_replies_and_no_errors() {
    let agent = AgentProcess::start_dev(&[]);
    for extra in [&[][..], &["--rate", "100"][..]] {
        let out = load(&agent.socket, extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {stderr}");
        let (replies, errors) = replies_and_errors(&out);
        assert!(replies >= 1, "{extra:?}: no replies");
        assert_eq!(errors, 0, "{extra:?}: {stderr}");
    }
}

#[test]
fn an_answer_that_is_not_a_status_reply_is_an_error() {
    let dir = short_tempdir();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    // Greets like an agent, then answers every request with a `pong`.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
                let mut answer = |id: u64, response: &str| {
                    let frame = format!("{{\"reply\":{{\"id\":{id},\"response\":{response}}}}}\n");
                    stream.write_all(frame.as_bytes()).is_ok()
                };
                let hello = r#"{"type":"hello","protocol":1,"agent_version":"0.1.0","mode":"dev"}"#;
                let mut id = 0;
                while let Some(Ok(_)) = lines.next() {
                    let response = if id == 0 { hello } else { r#"{"type":"pong"}"# };
                    if !answer(id, response) {
                        return;
                    }
                    id += 1;
                }
            });
        }
    });
    let out = load(&socket, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (replies, errors) = replies_and_errors(&out);
    assert_eq!((replies, errors), (0, 2), "{stderr}");
    assert!(
        stderr.contains("request 1 was answered with") && stderr.contains("pong"),
        "{stderr}"
    );

    // Nobody listening: every connection is an error, said as such.
    std::fs::remove_file(&socket).unwrap();
    let out = load(&socket, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
}
