//! The endpoint probes behind doctor's "network:" checks: each endpoint of
//! the agent's own network check ([`crate::network::targets`]) asked over
//! HTTP(S) stage by stage, with the same trust, its failure a
//! [`Failure`] (as the network check's), its answer judged by what the
//! endpoint is for ([`answer_verdict`]).

use std::net::SocketAddr;
use std::time::Duration;

use super::{CheckResult, Verdict, check};
use crate::network::Endpoint;

pub use crate::network::{Failure, Stage};

/// The outcome of probing one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server answered with this HTTP status.
    Answered { addr: SocketAddr, status: u16 },
    /// The exchange failed; its stage is `Failure::stage`.
    Failed(Failure),
}

/// One of the endpoints the agent's network check reaches
/// ([`crate::network::targets`]), probed over HTTP(S).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub endpoint: Endpoint,
    pub url: String,
    pub result: ProbeResult,
}

/// An HTTP status in words: "HTTP 501 (Not Implemented)".
pub fn http_status_words(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("HTTP {status} ({reason})"),
        None => format!("HTTP {status}"),
    }
}

/// Whether an endpoint's HTTP answer is what the device needs from it, and
/// the next step when it is not. Doctor probes with `HEAD` and no
/// credential: a collector that asks for the deployment secret (401, 403)
/// or takes only `POST` (405) is there and working; the agent's own answer
/// from it is the "IT reporting credential" check.
pub fn answer_verdict(endpoint: Endpoint, status: u16) -> (Verdict, &'static str) {
    let success = (200..300).contains(&status) || status == 304;
    match endpoint {
        Endpoint::PolicyServer if success => (Verdict::Pass, ""),
        Endpoint::PolicyServer => (
            Verdict::Fail,
            "the server is reachable but does not serve the policy document: IT must check the policy URL",
        ),
        // Duo answers its API's paths; any answer shows it is there (the
        // "Duo keys" check asks it properly).
        Endpoint::Duo => (Verdict::Pass, ""),
        Endpoint::Reporting if status < 400 || matches!(status, 401 | 403 | 405) => {
            (Verdict::Pass, "")
        }
        Endpoint::Reporting => (
            Verdict::Fail,
            "the report collector is reachable but failing: IT must check the collector (its log, and that it takes POST at this URL); reports wait on this device until then",
        ),
        Endpoint::OfflineGuide if status < 400 => (Verdict::Pass, ""),
        Endpoint::OfflineGuide => (
            Verdict::Fail,
            "the employee cannot open the offline-access guide: IT must check links.offline_guide_url in the policy",
        ),
    }
}

pub(super) fn probe_check(p: &Probe) -> CheckResult {
    let name = format!("network: {}", p.endpoint.label());
    match &p.result {
        ProbeResult::Answered { addr, status } => {
            let (verdict, fix) = answer_verdict(p.endpoint, *status);
            let figure = if verdict == Verdict::Pass {
                format!("{} ({addr}): {}", p.url, http_status_words(*status))
            } else {
                format!("{} ({addr}) answered {}", p.url, http_status_words(*status))
            };
            check(&name, verdict, figure, fix)
        }
        ProbeResult::Failed(failure) => {
            // The vocabulary's words and next step; the stage and the raw
            // text after them, for whoever reads a support bundle.
            let host = crate::network::url_host_port(&p.url)
                .map(|(host, port)| crate::network::display_host(&host, port))
                .unwrap_or_else(|| p.url.clone());
            let cause = failure.cause_at(p.endpoint, host);
            check(
                &name,
                Verdict::Fail,
                format!(
                    "{} ({}: {} stage: {failure})",
                    cause.words(),
                    p.url,
                    failure.stage().label()
                ),
                cause.next_step(),
            )
        }
    }
}

/// Probes `url` stage by stage: DNS, TCP, then TLS and HTTP with a HEAD
/// request (reqwest, rustls/ring), trusting the system's roots and
/// `extra_roots` ([`crate::network::extra_roots`]). Each stage within
/// `timeout`.
pub async fn probe(
    url: &str,
    timeout: Duration,
    extra_roots: &[reqwest::Certificate],
) -> ProbeResult {
    let failed = ProbeResult::Failed;
    let Some((host, port)) = crate::network::url_host_port(url) else {
        return failed(Failure::Dns(format!("\"{url}\" is not an http(s) URL")));
    };
    let addr = match crate::network::reach(&host, port, timeout).await {
        Ok(addr) => addr,
        Err(failure) => return failed(failure),
    };
    let client = match crate::network::client_at(
        &host,
        addr,
        crate::network::Timeouts {
            connect: timeout,
            total: timeout * 2,
        },
        extra_roots,
        concat!("rampart-agent-doctor/", env!("CARGO_PKG_VERSION")),
    ) {
        Ok(c) => c,
        Err(e) => return failed(Failure::Tls(format!("cannot set up TLS: {e}"))),
    };
    let https = url
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
    match client.head(url).send().await {
        Ok(response) => ProbeResult::Answered {
            addr,
            status: response.status().as_u16(),
        },
        Err(e) => {
            let detail = crate::error_chain(&e);
            match crate::network::certificate_refusal(&e) {
                Some(dates) => failed(
                    crate::network::with_issuer(
                        Failure::Certificate {
                            dates,
                            detail,
                            issuer: None,
                        },
                        &host,
                        addr,
                        timeout,
                    )
                    .await,
                ),
                // TCP worked a moment ago: a failure while connecting is
                // the handshake.
                None if e.is_connect() && https => failed(Failure::Tls(detail)),
                None => failed(Failure::Http(detail)),
            }
        }
    }
}
