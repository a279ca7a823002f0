//! The MFA setup wizard: its steps follow the agent's enrollment step, so
//! closing the window and coming back resumes where the user stopped.
//!
//! Each step is its own module; this one routes messages to the current
//! step, turns step events into [`Action`]s for the app, and moves between
//! steps when the agent answers.

pub mod before;
pub mod duo_activate;
pub mod duo_confirm;
pub mod offline;
pub mod pair;
pub mod recovery;
pub mod verify;

use std::path::PathBuf;

use iced::widget::{button, column, container, row, scrollable, space, text};

use crate::widget::Focusable;
use iced::{Element, Fill};
use rampart_shared::ipc::Check;
use rampart_shared::links::check_https_link;
use rampart_shared::mfa::{DuoPrompt, EnrollmentStep, EnrollmentView, MfaCommand, MfaErrorCode};
use rampart_shared::policy::Links;
use rampart_shared::status::{AgentStatus, MfaState};

use super::{Outcome, action, note, secondary};

/// The id of each step's primary action (or of the checkbox that enables
/// it): it takes the focus when the step opens, so Enter or Space goes on
/// at once.
pub const PRIMARY: &str = "wizard-primary";

#[derive(Debug)]
pub enum Step {
    /// Waiting for the agent to say where an earlier setup stands.
    Resuming,
    Before(before::State),
    Pair(pair::State),
    Verify(verify::State),
    /// Duo: activate Duo Mobile, or add a phone on Duo's page.
    DuoActivate(duo_activate::State),
    /// Duo: a push or a passcode confirms the phone.
    DuoConfirm(duo_confirm::State),
    Recovery(recovery::State),
    Offline(offline::State),
    Done,
    /// Duo lets this user in without a second factor: Duo's words.
    Bypass(String),
    /// Duo denies this user: only IT can help.
    Denied(String),
}

