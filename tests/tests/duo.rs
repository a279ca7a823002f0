//! Duo end to end: the agent's Duo client against the Duo-protocol test
//! server over real TLS (trusting the server's CA through the install
//! config's `extra_ca_file`), then the whole agent driven over IPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use rampart_agent::duo::{
    AuthResult, DuoClient, DuoConfig, DuoError, EnrollStatus, Preauth as Answer,
};
use rampart_tests::agent::AgentProcess;
use rampart_tests::duo::{DuoServer, Preauth, UserScript};
use rampart_tests::ipc::RawClient;
use serde_json::{Value, json};

fn client(server: &DuoServer, dir: &Path, trust: bool) -> DuoClient {
    let key = server.write_secret_key_file(dir);
    let ca = server.ca_file();
    let config = DuoConfig::from_policy(
        &server.api_host(),
        rampart_tests::duo::INTEGRATION_KEY,
        &key,
        trust.then_some(ca.as_path()),
    )
    .unwrap();
    DuoClient::new(config).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_client_signs_as_duo_expects_and_reads_every_answer() {
    let server = DuoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let duo = client(&server, dir.path(), true);
    server.add_user("ann", UserScript::new(Preauth::Auth));
    server.add_user(
        "bob",
        UserScript::new(Preauth::Allow("Allowing unknown user".into())),
    );
    server.add_user(
        "cid",
        UserScript::new(Preauth::Deny("Access denied.".into())),
    );
    let mut pushing = UserScript::new(Preauth::Auth);
    pushing.push_results = vec![("waiting", "pushed"), ("deny", "fraud")];
    pushing.passcode = Some("123456");
    server.add_user("dee", pushing);
    runtime().block_on(async {
        let now = chrono::Utc::now();
        let duo_time = duo.ping().await.unwrap();
        assert!((duo_time - now).num_seconds().abs() <= 2);
        duo.check().await.unwrap();

        assert!(matches!(duo.preauth("ann").await.unwrap(), Answer::Auth { devices } if devices[0].takes_push()));
        assert_eq!(
            duo.preauth("bob").await.unwrap(),
            Answer::Allow {
                status_msg: "Allowing unknown user".into()
            }
        );
        assert!(matches!(duo.preauth("cid").await.unwrap(), Answer::Deny { .. }));

        // A new user: activation, waiting, success, then preauth says auth.
        assert!(matches!(duo.preauth("eve").await.unwrap(), Answer::Enroll { .. }));
        let activation = duo.enroll("eve").await.unwrap();
        assert!(activation.activation_code.starts_with("duo://"));
        assert!(activation.activation_url.starts_with("https://"));
        let (user_id, code) = (&activation.user_id, &activation.activation_code);
        assert_eq!(duo.enroll_status(user_id, code).await.unwrap(), EnrollStatus::Waiting);
        assert_eq!(duo.enroll_status(user_id, code).await.unwrap(), EnrollStatus::Success);
        assert!(matches!(duo.preauth("eve").await.unwrap(), Answer::Auth { .. }));
        // Duo refuses to create a user it has; the code is kept.
        let err = duo.enroll("ann").await.unwrap_err();
        assert!(matches!(err, DuoError::Fail { code: Some(40002), .. }), "{err}");

        // Push: waiting, then reported as fraud; passcodes.
        let txid = duo.auth_push("dee", "DPFZRS9FB0D46QFTM891").await.unwrap();
        assert_eq!(duo.auth_status(&txid).await.unwrap().result, AuthResult::Waiting);
        let fraud = duo.auth_status(&txid).await.unwrap();
        assert_eq!((fraud.result, fraud.status.as_str()), (AuthResult::Deny, "fraud"));
        assert_eq!(duo.auth_passcode("dee", "123456").await.unwrap().result, AuthResult::Allow);
        let wrong = duo.auth_passcode("dee", "654321").await.unwrap();
        assert_eq!(wrong.result, AuthResult::Deny);
        assert_eq!(wrong.status_msg, "Incorrect passcode. Please try again.");
    });
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.path != "/auth/v2/ping")
            .all(|r| r.signature_ok == Some(true)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.method == "GET" && r.path == "/auth/v2/auth_status")
    );
}

