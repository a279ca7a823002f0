//! Step 3 for Duo, "Confirm your phone": a Duo Push (the app asks the agent
//! every 3 s while it waits) or a passcode from Duo Mobile. The warning
//! about pushes nobody asked for is always on screen: approving one is how
//! accounts are taken over.

use iced::widget::{column, pick_list, row, text, text_input};
use iced::{Element, Fill};
use rampart_shared::mfa::{
    DuoDevice, MfaErrorView, PASSCODE_DIGITS, PushState, normalize_passcode,
};

use crate::screen::{Outcome, action, note, secondary};

/// The passcode field's id, so the app can focus it.
pub const PASSCODE_INPUT: &str = "duo-passcode";

#[derive(Debug, Default)]
pub struct State {
    pub devices: Vec<DuoDevice>,
    /// The device the push goes to (Duo's id).
    pub chosen: Option<String>,
    pub push: PushState,
    pub passcode: String,
    pub error: Option<MfaErrorView>,
    /// Seconds before Duo may be asked again (after a throttle).
    pub wait_left: u64,
    /// A push or passcode was sent and not answered yet.
    pub busy: bool,
}

/// A device as the pick list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: String,
    pub name: String,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Choose(Choice),
    SendPush,
    PasscodeChanged(String),
    SubmitPasscode,
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Push { device: Option<String> },
    Passcode(String),
}

impl State {
    pub fn new(devices: Vec<DuoDevice>, push: PushState) -> Self {
        let chosen = devices.iter().find(|d| d.push).map(|d| d.id.clone());
        Self {
            devices,
            chosen,
            push,
            ..Self::default()
        }
    }

    /// The agent's newer word: the push's state and the device list.
    pub fn refresh(&mut self, devices: Vec<DuoDevice>, push: PushState) {
        if self
            .chosen
            .as_ref()
            .is_none_or(|id| !devices.iter().any(|d| d.id == *id && d.push))
        {
            self.chosen = devices.iter().find(|d| d.push).map(|d| d.id.clone());
        }
        self.devices = devices;
        if push != self.push {
            self.error = None;
        }
        self.push = push;
        self.busy = false;
    }

    pub fn waiting(&self) -> bool {
        self.push == PushState::Waiting
    }

    fn can_push(&self) -> bool {
        self.chosen.is_some() && !self.busy && !self.waiting() && self.wait_left == 0
    }

    /// The agent's rule, [`normalize_passcode`]: 6 to 9 digits.
    fn can_submit(&self) -> bool {
        normalize_passcode(&self.passcode).is_some() && !self.busy && self.wait_left == 0
    }

    /// The agent refused (a wrong passcode, Duo unreachable, a throttle).
    pub fn refused(&mut self, error: MfaErrorView) {
        self.busy = false;
        self.wait_left = super::verify::wait_after_refusal(&error);
        self.error = Some(error);
    }

    pub fn failed(&mut self) {
        self.busy = false;
    }
}

pub fn update(state: &mut State, message: Message) -> Option<Event> {
    match message {
        Message::Choose(choice) => {
            state.chosen = Some(choice.id);
            None
        }
        Message::SendPush => state.can_push().then(|| {
            state.busy = true;
            state.error = None;
            Event::Push {
                device: state.chosen.clone(),
            }
        }),
        Message::PasscodeChanged(input) => {
            // The field keeps digits only, and no more than a passcode has.
            state.passcode = input
                .chars()
                .filter(char::is_ascii_digit)
                .take(*PASSCODE_DIGITS.end())
                .collect();
            None
        }
        Message::SubmitPasscode => state.can_submit().then(|| {
            state.busy = true;
            Event::Passcode(std::mem::take(&mut state.passcode))
        }),
        Message::Tick => {
            state.wait_left = state.wait_left.saturating_sub(1);
            None
        }
    }
}

