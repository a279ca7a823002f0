//! The clock check: is this device's clock within the allowed skew of NTP
//! time? TOTP codes and Duo pushes fail when it is not.
//!
//! [`query_servers`] and `stamp` (the kernel's receive timestamps) are the
//! only I/O: one SNTP query per address, all at once, ending as soon as a
//! majority agrees. [`estimate`] (`select`: Marzullo's intersection of each
//! server's best answer), [`to_section`], [`KodBackoff`] and the raw-answer
//! checks in `packet` are pure and take what they need, `now` included, as
//! arguments.

mod backoff;
pub mod http_date;
mod packet;
mod query;
mod report;
mod select;
mod stamp;
mod target;

pub use backoff::KodBackoff;
pub use query::{judge_answer, query_servers};
pub use report::{
    AddrResult, BACK_OFF, ClockReport, DISAGREE, QueryError, Sample, state_of, to_section,
};
pub use select::{Estimate, NoEstimate, estimate};
pub use target::{NTP_PORT, Target, TargetError, parse_target};

/// How far this computer's clock moved between two readings: the wall
/// clock's elapsed time minus the monotonic clock's (which nobody sets).
/// Positive: the wall clock was set forward. A real measurement with no
/// network; the readings are `(wall, monotonic)` pairs taken together.
pub fn moved_ms(
    then: (chrono::DateTime<chrono::Utc>, std::time::Instant),
    now: (chrono::DateTime<chrono::Utc>, std::time::Instant),
) -> i64 {
    let wall = (now.0 - then.0).num_milliseconds();
    let monotonic =
        i64::try_from(now.1.saturating_duration_since(then.1).as_millis()).unwrap_or(i64::MAX);
    wall.saturating_sub(monotonic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn movement_is_wall_time_minus_monotonic_time() {
        let wall = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mono = Instant::now();
        let later = mono + Duration::from_secs(60);
        // A minute passed on both: nothing moved.
        assert_eq!(
            moved_ms((wall, mono), (wall + chrono::TimeDelta::seconds(60), later)),
            0
        );
        // The wall clock says 6 min: it was set 5 min forward.
        assert_eq!(
            moved_ms(
                (wall, mono),
                (wall + chrono::TimeDelta::seconds(360), later)
            ),
            300_000
        );
        // It says 2 min earlier than when checked: set 3 min back.
        assert_eq!(
            moved_ms(
                (wall, mono),
                (wall - chrono::TimeDelta::seconds(120), later)
            ),
            -180_000
        );
    }
}
