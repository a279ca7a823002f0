//! The MFA setup wizard: its steps follow the agent's enrollment step, so
//! closing the window and coming back resumes where the user stopped.
//!
//! Each step is its own module and changes only its own state; this one
//! routes messages (keys and ticks too) to the current step and turns step
//! events into [`Action`]s for the app. `answer` moves between steps when
//! the agent answers, `step` lists the steps per provider, `view` draws the
//! window around the step.

pub mod before;
pub mod duo_activate;
pub mod duo_confirm;
pub mod offline;
pub mod pair;
pub mod recovery;
pub mod verify;

mod answer;
mod step;
mod view;

pub use step::Step;
pub use view::view;

use std::path::PathBuf;

use iced::time::Instant;
use rampart_shared::ipc::Check;
use rampart_shared::links::check_https_link;
use rampart_shared::mfa::{EnrollmentView, MfaCommand};
use rampart_shared::policy::{Links, ProviderKind};
use rampart_shared::status::{AgentStatus, MfaState};

/// The id of each step's primary action (or of the checkbox that enables
/// it): it takes the focus when the step opens, so Enter or Space goes on
/// at once.
pub const PRIMARY: &str = "wizard-primary";

#[derive(Debug)]
pub struct State {
    pub step: Step,
    pub status: Option<Box<AgentStatus>>,
    pub links: Option<Links>,
    /// Kept from pairing so "Show the QR code again" needs no round trip.
    pairing: Option<rampart_shared::mfa::PairingInfo>,
    /// An error that is not about the current step's input: the agent could
    /// not be asked, or refused for another reason.
    pub notice: Option<String>,
    /// The command "Try again" sends when Duo could not be asked.
    retry: Option<MfaCommand>,
    /// An MFA command is waiting for its answer: no poll is sent meanwhile.
    in_flight: bool,
}

#[derive(Debug, Clone)]
pub enum Message {
    Before(before::Message),
    Pair(pair::Message),
    Verify(verify::Message),
    Recovery(recovery::Message),
    Offline(offline::Message),
    DuoActivate(duo_activate::Message),
    DuoConfirm(duo_confirm::Message),
    /// A second passed while `counting_down`: the current step's countdown
    /// (or "Checking…" bound) moves on.
    Tick(Instant),
    /// Three seconds passed on a screen that waits for the phone.
    Poll,
    /// Send again the command Duo could not answer.
    Retry,
    /// The agent's answer to an MFA command.
    Enrollment(Result<Box<EnrollmentView>, String>),
    Links(Result<Links, String>),
    Refreshed(Result<(), String>),
    Status(Box<AgentStatus>),
    Saved(Result<PathBuf, String>),
    /// Whether the browser took a link.
    LinkOpened(String, Result<(), String>),
    OpenSupport,
    Close,
    /// Enter that no widget used: the step's primary action.
    Enter,
}

/// What the app must do for the wizard.
#[derive(Clone, PartialEq, Eq)]
pub enum Action {
    Mfa(MfaCommand),
    Refresh(Check),
    FetchLinks,
    /// Already checked with `check_https_link`.
    OpenLink(String),
    Copy(String),
    SaveCodes(Vec<String>),
    FocusCode,
    /// Focus the step's primary action ([`PRIMARY`]).
    FocusPrimary,
    Close,
}

impl std::fmt::Debug for Action {
    // Copy and SaveCodes carry recovery codes: name them, never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mfa(c) => write!(f, "Mfa({c:?})"),
            Self::Refresh(c) => write!(f, "Refresh({c:?})"),
            Self::FetchLinks => f.write_str("FetchLinks"),
            Self::OpenLink(u) => write!(f, "OpenLink({u})"),
            Self::Copy(_) => f.write_str("Copy(..)"),
            Self::SaveCodes(_) => f.write_str("SaveCodes(..)"),
            Self::FocusCode => f.write_str("FocusCode"),
            Self::FocusPrimary => f.write_str("FocusPrimary"),
            Self::Close => f.write_str("Close"),
        }
    }
}

