//! Step 1, "Before you begin": the live prerequisite checks from the agent's
//! status, asking only what this provider needs. The authenticator app
//! (TOTP) needs no network to enrol: a network failure warns. Duo needs
//! Duo: "Get started" waits for the network check and stays disabled while
//! Duo cannot be reached. Either way it waits for the first clock check,
//! stays disabled on a measured clock skew beyond the allowed one, and
//! below the policy's minimum version. A clock that could not be measured
//! (every time server blocked) is a warning: the user may continue. Each
//! failure reads in the shared vocabulary's words (`rampart_shared::cause`),
//! the raw text behind it under "Details", shown on demand and copyable.

use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use iced::time::Instant;
use iced::widget::{column, row, text};
use iced::{Element, Fill};
use rampart_shared::cause::{Cause, Endpoint, Problem};
use rampart_shared::policy::ProviderKind;
use rampart_shared::status::{
    AgentStatus, ClockSection, ClockSource, ClockState, NetworkSection, NetworkState,
    UpdateSection, UpdateState, describe_offset, human_duration,
};

use crate::screen::{Outcome, action, note, secondary};

#[derive(Debug, Default)]
pub struct State {
    /// A "Check again" in flight: when each check had last run at the
    /// click. It ends when both have run since (their result may be the
    /// same as before: the line below says that they ran).
    pub checking: Option<Checked>,
    /// When the checks of the last finished "Check again" ran.
    pub checked: Option<DateTime<Utc>>,
    /// Why the last "Check again" failed, as the agent said it.
    pub refresh_error: Option<String>,
    /// The raw text behind the failures is shown.
    pub details_shown: bool,
    /// The first tick seen while checking: the wait is counted from there.
    pub checking_since: Option<Instant>,
}

/// How long "Checking…" may last: the agent's checks end within their own
/// timeouts (5 s for the network, 2 s per time server), so this much
/// means the answer is not coming.
pub const CHECK_BOUND: Duration = Duration::from_secs(20);

/// When the network and clock checks last ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    pub network: Option<DateTime<Utc>>,
    pub clock: Option<DateTime<Utc>>,
}

impl Checked {
    pub fn of(status: Option<&AgentStatus>) -> Self {
        Self {
            network: status.and_then(|s| s.network.checked_at),
            clock: status.and_then(|s| s.clock.checked_at),
        }
    }
}

impl State {
    pub fn is_checking(&self) -> bool {
        self.checking.is_some()
    }

