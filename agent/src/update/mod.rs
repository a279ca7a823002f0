//! Self-update: the pure decision ([`decide`]), the version floor kept in the
//! state directory ([`floor`]), and the shell that fetches, verifies and
//! swaps the binary ([`apply`]).
//!
//! Rules, in the order [`decide`] applies them:
//! - a clock more than an hour off pauses updates: TLS and signature
//!   timestamps cannot be trusted, and the attempt would fail confusingly;
//! - nothing at or below the running version is installed;
//! - nothing below the floor (the highest version ever installed here) is
//!   installed, even when properly signed: self_update installs an old signed
//!   release served under a newer tag, so the floor is ours to keep;
//! - the offer's version is checked again on the extracted binary itself
//!   (`--version`) before anything is replaced.

pub mod apply;
pub mod floor;

use std::fmt;

use rampart_shared::cause::{Cause, Problem};
use rampart_shared::policy::UpdateChannel;
use rampart_shared::status::{ClockState, UpdateSection, UpdateState};
use rampart_shared::version::Version;

/// Past this clock offset updates wait: certificate and signature checks
/// fail or, worse, pass on a wrong notion of "now".
pub const MAX_UPDATE_SKEW_MS: u64 = 60 * 60 * 1000;

/// What the clock check last found (the agent's `ClockSection`, reduced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockFacts {
    pub state: ClockState,
    /// Local minus true time, when measured.
    pub offset_ms: Option<i64>,
}

impl ClockFacts {
    pub const UNKNOWN: Self = Self {
        state: ClockState::Unknown,
        offset_ms: None,
    };
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateDecision {
    /// The feed offers nothing newer.
    UpToDate { current: Version },
    /// Install this version.
    Update { to: Version },
    /// The offer must not be installed.
    Refuse { offered: Version, reason: String },
    /// No attempt now; try again later.
    Paused { reason: String },
}

impl fmt::Display for UpdateDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpToDate { .. } => f.write_str("up to date"),
            Self::Update { to } => write!(f, "updating to {to}"),
            Self::Refuse { reason, .. } => write!(f, "update failed: {reason}"),
            Self::Paused { reason } => write!(f, "updates paused: {reason}"),
        }
    }
}

/// The one rule for what to do with an offered release. `offered` is the
/// newest version the channel's feed lists (`None`: it lists nothing usable).
pub fn decide(
    current: Version,
    floor: Version,
    min_version: Option<Version>,
    offered: Option<Version>,
    channel: UpdateChannel,
    clock: ClockFacts,
) -> UpdateDecision {
    if let Some(paused) = clock_pause(clock) {
        return paused;
    }
    let Some(offered) = offered else {
        return match min_version {
            Some(min) if current < min => UpdateDecision::Paused {
                reason: format!(
                    "Rampart {min} is required but the {} channel offers no release",
                    channel_name(channel)
                ),
            },
            _ => UpdateDecision::UpToDate { current },
        };
    };
    if offered < floor {
        return UpdateDecision::Refuse {
            offered,
            reason: format!(
                "{offered} is older than {floor}, the newest version installed here (a downgrade is never installed)"
            ),
        };
    }
    if offered <= current {
        return UpdateDecision::UpToDate { current };
    }
    UpdateDecision::Update { to: offered }
}

/// `Some(Paused)` when the clock is too far off for TLS and signature
/// checks to mean anything.
pub fn clock_pause(clock: ClockFacts) -> Option<UpdateDecision> {
    let offset = clock.offset_ms?.unsigned_abs();
    (clock.state == ClockState::Skewed && offset > MAX_UPDATE_SKEW_MS).then(|| {
        UpdateDecision::Paused {
            reason: format!("the clock is {} off", rough_duration(offset)),
        }
    })
}

fn channel_name(channel: UpdateChannel) -> &'static str {
    match channel {
        UpdateChannel::Stable => "stable",
        UpdateChannel::Beta => "beta",
    }
}

