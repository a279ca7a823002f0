//! The status as Prometheus metrics, in the text exposition format that
//! node_exporter's textfile collector reads (`status --format prometheus`).
//! Pure: the status and the time it is read at in, text out.
//!
//! Every metric is a gauge with the `rampart_` prefix. A state is one series
//! per possible value, 1 for the current one and 0 for the others, so that a
//! query never has to know which label values exist; a figure the agent does
//! not know (no clock check yet, a built-in policy never fetched) is left
//! out rather than written as 0.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use rampart_shared::status::{AgentStatus, ClockState, MfaState, NetworkState, Overall};
use serde::Serialize;

/// The one metric an unreachable agent still gives: `rampart_up 0`, so that
/// an alert fires on a stopped agent instead of on missing data.
pub fn unreachable() -> String {
    let mut out = String::new();
    up(&mut out, false);
    out
}

/// Everything `status` knows, as of `now`.
pub fn render(status: &AgentStatus, now: DateTime<Utc>) -> String {
    let mut out = String::new();
    up(&mut out, true);

    let agent = &status.agent;
    gauge(
        &mut out,
        "rampart_agent_info",
        "The agent's version and mode (always 1).",
    );
    sample(
        &mut out,
        "rampart_agent_info",
        &[
            ("version", &agent.version.to_string()),
            ("mode", agent.mode.label()),
        ],
        1.0,
    );
    gauge(
        &mut out,
        "rampart_agent_uptime_seconds",
        "Seconds since the agent started.",
    );
    sample(
        &mut out,
        "rampart_agent_uptime_seconds",
        &[],
        agent.uptime_secs as f64,
    );

    one_hot(
        &mut out,
        "rampart_overall",
        "The agent's verdict: 1 for the state it is in (healthy, action_needed, error).",
        &[Overall::Healthy, Overall::ActionNeeded, Overall::Error],
        &status.overall,
        &[],
    );

    let mfa = &status.mfa;
    let provider = name(&mfa.provider);
    one_hot(
        &mut out,
        "rampart_mfa_state",
        "MFA enrollment on this device: 1 for the state it is in.",
        &[
            MfaState::NotRequired,
            MfaState::NotSetUp,
            MfaState::InProgress,
            MfaState::Enrolled,
            MfaState::Error,
        ],
        &mfa.state,
        &[("provider", &provider)],
    );
    gauge(
        &mut out,
        "rampart_mfa_required",
        "1 when the policy in force requires MFA.",
    );
    sample(
        &mut out,
        "rampart_mfa_required",
        &[],
        flag(status.policy.mfa_required),
    );

    let clock = &status.clock;
    let source = clock
        .source
        .as_ref()
        .map(name)
        .unwrap_or_else(|| "none".to_owned());
    one_hot(
        &mut out,
        "rampart_clock_state",
        "The clock check: 1 for the state it is in (unknown, synced, skewed).",
        &[ClockState::Unknown, ClockState::Synced, ClockState::Skewed],
        &clock.state,
        &[],
    );
    if let Some(offset) = clock.offset_ms {
        gauge(
            &mut out,
            "rampart_clock_offset_seconds",
            "How far this computer's clock is ahead of the reference (negative: behind), by source.",
        );
        sample(
            &mut out,
            "rampart_clock_offset_seconds",
            &[("source", &source)],
            offset as f64 / 1000.0,
        );
    }
    if let Some(uncertainty) = clock.uncertainty_ms {
        gauge(
            &mut out,
            "rampart_clock_uncertainty_seconds",
            "The uncertainty of the measured clock offset.",
        );
        sample(
            &mut out,
            "rampart_clock_uncertainty_seconds",
            &[("source", &source)],
            uncertainty as f64 / 1000.0,
        );
    }
    gauge(
        &mut out,
        "rampart_clock_max_skew_seconds",
        "The largest offset the policy allows.",
    );
    sample(
        &mut out,
        "rampart_clock_max_skew_seconds",
        &[],
        clock.max_skew_ms as f64 / 1000.0,
    );
    age(
        &mut out,
        "rampart_clock_check_age_seconds",
        "Seconds since the last clock check.",
        clock.checked_at,
        now,
    );

    one_hot(
        &mut out,
        "rampart_network_state",
        "The endpoint check: 1 for the state it is in (unknown, online, offline).",
        &[
            NetworkState::Unknown,
            NetworkState::Online,
            NetworkState::Offline,
        ],
        &status.network.state,
        &[],
    );

    let policy = &status.policy;
    gauge(
        &mut out,
        "rampart_policy_serial",
        "The serial of the policy in force, by where it came from.",
    );
    sample(
        &mut out,
        "rampart_policy_serial",
        &[("source", &name(&policy.source))],
        policy.serial as f64,
    );
    age(
        &mut out,
        "rampart_policy_age_seconds",
        "Seconds since the policy in force was fetched or read.",
        policy.fetched_at,
        now,
    );
    gauge(
        &mut out,
        "rampart_policy_error",
        "1 when the latest policy offered was refused or could not be fetched.",
    );
    sample(
        &mut out,
        "rampart_policy_error",
        &[],
        flag(policy.error.is_some() || policy.fetch_error.is_some()),
    );

    age(
        &mut out,
        "rampart_report_last_delivered_age_seconds",
        "Seconds since IT's collector last took a report from this device (since the agent started).",
        status.reporting.last_delivered_at,
        now,
    );
    gauge(
        &mut out,
        "rampart_report_credential_error",
        "1 while reports wait because the collector refuses this device's credential.",
    );
    sample(
        &mut out,
        "rampart_report_credential_error",
        &[],
        flag(status.reporting.credential_error.is_some()),
    );
    gauge(
        &mut out,
        "rampart_storage_failures",
        "Kinds of agent state that could not be saved.",
    );
    sample(
        &mut out,
        "rampart_storage_failures",
        &[],
        status.storage.failures.len() as f64,
    );
    out
}

