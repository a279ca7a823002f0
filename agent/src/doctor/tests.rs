use super::*;
use std::time::Duration;

use crate::network::Endpoint;
use crate::service::Core;

fn facts() -> Facts {
    let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    let mut status = Core::fresh_status(AgentMode::Dev, now);
    status.mfa.state = MfaState::Enrolled;
    status.clock.state = ClockState::Synced;
    status.clock.checked_at = Some(now);
    status.clock.detail = "clock is 12 ms fast".into();
    Facts {
        now,
        socket: "/run/user/1000/agent.sock".into(),
        agent: Ok(AgentFacts {
            status,
            policy: Some(Policy::default()),
        }),
        socket_meta: Some(SocketMeta {
            mode: 0o140600,
            uid: 1000,
        }),
        expect_system: false,
        current_uid: Some(1000),
        managed: false,
        managed_file_signed: false,
        clock_direct: None,
        probes: vec![],
        duo: None,
        state_dir: "/var/lib/rampart".into(),
        free_bytes: Ok(5 * 1024 * 1024 * 1024),
        log_dir: "/var/log/rampart".into(),
        log_state: LogDir::Writable,
        extra_ca_error: None,
    }
}

#[test]
fn duo_keys_name_the_clock_or_the_keys() {
    let mut f = facts();
    f.duo = Some(DuoProbe::Checked {
        clock_offset_secs: 2,
        keys: Ok(()),
    });
    let c = get(&evaluate(&f), "Duo keys").clone();
    assert_eq!(c.result, Verdict::Pass);
    assert_eq!(
        c.figure,
        "accepted; this clock is 2 s fast compared with Duo's"
    );

    let refused =
        || Err("Duo refused the request: Invalid signature (code 40103, HTTP 401)".into());
    f.duo = Some(DuoProbe::Checked {
        clock_offset_secs: -400,
        keys: refused(),
    });
    let c = get(&evaluate(&f), "Duo keys").clone();
    assert_eq!(c.result, Verdict::Fail);
    assert_eq!(
        c.figure,
        "Duo refused the request: Invalid signature (code 40103, HTTP 401); \
         this clock is 6 min 40 s slow compared with Duo's"
    );
    assert_eq!(
        c.fix,
        "set the clock right (see the clock check), then run doctor again"
    );

    f.duo = Some(DuoProbe::Checked {
        clock_offset_secs: 0,
        keys: refused(),
    });
    let c = get(&evaluate(&f), "Duo keys").clone();
    assert_eq!(
        c.figure,
        "Duo refused the request: Invalid signature (code 40103, HTTP 401); \
         this clock is exact compared with Duo's, so the clock is not the cause"
    );
    assert_eq!(
        c.fix,
        "IT: check the policy's integration_key and the secret key file against the Duo Admin Panel"
    );
    assert_eq!(exit_code(&evaluate(&f)), 2);
}

fn get<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
    checks.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn a_healthy_device_passes_everything_and_exits_0() {
    let checks = evaluate(&facts());
    for c in &checks {
        assert_eq!(c.result, Verdict::Pass, "{c:?}");
    }
    assert_eq!(
        get(&checks, "network: MFA provider").figure,
        "TOTP: codes are checked on this device, no MFA server to reach"
    );
    assert_eq!(exit_code(&checks), 0);
    // The version is this build's, so the expectation follows it.
    let v = rampart_shared::version::Version::current();
    assert_eq!(
        Report::new(checks).render(),
        format!(
            "\
PASS  agent reachable        /run/user/1000/agent.sock: Rampart {v} (dev mode)
PASS  socket permissions     mode 600, owner uid 1000
PASS  policy                 built-in default, serial 0, built in
PASS  clock                  clock is 12 ms fast (agent)
PASS  network: MFA provider  TOTP: codes are checked on this device, no MFA server to reach
PASS  MFA                    Enrolled
PASS  version                Rampart {v}; policy sets no minimum version
PASS  disk space             5.0 GiB free in /var/lib/rampart
PASS  log dir                /var/log/rampart is writable
"
        )
    );
}