/// "2 h", "1 h 30 min", "45 min": clock offsets large enough to matter here.
fn rough_duration(ms: u64) -> String {
    let minutes = (ms + 30_000) / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The one status section for updates: the policy's version floor and, once
/// a check has run, its outcome. A build below the floor carries the
/// `VersionTooOld` problem here, so no caller words it again.
/// `updates_itself` is asked only then: it reads this binary's path.
pub fn section(
    current: Version,
    min_version: Option<Version>,
    outcome: Option<&UpdateOutcome>,
    updates_itself: impl FnOnce() -> bool,
) -> UpdateSection {
    let (state, detail) = match outcome {
        Some(outcome) => (
            outcome_state(current, min_version, outcome),
            outcome.to_string(),
        ),
        None => floor_words(current, min_version),
    };
    let problem = match (state, min_version) {
        (UpdateState::UpdateRequired, Some(minimum)) => Some(Problem::new(
            Cause::VersionTooOld {
                current,
                minimum,
                updates_itself: updates_itself(),
            },
            detail.clone(),
        )),
        _ => None,
    };
    UpdateSection {
        state,
        current_version: current,
        min_version,
        detail,
        problem,
    }
}

/// Before any check: whether this build meets the policy's minimum version.
fn floor_words(current: Version, min_version: Option<Version>) -> (UpdateState, String) {
    match min_version {
        Some(min) if current < min => (
            UpdateState::UpdateRequired,
            format!("Rampart {min} or later is required; this is {current}"),
        ),
        Some(min) => (
            UpdateState::NotChecked,
            format!("Rampart {current} meets the required {min}"),
        ),
        None => (
            UpdateState::NotChecked,
            format!("Rampart {current}; policy sets no minimum version"),
        ),
    }
}

fn outcome_state(
    current: Version,
    min_version: Option<Version>,
    outcome: &UpdateOutcome,
) -> UpdateState {
    let below_min = min_version.is_some_and(|min| current < min);
    match outcome {
        UpdateOutcome::Decided(UpdateDecision::UpToDate { .. }) => UpdateState::UpToDate,
        UpdateOutcome::Decided(UpdateDecision::Update { .. }) => UpdateState::Updating,
        UpdateOutcome::Decided(UpdateDecision::Refuse { .. }) | UpdateOutcome::Failed(_) => {
            UpdateState::Failed
        }
        UpdateOutcome::Decided(UpdateDecision::Paused { .. }) if below_min => {
            UpdateState::UpdateRequired
        }
        UpdateOutcome::Decided(UpdateDecision::Paused { .. }) => UpdateState::NotChecked,
        UpdateOutcome::Updated { .. } => UpdateState::UpToDate,
    }
}

/// What a check (and possibly an update) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Decided(UpdateDecision),
    /// The new binary is in place and answered `--version`; it runs from the
    /// next start of the service.
    Updated {
        from: Version,
        to: Version,
    },
    Failed(String),
}

