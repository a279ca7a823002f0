//! The clock check against real chronyd servers on loopback (some with a
//! clock skewed by libfaketime), fake servers that misbehave, and the real
//! `rampart-agent check-clock` binary. No traffic leaves 127.0.0.0/8 and ::1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use rampart_agent::clock::{self, ClockReport, KodBackoff, QueryError};
use rampart_shared::status::{ClockSection, ClockState};
use rampart_tests::chrony::{self, Chronyd};

const V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
const TIMEOUT: Duration = Duration::from_secs(2);
const MAX_SKEW: Duration = Duration::from_secs(30);
/// How far a measured skew may be from the one libfaketime applied.
const TOLERANCE_MS: f64 = 500.0;

async fn check(servers: &[String]) -> (ClockReport, ClockSection) {
    let report = clock::query_servers(servers, TIMEOUT).await;
    let section = clock::to_section(&report, MAX_SKEW, chrono::Utc::now());
    eprintln!("{report:#?}\n{section:#?}");
    (report, section)
}

fn assert_near(measured_ms: f64, want_ms: f64) {
    assert!(
        (measured_ms - want_ms).abs() <= TOLERANCE_MS,
        "measured {measured_ms} ms, want {want_ms} ms ± {TOLERANCE_MS}"
    );
}

#[tokio::test]
async fn true_time_server_is_synced() {
    let Some(server) = Chronyd::start(V4, None) else {
        return;
    };
    let (report, section) = check(&[server.server()]).await;
    assert_eq!(section.state, ClockState::Synced, "{}", server.log());
    let sample = report.results[0].outcome.as_ref().unwrap();
    assert_eq!(sample.stratum, 8, "chronyd's `local stratum 8`");
    assert_near(sample.offset_ms, 0.0);
    assert_eq!(section.server.as_deref(), Some(server.server().as_str()));
    assert!(section.uncertainty_ms.is_some());
}

/// A server 300 s ahead means this machine is 300 s behind: slow, negative.
#[tokio::test]
async fn server_ahead_means_our_clock_is_slow() {
    let Some(server) = Chronyd::start(V4, Some("+300s")) else {
        return;
    };
    let (report, section) = check(&[server.server()]).await;
    assert_eq!(section.state, ClockState::Skewed);
    assert_near(
        report.results[0].outcome.as_ref().unwrap().offset_ms,
        -300_000.0,
    );
    assert!(
        section.detail.starts_with("clock is 5 min slow"),
        "{}",
        section.detail
    );
}

#[tokio::test]
async fn server_behind_means_our_clock_is_fast() {
    let Some(server) = Chronyd::start(V4, Some("-90s")) else {
        return;
    };
    let (report, section) = check(&[server.server()]).await;
    assert_eq!(section.state, ClockState::Skewed);
    assert_near(
        report.results[0].outcome.as_ref().unwrap().offset_ms,
        90_000.0,
    );
    assert!(
        section.detail.starts_with("clock is 90 s fast"),
        "{}",
        section.detail
    );
}

#[tokio::test]
async fn ipv6_server_is_synced() {
    let Some(server) = Chronyd::start(V6, None) else {
        return;
    };
    let (report, section) = check(&[server.server()]).await;
    assert_eq!(section.state, ClockState::Synced, "{}", server.log());
    assert!(report.results[0].addr.unwrap().is_ipv6());
}

/// One wrong server among three does not move the verdict.
#[tokio::test]
async fn median_outvotes_one_wrong_server() {
    let (Some(a), Some(b), Some(wrong)) = (
        Chronyd::start(V4, None),
        Chronyd::start(V4, None),
        Chronyd::start(V4, Some("+300s")),
    ) else {
        return;
    };
    let (report, section) = check(&[a.server(), wrong.server(), b.server()]).await;
    assert_eq!(report.results.len(), 3);
    assert_eq!(section.state, ClockState::Synced);
    assert_near(section.offset_ms.unwrap() as f64, 0.0);
}

/// Issue 18: one silent server held every check for the whole timeout.
/// Three of four answer and agree: the round ends without it, and says so.
#[tokio::test]
async fn a_silent_server_is_not_awaited_once_a_majority_agrees() {
    let (Some(a), Some(b), Some(c)) = (
        Chronyd::start(V4, None),
        Chronyd::start(V4, None),
        Chronyd::start(V4, None),
    ) else {
        return;
    };
    // Bound and never read: the request is swallowed, nothing comes back.
    let silent = std::net::UdpSocket::bind((V4, 0)).unwrap();
    let quiet = silent.local_addr().unwrap().to_string();
    let (report, section) = check(&[a.server(), quiet.clone(), b.server(), c.server()]).await;
    assert_eq!(section.state, ClockState::Synced);
    assert_eq!(report.results.len(), 4);
    assert_eq!(report.results[1].server, quiet);
    match &report.results[1].outcome {
        Err(QueryError::Late { after_ms }) => assert!(*after_ms < 2000, "{after_ms}"),
        other => panic!("the silent server should be left behind, not awaited: {other:?}"),
    }
}

