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
    // Each line without its timestamp, whose microseconds are six digits.
    let words: String = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("\n");
    for code in std::iter::once(&next).chain(&recovery[..1]) {
        assert!(!words.contains(code.as_str()), "the log has a code: {code}");
    }
}

/// Issue 19, step 6: on a shared machine every user drives their own
/// enrollment, status lists each one for IT and serves each user their
/// own, and only root changes another user's (by name).
#[test]
fn each_user_of_a_shared_machine_enrolls_on_their_own() {
    let Some((agent, setpriv)) = rampart_tests::agent::system_agent_for_other_users() else {
        return;
    };
    let socket = agent.socket.to_str().unwrap().to_owned();
    let as_user = |uid: u32, program: &std::path::Path| {
        let mut cmd = std::process::Command::new(&setpriv);
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(program)
            .env("HOME", "/nonexistent");
        cmd
    };
    let crowd: std::path::PathBuf = env!("CARGO_BIN_EXE_rampart-ipc-crowd").into();
    let start = |uid: u32| -> Value {
        let out = as_user(uid, &crowd)
            .args(["mfa", &socket, "start_enrollment"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    const ADA: u32 = 65533;
    const BOB: u32 = 65532;
    for uid in [ADA, BOB] {
        let reply = start(uid);
        assert_eq!(
            reply["reply"]["response"]["view"]["step"], "pairing",
            "{reply}"
        );
    }
    let status = agent.status();
    let users = status["mfa_users"].as_array().unwrap();
    let uids: Vec<_> = users.iter().map(|u| u["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids, [u64::from(BOB), u64::from(ADA)], "{status:#}");
    assert!(
        users.iter().all(|u| u["state"] == "in_progress"),
        "{status:#}"
    );

    // Root resets Bob's setup by name; Ada's stays.
    let bob_name = users[0]["user"].as_str().unwrap().to_owned();
    let mut root = RawClient::greeted(&agent.socket);
    let reply = root.call(
        2,
        json!({"type": "mfa", "user": bob_name, "command": {"type": "reset_enrollment"}}),
    );
    assert_eq!(
        reply["reply"]["response"]["view"]["step"], "not_set_up",
        "{reply}"
    );
    let status = agent.status();
    let states: Vec<_> = status["mfa_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["uid"].as_u64().unwrap(),
                u["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (u64::from(BOB), "not_set_up".to_owned()),
            (u64::from(ADA), "in_progress".to_owned())
        ]
    );

    // Each user is served their own section as `mfa`.
    let agent_bin = rampart_tests::workspace_bin("rampart-agent");
    let own = |uid: u32| -> Value {
        let out = as_user(uid, &agent_bin)
            .args(["status", "--json", "--socket", &socket])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(own(ADA)["mfa"]["state"], "in_progress");
    assert_eq!(own(BOB)["mfa"]["state"], "not_set_up");
}

/// A recovery code costs up to ten 19 MiB Argon2id hashes: at most two
/// checks run at once, a burst beyond is told to try again in a moment.
#[test]
fn a_burst_of_recovery_codes_is_checked_two_at_a_time() {
    let agent = AgentProcess::start_dev(&[]);
    let user = me();
    agent.enroll_totp();
    let mut clients: Vec<RawClient> = (0..5).map(|_| RawClient::greeted(&agent.socket)).collect();
    for client in &mut clients {
        client.send(
            1,
            json!({"type": "verify_signin", "user": user, "code": "ABCDE-FGHJK"}),
        );
    }
    let reasons: Vec<String> = clients
        .iter_mut()
        .map(|c| {
            let reply = c.read().unwrap();
            let result = &reply["reply"]["response"]["result"];
            match result["message"].as_str() {
                Some(m) if m.starts_with("Other recovery codes are being checked") => "busy".into(),
                _ => result["reason"].as_str().unwrap().to_owned(),
            }
        })
        .collect();
    let busy = reasons.iter().filter(|r| *r == "busy").count();
    let checked = reasons.iter().filter(|r| *r == "wrong_code").count();
    assert_eq!((checked, busy), (2, 3), "{reasons:?}");
    assert_eq!(agent.status()["mfa"]["signin"]["wrong_code"], 2);
}