impl fmt::Display for UpdateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decided(d) => d.fmt(f),
            Self::Updated { to, .. } => write!(f, "updated to {to}; restart the agent to run it"),
            Self::Failed(why) => write!(f, "update failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    const SYNCED: ClockFacts = ClockFacts {
        state: ClockState::Synced,
        offset_ms: Some(12),
    };

    fn d(current: &str, floor: &str, min: Option<&str>, offered: Option<&str>) -> UpdateDecision {
        decide(
            v(current),
            v(floor),
            min.map(v),
            offered.map(v),
            UpdateChannel::Stable,
            SYNCED,
        )
    }

    #[test]
    fn newer_offers_are_taken_and_others_are_not() {
        assert_eq!(
            d("1.0.0", "1.0.0", None, Some("1.1.0")),
            UpdateDecision::Update { to: v("1.1.0") }
        );
        assert_eq!(
            d("1.0.0", "1.0.0", None, Some("1.0.0")),
            UpdateDecision::UpToDate {
                current: v("1.0.0")
            }
        );
        assert_eq!(d("1.0.0", "1.0.0", None, None).to_string(), "up to date");
        assert_eq!(
            d("1.0.0", "1.0.0", None, Some("1.1.0")).to_string(),
            "updating to 1.1.0"
        );
    }

    #[test]
    fn the_floor_refuses_a_downgrade_even_when_the_feed_offers_it() {
        // Rolled back by hand to 1.0.0 after 1.2.0 had been installed: 1.1.0
        // is newer than what runs, but older than the floor.
        let decision = d("1.0.0", "1.2.0", None, Some("1.1.0"));
        assert_eq!(
            decision.to_string(),
            "update failed: 1.1.0 is older than 1.2.0, the newest version installed here (a downgrade is never installed)"
        );
        assert_eq!(
            d("1.0.0", "1.2.0", None, Some("1.2.0")),
            UpdateDecision::Update { to: v("1.2.0") }
        );
    }

    #[test]
    fn a_skewed_clock_pauses_updates_in_words() {
        let skewed = |offset_ms| ClockFacts {
            state: ClockState::Skewed,
            offset_ms: Some(offset_ms),
        };
        let run = |clock| {
            decide(
                v("1.0.0"),
                v("1.0.0"),
                None,
                Some(v("2.0.0")),
                UpdateChannel::Stable,
                clock,
            )
        };
        assert_eq!(
            run(skewed(7_200_000)).to_string(),
            "updates paused: the clock is 2 h off"
        );
        assert_eq!(
            run(skewed(-5_400_000)).to_string(),
            "updates paused: the clock is 1 h 30 min off"
        );
        // Skewed for MFA (minutes) is not enough to stop updates.
        assert_eq!(
            run(skewed(600_000)),
            UpdateDecision::Update { to: v("2.0.0") }
        );
        assert_eq!(
            run(ClockFacts::UNKNOWN),
            UpdateDecision::Update { to: v("2.0.0") }
        );
    }

    #[test]
    fn a_required_minimum_with_nothing_offered_is_said_plainly() {
        let decision = decide(
            v("1.0.0"),
            v("1.0.0"),
            Some(v("1.5.0")),
            None,
            UpdateChannel::Beta,
            SYNCED,
        );
        assert_eq!(
            decision.to_string(),
            "updates paused: Rampart 1.5.0 is required but the beta channel offers no release"
        );
        let s = section(
            v("1.0.0"),
            Some(v("1.5.0")),
            Some(&UpdateOutcome::Decided(decision)),
            || false,
        );
        assert_eq!(s.state, UpdateState::UpdateRequired);
    }

    #[test]
    fn sections_carry_the_status_words() {
        let cur = v("1.0.0");
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Decided(UpdateDecision::Update {
                to: v("1.1.0"),
            })),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str()),
            (UpdateState::Updating, "updating to 1.1.0")
        );
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Failed("signature does not match".into())),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str()),
            (
                UpdateState::Failed,
                "update failed: signature does not match"
            )
        );
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Decided(UpdateDecision::UpToDate {
                current: cur,
            })),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str()),
            (UpdateState::UpToDate, "up to date")
        );
    }

    #[test]
    fn version_floor_in_words() {
        let below = section(v("6.0.0"), Some(v("6.0.1")), None, || false);
        assert_eq!(below.state, UpdateState::UpdateRequired);
        assert_eq!(
            below.detail,
            "Rampart 6.0.1 or later is required; this is 6.0.0"
        );
        assert_eq!(
            section(v("6.0.1"), Some(v("6.0.1")), None, || false).state,
            UpdateState::NotChecked
        );
        assert_eq!(
            section(v("6.0.1"), None, None, || false).state,
            UpdateState::NotChecked
        );
    }

    #[test]
    fn a_build_below_the_floor_carries_version_too_old_with_the_section_words() {
        let below = section(v("6.0.0"), Some(v("6.0.1")), None, || true);
        let problem = below
            .problem
            .expect("a build below the floor has a problem");
        assert_eq!(
            problem.cause,
            Cause::VersionTooOld {
                current: v("6.0.0"),
                minimum: v("6.0.1"),
                updates_itself: true,
            }
        );
        assert_eq!(problem.details, below.detail);
        let mut asked = false;
        let met = section(v("6.0.1"), Some(v("6.0.1")), None, || {
            asked = true;
            true
        });
        assert_eq!(met.problem, None);
        assert!(!asked, "updates_itself is asked only below the floor");
    }
}