/// A name is asked at every address it resolves to; those without a server
/// fail on their own without spoiling the answer.
#[tokio::test]
async fn a_name_is_asked_at_all_its_addresses() {
    let Some(server) = Chronyd::start(V4, None) else {
        return;
    };
    let name = format!("localhost:{}", server.addr().port());
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(name.as_str())
        .await
        .unwrap()
        .collect();
    let (report, section) = check(std::slice::from_ref(&name)).await;
    assert_eq!(
        report.results.len(),
        resolved.len(),
        "one result per address: {resolved:?}"
    );
    assert!(report.results.iter().all(|r| r.server == name));
    let answered: Vec<_> = report
        .results
        .iter()
        .filter(|r| r.outcome.is_ok())
        .collect();
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].addr, Some(server.addr()));
    assert_eq!(section.state, ClockState::Synced);
    assert_eq!(section.server, Some(format!("{name} ({})", server.addr())));
}

#[tokio::test]
async fn silent_server_is_unknown_after_the_timeout() {
    // Bound and never read: the request is swallowed, nothing comes back.
    let silent = std::net::UdpSocket::bind((V4, 0)).unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let timeout = Duration::from_millis(300);
    let start = Instant::now();
    let report = clock::query_servers(std::slice::from_ref(&server), timeout).await;
    let elapsed = start.elapsed();
    eprintln!("silent server: unknown after {elapsed:?} (timeout {timeout:?})");
    let section = clock::to_section(&report, MAX_SKEW, chrono::Utc::now());
    assert_eq!(section.state, ClockState::Unknown);
    assert_eq!(
        report.results[0].outcome,
        Err(QueryError::Timeout { after_ms: 300 })
    );
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_secs(1),
        "took {elapsed:?}"
    );
    assert_eq!(
        section.detail,
        format!("no time server gave a usable answer: {server} timed out after 300 ms")
    );
}

#[tokio::test]
async fn closed_port_is_refused_without_waiting() {
    let port = chrony::free_udp_port(V4);
    let server = format!("127.0.0.1:{port}");
    let start = Instant::now();
    let report = clock::query_servers(std::slice::from_ref(&server), TIMEOUT).await;
    assert_eq!(report.results[0].outcome, Err(QueryError::Refused));
    assert!(
        start.elapsed() < TIMEOUT,
        "refused should not wait for the timeout"
    );
}

/// What a fake server puts in its replies.
#[derive(Clone, Copy)]
struct Reply {
    leap_indicator: u8,
    stratum: u8,
    refid: [u8; 4],
    /// Seconds by which the receive time (T2) is put after the transmit
    /// time (T3): anything but 0 is impossible.
    receive_after_transmit: u64,
}

impl Reply {
    const GOOD: Self = Self {
        leap_indicator: 0,
        stratum: 2,
        refid: *b"GPS\0",
        receive_after_transmit: 0,
    };
}

/// A server that answers every request with `reply` and correct timestamps
/// (unless `reply` asks otherwise).
async fn fake_server(reply: Reply) -> String {
    let socket = tokio::net::UdpSocket::bind((V4, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 128];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if n < 48 {
                continue;
            }
            let now = chrony::now_ntp();
            let mut out = [0u8; 48];
            out[0] = (reply.leap_indicator << 6) | (4 << 3) | 4; // version 4, mode 4 (server)
            out[1] = reply.stratum;
            out[2] = 6; // poll
            out[3] = 0xec; // precision -20
            out[12..16].copy_from_slice(&reply.refid);
            out[16..24].copy_from_slice(&(now - (1 << 32)).to_be_bytes()); // reference: 1 s ago
            out[24..32].copy_from_slice(&buf[40..48]); // origin = the client's transmit
            let received = now + (reply.receive_after_transmit << 32);
            out[32..40].copy_from_slice(&received.to_be_bytes());
            out[40..48].copy_from_slice(&now.to_be_bytes());
            let _ = socket.send_to(&out, peer).await;
        }
    });
    addr.to_string()
}