impl State {
    /// Opens the wizard. A setup already under way is resumed: the agent
    /// answers `StartEnrollment` with the current step without starting over.
    pub fn new(status: Option<Box<AgentStatus>>) -> (Self, Vec<Action>) {
        let resume = status.as_ref().is_some_and(|s| {
            matches!(
                s.mfa.state,
                MfaState::InProgress | MfaState::Error | MfaState::Enrolled
            )
        });
        let mut actions = vec![Action::FetchLinks];
        let step = if resume {
            actions.push(Action::Mfa(MfaCommand::StartEnrollment));
            Step::Resuming
        } else {
            actions.push(Action::FocusPrimary);
            Step::Before(before::State::default())
        };
        let mut state = Self {
            step,
            status,
            links: None,
            pairing: None,
            notice: None,
            retry: None,
            in_flight: false,
        };
        let actions = state.track(actions);
        (state, actions)
    }

    fn guide(&self) -> Option<&str> {
        self.links.as_ref().map(|l| l.offline_guide_url.as_str())
    }

    /// "Step n of m" for the step on screen, in the policy's provider's
    /// list of steps.
    pub fn place(&self) -> Option<(usize, usize)> {
        let provider = self
            .status
            .as_ref()
            .map_or(ProviderKind::Totp, |s| s.policy.provider);
        step::place(&self.step, provider)
    }

    /// Whether a throttle countdown is running (the app then ticks).
    pub fn counting_down(&self) -> bool {
        match &self.step {
            Step::Verify(v) => v.wait_left > 0,
            Step::DuoConfirm(c) => c.wait_left > 0,
            // "Checking…" ends by itself after a bound, counted in ticks.
            Step::Before(b) => b.is_checking(),
            _ => false,
        }
    }

    /// Whether the screen waits on the phone (the app then polls every 3 s).
    pub fn polling(&self) -> bool {
        match &self.step {
            Step::DuoActivate(a) => a.waiting(),
            Step::DuoConfirm(c) => c.waiting(),
            _ => false,
        }
    }

    /// Notes the MFA command among `actions`, for polling and "Try again".
    fn track(&mut self, actions: Vec<Action>) -> Vec<Action> {
        for action in &actions {
            if let Action::Mfa(command) = action {
                self.in_flight = true;
                if *command != MfaCommand::CheckProgress {
                    self.retry = Some(command.clone());
                }
            }
        }
        actions
    }

    /// The guide opens by itself on arriving at the offline step, or when
    /// the policy's links arrive after the step did: once either way.
    fn open_guide_by_itself(&mut self) -> Vec<Action> {
        let guide = self.links.as_ref().map(|l| l.offline_guide_url.as_str());
        match &mut self.step {
            Step::Offline(o) => offline::open_by_itself(o, guide)
                .map(offline_action)
                .into_iter()
                .collect(),
            _ => vec![],
        }
    }

    /// Hands `url` to the browser if it is https; otherwise the notice
    /// says what was not opened and why.
    fn open(&mut self, what: &str, url: String) -> Vec<Action> {
        match https_only(what, &url) {
            Ok(()) => vec![Action::OpenLink(url)],
            Err(words) => {
                self.notice = Some(words);
                vec![]
            }
        }
    }

    /// A request failed: let the user press the button again.
    fn unbusy(&mut self) {
        match &mut self.step {
            Step::Verify(v) => v.failed(),
            Step::DuoActivate(a) => a.failed(),
            Step::DuoConfirm(c) => c.failed(),
            Step::Recovery(r) => r.failed(),
            Step::Offline(o) => o.failed(),
            Step::Before(b) => b.failed(),
            _ => {}
        }
    }
}

pub fn update(state: &mut State, message: Message) -> Vec<Action> {
    if matches!(message, Message::Enrollment(_)) {
        state.in_flight = false;
    }
    let before = std::mem::discriminant(&state.step);
    let mut actions = route(state, message);
    // A new step: the focus goes to what the user does next there, and
    // leaves the last step's widgets (their tree state can outlive them).
    if std::mem::discriminant(&state.step) != before {
        let focus = match state.step {
            Step::Verify(_) => Action::FocusCode,
            _ => Action::FocusPrimary,
        };
        if !actions.contains(&focus) {
            actions.push(focus);
        }
    }
    state.track(actions)
}