#[test]
fn no_agent_fails_reachability_and_says_what_was_not_checked() {
    let mut f = facts();
    f.agent = Err("the Rampart agent is not running".into());
    f.socket_meta = None;
    f.clock_direct = Some(ClockSection {
        state: ClockState::Unknown,
        detail: "127.0.0.1:9: no answer".into(),
        ..Core::fresh_status(AgentMode::Dev, f.now).clock
    });
    let checks = evaluate(&f);
    assert_eq!(get(&checks, "agent reachable").result, Verdict::Fail);
    assert_eq!(
        get(&checks, "MFA").figure,
        "not checked: the agent could not be asked"
    );
    let clock = get(&checks, "clock");
    assert_eq!(clock.result, Verdict::Warn);
    assert_eq!(clock.figure, "127.0.0.1:9: no answer (measured now)");
    assert_eq!(exit_code(&checks), 2);
}

#[test]
fn builtin_policy_on_a_managed_machine_warns() {
    let mut f = facts();
    f.managed = true;
    let c = evaluate(&f);
    let p = get(&c, "policy");
    assert_eq!(p.result, Verdict::Warn);
    assert_eq!(p.figure, "built-in default, serial 0, built in");
    assert_eq!(exit_code(&c), 1);
}

#[test]
fn a_kept_policy_is_its_own_warning_in_the_words_of_status() {
    let mut f = facts();
    let kept = rampart_shared::status::KeptPolicy {
        serial: 5,
        message: "managed file missing: keeping serial 5".into(),
    };
    if let Ok(a) = &mut f.agent {
        a.status.policy.source = PolicySource::LastKnownGood;
        a.status.policy.serial = 5;
        a.status.policy.kept = Some(kept);
    }
    let checks = evaluate(&f);
    assert_eq!(get(&checks, "policy").result, Verdict::Pass, "no rejection");
    let source = get(&checks, "policy source");
    assert_eq!(source.result, Verdict::Warn);
    assert_eq!(source.figure, "managed file missing: keeping serial 5");
    assert_eq!(
        source.fix,
        "IT: put a signed policy.json with a serial of at least this one back in place; \
         to withdraw the policy on purpose, run `rampart-agent policy reset` as an administrator"
    );
}

#[test]
fn a_refused_credential_fails_in_the_words_of_status() {
    let mut f = facts();
    assert!(
        !evaluate(&f)
            .iter()
            .any(|c| c.name == "IT reporting credential")
    );
    let at = f.now;
    if let Ok(a) = &mut f.agent {
        a.status.reporting.credential_error = Some(crate::report::credential::credential_error(
            Some(401),
            true,
            None,
            at,
        ));
    }
    let checks = evaluate(&f);
    let c = get(&checks, "IT reporting credential");
    assert_eq!(c.result, Verdict::Fail);
    assert_eq!(
        c.figure,
        "the report collector refused this device's credential (HTTP 401): \
         ask IT to check the deployment secret; reports wait on this device until then"
    );
    assert_ne!(exit_code(&checks), 0);
}

#[test]
fn a_failed_poll_is_its_own_warning_in_the_words_of_status() {
    let mut f = facts();
    let failure = rampart_shared::status::FetchFailure {
        message: "the server answered HTTP 404 for https://it.example/policy.json".into(),
        at: f.now,
        problem: None,
    };
    if let Ok(a) = &mut f.agent {
        a.status.policy.fetch_error = Some(failure.clone());
    }
    let checks = evaluate(&f);
    assert_eq!(get(&checks, "policy").result, Verdict::Pass, "no rejection");
    let poll = get(&checks, "policy poll");
    assert_eq!(poll.result, Verdict::Warn);
    assert_eq!(
        poll.figure,
        "last policy poll failed at 2026-11-18 11:06 UTC: \
         the server answered HTTP 404 for https://it.example/policy.json"
    );
    let Ok(a) = &f.agent else { unreachable!() };
    let status_line = rampart_shared::status::section_lines(&a.status)[3]
        .1
        .clone();
    // Status says the same words after its own summary of the policy.
    assert_eq!(
        status_line,
        format!(
            "built-in default, serial 0, MFA required (authenticator app (TOTP)); {}",
            poll.figure
        )
    );
    assert_eq!(exit_code(&checks), 1);
}

