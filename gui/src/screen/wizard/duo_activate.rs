//! Step 2 for Duo, "Activate Duo Mobile": the activation QR code (drawn like
//! the TOTP one) and the same activation as a link for the phone; or, for a
//! user Duo already has, a button to Duo's enrollment page. The app asks
//! the agent every 3 s whether the phone is done. When the agent says Duo
//! has not confirmed a finished activation in time (`Cause::
//! DuoActivationPending`), polling stops and the screen says so, with
//! "Try again" (one more check).

use chrono::{DateTime, Local, Utc};
use iced::widget::{column, qr_code, row, text};
use iced::{Element, Fill};
use rampart_shared::mfa::DuoPrompt;

use crate::screen::{Outcome, action, note, secondary};

pub enum State {
    Activate {
        /// What the QR code encodes: kept to notice a new activation.
        code: String,
        /// Boxed: a QR code's modules are large beside the portal variant.
        qr: Option<Box<qr_code::Data>>,
        link: String,
        expires_at: Option<DateTime<Utc>>,
        expired: bool,
        renewing: bool,
        /// The agent's words when Duo has not confirmed the phone's
        /// activation in time: no more polling until "Try again".
        pending: Option<String>,
        /// "Try again" was pressed and the agent has not answered yet.
        checking: bool,
    },
    Portal {
        url: String,
        renewing: bool,
    },
}

impl std::fmt::Debug for State {
    // Whoever holds the activation can attach a phone: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Activate { expired, .. } => f
                .debug_struct("duo_activate::Activate")
                .field("expired", expired)
                .finish_non_exhaustive(),
            Self::Portal { .. } => f.write_str("duo_activate::Portal"),
        }
    }
}

impl State {
    /// `None` for a prompt that is not about activating.
    pub fn from_prompt(prompt: &DuoPrompt) -> Option<Self> {
        match prompt {
            DuoPrompt::Activate {
                activation_code,
                activation_url,
                expires_at,
                expired,
            } => Some(Self::Activate {
                code: activation_code.clone(),
                qr: qr_code::Data::new(activation_code).ok().map(Box::new),
                link: activation_url.clone(),
                expires_at: *expires_at,
                expired: *expired,
                renewing: false,
                pending: None,
                checking: false,
            }),
            DuoPrompt::Portal { url } => Some(Self::Portal {
                url: url.clone(),
                renewing: false,
            }),
            DuoPrompt::Confirm { .. } | DuoPrompt::Bypass { .. } => None,
        }
    }

    /// Takes the agent's newer word on the same screen, keeping the QR code
    /// when the activation did not change (rebuilding it every 3 s would be
    /// waste).
    pub fn refresh(&mut self, prompt: &DuoPrompt) {
        match (&mut *self, prompt) {
            (
                Self::Activate {
                    code,
                    expired,
                    renewing,
                    pending,
                    checking,
                    ..
                },
                DuoPrompt::Activate {
                    activation_code,
                    expired: now_expired,
                    ..
                },
            ) if code == activation_code => {
                *expired = *now_expired;
                *renewing = false;
                // An answer without the error: Duo may still catch up.
                *pending = None;
                *checking = false;
            }
            _ => {
                if let Some(fresh) = Self::from_prompt(prompt) {
                    *self = fresh;
                }
            }
        }
    }

    /// Whether the app should ask the agent again in 3 s.
    pub fn waiting(&self) -> bool {
        match self {
            Self::Activate {
                expired, pending, ..
            } => !expired && pending.is_none(),
            Self::Portal { .. } => true,
        }
    }

    /// The agent says Duo has not confirmed the activation in time
    /// (`message`: its words and next step).
    pub fn pending(&mut self, message: String) {
        if let Self::Activate {
            pending, checking, ..
        } = self
        {
            *pending = Some(message);
            *checking = false;
        }
    }