#[test]
fn a_short_429_is_retried_and_a_long_one_is_handed_back() {
    let server = DuoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let duo = client(&server, dir.path(), true);
    server.add_user("ann", UserScript::new(Preauth::Auth));
    runtime().block_on(async {
        server.rate_limit(1, 1);
        let started = Instant::now();
        assert!(matches!(
            duo.preauth("ann").await.unwrap(),
            Answer::Auth { .. }
        ));
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After was honoured"
        );

        server.rate_limit(1, 30);
        let started = Instant::now();
        let err = duo.preauth("ann").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no 30 s wait inside the client"
        );
        let DuoError::RateLimited { retry_after } = err else {
            panic!("{err}")
        };
        assert!(retry_after >= Duration::from_secs(30));
    });
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200, 429]);
}

#[test]
fn a_wrong_key_is_40103_and_an_untrusted_certificate_is_refused() {
    let server = DuoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("wrong.key");
    std::fs::write(&key, "x".repeat(40)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let ca = server.ca_file();
    let wrong = DuoClient::new(
        DuoConfig::from_policy(
            &server.api_host(),
            rampart_tests::duo::INTEGRATION_KEY,
            &key,
            Some(&ca),
        )
        .unwrap(),
    )
    .unwrap();
    let untrusted = client(&server, dir.path(), false);
    runtime().block_on(async {
        let err = wrong.check().await.unwrap_err();
        assert!(err.is_invalid_signature(), "{err}");
        let err = untrusted.ping().await.unwrap_err();
        let DuoError::Unreachable(why) = &err else {
            panic!("{err}")
        };
        assert!(why.to_lowercase().contains("certificate"), "{why}");
    });
}

// ---- The agent over IPC ----

fn start_agent(server: &DuoServer, dir: &Path) -> AgentProcess {
    let key = server.write_secret_key_file(dir);
    AgentProcess::start_dev_with_install(
        &server.policy(&key),
        &json!({"extra_ca_file": server.ca_file()}),
        &[],
    )
}

fn login_name() -> String {
    // The dev agent enrolls the user running the tests.
    let uid = rustix::process::getuid().as_raw();
    let output = std::process::Command::new("id")
        .args(["-un", &uid.to_string()])
        .output()
        .unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn mfa(client: &mut RawClient, id: u64, command: Value) -> Value {
    let reply = client.call(id, json!({"type": "mfa", "command": command}));
    reply["reply"]["response"]["view"].clone()
}

fn status(client: &mut RawClient, id: u64) -> Value {
    client.call(id, json!({"type": "status"}))["reply"]["response"]["status"].clone()
}

#[test]
fn a_new_duo_user_activates_confirms_with_a_push_and_is_enrolled() {
    let server = DuoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let mut c = RawClient::greeted(&agent.socket);

    let view = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["step"], "pairing", "{view}");
    assert_eq!(view["provider"], "duo");
    assert_eq!(view["duo"]["type"], "activate", "{view}");
    assert!(
        view["duo"]["activation_code"]
            .as_str()
            .unwrap()
            .starts_with("duo://")
    );
    assert_eq!(view["pairing"], Value::Null, "no TOTP secret for Duo");
    assert_eq!(
        status(&mut c, 2)["mfa"]["detail"],
        "activate Duo Mobile with the QR code"
    );

    // The app polls: waiting, then success brings the phone to confirm.
    let view = mfa(&mut c, 3, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["type"], "activate");
    let view = mfa(&mut c, 4, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["type"], "confirm", "{view}");
    assert_eq!(view["duo"]["devices"][0]["push"], true);

    let view = mfa(&mut c, 5, json!({"type": "send_push"}));
    assert_eq!(view["duo"]["push"], "waiting", "{view}");
    assert_eq!(
        status(&mut c, 6)["mfa"]["detail"],
        "approve the Duo Push on your phone"
    );
    let view = mfa(&mut c, 7, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["push"], "waiting");
    let view = mfa(&mut c, 8, json!({"type": "check_progress"}));
    assert_eq!(view["step"], "verified", "{view}");
    assert_eq!(view["recovery_codes"].as_array().unwrap().len(), 10);

    mfa(&mut c, 9, json!({"type": "confirm_recovery_codes_saved"}));
    let view = mfa(
        &mut c,
        10,
        json!({"type": "acknowledge_offline_guide", "guide_url": "https://127.0.0.1:9/offline-access"}),
    );
    assert_eq!(view["step"], "enrolled", "{view}");
    assert_eq!(status(&mut c, 11)["mfa"]["state"], "enrolled");

    let user = login_name();
    // `/ping` is also the network check's clock sample, at any moment: the
    // signed calls are in order, and Duo's clock was read before them.
    let paths = server.paths();
    let signed: Vec<&String> = paths.iter().filter(|p| *p != "/auth/v2/ping").collect();
    assert_eq!(
        signed[..3],
        ["/auth/v2/check", "/auth/v2/preauth", "/auth/v2/enroll"]
    );
    assert_eq!(paths[0], "/auth/v2/ping");
    let enroll = server
        .requests()
        .into_iter()
        .find(|r| r.path == "/auth/v2/enroll")
        .unwrap();
    assert_eq!(enroll.params, [("username".to_owned(), user)]);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.signature_ok != Some(false))
    );
    // The activation code is never logged.
    let code = server
        .requests()
        .iter()
        .find(|r| r.path == "/auth/v2/enroll_status")
        .and_then(|r| {
            r.params
                .iter()
                .find(|(k, _)| k == "activation_code")
                .cloned()
        })
        .unwrap()
        .1;
    assert!(!agent.log().contains(&code));
}

