//! What one "is the phone done yet?" poll costs, end to end: the app's IPC
//! request, the agent's signed HTTPS call to the Duo-protocol test server
//! on loopback, the reply (nothing is written while Duo says "waiting").
//! Prints the first call (TLS handshake included) and percentiles over N
//! polls.
//!
//! Usage: cargo run --release -p rampart-tests --example duo_poll_latency [N]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use rampart_agent::ipc::client::Client;
use rampart_agent::paths::AgentPaths;
use rampart_agent::{AgentConfig, start};
use rampart_shared::ipc::{Request, Response};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::status::AgentMode;
use rampart_tests::duo::{DuoServer, Preauth, UserScript};

fn main() {
    let polls: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let server = DuoServer::start();
    let dir = tempfile::Builder::new()
        .prefix("rd")
        .tempdir_in("/tmp")
        .unwrap();
    let key = server.write_secret_key_file(dir.path());
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("agent.json"),
        format!(
            r#"{{"device_id": "bench", "allow_unsigned_local_policy": true, "extra_ca_file": "{}"}}"#,
            server.ca_file().display()
        ),
    )
    .unwrap();
    std::fs::write(etc.join("policy.json"), server.policy(&key).to_string()).unwrap();
    let login = rampart_agent::ipc::user_name(&rampart_agent::ipc::current_user().unwrap());
    let mut script = UserScript::new(Preauth::Enroll { exists: false });
    // The phone never activates: every poll asks Duo.
    script.enroll_statuses = vec!["waiting"];
    server.add_user(&login, script);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let paths = AgentPaths {
            config_dir: etc,
            state_dir: dir.path().join("state"),
            log_dir: dir.path().join("log"),
            socket: dir.path().join("a.sock"),
        };
        let agent = start(AgentConfig::new(AgentMode::Dev, paths)).await.unwrap();
        let mut client = Client::connect(agent.socket(), "bench").await.unwrap();
        let mut ask = async |command: MfaCommand| {
            let started = Instant::now();
            let reply = client
                .request(Request::Mfa {
                    command,
                    user: None,
                })
                .await
                .unwrap();
            let Response::Enrollment { view } = reply else {
                panic!("{reply:?}")
            };
            assert!(view.error.is_none(), "{:?}", view.error);
            started.elapsed()
        };
        let start_call = ask(MfaCommand::StartEnrollment).await;
        let first_poll = ask(MfaCommand::CheckProgress).await;
        let mut times: Vec<Duration> = Vec::with_capacity(polls);
        for _ in 0..polls {
            times.push(ask(MfaCommand::CheckProgress).await);
        }
        times.sort();
        let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "start (ping+check+preauth+enroll, new TLS connection): {:.2} ms",
            ms(start_call)
        );
        println!("first poll: {:.2} ms", ms(first_poll));
        println!(
            "{polls} polls (IPC + signed HTTPS enroll_status, kept-alive): p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            ms(pct(0.5)),
            ms(pct(0.9)),
            ms(pct(0.99)),
            ms(*times.last().unwrap())
        );
        let connections = server.requests().len();
        println!("requests Duo saw: {connections}");
        agent.stop().await.unwrap();
    });
}
