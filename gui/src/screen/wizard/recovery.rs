//! Step 4, "Save your recovery codes": shown once. Copy or save them, then
//! confirm before moving on.

use std::path::PathBuf;

use iced::widget::{column, row, text};
use iced::{Element, Fill, Font};

use crate::screen::{Outcome, action, note, secondary};
use crate::widget::checkbox;

#[derive(Default)]
pub struct State {
    /// `None` when the codes were shown in an earlier session: the agent
    /// never shows them twice, so new ones must be made to see any.
    pub codes: Option<Vec<String>>,
    pub saved: Option<Result<PathBuf, String>>,
    pub copied: bool,
    pub confirmed: bool,
    pub busy: bool,
}

impl std::fmt::Debug for State {
    // Recovery codes are secrets: never in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("recovery::State")
            .field("codes", &self.codes.as_ref().map(Vec::len))
            .field("confirmed", &self.confirmed)
            .finish_non_exhaustive()
    }
}

impl State {
    /// The step as the agent opens it: with the codes it just made, or
    /// `None` when they were shown in an earlier session.
    pub fn new(codes: Option<Vec<String>>) -> Self {
        Self {
            codes,
            ..Self::default()
        }
    }

    /// The agent answered again on this step: regenerated codes replace
    /// the ones on screen (the old ones no longer work, so neither does
    /// their copy or file).
    pub fn answered(&mut self, codes: Option<Vec<String>>) {
        self.busy = false;
        if codes.is_some() {
            self.codes = codes;
            self.saved = None;
            self.copied = false;
        }
    }

    /// The request failed: the buttons work again.
    pub fn failed(&mut self) {
        self.busy = false;
    }

    /// Where "Save to file…" wrote the codes, or why it could not.
    pub fn file_written(&mut self, result: Result<PathBuf, String>) {
        self.saved = Some(result);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Copy,
    Save,
    Confirm(bool),
    Continue,
    Regenerate,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Event {
    Copy(String),
    Save(Vec<String>),
    Continue,
    Regenerate,
}

/// The codes as text, one a line, for the clipboard and the file.
pub fn as_text(codes: &[String]) -> String {
    let mut out = String::from(
        "Rampart MFA recovery codes. Each works once. Keep them somewhere safe, away from this computer.\n\n",
    );
    for code in codes {
        out.push_str(code);
        out.push('\n');
    }
    out
}

pub fn update(state: &mut State, message: Message) -> Option<Event> {
    match message {
        Message::Copy => state.codes.as_deref().map(|c| {
            state.copied = true;
            Event::Copy(as_text(c))
        }),
        Message::Save => state.codes.clone().map(Event::Save),
        Message::Confirm(checked) => {
            state.confirmed = checked;
            None
        }
        Message::Continue => (state.confirmed && !state.busy).then(|| {
            state.busy = true;
            Event::Continue
        }),
        Message::Regenerate => (!state.busy).then(|| {
            state.busy = true;
            Event::Regenerate
        }),
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    let mut content = column![text("Save your recovery codes").size(24)].spacing(14);
    match &state.codes {
        Some(codes) => {
            content = content.push(text(
                "If you lose your phone, each of these codes lets you sign in once. They are shown only now.",
            ));
            let mut grid = column![].spacing(4);
            for pair in codes.chunks(2) {
                let mut line = row![].spacing(32);
                for code in pair {
                    line = line.push(text(code).font(Font::MONOSPACE).size(18));
                }
                grid = grid.push(line);
            }
            content = content.push(note(grid, Outcome::Pending));
            content = content.push(
                row![
                    secondary(
                        if state.copied { "Copied" } else { "Copy" },
                        Some(Message::Copy)
                    ),
                    secondary("Save to file…", Some(Message::Save)),
                ]
                .spacing(12),
            );
            match &state.saved {
                Some(Ok(path)) => {
                    content = content.push(text(format!(
                        "Saved to {} (only you can read it).",
                        path.display()
                    )))
                }
                Some(Err(e)) => {
                    content = content.push(note(
                        text(format!("Could not save the codes: {e}")),
                        Outcome::Fail,
                    ))
                }
                None => {}
            }
        }
        None => {
            content = content.push(text(
                "Your recovery codes were shown when you verified your phone and are not shown again. If you did not save them, make new ones: the old ones stop working.",
            ));
            content = content.push(secondary(
                "Show new recovery codes",
                (!state.busy).then_some(Message::Regenerate),
            ));
        }
    }
    content
        .push(
            checkbox(
                "I have saved my recovery codes",
                state.confirmed,
                Message::Confirm,
            )
            .id_if(!state.confirmed, super::PRIMARY),
        )
        .push(
            action(
                "Continue",
                (state.confirmed && !state.busy).then_some(Message::Continue),
            )
            .id_if(state.confirmed, super::PRIMARY),
        )
        .width(Fill)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes() -> Vec<String> {
        vec!["AAAA-BBBB".into(), "CCCC-DDDD".into()]
    }

    #[test]
    fn continue_needs_the_checkbox() {
        let mut state = State {
            codes: Some(codes()),
            ..State::default()
        };
        assert!(update(&mut state, Message::Continue).is_none());
        update(&mut state, Message::Confirm(true));
        assert!(update(&mut state, Message::Continue) == Some(Event::Continue));
        assert!(state.busy);
        update(&mut state, Message::Confirm(false));
        state.busy = false;
        assert!(update(&mut state, Message::Continue).is_none());
    }

    #[test]
    fn copy_and_save_carry_every_code() {
        let mut state = State {
            codes: Some(codes()),
            ..State::default()
        };
        match update(&mut state, Message::Copy) {
            Some(Event::Copy(text)) => {
                assert!(text.contains("AAAA-BBBB\nCCCC-DDDD\n"));
            }
            _ => panic!("copy should hand the codes to the clipboard"),
        }
        assert!(state.copied);
        assert!(update(&mut state, Message::Save) == Some(Event::Save(codes())));
    }

    #[test]
    fn without_codes_nothing_is_copied_and_new_ones_can_be_asked_for() {
        let mut state = State::default();
        assert!(update(&mut state, Message::Copy).is_none());
        assert!(update(&mut state, Message::Save).is_none());
        assert!(update(&mut state, Message::Regenerate) == Some(Event::Regenerate));
    }
}
