//! The "Before you begin" checks as the user reads them, from statuses
//! built on the shared fixture.

use super::*;
use crate::fixtures::status_with;

#[test]
fn check_again_lasts_until_both_checks_ran_again_even_unchanged() {
    let mut status = status_with(NetworkState::Online, ClockState::Synced, Some(1_200));
    let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    status.network.checked_at = Some(t0);
    status.clock.checked_at = Some(t0);
    let mut state = State::default();
    assert_eq!(
        update(&mut state, Message::CheckAgain, Some(&status)),
        Some(Event::CheckAgain)
    );
    assert!(state.is_checking());
    assert_eq!(update(&mut state, Message::CheckAgain, Some(&status)), None);
    // The same status again, then only the network check: still checking.
    state.status_arrived(&status);
    assert!(state.is_checking());
    status.network.checked_at = Some(t0 + chrono::Duration::seconds(1));
    state.status_arrived(&status);
    assert!(state.is_checking());
    // The clock check ran too, with the same result: done, and said so.
    status.clock.checked_at = Some(t0 + chrono::Duration::seconds(2));
    state.status_arrived(&status);
    assert!(!state.is_checking());
    assert_eq!(state.checked, Some(t0 + chrono::Duration::seconds(2)));
}

#[test]
fn get_started_needs_both_checks_to_pass() {
    let ok = status_with(NetworkState::Online, ClockState::Synced, Some(1_200));
    assert!(can_start(Some(&ok)));
    let mut state = State::default();
    assert_eq!(
        update(&mut state, Message::GetStarted, Some(&ok)),
        Some(Event::GetStarted)
    );

    let skewed = status_with(NetworkState::Online, ClockState::Skewed, Some(252_000));
    assert!(!can_start(Some(&skewed)));
    assert_eq!(update(&mut state, Message::GetStarted, Some(&skewed)), None);
    let line = clock_check(&skewed.clock);
    assert_eq!(line.outcome, Outcome::Fail);
    assert_eq!(
        line.figure,
        "Your clock is 4 min 12 s fast; at most 30 s is allowed"
    );
    assert!(
        line.fix
            .is_some_and(|f| f.contains("Set time automatically"))
    );

    // The first clock check has not run yet.
    let mut unchecked = status_with(NetworkState::Unknown, ClockState::Unknown, None);
    unchecked.clock.checked_at = None;
    assert!(!can_start(Some(&unchecked)));
    assert!(!can_start(None));
}

fn with_problems(provider: ProviderKind, problems: Vec<Problem>) -> AgentStatus {
    let mut status = status_with(NetworkState::Offline, ClockState::Synced, Some(0));
    status.policy.provider = provider;
    status.network.problems = problems;
    status
}

fn refused(endpoint: Endpoint, host: &str) -> Problem {
    Problem::new(
        Cause::Refused {
            endpoint,
            host: host.into(),
        },
        format!("{host}:443: Connection refused (os error 111)"),
    )
}

#[test]
fn the_authenticator_app_needs_no_network_and_it_s_refusal_is_it_s_to_fix() {
    let status = with_problems(
        ProviderKind::Totp,
        vec![refused(Endpoint::PolicyServer, "policy.example.com")],
    );
    let line = network_check(&status.network, ProviderKind::Totp);
    assert_eq!(
        line,
        CheckLine {
            kind: Check::Network,
            outcome: Outcome::Warn,
            figure: "policy.example.com (policy server) refused the connection.".into(),
            fix: Some(
                "You can continue: setting up an authenticator app needs no internet \
                 connection. Tell IT that policy.example.com is not answering Rampart; \
                 nothing on this computer needs to change."
                    .into()
            ),
            details: Some(
                "policy.example.com (policy server) refused the connection. \
                 policy.example.com:443: Connection refused (os error 111)"
                    .into()
            ),
        }
    );
    assert_eq!(line.mark(), "Not needed now");
    assert!(can_start(Some(&status)));
    // Offline altogether, and the network check not even run: still fine.
    let offline = with_problems(
        ProviderKind::Totp,
        vec![Problem::new(Cause::Offline { endpoints: 2 }, "")],
    );
    assert_eq!(
        network_check(&offline.network, ProviderKind::Totp).outcome,
        Outcome::Warn
    );
    assert!(can_start(Some(&offline)));
    let mut unchecked = status_with(NetworkState::Unknown, ClockState::Synced, Some(0));
    unchecked.network.checked_at = None;
    assert!(can_start(Some(&unchecked)));
}

