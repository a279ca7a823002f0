//! The wired service end to end: policy drives the clock and network checks,
//! "Check again" re-runs them, a policy change is pushed to subscribers, and
//! an MFA enrollment survives the agent being killed mid-way.

use std::net::{IpAddr, Ipv4Addr, TcpListener};

use rampart_shared::totp::{self, Params, Secret};
use rampart_tests::agent::{AgentProcess, loopback_policy};
use rampart_tests::chrony::Chronyd;
use rampart_tests::ipc::RawClient;
use serde_json::{Value, json};

fn mfa(client: &mut RawClient, id: u64, command: Value) -> Value {
    let reply = client.call(id, json!({"type": "mfa", "command": command}));
    reply["reply"]["response"]["view"].clone()
}

#[test]
fn checks_follow_policy_and_check_again_reruns_them() {
    let Some(chronyd) = Chronyd::start(IpAddr::V4(Ipv4Addr::LOCALHOST), None) else {
        return;
    };
    let guide = TcpListener::bind("127.0.0.1:0").unwrap();
    let guide_port = guide.local_addr().unwrap().port();
    let mut policy = loopback_policy(1);
    policy["clock"]["ntp_servers"] = json!([chronyd.server()]);
    policy["links"]["offline_guide_url"] = json!(format!("https://127.0.0.1:{guide_port}/guide"));
    let agent = AgentProcess::start_dev_with_policy(&policy, &[]);

    let s = agent.wait_for_status("both checks", |s| {
        !s["clock"]["checked_at"].is_null() && !s["network"]["checked_at"].is_null()
    });
    assert_eq!(s["clock"]["state"], "synced", "{s:#}");
    assert_eq!(s["clock"]["server"], chronyd.server());
    assert!(
        s["clock"]["offset_ms"].as_i64().unwrap().abs() < 500,
        "{s:#}"
    );
    assert_eq!(s["network"]["state"], "online", "{s:#}");
    assert_eq!(
        s["network"]["detail"],
        format!("reached offline-access guide (127.0.0.1:{guide_port})")
    );

    // The guide's server goes away; "Check again" notices at once.
    drop(guide);
    let first_check = s["network"]["checked_at"].clone();
    let mut client = RawClient::greeted(&agent.socket);
    let reply = client.call(2, json!({"type": "refresh", "check": "network"}));
    assert_eq!(reply["reply"]["response"]["type"], "accepted");
    let s = agent.wait_for_status("a second network check", |s| {
        s["network"]["checked_at"] != first_check
    });
    assert_eq!(s["network"]["state"], "offline");
    let detail = s["network"]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "cannot reach offline-access guide (127.0.0.1:{guide_port}): connection refused"
        )),
        "{detail}"
    );
    let problem = &s["network"]["problems"][0];
    assert_eq!(problem["cause"], "refused", "{s:#}");
    assert_eq!(problem["endpoint"], "offline_guide", "{s:#}");
    assert_eq!(s["overall"], "action_needed");
}

/// Issue 18: every network check opened a bare connection to IT's policy
/// server. Once a poll has reached it, the next check counts that poll and
/// sends the server nothing.
#[test]
fn a_recent_poll_stands_for_the_policy_server_in_the_network_check() {
    const KEY: &str = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3";
    let server = rampart_tests::http::HttpServer::start();
    server.serve("/policy.json", "{}", "application/json");
    // The guide at the same host and port: one endpoint to check, IT's.
    let mut policy = loopback_policy(1);
    policy["links"]["offline_guide_url"] = json!(format!("https://{}/guide", server.addr()));
    let agent = AgentProcess::start_dev_with_install(
        &policy,
        &json!({"policy_url": server.url("/policy.json"), "public_keys": [KEY]}),
        &[],
    );
    // The poll's outcome in the status (its signature is missing: a fetch
    // error) means the agent has taken the server's answer in.
    let s = agent.wait_for_status("a poll and a network check", |s| {
        !s["policy"]["fetch_error"].is_null() && !s["network"]["checked_at"].is_null()
    });
    server.clear_requests();
    let first_check = s["network"]["checked_at"].clone();
    let reply =
        RawClient::greeted(&agent.socket).call(1, json!({"type": "refresh", "check": "network"}));
    assert_eq!(reply["reply"]["response"]["type"], "accepted");
    let s = agent.wait_for_status("a second network check", |s| {
        s["network"]["checked_at"] != first_check
    });
    assert_eq!(s["network"]["state"], "online", "{s:#}");
    assert_eq!(
        s["network"]["detail"],
        format!("reached policy server ({})", server.addr()),
        "{s:#}"
    );
    // Polls go on (this one fails on the missing signature and retries);
    // the network check's own request would be a HEAD.
    let asked: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.method == "HEAD")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        asked.is_empty(),
        "the check asked the policy server again: {asked:?}"
    );
}