/// What Enter does on each step when no widget took it: the primary
/// action, as its button would (each step's `update` refuses it while the
/// button is disabled).
fn primary(step: &Step) -> Option<Message> {
    match step {
        Step::Resuming => None,
        Step::Before(_) => Some(Message::Before(before::Message::GetStarted)),
        Step::Pair(_) => Some(Message::Pair(pair::Message::Next)),
        Step::Verify(_) => Some(Message::Verify(verify::Message::Submit)),
        Step::DuoActivate(duo_activate::State::Portal { .. }) => {
            Some(Message::DuoActivate(duo_activate::Message::OpenPortal))
        }
        Step::DuoActivate(duo_activate::State::Activate { expired, .. }) => {
            expired.then_some(Message::DuoActivate(duo_activate::Message::Renew))
        }
        Step::DuoConfirm(_) => Some(Message::DuoConfirm(duo_confirm::Message::SendPush)),
        Step::Recovery(_) => Some(Message::Recovery(recovery::Message::Continue)),
        Step::Offline(_) => Some(Message::Offline(offline::Message::Finish)),
        Step::Done | Step::Bypass(_) => Some(Message::Close),
        Step::Denied(_) => Some(Message::OpenSupport),
    }
}

/// What a second's tick is to each step: only the steps that count.
fn tick(step: &Step, at: Instant) -> Option<Message> {
    match step {
        Step::Before(_) => Some(Message::Before(before::Message::Tick(at))),
        Step::Verify(_) => Some(Message::Verify(verify::Message::Tick)),
        Step::DuoConfirm(_) => Some(Message::DuoConfirm(duo_confirm::Message::Tick)),
        _ => None,
    }
}

/// Only an https link is handed to the browser: any other is named (`what`
/// and its address) with why it was not opened, for the user to tell IT.
fn https_only(what: &str, url: &str) -> Result<(), String> {
    check_https_link(url).map_err(|e| format!("{what} \"{url}\" {e}, so it was not opened."))
}

fn offline_action(event: offline::Event) -> Action {
    match event {
        offline::Event::Open(url) => Action::OpenLink(url),
        offline::Event::Finish { guide_url } => {
            Action::Mfa(MfaCommand::AcknowledgeOfflineGuide { guide_url })
        }
    }
}

