//! When to poll the policy URL next: a pure function of the outcome so far.

use std::time::Duration;

/// Jitter around every delay: ±10 %, so that a fleet that booted together
/// spreads its polls out.
pub const JITTER: f64 = 0.10;
/// The first retry after an error.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);
/// Errors never make the agent wait longer than this (nor longer than the
/// policy's normal interval).
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// The delay before the next poll.
///
/// - `interval`: the policy's `poll_interval_secs`;
/// - `consecutive_errors`: failed polls since the last good one (0 after a
///   200 that was accepted or a 304);
/// - `unit_random`: a number in `[0, 1)` (the caller's random source; tests
///   pass fixed values), mapped to a factor in `[0.9, 1.1)`.
///
/// After `n` errors the delay is `30 s × 2^(n-1)`, capped at the smaller of
/// one hour and `interval`: errors never slow polling below normal, and never
/// make it faster than every 27 s.
pub fn next_poll_delay(interval: Duration, consecutive_errors: u32, unit_random: f64) -> Duration {
    let base = if consecutive_errors == 0 {
        interval
    } else {
        let cap = interval.min(MAX_BACKOFF);
        let doublings = (consecutive_errors - 1).min(16);
        FIRST_RETRY.saturating_mul(1 << doublings).min(cap)
    };
    let unit = if unit_random.is_finite() {
        unit_random.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(1.0 + JITTER * (2.0 * unit - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: f64 = 0.0;
    const MID: f64 = 0.5;
    const MAX: f64 = 1.0;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn success_polls_at_the_interval_with_ten_percent_jitter() {
        let i = Duration::from_secs(900);
        assert_eq!(secs(next_poll_delay(i, 0, MID)), 900.0);
        assert_eq!(secs(next_poll_delay(i, 0, MIN)), 810.0);
        assert_eq!(secs(next_poll_delay(i, 0, MAX)), 990.0);
    }

    #[test]
    fn errors_back_off_exponentially_up_to_the_cap() {
        let i = Duration::from_secs(900);
        let got: Vec<f64> = (1..=8).map(|n| secs(next_poll_delay(i, n, MID))).collect();
        assert_eq!(got, [30.0, 60.0, 120.0, 240.0, 480.0, 900.0, 900.0, 900.0]);
        let day = Duration::from_secs(86_400);
        assert_eq!(secs(next_poll_delay(day, 9, MID)), 3600.0);
        assert_eq!(secs(next_poll_delay(day, u32::MAX, MID)), 3600.0);
        assert_eq!(secs(next_poll_delay(day, 1, MIN)), 27.0);
    }

    #[test]
    fn a_bad_random_source_cannot_break_the_schedule() {
        let i = Duration::from_secs(100);
        assert_eq!(secs(next_poll_delay(i, 0, f64::NAN)), 100.0);
        assert_eq!(secs(next_poll_delay(i, 0, 7.0)), 110.0);
        assert_eq!(secs(next_poll_delay(i, 0, -3.0)), 90.0);
    }
}
