//! Step 2, "Pair your phone": the QR code of the otpauth URI and the same
//! secret in groups for typing by hand.

use iced::widget::{column, container, qr_code, row, text};
use iced::{Color, Element, Fill};
use rampart_shared::mfa::PairingInfo;

use crate::screen::{Outcome, action, note};

pub struct State {
    qr: Option<qr_code::Data>,
    pub secret_grouped: String,
}

impl std::fmt::Debug for State {
    // The secret is never printed, not even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("pair::State").finish_non_exhaustive()
    }
}

impl State {
    pub fn new(pairing: &PairingInfo) -> Self {
        Self {
            qr: qr_code::Data::new(&pairing.otpauth_uri).ok(),
            secret_grouped: pairing.secret_grouped.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Next,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Next,
}

pub fn update(_state: &mut State, message: Message) -> Event {
    match message {
        Message::Next => Event::Next,
    }
}

/// A QR code as phones scan it best: black on white whatever the theme
/// (some scanners reject inverted codes), with the four-cell quiet zone.
/// The TOTP pairing and the Duo activation both use it.
pub fn scannable<'a, M: 'a>(data: &'a qr_code::Data) -> Element<'a, M> {
    container(qr_code(data).cell_size(5).style(|_| qr_code::Style {
        cell: Color::BLACK,
        background: Color::WHITE,
    }))
    .padding(20)
    .style(|_| container::Style::default().background(Color::WHITE))
    .into()
}

pub const APPS: &str = "Duo Mobile, Google Authenticator, Microsoft Authenticator or Authy";

pub fn view(state: &State) -> Element<'_, Message> {
    let code: Element<'_, Message> = match &state.qr {
        Some(data) => scannable(data),
        None => note(
            text("The QR code could not be drawn. Enter the key below by hand instead."),
            Outcome::Fail,
        ),
    };
    column![
        text("Pair your phone").size(24),
        text(format!(
            "Open your authenticator app ({APPS}) and scan this code."
        )),
        row![
            code,
            column![
                column![
                    text("Already have Duo Mobile?").size(17),
                    text("Tap Add, then Use QR code."),
                ]
                .spacing(4),
                column![
                    text("Can't scan? Enter this key").size(17),
                    text(&state.secret_grouped)
                        .size(20)
                        .font(iced::Font::MONOSPACE),
                    text("Choose \"time-based\" if your app asks.").size(14),
                ]
                .spacing(4),
            ]
            .spacing(20)
            .width(Fill),
        ]
        .spacing(20),
        text("When your app shows a 6-digit code, click Next."),
        action("Next", Some(Message::Next)).id(super::PRIMARY),
    ]
    .spacing(14)
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_moves_on_and_debug_hides_the_secret() {
        let mut state = State::new(&crate::fixtures::pairing(
            "otpauth://totp/ACME:jane?secret=PLANTEDSECRET",
            "PLAN TEDS",
        ));
        assert!(state.qr.is_some());
        assert_eq!(update(&mut state, Message::Next), Event::Next);
        assert!(!format!("{state:?}").contains("PLAN"));
    }
}
