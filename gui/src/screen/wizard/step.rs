//! The wizard's steps, and their order for each provider: "Step n of m"
//! comes from one list a provider, as iced's `tour` numbers its screens.

use rampart_shared::policy::ProviderKind;

use super::{before, duo_activate, duo_confirm, offline, pair, recovery, verify};

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

/// A step the user works through, without its state: what the lists of
/// steps are made of (as iced's `tour` lists its screens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Before,
    Pair,
    Verify,
    DuoActivate,
    DuoConfirm,
    Recovery,
    Offline,
}

/// Each provider's steps in order: "Step n of m" is a step's place in its
/// provider's list, so adding or removing a step renumbers the rest.
fn stages(provider: ProviderKind) -> &'static [Stage] {
    match provider {
        ProviderKind::Totp => &[
            Stage::Before,
            Stage::Pair,
            Stage::Verify,
            Stage::Recovery,
            Stage::Offline,
        ],
        ProviderKind::Duo => &[
            Stage::Before,
            Stage::DuoActivate,
            Stage::DuoConfirm,
            Stage::Recovery,
            Stage::Offline,
        ],
    }
}

impl Step {
    /// `None` for the screens around the steps (resuming, done, Duo's
    /// bypass and denial): they are not counted.
    pub(super) fn stage(&self) -> Option<Stage> {
        match self {
            Self::Resuming | Self::Done | Self::Bypass(_) | Self::Denied(_) => None,
            Self::Before(_) => Some(Stage::Before),
            Self::Pair(_) => Some(Stage::Pair),
            Self::Verify(_) => Some(Stage::Verify),
            Self::DuoActivate(_) => Some(Stage::DuoActivate),
            Self::DuoConfirm(_) => Some(Stage::DuoConfirm),
            Self::Recovery(_) => Some(Stage::Recovery),
            Self::Offline(_) => Some(Stage::Offline),
        }
    }
}

/// "Step n of m": the step's place in `provider`'s list; a step only the
/// other provider has (the policy changed under way) is counted in that
/// one's list.
pub(super) fn place(step: &Step, provider: ProviderKind) -> Option<(usize, usize)> {
    let stage = step.stage()?;
    [provider, ProviderKind::Totp, ProviderKind::Duo]
        .into_iter()
        .map(stages)
        .find_map(|list| {
            let at = list.iter().position(|s| *s == stage)?;
            Some((at + 1, list.len()))
        })
}