    pub fn failed(&mut self) {
        match self {
            Self::Activate {
                renewing, checking, ..
            } => {
                *renewing = false;
                *checking = false;
            }
            Self::Portal { renewing, .. } => *renewing = false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    CopyLink,
    OpenPortal,
    Renew,
    TryAgain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Copy(String),
    /// Duo's enrollment page, to open in the browser.
    Open(String),
    Renew,
    /// Ask the agent (and Duo) once more.
    CheckAgain,
}

pub fn update(state: &mut State, message: Message) -> Option<Event> {
    match (state, message) {
        (State::Activate { link, .. }, Message::CopyLink) => Some(Event::Copy(link.clone())),
        (
            State::Activate {
                pending: Some(_),
                checking,
                ..
            },
            Message::TryAgain,
        ) => (!*checking).then(|| {
            *checking = true;
            Event::CheckAgain
        }),
        (State::Portal { url, .. }, Message::OpenPortal) => Some(Event::Open(url.clone())),
        (State::Activate { renewing, .. } | State::Portal { renewing, .. }, Message::Renew) => {
            (!*renewing).then(|| {
                *renewing = true;
                Event::Renew
            })
        }
        _ => None,
    }
}

pub fn view(state: &State) -> Element<'_, Message> {
    match state {
        State::Activate {
            qr,
            link,
            expires_at,
            expired,
            renewing,
            pending: Some(words),
            checking,
            ..
        } if !expired && !renewing => column![
            text("Activate Duo Mobile").size(24),
            note(text(words.as_str()), Outcome::Fail),
            crate::screen::busy(
                action,
                ("Try again", "Checking…"),
                *checking,
                Message::TryAgain
            ),
            secondary("Get a new activation", Some(Message::Renew)),
        ]
        .spacing(14)
        .into(),
        State::Activate {
            qr,
            link,
            expires_at,
            expired,
            renewing,
            ..
        } => activate_view(qr.as_deref(), link, *expires_at, *expired, *renewing),
        State::Portal { renewing, .. } => column![
            text("Add your phone to Duo").size(24),
            text(
                "Duo already knows your account but has no phone for it yet. Open Duo's \
                 enrollment page, choose Mobile phone and follow its steps."
            ),
            action("Open Duo enrollment", Some(Message::OpenPortal)).id(super::PRIMARY),
            note(
                text("Rampart continues as soon as Duo has your phone."),
                Outcome::Pending
            ),
            crate::screen::busy(
                secondary,
                ("The page expired? Get a new link", "Getting a new link…"),
                *renewing,
                Message::Renew
            ),
        ]
        .spacing(14)
        .into(),
    }
}

fn activate_view<'a>(
    qr: Option<&'a qr_code::Data>,
    link: &'a str,
    expires_at: Option<DateTime<Utc>>,
    expired: bool,
    renewing: bool,
) -> Element<'a, Message> {
    let mut content = column![
        text("Activate Duo Mobile").size(24),
        text("1. Install Duo Mobile on your phone from the App Store or Google Play."),
        text("2. Open Duo Mobile, tap + (Add), then scan this QR code."),
    ]
    .spacing(14);
    if expired {
        return content
            .push(note(
                text("This activation has expired. Get a new one to continue."),
                Outcome::Fail,
            ))
            .push(
                crate::screen::busy(
                    action,
                    ("Get a new activation", "Getting a new activation…"),
                    renewing,
                    Message::Renew,
                )
                .id(super::PRIMARY),
            )
            .into();
    }
    let code: Element<'a, Message> = match qr {
        Some(data) => super::pair::scannable(data),
        None => note(
            text("The QR code could not be drawn. Open the link below on your phone instead."),
            Outcome::Fail,
        ),
    };
    let mut side = column![
        text("Can't scan?").size(17),
        text("Open this link on your phone (not on this computer):"),
        text(link).size(14).font(iced::Font::MONOSPACE),
        secondary("Copy link", Some(Message::CopyLink)),
    ]
    .spacing(8)
    .width(Fill);
    if let Some(at) = expires_at {
        side = side.push(
            text(format!(
                "This activation works until {}.",
                at.with_timezone(&Local).format("%a %-d %b, %H:%M")
            ))
            .size(14),
        );
    }
    content = content.push(row![code, side].spacing(20));
    content
        .push(note(
            text(
                "Waiting for Duo Mobile… Rampart moves on by itself once your phone is activated.",
            ),
            Outcome::Pending,
        ))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(code: &str, expired: bool) -> DuoPrompt {
        DuoPrompt::Activate {
            activation_code: code.into(),
            activation_url: "https://127.0.0.1:1/iphone/PLANTED".into(),
            expires_at: None,
            expired,
        }
    }

    #[test]
    fn waits_until_expired_and_renews_once() {
        let mut state = State::from_prompt(&prompt("duo://PLANTED-1", false)).unwrap();
        assert!(state.waiting());
        assert!(!format!("{state:?}").contains("PLANTED"));
        state.refresh(&prompt("duo://PLANTED-1", true));
        assert!(!state.waiting(), "an expired activation is not polled");
        assert_eq!(update(&mut state, Message::Renew), Some(Event::Renew));
        assert_eq!(
            update(&mut state, Message::Renew),
            None,
            "one renewal at a time"
        );
        state.refresh(&prompt("duo://PLANTED-2", false));
        let State::Activate {
            code,
            expired,
            renewing,
            ..
        } = &state
        else {
            panic!("not activating")
        };
        assert_eq!(
            (code.as_str(), *expired, *renewing),
            ("duo://PLANTED-2", false, false)
        );
    }

    #[test]
    fn an_activation_duo_does_not_confirm_stops_polling_until_try_again() {
        let mut state = State::from_prompt(&prompt("duo://PLANTED-1", false)).unwrap();
        assert_eq!(
            update(&mut state, Message::TryAgain),
            None,
            "nothing to retry"
        );
        state.pending("Duo has not confirmed your phone's activation after 2 min.".into());
        assert!(!state.waiting(), "no spinning once the agent says why");
        assert_eq!(
            update(&mut state, Message::TryAgain),
            Some(Event::CheckAgain)
        );
        assert_eq!(
            update(&mut state, Message::TryAgain),
            None,
            "one check at a time"
        );
        // Still pending: said again, and Try again works again.
        state.pending("Duo has not confirmed your phone's activation after 3 min.".into());
        assert_eq!(
            update(&mut state, Message::TryAgain),
            Some(Event::CheckAgain)
        );
        // An answer without the error: polling resumes.
        state.refresh(&prompt("duo://PLANTED-1", false));
        assert!(state.waiting());
    }

    #[test]
    fn the_link_is_copied_never_opened_and_the_portal_is_opened() {
        let mut state = State::from_prompt(&prompt("duo://x", false)).unwrap();
        assert_eq!(
            update(&mut state, Message::CopyLink),
            Some(Event::Copy("https://127.0.0.1:1/iphone/PLANTED".into()))
        );
        assert_eq!(update(&mut state, Message::OpenPortal), None);
        let mut portal = State::from_prompt(&DuoPrompt::Portal {
            url: "https://api-x.duosecurity.com/portal?code=1".into(),
        })
        .unwrap();
        assert!(portal.waiting());
        assert_eq!(
            update(&mut portal, Message::OpenPortal),
            Some(Event::Open(
                "https://api-x.duosecurity.com/portal?code=1".into()
            ))
        );
    }
}