#[tokio::test]
async fn kiss_of_death_is_never_synced_and_is_backed_off() {
    let kod = fake_server(Reply {
        leap_indicator: 3,
        stratum: 0,
        refid: *b"RATE",
        ..Reply::GOOD
    })
    .await;
    let (report, section) = check(std::slice::from_ref(&kod)).await;
    assert_eq!(
        report.results[0].outcome,
        Err(QueryError::KissOfDeath("RATE".into()))
    );
    assert_eq!(section.state, ClockState::Unknown);
    assert!(
        section.detail.contains("kiss-of-death RATE"),
        "{}",
        section.detail
    );

    let now = std::time::Instant::now();
    let mut backoff = KodBackoff::default();
    backoff.observe(&report, now);
    assert!(backoff.skipped_until(&kod, now).is_some());
    assert!(backoff.allowed(std::slice::from_ref(&kod), now).is_empty());

    // The next round, as the service runs it: the kissing server is left
    // alone, and the status says so rather than "no time servers are
    // configured" (issue 15, finding 7).
    let configured = std::slice::from_ref(&kod);
    let later = now + Duration::from_secs(10);
    let report = clock::query_servers(&backoff.allowed(configured, later), TIMEOUT)
        .await
        .with_skipped(backoff.skipped(configured, later), configured);
    let section = clock::to_section(&report, MAX_SKEW, chrono::Utc::now());
    assert_eq!(section.state, ClockState::Unknown);
    assert_eq!(
        section.detail,
        format!(
            "no time server gave a usable answer: {kod} asked Rampart to back off \
             (kiss-of-death RATE); not asked again for 50 s"
        )
    );
}

/// T2 after T3: the server says it received the request a minute after it
/// answered. sntpc takes that; the agent must not (issue 15, finding 7).
#[tokio::test]
async fn receive_time_after_transmit_time_is_refused() {
    let impossible = fake_server(Reply {
        receive_after_transmit: 60,
        ..Reply::GOOD
    })
    .await;
    let (report, section) = check(std::slice::from_ref(&impossible)).await;
    assert_eq!(
        report.results[0].outcome,
        Err(QueryError::BadPacket(
            "its receive time is later than its transmit time, which is impossible".into()
        ))
    );
    assert_eq!(section.state, ClockState::Unknown);
    // The same server with honest timestamps is synced: only T2 > T3 is refused.
    let honest = fake_server(Reply::GOOD).await;
    let (_, section) = check(std::slice::from_ref(&honest)).await;
    assert_eq!(section.state, ClockState::Synced, "{}", section.detail);
}

/// Two servers five minutes apart: neither can be believed, and their mean
/// (2.5 min off) is no time at all (issue 15, finding 7).
#[tokio::test]
async fn two_servers_minutes_apart_are_reported_as_disagreeing() {
    let (Some(good), Some(ahead)) = (Chronyd::start(V4, None), Chronyd::start(V4, Some("+300s")))
    else {
        return;
    };
    let (report, section) = check(&[good.server(), ahead.server()]).await;
    assert!(
        report.results.iter().all(|r| r.outcome.is_ok()),
        "{report:?}"
    );
    assert_eq!(section.state, ClockState::Unknown);
    assert_eq!((section.offset_ms, section.server), (None, None));
    assert!(
        section
            .detail
            .starts_with("time servers disagree by more than the 30 s allowed ("),
        "{}",
        section.detail
    );
    // "clock is 5 min slow" or "4 min 59 s": the measurement is not exact.
    let ahead_says = format!("{}: clock is ", ahead.server());
    let said = section.detail.split(&ahead_says).nth(1).unwrap_or_default();
    assert!(
        said.starts_with("5 min slow") || said.starts_with("4 min 59 s slow"),
        "{}",
        section.detail
    );
}

#[tokio::test]
async fn unsynchronized_server_is_never_synced() {
    let li3 = fake_server(Reply {
        leap_indicator: 3,
        stratum: 2,
        refid: *b"GPS\0",
        ..Reply::GOOD
    })
    .await;
    let (report, section) = check(std::slice::from_ref(&li3)).await;
    assert_eq!(report.results[0].outcome, Err(QueryError::Unsynchronized));
    assert_eq!(section.state, ClockState::Unknown);
    assert!(
        section.detail.contains("is not synchronized itself"),
        "{}",
        section.detail
    );
}

