//! What one round of queries found, and the verdict drawn from it. Pure: no
//! sockets, no clock reads (`checked_at` is passed in).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::cause::{Cause, Problem};
use rampart_shared::status::{
    ClockSection, ClockSource, ClockState, describe_offset, human_duration,
};

use super::select::{Estimate, NoEstimate, estimate};

/// How a clock detail says the servers disagree, and that one asked Rampart
/// to back off: `doctor` picks its advice by them.
pub const DISAGREE: &str = "time servers disagree";
pub const BACK_OFF: &str = "asked Rampart to back off";

/// Every address asked in one round, in the order the servers were given.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockReport {
    pub results: Vec<AddrResult>,
}

impl ClockReport {
    /// Adds the servers left out of this round (`KodBackoff::skipped`), so
    /// that the verdict names them instead of looking at an empty round;
    /// everything in the order of `configured`.
    pub fn with_skipped(mut self, skipped: Vec<AddrResult>, configured: &[String]) -> Self {
        self.results.extend(skipped);
        let position = |r: &AddrResult| configured.iter().position(|s| *s == r.server);
        self.results.sort_by_key(position);
        self
    }
}

/// One address of one configured server (a name may resolve to several).
#[derive(Debug, Clone, PartialEq)]
pub struct AddrResult {
    /// The server as configured (`time.apple.com`, `[::1]:10123`).
    pub server: String,
    /// `None` when the name could not be resolved or parsed.
    pub addr: Option<SocketAddr>,
    pub outcome: Result<Sample, QueryError>,
}

/// A server's answer, already validated by sntpc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Local clock minus true time: positive means the local clock is fast.
    pub offset_ms: f64,
    pub rtt_ms: f64,
    /// How far the server itself may be from true time: half its root
    /// delay plus its root dispersion (RFC 5905 §11.2), as it reported them.
    pub root_distance_ms: f64,
    pub stratum: u8,
    pub leap_indicator: u8,
}

/// Why an address gave no usable answer. The `Display` text completes a
/// sentence that starts with the server: "time.apple.com timed out after 2 s".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("timed out after {}", human_duration(*after_ms))]
    Timeout { after_ms: u64 },
    /// Not waited for: a majority of the servers had already answered and
    /// agreed when the round ended, `after_ms` after it started.
    #[error("had not answered after {}, when the others already agreed", human_duration(*after_ms))]
    Late { after_ms: u64 },
    #[error("could not be resolved: {0}")]
    Dns(String),
    /// The server asked to be left alone (RFC 5905 §7.4); `code` is e.g. `RATE`.
    #[error("asked Rampart to back off (kiss-of-death {0})")]
    KissOfDeath(String),
    /// Not asked this round: it sent kiss-of-death `code` earlier, and
    /// [`KodBackoff`](super::KodBackoff) leaves it alone for a while.
    #[error(
        "asked Rampart to back off (kiss-of-death {code}); not asked again for {}",
        human_duration(*retry_in_ms)
    )]
    BackingOff { code: String, retry_in_ms: u64 },
    /// LI=3 or stratum 0/16: the server does not know the time itself.
    #[error("is not synchronized itself")]
    Unsynchronized,
    #[error("sent an invalid answer: {0}")]
    BadPacket(String),
    /// ICMP port unreachable: nothing listens there. Seen at once on a
    /// connected socket, so it need not wait for the timeout.
    #[error("refused (no time server listens there)")]
    Refused,
    #[error("network error: {0}")]
    Io(String),
}

impl AddrResult {
    /// `127.0.0.1:123`, or `time.apple.com (17.253.4.125:123)` for a name.
    pub fn label(&self) -> String {
        match self.addr {
            Some(addr) if self.server.parse::<SocketAddr>() == Ok(addr) => addr.to_string(),
            Some(addr) if is_literal(&self.server) => addr.to_string(),
            Some(addr) => format!("{} ({addr})", self.server),
            None => self.server.clone(),
        }
    }

    /// The sample, if it may be used for the clock figure. sntpc already
    /// rejects these, but the verdict must not depend on that.
    pub fn usable(&self) -> Option<&Sample> {
        self.outcome
            .as_ref()
            .ok()
            .filter(|s| s.leap_indicator != 3 && (1..16).contains(&s.stratum))
            .filter(|s| s.offset_ms.is_finite() && s.rtt_ms.is_finite() && s.rtt_ms >= 0.0)
    }
}

fn is_literal(server: &str) -> bool {
    matches!(
        super::target::parse_target(server),
        Ok(super::target::Target::Addr(_))
    )
}