#[test]
fn an_unknown_clock_gets_advice_for_its_cause() {
    let mut f = facts();
    let mut fix_for = |detail: &str| {
        if let Ok(a) = &mut f.agent {
            a.status.clock.state = ClockState::Unknown;
            a.status.clock.detail = detail.to_owned();
        }
        get(&evaluate(&f), "clock").fix.clone()
    };
    assert_eq!(
        fix_for("no time server gave a usable answer: 127.0.0.1:9 timed out after 2 s"),
        "no time server answered: check UDP port 123 to the policy's NTP servers"
    );
    assert_eq!(
        fix_for("time servers disagree by more than the 30 s allowed (…)"),
        "IT: fix or remove the wrong NTP server in the policy"
    );
    assert_eq!(
        fix_for(
            "no time server gave a usable answer: 127.0.0.1:123 asked Rampart to back off (kiss-of-death RATE)"
        ),
        "wait until the server may be asked again, or ask IT to add another NTP server to the policy"
    );
}

#[test]
fn socket_modes_differ_for_system_and_dev() {
    let mut f = facts();
    assert_eq!(socket_check(&f).result, Verdict::Pass);
    f.socket_meta = Some(SocketMeta {
        mode: 0o666,
        uid: 1000,
    });
    assert_eq!(socket_check(&f).result, Verdict::Fail);
    f.expect_system = true;
    assert_eq!(
        socket_check(&f).result,
        Verdict::Fail,
        "service socket must be root's"
    );
    f.socket_meta = Some(SocketMeta {
        mode: 0o666,
        uid: 0,
    });
    assert_eq!(socket_check(&f).result, Verdict::Pass);
}

#[test]
fn probe_failures_name_the_stage() {
    let mut f = facts();
    f.probes = vec![
        Probe {
            endpoint: Endpoint::PolicyServer,
            url: "https://policy.example.com/p.json".into(),
            result: ProbeResult::Failed(Failure::Refused(
                "192.0.2.1:443: Connection refused (os error 111)".into(),
            )),
        },
        Probe {
            endpoint: Endpoint::Duo,
            url: "https://api-1.duosecurity.com/".into(),
            result: ProbeResult::Answered {
                addr: "192.0.2.1:443".parse().unwrap(),
                status: 404,
            },
        },
    ];
    let c = evaluate(&f);
    let policy = get(&c, "network: policy server");
    assert_eq!(policy.result, Verdict::Fail);
    assert_eq!(
        policy.figure,
        "policy.example.com (policy server) refused the connection. \
         (https://policy.example.com/p.json: TCP stage: connection refused: \
         192.0.2.1:443: Connection refused (os error 111))"
    );
    assert_eq!(
        policy.fix,
        "Tell IT that policy.example.com is not answering Rampart; nothing on this \
         computer needs to change."
    );
    assert_eq!(get(&c, "network: Duo").result, Verdict::Pass);
}

#[test]
fn answers_are_judged_by_what_the_endpoint_is_for() {
    use Endpoint::*;
    let v = |e, s| answer_verdict(e, s).0;
    // The collector: any 4xx/5xx fails, except asking for the
    // credential doctor does not send, or for POST.
    assert_eq!(v(Reporting, 501), Verdict::Fail);
    assert_eq!(v(Reporting, 500), Verdict::Fail);
    assert_eq!(v(Reporting, 404), Verdict::Fail);
    assert_eq!(v(Reporting, 400), Verdict::Fail);
    assert_eq!(v(Reporting, 204), Verdict::Pass);
    assert_eq!(v(Reporting, 401), Verdict::Pass);
    assert_eq!(v(Reporting, 403), Verdict::Pass);
    assert_eq!(v(Reporting, 405), Verdict::Pass);
    assert_eq!(v(PolicyServer, 200), Verdict::Pass);
    assert_eq!(v(PolicyServer, 304), Verdict::Pass);
    assert_eq!(v(PolicyServer, 302), Verdict::Fail);
    assert_eq!(v(PolicyServer, 404), Verdict::Fail);
    assert_eq!(v(Duo, 404), Verdict::Pass);
    assert_eq!(v(OfflineGuide, 301), Verdict::Pass);
    assert_eq!(v(OfflineGuide, 404), Verdict::Fail);
}

