//! "Rampart is starting…": shown while the installed service does not answer
//! yet (at login, or while it restarts after an update). The app never starts
//! an agent of its own where the service is installed; it waits here. After
//! `GIVE_UP_AFTER` the screen says plainly that the service is not running,
//! how to start it, and offers "Try again" and the support link; the worker
//! keeps retrying all the while.

use std::time::Duration;

use iced::time::Instant;
use iced::widget::{column, row, text};
use iced::{Element, Fill};
use rampart_shared::platform::Os;
use rampart_shared::policy::Policy;

use super::{Outcome, action, note, secondary};

/// How long the screen says "starting" before it says "not running".
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct State {
    /// When the wait began (or "Try again" was last pressed).
    since: Instant,
    now: Instant,
    /// The last connection error, for support.
    why: String,
    /// The support page: the built-in one (no policy without the agent).
    support_url: String,
    link_error: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Message {
    /// Another attempt found the service still silent.
    StillWaiting {
        why: String,
        at: Instant,
    },
    Tick(Instant),
    TryAgain,
    OpenSupport,
    LinkOpened(Result<(), String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the worker to try now.
    Retry,
    OpenLink(String),
}

impl State {
    pub fn new(why: String, at: Instant) -> Self {
        Self {
            since: at,
            now: at,
            why,
            support_url: Policy::default().links.support_url,
            link_error: None,
        }
    }

    /// Waited long enough that "starting" is no longer the likely truth.
    pub fn gave_up(&self) -> bool {
        self.now.saturating_duration_since(self.since) >= GIVE_UP_AFTER
    }
}

pub fn update(state: &mut State, message: Message) -> Option<Action> {
    match message {
        Message::StillWaiting { why, at } => {
            state.why = why;
            state.now = state.now.max(at);
            None
        }
        Message::Tick(at) => {
            state.now = state.now.max(at);
            None
        }
        Message::TryAgain => {
            // A fresh wait: "starting" again, with a new bound.
            state.since = state.now;
            state.link_error = None;
            Some(Action::Retry)
        }
        Message::OpenSupport => Some(Action::OpenLink(state.support_url.clone())),
        Message::LinkOpened(Ok(())) => {
            state.link_error = None;
            None
        }
        Message::LinkOpened(Err(e)) => {
            state.link_error = Some(format!(
                "Could not open the browser ({e}). Open {} in your browser.",
                state.support_url
            ));
            None
        }
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    view_for(state, Os::current())
}

/// The screen with `os`'s words for starting the service.
pub fn view_for(state: &State, os: Os) -> Element<'_, Message> {
    let body = if state.gave_up() {
        let mut body = column![
            text(rampart_shared::cause::Cause::AgentDown.words()).size(24),
            text(format!(
                "Rampart has waited {} s for its service, which checks your device and sets up MFA. \
                 To start it, run {}, or ask IT.",
                GIVE_UP_AFTER.as_secs(),
                os.start_service()
            )),
            note(
                text(format!("Details: {}", state.why)).size(13),
                Outcome::Pending
            ),
            row![
                action("Try again", Some(Message::TryAgain)),
                secondary("Get help", Some(Message::OpenSupport)),
            ]
            .spacing(12),
            text(format!("Help: {}", state.support_url)).size(13),
        ];
        if let Some(error) = &state.link_error {
            body = body.push(note(text(error).size(13), Outcome::Fail));
        }
        body
    } else {
        column![
            text("Rampart is starting…").size(24),
            text(
                "The Rampart service is starting. This window shows your device's status as soon as it answers."
            ),
            text("This usually takes a few seconds.").size(13),
        ]
    };
    body.spacing(16).padding(24).width(Fill).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_test::simulator;

    fn waiting() -> (State, Instant) {
        let t0 = Instant::now();
        (State::new("connection refused".into(), t0), t0)
    }

    #[test]
    fn says_starting_until_the_bound_then_not_running() {
        let (mut state, t0) = waiting();
        assert!(!state.gave_up());
        let just_before = t0 + GIVE_UP_AFTER - Duration::from_secs(1);
        assert_eq!(update(&mut state, Message::Tick(just_before)), None);
        assert!(!state.gave_up());
        let _ = update(
            &mut state,
            Message::StillWaiting {
                why: "no such file".into(),
                at: t0 + GIVE_UP_AFTER,
            },
        );
        assert!(state.gave_up());
        assert_eq!(state.why, "no such file");
    }

    #[test]
    fn try_again_retries_and_starts_a_fresh_wait() {
        let (mut state, t0) = waiting();
        let _ = update(&mut state, Message::Tick(t0 + GIVE_UP_AFTER));
        assert!(state.gave_up());
        assert_eq!(update(&mut state, Message::TryAgain), Some(Action::Retry));
        assert!(!state.gave_up(), "starting again after Try again");
        let _ = update(&mut state, Message::Tick(t0 + GIVE_UP_AFTER * 2));
        assert!(state.gave_up());
    }

    #[test]
    fn an_older_tick_does_not_move_the_clock_back() {
        let (mut state, t0) = waiting();
        let _ = update(&mut state, Message::Tick(t0 + GIVE_UP_AFTER));
        let _ = update(&mut state, Message::Tick(t0));
        assert!(state.gave_up());
    }

    #[test]
    fn support_link_opens_and_a_failure_says_where_to_go() {
        let (mut state, _) = waiting();
        let Some(Action::OpenLink(url)) = update(&mut state, Message::OpenSupport) else {
            panic!("no link opened");
        };
        assert!(url.starts_with("https://"), "{url}");
        let _ = update(
            &mut state,
            Message::LinkOpened(Err("no browser found".into())),
        );
        let error = state.link_error.clone().unwrap();
        assert!(
            error.contains("no browser found") && error.contains(&url),
            "{error}"
        );
    }

    #[test]
    fn the_words_on_screen_before_and_after_the_bound() {
        crate::simulated::use_tiny_skia();
        let (mut state, t0) = waiting();
        {
            let mut ui = simulator(view_for(&state, Os::Linux));
            assert!(ui.find("Rampart is starting…").is_ok());
            assert!(ui.find("Try again").is_err(), "nothing to press yet");
        }

        let _ = update(&mut state, Message::Tick(t0 + GIVE_UP_AFTER));
        let mut ui = simulator(view_for(&state, Os::Linux));
        assert!(ui.find("The Rampart service is not running.").is_ok());
        assert!(
            ui.find(
                "Rampart has waited 60 s for its service, which checks your device and sets up MFA. \
                 To start it, run `sudo systemctl start rampart-agent`, or ask IT."
            )
            .is_ok()
        );
        assert!(ui.find("Details: connection refused").is_ok());
        assert!(
            ui.find(format!("Help: {}", state.support_url).as_str())
                .is_ok()
        );
        let _ = ui.click("Try again").unwrap();
        assert!(matches!(ui.into_messages().next(), Some(Message::TryAgain)));

        let mut ui = simulator(view_for(&state, Os::Windows));
        assert!(
            ui.find(
                "Rampart has waited 60 s for its service, which checks your device and sets up MFA. \
                 To start it, run `sc.exe start RampartAgent` in an administrator Command Prompt \
                 (or Services > Rampart Agent > Start), or ask IT."
            )
            .is_ok()
        );
    }
}
