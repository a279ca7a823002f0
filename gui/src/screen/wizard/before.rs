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

    /// The request failed: "Check again" works again.
    pub fn failed(&mut self) {
        self.checking = None;
    }

    /// The agent refused "Check again": the button is back, with its words.
    pub fn refresh_failed(&mut self, error: String) {
        self.failed();
        self.refresh_error = Some(error);
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

/// Which prerequisite a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Network,
    Clock,
    Version,
}

impl Check {
    pub fn name(self) -> &'static str {
        match self {
            Self::Network => "Internet connection",
            Self::Clock => "Clock",
            Self::Version => "Rampart version",
        }
    }
}

/// One prerequisite as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    pub kind: Check,
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
        match (self.kind, self.outcome) {
            (Check::Network, Outcome::Warn) => "Not needed now",
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
    let kind = Check::Network;
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
            kind,
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
                kind,
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
            kind,
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
            kind,
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
        kind: Check::Version,
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
        kind: Check::Clock,
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
    status.is_some_and(|s| ready(&lines(s), s.policy.provider))
}

/// [`can_start`] for lines already made.
fn ready(lines: &[CheckLine], provider: ProviderKind) -> bool {
    lines.iter().all(|line| match line.outcome {
        Outcome::Pass | Outcome::Warn => true,
        Outcome::Fail => false,
        // The authenticator app does not wait on the network check.
        Outcome::Pending => line.kind == Check::Network && provider == ProviderKind::Totp,
    })
}

/// The raw text behind every line that has some, for "Details".
fn all_details(lines: &[CheckLine]) -> String {
    lines
        .iter()
        .filter_map(|l| {
            l.details
                .as_ref()
                .map(|d| format!("{}: {d}", l.kind.name()))
        })
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
            let details = all_details(&status.map(lines).unwrap_or_default());
            (!details.is_empty()).then_some(Event::Copy(details))
        }
    }
}

pub fn view<'a>(state: &'a State, status: Option<&'a AgentStatus>) -> Element<'a, Message> {
    // Made once per frame: the lines, their details and the verdict.
    let made = status.map(lines).unwrap_or_default();
    let details = all_details(&made);
    let ready = status.is_some_and(|s| ready(&made, s.policy.provider));
    let mut checks = column![].spacing(10);
    for line in made {
        checks = checks.push(check_view(line));
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
    if !details.is_empty() {
        content = content.push(crate::screen::details(
            details,
            state.details_shown,
            Message::ToggleDetails,
            Message::CopyDetails,
        ));
    }
    content = content.push(text("Have your smartphone nearby.").size(18));
    let buttons = row![
        action("Get started", ready.then_some(Message::GetStarted)).id(super::PRIMARY),
        crate::screen::busy(
            secondary,
            ("Check again", "Checking…"),
            state.is_checking(),
            Message::CheckAgain
        ),
    ]
    .spacing(12);
    content.push(buttons).width(Fill).into()
}

fn check_view<'a>(line: CheckLine) -> Element<'a, Message> {
    let color = line.outcome.color();
    let mut body = column![
        row![
            text(line.kind.name()).size(17),
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
mod tests;
