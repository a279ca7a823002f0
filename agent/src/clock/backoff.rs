//! Honouring kiss-of-death: a server that sent one is left alone for a while.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::report::{AddrResult, ClockReport, QueryError};

/// Servers (as configured) that sent kiss-of-death, and until when to skip
/// them. Each further kiss doubles the wait, up to `cap`; a usable answer
/// forgets the server. `now` is always passed in so the service loop and the
/// tests decide what time it is.
///
/// A name is skipped as a whole when any of its addresses kissed: the
/// addresses behind one name are one operator's, and the kiss asks that
/// operator to be left alone.
#[derive(Debug, Clone)]
pub struct KodBackoff {
    first: Duration,
    cap: Duration,
    servers: HashMap<String, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    until: Instant,
    wait: Duration,
    /// The kiss code (`RATE`, `DENY`), to say why the server is left alone.
    code: String,
}

impl Default for KodBackoff {
    /// One minute (the shortest poll RFC 4330 §10 allows), doubling to an hour.
    fn default() -> Self {
        Self::new(Duration::from_secs(60), Duration::from_secs(3600))
    }
}

impl KodBackoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap: cap.max(first),
            servers: HashMap::new(),
        }
    }

    /// Records a kiss (`code`) from `server`; returns until when it is skipped.
    pub fn record_kod(&mut self, server: &str, code: &str, now: Instant) -> Instant {
        let wait = match self.servers.get(server) {
            Some(e) => (e.wait.saturating_mul(2)).min(self.cap),
            None => self.first,
        };
        let until = now + wait;
        self.servers.insert(
            server.to_owned(),
            Entry {
                until,
                wait,
                code: code.to_owned(),
            },
        );
        until
    }

    /// A usable answer: the server behaves again, start over if it kisses later.
    pub fn record_success(&mut self, server: &str) {
        self.servers.remove(server);
    }

    pub fn skipped_until(&self, server: &str, now: Instant) -> Option<Instant> {
        self.servers
            .get(server)
            .map(|e| e.until)
            .filter(|until| *until > now)
    }

    /// The servers that may be asked now, in their configured order.
    pub fn allowed(&self, servers: &[String], now: Instant) -> Vec<String> {
        servers
            .iter()
            .filter(|s| self.skipped_until(s, now).is_none())
            .cloned()
            .collect()
    }

    /// The servers left out now, each as a result that says why and for how
    /// long: a round in which every server is left alone must say so, not
    /// look like a policy without servers.
    pub fn skipped(&self, servers: &[String], now: Instant) -> Vec<AddrResult> {
        servers
            .iter()
            .filter_map(|server| {
                let entry = self.servers.get(server).filter(|e| e.until > now)?;
                let left = entry.until - now;
                Some(AddrResult {
                    server: server.clone(),
                    addr: None,
                    outcome: Err(QueryError::BackingOff {
                        code: entry.code.clone(),
                        // Rounded up: "not asked again for 0 ms" would be wrong.
                        retry_in_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1),
                    }),
                })
            })
            .collect()
    }

    /// Updates from one round: kisses are recorded, servers with a usable
    /// answer and no kiss are forgotten.
    pub fn observe(&mut self, report: &ClockReport, now: Instant) {
        let mut kissed: Vec<(&str, &str)> = Vec::new();
        for r in &report.results {
            if let Err(QueryError::KissOfDeath(code)) = &r.outcome
                && !kissed.iter().any(|(s, _)| *s == r.server)
            {
                kissed.push((&r.server, code));
            }
        }
        for (server, code) in &kissed {
            self.record_kod(server, code, now);
        }
        for r in &report.results {
            if r.usable().is_some() && !kissed.iter().any(|(s, _)| *s == r.server) {
                self.record_success(&r.server);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::report::{AddrResult, Sample};
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn doubles_up_to_the_cap_and_expires() {
        let t0 = Instant::now();
        let mut b = KodBackoff::default();
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let until = b.record_kod("pool.example", "RATE", now);
            waits.push((until - now).as_secs());
            assert_eq!(b.skipped_until("pool.example", now), Some(until));
            assert_eq!(
                b.skipped_until("pool.example", until - Duration::from_secs(1)),
                Some(until)
            );
            assert_eq!(
                b.skipped_until("pool.example", until),
                None,
                "expired at `until`"
            );
            now = until;
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
    }

    #[test]
    fn only_the_kissing_server_is_skipped_and_success_resets() {
        let now = Instant::now();
        let servers = ["a".to_owned(), "b".to_owned(), "c".to_owned()];
        let mut b = KodBackoff::default();
        b.record_kod("b", "RATE", now);
        b.record_kod("b", "RATE", now);
        assert_eq!(b.allowed(&servers, now), ["a", "c"]);
        assert_eq!(b.allowed(&servers, now + 2 * MIN), ["a", "b", "c"]);
        b.record_success("b");
        assert_eq!(
            b.record_kod("b", "RATE", now) - now,
            MIN,
            "starts over after a good answer"
        );
    }

    #[test]
    fn skipped_servers_say_why_and_for_how_long() {
        let now = Instant::now();
        let servers = ["a".to_owned(), "b".to_owned()];
        let mut b = KodBackoff::default();
        b.record_kod("b", "DENY", now);
        let skipped = b.skipped(&servers, now + Duration::from_secs(15));
        assert_eq!(
            skipped,
            [AddrResult {
                server: "b".into(),
                addr: None,
                outcome: Err(QueryError::BackingOff {
                    code: "DENY".into(),
                    retry_in_ms: 45_000
                }),
            }]
        );
        assert_eq!(
            format!(
                "{} {}",
                skipped[0].label(),
                skipped[0].outcome.as_ref().unwrap_err()
            ),
            "b asked Rampart to back off (kiss-of-death DENY); not asked again for 45 s"
        );
        assert!(b.skipped(&servers, now + MIN).is_empty(), "expired");
    }

    #[test]
    fn observes_a_round() {
        let now = Instant::now();
        let result = |server: &str, outcome| AddrResult {
            server: server.into(),
            addr: None,
            outcome,
        };
        let good = Ok(Sample {
            offset_ms: 1.0,
            rtt_ms: 1.0,
            root_distance_ms: 0.0,
            stratum: 2,
            leap_indicator: 0,
        });
        let kod = Err(QueryError::KissOfDeath("RATE".into()));
        let mut b = KodBackoff::default();
        b.record_kod("healed", "RATE", now);
        let report = ClockReport {
            results: vec![
                result("pool", good.clone()),
                result("pool", kod.clone()),
                result("rate", kod),
                result("healed", good),
                result("down", Err(QueryError::Timeout { after_ms: 2000 })),
            ],
        };
        b.observe(&report, now);
        let all = ["pool", "rate", "healed", "down"].map(String::from);
        assert_eq!(b.allowed(&all, now), ["healed", "down"]);
    }
}