/// Synced when `|offset| <= max_skew`; never synced without a usable answer.
pub fn state_of(estimate: Option<&Estimate>, max_skew: Duration) -> ClockState {
    match estimate {
        None => ClockState::Unknown,
        Some(e) if e.offset_ms.abs() <= max_skew.as_secs_f64() * 1000.0 => ClockState::Synced,
        Some(_) => ClockState::Skewed,
    }
}

/// The status section for this round, with the verdict in plain words.
pub fn to_section(
    report: &ClockReport,
    max_skew: Duration,
    checked_at: DateTime<Utc>,
) -> ClockSection {
    let verdict = estimate(&report.results, max_skew);
    let estimate = verdict.as_ref().ok();
    let state = state_of(estimate, max_skew);
    let max_skew_ms = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
    let offset_ms = estimate.map(|e| e.offset_ms.round() as i64);
    let detail = match (&verdict, offset_ms) {
        (Ok(_), Some(offset)) if state == ClockState::Skewed => format!(
            "{}, more than the {} allowed",
            describe_offset(offset),
            human_duration(max_skew_ms)
        ),
        (Ok(_), Some(offset)) => describe_offset(offset),
        (Err(NoEstimate::Disagree(answers)), _) => disagree_detail(answers, max_skew_ms),
        _ => unknown_detail(&report.results),
    };
    // Servers that disagree are IT's to fix and say so in the detail; no
    // cause a person can act on fits them better.
    let problem = match (&verdict, offset_ms) {
        (Ok(_), Some(offset_ms)) if state == ClockState::Skewed => Some(Problem::new(
            Cause::ClockSkew {
                offset_ms,
                allowed_ms: max_skew_ms,
            },
            "",
        )),
        (Err(NoEstimate::NoAnswer), _) if !report.results.is_empty() => {
            let servers = u32::try_from(report.results.len()).unwrap_or(u32::MAX);
            // No name resolved at all: the computer is offline, not a
            // network that blocks UDP 123 (that one resolves and stays silent).
            let unresolved = report
                .results
                .iter()
                .all(|r| matches!(r.outcome, Err(QueryError::Dns(_))));
            let cause = if unresolved {
                Cause::Offline { endpoints: servers }
            } else {
                Cause::NtpBlocked { servers }
            };
            Some(Problem::new(cause, detail.clone()))
        }
        _ => None,
    };
    ClockSection {
        state,
        offset_ms,
        uncertainty_ms: estimate.map(|e| e.uncertainty_ms.ceil() as u64),
        max_skew_ms,
        server: estimate.map(|e| e.server.clone()),
        checked_at: Some(checked_at),
        detail,
        source: estimate.map(|_| ClockSource::Ntp),
        problem,
    }
}

/// "time servers disagree by more than the 30 s allowed (a: clock is 5 min
/// slow; b: clock is exact), …".
fn disagree_detail(answers: &[(String, f64)], max_skew_ms: u64) -> String {
    let each: Vec<String> = answers
        .iter()
        .map(|(label, offset)| format!("{label}: {}", describe_offset(offset.round() as i64)))
        .collect();
    format!(
        "{DISAGREE} by more than the {} allowed ({}), so the clock cannot be \
         checked: IT should fix or remove the wrong server in the policy",
        human_duration(max_skew_ms),
        each.join("; ")
    )
}

