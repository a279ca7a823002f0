//! The status window: MFA, Clock, Network, Policy and Agent, each with its
//! state, the figure behind it and a refresh button. The sections scroll
//! when the window is too small for them. The agent's uptime is live: the
//! last status's figure plus the time since it arrived, advanced by a
//! one-second tick (the time is passed in, so `update` stays pure).
//! Failures read in the shared vocabulary's words (`rampart_shared::cause`);
//! the raw text behind them is under "Details", shown on demand and
//! copyable.

use std::time::Duration;

use iced::time::Instant;
use iced::widget::{column, container, row, rule, scrollable, space, text};
use iced::{Element, Fill};
use rampart_shared::ipc::Check;
use rampart_shared::status::{
    AgentStatus, ClockState, MfaState, NetworkState, UpdateState, describe_offset, human_duration,
    network_words, problem_details,
};

use super::{Outcome, action, note, secondary};

#[derive(Debug, Default)]
pub struct State {
    /// A refresh in flight, so its button says so.
    pub refreshing: Option<Check>,
    /// Why the last refresh failed, as the agent said it.
    pub notice: Option<String>,
    /// When the status shown arrived.
    pub received: Option<Instant>,
    /// The latest tick.
    pub now: Option<Instant>,
    /// The raw text behind the problems is shown.
    pub details_shown: bool,
}