fn route(state: &mut State, message: Message) -> Vec<Action> {
    match message {
        Message::Before(m) => {
            let Step::Before(b) = &mut state.step else {
                return vec![];
            };
            match before::update(b, m, state.status.as_deref()) {
                Some(before::Event::GetStarted) => {
                    vec![Action::Mfa(MfaCommand::StartEnrollment)]
                }
                Some(before::Event::CheckAgain) => vec![Action::Refresh(Check::All)],
                Some(before::Event::Copy(details)) => vec![Action::Copy(details)],
                None => vec![],
            }
        }
        Message::Pair(m) => {
            let Step::Pair(p) = &mut state.step else {
                return vec![];
            };
            match pair::update(p, m) {
                pair::Event::Next => {
                    state.step = Step::Verify(verify::State::default());
                    vec![Action::FocusCode]
                }
            }
        }
        Message::Verify(m) => {
            let Step::Verify(v) = &mut state.step else {
                return vec![];
            };
            match verify::update(v, m) {
                Some(verify::Event::Submit(code)) => {
                    vec![Action::Mfa(MfaCommand::VerifyCode { code })]
                }
                Some(verify::Event::Focus) => vec![Action::FocusCode],
                Some(verify::Event::Back) => {
                    if let Some(pairing) = &state.pairing {
                        state.step = Step::Pair(pair::State::new(pairing));
                    }
                    vec![]
                }
                None => vec![],
            }
        }
        Message::Recovery(m) => {
            let Step::Recovery(r) = &mut state.step else {
                return vec![];
            };
            match recovery::update(r, m) {
                Some(recovery::Event::Copy(text)) => vec![Action::Copy(text)],
                Some(recovery::Event::Save(codes)) => vec![Action::SaveCodes(codes)],
                Some(recovery::Event::Continue) => {
                    vec![Action::Mfa(MfaCommand::ConfirmRecoveryCodesSaved)]
                }
                Some(recovery::Event::Regenerate) => {
                    vec![Action::Mfa(MfaCommand::RegenerateRecoveryCodes)]
                }
                None => vec![],
            }
        }
        Message::Offline(m) => {
            let guide = state.links.as_ref().map(|l| l.offline_guide_url.clone());
            let Step::Offline(o) = &mut state.step else {
                return vec![];
            };
            offline::update(o, m, guide.as_deref())
                .map(offline_action)
                .into_iter()
                .collect()
        }
        Message::DuoActivate(m) => {
            let Step::DuoActivate(a) = &mut state.step else {
                return vec![];
            };
            match duo_activate::update(a, m) {
                Some(duo_activate::Event::Copy(link)) => vec![Action::Copy(link)],
                Some(duo_activate::Event::Open(url)) => state.open("Duo's page", url),
                Some(duo_activate::Event::Renew) => {
                    vec![Action::Mfa(MfaCommand::RenewActivation)]
                }
                Some(duo_activate::Event::CheckAgain) => {
                    vec![Action::Mfa(MfaCommand::CheckProgress)]
                }
                None => vec![],
            }
        }
        Message::DuoConfirm(m) => {
            let Step::DuoConfirm(c) = &mut state.step else {
                return vec![];
            };
            match duo_confirm::update(c, m) {
                Some(duo_confirm::Event::Push { device }) => {
                    vec![Action::Mfa(MfaCommand::SendPush { device })]
                }
                Some(duo_confirm::Event::Passcode(code)) => {
                    vec![Action::Mfa(MfaCommand::VerifyCode { code })]
                }
                None => vec![],
            }
        }
        Message::Poll => {
            if state.polling() && !state.in_flight {
                vec![Action::Mfa(MfaCommand::CheckProgress)]
            } else {
                vec![]
            }
        }
        Message::Retry => match state.retry.clone() {
            Some(command) if !state.in_flight => {
                state.notice = None;
                vec![Action::Mfa(command)]
            }
            _ => vec![],
        },
        Message::Enrollment(Ok(view)) => state.apply(*view),
        Message::Enrollment(Err(e)) => {
            state.notice = Some(format!("The agent could not be asked: {e}"));
            if matches!(state.step, Step::Resuming) {
                state.step = Step::Before(before::State::default());
            }
            state.unbusy();
            vec![]
        }
        Message::Links(Ok(links)) => {
            state.links = Some(links);
            state.open_guide_by_itself()
        }
        Message::Links(Err(e)) => {
            state.notice = Some(format!("Could not read the policy's links: {e}"));
            vec![]
        }
        Message::Refreshed(result) => {
            // Accepted: the checks run now and the status says when they
            // have; refused: the button is back with the agent's words.
            if let (Step::Before(b), Err(e)) = (&mut state.step, result) {
                b.refresh_failed(e);
            }
            vec![]
        }
        Message::Status(status) => {
            let mut actions = vec![];
            if let Step::Before(b) = &mut state.step {
                b.status_arrived(&status);
                // "Get started" was disabled when the step opened, so it
                // could not take the focus then: it does now.
                if !before::can_start(state.status.as_deref()) && before::can_start(Some(&status)) {
                    actions.push(Action::FocusPrimary);
                }
            }
            state.status = Some(status);
            actions
        }
        Message::Saved(result) => {
            if let Step::Recovery(r) = &mut state.step {
                r.file_written(result);
            }
            vec![]
        }
        Message::LinkOpened(url, result) => {
            state.notice = result.err().map(|e| {
                format!("Your browser could not be opened ({e}). Please open this address yourself: {url}")
            });
            vec![]
        }
        Message::OpenSupport => match state.links.as_ref().map(|l| l.support_url.clone()) {
            Some(url) => state.open("The support address", url),
            None => vec![],
        },
        Message::Close => vec![Action::Close],
        Message::Enter => match primary(&state.step) {
            Some(message) => route(state, message),
            None => vec![],
        },
        Message::Tick(at) => match tick(&state.step, at) {
            Some(message) => route(state, message),
            None => vec![],
        },
    }
}

#[cfg(test)]
mod tests;