    /// A new status: a "Check again" ends once both checks ran after it.
    pub fn status_arrived(&mut self, status: &AgentStatus) {
        let Some(before) = self.checking else {
            return;
        };
        let now = Checked::of(Some(status));
        let newer = |new: Option<DateTime<Utc>>, old| new.is_some() && new > old;
        if newer(now.network, before.network) && newer(now.clock, before.clock) {
            self.checking = None;
            self.checking_since = None;
            self.checked = now.network.max(now.clock);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    GetStarted,
    CheckAgain,
    ToggleDetails,
    CopyDetails,
    /// A second passed (only while checking).
    Tick(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    GetStarted,
    CheckAgain,
    /// Put this text on the clipboard.
    Copy(String),
}

/// One prerequisite as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub name: &'static str,
    pub outcome: Outcome,
    /// The measured figure, in words.
    pub figure: String,
    /// What to do when it does not pass.
    pub fix: Option<String>,
    /// The raw text behind a failure, for "Details".
    pub details: Option<String>,
}

impl CheckLine {
    /// The word beside the name. A network failure this provider can do
    /// without was measured: it is not needed now, rather than unmeasured.
    pub fn mark(&self) -> &'static str {
        match (self.name, self.outcome) {
            ("Internet connection", Outcome::Warn) => "Not needed now",
            _ => self.outcome.mark(),
        }
    }
}

/// Whether this provider's enrollment cannot go on with `problem`: only
/// Duo's needs the network, and then only Duo itself.
fn blocks(problem: &Problem, provider: ProviderKind) -> bool {
    provider == ProviderKind::Duo
        && (matches!(problem.cause, Cause::Offline { .. })
            || problem.cause.endpoint() == Some(Endpoint::Duo))
}

fn details_of(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

pub fn network_check(n: &NetworkSection, provider: ProviderKind) -> CheckLine {
    let name = "Internet connection";
    let needed = match provider {
        ProviderKind::Totp => {
            "You can continue: setting up an authenticator app needs no internet connection."
        }
        ProviderKind::Duo => "You can continue: only Duo must be reachable to set up Duo.",
    };
    // The failure that matters most to this provider: one that blocks it.
    let worst = n
        .problems
        .iter()
        .find(|p| blocks(p, provider))
        .or(n.problems.first());
    match (n.state, worst) {
        (NetworkState::Online, _) => CheckLine {
            name,
            outcome: Outcome::Pass,
            figure: crate::screen::capitalize(&n.detail),
            fix: None,
            details: None,
        },
        (NetworkState::Offline, Some(problem)) => {
            let blocking = blocks(problem, provider);
            let others = n.problems.len() - 1;
            let mut figure = problem.words();
            if others > 0 {
                figure.push_str(&format!(
                    " ({others} more under Details.)"
                ));
            }
            let details: Vec<String> = n
                .problems
                .iter()
                .map(|p| {
                    if p.details.is_empty() {
                        p.words()
                    } else {
                        format!("{} {}", p.words(), p.details)
                    }
                })
                .collect();
            CheckLine {
                name,
                outcome: if blocking { Outcome::Fail } else { Outcome::Warn },
                figure,
                fix: Some(if blocking {
                    problem.cause.next_step()
                } else {
                    format!("{needed} {}", problem.cause.next_step())
                }),
                details: Some(details.join("\n")),
            }
        }
        // An agent older than the vocabulary: its words, and the old rule.
        (NetworkState::Offline, None) => CheckLine {
            name,
            outcome: if provider == ProviderKind::Duo {
                Outcome::Fail
            } else {
                Outcome::Warn
            },
            figure: crate::screen::capitalize(&n.detail),
            fix: Some(
                "Connect to Wi-Fi or plug in a network cable (a wired connection is best), then click Check again."
                    .to_owned(),
            ),
            details: None,
        },
        (NetworkState::Unknown, _) => CheckLine {
            name,
            outcome: Outcome::Pending,
            figure: crate::screen::capitalize(&n.detail),
            fix: Some(match provider {
                ProviderKind::Duo => "Wait a moment for the check, or click Check again.".to_owned(),
                ProviderKind::Totp => needed.to_owned(),
            }),
            details: None,
        },
    }
}

/// The version line, shown only below the policy's minimum: then setup
/// waits (IT said this version must not run), and says what happens next.
pub fn version_check(u: &UpdateSection) -> Option<CheckLine> {
    if u.state != UpdateState::UpdateRequired {
        return None;
    }
    let (figure, fix) = match &u.problem {
        Some(problem) => (problem.words(), problem.cause.next_step()),
        None => (
            crate::screen::capitalize(&u.detail),
            "Install the new version IT provides, then open Rampart again.".to_owned(),
        ),
    };
    Some(CheckLine {
        name: "Rampart version",
        outcome: Outcome::Fail,
        figure,
        fix: Some(fix),
        details: details_of(&u.detail),
    })
}

pub fn clock_check(c: &ClockSection) -> CheckLine {
    let allowed = human_duration(c.max_skew_ms);
    // "Your clock is 10 min fast (measured against the Date header of
    // guide.example.com, ± 1.5 s)" when no time server answered.
    let via = match (c.source, &c.server, c.uncertainty_ms) {
        (Some(ClockSource::HttpDate), Some(host), Some(u)) => format!(
            " (measured against the Date header of {host}, ± {:.1} s)",
            u as f64 / 1000.0
        ),
        (Some(ClockSource::DuoPing), Some(_), Some(u)) => format!(
            " (measured against Duo's time, ± {:.1} s)",
            u as f64 / 1000.0
        ),
        _ => String::new(),
    };
    let measured = c
        .offset_ms
        .map(|o| format!("Your {}{via}", describe_offset(o)));
    let (outcome, figure, fix) = match c.state {
        ClockState::Synced => (
            Outcome::Pass,
            format!(
                "{} (within the allowed {allowed})",
                measured.unwrap_or_else(|| "Your clock is right".into())
            ),
            None,
        ),
        ClockState::Skewed => (
            Outcome::Fail,
            format!(
                "{}; at most {allowed} is allowed",
                measured.unwrap_or_else(|| crate::screen::capitalize(&c.detail))
            ),
            Some(
                "Turn on \"Set time automatically\" in your computer's date and time settings, then click Check again.".to_owned(),
            ),
        ),
        // Not checked yet: the first check is under way (it ends within the
        // time servers' timeout).
        ClockState::Unknown if c.checked_at.is_none() => (
            Outcome::Pending,
            crate::screen::capitalize(&c.detail),
            Some("Wait a moment for the check, or click Check again.".to_owned()),
        ),
        // Checked, but nothing answered: say why (in the vocabulary's words
        // from an agent that has them) and let the user go on.
        ClockState::Unknown => match &c.problem {
            Some(problem) => (
                Outcome::Warn,
                format!(
                    "Rampart could not measure your clock. {} Codes may fail if it is wrong.",
                    problem.words()
                ),
                Some(problem.cause.next_step()),
            ),
            None => (
                Outcome::Warn,
                format!(
                    "Rampart could not measure your clock: {}. Codes may fail if it is wrong.",
                    c.detail.trim_end_matches('.')
                ),
                Some(
                    "You can continue. If codes are refused, turn on \"Set time automatically\" in your computer's date and time settings, then click Check again.".to_owned(),
                ),
            ),
        },
    };
    let details = match outcome {
        Outcome::Pass => None,
        _ => c.problem.as_ref().and_then(|p| details_of(&p.details)),
    };
    CheckLine {
        name: "Clock",
        outcome,
        figure,
        fix,
        details,
    }
}

/// Every line this status shows, in order.
pub fn lines(s: &AgentStatus) -> Vec<CheckLine> {
    let mut lines = vec![
        network_check(&s.network, s.policy.provider),
        clock_check(&s.clock),
    ];
    lines.extend(version_check(&s.update));
    lines
}

/// Nothing this provider needs fails or is still waiting: the network
/// only for Duo, the clock's first check (a clock that could not be
/// measured warns but does not block), the version.
pub fn can_start(status: Option<&AgentStatus>) -> bool {
    status.is_some_and(|s| {
        lines(s).iter().all(|line| match line.outcome {
            Outcome::Pass | Outcome::Warn => true,
            Outcome::Fail => false,
            // The authenticator app does not wait on the network check.
            Outcome::Pending => {
                line.name == "Internet connection" && s.policy.provider == ProviderKind::Totp
            }
        })
    })
}

/// The raw text behind every line that has some, for "Details".
fn all_details(status: Option<&AgentStatus>) -> String {
    status
        .map(lines)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| l.details.map(|d| format!("{}: {d}", l.name)))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn update(state: &mut State, message: Message, status: Option<&AgentStatus>) -> Option<Event> {
    match message {
        // The button is disabled then, but a stale click must not slip through.
        Message::GetStarted => can_start(status).then_some(Event::GetStarted),
        Message::CheckAgain => {
            if state.is_checking() {
                return None;
            }
            state.checking = Some(Checked::of(status));
            state.checking_since = None;
            state.checked = None;
            state.refresh_error = None;
            Some(Event::CheckAgain)
        }
        Message::ToggleDetails => {
            state.details_shown = !state.details_shown;
            None
        }
        Message::Tick(at) => {
            if !state.is_checking() {
                return None;
            }
            let since = *state.checking_since.get_or_insert(at);
            if at.saturating_duration_since(since) >= CHECK_BOUND {
                state.checking = None;
                state.checking_since = None;
                state.refresh_error = Some(format!(
                    "the checks did not finish within {} s. The Rampart service may be busy or restarting: click Check again in a moment",
                    CHECK_BOUND.as_secs()
                ));
            }
            None
        }
        Message::CopyDetails => {
            let details = all_details(status);
            (!details.is_empty()).then_some(Event::Copy(details))
        }
    }
}

pub fn view<'a>(state: &'a State, status: Option<&'a AgentStatus>) -> Element<'a, Message> {
    let mut checks = column![].spacing(10);
    if let Some(status) = status {
        for line in lines(status) {
            checks = checks.push(check_view(line));
        }
    }
    let mut content = column![
        text("Before you begin").size(24),
        text("Setting up MFA takes about five minutes. First, Rampart checks what it needs:"),
        checks,
    ]
    .spacing(14);
    if let Some(error) = &state.refresh_error {
        content = content.push(note(
            text(format!("Checking again did not work: {error}")),
            Outcome::Fail,
        ));
    }
    if let Some(at) = state.checked {
        content = content.push(
            text(format!(
                "Checked again at {}.",
                at.with_timezone(&Local).format("%H:%M:%S")
            ))
            .size(14),
        );
    }
    let details = all_details(status);
    if !details.is_empty() {
        let mut block = column![
            row![
                secondary(
                    if state.details_shown {
                        "Hide details"
                    } else {
                        "Details"
                    },
                    Some(Message::ToggleDetails)
                ),
                secondary("Copy details", Some(Message::CopyDetails)),
            ]
            .spacing(12)
        ]
        .spacing(8);
        if state.details_shown {
            block = block.push(text(details).size(13).font(iced::Font::MONOSPACE));
        }
        content = content.push(block);
    }
    content = content.push(text("Have your smartphone nearby.").size(18));
    let ready = can_start(status);
    let buttons = row![
        action("Get started", ready.then_some(Message::GetStarted)).id(super::PRIMARY),
        secondary(
            if state.is_checking() {
                "Checking…"
            } else {
                "Check again"
            },
            (!state.is_checking()).then_some(Message::CheckAgain)
        ),
    ]
    .spacing(12);
    content.push(buttons).width(Fill).into()
}

fn check_view<'a>(line: CheckLine) -> Element<'a, Message> {
    let color = line.outcome.color();
    let mut body = column![
        row![
            text(line.name).size(17),
            text(line.mark()).size(17).color(color),
        ]
        .spacing(12),
        text(line.figure),
    ]
    .spacing(4);
    if let (Some(fix), false) = (line.fix, line.outcome == Outcome::Pass) {
        body = body.push(text(fix).size(14));
    }
    note(body, line.outcome)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::screen::wizard::tests::status_with;

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
                name: "Internet connection",
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
}