#[test]
fn duo_needs_duo_and_only_duo() {
    let duo_down = with_problems(
        ProviderKind::Duo,
        vec![
            refused(Endpoint::PolicyServer, "policy.example.com"),
            Problem::new(
                Cause::Timeout {
                    endpoint: Endpoint::Duo,
                    host: "api-1.duosecurity.com".into(),
                    after_ms: 5_000,
                },
                "no answer within 5 s",
            ),
        ],
    );
    let line = network_check(&duo_down.network, ProviderKind::Duo);
    assert_eq!(line.outcome, Outcome::Fail);
    assert_eq!(
        line.figure,
        "api-1.duosecurity.com (Duo) did not answer within 5 s. (1 more under Details.)"
    );
    assert_eq!(
        line.fix.as_deref(),
        Some(
            "If other websites open, a firewall is probably blocking \
             api-1.duosecurity.com: tell IT. Otherwise connect to another network."
        )
    );
    assert!(!can_start(Some(&duo_down)));

    let policy_down = with_problems(
        ProviderKind::Duo,
        vec![refused(Endpoint::PolicyServer, "policy.example.com")],
    );
    assert_eq!(
        network_check(&policy_down.network, ProviderKind::Duo).outcome,
        Outcome::Warn
    );
    assert!(can_start(Some(&policy_down)));

    let offline = with_problems(
        ProviderKind::Duo,
        vec![Problem::new(Cause::Offline { endpoints: 2 }, "")],
    );
    assert!(!can_start(Some(&offline)));
    let unchecked = status_with(NetworkState::Unknown, ClockState::Synced, Some(0));
    let mut unchecked_duo = unchecked.clone();
    unchecked_duo.policy.provider = ProviderKind::Duo;
    assert!(!can_start(Some(&unchecked_duo)));
}

#[test]
fn below_the_minimum_version_setup_waits_and_says_what_happens_next() {
    let mut status = status_with(NetworkState::Online, ClockState::Synced, Some(0));
    assert_eq!(version_check(&status.update), None);
    status.update.state = UpdateState::UpdateRequired;
    status.update.detail = "Rampart 0.2.0 or later is required; this is 0.1.0".into();
    status.update.problem = Some(Problem::new(
        Cause::VersionTooOld {
            current: rampart_shared::version::Version::new(0, 1, 0),
            minimum: rampart_shared::version::Version::new(0, 2, 0),
            updates_itself: false,
        },
        "Rampart 0.2.0 or later is required; this is 0.1.0",
    ));
    let line = version_check(&status.update).expect("a version line");
    assert_eq!(line.outcome, Outcome::Fail);
    assert_eq!(
        line.figure,
        "This Rampart is version 0.1.0; IT requires 0.2.0 or newer."
    );
    assert_eq!(
        line.fix.as_deref(),
        Some(
            "Install the new version IT provides (see the support link), then open Rampart again."
        )
    );
    assert!(!can_start(Some(&status)));
    let mut state = State::default();
    assert_eq!(update(&mut state, Message::GetStarted, Some(&status)), None);
}

