//! When a failed check runs again. Pure: the count of failures in a row and
//! the normal interval in, the delay out.
//!
//! A clock or network check that failed (no time server answered, an
//! endpoint out of reach) is tried again soon, 30 s after the first failure
//! and twice as long after each further one, never later than the normal
//! interval: where UDP 123 is blocked, or the Wi-Fi came back a minute
//! later, the status should not stay wrong for the whole interval.

use std::time::Duration;

/// The delay after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(30);

/// The delay before the next check: `interval` after a success
/// (`failures == 0`), else 30 s, 60 s, 120 s, … capped at `interval`.
pub fn next_check_in(failures: u32, interval: Duration) -> Duration {
    if failures == 0 {
        return interval;
    }
    let doublings = (failures - 1).min(20);
    FIRST_RETRY.saturating_mul(1 << doublings).min(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_success_waits_the_whole_interval() {
        assert_eq!(next_check_in(0, HOUR), HOUR);
    }

    #[test]
    fn failures_retry_from_30_s_doubling_up_to_the_interval() {
        let delays: Vec<u64> = (1..=9).map(|n| next_check_in(n, HOUR).as_secs()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn the_network_interval_caps_it_too() {
        let fifteen_min = Duration::from_secs(15 * 60);
        assert_eq!(next_check_in(5, fifteen_min).as_secs(), 480);
        assert_eq!(next_check_in(6, fifteen_min), fifteen_min);
        assert_eq!(next_check_in(u32::MAX, fifteen_min), fifteen_min);
    }

    #[test]
    fn an_interval_shorter_than_30_s_is_never_exceeded() {
        let short = Duration::from_secs(10);
        assert_eq!(next_check_in(1, short), short);
    }
}
