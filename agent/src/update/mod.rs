//! Self-update: the pure decision ([`decide`]) and status section
//! ([`section`]); the feed read as release engineers write it
//! ([`release`]); the bounded network edge ([`fetch`]); the signed archive
//! ([`archive`]); the version floor and the versions marked bad
//! ([`floor`]); crash-safe swaps with a journal and a lock ([`swap`]); the
//! health trial after a swap ([`health`]); and the shell that runs them
//! ([`apply`]). How IT publishes releases: docs/updates.md.
//!
//! Rules, in the order [`decide`] applies them:
//! - a clock more than an hour off pauses updates: TLS and signature
//!   timestamps cannot be trusted, and the attempt would fail confusingly;
//! - nothing at or below the running version is installed; a feed whose
//!   newest release is older than this one (IT withdrew a bad release) is a
//!   warning, not a failure;
//! - nothing below the floor (the highest version ever installed here) is
//!   installed, even when properly signed, and never a version this device
//!   marked bad;
//! - the offer's version is checked again on the extracted binary itself
//!   (`--version`) before anything is replaced, and the service's new binary
//!   must reach "serving" or the previous one comes back.

pub mod apply;
pub mod archive;
pub mod fetch;
pub mod floor;
pub mod health;
pub mod release;
pub mod swap;

use std::fmt;

use rampart_shared::cause::{Cause, Problem};
use rampart_shared::policy::UpdateChannel;
use rampart_shared::status::{ClockState, UpdateSection, UpdateState};
use rampart_shared::version::Version;
use semver::Version as Semver;

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
    UpToDate { current: Semver },
    /// Install this version (when only checking: it is available).
    Update { to: Semver },
    /// The channel's newest release is older than this one or than the
    /// floor: IT withdrew a release, or this device was rolled back by hand.
    OnlyOlder { offered: Semver, installed: Semver },
    /// No attempt now; try again later.
    Paused { reason: String, clock: bool },
}

impl fmt::Display for UpdateDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpToDate { .. } => f.write_str("up to date"),
            Self::Update { to } => write!(f, "update available: {to}"),
            Self::OnlyOlder { offered, installed } => write!(
                f,
                "IT offers only an older release: {offered} is older than {installed}, the newest version installed here (a downgrade is never installed)"
            ),
            Self::Paused { reason, .. } => write!(f, "updates paused: {reason}"),
        }
    }
}

/// The one rule for what to do with an offered release. `offered` is the
/// newest version the channel's feed lists that this device has not marked
/// bad (`None`: it lists nothing usable).
pub fn decide(
    current: &Semver,
    floor: &Semver,
    min_version: Option<Version>,
    offered: Option<&Semver>,
    channel: UpdateChannel,
    clock: ClockFacts,
) -> UpdateDecision {
    if let Some(paused) = clock_pause(clock) {
        return paused;
    }
    let Some(offered) = offered else {
        return match min_version {
            Some(min) if *current < release::semver_of(min) => UpdateDecision::Paused {
                reason: format!(
                    "Rampart {min} is required but the {} channel offers no release",
                    channel_name(channel)
                ),
                clock: false,
            },
            _ => UpdateDecision::UpToDate {
                current: current.clone(),
            },
        };
    };
    if offered < floor || offered < current {
        return UpdateDecision::OnlyOlder {
            offered: offered.clone(),
            installed: floor.max(current).clone(),
        };
    }
    if offered == current {
        return UpdateDecision::UpToDate {
            current: current.clone(),
        };
    }
    UpdateDecision::Update {
        to: offered.clone(),
    }
}

/// `Some(Paused)` when the clock is too far off for TLS and signature
/// checks to mean anything.
pub fn clock_pause(clock: ClockFacts) -> Option<UpdateDecision> {
    let offset = clock.offset_ms?.unsigned_abs();
    (clock.state == ClockState::Skewed && offset > MAX_UPDATE_SKEW_MS).then(|| {
        UpdateDecision::Paused {
            reason: format!("the clock is {} off", rough_duration(offset)),
            clock: true,
        }
    })
}

