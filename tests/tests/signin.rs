//! `verify_signin` against a real agent process: the rules a sign-in
//! prompt relies on (issue 19), over the socket as the PAM module asks.

use rampart_shared::totp::{self, Params};
use rampart_tests::agent::AgentProcess;
use rampart_tests::ipc::RawClient;
use serde_json::{Value, json};

fn verify(agent: &AgentProcess, user: &str, code: &str) -> Value {
    let mut client = RawClient::greeted(&agent.socket);
    let reply = client.call(
        1,
        json!({"type": "verify_signin", "user": user, "code": code}),
    );
    assert_eq!(reply["reply"]["response"]["type"], "signin", "{reply}");
    reply["reply"]["response"]["result"].clone()
}

#[allow(clippy::expect_used)]
fn me() -> String {
    let uid = rustix::process::geteuid().as_raw();
    // The agent names its dev user through NSS; so does this.
    std::process::Command::new("id")
        .args(["-un", &uid.to_string()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .expect("id -un")
}

#[test]
fn codes_sign_in_once_recovery_codes_are_spent_and_wrong_codes_throttle() {
    let agent = AgentProcess::start_dev(&[]);
    let user = me();
    assert_eq!(
        verify(&agent, &user, "123456")["reason"],
        "not_enrolled",
        "before enrolling"
    );
    let (secret, recovery) = agent.enroll_totp();
    let next = totp::totp(
        &secret,
        chrono::Utc::now().timestamp() + 30,
        Params::PRODUCT,
    );

    let accepted = verify(&agent, &user, &next);
    assert_eq!(accepted["outcome"], "accepted", "{accepted}");
    assert_eq!(accepted["method"], "totp");
    assert_eq!(accepted["recovery_codes_left"], 10);
    let replayed = verify(&agent, &user, &next);
    assert_eq!(replayed["reason"], "replayed", "{replayed}");

    let spaced = format!("{} {}", &recovery[0][..5], recovery[0][5..].to_lowercase());
    let spent = verify(&agent, &user, &spaced);
    assert_eq!(spent["outcome"], "accepted", "{spent}");
    assert_eq!(spent["method"], "recovery_code");
    assert_eq!(spent["recovery_codes_left"], 9);
    assert_eq!(verify(&agent, &user, &recovery[0])["reason"], "wrong_code");

    assert_eq!(verify(&agent, &user, "12 34")["reason"], "malformed");
    assert_eq!(verify(&agent, "nobody", "123456")["reason"], "not_enrolled");

    // The recovery code's second use was wrong code 1; three more, then
    // the fifth starts a 30 s wait, during which even a right code is
    // refused.
    let window: Vec<String> = (-1..=2)
        .map(|d| {
            totp::totp(
                &secret,
                chrono::Utc::now().timestamp() + 30 * d,
                Params::PRODUCT,
            )
        })
        .collect();
    let mut wrong = (0..)
        .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|c| !window.contains(c));
    for _ in 0..3 {
        assert_eq!(
            verify(&agent, &user, &wrong.next().unwrap())["reason"],
            "wrong_code"
        );
    }
    let throttled = verify(&agent, &user, &wrong.next().unwrap());
    assert_eq!(throttled["reason"], "throttled", "{throttled}");
    assert_eq!(throttled["retry_after_secs"], 30);
    let later = totp::totp(
        &secret,
        chrono::Utc::now().timestamp() + 60,
        Params::PRODUCT,
    );
    assert_eq!(verify(&agent, &user, &later)["reason"], "throttled");

    let status = agent.status();
    let signin = &status["mfa"]["signin"];
    assert_eq!(signin["recovery_codes_left"], 9, "{status:#}");
    assert_eq!(signin["accepted"], 2);
    assert_eq!(signin["replayed"], 1);
    assert_eq!(signin["wrong_code"], 5);
    assert_eq!(signin["throttled"], 2);
    assert_eq!(signin["recovery_codes_used"], 1);
    let text = agent.cli(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(
            "Sign-in  9 recovery codes left; 2 sign-ins, 5 wrong codes, 1 replayed, 2 throttled"
        ),
        "{text}"
    );

    // The wait outlives a restart (it is in the state file with the last
    // accepted step; `mfa::signin`'s unit tests restart into a replay).
    let mut agent = agent;
    agent.restart();
    assert_eq!(verify(&agent, &user, &next)["reason"], "throttled");

    let log = agent.log();
    assert!(log.contains("sign-in code accepted"), "{log}");
    for code in std::iter::once(&next).chain(&recovery[..1]) {
        assert!(!log.contains(code.as_str()), "the log has a code: {code}");
    }
}