/// What the push's state means to the person holding the phone.
pub fn push_words(push: PushState) -> Option<(&'static str, Outcome)> {
    match push {
        PushState::NotSent | PushState::Unknown => None,
        PushState::Waiting => Some((
            "Approve the request in Duo Mobile on your phone.",
            Outcome::Pending,
        )),
        PushState::Denied => Some((
            "You denied the request. Send another push when you are ready.",
            Outcome::Fail,
        )),
        PushState::Fraud => Some((
            "You reported the request as fraudulent; your IT team is told. If it was you, send another push.",
            Outcome::Fail,
        )),
        PushState::TimedOut => Some(("Nobody answered the push in time.", Outcome::Fail)),
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    let mut content = column![
        text("Confirm your phone").size(24),
        text("Rampart asks Duo to send a request to your phone. Approve it to finish pairing."),
    ]
    .spacing(14);
    let choices: Vec<Choice> = state
        .devices
        .iter()
        .filter(|d| d.push)
        .map(|d| Choice {
            id: d.id.clone(),
            name: d.name.clone(),
        })
        .collect();
    if choices.len() > 1 {
        let selected = choices
            .iter()
            .find(|c| Some(&c.id) == state.chosen.as_ref())
            .cloned();
        content = content.push(
            row![
                text("Send it to"),
                pick_list(choices, selected, Message::Choose).width(280),
            ]
            .spacing(10)
            .align_y(iced::Center),
        );
    }
    let push_label = match (state.waiting(), state.push) {
        (true, _) => "Waiting for your phone…",
        (false, PushState::NotSent | PushState::Unknown) => "Send a Duo Push",
        (false, _) => "Send another push",
    };
    content = content
        .push(action(push_label, state.can_push().then_some(Message::SendPush)).id(super::PRIMARY));
    if let Some((words, outcome)) = push_words(state.push) {
        content = content.push(note(text(words), outcome));
    }
    content = content.push(note(
        column![
            text("Never approve a Duo request you did not start yourself.").size(16),
            text("If one arrives, tap Deny and report it as fraudulent.").size(14),
        ]
        .spacing(4),
        Outcome::Pending,
    ));
    let input = text_input("Passcode", &state.passcode)
        .id(PASSCODE_INPUT)
        .on_input(Message::PasscodeChanged)
        .on_submit_maybe(state.can_submit().then_some(Message::SubmitPasscode))
        .size(20)
        .padding(8)
        .width(180);
    content = content.push(
        column![
            text("No push? Type a passcode from Duo Mobile").size(17),
            row![
                input,
                secondary(
                    "Verify",
                    state.can_submit().then_some(Message::SubmitPasscode)
                ),
            ]
            .spacing(10)
            .align_y(iced::Center),
        ]
        .spacing(6),
    );
    if let Some(error) = &state.error {
        content = content.push(note(
            super::verify::refusal(error, state.wait_left),
            Outcome::Fail,
        ));
    }
    content.width(Fill).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::refusal;
    use rampart_shared::mfa::MfaErrorCode;

    fn phone(id: &str, push: bool) -> DuoDevice {
        DuoDevice {
            id: id.into(),
            name: format!("Phone {id}"),
            push,
        }
    }

    #[test]
    fn a_push_goes_to_the_first_phone_that_takes_one_unless_another_is_chosen() {
        let mut state = State::new(
            vec![phone("A", false), phone("B", true), phone("C", true)],
            PushState::NotSent,
        );
        assert_eq!(state.chosen.as_deref(), Some("B"));
        update(
            &mut state,
            Message::Choose(Choice {
                id: "C".into(),
                name: "Phone C".into(),
            }),
        );
        assert_eq!(
            update(&mut state, Message::SendPush),
            Some(Event::Push {
                device: Some("C".into())
            })
        );
        assert_eq!(
            update(&mut state, Message::SendPush),
            None,
            "one push at a time"
        );
        state.refresh(vec![phone("B", true), phone("C", true)], PushState::Waiting);
        assert!(state.waiting());
        assert_eq!(
            update(&mut state, Message::SendPush),
            None,
            "not while the phone is asked"
        );
        state.refresh(vec![phone("B", true), phone("C", true)], PushState::Fraud);
        assert!(!state.waiting());
        assert!(push_words(state.push).unwrap().0.contains("fraudulent"));
        assert!(update(&mut state, Message::SendPush).is_some());
    }

    #[test]
    fn passcodes_are_digits_and_a_throttle_blocks_them() {
        let mut state = State::new(vec![phone("B", true)], PushState::NotSent);
        update(&mut state, Message::PasscodeChanged("12 34a5".into()));
        assert_eq!(update(&mut state, Message::SubmitPasscode), None);
        update(&mut state, Message::PasscodeChanged("123 456".into()));
        assert_eq!(
            update(&mut state, Message::SubmitPasscode),
            Some(Event::Passcode("123456".into()))
        );
        state.failed(); // the agent answered
        update(&mut state, Message::PasscodeChanged("123 456 789 0".into()));
        assert_eq!(
            update(&mut state, Message::SubmitPasscode),
            Some(Event::Passcode("123456789".into())),
            "a 9-digit bypass code from IT"
        );
        state.refused(MfaErrorView {
            retry_after_secs: Some(30),
            ..refusal(
                MfaErrorCode::Throttled,
                "Too many wrong codes. Try again in 30 s.",
            )
        });
        update(&mut state, Message::PasscodeChanged("654321".into()));
        assert_eq!(update(&mut state, Message::SubmitPasscode), None);
        assert_eq!(update(&mut state, Message::SendPush), None);
    }
}
