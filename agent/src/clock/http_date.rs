//! The clock measured against an HTTP(S) answer's `Date` header, or Duo's
//! `/ping` time (whole seconds too, so the same sample), for when no time
//! server answers (UDP 123 blocked). Pure: the header and the
//! request's send and receive instants (this computer's clock) in, an
//! offset with an honest uncertainty out.
//!
//! A `Date` header has whole seconds (the server's clock truncated), so the
//! server's time when it answered lies in `[date, date + 1 s)`, taken as
//! `date + 0.5 s`; this computer's time then is taken as the middle of the
//! round trip. The uncertainty is `1 s + rtt / 2`: half a second of
//! truncation, half a second for the server's own clock, and the round trip
//! (the answer may have been made at any moment of it).

use rampart_shared::cause::{Cause, Problem};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::status::{
    ClockSection, ClockSource, ClockState, describe_offset, human_duration,
};

/// One answer's `Date` header and when its request went out and its answer
/// came back, by this computer's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateSample {
    /// The host that answered: `policy.example.com`, `127.0.0.1:8080`.
    pub host: String,
    /// `HttpDate` (a `Date` header) or `DuoPing` (Duo's `/ping` time).
    pub source: ClockSource,
    /// The header as sent; for `/ping`, Duo's time written as one.
    pub date: String,
    pub sent: DateTime<Utc>,
    pub received: DateTime<Utc>,
}

/// Local clock minus the server's, and how far off that may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateEstimate {
    pub offset_ms: i64,
    pub uncertainty_ms: u64,
    pub rtt_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("its Date header \"{0}\" is not an HTTP date")]
    Unparsable(String),
    #[error("the answer came back before the request went out (this computer's clock moved)")]
    Backwards,
}

/// The estimate from one sample.
pub fn estimate_from_date(
    date: &str,
    sent: DateTime<Utc>,
    received: DateTime<Utc>,
) -> Result<DateEstimate, DateError> {
    let server = DateTime::parse_from_rfc2822(date.trim())
        .map_err(|_| DateError::Unparsable(date.to_owned()))?
        .with_timezone(&Utc);
    let rtt = received - sent;
    if rtt < chrono::TimeDelta::zero() {
        return Err(DateError::Backwards);
    }
    let local_mid = sent + rtt / 2;
    let server_mid = server + chrono::TimeDelta::milliseconds(500);
    let rtt_ms = u64::try_from(rtt.num_milliseconds()).unwrap_or(0);
    Ok(DateEstimate {
        offset_ms: (local_mid - server_mid).num_milliseconds(),
        uncertainty_ms: 1000 + rtt_ms.div_ceil(2),
        rtt_ms,
    })
}

/// The sample to use: of those with a usable header, the one with the
/// shortest round trip (the smallest uncertainty).
pub fn best(samples: &[DateSample]) -> Option<(&DateSample, DateEstimate)> {
    samples
        .iter()
        .filter_map(|s| {
            estimate_from_date(&s.date, s.sent, s.received)
                .ok()
                .map(|e| (s, e))
        })
        .min_by_key(|(_, e)| e.rtt_ms)
}

/// Skewed only when the skew is beyond the allowed one even at the edge of
/// the uncertainty (`|offset| - uncertainty > allowed`); otherwise within
/// what this measurement can tell.
pub fn state_of(e: &DateEstimate, max_skew: Duration) -> ClockState {
    let allowed = i128::try_from(max_skew.as_millis()).unwrap_or(i128::MAX);
    let least = i128::from(e.offset_ms).abs() - i128::from(e.uncertainty_ms);
    if least > allowed {
        ClockState::Skewed
    } else {
        ClockState::Synced
    }
}

/// "clock is 10 min fast, more than the 30 s allowed (measured against the
/// Date header of policy.example.com, ± 1 s; no time server answered: …)".
pub fn detail(
    source: ClockSource,
    host: &str,
    e: &DateEstimate,
    state: ClockState,
    max_skew_ms: u64,
    ntp_failure: &str,
) -> String {
    let figure = describe_offset(e.offset_ms);
    let verdict = if state == ClockState::Skewed {
        format!(
            "{figure}, more than the {} allowed",
            human_duration(max_skew_ms)
        )
    } else {
        figure
    };
    let against = match source {
        ClockSource::DuoPing => format!("Duo's time ({host})"),
        _ => format!("the Date header of {host}"),
    };
    format!(
        "{verdict} (measured against {against}, ± {:.1} s; {ntp_failure})",
        e.uncertainty_ms as f64 / 1000.0
    )
}

