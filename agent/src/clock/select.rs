//! Which answers to believe, and how tightly they pin the time. Pure.
//!
//! Each server counts once, by its best answer (the shortest round trip:
//! a name with several addresses must not outvote two other servers). Each
//! answer puts the true offset in an interval, its offset ± half its round
//! trip plus the server's own distance from its reference: a delayed reading
//! moves the offset by at most half the delay it adds to the round trip.
//! Marzullo's algorithm, as NTP's selection does, finds where most intervals
//! overlap; when a majority overlaps, the estimate is their offsets weighed
//! by how tightly each pins the time, kept inside that overlap, and the
//! uncertainty reaches to both its ends. Honest servers whose
//! intervals do not quite meet (a server a few ms off its own reference)
//! still agree if a majority lies within the allowed skew; the uncertainty
//! then covers all of them.

use std::collections::BTreeMap;
use std::time::Duration;

use super::report::{AddrResult, Sample};

/// The timestamps' resolution (sntpc keeps microseconds), so that an
/// exchange with no measurable round trip still spans an interval.
const RESOLUTION_MS: f64 = 0.001;

/// The combined figure from the usable answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub offset_ms: f64,
    /// The true offset lies within `offset_ms ± uncertainty_ms` if the
    /// agreeing servers are right and at worst their paths are one-sided.
    pub uncertainty_ms: f64,
    /// The agreeing answer with the shortest round trip (`name (addr)` or
    /// `addr`).
    pub server: String,
    /// How many answers (addresses) were usable.
    pub usable: usize,
}

/// Why there is no combined figure.
#[derive(Debug, Clone, PartialEq)]
pub enum NoEstimate {
    /// No server gave a usable answer.
    NoAnswer,
    /// No majority of the servers agrees within the allowed skew, so which
    /// one is right cannot be told: each server's best answer (label and
    /// offset), by offset.
    Disagree(Vec<(String, f64)>),
}

/// How far from `offset_ms` the truth can be, by this answer alone.
pub fn reach_ms(sample: &Sample) -> f64 {
    sample.rtt_ms / 2.0 + sample.root_distance_ms + RESOLUTION_MS
}

/// Where this answer alone puts the true offset.
fn interval(sample: &Sample) -> (f64, f64) {
    (
        sample.offset_ms - reach_ms(sample),
        sample.offset_ms + reach_ms(sample),
    )
}

/// Each server's best usable answer, by round trip; in the order of
/// `results` for servers whose best answers tie.
pub fn best_per_server(results: &[AddrResult]) -> Vec<(&AddrResult, &Sample)> {
    let mut best: BTreeMap<&str, (usize, &AddrResult, &Sample)> = BTreeMap::new();
    for (index, result) in results.iter().enumerate() {
        let Some(sample) = result.usable() else {
            continue;
        };
        best.entry(result.server.as_str())
            .and_modify(|kept| {
                if sample.rtt_ms < kept.2.rtt_ms {
                    *kept = (kept.0, result, sample);
                }
            })
            .or_insert((index, result, sample));
    }
    let mut chosen: Vec<_> = best.into_values().collect();
    chosen.sort_by_key(|(index, _, _)| *index);
    chosen.into_iter().map(|(_, r, s)| (r, s)).collect()
}

