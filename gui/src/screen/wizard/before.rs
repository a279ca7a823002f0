//! Step 1, "Before you begin": the live prerequisite checks from the agent's
//! status. "Get started" stays disabled while the network check fails or
//! has not run, while the first clock check has not run, and on a measured
//! clock skew beyond the allowed one. A clock that could not be measured
//! (every time server blocked) is a warning: the user may continue.

use chrono::{DateTime, Local, Utc};
use iced::widget::{column, row, text};
use iced::{Element, Fill};
use rampart_shared::status::{
    AgentStatus, ClockSection, ClockSource, ClockState, NetworkSection, NetworkState,
    describe_offset, human_duration,
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
}

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
            self.checked = now.network.max(now.clock);
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    GetStarted,
    CheckAgain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    GetStarted,
    CheckAgain,
}

/// One prerequisite as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub name: &'static str,
    pub outcome: Outcome,
    /// The measured figure, in words.
    pub figure: String,
    /// What to do when it does not pass.
    pub fix: Option<&'static str>,
}

pub fn network_check(n: &NetworkSection) -> CheckLine {
    let (outcome, fix) = match n.state {
        NetworkState::Online => (Outcome::Pass, None),
        NetworkState::Offline => (
            Outcome::Fail,
            Some(
                "Connect to Wi-Fi or plug in a network cable (a wired connection is best), then click Check again.",
            ),
        ),
        NetworkState::Unknown => (
            Outcome::Pending,
            Some("Wait a moment for the check, or click Check again."),
        ),
    };
    CheckLine {
        name: "Internet connection",
        outcome,
        figure: crate::screen::capitalize(&n.detail),
        fix,
    }
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
                "Turn on \"Set time automatically\" in your computer's date and time settings, then click Check again.",
            ),
        ),
        // Not checked yet: the first check is under way (it ends within the
        // time servers' timeout).
        ClockState::Unknown if c.checked_at.is_none() => (
            Outcome::Pending,
            crate::screen::capitalize(&c.detail),
            Some("Wait a moment for the check, or click Check again."),
        ),
        // Checked, but nothing answered: say so and let the user go on.
        ClockState::Unknown => (
            Outcome::Warn,
            format!(
                "Rampart could not measure your clock: {}. Codes may fail if it is wrong.",
                c.detail.trim_end_matches('.')
            ),
            Some(
                "You can continue. If codes are refused, turn on \"Set time automatically\" in your computer's date and time settings, then click Check again.",
            ),
        ),
    };
    CheckLine {
        name: "Clock",
        outcome,
        figure,
        fix,
    }
}

/// The network check passes, and the clock is not measured beyond the
/// allowed skew nor still waiting for its first check: a clock that could
/// not be measured warns but does not block.
pub fn can_start(status: Option<&AgentStatus>) -> bool {
    status.is_some_and(|s| {
        network_check(&s.network).outcome == Outcome::Pass
            && matches!(clock_check(&s.clock).outcome, Outcome::Pass | Outcome::Warn)
    })
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
            state.checked = None;
            state.refresh_error = None;
            Some(Event::CheckAgain)
        }
    }
}

pub fn view<'a>(state: &'a State, status: Option<&'a AgentStatus>) -> Element<'a, Message> {
    let mut checks = column![].spacing(10);
    if let Some(status) = status {
        for line in [network_check(&status.network), clock_check(&status.clock)] {
            checks = checks.push(check_view(line));
        }
    }
    let mut content = column![
        text("Before you begin").size(24),
        text("Setting up MFA takes about five minutes. Two things must be right first:"),
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
    content = content.push(text("Have your smartphone nearby.").size(18));
    let ready = can_start(status);
    let buttons = row![
        action("Get started", ready.then_some(Message::GetStarted)),
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

fn check_view(line: CheckLine) -> Element<'static, Message> {
    let color = line.outcome.color();
    let mut body = column![
        row![
            text(line.name).size(17),
            text(line.outcome.mark()).size(17).color(color),
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

        let offline = status_with(NetworkState::Offline, ClockState::Synced, Some(0));
        assert!(!can_start(Some(&offline)));
        assert_eq!(network_check(&offline.network).outcome, Outcome::Fail);

        let unchecked = status_with(NetworkState::Unknown, ClockState::Unknown, None);
        assert!(!can_start(Some(&unchecked)));
        assert!(!can_start(None));
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
}