impl Step {
    /// "Step n of 5" for the steps the user works through.
    fn number(&self) -> Option<u8> {
        match self {
            Self::Resuming | Self::Done | Self::Bypass(_) | Self::Denied(_) => None,
            Self::Before(_) => Some(1),
            Self::Pair(_) | Self::DuoActivate(_) => Some(2),
            Self::Verify(_) | Self::DuoConfirm(_) => Some(3),
            Self::Recovery(_) => Some(4),
            Self::Offline(_) => Some(5),
        }
    }
}

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

    /// Moves to the step the agent says the user is at.
    fn apply(&mut self, view: EnrollmentView) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(error) = view.error {
            // A refused code stays on the code step, shown as the agent wrote it.
            if let Step::Verify(v) = &mut self.step
                && view.step == EnrollmentStep::Pairing
            {
                v.refused(error);
                return actions;
            }
            if let Step::DuoConfirm(c) = &mut self.step
                && view.step == EnrollmentStep::Pairing
            {
                if let Some(DuoPrompt::Confirm { devices, push }) = view.duo {
                    c.refresh(devices, push);
                }
                c.refused(error);
                return actions;
            }
            // Duo has not confirmed the phone's activation in time: said on
            // the activation screen, which stops polling until "Try again".
            if let Step::DuoActivate(a) = &mut self.step
                && view.step == EnrollmentStep::Pairing
                && matches!(
                    error.problem.as_ref().map(|p| &p.cause),
                    Some(rampart_shared::cause::Cause::DuoActivationPending { .. })
                )
            {
                a.pending(error.message);
                self.notice = None;
                return actions;
            }
            if error.code == MfaErrorCode::AccessDenied {
                self.step = Step::Denied(error.message);
                self.notice = None;
                return actions;
            }
            self.notice = Some(error.message);
            if error.code == MfaErrorCode::WrongStep {
                // Somebody else moved the enrollment on: follow the agent.
            } else {
                self.unbusy();
                return actions;
            }
        } else {
            self.notice = None;
            self.retry = None;
        }
        match view.step {
            EnrollmentStep::NotRequired if matches!(view.duo, Some(DuoPrompt::Bypass { .. })) => {
                if let Some(DuoPrompt::Bypass { message }) = view.duo {
                    self.step = Step::Bypass(message);
                }
            }
            EnrollmentStep::Pairing if view.duo.is_some() => {
                let Some(prompt) = view.duo else {
                    return actions;
                };
                match (&mut self.step, prompt) {
                    (Step::DuoConfirm(c), DuoPrompt::Confirm { devices, push }) => {
                        c.refresh(devices, push);
                    }
                    (_, DuoPrompt::Confirm { devices, push }) => {
                        self.step = Step::DuoConfirm(duo_confirm::State::new(devices, push));
                    }
                    (Step::DuoActivate(a), prompt) => a.refresh(&prompt),
                    (_, prompt) => {
                        if let Some(a) = duo_activate::State::from_prompt(&prompt) {
                            self.step = Step::DuoActivate(a);
                        }
                    }
                }
            }
            EnrollmentStep::NotRequired | EnrollmentStep::NotSetUp => {
                if !matches!(self.step, Step::Before(_)) {
                    self.step = Step::Before(before::State::default());
                }
            }
            EnrollmentStep::Pairing => match view.pairing {
                Some(pairing) => {
                    if !matches!(self.step, Step::Verify(_)) {
                        self.step = Step::Pair(pair::State::new(&pairing));
                    }
                    self.pairing = Some(pairing);
                }
                None => self.notice = Some("The agent did not send the pairing code.".into()),
            },
            EnrollmentStep::Verified => {
                self.pairing = None;
                match &mut self.step {
                    // Regenerated codes replace the ones on screen.
                    Step::Recovery(r) => {
                        r.busy = false;
                        if view.recovery_codes.is_some() {
                            r.codes = view.recovery_codes;
                            r.saved = None;
                            r.copied = false;
                        }
                    }
                    _ => {
                        self.step = Step::Recovery(recovery::State {
                            codes: view.recovery_codes,
                            ..recovery::State::default()
                        })
                    }
                }
            }
            EnrollmentStep::RecoveryCodesSaved => {
                if !matches!(self.step, Step::Offline(_)) {
                    let mut offline = offline::State::default();
                    // The guide opens by itself on arrival (once the policy's
                    // links are known; see `Message::Links`).
                    if let Some(offline::Event::Open(url)) =
                        offline::update(&mut offline, offline::Message::OpenGuide, self.guide())
                    {
                        actions.push(Action::OpenLink(url));
                    }
                    self.step = Step::Offline(offline);
                }
            }
            EnrollmentStep::OfflineGuideAcknowledged | EnrollmentStep::Enrolled => {
                self.step = Step::Done;
            }
        }
        actions
    }

    /// A request failed: let the user press the button again.
    fn unbusy(&mut self) {
        match &mut self.step {
            Step::Verify(v) => v.failed(),
            Step::DuoActivate(a) => a.failed(),
            Step::DuoConfirm(c) => c.failed(),
            Step::Recovery(r) => r.busy = false,
            Step::Offline(o) => o.busy = false,
            Step::Before(b) => b.checking = None,
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
            match offline::update(o, m, guide.as_deref()) {
                Some(offline::Event::Open(url)) => vec![Action::OpenLink(url)],
                Some(offline::Event::Finish { guide_url }) => {
                    vec![Action::Mfa(MfaCommand::AcknowledgeOfflineGuide {
                        guide_url,
                    })]
                }
                None => vec![],
            }
        }
        Message::DuoActivate(m) => {
            let Step::DuoActivate(a) = &mut state.step else {
                return vec![];
            };
            match duo_activate::update(a, m) {
                Some(duo_activate::Event::Copy(link)) => vec![Action::Copy(link)],
                Some(duo_activate::Event::Open(url)) => match check_https_link(&url) {
                    Ok(()) => vec![Action::OpenLink(url)],
                    Err(e) => {
                        state.notice =
                            Some(format!("Duo's page \"{url}\" {e}, so it was not opened."));
                        vec![]
                    }
                },
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
            // Arrived at the offline step before the links: open it now.
            match &mut state.step {
                Step::Offline(o) if !o.opened && o.link_error.is_none() => {
                    let guide = state.links.as_ref().map(|l| l.offline_guide_url.as_str());
                    match offline::update(o, offline::Message::OpenGuide, guide) {
                        Some(offline::Event::Open(url)) => vec![Action::OpenLink(url)],
                        _ => vec![],
                    }
                }
                _ => vec![],
            }
        }
        Message::Links(Err(e)) => {
            state.notice = Some(format!("Could not read the policy's links: {e}"));
            vec![]
        }
        Message::Refreshed(result) => {
            // Accepted: the checks run now and the status says when they
            // have; refused: the button is back with the agent's words.
            if let (Step::Before(b), Err(e)) = (&mut state.step, result) {
                b.checking = None;
                b.refresh_error = Some(e);
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
                r.saved = Some(result);
            }
            vec![]
        }
        Message::LinkOpened(url, result) => {
            state.notice = result.err().map(|e| {
                format!("Your browser could not be opened ({e}). Please open this address yourself: {url}")
            });
            vec![]
        }
        Message::OpenSupport => {
            let Some(links) = &state.links else {
                return vec![];
            };
            match check_https_link(&links.support_url) {
                Ok(()) => vec![Action::OpenLink(links.support_url.clone())],
                Err(e) => {
                    state.notice = Some(format!(
                        "The support address \"{}\" {e}, so it was not opened.",
                        links.support_url
                    ));
                    vec![]
                }
            }
        }
        Message::Close => vec![Action::Close],
        Message::Enter => match primary(&state.step) {
            Some(message) => route(state, message),
            None => vec![],
        },
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    let body: Element<'_, Message> = match &state.step {
        Step::Resuming => text("Picking up where you left off…").into(),
        Step::Before(b) => before::view(b, state.status.as_deref()).map(Message::Before),
        Step::Pair(p) => pair::view(p).map(Message::Pair),
        Step::Verify(v) => verify::view(v).map(Message::Verify),
        Step::DuoActivate(a) => duo_activate::view(a).map(Message::DuoActivate),
        Step::DuoConfirm(c) => duo_confirm::view(c).map(Message::DuoConfirm),
        Step::Bypass(message) => column![
            text("Nothing to set up").size(24),
            text("Duo lets you sign in without a second factor: your IT team chose this."),
            note(text(message), Outcome::Pass),
            secondary("Close", Some(Message::Close)).id(PRIMARY),
        ]
        .spacing(14)
        .into(),
        Step::Denied(message) => column![
            text("Duo does not allow setup").size(24),
            note(text(message), Outcome::Fail),
            text("Only your IT team can change this. Contact them, then open Rampart again."),
            action(
                "Contact support",
                state.links.as_ref().map(|_| Message::OpenSupport)
            )
            .id(PRIMARY),
        ]
        .spacing(14)
        .into(),
        Step::Recovery(r) => recovery::view(r).map(Message::Recovery),
        Step::Offline(o) => offline::view(o, state.guide()).map(Message::Offline),
        Step::Done => column![
            text("All set").size(24),
            text("Setup complete. You may close this window."),
            secondary("Close", Some(Message::Close)).id(PRIMARY),
        ]
        .spacing(14)
        .into(),
    };
    let header = row![
        text("Set up multi-factor authentication").size(15),
        space::horizontal(),
        text(
            state
                .step
                .number()
                .map(|n| format!("Step {n} of 5"))
                .unwrap_or_default()
        )
        .size(15),
    ];
    let mut content = column![header, body].spacing(18);
    if let Some(notice) = &state.notice {
        let mut body = column![text(notice)].spacing(8);
        if state.retry.is_some() {
            body = body.push(secondary(
                "Try again",
                (!state.in_flight).then_some(Message::Retry),
            ));
        }
        content = content.push(note(body, Outcome::Fail));
    }
    let support = state.links.as_ref().map(|_| Message::OpenSupport);
    let help = Focusable::new(
        button(text("Need help? Open a support ticket").size(14))
            .style(button::text)
            .on_press_maybe(support.clone()),
        support,
    );
    column![
        scrollable(container(content).padding([24, 28])).height(Fill),
        container(help).padding([8, 20]),
    ]
    .into()
}

#[cfg(test)]
mod tests;