/// The clock section when no time server answered (`ntp` is that round's
/// section, state unknown): measured against the best `Date` header, with
/// the time servers' failure kept in the detail. `ntp` unchanged when no
/// sample has a usable header, or when the time servers answered but
/// disagree (IT must fix that; a Date header does not outvote them).
pub fn fallback(ntp: ClockSection, no_answer: bool, samples: &[DateSample]) -> ClockSection {
    if ntp.state != ClockState::Unknown || !no_answer {
        return ntp;
    }
    let Some((sample, e)) = best(samples) else {
        return ntp;
    };
    let max_skew = Duration::from_millis(ntp.max_skew_ms);
    let state = state_of(&e, max_skew);
    ClockSection {
        state,
        offset_ms: Some(e.offset_ms),
        uncertainty_ms: Some(e.uncertainty_ms),
        server: Some(sample.host.clone()),
        source: Some(sample.source),
        detail: detail(
            sample.source,
            &sample.host,
            &e,
            state,
            ntp.max_skew_ms,
            &ntp.detail,
        ),
        // Measured: the time servers' silence is no longer the cause.
        problem: (state == ClockState::Skewed).then(|| {
            Problem::new(
                Cause::ClockSkew {
                    offset_ms: e.offset_ms,
                    allowed_ms: ntp.max_skew_ms,
                },
                "",
            )
        }),
        ..ntp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: Duration = Duration::from_secs(30);

    fn at(secs: i64, ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap() + chrono::TimeDelta::milliseconds(ms)
    }

    fn header(secs: i64) -> String {
        DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    #[test]
    fn a_right_clock_measures_near_zero_within_a_second_and_half_the_trip() {
        const T: i64 = 1_795_000_000;
        // Sent at T+0.400, answered at T+0.600 by a server whose clock said T.
        let e = estimate_from_date(&header(T), at(T, 400), at(T, 600)).unwrap();
        assert_eq!(
            e,
            DateEstimate {
                offset_ms: 0,
                uncertainty_ms: 1100,
                rtt_ms: 200
            }
        );
        assert_eq!(state_of(&e, SKEW), ClockState::Synced);
    }

    #[test]
    fn a_clock_ten_minutes_fast_is_measured_and_skewed() {
        const T: i64 = 1_795_000_000;
        let e = estimate_from_date(&header(T), at(T + 600, 0), at(T + 600, 1000)).unwrap();
        assert_eq!(e.offset_ms, 600_000);
        assert_eq!(e.uncertainty_ms, 1500);
        assert_eq!(state_of(&e, SKEW), ClockState::Skewed);
        assert_eq!(
            detail(
                ClockSource::HttpDate,
                "policy.example.com",
                &e,
                ClockState::Skewed,
                30_000,
                "no time server answered"
            ),
            "clock is 10 min fast, more than the 30 s allowed (measured against the Date \
             header of policy.example.com, ± 1.5 s; no time server answered)"
        );
    }

    #[test]
    fn a_skew_is_only_beyond_the_allowed_one_past_the_uncertainty() {
        let e = |offset_ms| DateEstimate {
            offset_ms,
            uncertainty_ms: 1000,
            rtt_ms: 0,
        };
        assert_eq!(state_of(&e(31_000), SKEW), ClockState::Synced);
        assert_eq!(state_of(&e(-31_000), SKEW), ClockState::Synced);
        assert_eq!(state_of(&e(31_001), SKEW), ClockState::Skewed);
        assert_eq!(state_of(&e(-31_001), SKEW), ClockState::Skewed);
    }

    #[test]
    fn bad_headers_and_backward_instants_are_refused() {
        const T: i64 = 1_795_000_000;
        assert_eq!(
            estimate_from_date("yesterday", at(T, 0), at(T, 1)),
            Err(DateError::Unparsable("yesterday".into()))
        );
        assert_eq!(
            estimate_from_date(&header(T), at(T, 5), at(T, 1)),
            Err(DateError::Backwards)
        );
    }

    #[test]
    fn the_shortest_round_trip_is_used() {
        const T: i64 = 1_795_000_000;
        let sample = |host: &str, rtt_ms| DateSample {
            source: ClockSource::HttpDate,
            host: host.into(),
            date: header(T),
            sent: at(T, 0),
            received: at(T, rtt_ms),
        };
        let samples = [
            sample("slow.example", 900),
            DateSample {
                date: "garbage".into(),
                ..sample("broken.example", 1)
            },
            sample("fast.example", 20),
        ];
        let (chosen, e) = best(&samples).unwrap();
        assert_eq!(chosen.host, "fast.example");
        assert_eq!(e.uncertainty_ms, 1010);
        assert!(best(&[]).is_none());
    }

    fn unknown() -> ClockSection {
        ClockSection {
            state: ClockState::Unknown,
            offset_ms: None,
            uncertainty_ms: None,
            max_skew_ms: 30_000,
            server: None,
            checked_at: DateTime::from_timestamp(1_795_000_000, 0),
            detail: "no time server gave a usable answer: 127.0.0.1:9 refused".into(),
            source: None,
            problem: None,
        }
    }

    #[test]
    fn the_fallback_reports_the_source_and_keeps_why_ntp_failed() {
        const T: i64 = 1_795_000_000;
        let samples = [DateSample {
            host: "guide.example".into(),
            source: ClockSource::HttpDate,
            date: header(T),
            sent: at(T + 600, 0),
            received: at(T + 600, 1000),
        }];
        let s = fallback(unknown(), true, &samples);
        assert_eq!(s.state, ClockState::Skewed);
        assert_eq!(s.source, Some(ClockSource::HttpDate));
        assert_eq!(s.server.as_deref(), Some("guide.example"));
        assert_eq!((s.offset_ms, s.uncertainty_ms), (Some(600_000), Some(1500)));
        assert_eq!(
            s.detail,
            "clock is 10 min fast, more than the 30 s allowed (measured against the Date \
             header of guide.example, ± 1.5 s; no time server gave a usable answer: \
             127.0.0.1:9 refused)"
        );
        assert_eq!(s.checked_at, unknown().checked_at);
        // Time servers that disagree, or no sample: the NTP verdict stands.
        assert_eq!(fallback(unknown(), false, &samples), unknown());
        assert_eq!(fallback(unknown(), true, &[]), unknown());
    }

    #[test]
    fn duos_ping_is_a_sample_like_a_date_header_and_the_shorter_trip_wins() {
        const T: i64 = 1_795_000_000;
        let date = DateSample {
            host: "guide.example".into(),
            source: ClockSource::HttpDate,
            date: header(T),
            sent: at(T + 600, 0),
            received: at(T + 600, 1000),
        };
        let duo = DateSample {
            host: "api-1234.duosecurity.com".into(),
            source: ClockSource::DuoPing,
            date: crate::duo::sign::date_header(DateTime::from_timestamp(T, 0).unwrap()),
            sent: at(T + 600, 200),
            received: at(T + 600, 800),
        };
        let s = fallback(unknown(), true, &[date.clone(), duo.clone()]);
        assert_eq!(s.source, Some(ClockSource::DuoPing));
        assert_eq!((s.offset_ms, s.uncertainty_ms), (Some(600_000), Some(1300)));
        assert!(
            s.detail.starts_with(
                "clock is 10 min fast, more than the 30 s allowed (measured against Duo's \
                 time (api-1234.duosecurity.com), ± 1.3 s;"
            ),
            "{}",
            s.detail
        );
        // A longer trip to Duo: the Date header measures instead.
        let slow_duo = DateSample {
            sent: at(T + 599, 0),
            ..duo
        };
        let s = fallback(unknown(), true, &[slow_duo, date]);
        assert_eq!(s.source, Some(ClockSource::HttpDate));
    }
}