fn channel_name(channel: UpdateChannel) -> &'static str {
    match channel {
        UpdateChannel::Stable => "stable",
        UpdateChannel::Beta => "beta",
    }
}

/// Whether a finished clock check starts an update check now: the first
/// one (updates wait for it), or, after a pause for the clock, the first
/// that finds the clock back in range (not 6 h later).
pub fn check_after_clock(last: Option<&UpdateOutcome>, clock: ClockFacts) -> bool {
    match last {
        None => true,
        Some(outcome) => outcome.paused_for_clock() && clock_pause(clock).is_none(),
    }
}

/// When the next check runs after `failures` failed checks in a row
/// ([`UpdateOutcome::retry_soon`]): from 30 s, doubling, up to the 6 h of a
/// good one (`retry::next_check_in`, as the clock and network checks).
pub fn next_check_in(failures: u32) -> std::time::Duration {
    crate::retry::next_check_in(failures, crate::service::UPDATE_INTERVAL)
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
/// a check has run, its outcome, with the outcome's problem in the shared
/// vocabulary. A build below the floor carries `VersionTooOld`.
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
        _ => outcome.and_then(UpdateOutcome::problem),
    };
    UpdateSection {
        state,
        current_version: current,
        min_version,
        detail,
        problem,
        offered_version: outcome
            .and_then(UpdateOutcome::offered)
            .map(|v| v.to_string()),
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
        UpdateOutcome::Failed { .. } | UpdateOutcome::RolledBack { .. } => UpdateState::Failed,
        _ if below_min => UpdateState::UpdateRequired,
        UpdateOutcome::Decided(UpdateDecision::UpToDate { .. }, _)
        | UpdateOutcome::Decided(UpdateDecision::OnlyOlder { .. }, _) => UpdateState::UpToDate,
        UpdateOutcome::Decided(UpdateDecision::Update { .. }, _) => UpdateState::Available,
        UpdateOutcome::Decided(UpdateDecision::Paused { .. }, _)
        | UpdateOutcome::CheckFailed { .. } => UpdateState::NotChecked,
        UpdateOutcome::Updated { .. } => UpdateState::Updating,
    }
}

/// Release tags the feed lists whose version cannot be read: named in the
/// status detail and logged once, never a failure.
pub type Unreadable = Vec<String>;

/// What a check (and possibly an update) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Decided(UpdateDecision, Unreadable),
    /// The new binary is in place and answered `--version`; it runs from the
    /// next start of the service (which first has to reach "serving").
    Updated {
        from: Semver,
        to: Semver,
    },
    /// The feed could not be read: a warning; the check is retried soon.
    CheckFailed {
        words: String,
        details: String,
    },
    /// The release could not be installed; what runs is unchanged.
    Failed {
        to: Option<Semver>,
        words: String,
        details: String,
    },
    /// The new binary was installed but did not work; the previous one is
    /// back and `to` is marked bad on this device.
    RolledBack {
        to: Semver,
        why: String,
    },
}

impl UpdateOutcome {
    /// A failure before any release was chosen.
    pub fn failed(words: impl Into<String>, details: impl Into<String>) -> Self {
        Self::Failed {
            to: None,
            words: words.into(),
            details: details.into(),
        }
    }

    /// The version the feed offered, when one was.
    pub fn offered(&self) -> Option<&Semver> {
        match self {
            Self::Decided(UpdateDecision::Update { to }, _)
            | Self::Updated { to, .. }
            | Self::RolledBack { to, .. } => Some(to),
            Self::Decided(UpdateDecision::OnlyOlder { offered, .. }, _) => Some(offered),
            Self::Failed { to, .. } => to.as_ref(),
            _ => None,
        }
    }