/// The most intervals that share a point, and the first stretch they all
/// share: Marzullo's algorithm. Touching intervals overlap.
pub fn intersection(intervals: &[(f64, f64)]) -> Option<(usize, f64, f64)> {
    // A start sorts before an end at the same point, so touching counts.
    let mut edges: Vec<(f64, i8)> = intervals
        .iter()
        .flat_map(|&(lo, hi)| [(lo, -1), (hi, 1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut count, mut best) = (0usize, None::<(usize, f64, f64)>);
    for (i, &(at, edge)) in edges.iter().enumerate() {
        if edge < 0 {
            count += 1;
            if best.is_none_or(|(most, _, _)| count > most) {
                // The next edge exists: every start has its end after it.
                best = Some((count, at, edges[i + 1].0));
            }
        } else {
            count -= 1;
        }
    }
    best
}

/// The offset most servers agree on, or why there is none. See the module
/// documentation for the rule.
pub fn estimate(results: &[AddrResult], max_skew: Duration) -> Result<Estimate, NoEstimate> {
    let usable = results.iter().filter(|r| r.usable().is_some()).count();
    let best = best_per_server(results);
    if best.is_empty() {
        return Err(NoEstimate::NoAnswer);
    }
    let majority = |count: usize| count * 2 > best.len();
    let fastest_of = |members: &[&(&AddrResult, &Sample)]| {
        members
            .iter()
            .min_by(|a, b| a.1.rtt_ms.total_cmp(&b.1.rtt_ms))
            .map(|(r, _)| r.label())
            .unwrap_or_default()
    };

    let intervals: Vec<(f64, f64)> = best.iter().map(|(_, s)| interval(s)).collect();
    if let Some((count, lo, hi)) = intersection(&intervals)
        && majority(count)
    {
        let members: Vec<_> = best
            .iter()
            .zip(&intervals)
            .filter(|(_, (a, b))| *a <= lo && hi <= *b)
            .map(|(m, _)| m)
            .collect();
        let offset_ms = combine(&members).clamp(lo, hi);
        return Ok(Estimate {
            offset_ms,
            uncertainty_ms: (offset_ms - lo).max(hi - offset_ms),
            server: fastest_of(&members),
            usable,
        });
    }

    // No majority of intervals meets: a majority within the allowed skew
    // still agrees on whether the clock is right, with an uncertainty wide
    // enough to hold every one of them.
    let mut by_offset: Vec<&(&AddrResult, &Sample)> = best.iter().collect();
    by_offset.sort_by(|a, b| a.1.offset_ms.total_cmp(&b.1.offset_ms));
    let window_ms = max_skew.as_secs_f64() * 1000.0;
    let (start, len) = largest_agreeing(&by_offset, window_ms);
    if !majority(len) {
        return Err(NoEstimate::Disagree(
            by_offset
                .iter()
                .map(|(r, s)| (r.label(), s.offset_ms))
                .collect(),
        ));
    }
    let members = &by_offset[start..start + len];
    let (lo, hi) = members
        .iter()
        .map(|(_, s)| interval(s))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (a, b)| {
            (lo.min(a), hi.max(b))
        });
    Ok(Estimate {
        offset_ms: (lo + hi) / 2.0,
        uncertainty_ms: (hi - lo) / 2.0,
        server: fastest_of(members),
        usable,
    })
}

/// The agreeing answers' offsets, each weighted by how tightly it pins the
/// time (1 / its reach squared, as for measurements of known spread): the
/// middle of the shared stretch would lean on whichever wide interval
/// happens to clip it, and with 1 / reach a few slow answers (a request
/// that waited for a core before it went out reads as an offset of half
/// that wait, measured: -2.3 ms beside a 0.1 ms answer) still pull it.
fn combine(members: &[&(&AddrResult, &Sample)]) -> f64 {
    let (sum, weights) = members.iter().fold((0.0, 0.0), |(sum, weights), (_, s)| {
        let weight = reach_ms(s).powi(-2);
        (sum + s.offset_ms * weight, weights + weight)
    });
    sum / weights
}

/// The longest run of answers (sorted by offset) within `window_ms` of
/// each other: its start and length.
fn largest_agreeing(sorted: &[&(&AddrResult, &Sample)], window_ms: f64) -> (usize, usize) {
    let (mut best, mut start) = ((0, 0), 0);
    for (end, (_, sample)) in sorted.iter().enumerate() {
        while sample.offset_ms - sorted[start].1.offset_ms > window_ms {
            start += 1;
        }
        if end + 1 - start > best.1 {
            best = (start, end + 1 - start);
        }
    }
    best
}

/// Whether the answers so far already settle the round: more than half of
/// the `configured` servers answered and their intervals meet. The rest need
/// not be waited for.
pub fn settled(results: &[AddrResult], configured: usize) -> bool {
    let best = best_per_server(results);
    if best.len() * 2 <= configured {
        return false;
    }
    let intervals: Vec<(f64, f64)> = best.iter().map(|(_, s)| interval(s)).collect();
    intersection(&intervals).is_some_and(|(count, _, _)| count * 2 > configured)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A usable answer from `server` (its address if it is one).
    pub(in crate::clock) fn ok(server: &str, offset_ms: f64, rtt_ms: f64) -> AddrResult {
        AddrResult {
            server: server.into(),
            addr: server.parse().ok(),
            outcome: Ok(Sample {
                offset_ms,
                rtt_ms,
                root_distance_ms: 0.0,
                stratum: 2,
                leap_indicator: 0,
            }),
        }
    }

    const SKEW: Duration = Duration::from_secs(30);

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn marzullo_finds_the_most_overlapping_stretch() {
        assert_eq!(intersection(&[]), None);
        assert_eq!(intersection(&[(1.0, 3.0)]), Some((1, 1.0, 3.0)));
        // The textbook case: [8,12], [11,13], [10,12] share [11,12].
        assert_eq!(
            intersection(&[(8.0, 12.0), (11.0, 13.0), (10.0, 12.0)]),
            Some((3, 11.0, 12.0))
        );
        // Two disjoint pairs: the first stretch with the most wins.
        assert_eq!(
            intersection(&[(0.0, 2.0), (1.0, 3.0), (10.0, 12.0), (11.0, 13.0)]),
            Some((2, 1.0, 2.0))
        );
        // Touching intervals share their edge.
        assert_eq!(intersection(&[(0.0, 1.0), (1.0, 2.0)]), Some((2, 1.0, 1.0)));
    }

    /// Issue 18: a reading delayed on a loaded machine gave an offset about
    /// half its round trip off, and the median of medians could pick it.
    /// The fast answers pin the time; the slow one only widens nothing.
    #[test]
    fn a_slow_sample_does_not_move_the_estimate() {
        let results = [
            ok("127.0.0.2:123", 0.010, 0.060),
            ok("127.0.0.3:123", 2.9, 6.0), // the reading waited ~6 ms
            ok("127.0.0.4:123", -0.005, 0.080),
            ok("127.0.0.5:123", -1.4, 3.0),
        ];
        let e = estimate(&results, SKEW).unwrap();
        assert!(e.offset_ms.abs() < 0.01, "{e:?}");
        assert!(e.uncertainty_ms <= 0.035, "{e:?}");
        assert_eq!(e.server, "127.0.0.2:123");
        assert_eq!(e.usable, 4);
    }

    /// Measured under stress-ng: two answers of 0.1 ms and two that waited
    /// ~4.7 ms, off by half that. The estimate stays with the fast ones.
    #[test]
    fn slow_answers_inside_the_overlap_barely_weigh() {
        let results = [
            ok("127.0.0.2:123", -0.016, 0.101),
            ok("127.0.0.3:123", -0.039, 0.089),
            ok("127.0.0.4:123", -2.325, 4.661),
            ok("127.0.0.5:123", -2.314, 4.703),
        ];
        let e = estimate(&results, SKEW).unwrap();
        assert!(e.offset_ms > -0.04 && e.offset_ms < -0.015, "{e:?}");
        assert_eq!(e.server, "127.0.0.3:123");
    }

    #[test]
    fn each_server_counts_once_by_its_best_address() {
        let mut results = vec![ok("pool.example", 300_000.0, 2.0)];
        for rtt in [3.0, 4.0, 5.0] {
            results.push(ok("pool.example", 300_000.0, rtt));
        }
        results.push(ok("a.example", 0.0, 9.0));
        results.push(ok("b.example", 0.5, 9.0));
        let best = best_per_server(&results);
        assert_eq!(best.len(), 3);
        assert_eq!(best[0].1.rtt_ms, 2.0);
        // Four answers from one wrong server do not outvote two right ones.
        let e = estimate(&results, SKEW).unwrap();
        assert!(close(e.offset_ms, 0.25), "{e:?}");
        assert_eq!(e.usable, 6);
    }

    #[test]
    fn one_wrong_server_among_three_is_outvoted() {
        let results = [
            ok("10.0.0.1:123", 10.0, 4.0),
            ok("10.0.0.2:123", -250_000.0, 2.0),
            ok("10.0.0.3:123", 11.0, 6.0),
        ];
        let e = estimate(&results, SKEW).unwrap();
        // [8,12] and [8,14] meet on [8,12] (plus the timestamps' resolution);
        // the answer with the shorter round trip weighs more.
        assert!(e.offset_ms > 10.0 && e.offset_ms < 10.5, "{e:?}");
        assert!(
            close(e.uncertainty_ms, e.offset_ms - 7.999),
            "to the far end: {e:?}"
        );
        assert_eq!(e.server, "10.0.0.1:123");
    }

    /// Servers a few ms apart, each with a short round trip, do not overlap:
    /// they still agree on the verdict, and the uncertainty says how far
    /// apart they are instead of pretending to a microsecond.
    #[test]
    fn honest_servers_that_do_not_quite_meet_widen_the_uncertainty() {
        let results = [
            ok("10.0.0.1:123", 0.0, 0.1),
            ok("10.0.0.2:123", 4.0, 0.1),
            ok("10.0.0.3:123", 400_000.0, 0.1),
        ];
        let e = estimate(&results, SKEW).unwrap();
        assert!(close(e.offset_ms, 2.0), "{e:?}");
        assert!(close(e.uncertainty_ms, 2.051), "{e:?}");
    }

    /// Two servers minutes apart: `report`'s tests pin their words.
    #[test]
    fn two_servers_minutes_apart_disagree() {
        // Half is not a majority: two of four cannot outvote the other two.
        let four = [
            ok("10.0.0.1:123", 900_000.0, 40.0),
            ok("10.0.0.2:123", 10.0, 4.0),
            ok("10.0.0.3:123", -250_000.0, 2.0),
            ok("10.0.0.4:123", 12.0, 6.0),
        ];
        assert!(matches!(estimate(&four, SKEW), Err(NoEstimate::Disagree(d)) if d.len() == 4));
        assert_eq!(estimate(&[], SKEW), Err(NoEstimate::NoAnswer));
    }

    #[test]
    fn a_round_settles_when_a_majority_of_the_configured_servers_meets() {
        let three = [
            ok("10.0.0.1:123", 0.0, 1.0),
            ok("10.0.0.2:123", 0.2, 1.0),
            ok("10.0.0.3:123", -0.1, 1.0),
        ];
        // Three of four configured answered and agree: the fourth is not awaited.
        assert!(settled(&three, 4));
        // Two of four is not a majority of what was asked.
        assert!(!settled(&three[..2], 4));
        // Three that answered but do not meet: wait for the fourth.
        let apart = [
            ok("10.0.0.1:123", 0.0, 1.0),
            ok("10.0.0.2:123", 50.0, 1.0),
            ok("10.0.0.3:123", 100.0, 1.0),
        ];
        assert!(!settled(&apart, 4));
        assert!(settled(&three[..1], 1));
    }
}
