//! `rampart-agent check-clock`: the clock check, run here and now, without a
//! running agent. Exit 0 synced, 1 skewed, 2 unknown.
use std::process::ExitCode;
use std::time::Duration;

use rampart_shared::policy::Policy;
use rampart_shared::status::{ClockSection, ClockState};
use serde::Serialize;

use crate::clock::{self, ClockReport};

#[derive(Debug, clap::Args)]
pub struct CheckClockArgs {
    /// Time server to ask (`host`, `host:port`, `::1`, `[v6]:port`); repeat
    /// for several. Default: the servers of the built-in policy.
    #[arg(long = "server", value_name = "HOST[:PORT]")]
    pub servers: Vec<String>,
    /// Largest offset that still counts as synced, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub max_skew: u64,
    /// How long to wait for answers, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Print `{"state", "offset_ms", "uncertainty_ms", "server", "servers": [...]}`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CheckClockArgs) -> anyhow::Result<ExitCode> {
    let servers = if args.servers.is_empty() {
        Policy::default().clock.ntp_servers
    } else {
        args.servers
    };
    let report = super::block_on(clock::query_servers(
        &servers,
        Duration::from_millis(args.timeout),
    ))?;
    let section = clock::to_section(
        &report,
        Duration::from_secs(args.max_skew),
        chrono::Utc::now(),
    );
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&JsonOutput::new(&section, &report))?
        )?;
    } else {
        out!("{}", human(&section, &report))?;
    }
    Ok(ExitCode::from(match section.state {
        ClockState::Synced => 0,
        ClockState::Skewed => 1,
        ClockState::Unknown => 2,
    }))
}

/// The `--json` schema; support scripts read it, so fields are only added.
#[derive(Debug, Serialize)]
struct JsonOutput {
    state: ClockState,
    offset_ms: Option<i64>,
    uncertainty_ms: Option<u64>,
    server: Option<String>,
    /// The combined figure to the microsecond (`offset_ms` above is whole
    /// milliseconds, as in status): added with the interval selection.
    estimate: Option<JsonEstimate>,
    servers: Vec<JsonServer>,
}

#[derive(Debug, Serialize)]
struct JsonEstimate {
    offset_ms: f64,
    uncertainty_ms: f64,
}

#[derive(Debug, Serialize)]
struct JsonServer {
    server: String,
    addr: Option<String>,
    offset_ms: Option<f64>,
    rtt_ms: Option<f64>,
    stratum: Option<u8>,
    error: Option<String>,
}

impl JsonOutput {
    fn new(section: &ClockSection, report: &ClockReport) -> Self {
        let servers = report
            .results
            .iter()
            .map(|r| {
                let sample = r.outcome.as_ref().ok();
                JsonServer {
                    server: r.server.clone(),
                    addr: r.addr.map(|a| a.to_string()),
                    offset_ms: sample.map(|s| micro_round(s.offset_ms)),
                    rtt_ms: sample.map(|s| micro_round(s.rtt_ms)),
                    stratum: sample.map(|s| s.stratum),
                    error: r.outcome.as_ref().err().map(ToString::to_string),
                }
            })
            .collect();
        let max_skew = Duration::from_millis(section.max_skew_ms);
        let estimate = clock::estimate(&report.results, max_skew)
            .ok()
            .map(|e| JsonEstimate {
                offset_ms: micro_round(e.offset_ms),
                uncertainty_ms: micro_round(e.uncertainty_ms),
            });
        Self {
            state: section.state,
            offset_ms: section.offset_ms,
            uncertainty_ms: section.uncertainty_ms,
            server: section.server.clone(),
            estimate,
            servers,
        }
    }
}

/// Microseconds are what sntpc resolves; more digits are noise.
fn micro_round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The verdict first, then one line per address asked.
fn human(section: &ClockSection, report: &ClockReport) -> String {
    let mut out = match section.state {
        ClockState::Synced | ClockState::Skewed => format!(
            "{}: {} (±{} ms, from {})\n",
            if section.state == ClockState::Synced {
                "Synced"
            } else {
                "Skewed"
            },
            section.detail,
            section.uncertainty_ms.unwrap_or_default(),
            section.server.as_deref().unwrap_or("?"),
        ),
        ClockState::Unknown => format!("Unknown: {}\n", section.detail),
    };
    for r in &report.results {
        let line = match &r.outcome {
            Ok(s) => format!(
                "  {}: offset {:+.3} ms, round trip {:.3} ms, stratum {}",
                r.label(),
                s.offset_ms,
                s.rtt_ms,
                s.stratum
            ),
            Err(e) => format!("  {} {e}", r.label()),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{AddrResult, QueryError, Sample};

    fn report() -> ClockReport {
        ClockReport {
            results: vec![
                AddrResult {
                    server: "127.0.0.1:10123".into(),
                    addr: Some("127.0.0.1:10123".parse().unwrap()),
                    outcome: Ok(Sample {
                        offset_ms: -300_000.123_4,
                        rtt_ms: 0.25,
                        root_distance_ms: 0.0,
                        stratum: 8,
                        leap_indicator: 0,
                    }),
                },
                AddrResult {
                    server: "127.0.0.1:9".into(),
                    addr: Some("127.0.0.1:9".parse().unwrap()),
                    outcome: Err(QueryError::Refused),
                },
            ],
        }
    }

    #[test]
    fn json_keys_are_pinned() {
        let report = report();
        let section = clock::to_section(&report, Duration::from_secs(30), chrono::Utc::now());
        let json = serde_json::to_value(JsonOutput::new(&section, &report)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "state": "skewed", "offset_ms": -300_000, "uncertainty_ms": 1, "server": "127.0.0.1:10123",
                "estimate": {"offset_ms": -300_000.123, "uncertainty_ms": 0.126},
                "servers": [
                    {"server": "127.0.0.1:10123", "addr": "127.0.0.1:10123", "offset_ms": -300_000.123,
                     "rtt_ms": 0.25, "stratum": 8, "error": null},
                    {"server": "127.0.0.1:9", "addr": "127.0.0.1:9", "offset_ms": null, "rtt_ms": null,
                     "stratum": null, "error": "refused (no time server listens there)"}
                ]
            })
        );
    }

    #[test]
    fn human_output_leads_with_the_verdict() {
        let report = report();
        let section = clock::to_section(&report, Duration::from_secs(30), chrono::Utc::now());
        assert_eq!(
            human(&section, &report),
            "Skewed: clock is 5 min slow, more than the 30 s allowed (±1 ms, from 127.0.0.1:10123)\n\
             \x20 127.0.0.1:10123: offset -300000.123 ms, round trip 0.250 ms, stratum 8\n\
             \x20 127.0.0.1:9 refused (no time server listens there)\n"
        );
    }
}
