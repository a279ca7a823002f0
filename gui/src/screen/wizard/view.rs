//! The wizard's window: a header with "Step n of m", the current step's
//! view (or the screens around the steps), the notice with "Try again",
//! and the support link at the bottom.

use iced::widget::{button, column, container, row, scrollable, space, text};
use iced::{Element, Fill};

use super::{
    Message, PRIMARY, State, Step, before, duo_activate, duo_confirm, offline, pair, recovery,
    verify,
};
use crate::screen::{Outcome, action, note, secondary};
use crate::widget::Focusable;

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
                .place()
                .map(|(n, of)| format!("Step {n} of {of}"))
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
