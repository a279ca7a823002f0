use super::*;
use serde_json::json;

/// The words of every cause, pinned: a change here is a change to what
/// people read, and to `docs/troubleshooting.md`.
#[test]
fn every_cause_in_plain_words_with_one_next_step() {
    let expected: &[(&str, &str, &str)] = &[
        (
            "offline",
            "This computer is not connected to the internet: none of the 3 servers Rampart needs could be reached.",
            "Connect to Wi-Fi or plug in a network cable, then click Check again.",
        ),
        (
            "dns",
            "The name policy.example.com (policy server) could not be found on this network.",
            "Tell IT that policy.example.com cannot be found from this network; nothing on this computer needs to change.",
        ),
        (
            "refused",
            "policy.example.com (policy server) refused the connection.",
            "Tell IT that policy.example.com is not answering Rampart; nothing on this computer needs to change.",
        ),
        (
            "unreachable",
            "guide.example.com (offline-access guide) could not be reached.",
            "If other websites open, a firewall is probably blocking guide.example.com: tell IT. Otherwise connect to another network.",
        ),
        (
            "timeout",
            "api-1234.duosecurity.com (Duo) did not answer within 5 s.",
            "If other websites open, a firewall is probably blocking api-1234.duosecurity.com: tell IT. Otherwise connect to another network.",
        ),
        (
            "untrusted_certificate",
            "api-1234.duosecurity.com (Duo) presented a certificate this computer does not trust, issued by \"Corp Proxy CA\".",
            "Tell IT: a network proxy that inspects encrypted traffic, or a company certificate missing from this computer, is the likely cause. Until then, try another network.",
        ),
        (
            "certificate_dates",
            "The certificate of guide.example.com (offline-access guide) is not valid at this computer's date and time.",
            "Turn on \"Set time automatically\" in your computer's date and time settings, then try again.",
        ),
        (
            "http_status",
            "collector.example.com (IT reporting) answered with an error (HTTP 503).",
            "Tell IT that collector.example.com is not answering Rampart; nothing on this computer needs to change.",
        ),
        (
            "ntp_blocked",
            "No time server answered (4 tried): this network probably blocks time checks (UDP port 123).",
            "You can continue. If codes are refused, turn on \"Set time automatically\" in your computer's date and time settings.",
        ),
        (
            "clock_skew",
            "Your computer's clock is 10 min fast; at most 30 s is allowed.",
            "Turn on \"Set time automatically\" in your computer's date and time settings, then try again.",
        ),
        (
            "phone_clock_skew",
            "The code matches your phone's clock being 5 min behind.",
            "On your phone, turn on automatic date and time, then type the new code.",
        ),
        (
            "computer_clock_moved",
            "This computer's clock moved 5 min forward since it was checked, so the code could not match.",
            "Turn on \"Set time automatically\" in your computer's date and time settings, then try again.",
        ),
        (
            "duo_credentials",
            "Duo refused Rampart's credentials (the integration key or secret key).",
            "Tell IT; nothing on this computer needs to change.",
        ),
        (
            "duo_clock",
            "Duo refused the request because this computer's clock is 10 min fast by Duo's time.",
            "Turn on \"Set time automatically\" in your computer's date and time settings, then try again.",
        ),
        (
            "duo_denied",
            "Duo does not allow MFA setup for your account.",
            "Contact your IT support team: only they can allow it.",
        ),
        (
            "duo_activation_pending",
            "Duo has not confirmed your phone's activation after 2 min.",
            "Check that Duo Mobile shows your account, then click Try again. If it still waits, tell IT.",
        ),
        (
            "version_too_old",
            "This Rampart is version 0.1.0; IT requires 0.2.0 or newer.",
            "Rampart is updating itself; this window continues when it is done.",
        ),
        (
            "version_too_old",
            "This Rampart is version 0.1.0; IT requires 0.2.0 or newer.",
            "Install the new version IT provides (see the support link), then open Rampart again.",
        ),
        (
            "agent_down",
            "The Rampart service is not running.",
            "Restart your computer; if this stays, tell IT.",
        ),
        (
            "service_starting",
            "The Rampart service is installed but has not answered for 60 s.",
            "Wait a moment; Rampart tries again by itself.",
        ),
        (
            "storage_full",
            "Your MFA setup could not be saved: the disk is full.",
            "Free some disk space, then try again.",
        ),
        (
            "policy_rejected",
            "IT's latest policy was refused, so the one before it stays in force.",
            "Tell IT; nothing on this computer needs to change.",
        ),
        (
            "update_check_failed",
            "Rampart could not check for updates: the release server releases.example.com could not be reached.",
            "Nothing to do on this computer: Rampart keeps working and checks again by itself. If this lasts for days, tell IT.",
        ),
        (
            "older_release_offered",
            "IT offers only an older release of Rampart (0.1.0) than the one installed here (0.2.0); this computer keeps 0.2.0.",
            "Nothing to do on this computer: Rampart keeps working and checks again by itself. If this lasts for days, tell IT.",
        ),
        (
            "update_failed",
            "Rampart could not install update 0.3.0: the release is not signed by a key this device trusts.",
            "Rampart keeps working on the version it has and tries again later; if this stays, tell IT and attach the details.",
        ),
        (
            "update_rolled_back",
            "Rampart 0.3.0 did not start properly (it exited with code 1 before it was serving), so the previous version was put back.",
            "Rampart keeps working on the previous version and will not install 0.3.0 again; IT has been told. Tell IT if you see problems.",
        ),
    ];
    let got: Vec<(&str, String, String)> = examples()
        .iter()
        .map(|c| (c.name(), c.words(), c.next_step()))
        .collect();
    assert_eq!(got.len(), expected.len());
    for ((name, words, step), (en, ew, es)) in got.iter().zip(expected) {
        assert_eq!((*name, words.as_str(), step.as_str()), (*en, *ew, *es));
    }
}

