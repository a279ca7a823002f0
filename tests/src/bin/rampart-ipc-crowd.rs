//! A hostile (or just busy) local user for the end-to-end tests, run as
//! another uid through `setpriv`:
//!
//! - `hold SOCKET N`: opens N connections, each a silent subscriber, prints
//!   `held H refused R other O` and keeps them until stdin closes;
//! - `mfa SOCKET COMMAND`: one MFA command (`start_enrollment`, …), prints
//!   the agent's reply frame;
//! - `flood SOCKET N`: N requests the user may not make, on one connection;
//!   prints `refused R`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_json::{Value, json};

fn frame(id: u64, request: Value) -> Vec<u8> {
    let mut line = json!({"id": id, "request": request}).to_string();
    line.push('\n');
    line.into_bytes()
}

fn hello() -> Vec<u8> {
    frame(
        0,
        json!({"type": "hello", "protocol": 1, "client": "rampart-ipc-crowd"}),
    )
}

fn read_frame(reader: &mut impl BufRead) -> Option<Value> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => serde_json::from_str(&line).ok(),
    }
}

fn raise_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

fn hold(socket: &str, n: usize) {
    raise_file_limit();
    let mut streams = Vec::with_capacity(n);
    let mut failed_to_connect = 0;
    for _ in 0..n {
        match UnixStream::connect(socket) {
            Ok(mut s) => {
                let mut bytes = hello();
                bytes.extend(frame(1, json!({"type": "subscribe"})));
                // A refused connection may be closed before this lands.
                let _ = s.write_all(&bytes);
                streams.push(s);
            }
            Err(_) => failed_to_connect += 1,
        }
    }
    let (mut held, mut refused, mut other) = (Vec::new(), 0, failed_to_connect);
    let mut refusal = String::new();
    for s in streams {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        match read_frame(&mut reader) {
            Some(f) if f["reply"]["response"]["type"] == "hello" => held.push(s),
            Some(f) if f["error"]["id"].is_null() && f.get("error").is_some() => {
                refused += 1;
                refusal = f["error"]["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            _ => other += 1,
        }
    }
    println!("held {} refused {refused} other {other}", held.len());
    println!("refusal: {refusal}");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(held);
}

fn mfa(socket: &str, command: &str) {
    let mut s = UnixStream::connect(socket).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    s.write_all(&hello()).unwrap();
    let greeting = read_frame(&mut reader).expect("a hello reply");
    assert_eq!(greeting["reply"]["response"]["type"], "hello", "{greeting}");
    s.write_all(&frame(
        1,
        json!({"type": "mfa", "command": {"type": command}}),
    ))
    .unwrap();
    let reply = read_frame(&mut reader).expect("an MFA reply");
    println!("{reply}");
}

fn flood(socket: &str, n: u64) {
    let mut s = UnixStream::connect(socket).expect("connect to the agent");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    s.write_all(&hello()).unwrap();
    read_frame(&mut reader).expect("a hello reply");
    let mut refused = 0u64;
    // In batches, so neither side's buffer fills while the other writes.
    for batch in (1..=n).collect::<Vec<_>>().chunks(100) {
        let mut bytes = Vec::new();
        for id in batch {
            let request = if id % 2 == 0 {
                json!({"type": "set_log_level", "level": "trace"})
            } else {
                json!({"type": "mfa", "command": {"type": "reset_enrollment"}})
            };
            bytes.extend(frame(*id, request));
        }
        s.write_all(&bytes).unwrap();
        for _ in batch {
            let reply = read_frame(&mut reader).expect("a reply to each request");
            let denied = reply["error"]["error"]["code"] == "permission_denied"
                || reply["reply"]["response"]["view"]["error"]["code"] == "forbidden";
            if denied {
                refused += 1;
            }
        }
    }
    println!("refused {refused}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1..).unwrap_or_default() {
        [cmd, socket, n] if cmd == "hold" => hold(socket, n.parse().expect("a count")),
        [cmd, socket, command] if cmd == "mfa" => mfa(socket, command),
        [cmd, socket, n] if cmd == "flood" => flood(socket, n.parse().expect("a count")),
        _ => {
            eprintln!(
                "usage: rampart-ipc-crowd hold SOCKET N | mfa SOCKET COMMAND | flood SOCKET N"
            );
            std::process::exit(2);
        }
    }
}