#[test]
fn details_are_shown_on_demand_and_copied_whole() {
    let status = with_problems(
        ProviderKind::Totp,
        vec![refused(Endpoint::PolicyServer, "policy.example.com")],
    );
    let mut state = State::default();
    {
        let mut ui = iced_test::simulator(view(&state, Some(&status)));
        assert!(ui.find("Details").is_ok());
        assert!(
            ui.find("policy.example.com:443: Connection refused (os error 111)")
                .is_err(),
            "raw text is not a headline"
        );
    }
    assert_eq!(
        update(&mut state, Message::ToggleDetails, Some(&status)),
        None
    );
    assert!(state.details_shown);
    let copied = update(&mut state, Message::CopyDetails, Some(&status));
    assert_eq!(
        copied,
        Some(Event::Copy(
            "Internet connection: policy.example.com (policy server) refused the \
             connection. policy.example.com:443: Connection refused (os error 111)"
                .into()
        ))
    );
    crate::simulated::use_tiny_skia();
    let mut ui = iced_test::simulator(view(&state, Some(&status)));
    assert!(ui.find("Hide details").is_ok());
}

fn unmeasured_clock() -> AgentStatus {
    let mut status = status_with(NetworkState::Online, ClockState::Unknown, None);
    status.clock.uncertainty_ms = None;
    status.clock.server = None;
    status.clock.detail =
        "no time server gave a usable answer: 127.0.0.1:9 timed out after 2 s".into();
    status
}

#[test]
fn an_unmeasured_clock_warns_and_lets_the_user_start() {
    let status = unmeasured_clock();
    let line = clock_check(&status.clock);
    assert_eq!(line.outcome, Outcome::Warn);
    assert_eq!(
        line.figure,
        "Rampart could not measure your clock: no time server gave a usable answer: \
         127.0.0.1:9 timed out after 2 s. Codes may fail if it is wrong."
    );
    assert!(line.fix.is_some_and(|f| f.starts_with("You can continue.")));
    assert!(can_start(Some(&status)));
    let mut state = State::default();
    assert_eq!(
        update(&mut state, Message::GetStarted, Some(&status)),
        Some(Event::GetStarted)
    );
}

#[test]
fn before_the_first_clock_check_get_started_waits() {
    let mut status = unmeasured_clock();
    status.clock.checked_at = None;
    status.clock.detail = "not checked yet".into();
    assert_eq!(clock_check(&status.clock).outcome, Outcome::Pending);
    assert!(!can_start(Some(&status)));
    let mut state = State::default();
    assert_eq!(update(&mut state, Message::GetStarted, Some(&status)), None);
}

#[test]
fn on_screen_an_unmeasured_clock_warns_and_get_started_works() {
    crate::simulated::use_tiny_skia();
    let status = unmeasured_clock();
    let state = State::default();
    let mut ui = iced_test::simulator(view(&state, Some(&status)));
    assert!(ui.find("Not measured").is_ok());
    assert!(
        ui.find(
            "Rampart could not measure your clock: no time server gave a usable answer: \
             127.0.0.1:9 timed out after 2 s. Codes may fail if it is wrong."
        )
        .is_ok()
    );
    assert!(ui.click("Get started").is_ok());
    assert_eq!(
        ui.into_messages().collect::<Vec<_>>(),
        [Message::GetStarted]
    );
}

#[test]
fn on_screen_a_measured_skew_keeps_get_started_disabled() {
    crate::simulated::use_tiny_skia();
    let status = status_with(NetworkState::Online, ClockState::Skewed, Some(600_000));
    let state = State::default();
    let mut ui = iced_test::simulator(view(&state, Some(&status)));
    assert!(ui.find("Needs attention").is_ok());
    assert!(ui.click("Get started").is_ok());
    assert_eq!(ui.into_messages().count(), 0);
}

#[test]
fn a_skew_measured_by_a_date_header_names_its_source_and_blocks() {
    let mut status = status_with(NetworkState::Online, ClockState::Skewed, Some(600_000));
    status.clock.source = Some(ClockSource::HttpDate);
    status.clock.server = Some("guide.example.com".into());
    status.clock.uncertainty_ms = Some(1_500);
    let line = clock_check(&status.clock);
    assert_eq!(line.outcome, Outcome::Fail);
    assert_eq!(
        line.figure,
        "Your clock is 10 min fast (measured against the Date header of \
         guide.example.com, ± 1.5 s); at most 30 s is allowed"
    );
    assert!(!can_start(Some(&status)));
}

