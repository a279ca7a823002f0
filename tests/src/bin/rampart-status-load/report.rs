//! The printed row: latency quantiles, the client's lateness, and the
//! host's steal time.

use std::time::Duration;

use crate::drive::Tally;
use crate::options::Options;

/// The value at quantile `q` of sorted samples (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The machine's stolen and total CPU time so far (the `cpu` line of
/// /proc/stat): on a virtual machine, time its CPUs waited for the host.
pub fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest times are
    // already inside user and nice).
    Some((*fields.get(7)?, fields.iter().take(8).sum()))
}

/// Milliseconds, to the microsecond.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Prints the run's row (after a header when asked), `steal_before` being
/// [`cpu_times`] when the run started.
pub fn print(options: &Options, total: &mut Tally, steal_before: Option<(u64, u64)>) {
    let n = options.connections;
    total.latencies.sort_unstable();
    total.send_lags.sort_unstable();
    total.answer_times.sort_unstable();
    let steal = match (steal_before, cpu_times()) {
        (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
            format!("{:.1}", 100.0 * (s1 - s0) as f64 / (t1 - t0) as f64)
        }
        _ => "?".into(),
    };
    let measured = options.seconds - options.warmup;
    let achieved = total.latencies.len() as f64 / measured;
    let label = options.label.clone().unwrap_or_else(|| match options.rate {
        None => format!("closed loop, {n} conn"),
        Some(rate) => format!("open loop {rate} req/s, {n} conn"),
    });
    if options.header {
        println!(
            "{:<34} {:>8} {:>9} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
            "case",
            "replies",
            "req/s",
            "errors",
            "late",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "lag99 ms",
            "ans99 ms",
            "steal %"
        );
    }
    let lat = &total.latencies;
    println!(
        "{label:<34} {:>8} {achieved:>9.0} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {steal:>7}",
        total.replies,
        total.errors,
        if options.rate.is_some() {
            total.late.to_string()
        } else {
            "-".into()
        },
        ms(quantile(lat, 0.50)),
        ms(quantile(lat, 0.90)),
        ms(quantile(lat, 0.99)),
        ms(quantile(lat, 0.999)),
        ms(quantile(lat, 1.0)),
        if options.rate.is_some() {
            ms(quantile(&total.send_lags, 0.99))
        } else {
            "-".into()
        },
        if options.rate.is_some() {
            ms(quantile(&total.answer_times, 0.99))
        } else {
            "-".into()
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(quantile(&sorted, 0.5), Duration::from_micros(500));
        assert_eq!(quantile(&sorted, 0.99), Duration::from_micros(990));
        assert_eq!(quantile(&sorted, 0.999), Duration::from_micros(999));
        assert_eq!(quantile(&sorted, 1.0), Duration::from_micros(1000));
        assert_eq!(quantile(&sorted, 0.0), Duration::from_micros(1));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
