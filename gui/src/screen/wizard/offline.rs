//! Step 5, "Set up offline access": the policy's guide opens in the browser
//! by itself (only an https link ever does); the user confirms reading it.

use iced::widget::{column, row, text};
use iced::{Element, Fill};

use crate::screen::{Outcome, action, note, secondary};
use crate::widget::checkbox;

#[derive(Debug, Default)]
pub struct State {
    /// The guide was handed to the browser at least once.
    pub opened: bool,
    pub link_error: Option<String>,
    pub read: bool,
    pub busy: bool,
}

impl State {
    /// The request failed: "Finish" works again.
    pub fn failed(&mut self) {
        self.busy = false;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Entering the step, or "Open the guide again".
    OpenGuide,
    Read(bool),
    Finish,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Open(String),
    Finish { guide_url: String },
}

/// `guide` is the policy's `links.offline_guide_url`, once known.
pub fn update(state: &mut State, message: Message, guide: Option<&str>) -> Option<Event> {
    match message {
        Message::OpenGuide => {
            let url = guide?;
            match super::https_only("The guide's address", url) {
                Ok(()) => {
                    state.opened = true;
                    state.link_error = None;
                    Some(Event::Open(url.to_owned()))
                }
                Err(words) => {
                    state.link_error = Some(format!("{words} Please open a support ticket."));
                    None
                }
            }
        }
        Message::Read(checked) => {
            state.read = checked;
            None
        }
        Message::Finish => {
            let url = guide?;
            (state.read && !state.busy).then(|| {
                state.busy = true;
                Event::Finish {
                    guide_url: url.to_owned(),
                }
            })
        }
    }
}

/// Opens the guide unasked, once: on arriving at the step, or when its
/// address arrives later. Not again after it opened or was refused.
pub fn open_by_itself(state: &mut State, guide: Option<&str>) -> Option<Event> {
    if state.opened || state.link_error.is_some() {
        return None;
    }
    update(state, Message::OpenGuide, guide)
}

pub fn view<'a>(state: &'a State, guide: Option<&'a str>) -> Element<'a, Message> {
    let mut content = column![
        text("Set up offline access").size(24),
        text("So that you can sign in without internet, follow the guide that opened in your browser. Then come back here."),
    ]
    .spacing(14);
    match (guide, &state.link_error) {
        (_, Some(error)) => content = content.push(note(text(error), Outcome::Fail)),
        (None, None) => content = content.push(text("Finding the guide…")),
        (Some(url), None) => {
            content = content.push(text(format!("The guide: {url}")).size(14));
        }
    }
    let can_finish = state.read && guide.is_some() && !state.busy;
    content
        .push(
            row![secondary(
                "Open the guide again",
                guide.map(|_| Message::OpenGuide)
            )]
            .spacing(12),
        )
        .push(
            checkbox(
                "I have read and understand the setup instructions",
                state.read,
                Message::Read,
            )
            .id_if(!state.read, super::PRIMARY),
        )
        .push(
            action("Finish", can_finish.then_some(Message::Finish))
                .id_if(state.read, super::PRIMARY),
        )
        .width(Fill)
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "https://it.example.com/offline";

    #[test]
    fn https_guide_opens() {
        let mut state = State::default();
        assert_eq!(
            update(&mut state, Message::OpenGuide, Some(GUIDE)),
            Some(Event::Open(GUIDE.into()))
        );
        assert!(state.opened);
    }

    #[test]
    fn non_https_guide_is_refused_and_nothing_opens() {
        for bad in [
            "http://it.example.com/offline",
            "file:///etc/passwd",
            "javascript:alert(1)",
        ] {
            let mut state = State::default();
            assert_eq!(update(&mut state, Message::OpenGuide, Some(bad)), None);
            assert!(!state.opened);
            let error = state.link_error.unwrap_or_default();
            assert!(error.contains("must start with https://"), "{error}");
        }
    }

    #[test]
    fn finish_needs_the_checkbox_and_sends_the_guide_it_opened() {
        let mut state = State::default();
        assert_eq!(update(&mut state, Message::Finish, Some(GUIDE)), None);
        update(&mut state, Message::Read(true), Some(GUIDE));
        assert_eq!(update(&mut state, Message::Finish, None), None);
        assert_eq!(
            update(&mut state, Message::Finish, Some(GUIDE)),
            Some(Event::Finish {
                guide_url: GUIDE.into()
            })
        );
    }
}