impl State {
    /// Time since the status shown arrived, as of the latest tick.
    pub fn since_status(&self) -> Duration {
        match (self.received, self.now) {
            (Some(received), Some(now)) => now.saturating_duration_since(received),
            _ => Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Refresh(Check),
    Refreshed(Result<(), String>),
    SetUpMfa,
    Restart,
    /// A new status arrived at this time.
    StatusArrived(Instant),
    /// The clock's tick, for the live uptime.
    Tick(Instant),
    ToggleDetails,
    /// Copy these details (the view made them from the status shown).
    CopyDetails(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Refresh(Check),
    OpenWizard,
    Restart,
    Copy(String),
}

pub fn update(state: &mut State, message: Message) -> Option<Event> {
    match message {
        Message::Refresh(check) => {
            if state.refreshing.is_some() {
                return None;
            }
            state.refreshing = Some(check);
            state.notice = None;
            Some(Event::Refresh(check))
        }
        Message::Refreshed(result) => {
            state.refreshing = None;
            state.notice = result.err().map(|e| format!("Refresh did not work: {e}"));
            None
        }
        Message::SetUpMfa => Some(Event::OpenWizard),
        Message::Restart => Some(Event::Restart),
        Message::StatusArrived(at) => {
            state.received = Some(at);
            state.now = Some(at);
            None
        }
        Message::Tick(at) => {
            state.now = Some(at);
            None
        }
        Message::ToggleDetails => {
            state.details_shown = !state.details_shown;
            None
        }
        Message::CopyDetails(text) => Some(Event::Copy(text)),
    }
}

/// "Network: …" lines of the raw text behind the status's problems.
fn details_text(status: &AgentStatus) -> String {
    problem_details(status)
        .into_iter()
        .map(|(name, text)| format!("{name}: {text}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// MFA still needs the user: not set up, half done, or broken.
pub fn mfa_needs_setup(status: &AgentStatus) -> bool {
    matches!(
        status.mfa.state,
        MfaState::NotSetUp | MfaState::InProgress | MfaState::Error
    )
}

/// One section as shown: its name, state, the figure behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: &'static str,
    pub state: String,
    pub outcome: Outcome,
    pub figure: String,
    pub check: Check,
}

/// The sections; `since_status` is the time since `s` arrived, added to
/// the agent's uptime.
pub fn sections(s: &AgentStatus, since_status: Duration) -> Vec<Section> {
    let mfa = {
        let outcome = match s.mfa.state {
            MfaState::Enrolled | MfaState::NotRequired => Outcome::Pass,
            MfaState::InProgress => Outcome::Pending,
            MfaState::Error | MfaState::NotSetUp => Outcome::Fail,
        };
        // The words of `status` on the command line ("Setup in progress").
        let state = s.mfa.state.label().to_owned();
        let figure = match (s.mfa.state, &s.mfa.detail) {
            (MfaState::InProgress, Some(next)) => format!("Setup started; next: {next}"),
            (_, Some(detail)) => super::capitalize(detail),
            (MfaState::NotSetUp, None) => "Your organization requires MFA on this device".into(),
            _ => format!("Provider: {}", s.mfa.provider.label()),
        };
        Section {
            name: "MFA",
            state,
            outcome,
            figure,
            check: Check::All,
        }
    };
    let clock = {
        let allowed = human_duration(s.clock.max_skew_ms);
        let (state, outcome) = match s.clock.state {
            ClockState::Synced => ("In sync", Outcome::Pass),
            ClockState::Skewed => ("Out of sync", Outcome::Fail),
            ClockState::Unknown => ("Unknown", Outcome::Pending),
        };
        let figure = match s.clock.offset_ms {
            Some(o) => format!(
                "{} (allowed {allowed}){}",
                super::capitalize(&describe_offset(o)),
                s.clock
                    .server
                    .as_ref()
                    .map(|srv| format!(", per {srv}"))
                    .unwrap_or_default()
            ),
            None => match &s.clock.problem {
                Some(p) => p.sentence(),
                None => super::capitalize(&s.clock.detail),
            },
        };
        Section {
            name: "Clock",
            state: state.into(),
            outcome,
            figure,
            check: Check::Clock,
        }
    };
    let network = {
        let (state, outcome) = match s.network.state {
            NetworkState::Online => ("Online", Outcome::Pass),
            NetworkState::Offline => ("Offline", Outcome::Fail),
            NetworkState::Unknown => ("Unknown", Outcome::Pending),
        };
        Section {
            name: "Network",
            state: state.into(),
            outcome,
            figure: match s.network.state {
                // A host name starts the vocabulary's words: as written.
                NetworkState::Offline => match s.network.problems.first() {
                    Some(first) => {
                        format!("{} {}", network_words(&s.network), first.cause.next_step())
                    }
                    None => super::capitalize(&s.network.detail),
                },
                _ => super::capitalize(&s.network.detail),
            },
            check: Check::Network,
        }
    };
    let policy = {
        let (state, outcome) = match &s.policy.error {
            Some(_) => ("Latest policy rejected", Outcome::Fail),
            None => ("In force", Outcome::Pass),
        };
        let mut figure = format!(
            "{}, serial {}; MFA {} ({})",
            super::capitalize(s.policy.source.label()),
            s.policy.serial,
            if s.policy.mfa_required {
                "required"
            } else {
                "not required"
            },
            s.policy.provider.label()
        );
        if let Some(kept) = &s.policy.kept {
            figure.push_str(&format!("; {}", kept.message));
        }
        if s.policy.error.is_some() {
            let rejected = rampart_shared::cause::Cause::PolicyRejected;
            figure.push_str(&format!(". {}", rejected.sentence()));
        }
        if let Some(failure) = &s.policy.fetch_error {
            figure.push_str(&format!("; {}", failure.summary()));
        }
        Section {
            name: "Policy",
            state: state.into(),
            outcome,
            figure,
            check: Check::Policy,
        }
    };
    let agent = {
        let (state, outcome, figure) = match s.update.state {
            UpdateState::UpdateRequired => (
                "Update required",
                Outcome::Fail,
                match &s.update.problem {
                    Some(p) => p.sentence(),
                    None => s.update.detail.clone(),
                },
            ),
            UpdateState::Failed => ("Update failed", Outcome::Fail, s.update.detail.clone()),
            _ => (
                "Running",
                Outcome::Pass,
                format!(
                    "Rampart {}, {} mode, up {}",
                    s.agent.version,
                    s.agent.mode.label(),
                    human_duration(
                        s.agent
                            .uptime_secs
                            .saturating_add(since_status.as_secs())
                            .saturating_mul(1000)
                    )
                ),
            ),
        };
        Section {
            name: "Agent",
            state: state.into(),
            outcome,
            figure,
            check: Check::All,
        }
    };
    vec![mfa, clock, network, policy, agent]
}

pub fn view<'a>(state: &'a State, status: &'a AgentStatus) -> Element<'a, Message> {
    let mut list = column![
        row![
            text("Rampart").size(26),
            space::horizontal(),
            text(status.overall.label())
                .size(18)
                .color(match status.overall {
                    rampart_shared::status::Overall::Healthy => Outcome::Pass.color(),
                    _ => Outcome::Fail.color(),
                })
        ]
        .align_y(iced::Center)
    ]
    .spacing(12);
    for section in sections(status, state.since_status()) {
        let refreshing = state.refreshing.is_some();
        let mut right = row![].spacing(8).align_y(iced::Center);
        if section.name == "MFA" && mfa_needs_setup(status) {
            right = right.push(action("Set up MFA", Some(Message::SetUpMfa)));
        }
        right = right.push(secondary(
            if state.refreshing == Some(section.check) && section.name != "Agent" {
                "Refreshing…"
            } else {
                "Refresh"
            },
            (!refreshing).then_some(Message::Refresh(section.check)),
        ));
        list = list.push(rule::horizontal(1)).push(
            row![
                column![
                    row![
                        text(section.name).size(18).width(90),
                        text(section.state).size(18).color(section.outcome.color()),
                    ],
                    text(section.figure).size(14),
                ]
                .spacing(4)
                .width(Fill),
                right,
            ]
            .spacing(12)
            .align_y(iced::Center),
        );
    }
    if let Some(notice) = &state.notice {
        list = list.push(note(text(notice), Outcome::Fail));
    }
    let details = details_text(status);
    if !details.is_empty() {
        let copy = Message::CopyDetails(details.clone());
        list = list.push(rule::horizontal(1)).push(super::details(
            details,
            state.details_shown,
            Message::ToggleDetails,
            copy,
        ));
    }
    column![
        scrollable(container(list).padding([20, 24])).height(Fill),
        container(row![
            space::horizontal(),
            secondary("Restart app", Some(Message::Restart))
        ])
        .padding([12, 24]),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::passing;
    use rampart_shared::version::Version;

    #[test]
    fn mfa_reads_not_set_up_in_progress_or_error_until_done() {
        let sections = |s: &AgentStatus| super::sections(s, Duration::ZERO);
        let mut s = passing();
        assert_eq!(sections(&s)[0].state, "Not set up");
        assert_eq!(sections(&s)[0].outcome, Outcome::Fail);
        assert!(mfa_needs_setup(&s));
        s.mfa.state = MfaState::InProgress;
        s.mfa.detail = Some("verify a code".into());
        // As `rampart-agent status` says it, and not in red.
        assert_eq!(sections(&s)[0].state, "Setup in progress");
        assert_eq!(sections(&s)[0].outcome, Outcome::Pending);
        assert_eq!(sections(&s)[0].figure, "Setup started; next: verify a code");
        s.mfa.state = MfaState::Error;
        s.mfa.detail = Some("the saved MFA setup cannot be read".into());
        assert_eq!(sections(&s)[0].state, "Error");
        assert_eq!(sections(&s)[0].figure, "The saved MFA setup cannot be read");
        s.mfa.state = MfaState::Enrolled;
        s.mfa.detail = Some("since 2026-11-23".into());
        assert_eq!(sections(&s)[0].state, "Enrolled");
        assert!(!mfa_needs_setup(&s));
    }

    #[test]
    fn uptime_advances_with_the_clock_without_a_new_status() {
        let mut s = passing();
        s.agent.uptime_secs = 118;
        let mut state = State::default();
        let t0 = Instant::now();
        update(&mut state, Message::StatusArrived(t0));
        let uptime =
            |s: &AgentStatus, state: &State| sections(s, state.since_status())[4].figure.clone();
        assert!(
            uptime(&s, &state).ends_with("up 118 s"),
            "{}",
            uptime(&s, &state)
        );
        update(&mut state, Message::Tick(t0 + Duration::from_secs(5)));
        assert!(
            uptime(&s, &state).ends_with("up 2 min 3 s"),
            "{}",
            uptime(&s, &state)
        );
        // A new status carries the agent's own figure; the count restarts.
        s.agent.uptime_secs = 130;
        update(
            &mut state,
            Message::StatusArrived(t0 + Duration::from_secs(12)),
        );
        assert!(
            uptime(&s, &state).ends_with("up 2 min 10 s"),
            "{}",
            uptime(&s, &state)
        );
        // A tick from before the status (reordered) never counts backwards.
        update(&mut state, Message::Tick(t0));
        assert!(
            uptime(&s, &state).ends_with("up 2 min 10 s"),
            "{}",
            uptime(&s, &state)
        );
    }

    fn use_tiny_skia() {
        crate::simulated::use_tiny_skia();
    }

    #[test]
    fn on_screen_setup_in_progress_reads_as_such() {
        use_tiny_skia();
        let mut s = passing();
        s.mfa.state = MfaState::InProgress;
        s.mfa.detail = Some("verify a code".into());
        let state = State::default();
        let mut ui = iced_test::simulator(view(&state, &s));
        assert!(ui.find("Setup in progress").is_ok());
        assert!(ui.find("Not set up").is_err());
        assert!(ui.find("Set up MFA").is_ok(), "the way to finish it stays");
    }

    #[test]
    fn on_screen_the_uptime_moves_with_the_tick() {
        use_tiny_skia();
        let mut s = passing();
        s.agent.uptime_secs = 118;
        let mut state = State::default();
        let t0 = Instant::now();
        update(&mut state, Message::StatusArrived(t0));
        update(&mut state, Message::Tick(t0 + Duration::from_secs(5)));
        let figure = sections(&s, state.since_status())[4].figure.clone();
        let mut ui = iced_test::simulator(view(&state, &s));
        assert!(figure.ends_with("up 2 min 3 s"), "{figure}");
        assert!(ui.find(figure.as_str()).is_ok(), "{figure}");
    }

    #[test]
    fn at_the_minimum_size_the_sections_scroll_into_view() {
        use iced::{Point, Size, mouse};
        use_tiny_skia();
        let mut s = passing();
        s.policy.fetch_error = Some(rampart_shared::status::FetchFailure {
            message: "the server answered HTTP 404 for https://it.example/policy.json".into(),
            at: chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap(),
            problem: None,
        });
        let state = State::default();
        let last = sections(&s, Duration::ZERO)[4].figure.clone();
        let min = crate::app::STATUS_MIN_SIZE;
        let mut ui = iced_test::Simulator::with_size(
            iced::Settings::default(),
            Size::new(min.width, min.height),
            view(&state, &s),
        );
        let seen = |ui: &mut iced_test::Simulator<'_, Message>| {
            ui.find(last.as_str()).unwrap().visible_bounds()
        };
        assert_eq!(
            seen(&mut ui),
            None,
            "at this size the last row starts below the visible part"
        );
        ui.point_at(Point::new(min.width / 2.0, min.height / 3.0));
        ui.simulate([iced::Event::Mouse(mouse::Event::WheelScrolled {
            delta: mouse::ScrollDelta::Pixels { x: 0.0, y: -2000.0 },
        })]);
        let after = seen(&mut ui).expect("scrolled into view");
        assert!(
            after.y + after.height <= min.height,
            "the last row is in the window: {after:?}"
        );
    }

    #[test]
    fn agent_below_the_policy_minimum_says_update_required() {
        let mut s = passing();
        s.update.state = UpdateState::UpdateRequired;
        s.update.min_version = Some(Version::new(6, 0, 1));
        s.update.detail = "Rampart 6.0.1 or later is required; this is 0.1.0".into();
        let agent = &sections(&s, Duration::ZERO)[4];
        assert_eq!(agent.state, "Update required");
        assert_eq!(
            agent.figure,
            "Rampart 6.0.1 or later is required; this is 0.1.0"
        );
    }

    #[test]
    fn clock_shows_the_offset_in_words() {
        let s = passing();
        let clock = &sections(&s, Duration::ZERO)[1];
        assert_eq!(clock.state, "In sync");
        assert_eq!(
            clock.figure,
            "Clock is 40 ms fast (allowed 30 s), per 127.0.0.1:123"
        );
    }

    #[test]
    fn one_refresh_at_a_time_and_its_failure_is_shown() {
        let mut state = State::default();
        assert_eq!(
            update(&mut state, Message::Refresh(Check::Clock)),
            Some(Event::Refresh(Check::Clock))
        );
        assert_eq!(update(&mut state, Message::Refresh(Check::All)), None);
        update(&mut state, Message::Refreshed(Err("no checks".into())));
        assert_eq!(state.refreshing, None);
        assert_eq!(
            state.notice.as_deref(),
            Some("Refresh did not work: no checks")
        );
        assert_eq!(
            update(&mut state, Message::SetUpMfa),
            Some(Event::OpenWizard)
        );
        assert_eq!(update(&mut state, Message::Restart), Some(Event::Restart));
    }

    #[test]
    fn a_failure_reads_by_cause_and_its_raw_text_waits_under_details() {
        use rampart_shared::cause::{Cause, Endpoint, Problem};
        crate::simulated::use_tiny_skia();
        let mut s = passing();
        s.network.state = NetworkState::Offline;
        s.network.problems = vec![Problem::new(
            Cause::UntrustedCertificate {
                endpoint: Endpoint::OfflineGuide,
                host: "guide.example.com".into(),
                issuer: None,
            },
            "invalid peer certificate: UnknownIssuer",
        )];
        let network = super::sections(&s, Duration::ZERO)
            .into_iter()
            .find(|x| x.name == "Network")
            .unwrap();
        assert_eq!(
            network.figure,
            "guide.example.com (offline-access guide) presented a certificate this computer \
             does not trust. Tell IT: a network proxy that inspects encrypted traffic, or a \
             company certificate missing from this computer, is the likely cause. Until then, \
             try another network."
        );
        let mut state = State::default();
        {
            let mut ui = iced_test::simulator(view(&state, &s));
            assert!(ui.find("invalid peer certificate: UnknownIssuer").is_err());
            assert!(ui.click("Copy details").is_ok());
            assert_eq!(
                ui.into_messages().collect::<Vec<_>>(),
                [Message::CopyDetails(
                    "Network: invalid peer certificate: UnknownIssuer".into()
                )]
            );
        }
        assert_eq!(
            update(
                &mut state,
                Message::CopyDetails("Network: invalid peer certificate: UnknownIssuer".into())
            ),
            Some(Event::Copy(
                "Network: invalid peer certificate: UnknownIssuer".into()
            ))
        );
        update(&mut state, Message::ToggleDetails);
        let mut ui = iced_test::simulator(view(&state, &s));
        assert!(
            ui.find("Network: invalid peer certificate: UnknownIssuer")
                .is_ok()
        );
    }
}