#[test]
fn an_expired_activation_is_renewed_and_a_passcode_confirms() {
    let server = DuoServer::start();
    let user = login_name();
    let mut script = UserScript::new(Preauth::Enroll { exists: false });
    script.enroll_statuses = vec!["invalid", "success"];
    script.passcode = Some("987654");
    server.add_user(&user, script);
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let mut c = RawClient::greeted(&agent.socket);

    let first = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    let view = mfa(&mut c, 2, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["expired"], true, "{view}");
    assert_eq!(
        status(&mut c, 3)["mfa"]["detail"],
        "get a new Duo activation"
    );
    let renewed = mfa(&mut c, 4, json!({"type": "renew_activation"}));
    assert_eq!(renewed["duo"]["expired"], false, "{renewed}");
    assert_ne!(
        renewed["duo"]["activation_code"],
        first["duo"]["activation_code"]
    );
    let view = mfa(&mut c, 5, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["type"], "confirm", "{view}");

    let wrong = mfa(&mut c, 6, json!({"type": "verify_code", "code": "111 111"}));
    assert_eq!(wrong["error"]["code"], "wrong_code");
    assert_eq!(
        wrong["error"]["message"],
        "Incorrect passcode. Please try again."
    );
    let right = mfa(&mut c, 7, json!({"type": "verify_code", "code": "987 654"}));
    assert_eq!(right["step"], "verified", "{right}");
}