#[test]
fn examples_cover_every_cause_a_person_can_meet() {
    let mut names: Vec<&str> = examples().iter().map(Cause::name).collect();
    names.dedup();
    let every = [
        "offline",
        "dns",
        "refused",
        "unreachable",
        "timeout",
        "untrusted_certificate",
        "certificate_dates",
        "http_status",
        "ntp_blocked",
        "clock_skew",
        "phone_clock_skew",
        "computer_clock_moved",
        "duo_credentials",
        "duo_clock",
        "duo_denied",
        "duo_activation_pending",
        "version_too_old",
        "agent_down",
        "service_starting",
        "storage_full",
        "policy_rejected",
        "update_check_failed",
        "older_release_offered",
        "update_failed",
        "update_rolled_back",
    ];
    assert_eq!(names, every);
    // `Other` is for causes a newer agent knows, never produced here.
    assert!(!names.contains(&Cause::Other.name()));
}

#[test]
fn problems_json_is_pinned() {
    let problem = Problem::new(
        Cause::Refused {
            endpoint: Endpoint::PolicyServer,
            host: "policy.example.com".into(),
        },
        "127.0.0.1:443: Connection refused (os error 111)",
    );
    let value = json!({
        "cause": "refused",
        "endpoint": "policy_server",
        "host": "policy.example.com",
        "details": "127.0.0.1:443: Connection refused (os error 111)",
    });
    assert_eq!(serde_json::to_value(&problem).unwrap(), value);
    assert_eq!(serde_json::from_value::<Problem>(value).unwrap(), problem);

    let bare = json!({"cause": "clock_skew", "offset_ms": -90000, "allowed_ms": 30000});
    assert_eq!(
        serde_json::from_value::<Problem>(bare).unwrap(),
        Problem::new(
            Cause::ClockSkew {
                offset_ms: -90_000,
                allowed_ms: 30_000
            },
            ""
        )
    );
}

#[test]
fn every_example_survives_json() {
    for cause in examples() {
        let problem = Problem::new(cause, "raw");
        let text = serde_json::to_string(&problem).unwrap();
        assert_eq!(
            serde_json::from_str::<Problem>(&text).unwrap(),
            problem,
            "{text}"
        );
    }
}

#[test]
fn a_cause_from_a_newer_agent_reads_as_its_details() {
    let problem: Problem = serde_json::from_value(json!({
        "cause": "quantum_flux",
        "flux": 3,
        "details": "the flux capacitor is unplugged",
    }))
    .unwrap();
    assert_eq!(problem.cause, Cause::Other);
    assert_eq!(problem.words(), "the flux capacitor is unplugged");
    assert_eq!(problem.cause.next_step(), "Tell IT and attach the details.");
}

#[test]
fn run_by_it_decides_who_is_told() {
    let refused = |endpoint| Cause::Refused {
        endpoint,
        host: "h".into(),
    };
    assert!(
        refused(Endpoint::PolicyServer)
            .next_step()
            .starts_with("Tell IT")
    );
    assert!(
        refused(Endpoint::Reporting)
            .next_step()
            .starts_with("Tell IT")
    );
    assert!(refused(Endpoint::Duo).next_step().starts_with("Try again"));
    assert!(
        !refused(Endpoint::OfflineGuide)
            .next_step()
            .contains("Wi-Fi")
    );
}

/// `docs/troubleshooting.md` is made from the same table; regenerate it with
/// `RAMPART_BLESS=1 cargo test -p rampart-shared troubleshooting`.
#[test]
fn troubleshooting_page_matches_the_vocabulary() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/troubleshooting.md");
    let page = troubleshooting_page();
    if std::env::var_os("RAMPART_BLESS").is_some() {
        std::fs::write(path, &page).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == page,
        "docs/troubleshooting.md is out of date: run RAMPART_BLESS=1 cargo test -p rampart-shared troubleshooting"
    );
}