    /// The outcome in the shared vocabulary, when it is a problem.
    pub fn problem(&self) -> Option<Problem> {
        match self {
            Self::CheckFailed { words, details } => Some(Problem::new(
                Cause::UpdateCheckFailed {
                    reason: words.clone(),
                },
                details.clone(),
            )),
            Self::Decided(UpdateDecision::OnlyOlder { offered, installed }, _) => {
                Some(Problem::new(
                    Cause::OlderReleaseOffered {
                        offered: offered.to_string(),
                        installed: installed.to_string(),
                    },
                    String::new(),
                ))
            }
            Self::Failed { to, words, details } => Some(Problem::new(
                Cause::UpdateFailed {
                    version: to.as_ref().map(ToString::to_string).unwrap_or_default(),
                    reason: words.clone(),
                },
                details.clone(),
            )),
            Self::RolledBack { to, why } => Some(Problem::new(
                Cause::UpdateRolledBack {
                    version: to.to_string(),
                    reason: why.clone(),
                },
                String::new(),
            )),
            _ => None,
        }
    }

    /// Whether the next check should come soon rather than in hours: the
    /// feed could not be read, or an install failed for a reason that may
    /// pass (never a rollback: that version is not offered again).
    pub fn retry_soon(&self) -> bool {
        matches!(self, Self::CheckFailed { .. } | Self::Failed { .. })
    }

    /// Paused for the clock: checked again as soon as the clock is right.
    pub fn paused_for_clock(&self) -> bool {
        matches!(
            self,
            Self::Decided(UpdateDecision::Paused { clock: true, .. }, _)
        )
    }
}

