//! `pam_rampart.so` under Debian's `pamtester` against a real agent: every
//! case of issue 19 (right, wrong, replayed and recovery codes, throttled,
//! agent down, not enrolled), then the figures `rampart-agent status`
//! shows. Run with `--nocapture` to read the transcripts.

use rampart_shared::signin::PROMPT;
use rampart_shared::totp::{self, Params};
use rampart_tests::agent::system_agent_for_other_users;
use rampart_tests::pam::{self, PamService, Transcript};
use rampart_tests::real_peer;

fn show(case: &str, service: &PamService, user: &str, input: &str, t: &Transcript) {
    eprintln!(
        "--- {case}\n$ printf '%s\\n' '{input}' | pamtester -v {} {user} authenticate\n{}(exit {})\n",
        service.name,
        t.text,
        if t.success { 0 } else { 1 }
    );
}

#[test]
fn pamtester_signs_in_with_a_code_the_agent_checks() {
    let Some(pamtester) = real_peer("pamtester", "pamtester") else {
        return;
    };
    let Some(module) = pam::module() else {
        return;
    };
    // The system agent (any local user may connect), its directory open to
    // the screen locker's case below. Root, the test, signs in as root.
    let Some((agent, setpriv)) = system_agent_for_other_users() else {
        return;
    };
    let user = "root";
    let socket = format!("socket={}", agent.socket.display());
    let service = PamService::write(&pamtester, &module, &socket);
    let run = |case: &str, service: &PamService, user: &str, input: &str| {
        let t = service.authenticate(user, input);
        show(case, service, user, input, &t);
        t
    };

    // Not enrolled, default `not_enrolled=ignore`: no prompt, the rest of
    // the stack (pam_permit here) decides.
    let t = run("not enrolled (default: ignore)", &service, user, "");
    assert!(t.success, "{t:?}");
    assert!(!t.text.contains(PROMPT.trim()), "{t:?}");
    let strict = PamService::write(&pamtester, &module, &format!("{socket} not_enrolled=deny"));
    let t = run("not enrolled, not_enrolled=deny", &strict, user, "");
    assert!(!t.success, "{t:?}");
    assert!(
        t.text
            .contains("root has no finished sign-in code setup on this device"),
        "{t:?}"
    );
    assert!(t.text.contains("User not known"), "{t:?}");

    let (secret, recovery) = agent.enroll_totp();
    let now = || chrono::Utc::now().timestamp();
    let next = totp::totp(&secret, now() + 30, Params::PRODUCT);

    let t = run("right code", &service, user, &next);
    assert!(t.success, "{t:?}");
    assert!(t.text.contains(PROMPT.trim()), "{t:?}");
    assert!(t.text.contains("successfully authenticated"), "{t:?}");

    let t = run("replayed code", &service, user, &next);
    assert!(!t.success, "{t:?}");
    assert!(
        t.text.contains("That code was already used to sign in"),
        "{t:?}"
    );

    let t = run("recovery code", &service, user, &recovery[0]);
    assert!(t.success, "{t:?}");
    assert!(
        t.text
            .contains("Recovery code accepted; it cannot be used again. 9 left"),
        "{t:?}"
    );

    let window: Vec<String> = (-1..=2)
        .map(|d| totp::totp(&secret, now() + 30 * d, Params::PRODUCT))
        .collect();
    let mut wrong = (1..)
        .map(|n: u32| format!("{:06}", n * 7919 % 1_000_000))
        .filter(|c| !window.contains(c));
    let w = wrong.next().unwrap();
    let t = run("wrong code", &service, user, &w);
    assert!(!t.success, "{t:?}");
    assert!(t.text.contains("That code is not right"), "{t:?}");
    assert!(t.text.contains("Authentication failure"), "{t:?}");
    for _ in 0..3 {
        let w = wrong.next().unwrap();
        assert!(!service.authenticate(user, &w).success);
    }
    let w = wrong.next().unwrap();
    let t = run("fifth wrong code in a row: throttled", &service, user, &w);
    assert!(!t.success, "{t:?}");
    assert!(
        t.text.contains("Too many wrong codes. Try again in 30 s."),
        "{t:?}"
    );
    assert!(t.text.contains("maximum number of retries"), "{t:?}");
    // While the wait lasts, nobody is asked for a code at all.
    let right = totp::totp(&secret, now() + 60, Params::PRODUCT);
    let t = run(
        "throttled: even the right code waits",
        &service,
        user,
        &right,
    );
    assert!(!t.success, "{t:?}");
    assert!(!t.text.contains(PROMPT.trim()), "{t:?}");

    let down = PamService::write(
        &pamtester,
        &module,
        &format!("socket={}/gone.sock", agent.dir.path().display()),
    );
    let t = run("agent down (default: deny)", &down, user, &right);
    assert!(!t.success, "{t:?}");
    assert!(
        t.text.contains("Your verification code cannot be checked: the Rampart agent is not running on this computer"),
        "{t:?}"
    );
    assert!(
        t.text
            .contains("Authentication service cannot retrieve authentication info"),
        "{t:?}"
    );

    let t = run("another user, not enrolled", &service, "nobody", "");
    assert!(t.success, "{t:?}");

    // A screen locker runs PAM as its user: `nobody` may be asked about
    // `nobody` (not enrolled: the stack decides), never about root.
    let as_nobody = |case: &str, user: &str| {
        let t = service.authenticate_as(&setpriv, 65534, user, &right);
        eprintln!(
            "--- {case}\n$ printf '%s\\n' '{right}' | setpriv --reuid=65534 --regid=65534 --clear-groups pamtester -v {} {user} authenticate\n{}(exit {})\n",
            service.name,
            t.text,
            if t.success { 0 } else { 1 }
        );
        t
    };
    let t = as_nobody("screen locker as nobody, for nobody", "nobody");
    assert!(t.success, "{t:?}");
    let t = as_nobody("screen locker as nobody, for root", "root");
    assert!(!t.success, "{t:?}");
    assert!(
        t.text.contains("Rampart will not check a code for this account: uid 65534 may check sign-in codes only for its own account, not for root"),
        "{t:?}"
    );

    let status = agent.cli(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    eprintln!("--- rampart-agent status\n{text}");
    assert!(
        text.contains(
            "Sign-in  9 recovery codes left; 2 sign-ins, 5 wrong codes, 1 replayed, 2 throttled"
        ),
        "{text}"
    );
    // Each line without its timestamp, whose microseconds are six digits.
    let log = agent.log();
    let words: String = log
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(words.contains("sign-in code accepted"), "{log}");
    for code in [&next, &recovery[0], &w] {
        assert!(!words.contains(code.as_str()), "the agent's log has a code");
    }
}
