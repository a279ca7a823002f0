//! What one round of queries found, and the verdict drawn from it. Pure: no
//! sockets, no clock reads (`checked_at` is passed in).

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::status::{ClockSection, ClockState, describe_offset, human_duration};

/// Answers that count: the median of this many (the best by round trip)
/// outvotes one server that is simply wrong.
const BEST_N: usize = 3;

/// Every address asked in one round, in the order the servers were given.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockReport {
    pub results: Vec<AddrResult>,
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
    pub stratum: u8,
    pub leap_indicator: u8,
}

/// Why an address gave no usable answer. The `Display` text completes a
/// sentence that starts with the server: "time.apple.com timed out after 2 s".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("timed out after {}", human_duration(*after_ms))]
    Timeout { after_ms: u64 },
    #[error("could not be resolved: {0}")]
    Dns(String),
    /// The server asked to be left alone (RFC 5905 §7.4); `code` is e.g. `RATE`.
    #[error("sent kiss-of-death {0} (asks us to stop querying it)")]
    KissOfDeath(String),
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

/// The combined figure from the usable answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub offset_ms: f64,
    /// Half the round trip of the best answer: the true offset lies within
    /// `offset_ms ± uncertainty_ms` if the path is symmetric at worst.
    pub uncertainty_ms: f64,
    /// The answer the offset was taken from (`name (addr)` or `addr`).
    pub server: String,
    /// How many answers were usable.
    pub usable: usize,
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

/// The median offset of the (up to) three usable answers with the shortest
/// round trip: a short round trip bounds the error of an answer, the median
/// outvotes one wrong server. `None` without any usable answer.
pub fn estimate(results: &[AddrResult]) -> Option<Estimate> {
    let mut usable: Vec<(&AddrResult, &Sample)> = results
        .iter()
        .filter_map(|r| r.usable().map(|s| (r, s)))
        .collect();
    let count = usable.len();
    usable.sort_by(|a, b| a.1.rtt_ms.total_cmp(&b.1.rtt_ms));
    let (_, best) = *usable.first()?;
    let uncertainty_ms = best.rtt_ms / 2.0;

    let mut chosen: Vec<(&AddrResult, &Sample)> = usable.into_iter().take(BEST_N).collect();
    chosen.sort_by(|a, b| a.1.offset_ms.total_cmp(&b.1.offset_ms));
    let mid = chosen.len() / 2;
    let (offset_ms, server) = if chosen.len() % 2 == 1 {
        (chosen[mid].1.offset_ms, chosen[mid].0.label())
    } else {
        // Two answers: their mean, credited to the one with the shorter trip.
        let (a, b) = (chosen[mid - 1], chosen[mid]);
        let closer = if a.1.rtt_ms <= b.1.rtt_ms { a } else { b };
        ((a.1.offset_ms + b.1.offset_ms) / 2.0, closer.0.label())
    };
    Some(Estimate {
        offset_ms,
        uncertainty_ms,
        server,
        usable: count,
    })
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
    let estimate = estimate(&report.results);
    let state = state_of(estimate.as_ref(), max_skew);
    let max_skew_ms = u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX);
    let offset_ms = estimate.as_ref().map(|e| e.offset_ms.round() as i64);
    let detail = match (&estimate, offset_ms) {
        (Some(_), Some(offset)) if state == ClockState::Skewed => format!(
            "{}, more than the {} allowed",
            describe_offset(offset),
            human_duration(max_skew_ms)
        ),
        (Some(_), Some(offset)) => describe_offset(offset),
        _ => unknown_detail(&report.results),
    };
    ClockSection {
        state,
        offset_ms,
        uncertainty_ms: estimate.as_ref().map(|e| e.uncertainty_ms.ceil() as u64),
        max_skew_ms,
        server: estimate.map(|e| e.server),
        checked_at: Some(checked_at),
        detail,
    }
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
    use super::*;

    fn ok(server: &str, offset_ms: f64, rtt_ms: f64) -> AddrResult {
        AddrResult {
            server: server.into(),
            addr: server.parse().ok(),
            outcome: Ok(Sample {
                offset_ms,
                rtt_ms,
                stratum: 2,
                leap_indicator: 0,
            }),
        }
    }

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
    fn median_of_the_three_fastest() {
        let results = [
            ok("10.0.0.1:123", 900_000.0, 40.0), // slowest: left out
            ok("10.0.0.2:123", 10.0, 4.0),
            ok("10.0.0.3:123", -250_000.0, 2.0), // one wrong server among the best
            ok("10.0.0.4:123", 12.0, 6.0),
        ];
        let e = estimate(&results).unwrap();
        assert_eq!(e.offset_ms, 10.0);
        assert_eq!(e.server, "10.0.0.2:123");
        assert_eq!(e.uncertainty_ms, 1.0, "half the best round trip");
        assert_eq!(e.usable, 4);
    }

    #[test]
    fn two_answers_give_their_mean() {
        let e = estimate(&[
            ok("10.0.0.1:123", 100.0, 8.0),
            ok("10.0.0.2:123", 200.0, 2.0),
        ])
        .unwrap();
        assert_eq!(e.offset_ms, 150.0);
        assert_eq!(e.server, "10.0.0.2:123");
        assert_eq!(e.uncertainty_ms, 1.0);
    }

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
        let e = estimate(&results).unwrap();
        assert_eq!((e.offset_ms, e.usable), (300_000.0, 1));
        assert_eq!(state_of(Some(&e), SKEW), ClockState::Skewed);
        assert_eq!(estimate(&results[..5]), None);
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
            let e = estimate(&[ok("10.0.0.1:123", offset_ms, 1.0)]);
            assert_eq!(state_of(e.as_ref(), SKEW), want, "{offset_ms}");
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
             127.0.0.2 sent kiss-of-death RATE (asks us to stop querying it)"
        );
        let none = to_section(&ClockReport { results: vec![] }, SKEW, at());
        assert_eq!(
            (none.state, none.detail.as_str()),
            (ClockState::Unknown, "no time servers are configured")
        );
    }
}
