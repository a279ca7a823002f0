//! Step 3, "Enter the code": the 6-digit code from the phone. The agent's
//! error is shown as it wrote it; a throttle shows a live countdown.

use iced::widget::{Column, column, row, text, text_input};
use iced::{Element, Fill};
use rampart_shared::mfa::{MfaErrorCode, MfaErrorView};
use rampart_shared::status::human_duration;

use crate::screen::{Outcome, action, note, secondary};

/// The code field's id, so the app can focus it.
pub const CODE_INPUT: &str = "verify-code";

#[derive(Debug, Default)]
pub struct State {
    pub code: String,
    pub error: Option<MfaErrorView>,
    /// Seconds until the agent checks another code (after a throttle).
    pub wait_left: u64,
    pub submitting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    CodeChanged(String),
    Submit,
    TryAgain,
    Back,
    /// One second passed (only subscribed while counting down).
    Tick,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Submit(String),
    /// The field should take the keyboard focus.
    Focus,
    Back,
}

impl State {
    pub fn can_submit(&self) -> bool {
        self.code.len() == 6 && self.wait_left == 0 && !self.submitting
    }

    /// The agent refused the code.
    pub fn refused(&mut self, error: MfaErrorView) {
        self.submitting = false;
        self.wait_left = wait_after_refusal(&error);
        self.error = Some(error);
    }

    /// The request never got an answer.
    pub fn failed(&mut self) {
        self.submitting = false;
    }
}

/// Seconds before another code is checked: the throttle's wait, else none.
/// The TOTP code and the Duo passcode share it.
pub fn wait_after_refusal(error: &MfaErrorView) -> u64 {
    match error.code {
        MfaErrorCode::Throttled => error.retry_after_secs.unwrap_or(30),
        _ => 0,
    }
}

/// The agent's words on a refused code, with the countdown while one runs.
pub fn refusal<'a, M: 'a>(error: &'a MfaErrorView, wait_left: u64) -> Column<'a, M> {
    let mut body = column![text(&error.message)].spacing(6);
    if wait_left > 0 {
        body = body.push(text(format!(
            "You can try again in {}.",
            human_duration(wait_left * 1000)
        )));
    }
    body
}

pub fn update(state: &mut State, message: Message) -> Option<Event> {
    match message {
        Message::CodeChanged(input) => {
            // Digits only; spaces are what people copy from their app.
            state.code = input.chars().filter(char::is_ascii_digit).take(6).collect();
            None
        }
        Message::Submit => state.can_submit().then(|| {
            state.submitting = true;
            Event::Submit(state.code.clone())
        }),
        Message::TryAgain => {
            state.code.clear();
            if state.wait_left == 0 {
                state.error = None;
            }
            Some(Event::Focus)
        }
        Message::Back => Some(Event::Back),
        Message::Tick => {
            state.wait_left = state.wait_left.saturating_sub(1);
            None
        }
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    let input = text_input("6-digit code", &state.code)
        .id(CODE_INPUT)
        .on_input(Message::CodeChanged)
        .on_submit_maybe(state.can_submit().then_some(Message::Submit))
        .size(28)
        .padding(10)
        .width(220);
    let mut content = column![
        text("Enter the code").size(24),
        text("Type the 6-digit code your authenticator app shows for Rampart, then press Enter."),
        input,
    ]
    .spacing(14);
    if let Some(error) = &state.error {
        let mut body = refusal(error, state.wait_left);
        if error.code == MfaErrorCode::PhoneClockSkew {
            body = body.push(
                text("On your phone, turn on automatic date and time, then use a new code.")
                    .size(14),
            );
        }
        content = content.push(note(body, Outcome::Fail));
    }
    let mut buttons = row![action(
        if state.submitting {
            "Checking…"
        } else {
            "Verify"
        },
        state.can_submit().then_some(Message::Submit)
    )]
    .spacing(12);
    if state.error.is_some() {
        buttons = buttons.push(secondary(
            "Try again",
            (state.wait_left == 0).then_some(Message::TryAgain),
        ));
    }
    buttons = buttons.push(secondary("Show the QR code again", Some(Message::Back)));
    content.push(buttons).width(Fill).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: MfaErrorCode, message: &str, retry: Option<u64>) -> MfaErrorView {
        MfaErrorView {
            retry_after_secs: retry,
            ..crate::fixtures::refusal(code, message)
        }
    }

    #[test]
    fn only_six_digits_submit() {
        let mut state = State::default();
        assert_eq!(update(&mut state, Message::Submit), None);
        update(&mut state, Message::CodeChanged("12 34a5".into()));
        assert_eq!(state.code, "12345");
        assert_eq!(update(&mut state, Message::Submit), None);
        update(&mut state, Message::CodeChanged("123 4567".into()));
        assert_eq!(state.code, "123456");
        assert_eq!(
            update(&mut state, Message::Submit),
            Some(Event::Submit("123456".into()))
        );
        assert!(state.submitting);
        // A second Enter while the first is in flight sends nothing.
        assert_eq!(update(&mut state, Message::Submit), None);
    }

    #[test]
    fn wrong_code_is_shown_as_the_agent_wrote_it_and_try_again_clears_it() {
        let mut state = State::default();
        update(&mut state, Message::CodeChanged("000000".into()));
        update(&mut state, Message::Submit);
        state.refused(error(
            MfaErrorCode::WrongCode,
            "That code is not right. Check you are using the Rampart entry in your app.",
            None,
        ));
        assert!(!state.submitting);
        assert_eq!(state.wait_left, 0);
        assert!(
            state
                .error
                .as_ref()
                .is_some_and(|e| e.message.starts_with("That code is not right"))
        );
        assert_eq!(update(&mut state, Message::TryAgain), Some(Event::Focus));
        assert_eq!(state.error, None);
        assert_eq!(state.code, "");
    }

    #[test]
    fn throttle_counts_down_and_blocks_submitting_until_zero() {
        let mut state = State::default();
        state.refused(error(
            MfaErrorCode::Throttled,
            "Too many wrong codes. Try again in 3 s.",
            Some(3),
        ));
        update(&mut state, Message::CodeChanged("123456".into()));
        assert!(!state.can_submit());
        assert_eq!(update(&mut state, Message::Submit), None);
        update(&mut state, Message::Tick);
        update(&mut state, Message::Tick);
        assert_eq!(state.wait_left, 1);
        assert!(!state.can_submit());
        update(&mut state, Message::Tick);
        update(&mut state, Message::Tick);
        assert_eq!(state.wait_left, 0);
        assert_eq!(
            update(&mut state, Message::Submit),
            Some(Event::Submit("123456".into()))
        );
    }
}