#[test]
fn a_dead_time_server_means_unknown_never_synced() {
    let agent = AgentProcess::start_dev(&[]);
    let s = agent.wait_for_status("the clock check", |s| !s["clock"]["checked_at"].is_null());
    assert_eq!(s["clock"]["state"], "unknown");
    assert!(s["clock"]["offset_ms"].is_null());
    assert!(
        s["clock"]["detail"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9"),
        "{s:#}"
    );
}

#[test]
fn a_policy_change_is_pushed_to_subscribers_and_a_bad_one_is_refused() {
    let agent = AgentProcess::start_dev(&[]);
    let mut subscriber = RawClient::greeted(&agent.socket);
    let first = subscriber.call(1, json!({"type": "subscribe"}));
    assert_eq!(first["reply"]["response"]["type"], "subscribed");
    assert_eq!(
        first["reply"]["response"]["status"]["mfa"]["state"],
        "not_set_up"
    );

    // IT turns MFA off with a newer serial.
    let mut next = loopback_policy(2);
    next["mfa"]["required"] = json!(false);
    std::fs::write(agent.managed_policy_path(), next.to_string()).unwrap();
    RawClient::greeted(&agent.socket).call(1, json!({"type": "refresh", "check": "policy"}));
    let pushed = loop {
        let frame = subscriber.read().expect("a pushed event");
        let status = &frame["event"]["event"]["status"];
        if status["policy"]["serial"] == 2 {
            break status.clone();
        }
    };
    assert_eq!(pushed["mfa"]["state"], "not_required");
    assert_eq!(pushed["policy"]["mfa_required"], false);

    // An older serial is refused; the newer policy stays in force.
    std::fs::write(agent.managed_policy_path(), loopback_policy(1).to_string()).unwrap();
    RawClient::greeted(&agent.socket).call(1, json!({"type": "refresh", "check": "policy"}));
    let s = agent.wait_for_status("the rejection", |s| !s["policy"]["error"].is_null());
    assert_eq!(s["policy"]["serial"], 2);
    let error = s["policy"]["error"].as_str().unwrap();
    assert!(error.contains("serial"), "{error}");
}

#[test]
fn enrollment_over_ipc_survives_a_crash_and_keeps_its_secret_out_of_status_and_logs() {
    let mut agent = AgentProcess::start_dev(&[]);
    let mut client = RawClient::greeted(&agent.socket);
    let view = mfa(&mut client, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["step"], "pairing", "{view:#}");
    let uri = view["pairing"]["otpauth_uri"].as_str().unwrap().to_owned();
    let grouped = view["pairing"]["secret_grouped"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let secret_b32: String = grouped.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(uri.contains(&format!("secret={secret_b32}")));

    // Crash mid-enrollment: the same pairing resumes.
    agent.crash_and_restart();
    let mut client = RawClient::greeted(&agent.socket);
    let view = mfa(&mut client, 2, json!({"type": "start_enrollment"}));
    assert_eq!(view["step"], "pairing");
    assert_eq!(view["pairing"]["secret_grouped"], grouped.as_str());
    assert_eq!(agent.status()["mfa"]["state"], "in_progress");

    // A wrong code is refused and the step stays.
    let secret = Secret::from_base32(&secret_b32).unwrap();
    let now = chrono::Utc::now().timestamp();
    let right = totp::totp(&secret, now, Params::PRODUCT);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let view = mfa(
        &mut client,
        3,
        json!({"type": "verify_code", "code": wrong}),
    );
    assert_eq!(view["step"], "pairing");
    assert!(!view["error"].is_null(), "{view:#}");

    let view = mfa(
        &mut client,
        4,
        json!({"type": "verify_code", "code": right}),
    );
    assert_eq!(view["step"], "verified", "{view:#}");
    let codes = view["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    assert!(
        view["pairing"].is_null(),
        "the secret leaves the agent only while pairing"
    );

    agent.crash_and_restart();
    let mut client = RawClient::greeted(&agent.socket);
    let view = mfa(&mut client, 5, json!({"type": "start_enrollment"}));
    assert_eq!(view["step"], "verified");
    assert!(
        view["recovery_codes"].is_null(),
        "recovery codes are shown once"
    );
    let view = mfa(
        &mut client,
        6,
        json!({"type": "confirm_recovery_codes_saved"}),
    );
    assert_eq!(view["step"], "recovery_codes_saved");
    let guide = "https://127.0.0.1:9/offline-access";
    let view = mfa(
        &mut client,
        7,
        json!({"type": "acknowledge_offline_guide", "guide_url": guide}),
    );
    assert_eq!(view["step"], "enrolled", "{view:#}");
    assert_eq!(view["evidence"]["guide_url"], guide);
    assert_eq!(view["evidence"]["policy_serial"], 1);

    let s = agent.status();
    assert_eq!(s["mfa"]["state"], "enrolled");
    assert!(
        s["mfa"]["detail"].as_str().unwrap().starts_with("since "),
        "{s:#}"
    );

    // The secret and the recovery codes appear nowhere but where they must.
    let status_text = s.to_string();
    let log = agent.log();
    assert!(
        log.contains("MFA command applied"),
        "the log is being captured:\n{log}"
    );
    for planted in
        std::iter::once(secret_b32.as_str()).chain(codes.iter().map(|c| c.as_str().unwrap()))
    {
        assert!(!status_text.contains(planted), "status leaks {planted}");
        assert!(!log.contains(planted), "log leaks {planted}");
    }
}

/// A kill -9 between a temporary file's creation and its rename leaves
/// `.NAME.tmp-PID` behind (issue 15, finding 8). The next start removes
/// those of writers that are gone, in every directory the agent writes, and
/// nothing else.
#[test]
fn stale_temporary_files_are_removed_at_start() {
    let mut agent = AgentProcess::start_dev(&[]);
    let crashed = agent.pid();
    agent.kill();
    let state = agent.dir.path().join("state");
    let plant = |path: std::path::PathBuf| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"half a write").unwrap();
        path
    };
    let stale = [
        plant(state.join(format!(".policy-lkg.json.tmp-{crashed}"))),
        plant(
            state
                .join("mfa")
                .join(format!(".mfa-1000.json.tmp-{crashed}")),
        ),
        plant(state.join("reports").join(format!(".cursor.tmp-{crashed}"))),
    ];
    // A writer that is still running keeps its file.
    let mut writer = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let live = plant(state.join(format!(".update-floor.json.tmp-{}", writer.id())));
    let unrelated = plant(state.join("notes.tmp-1"));

    agent.crash_and_restart();
    for path in &stale {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    assert!(live.exists(), "a live writer's file was removed");
    assert!(unrelated.exists());
    let log = agent.log();
    assert_eq!(
        log.matches("removed a temporary file left by an interrupted write")
            .count(),
        3,
        "{log}"
    );
    let _ = writer.kill();
    let _ = writer.wait();
}

/// Issue 15, finding 6: after a rejected document, a poll that got a 404
/// left the rejection's reason in `policy.error` and the 404 nowhere. Now
/// the 404 is `policy.fetch_error` with its time, and `status` and `doctor`
/// say it in the same words.
#[test]
fn a_failed_poll_is_reported_apart_from_a_rejected_policy() {
    use rampart_tests::http::{HttpServer, Reply};
    use rampart_tests::{short_tempdir, workspace_bin};

    let keys = short_tempdir();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(workspace_bin("rampart-agent"))
            .args(args)
            .current_dir(keys.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    run(&["policy", "keygen", "--out", "k"]);
    let public = std::fs::read_to_string(keys.path().join("k.pub")).unwrap();
    let server = HttpServer::start();
    let publish = |serial: u64| {
        let file = keys.path().join("policy.json");
        std::fs::write(&file, loopback_policy(serial).to_string()).unwrap();
        run(&["policy", "sign", "policy.json", "--key", "k.key"]);
        server.serve(
            "/policy.json",
            std::fs::read(&file).unwrap(),
            "application/json",
        );
        server.serve(
            "/policy.json.minisig",
            std::fs::read(keys.path().join("policy.json.minisig")).unwrap(),
            "text/plain",
        );
    };
    publish(5);
    let agent = AgentProcess::start_dev_with_install(
        &loopback_policy(1),
        &json!({"policy_url": server.url("/policy.json"), "public_keys": [public]}),
        &[],
    );
    agent.wait_for_status("serial 5 from the server", |s| s["policy"]["serial"] == 5);
    let refresh = || {
        RawClient::greeted(&agent.socket).call(1, json!({"type": "refresh", "check": "policy"}));
    };

    publish(4);
    refresh();
    let s = agent.wait_for_status("the rejection", |s| !s["policy"]["error"].is_null());
    assert!(
        s["policy"]["error"]
            .as_str()
            .unwrap()
            .contains("serial 4 is lower than serial 5"),
        "{s:#}"
    );
    assert!(s["policy"]["fetch_error"].is_null(), "{s:#}");

    server.script("/policy.json", [Reply::new(404, "gone")]);
    let asked = chrono::Utc::now();
    refresh();
    let s = agent.wait_for_status("the failed poll", |s| !s["policy"]["fetch_error"].is_null());
    assert!(s["policy"]["error"].is_null(), "stale rejection: {s:#}");
    let failure = &s["policy"]["fetch_error"];
    let message = failure["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "{}: the server answered HTTP 404",
            server.url("/policy.json")
        )
    );
    let at: chrono::DateTime<chrono::Utc> = failure["at"].as_str().unwrap().parse().unwrap();
    assert!((at - asked).num_seconds().abs() < 15, "{at} vs {asked}");
    assert_eq!(s["policy"]["serial"], 5, "the policy in force stays");

    // The cause in the vocabulary's words; the raw text under Details.
    assert_eq!(failure["problem"]["cause"], "http_status", "{failure:#}");
    assert_eq!(failure["problem"]["status"], 404, "{failure:#}");
    let host = server.addr().to_string();
    let words = format!(
        "last policy poll failed at {}: {host} (policy server) answered with an error (HTTP 404).",
        at.format("%Y-%m-%d %H:%M UTC")
    );
    let status = agent.cli(&["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains(&words), "{status}");
    let (_, details) = status.split_once("\nDetails:\n").expect("a Details block");
    assert!(
        details.contains(&format!("  Policy: {message}")),
        "{status}"
    );
    let doctor = agent.cli(&["doctor", "--dev"]);
    let doctor = String::from_utf8_lossy(&doctor.stdout);
    let line = doctor
        .lines()
        .find(|l| l.contains("policy poll"))
        .unwrap_or_else(|| panic!("no policy poll check:\n{doctor}"));
    assert!(line.starts_with("WARN"), "{line}");
    assert!(line.contains(&words), "{line}");
}