fn up(out: &mut String, answered: bool) {
    gauge(
        out,
        "rampart_up",
        "1 when the agent answered the status request, 0 when it could not be reached.",
    );
    sample(out, "rampart_up", &[], flag(answered));
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The JSON name of an enum value (`action_needed`): the same word as in
/// `status --json`, never a second spelling.
fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn gauge(out: &mut String, metric: &str, help: &str) {
    let _ = writeln!(out, "# HELP {metric} {help}");
    let _ = writeln!(out, "# TYPE {metric} gauge");
}

fn one_hot<T: Serialize + PartialEq>(
    out: &mut String,
    metric: &str,
    help: &str,
    all: &[T],
    current: &T,
    labels: &[(&str, &str)],
) {
    gauge(out, metric, help);
    for value in all {
        let state = name(value);
        let mut with_state = labels.to_vec();
        with_state.push(("state", &state));
        sample(out, metric, &with_state, flag(value == current));
    }
}

fn age(out: &mut String, metric: &str, help: &str, at: Option<DateTime<Utc>>, now: DateTime<Utc>) {
    let Some(at) = at else { return };
    gauge(out, metric, help);
    // A time ahead of `now` (the clock moved back since): no negative age.
    let secs = (now - at).num_milliseconds().max(0) as f64 / 1000.0;
    sample(out, metric, &[], secs);
}

fn sample(out: &mut String, metric: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(metric);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape backslash, double quote and line feed.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::status::{ClockSource, PolicySource};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn status() -> AgentStatus {
        let mut s: AgentStatus = serde_json::from_value(serde_json::json!({
            "schema": 1,
            "overall": "action_needed",
            "agent": {"version": "0.1.0", "mode": "system", "pid": 42,
                      "started_at": "2026-11-18T11:00:00Z", "uptime_secs": 600},
            "policy": {"source": "remote", "serial": 14, "fetched_at": "2026-11-18T11:05:00Z",
                       "error": null, "mfa_required": true, "provider": "totp"},
            "clock": {"state": "synced", "offset_ms": -250, "uncertainty_ms": 4, "max_skew_ms": 30000,
                      "server": "127.0.0.1:123", "checked_at": "2026-11-18T11:09:00Z",
                      "detail": "clock is 250 ms slow", "source": "ntp"},
            "network": {"state": "online", "checked_at": null, "detail": "online"},
            "mfa": {"state": "not_set_up", "provider": "totp", "detail": null},
            "update": {"state": "not_checked", "current_version": "0.1.0", "min_version": null,
                       "detail": "meets the policy"}
        }))
        .unwrap();
        s.reporting.last_delivered_at = Some(at("2026-11-18T11:09:30Z"));
        s
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn every_figure_as_a_labelled_gauge() {
        let text = render(&status(), at("2026-11-18T11:10:00Z"));
        let samples = lines(&text);
        for want in [
            "rampart_up 1",
            "rampart_agent_info{version=\"0.1.0\",mode=\"service\"} 1",
            "rampart_agent_uptime_seconds 600",
            "rampart_overall{state=\"healthy\"} 0",
            "rampart_overall{state=\"action_needed\"} 1",
            "rampart_overall{state=\"error\"} 0",
            "rampart_mfa_state{provider=\"totp\",state=\"not_set_up\"} 1",
            "rampart_mfa_state{provider=\"totp\",state=\"enrolled\"} 0",
            "rampart_mfa_required 1",
            "rampart_clock_state{state=\"synced\"} 1",
            "rampart_clock_offset_seconds{source=\"ntp\"} -0.25",
            "rampart_clock_uncertainty_seconds{source=\"ntp\"} 0.004",
            "rampart_clock_max_skew_seconds 30",
            "rampart_clock_check_age_seconds 60",
            "rampart_network_state{state=\"online\"} 1",
            "rampart_policy_serial{source=\"remote\"} 14",
            "rampart_policy_age_seconds 300",
            "rampart_policy_error 0",
            "rampart_report_last_delivered_age_seconds 30",
            "rampart_report_credential_error 0",
            "rampart_storage_failures 0",
        ] {
            assert!(samples.contains(&want), "{want} missing from\n{text}");
        }
        // Each metric has its HELP and TYPE once, before its samples.
        for sample in &samples {
            let metric = sample.split(['{', ' ']).next().unwrap();
            let help = text.find(&format!("# HELP {metric} ")).unwrap();
            let kind = text.find(&format!("# TYPE {metric} gauge\n")).unwrap();
            let at = text.find(&format!("\n{sample}\n")).unwrap();
            assert!(help < kind && kind < at, "{metric}");
            assert_eq!(text.matches(&format!("# TYPE {metric} ")).count(), 1);
        }
    }

    #[test]
    fn unknown_figures_are_left_out_not_zero() {
        let mut s = status();
        s.clock.offset_ms = None;
        s.clock.uncertainty_ms = None;
        s.clock.checked_at = None;
        s.clock.source = None;
        s.policy.fetched_at = None;
        s.policy.source = PolicySource::Builtin;
        s.reporting.last_delivered_at = None;
        let text = render(&s, at("2026-11-18T11:10:00Z"));
        for gone in [
            "rampart_clock_offset_seconds",
            "rampart_clock_uncertainty_seconds",
            "rampart_clock_check_age_seconds",
            "rampart_policy_age_seconds",
            "rampart_report_last_delivered_age_seconds",
        ] {
            assert!(!text.contains(gone), "{gone} in\n{text}");
        }
        assert!(text.contains("\nrampart_policy_serial{source=\"builtin\"} 14\n"));
    }

    #[test]
    fn the_clock_source_and_odd_values_are_labelled_safely() {
        let mut s = status();
        s.clock.source = Some(ClockSource::HttpDate);
        // A time after `now` (the clock moved back): age 0, not negative.
        s.policy.fetched_at = Some(at("2026-11-18T12:00:00Z"));
        let text = render(&s, at("2026-11-18T11:10:00Z"));
        assert!(text.contains("\nrampart_clock_offset_seconds{source=\"http_date\"} -0.25\n"));
        assert!(text.contains("\nrampart_policy_age_seconds 0\n"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn an_unreachable_agent_is_up_0_and_nothing_else() {
        assert_eq!(
            unreachable(),
            "# HELP rampart_up 1 when the agent answered the status request, 0 when it could not be reached.\n\
             # TYPE rampart_up gauge\nrampart_up 0\n"
        );
    }
}