/// The fake server's timestamps are right, so the only thing that can make
/// this synced is the one good server: the bad answers are not counted.
#[tokio::test]
async fn bad_answers_do_not_count_next_to_a_good_one() {
    let Some(skewed) = Chronyd::start(V4, Some("+300s")) else {
        return;
    };
    let kod = fake_server(Reply {
        leap_indicator: 3,
        stratum: 0,
        refid: *b"RATE",
        ..Reply::GOOD
    })
    .await;
    let li3 = fake_server(Reply {
        leap_indicator: 3,
        stratum: 2,
        refid: *b"GPS\0",
        ..Reply::GOOD
    })
    .await;
    let (_, section) = check(&[kod, li3, skewed.server()]).await;
    assert_eq!(section.state, ClockState::Skewed);
    assert_eq!(section.server.as_deref(), Some(skewed.server().as_str()));
}

fn check_clock(servers: &[String], faketime: Option<&str>) -> (i32, serde_json::Value) {
    let mut cmd = Command::new(rampart_tests::workspace_bin("rampart-agent"));
    cmd.args(["check-clock", "--json", "--timeout", "500"]);
    for s in servers {
        cmd.args(["--server", s]);
    }
    if let Some(shift) = faketime {
        cmd.env("LD_PRELOAD", chrony::libfaketime().unwrap())
            .env("FAKETIME", shift);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (
        out.status.code().unwrap(),
        serde_json::from_str(&stdout).expect("JSON on stdout"),
    )
}

fn keys(v: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn check_clock_binary_exit_codes_and_json() {
    let (Some(good), Some(ahead)) = (Chronyd::start(V4, None), Chronyd::start(V4, Some("+300s")))
    else {
        return;
    };
    let silent = std::net::UdpSocket::bind((V4, 0)).unwrap();
    let silent = silent.local_addr().unwrap().to_string();

    let (code, json) = check_clock(&[good.server()], None);
    assert_eq!((code, json["state"].as_str()), (0, Some("synced")));
    assert_eq!(
        keys(&json),
        [
            "estimate",
            "offset_ms",
            "server",
            "servers",
            "state",
            "uncertainty_ms"
        ]
    );
    assert_eq!(keys(&json["estimate"]), ["offset_ms", "uncertainty_ms"]);
    assert_eq!(
        keys(&json["servers"][0]),
        ["addr", "error", "offset_ms", "rtt_ms", "server", "stratum"]
    );
    assert_eq!(json["servers"][0]["stratum"], 8);
    assert!(json["servers"][0]["error"].is_null());

    let (code, json) = check_clock(&[ahead.server()], None);
    assert_eq!((code, json["state"].as_str()), (1, Some("skewed")));
    assert_near(json["offset_ms"].as_f64().unwrap(), -300_000.0);

    let (code, json) = check_clock(std::slice::from_ref(&silent), None);
    assert_eq!((code, json["state"].as_str()), (2, Some("unknown")));
    assert!(json["offset_ms"].is_null() && json["server"].is_null());
    assert_eq!(json["servers"][0]["error"], "timed out after 500 ms");
}

/// The sign, checked the other way round: this machine's own clock is
/// shifted (libfaketime on the binary), the server tells true time.
#[test]
fn check_clock_binary_with_a_skewed_local_clock() {
    let Some(good) = Chronyd::start(V4, None) else {
        return;
    };
    if chrony::libfaketime().is_none() {
        return;
    }
    let (code, json) = check_clock(&[good.server()], Some("+300s"));
    assert_eq!((code, json["state"].as_str()), (1, Some("skewed")));
    assert_near(json["offset_ms"].as_f64().unwrap(), 300_000.0);

    let (code, json) = check_clock(&[good.server()], Some("-90s"));
    assert_eq!(code, 1);
    assert_near(json["offset_ms"].as_f64().unwrap(), -90_000.0);
}

/// Where UDP 123 is blocked: the only time server is a closed loopback UDP
/// port, and the policy server (plain HTTP on loopback) sends a `Date`
/// header, right and then 10 minutes ahead. The real agent measures its
/// clock against that header, names it, and gives the uncertainty of whole
/// seconds: right → synced within it; 10 min → skewed, with the figure.
#[test]
fn with_no_time_server_the_policy_servers_date_header_measures_the_clock() {
    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    for (ahead_secs, want) in [(0, "synced"), (600, "skewed")] {
        let server = rampart_tests::http::HttpServer::start();
        server.send_date(chrono::TimeDelta::seconds(ahead_secs));
        let host = server.addr().to_string();
        // Its clock.ntp_servers is 127.0.0.1:9, where nothing listens.
        let policy = rampart_tests::agent::loopback_policy(1);
        let agent = rampart_tests::agent::AgentProcess::start_dev_with_install(
            &policy,
            &serde_json::json!({"policy_url": server.url("/policy.json"), "public_keys": [KEY]}),
            &[],
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let s = loop {
            let s = agent.status();
            if s["clock"]["source"] == "http_date" {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "no clock measured against the Date header; last status: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let clock = &s["clock"];
        eprintln!("{ahead_secs} s ahead: {clock:#}");
        assert_eq!(clock["state"], want, "{clock:#}");
        assert_eq!(clock["server"], host.as_str());
        let offset = clock["offset_ms"].as_i64().unwrap();
        let uncertainty = clock["uncertainty_ms"].as_i64().unwrap();
        assert!(uncertainty >= 1000, "{clock:#}");
        // This machine's clock is right; the server's is `ahead_secs` fast,
        // so this one reads as that much slow, within the uncertainty.
        assert!(
            (offset + ahead_secs * 1000).abs() <= uncertainty,
            "{clock:#}"
        );
        let detail = clock["detail"].as_str().unwrap();
        let source = format!("measured against the Date header of {host}, ± ");
        assert!(detail.contains(&source), "{detail}");
        assert!(detail.contains("127.0.0.1:9"), "{detail}");
        if ahead_secs > 0 {
            // 10 min less up to a second of the header's truncation.
            let figure = ["clock is 10 min slow", "clock is 9 min 59 s slow"];
            assert!(
                figure.iter().any(|f| detail.starts_with(&format!(
                    "{f}, more than the 30 s allowed (measured against"
                ))),
                "{detail}"
            );
        }
    }
}

/// The agent's wall clock is set 5 min forward (libfaketime reading its
/// offset from a file, the monotonic clock left alone) after its clock
/// check ran. A right phone's code then matches "a phone 5 min behind";
/// the agent measures that its own clock moved (wall time elapsed minus
/// monotonic time elapsed) and blames it, not the phone, then checks the
/// clock again.
#[test]
fn a_computer_clock_set_after_its_check_is_blamed_not_the_phone() {
    use rampart_shared::totp::{self, Params, Secret};
    use rampart_tests::ipc::RawClient;
    use serde_json::json;
    let Some(lib) = chrony::libfaketime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let shift = dir.path().join("faketime");
    std::fs::write(&shift, "+0s").unwrap();
    let agent = rampart_tests::agent::AgentProcess::start_dev_with_env(
        &rampart_tests::agent::loopback_policy(1),
        &json!({}),
        &[
            ("LD_PRELOAD", lib.as_os_str()),
            ("FAKETIME_TIMESTAMP_FILE", shift.as_os_str()),
            ("FAKETIME_NO_CACHE", "1".as_ref()),
            ("DONT_FAKE_MONOTONIC", "1".as_ref()),
        ],
    );
    // The clock check ran (nothing answers at 127.0.0.1:9: it measured
    // nothing, but the agent noted its wall and monotonic clocks).
    let checked = agent.wait_for_status("the first clock check", |s| {
        !s["clock"]["checked_at"].is_null()
    })["clock"]["checked_at"]
        .clone();
    let mut c = RawClient::greeted(&agent.socket);
    let view = c.call(
        1,
        json!({"type": "mfa", "command": {"type": "start_enrollment"}}),
    )["reply"]["response"]["view"]
        .clone();
    let uri = view["pairing"]["otpauth_uri"].as_str().unwrap().to_owned();
    let secret = uri
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .unwrap();
    let secret = Secret::from_base32(secret).unwrap();

    std::fs::write(&shift, "+300s").unwrap();
    let now = chrono::Utc::now().timestamp();
    let code = totp::totp(&secret, now, Params::PRODUCT);
    let view = c.call(
        2,
        json!({"type": "mfa", "command": {"type": "verify_code", "code": code}}),
    )["reply"]["response"]["view"]
        .clone();
    let error = &view["error"];
    assert_eq!(
        error["problem"]["cause"], "computer_clock_moved",
        "{view:#}"
    );
    let moved = error["problem"]["moved_ms"].as_i64().unwrap();
    assert!((moved - 300_000).abs() < 2_000, "moved {moved} ms");
    assert_eq!(error["code"], "wrong_code");
    assert_eq!(error["phone_skew_secs"], serde_json::Value::Null, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("This computer's clock moved 5 min forward since it was checked"),
        "{error}"
    );
    // The clock is checked again at once.
    agent.wait_for_status("a clock check after the move", |s| {
        s["clock"]["checked_at"] != checked
    });
}