#[test]
fn deny_bypass_and_rate_limits_are_said_plainly() {
    let server = DuoServer::start();
    let user = login_name();
    server.add_user(
        &user,
        UserScript::new(Preauth::Deny("Access denied.".into())),
    );
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let mut c = RawClient::greeted(&agent.socket);

    let denied = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(denied["error"]["code"], "access_denied", "{denied}");
    assert_eq!(
        denied["error"]["message"],
        "Duo does not allow MFA setup for your account. Contact your IT support team: only they \
         can allow it."
    );
    assert_eq!(denied["error"]["problem"]["cause"], "duo_denied");
    assert_eq!(
        denied["error"]["problem"]["details"], "Access denied.",
        "Duo's own words, on demand"
    );
    let s = status(&mut c, 2);
    assert_eq!(s["mfa"]["state"], "error");

    // IT changes the user to bypass; starting again notes it.
    server.add_user(
        &user,
        UserScript::new(Preauth::Allow("Allowing unknown user".into())),
    );
    let bypass = mfa(&mut c, 3, json!({"type": "start_enrollment"}));
    assert_eq!(bypass["step"], "not_required", "{bypass}");
    assert_eq!(bypass["duo"]["type"], "bypass");
    assert_eq!(status(&mut c, 4)["mfa"]["state"], "not_required");

    // 429 with a long Retry-After: the user is told to wait, Duo is not
    // asked again before then.
    server.add_user(&user, UserScript::new(Preauth::Auth));
    server.rate_limit(1, 60);
    let limited = mfa(&mut c, 5, json!({"type": "start_enrollment"}));
    assert_eq!(limited["error"]["code"], "throttled", "{limited}");
    assert!(limited["error"]["retry_after_secs"].as_u64().unwrap() >= 59);
    // The network check's `/ping` may come at any moment; the setup's own
    // calls are what must wait.
    let setup_calls = || {
        server
            .paths()
            .iter()
            .filter(|p| *p != "/auth/v2/ping")
            .count()
    };
    let asked = setup_calls();
    let again = mfa(&mut c, 6, json!({"type": "start_enrollment"}));
    assert_eq!(again["error"]["code"], "throttled");
    assert_eq!(setup_calls(), asked, "Duo was asked while backing off");
}

#[test]
fn a_clock_duo_refuses_is_named_with_its_figure_and_a_small_skew_is_signed_around() {
    let server = DuoServer::start();
    // Duo's clock is 10 min ahead: this computer's is 10 min slow, and the
    // server refuses the Date (40105) as Duo would.
    server.set_clock_offset(600);
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let mut c = RawClient::greeted(&agent.socket);
    let view = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["error"]["code"], "provider_error", "{view}");
    let problem = &view["error"]["problem"];
    assert_eq!(problem["cause"], "duo_clock", "{view}");
    let offset = problem["offset_ms"].as_i64().unwrap();
    assert!((offset + 600_000).abs() < 2_000, "measured {offset} ms");
    assert!(
        problem["details"].as_str().unwrap().contains("40105"),
        "Duo's code in the details: {problem}"
    );
    // The figure is the measured one: Duo's time has whole seconds, so
    // 10 min reads as 10 min or 9 min 59 s.
    let message = view["error"]["message"].as_str().unwrap();
    let said = |figure: &str| {
        format!(
            "Duo refused the request because this computer's clock is {figure} slow by Duo's \
             time. Turn on \"Set time automatically\" in your computer's date and time \
             settings, then try again."
        )
    };
    assert!(
        message == said("10 min") || message == said("9 min 59 s"),
        "{message}"
    );
    assert_eq!(view["step"], "not_set_up");

    // A minute off is beyond Duo's tolerance but within what the agent
    // measures and signs around: the setup goes on.
    server.set_clock_offset(60);
    let view = mfa(&mut c, 2, json!({"type": "start_enrollment"}));
    assert_eq!(view["error"], Value::Null, "{view}");
    assert_eq!(view["duo"]["type"], "activate", "{view}");
    let view = mfa(&mut c, 3, json!({"type": "check_progress"}));
    assert_eq!(view["error"], Value::Null, "{view}");
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.signature_ok.is_some())
            .all(|r| r.status != 401 || r.path == "/auth/v2/check"),
        "after the first refusal every signed request was accepted"
    );
}

#[test]
fn a_wrong_key_with_the_clock_right_is_duos_credentials() {
    let server = DuoServer::start();
    let dir = tempfile::tempdir().unwrap();
    let key = server.write_secret_key_file(dir.path());
    let mut policy = server.policy(&key);
    // A key Duo does not know makes /check fail with 40103.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, "y".repeat(40)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    policy["mfa"]["provider"]["secret_key_file"] = json!(wrong);
    let agent = AgentProcess::start_dev_with_install(
        &policy,
        &json!({"extra_ca_file": server.ca_file()}),
        &[],
    );
    let mut c = RawClient::greeted(&agent.socket);
    let view = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(
        view["error"]["problem"]["cause"], "duo_credentials",
        "{view}"
    );
    assert!(
        view["error"]["problem"]["details"]
            .as_str()
            .unwrap()
            .contains("40103"),
        "{view}"
    );
    assert_eq!(
        view["error"]["message"],
        "Duo refused Rampart's credentials (the integration key or secret key). Tell IT; \
         nothing on this computer needs to change."
    );
}