impl fmt::Display for UpdateOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decided(d, unreadable) => {
                d.fmt(f)?;
                if !unreadable.is_empty() {
                    let tags: Vec<String> = unreadable.iter().map(|t| format!("\"{t}\"")).collect();
                    write!(
                        f,
                        " (ignored: the feed lists {} that {} not a version: {})",
                        if tags.len() == 1 {
                            "a release"
                        } else {
                            "releases"
                        },
                        if tags.len() == 1 { "is" } else { "are" },
                        tags.join(", ")
                    )?;
                }
                Ok(())
            }
            Self::Updated { to, .. } => write!(f, "updated to {to}; restart the agent to run it"),
            Self::CheckFailed { words, .. } => write!(f, "could not check for updates: {words}"),
            Self::Failed {
                to: Some(to),
                words,
                ..
            } => {
                write!(f, "update to {to} failed: {words}")
            }
            Self::Failed {
                to: None, words, ..
            } => write!(f, "update failed: {words}"),
            Self::RolledBack { to, why } => write!(
                f,
                "Rampart {to} did not start properly ({why}); the previous version is back and {to} will not be installed again here"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Semver {
        Semver::parse(s).unwrap()
    }

    fn plain(s: &str) -> Version {
        s.parse().unwrap()
    }

    const SYNCED: ClockFacts = ClockFacts {
        state: ClockState::Synced,
        offset_ms: Some(12),
    };

    fn d(current: &str, floor: &str, min: Option<&str>, offered: Option<&str>) -> UpdateDecision {
        decide(
            &v(current),
            &v(floor),
            min.map(plain),
            offered.map(v).as_ref(),
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
            "update available: 1.1.0"
        );
        // A beta of the running version's successor, and the release after it.
        assert_eq!(
            d("0.2.0", "0.2.0", None, Some("0.3.0-beta.1")),
            UpdateDecision::Update {
                to: v("0.3.0-beta.1")
            }
        );
        assert_eq!(
            d("0.3.0-beta.1", "0.3.0-beta.1", None, Some("0.3.0")),
            UpdateDecision::Update { to: v("0.3.0") }
        );
    }

    #[test]
    fn an_older_offer_is_a_warning_in_words_never_a_downgrade() {
        // IT withdrew 1.2.0: the feed lists 1.1.0 again.
        let withdrawn = d("1.2.0", "1.2.0", None, Some("1.1.0"));
        assert_eq!(
            withdrawn,
            UpdateDecision::OnlyOlder {
                offered: v("1.1.0"),
                installed: v("1.2.0")
            }
        );
        // Rolled back by hand to 1.0.0 after 1.2.0 had been installed: 1.1.0
        // is newer than what runs, but older than the floor.
        assert_eq!(
            d("1.0.0", "1.2.0", None, Some("1.1.0")).to_string(),
            "IT offers only an older release: 1.1.0 is older than 1.2.0, the newest version installed here (a downgrade is never installed)"
        );
        assert_eq!(
            d("1.0.0", "1.2.0", None, Some("1.2.0")),
            UpdateDecision::Update { to: v("1.2.0") }
        );
        let outcome = UpdateOutcome::Decided(withdrawn, Vec::new());
        let s = section(plain("1.2.0"), None, Some(&outcome), || false);
        assert_eq!(s.state, UpdateState::UpToDate);
        assert_eq!(s.offered_version.as_deref(), Some("1.1.0"));
        assert_eq!(s.problem.unwrap().cause.name(), "older_release_offered");
    }

    #[test]
    fn a_skewed_clock_pauses_updates_in_words() {
        let skewed = |offset_ms| ClockFacts {
            state: ClockState::Skewed,
            offset_ms: Some(offset_ms),
        };
        let run = |clock| {
            decide(
                &v("1.0.0"),
                &v("1.0.0"),
                None,
                Some(&v("2.0.0")),
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
        assert!(UpdateOutcome::Decided(run(skewed(7_200_000)), Vec::new()).paused_for_clock());
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

    /// Finding 6: a pause for the clock waited 6 h after the clock was
    /// fixed, and a failed check waited 6 h too.
    #[test]
    fn a_clock_pause_ends_with_the_clock_and_failures_retry_in_minutes() {
        let skewed = ClockFacts {
            state: ClockState::Skewed,
            offset_ms: Some(3 * 3_600_000),
        };
        let paused = UpdateOutcome::Decided(clock_pause(skewed).unwrap(), Vec::new());
        assert!(
            check_after_clock(None, skewed),
            "the first check waits for the clock only"
        );
        assert!(!check_after_clock(Some(&paused), skewed), "still off");
        assert!(
            check_after_clock(Some(&paused), SYNCED),
            "back in range: now"
        );
        let checked = UpdateOutcome::Decided(
            UpdateDecision::UpToDate {
                current: v("1.0.0"),
            },
            Vec::new(),
        );
        assert!(
            !check_after_clock(Some(&checked), SYNCED),
            "no extra checks otherwise"
        );

        let failed = UpdateOutcome::CheckFailed {
            words: "the release server r.example.com could not be reached".into(),
            details: String::new(),
        };
        assert!(failed.retry_soon());
        let delays: Vec<u64> = (1..=4).map(|n| next_check_in(n).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240]);
        assert_eq!(next_check_in(0).as_secs(), 6 * 3600);
        let rolled_back = UpdateOutcome::RolledBack {
            to: v("2.0.0"),
            why: String::new(),
        };
        assert!(!rolled_back.retry_soon(), "a rollback is not retried soon");
    }

    #[test]
    fn a_required_minimum_with_nothing_offered_is_said_plainly() {
        let decision = decide(
            &v("1.0.0"),
            &v("1.0.0"),
            Some(plain("1.5.0")),
            None,
            UpdateChannel::Beta,
            SYNCED,
        );
        assert_eq!(
            decision.to_string(),
            "updates paused: Rampart 1.5.0 is required but the beta channel offers no release"
        );
        let s = section(
            plain("1.0.0"),
            Some(plain("1.5.0")),
            Some(&UpdateOutcome::Decided(decision, Vec::new())),
            || false,
        );
        assert_eq!(s.state, UpdateState::UpdateRequired);
    }

    #[test]
    fn sections_carry_the_status_words_and_the_severity() {
        let cur = plain("1.0.0");
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Decided(
                UpdateDecision::Update { to: v("1.1.0") },
                Vec::new(),
            )),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str(), s.offered_version.as_deref()),
            (
                UpdateState::Available,
                "update available: 1.1.0",
                Some("1.1.0")
            )
        );
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::CheckFailed {
                words: "the release server 127.0.0.1:9 could not be reached".into(),
                details: "tcp connect error: Connection refused (os error 111)".into(),
            }),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str()),
            (
                UpdateState::NotChecked,
                "could not check for updates: the release server 127.0.0.1:9 could not be reached"
            )
        );
        let problem = s.problem.unwrap();
        assert_eq!(problem.cause.name(), "update_check_failed");
        assert!(problem.details.contains("os error 111"));
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Failed {
                to: Some(v("1.1.0")),
                words: "the release is not signed by a key this device trusts".into(),
                details: "no matching key/signature pair found".into(),
            }),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str()),
            (
                UpdateState::Failed,
                "update to 1.1.0 failed: the release is not signed by a key this device trusts"
            )
        );
        let s = section(
            cur,
            None,
            Some(&UpdateOutcome::Decided(
                UpdateDecision::UpToDate {
                    current: v("1.0.0"),
                },
                vec!["nightly".into()],
            )),
            || false,
        );
        assert_eq!(
            (s.state, s.detail.as_str(), s.problem),
            (
                UpdateState::UpToDate,
                "up to date (ignored: the feed lists a release that is not a version: \"nightly\")",
                None
            )
        );
    }

    /// The overall verdict the device shows, by outcome: a feed outage or
    /// a withdrawn release warns, a failed install or a rollback is an
    /// error, and no library error name reaches the words.
    #[test]
    fn the_overall_verdict_by_outcome() {
        let verdict = |outcome: UpdateOutcome| {
            let mut status = crate::service::Core::fresh_status(
                rampart_shared::status::AgentMode::Dev,
                chrono::Utc::now(),
            );
            status.mfa.state = rampart_shared::status::MfaState::NotRequired;
            status.update = section(plain("1.0.0"), None, Some(&outcome), || false);
            rampart_shared::status::assess(&status)
        };
        let offline = verdict(UpdateOutcome::CheckFailed {
            words: "the release server r.example.com could not be reached".into(),
            details: "error sending request".into(),
        });
        assert_eq!(
            offline.overall,
            rampart_shared::status::Overall::ActionNeeded
        );
        assert!(offline.reasons[0].1.starts_with("Rampart could not check for updates: the release server r.example.com could not be reached."));
        let older = verdict(UpdateOutcome::Decided(
            UpdateDecision::OnlyOlder {
                offered: v("0.9.0"),
                installed: v("1.0.0"),
            },
            Vec::new(),
        ));
        assert_eq!(older.overall, rampart_shared::status::Overall::ActionNeeded);
        let failed = verdict(UpdateOutcome::Failed {
            to: Some(v("1.1.0")),
            words: "the release is not signed by a key this device trusts".into(),
            details: "SignatureError: no matching key/signature pair found".into(),
        });
        assert_eq!(failed.overall, rampart_shared::status::Overall::Error);
        assert!(
            !failed.reasons[0].1.contains("SignatureError"),
            "{:?}",
            failed.reasons
        );
        let rolled_back = verdict(UpdateOutcome::RolledBack {
            to: v("1.1.0"),
            why: "it exited with code 1 before it was serving".into(),
        });
        assert_eq!(rolled_back.overall, rampart_shared::status::Overall::Error);
        assert!(
            rolled_back.reasons[0]
                .1
                .contains("the previous version was put back")
        );
    }

    #[test]
    fn version_floor_in_words() {
        let below = section(plain("6.0.0"), Some(plain("6.0.1")), None, || false);
        assert_eq!(below.state, UpdateState::UpdateRequired);
        assert_eq!(
            below.detail,
            "Rampart 6.0.1 or later is required; this is 6.0.0"
        );
        assert_eq!(
            section(plain("6.0.1"), Some(plain("6.0.1")), None, || false).state,
            UpdateState::NotChecked
        );
        assert_eq!(
            section(plain("6.0.1"), None, None, || false).state,
            UpdateState::NotChecked
        );
    }

    #[test]
    fn a_build_below_the_floor_carries_version_too_old_with_the_section_words() {
        let below = section(plain("6.0.0"), Some(plain("6.0.1")), None, || true);
        let problem = below
            .problem
            .expect("a build below the floor has a problem");
        assert_eq!(
            problem.cause,
            Cause::VersionTooOld {
                current: plain("6.0.0"),
                minimum: plain("6.0.1"),
                updates_itself: true,
            }
        );
        assert_eq!(problem.details, below.detail);
        let mut asked = false;
        let met = section(plain("6.0.1"), Some(plain("6.0.1")), None, || {
            asked = true;
            true
        });
        assert_eq!(met.problem, None);
        assert!(!asked, "updates_itself is asked only below the floor");
    }
}