#[test]
fn a_failing_collector_is_a_failure_in_plain_words() {
    let mut f = facts();
    f.probes = vec![Probe {
        endpoint: Endpoint::Reporting,
        url: "https://reports.example.com/rampart".into(),
        result: ProbeResult::Answered {
            addr: "192.0.2.1:443".parse().unwrap(),
            status: 501,
        },
    }];
    let checks = evaluate(&f);
    let c = get(&checks, "network: IT reporting");
    assert_eq!(c.result, Verdict::Fail);
    assert_eq!(
        c.figure,
        "https://reports.example.com/rampart (192.0.2.1:443) answered HTTP 501 (Not Implemented)"
    );
    assert_eq!(
        c.fix,
        "the report collector is reachable but failing: IT must check the collector \
         (its log, and that it takes POST at this URL); reports wait on this device until then"
    );
    assert_eq!(exit_code(&checks), 2);
    assert_eq!(http_status_words(599), "HTTP 599");
}

#[test]
fn a_missing_log_dir_is_expected_of_a_dev_or_built_in_agent_only() {
    let mut f = facts();
    f.log_state = LogDir::Missing;
    for mode in [AgentMode::Dev, AgentMode::Embedded] {
        let c = log_check(&f, Some(mode));
        assert_eq!(c.result, Verdict::Pass, "{mode:?}");
        assert_eq!(
            c.figure,
            "/var/log/rampart does not exist yet: a dev agent creates it when it starts, \
             a built-in one needs none"
        );
    }
    assert_eq!(exit_code(&evaluate(&f)), 0);
    assert_eq!(log_check(&f, Some(AgentMode::System)).result, Verdict::Warn);
    // No agent to ask: what doctor expects decides.
    assert_eq!(log_check(&f, None).result, Verdict::Pass);
    f.expect_system = true;
    assert_eq!(log_check(&f, None).result, Verdict::Warn);
    f.log_state = LogDir::NotWritable("Permission denied (os error 13)".into());
    let c = log_check(&f, Some(AgentMode::Dev));
    assert_eq!(c.result, Verdict::Warn);
    assert_eq!(
        c.figure,
        "/var/log/rampart: no file can be created there (Permission denied (os error 13))"
    );
}

#[test]
fn an_unusable_extra_ca_is_its_own_failure() {
    let mut f = facts();
    f.extra_ca_error = Some("the CA file /etc/rampart/proxy.pem holds no certificate".into());
    let checks = evaluate(&f);
    let c = get(&checks, "extra CA");
    assert_eq!(c.result, Verdict::Fail);
    assert_eq!(
        c.figure,
        "the install config's extra_ca_file is not usable: \
         the CA file /etc/rampart/proxy.pem holds no certificate"
    );
}

#[test]
fn disk_thresholds() {
    let mut f = facts();
    f.free_bytes = Ok(DISK_WARN_BYTES - 1);
    assert_eq!(disk_check(&f).result, Verdict::Warn);
    f.free_bytes = Ok(DISK_FAIL_BYTES - 1);
    assert_eq!(disk_check(&f).result, Verdict::Fail);
    f.free_bytes = Ok(DISK_WARN_BYTES);
    assert_eq!(disk_check(&f).result, Verdict::Pass);
}

#[test]
fn below_minimum_version_fails() {
    let mut f = facts();
    if let Ok(a) = &mut f.agent {
        a.status.update.state = UpdateState::UpdateRequired;
    }
    assert_eq!(get(&evaluate(&f), "version").result, Verdict::Fail);
}

#[tokio::test]
async fn probe_names_tcp_for_a_closed_port_and_http_for_an_answer() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = probe(
        &format!("http://127.0.0.1:{closed}/p.json"),
        Duration::from_secs(2),
        &[],
    )
    .await;
    assert!(
        matches!(r, ProbeResult::Failed(Failure::Refused(_))),
        "{r:?}"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let r = probe(
        &format!("http://127.0.0.1:{port}/p.json"),
        Duration::from_secs(2),
        &[],
    )
    .await;
    assert!(
        matches!(r, ProbeResult::Answered { status: 404, .. }),
        "{r:?}"
    );
    // Plain HTTP spoken to a TLS client: the handshake stage fails.
    let r = probe(
        &format!("https://127.0.0.1:{port}/p.json"),
        Duration::from_secs(2),
        &[],
    )
    .await;
    assert!(matches!(r, ProbeResult::Failed(Failure::Tls(_))), "{r:?}");
}
