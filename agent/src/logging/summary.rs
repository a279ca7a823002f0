//! Repeated log lines summarised: the first of a kind in a minute is logged
//! in full, the rest are counted and logged as one line when the minute is
//! over. A local user sending refused requests as fast as the socket takes
//! them (194,600 in 20 s once) then costs the log two lines a minute.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How long a window lasts; the summaries say "in the last minute".
pub const WINDOW: Duration = Duration::from_secs(60);
/// Keys tracked at once; more are counted together.
pub const MAX_KEYS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first in its window: log it in full.
    Log,
    /// Counted for the window's summary.
    Counted,
}

/// One window's count, for keys that saw more than the one line logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary<K> {
    /// `None`: keys past [`MAX_KEYS`], counted together.
    pub key: Option<K>,
    /// Every occurrence in the window, the logged one included.
    pub count: u64,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    count: u64,
}

#[derive(Debug)]
pub struct Summarizer<K> {
    window: Duration,
    max_keys: usize,
    windows: HashMap<K, Window>,
    overflow: Option<Window>,
    ended: Vec<Summary<K>>,
}

impl<K: Hash + Eq + Clone> Summarizer<K> {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys,
            windows: HashMap::new(),
            overflow: None,
            ended: Vec::new(),
        }
    }

    /// Notes one occurrence of `key` at `now`.
    pub fn record(&mut self, key: &K, now: Instant) -> Verdict {
        if let Some(w) = self.windows.get_mut(key) {
            if now.duration_since(w.started) < self.window {
                w.count += 1;
                return Verdict::Counted;
            }
            let count = w.count;
            *w = Window {
                started: now,
                count: 1,
            };
            if count > 1 {
                self.ended.push(Summary {
                    key: Some(key.clone()),
                    count,
                });
            }
            return Verdict::Log;
        }
        if self.windows.len() >= self.max_keys {
            match &mut self.overflow {
                Some(w) => {
                    w.count += 1;
                    return Verdict::Counted;
                }
                None => {
                    self.overflow = Some(Window {
                        started: now,
                        count: 1,
                    });
                    return Verdict::Log;
                }
            }
        }
        self.windows.insert(
            key.clone(),
            Window {
                started: now,
                count: 1,
            },
        );
        Verdict::Log
    }

    /// Nothing counted and nothing left to say: no window open, no summary
    /// waiting.
    pub fn is_idle(&self) -> bool {
        self.windows.is_empty() && self.overflow.is_none() && self.ended.is_empty()
    }

    /// The windows over at `now` that counted more than their logged line;
    /// they are forgotten, so the next occurrence is logged in full again.
    pub fn due(&mut self, now: Instant) -> Vec<Summary<K>> {
        let mut out = std::mem::take(&mut self.ended);
        let window = self.window;
        let over = |w: &Window| now.duration_since(w.started) >= window;
        self.windows.retain(|key, w| {
            if !over(w) {
                return true;
            }
            if w.count > 1 {
                out.push(Summary {
                    key: Some(key.clone()),
                    count: w.count,
                });
            }
            false
        });
        if let Some(w) = &self.overflow
            && over(w)
        {
            if w.count > 1 {
                out.push(Summary {
                    key: None,
                    count: w.count,
                });
            }
            self.overflow = None;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_and_the_rest_summarised_once_per_window() {
        let t0 = Instant::now();
        let mut s = Summarizer::new(WINDOW, MAX_KEYS);
        assert_eq!(s.record(&1000, t0), Verdict::Log);
        for i in 1..100_000u64 {
            assert_eq!(
                s.record(&1000, t0 + Duration::from_micros(i)),
                Verdict::Counted
            );
        }
        // Another user has a window of their own.
        assert_eq!(s.record(&1001, t0), Verdict::Log);
        assert!(s.due(t0 + Duration::from_secs(59)).is_empty());
        let mut due = s.due(t0 + WINDOW);
        due.sort_by_key(|d| d.key);
        // 1001 was seen once: its one line says it all.
        assert_eq!(
            due,
            [Summary {
                key: Some(1000),
                count: 100_000
            }]
        );
        // Forgotten: the next one is logged in full again.
        assert_eq!(s.record(&1000, t0 + WINDOW * 2), Verdict::Log);
    }

    #[test]
    fn idle_until_something_is_counted_and_again_once_all_is_said() {
        let t0 = Instant::now();
        let mut s = Summarizer::new(WINDOW, 1);
        assert!(s.is_idle());
        s.record(&1, t0);
        s.record(&2, t0); // past the cap: the overflow window
        assert!(!s.is_idle());
        s.record(&1, t0 + WINDOW); // ends the first window: a summary waits
        assert!(!s.is_idle());
        assert_eq!(s.due(t0 + WINDOW).len(), 0, "each seen once per window");
        assert!(!s.is_idle(), "key 1's new window is open");
        s.due(t0 + WINDOW * 2);
        assert!(s.is_idle());
    }

    #[test]
    fn a_window_that_ends_on_the_next_occurrence_is_still_summarised() {
        let t0 = Instant::now();
        let mut s = Summarizer::new(WINDOW, MAX_KEYS);
        s.record(&7, t0);
        s.record(&7, t0 + Duration::from_secs(1));
        s.record(&7, t0 + Duration::from_secs(2));
        assert_eq!(s.record(&7, t0 + WINDOW), Verdict::Log);
        assert_eq!(
            s.due(t0 + WINDOW),
            [Summary {
                key: Some(7),
                count: 3
            }]
        );
    }

    #[test]
    fn keys_past_the_cap_share_one_window() {
        let t0 = Instant::now();
        let mut s = Summarizer::new(WINDOW, 2);
        assert_eq!(s.record(&1, t0), Verdict::Log);
        assert_eq!(s.record(&2, t0), Verdict::Log);
        assert_eq!(s.record(&3, t0), Verdict::Log);
        assert_eq!(s.record(&4, t0), Verdict::Counted);
        assert_eq!(s.record(&5, t0), Verdict::Counted);
        assert_eq!(
            s.due(t0 + WINDOW),
            [Summary {
                key: None,
                count: 3
            }]
        );
    }

    #[test]
    fn lines_logged_are_bounded_whatever_the_rate() {
        // A million occurrences from 10 users over 10 minutes: at most two
        // lines per user per window.
        let t0 = Instant::now();
        let mut s = Summarizer::new(WINDOW, MAX_KEYS);
        let mut lines = 0;
        for i in 0..1_000_000u64 {
            let now = t0 + Duration::from_micros(i * 600);
            if s.record(&(i % 10), now) == Verdict::Log {
                lines += 1;
            }
            if i % 10_000 == 0 {
                lines += s.due(now).len();
            }
        }
        lines += s.due(t0 + Duration::from_secs(3600)).len();
        assert!(lines <= 10 * 2 * 11, "{lines} lines");
        assert!(lines >= 10 * 10, "{lines} lines");
    }
}