#[test]
fn a_skew_measured_against_duo_says_so() {
    let mut status = status_with(NetworkState::Online, ClockState::Skewed, Some(600_000));
    status.clock.source = Some(ClockSource::DuoPing);
    status.clock.server = Some("api-1234.duosecurity.com".into());
    status.clock.uncertainty_ms = Some(1_500);
    assert_eq!(
        clock_check(&status.clock).figure,
        "Your clock is 10 min fast (measured against Duo's time, ± 1.5 s); at most 30 s is \
         allowed"
    );
}

#[test]
fn slow_clock_is_described_in_words() {
    let slow = status_with(NetworkState::Online, ClockState::Skewed, Some(-95_000));
    assert_eq!(
        clock_check(&slow.clock).figure,
        "Your clock is 95 s slow; at most 30 s is allowed"
    );
    let fine = status_with(NetworkState::Online, ClockState::Synced, Some(-120));
    assert_eq!(
        clock_check(&fine.clock).figure,
        "Your clock is 120 ms slow (within the allowed 30 s)"
    );
}

#[test]
fn on_screen_check_again_says_checking_then_when_it_ran() {
    crate::simulated::use_tiny_skia();
    let mut status = status_with(NetworkState::Online, ClockState::Synced, Some(1_200));
    let t0 = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
    status.network.checked_at = Some(t0);
    status.clock.checked_at = Some(t0);
    let mut state = State::default();
    update(&mut state, Message::CheckAgain, Some(&status));
    {
        let mut ui = iced_test::simulator(view(&state, Some(&status)));
        assert!(ui.find("Checking…").is_ok());
        assert!(ui.find("Check again").is_err());
    }
    status.network.checked_at = Some(t0 + chrono::Duration::seconds(1));
    status.clock.checked_at = Some(t0 + chrono::Duration::seconds(1));
    state.status_arrived(&status);
    let ran = format!(
        "Checked again at {}.",
        (t0 + chrono::Duration::seconds(1))
            .with_timezone(&Local)
            .format("%H:%M:%S")
    );
    let mut ui = iced_test::simulator(view(&state, Some(&status)));
    assert!(ui.find("Check again").is_ok());
    assert!(ui.find(ran.as_str()).is_ok(), "{ran}");
}

#[test]
fn check_again_marks_checking_and_clears_the_old_error() {
    let mut state = State {
        refresh_error: Some("old".into()),
        ..State::default()
    };
    assert_eq!(
        update(&mut state, Message::CheckAgain, None),
        Some(Event::CheckAgain)
    );
    assert!(state.is_checking());
    assert_eq!(state.refresh_error, None);
}

#[test]
fn checking_ends_with_words_when_no_answer_comes() {
    let status = status_with(NetworkState::Online, ClockState::Synced, Some(0));
    let mut state = State::default();
    update(&mut state, Message::CheckAgain, Some(&status));
    let t0 = Instant::now();
    update(&mut state, Message::Tick(t0), Some(&status));
    update(
        &mut state,
        Message::Tick(t0 + CHECK_BOUND - Duration::from_secs(1)),
        Some(&status),
    );
    assert!(state.is_checking());
    update(&mut state, Message::Tick(t0 + CHECK_BOUND), Some(&status));
    assert!(!state.is_checking());
    assert_eq!(
        state.refresh_error.as_deref(),
        Some(
            "the checks did not finish within 20 s. The Rampart service may be busy or \
             restarting: click Check again in a moment"
        )
    );
    // And Check again works again.
    assert_eq!(
        update(&mut state, Message::CheckAgain, Some(&status)),
        Some(Event::CheckAgain)
    );
    assert_eq!(state.checking_since, None);
}