/// Waits until the agent's status satisfies `done`.
fn wait_for_status(client: &mut RawClient, mut id: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(client, id);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "status never changed: {s:#}");
        id += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn refresh_asks_duo_again_and_the_status_follows_preauth() {
    let server = DuoServer::start();
    let user = login_name();
    let mut script = UserScript::new(Preauth::Auth);
    script.passcode = Some("246810");
    server.add_user(&user, script);
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let mut c = RawClient::greeted(&agent.socket);

    // An existing Duo user: confirm with a passcode, then the shared steps.
    let view = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["duo"]["type"], "confirm", "{view}");
    assert!(
        !server.paths().iter().any(|p| p == "/auth/v2/enroll"),
        "a user Duo knows is not enrolled again"
    );
    mfa(&mut c, 2, json!({"type": "verify_code", "code": "246810"}));
    mfa(&mut c, 3, json!({"type": "confirm_recovery_codes_saved"}));
    let view = mfa(
        &mut c,
        4,
        json!({"type": "acknowledge_offline_guide", "guide_url": "https://127.0.0.1:9/offline-access"}),
    );
    assert_eq!(view["step"], "enrolled", "{view}");

    // IT removes the phone in Duo; the refresh button asks Duo again.
    server.add_user(&user, UserScript::new(Preauth::Enroll { exists: true }));
    let asked = server.requests().len();
    let accepted = c.call(5, json!({"type": "refresh", "check": "all"}));
    assert_eq!(
        accepted["reply"]["response"]["type"], "accepted",
        "{accepted}"
    );
    let s = wait_for_status(&mut c, 6, |s| s["mfa"]["state"] == "error");
    assert_eq!(
        s["mfa"]["detail"],
        "Duo no longer has a phone for this account; run MFA setup again"
    );
    assert!(
        server.paths()[asked..]
            .iter()
            .any(|p| p == "/auth/v2/preauth")
    );

    // Setting up again goes through Duo's portal (Duo has the user).
    let view = mfa(&mut c, 100, json!({"type": "start_enrollment"}));
    assert_eq!(view["duo"]["type"], "portal", "{view}");
    let url = view["duo"]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("https://{}/", server.api_host())),
        "{url}"
    );
}

