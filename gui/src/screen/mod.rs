//! One module per screen. Each owns its `State` and `Message`, an `update`
//! that changes the state and hands an event or action upward (never doing
//! I/O itself), and a `view`. The app turns what they hand up into tasks.

pub mod starting;
pub mod status;
pub mod unreachable;
pub mod wizard;

use iced::widget::{button, container};
use iced::{Color, Element, Theme};

use crate::widget::{self, Focusable};

/// The agent's details are lower-case phrases made to follow a label
/// ("clock is 4 min 12 s fast"); on their own line they start a sentence.
pub fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Green for a passing check, red for a failing one, grey while unknown,
/// amber for a check that could not be made but does not stop the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Pending,
    Warn,
}

impl Outcome {
    pub fn color(self) -> Color {
        match self {
            Self::Pass => Color::from_rgb8(0x1b, 0x7f, 0x3b),
            Self::Fail => Color::from_rgb8(0xb4, 0x23, 0x18),
            Self::Pending => Color::from_rgb8(0x6b, 0x6b, 0x6b),
            Self::Warn => Color::from_rgb8(0x8a, 0x5a, 0x00),
        }
    }

    pub fn mark(self) -> &'static str {
        match self {
            Self::Pass => "Passed",
            Self::Fail => "Needs attention",
            Self::Pending => "Waiting",
            Self::Warn => "Not measured",
        }
    }
}

/// A button that is enabled only when `message` is `Some`. Every screen's
/// buttons come from here and `secondary`, so all of them take the keyboard
/// focus.
pub fn action<'a, M: Clone + 'a>(label: &'a str, message: Option<M>) -> Focusable<'a, M> {
    widget::focusable::button(label, message, button::primary)
}

/// A quieter button for secondary actions.
pub fn secondary<'a, M: Clone + 'a>(label: &'a str, message: Option<M>) -> Focusable<'a, M> {
    widget::focusable::button(label, message, button::secondary)
}

/// A button that says it is working while `busy` ("Checking…") and takes
/// no press then, so a second click cannot send the same request twice.
pub fn busy<'a, M: Clone + 'a>(
    button: fn(&'a str, Option<M>) -> Focusable<'a, M>,
    (idle, working): (&'a str, &'a str),
    busy: bool,
    message: M,
) -> Focusable<'a, M> {
    button(
        if busy { working } else { idle },
        (!busy).then_some(message),
    )
}

/// "Details" on demand: the raw text behind failures, hidden until asked
/// for, and copyable whole. `toggle` shows or hides it; `copy` puts it on
/// the clipboard.
pub fn details<'a, M: Clone + 'a>(raw: String, shown: bool, toggle: M, copy: M) -> Element<'a, M> {
    let buttons = iced::widget::row![
        secondary(if shown { "Hide details" } else { "Details" }, Some(toggle)),
        secondary("Copy details", Some(copy)),
    ]
    .spacing(12);
    let mut block = iced::widget::column![buttons].spacing(8);
    if shown {
        block = block.push(iced::widget::text(raw).size(13).font(iced::Font::MONOSPACE));
    }
    block.into()
}

/// A boxed note, for errors and things to do.
pub fn note<'a, M: 'a>(content: impl Into<Element<'a, M>>, outcome: Outcome) -> Element<'a, M> {
    let color = outcome.color();
    container(content)
        .padding(12)
        .width(iced::Fill)
        .style(move |_theme: &Theme| container::Style {
            border: iced::Border {
                color,
                width: 1.0,
                radius: 6.0.into(),
            },
            background: Some(Color { a: 0.06, ..color }.into()),
            ..container::Style::default()
        })
        .into()
}
