//! "The Rampart agent is not running": shown instead of a blank window
//! whenever no agent answers.

use iced::widget::{column, text};
use iced::{Element, Fill};

use super::{Outcome, action, note};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    TryAgain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    TryAgain,
}

pub fn update(message: Message) -> Event {
    match message {
        Message::TryAgain => Event::TryAgain,
    }
}

/// `why` is the connection error, shown for support.
pub fn view(why: Option<&str>) -> Element<'_, Message> {
    let body = match why {
        Some(why) => column![
            text("Rampart agent is not running").size(24),
            text(
                "This app needs the Rampart agent to check your device and set up MFA. It will keep trying by itself."
            ),
            // The connection error is for support, not the headline.
            note(text(format!("Details: {why}")).size(13), Outcome::Pending),
            action("Try again", Some(Message::TryAgain)),
        ],
        None => column![
            text("Connecting to the Rampart agent…").size(24),
            text("This takes a moment."),
        ],
    };
    body.spacing(16).padding(24).width(Fill).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_again_asks_the_app_to_reconnect() {
        assert_eq!(update(Message::TryAgain), Event::TryAgain);
    }
}