#[test]
fn doctor_checks_the_duo_keys_and_names_the_cause() {
    let server = DuoServer::start();
    let dir = rampart_tests::short_tempdir();
    let key = server.write_secret_key_file(dir.path());
    rampart_tests::agent::write_install_config_with(
        dir.path(),
        &server.policy(&key),
        &json!({"extra_ca_file": server.ca_file()}),
    );
    let doctor = |dir: &Path| {
        let config = dir.join("etc").join("agent.json");
        let out = rampart_tests::agent::cli_with_socket(
            &[
                "doctor",
                "--json",
                "--dev",
                "--config",
                config.to_str().unwrap(),
            ],
            &dir.join("none.sock"),
            dir,
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Duo keys")
            .cloned()
            .unwrap_or_else(|| panic!("no Duo check: {report:#}"))
    };
    // No agent runs: doctor reads the managed policy and asks Duo itself.
    let good = doctor(dir.path());
    assert_eq!(good["result"], "PASS", "{good:#}");
    assert!(
        good["figure"]
            .as_str()
            .unwrap()
            .starts_with("accepted; this clock is"),
        "{good:#}"
    );

    // A wrong secret key: Duo refuses, and the clock is not the cause.
    std::fs::write(&key, "z".repeat(40)).unwrap();
    let bad = doctor(dir.path());
    assert_eq!(bad["result"], "FAIL", "{bad:#}");
    assert!(bad["figure"].as_str().unwrap().contains("40103"), "{bad:#}");
    assert!(
        bad["fix"].as_str().unwrap().contains("integration_key"),
        "{bad:#}"
    );
}

/// No time server answers (the loopback policy's is 127.0.0.1:9) and the
/// guide is unreachable: Duo's `/ping` measures the clock. Duo's clock is
/// 10 min ahead, so this computer's reads 10 min slow, by Duo's time.
#[test]
fn with_no_time_server_duos_ping_measures_the_clock() {
    let server = DuoServer::start();
    server.set_clock_offset(600);
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&server, dir.path());
    let s = agent.wait_for_status("the clock measured against Duo", |s| {
        s["clock"]["source"] == "duo_ping"
    });
    let clock = &s["clock"];
    assert_eq!(clock["state"], "skewed", "{clock:#}");
    assert_eq!(clock["server"], server.api_host().as_str(), "{clock:#}");
    let offset = clock["offset_ms"].as_i64().unwrap();
    let uncertainty = clock["uncertainty_ms"].as_i64().unwrap();
    assert!(uncertainty >= 1000, "{clock:#}");
    assert!((offset + 600_000).abs() <= uncertainty, "{clock:#}");
    let detail = clock["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "measured against Duo's time ({}), ± ",
            server.api_host()
        )),
        "{detail}"
    );
    assert!(
        server.paths().iter().any(|p| p == "/auth/v2/ping"),
        "asked Duo's /ping"
    );
}

/// The phone's activation succeeded but Duo's preauth still says `enroll`.
/// The wizard waits quietly, then, 2 min after the first such answer, says
/// so with the wait. The agent's wall clock is moved 130 s forward by
/// libfaketime (an offset file; its monotonic clock stays real), and Duo's
/// with it, so the test need not wait two minutes.
#[test]
fn an_activation_duo_does_not_confirm_is_said_after_two_minutes() {
    let Some(lib) = rampart_tests::chrony::libfaketime() else {
        return;
    };
    let server = DuoServer::start();
    server.add_user(
        &login_name(),
        UserScript {
            enroll_statuses: vec!["success"],
            enroll_after_activation: true,
            ..UserScript::new(Preauth::Enroll { exists: false })
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let shift = dir.path().join("faketime");
    std::fs::write(&shift, "+0s").unwrap();
    let key = server.write_secret_key_file(dir.path());
    let agent = AgentProcess::start_dev_with_env(
        &server.policy(&key),
        &json!({"extra_ca_file": server.ca_file()}),
        &[
            ("LD_PRELOAD", lib.as_os_str()),
            ("FAKETIME_TIMESTAMP_FILE", shift.as_os_str()),
            ("FAKETIME_NO_CACHE", "1".as_ref()),
            ("DONT_FAKE_MONOTONIC", "1".as_ref()),
        ],
    );
    let mut c = RawClient::greeted(&agent.socket);
    let view = mfa(&mut c, 1, json!({"type": "start_enrollment"}));
    assert_eq!(view["duo"]["type"], "activate", "{view}");
    // Activated on the phone; Duo's preauth has not caught up: quiet.
    let view = mfa(&mut c, 2, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["type"], "activate", "{view}");
    assert_eq!(view["error"], Value::Null, "{view}");

    std::fs::write(&shift, "+130s").unwrap();
    server.set_clock_offset(130);
    let view = mfa(&mut c, 3, json!({"type": "check_progress"}));
    assert_eq!(view["duo"]["type"], "activate", "{view}");
    let problem = &view["error"]["problem"];
    assert_eq!(problem["cause"], "duo_activation_pending", "{view}");
    let waited = problem["waited_ms"].as_u64().unwrap();
    assert!((130_000..135_000).contains(&waited), "waited {waited} ms");
    let message = view["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Duo has not confirmed your phone's activation after 2 min 1")
            && message.ends_with("then click Try again. If it still waits, tell IT."),
        "{message}"
    );
}