/// "no time server gave a usable answer: time.apple.com timed out after 2 s;
/// 127.0.0.1:9 refused (...)".
fn unknown_detail(results: &[AddrResult]) -> String {
    if results.is_empty() {
        return "no time servers are configured".to_owned();
    }
    let reasons: Vec<String> = results
        .iter()
        .map(|r| match &r.outcome {
            Err(e) => format!("{} {e}", r.label()),
            // Only reachable if sntpc let through what `usable` rejects.
            Ok(s) => format!(
                "{} is not synchronized itself (stratum {}, leap indicator {})",
                r.label(),
                s.stratum,
                s.leap_indicator
            ),
        })
        .collect();
    format!(
        "no time server gave a usable answer: {}",
        reasons.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::select::tests::ok;
    use super::*;

    fn err(server: &str, e: QueryError) -> AddrResult {
        AddrResult {
            server: server.into(),
            addr: server.parse().ok(),
            outcome: Err(e),
        }
    }

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_000_000, 0).unwrap()
    }

    const SKEW: Duration = Duration::from_secs(30);

    #[test]
    fn unusable_answers_are_discarded() {
        let mut li3 = ok("10.0.0.5:123", 1.0, 0.1);
        if let Ok(s) = &mut li3.outcome {
            s.leap_indicator = 3;
        }
        let mut stratum16 = ok("10.0.0.6:123", 1.0, 0.1);
        if let Ok(s) = &mut stratum16.outcome {
            s.stratum = 16;
        }
        let mut stratum0 = ok("10.0.0.7:123", 1.0, 0.1);
        if let Ok(s) = &mut stratum0.outcome {
            s.stratum = 0;
        }
        let results = vec![
            err("10.0.0.1:123", QueryError::KissOfDeath("RATE".into())),
            err("10.0.0.2:123", QueryError::Timeout { after_ms: 2000 }),
            li3,
            stratum16,
            stratum0,
            ok("10.0.0.9:123", 300_000.0, 5.0),
        ];
        let e = estimate(&results, SKEW).unwrap();
        assert_eq!((e.offset_ms, e.usable), (300_000.0, 1));
        assert_eq!(state_of(Some(&e), SKEW), ClockState::Skewed);
        assert_eq!(estimate(&results[..5], SKEW), Err(NoEstimate::NoAnswer));
    }

    /// Issue 15: two servers minutes apart were averaged into -150 s, a
    /// time neither of them gave.
    #[test]
    fn servers_that_disagree_are_reported_not_averaged() {
        let two = [
            ok("10.0.0.1:123", -300_000.0, 2.0),
            ok("10.0.0.2:123", 0.0, 3.0),
        ];
        assert_eq!(
            estimate(&two, SKEW),
            Err(NoEstimate::Disagree(vec![
                ("10.0.0.1:123".into(), -300_000.0),
                ("10.0.0.2:123".into(), 0.0)
            ]))
        );
        let s = to_section(
            &ClockReport {
                results: two.to_vec(),
            },
            SKEW,
            at(),
        );
        assert_eq!(
            s.state,
            ClockState::Unknown,
            "never synced, never skewed by a guess"
        );
        assert_eq!((s.offset_ms, s.server.as_deref()), (None, None));
        assert_eq!(
            s.detail,
            "time servers disagree by more than the 30 s allowed \
             (10.0.0.1:123: clock is 5 min slow; 10.0.0.2:123: clock is exact), \
             so the clock cannot be checked: IT should fix or remove the wrong server in the policy"
        );

        // Three that all disagree: no majority either.
        let three = [
            ok("10.0.0.1:123", -300_000.0, 2.0),
            ok("10.0.0.2:123", 0.0, 3.0),
            ok("10.0.0.3:123", 300_000.0, 4.0),
        ];
        assert!(matches!(estimate(&three, SKEW), Err(NoEstimate::Disagree(d)) if d.len() == 3));

        // Within the skew they agree, at its very edge too.
        let close = [
            ok("10.0.0.1:123", -15_000.0, 2.0),
            ok("10.0.0.2:123", 15_000.0, 3.0),
        ];
        // Their intervals do not meet: the estimate lies between them.
        assert!(estimate(&close, SKEW).unwrap().offset_ms.abs() < 1.0);
        let apart = [
            ok("10.0.0.1:123", -15_000.0, 2.0),
            ok("10.0.0.2:123", 15_000.5, 3.0),
        ];
        assert!(matches!(
            estimate(&apart, SKEW),
            Err(NoEstimate::Disagree(_))
        ));
        // One server alone cannot disagree with anyone.
        assert!(estimate(&two[..1], SKEW).is_ok());
    }

    #[test]
    fn the_words_doctor_looks_for_are_the_ones_written() {
        let kiss = QueryError::KissOfDeath("RATE".into()).to_string();
        let later = QueryError::BackingOff {
            code: "RATE".into(),
            retry_in_ms: 1,
        }
        .to_string();
        assert!(kiss.starts_with(BACK_OFF) && later.starts_with(BACK_OFF));
        assert!(disagree_detail(&[], 30_000).starts_with(DISAGREE));
    }

    #[test]
    fn a_round_with_every_server_backing_off_says_so() {
        let configured = ["10.0.0.1:123".to_owned(), "10.0.0.2:123".to_owned()];
        let backing_off = |server: &str| AddrResult {
            server: server.into(),
            addr: None,
            outcome: Err(QueryError::BackingOff {
                code: "RATE".into(),
                retry_in_ms: 120_000,
            }),
        };
        // Only the first server was asked; the second was left alone.
        let report = ClockReport {
            results: vec![err("10.0.0.1:123", QueryError::Timeout { after_ms: 2000 })],
        }
        .with_skipped(vec![backing_off("10.0.0.2:123")], &configured);
        assert_eq!(
            to_section(&report, SKEW, at()).detail,
            "no time server gave a usable answer: 10.0.0.1:123 timed out after 2 s; \
             10.0.0.2:123 asked Rampart to back off (kiss-of-death RATE); not asked again for 2 min"
        );
        // Nobody asked at all: still not "no time servers are configured".
        let none_asked = ClockReport { results: vec![] }.with_skipped(
            vec![backing_off("10.0.0.2:123"), backing_off("10.0.0.1:123")],
            &configured,
        );
        let s = to_section(&none_asked, SKEW, at());
        assert_eq!(s.state, ClockState::Unknown);
        assert_eq!(
            s.detail,
            "no time server gave a usable answer: \
             10.0.0.1:123 asked Rampart to back off (kiss-of-death RATE); not asked again for 2 min; \
             10.0.0.2:123 asked Rampart to back off (kiss-of-death RATE); not asked again for 2 min"
        );
    }

    #[test]
    fn states_at_the_boundary() {
        for (offset_ms, want) in [
            (0.0, ClockState::Synced),
            (30_000.0, ClockState::Synced),
            (-30_000.0, ClockState::Synced),
            (30_000.5, ClockState::Skewed),
            (-90_000.0, ClockState::Skewed),
        ] {
            let e = estimate(&[ok("10.0.0.1:123", offset_ms, 1.0)], SKEW);
            assert_eq!(state_of(e.as_ref().ok(), SKEW), want, "{offset_ms}");
        }
        assert_eq!(state_of(None, SKEW), ClockState::Unknown);
    }

    #[test]
    fn sections_in_plain_words() {
        let fast = ClockReport {
            results: vec![ok("127.0.0.1:123", 252_000.4, 0.3)],
        };
        let s = to_section(&fast, SKEW, at());
        assert_eq!(s.state, ClockState::Skewed);
        assert_eq!(s.offset_ms, Some(252_000));
        assert_eq!(s.uncertainty_ms, Some(1), "rounded up, never understated");
        assert_eq!(s.max_skew_ms, 30_000);
        assert_eq!(s.server.as_deref(), Some("127.0.0.1:123"));
        assert_eq!(s.checked_at, Some(at()));
        assert_eq!(
            s.detail,
            "clock is 4 min 12 s fast, more than the 30 s allowed"
        );

        let slow = ClockReport {
            results: vec![ok("127.0.0.1:123", -12.0, 0.3)],
        };
        let s = to_section(&slow, SKEW, at());
        assert_eq!(
            (s.state, s.detail.as_str()),
            (ClockState::Synced, "clock is 12 ms slow")
        );
    }

    #[test]
    fn unknown_says_which_servers_and_why() {
        let named = AddrResult {
            server: "time.example".into(),
            addr: Some("192.0.2.1:123".parse().unwrap()),
            outcome: Err(QueryError::Timeout { after_ms: 2000 }),
        };
        let report = ClockReport {
            results: vec![
                named,
                err("127.0.0.1:9", QueryError::Refused),
                err("nowhere.invalid", QueryError::Dns("name not known".into())),
                err("127.0.0.2", QueryError::KissOfDeath("RATE".into())),
            ],
        };
        let s = to_section(&report, SKEW, at());
        assert_eq!(s.state, ClockState::Unknown);
        assert_eq!(
            (s.offset_ms, s.uncertainty_ms, s.server),
            (None, None, None)
        );
        assert_eq!(
            s.detail,
            "no time server gave a usable answer: time.example (192.0.2.1:123) timed out after 2 s; \
             127.0.0.1:9 refused (no time server listens there); \
             nowhere.invalid could not be resolved: name not known; \
             127.0.0.2 asked Rampart to back off (kiss-of-death RATE)"
        );
        // Some resolved and stayed silent: time checks are blocked.
        assert_eq!(
            s.problem.map(|p| p.cause),
            Some(Cause::NtpBlocked { servers: 4 })
        );
        // None resolved: the computer is offline, and says so.
        let offline = to_section(
            &ClockReport {
                results: vec![
                    err("a.example", QueryError::Dns("no network".into())),
                    err("b.example", QueryError::Dns("no network".into())),
                ],
            },
            SKEW,
            at(),
        );
        assert_eq!(
            offline.problem.map(|p| p.cause),
            Some(Cause::Offline { endpoints: 2 })
        );
        let none = to_section(&ClockReport { results: vec![] }, SKEW, at());
        assert_eq!(
            (none.state, none.detail.as_str()),
            (ClockState::Unknown, "no time servers are configured")
        );
        assert_eq!(none.problem, None);
    }
}
