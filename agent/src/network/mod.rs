//! "Is the internet there?" answered for the endpoints this device needs:
//! the policy server, the MFA provider's API, IT's report collector, and the
//! offline-access guide the employee must open. Each is resolved and
//! connected to (TCP); a failure names the stage that failed. A reached
//! policy server or guide host is then asked for its `Date` header (HTTP(S)
//! `HEAD`, the same trust as doctor's), and a reached Duo API for its time
//! (`/ping`), with the request's send and receive instants: the clock
//! check's measure when no time server answers
//! ([`crate::clock::http_date`]). That request's failure does not change
//! the verdict (TCP decides reachability), except a refused certificate.
//!
//! The agent's periodic check leaves IT's servers alone ([`periodic`]): a
//! recent poll answer stands for the policy server, and the report
//! collector is left to deliveries.
//!
//! [`check`] is the only I/O; [`targets`], [`periodic`] and [`to_section`]
//! are pure.
//! `rampart-agent doctor` probes the same [`targets`], over HTTP(S) with the
//! same trust ([`extra_roots`]: the system's roots and the install config's
//! `extra_ca_file`), so that doctor and status name the same endpoints.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::cause::{Cause, Problem};
use rampart_shared::policy::{Policy, Provider};
use rampart_shared::status::{ClockSource, NetworkSection, NetworkState};
use tokio::net::TcpStream;

use crate::clock::http_date::DateSample;
use crate::config::InstallConfig;

pub use rampart_shared::cause::Endpoint;

mod failure;
pub use failure::{Failure, Stage, certificate_refusal, connect_failure, with_issuer};

/// Whether the network check asks `endpoint` for its time: the policy
/// server and the guide's host, which serve documents, for their `Date`
/// header; Duo's API (the policy's provider is Duo) for its own time, by
/// `/ping` (unsigned, made for this). Not IT's report collector: it takes
/// reports, not probes.
pub fn asked_for_date(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::PolicyServer | Endpoint::OfflineGuide | Endpoint::Duo
    )
}

/// Duo's `/ping` under the Duo target's URL (`https://{api_host}/`).
const DUO_PING_PATH: &str = "auth/v2/ping";

/// One endpoint to reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    /// The URL the device uses (doctor probes it over HTTP).
    pub url: String,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn label(&self) -> &'static str {
        self.endpoint.label()
    }

    fn display(&self) -> String {
        display_host(&self.host, self.port)
    }
}

/// "example.com", "example.com:8443", "[::1]:9": a host as people write it.
pub fn display_host(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else if port == 443 {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub target: Target,
    pub result: Result<SocketAddr, Failure>,
    /// The endpoint's `Date` header, when it was reached and sent one.
    pub date: Option<DateSample>,
}

impl Reached {
    /// Reached at TCP, then refused at TLS: the endpoint is not usable.
    fn failure(&self) -> Option<&Failure> {
        self.result.as_ref().err()
    }
}

/// The `Date` headers of the endpoints that sent one.
pub fn date_samples(results: &[Reached]) -> Vec<DateSample> {
    results.iter().filter_map(|r| r.date.clone()).collect()
}

/// The endpoints this device needs, from the policy in force and the install
/// config, without duplicates. Never empty: the offline-access guide is always
/// needed.
pub fn targets(policy: &Policy, config: Option<&InstallConfig>) -> Vec<Target> {
    let mut found: Vec<Target> = Vec::new();
    let mut add = |endpoint, url: &str| {
        if let Some((host, port)) = url_host_port(url)
            && !found.iter().any(|t| t.host == host && t.port == port)
        {
            found.push(Target {
                endpoint,
                url: url.to_owned(),
                host,
                port,
            });
        }
    };
    if let Some(url) = config.and_then(|c| c.policy_url.as_deref()) {
        add(Endpoint::PolicyServer, url);
    }
    if let Provider::Duo { api_host, .. } = &policy.mfa.provider {
        add(Endpoint::Duo, &format!("https://{api_host}/"));
    }
    if let Some(reporting) = &policy.reporting {
        add(Endpoint::Reporting, &reporting.url);
    }
    add(Endpoint::OfflineGuide, &policy.links.offline_guide_url);
    found
}

/// What the periodic check need not ask: IT's report collector, which
/// deliveries alone talk to (it takes reports, not probes; its state is
/// `status.reporting`), and IT's policy server when a poll it answered is
/// younger than `fresh`: that poll counts as the server reached, with its
/// `Date`. From a fleet, a bare connection to each of IT's servers every
/// 15 minutes is load with no request in it. Returns the targets left to
/// probe and the results already known. Pure; doctor probes every target.
pub fn periodic(
    targets: Vec<Target>,
    poll: Option<&crate::policy::fetch::Answered>,
    now: std::time::Instant,
    fresh: Duration,
) -> (Vec<Target>, Vec<Reached>) {
    let recent = poll.filter(|p| now.saturating_duration_since(p.at) < fresh);
    let mut known = Vec::new();
    let mut left = Vec::new();
    for target in targets {
        match (target.endpoint, recent) {
            (Endpoint::Reporting, _) => {}
            (Endpoint::PolicyServer, Some(poll)) => known.push(Reached {
                target,
                result: Ok(poll.addr),
                date: poll.date.clone(),
            }),
            _ => left.push(target),
        }
    }
    (left, known)
}

/// Why the install config's `extra_ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtraCaError {
    #[error("the CA file {} cannot be read ({source})", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the CA file {} is not PEM certificates ({detail})", path.display())]
    NotPem {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("the CA file {} holds no certificate", path.display())]
    Empty { path: std::path::PathBuf },
}

/// The certificates the install config's `extra_ca_file` adds to the
/// system's roots (an on-prem TLS proxy's CA). The one place that reads it:
/// the Duo client and doctor's probes both trust what this returns.
pub fn extra_roots(file: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ExtraCaError> {
    let path = file.to_owned();
    let pem = std::fs::read(file).map_err(|source| ExtraCaError::Read {
        path: path.clone(),
        source,
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ExtraCaError::NotPem {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(ExtraCaError::Empty { path });
    }
    // reqwest only decodes the PEM armour; a certificate rustls cannot read
    // would fail later, in every TLS client that loads it. Say it here.
    let mut store = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for (n, der) in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).enumerate() {
        let der = der.map_err(|e| ExtraCaError::NotPem {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        store.add(der).map_err(|e| ExtraCaError::NotPem {
            path: path.clone(),
            detail: format!("certificate {} cannot be read: {e}", n + 1),
        })?;
    }
    Ok(certs)
}

/// What the agent's own clients trust besides the system's roots: the
/// install config's `extra_ca_file`, or nothing when there is none or it
/// is unusable (with a warning: the system's roots may still do, and
/// doctor says why).
pub fn usable_extra_roots(file: Option<&std::path::Path>) -> Vec<reqwest::Certificate> {
    match file.map(extra_roots) {
        None => Vec::new(),
        Some(Ok(roots)) => roots,
        Some(Err(error)) => {
            tracing::warn!(%error, "the extra CA file is left out");
            Vec::new()
        }
    }
}

/// `builder` trusting [`usable_extra_roots`]: every client that talks to
/// IT's or the internet's servers (policy polls, report deliveries, release
/// downloads, the network check) sees through the same TLS proxy.
pub fn trusting_extra_ca(
    builder: reqwest::ClientBuilder,
    file: Option<&std::path::Path>,
) -> reqwest::ClientBuilder {
    builder.tls_certs_merge(usable_extra_roots(file))
}

/// Host and port of an `http(s)://` URL (default ports filled in), read
/// by the `url` crate (through reqwest), the parser the policy fetcher uses. An IPv6
/// host comes without its brackets.
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return None;
    }
    let host = parsed
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    Some((host.to_owned(), parsed.port_or_known_default()?))
}

/// Resolves and connects to every target at once, each within `timeout`.
/// A reached endpoint is then asked for its `Date` within `timeout` more,
/// trusting the system's roots and `extra_roots`.
pub async fn check(
    targets: Vec<Target>,
    timeout: Duration,
    extra_roots: Vec<reqwest::Certificate>,
) -> Vec<Reached> {
    let handles: Vec<_> = targets
        .into_iter()
        .map(|target| {
            let roots = extra_roots.clone();
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(timeout, reach(&target.host, target.port, timeout))
                        .await
                    {
                        Ok(result) => result,
                        Err(_) => Err(Failure::Timeout(timeout)),
                    };
                let (result, date) = match result {
                    Ok(addr) if asked_for_date(target.endpoint) => {
                        match tokio::time::timeout(timeout, date_of(&target, addr, timeout, &roots))
                            .await
                        {
                            Ok(Err(refused)) => (
                                Err(with_issuer(refused, &target.host, addr, timeout).await),
                                None,
                            ),
                            Ok(Ok(date)) => (Ok(addr), date),
                            Err(_) => (Ok(addr), None),
                        }
                    }
                    other => (other, None),
                };
                Reached {
                    target,
                    result,
                    date,
                }
            })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        // A check task only ends by returning; a panic there is a bug that
        // should not take the agent down, so it is dropped from the result.
        if let Ok(reached) = handle.await {
            results.push(reached);
        }
    }
    results
}

/// How long a probe may take to connect, and in all.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

/// An HTTP client for one probe of `host`: it goes to `addr`, the address
/// just reached (not wherever DNS says next), trusts `extra_roots` beside
/// the system's, and follows no redirect. The network check's `Date` probe
/// and doctor's endpoint probe both use it.
pub fn client_at(
    host: &str,
    addr: SocketAddr,
    timeouts: Timeouts,
    extra_roots: &[reqwest::Certificate],
    user_agent: &'static str,
) -> reqwest::Result<reqwest::Client> {
    crate::install_tls_provider();
    reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .resolve(host, addr)
        .tls_certs_merge(extra_roots.iter().cloned())
        .build()
}

/// A `HEAD` of the target's URL at the address just reached (for Duo, a
/// `GET` of `/ping`): its `Date` header (Duo's `time`) and when the request
/// went out and the answer came back. `None` when the exchange fails or the
/// answer has no time; logged at debug. A refused certificate is the
/// endpoint's failure.
async fn date_of(
    target: &Target,
    addr: SocketAddr,
    timeout: Duration,
    extra_roots: &[reqwest::Certificate],
) -> Result<Option<DateSample>, Failure> {
    let sample = async {
        let client = client_at(
            &target.host,
            addr,
            Timeouts {
                connect: timeout,
                total: timeout,
            },
            extra_roots,
            concat!("rampart-agent/", env!("CARGO_PKG_VERSION")),
        )
        .inspect_err(|e| tracing::debug!(error = %e, "no HTTP client for the Date header"))
        .ok()?;
        let sent = Utc::now();
        let request = match target.endpoint {
            Endpoint::Duo => client.get(format!(
                "{}/{DUO_PING_PATH}",
                target.url.trim_end_matches('/')
            )),
            _ => client.head(&target.url),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let detail = crate::error_chain(&e);
                tracing::debug!(url = %target.url, error = %detail, "no time from the endpoint");
                return Some(Err(certificate_refusal(&e).map(|dates| {
                    Failure::Certificate {
                        dates,
                        detail,
                        issuer: None,
                    }
                })));
            }
        };
        let received = Utc::now();
        let (source, date) = match target.endpoint {
            // Duo's time, whole seconds like a Date header: one kind of
            // sample, one estimate (`clock::http_date`).
            Endpoint::Duo => {
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .await
                    .inspect_err(|e| tracing::debug!(error = %e, "Duo's /ping unread"))
                    .ok()?;
                let time = crate::duo::client::parse_envelope(status, &body)
                    .inspect_err(|e| tracing::debug!(error = %e, "Duo's /ping refused"))
                    .ok()?["time"]
                    .as_i64()
                    .and_then(|t| DateTime::from_timestamp(t, 0))?;
                (ClockSource::DuoPing, crate::duo::sign::date_header(time))
            }
            _ => (
                ClockSource::HttpDate,
                response
                    .headers()
                    .get(reqwest::header::DATE)?
                    .to_str()
                    .ok()?
                    .to_owned(),
            ),
        };
        Some(Ok(DateSample {
            host: target.display(),
            source,
            date,
            sent,
            received,
        }))
    };
    match sample.await {
        None => Ok(None),
        Some(Ok(sample)) => Ok(Some(sample)),
        Some(Err(None)) => Ok(None),
        Some(Err(Some(refused))) => Err(refused),
    }
}

/// Resolves `host` and connects to its addresses in turn, each step within
/// `step`: the first address that accepts, or why none did (a refusal named
/// as such). The network check and doctor's probe both start here.
pub async fn reach(host: &str, port: u16, step: Duration) -> Result<SocketAddr, Failure> {
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(step, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => return Err(Failure::Dns(e.to_string())),
            Err(_) => {
                return Err(Failure::Dns(format!(
                    "no answer within {} s",
                    step.as_secs()
                )));
            }
        };
    let Some(&first) = addrs.first() else {
        return Err(Failure::Dns(format!("{host} has no addresses")));
    };
    let mut last = Failure::Tcp(first.to_string());
    for addr in addrs {
        match tokio::time::timeout(step, TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(addr),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Failure::Refused(format!("{addr}: {e}"));
            }
            Ok(Err(e)) => last = Failure::Tcp(format!("{addr}: {e}")),
            Err(_) => last = Failure::Timeout(step),
        }
    }
    Err(last)
}

/// The network section in plain words: online only when every endpoint was
/// reached; otherwise which ones failed, and at which stage.
pub fn to_section(results: &[Reached], checked_at: DateTime<Utc>) -> NetworkSection {
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.result
                .as_ref()
                .err()
                .map(|e| format!("{} ({}): {e}", r.target.label(), r.target.display()))
        })
        .collect();
    let (state, detail) = if results.is_empty() {
        (NetworkState::Unknown, "nothing to check".to_owned())
    } else if failed.is_empty() {
        let reached: Vec<String> = results
            .iter()
            .map(|r| format!("{} ({})", r.target.label(), r.target.display()))
            .collect();
        (
            NetworkState::Online,
            format!("reached {}", reached.join(", ")),
        )
    } else {
        (
            NetworkState::Offline,
            format!("cannot reach {}", failed.join("; ")),
        )
    };
    NetworkSection {
        state,
        checked_at: Some(checked_at),
        detail,
        problems: problems(results),
    }
}

/// Each failed endpoint by cause; when nothing at all answered, one
/// "offline" instead (the fix is the connection, not the endpoints).
pub fn problems(results: &[Reached]) -> Vec<Problem> {
    let failed: Vec<(&Reached, &Failure)> = results
        .iter()
        .filter_map(|r| r.failure().map(|f| (r, f)))
        .collect();
    if failed.len() > 1
        && failed.len() == results.len()
        && failed.iter().all(|(_, f)| f.is_silence())
    {
        let details: Vec<String> = failed
            .iter()
            .map(|(r, f)| format!("{}: {f}", r.target.display()))
            .collect();
        return vec![Problem::new(
            Cause::Offline {
                endpoints: u32::try_from(failed.len()).unwrap_or(u32::MAX),
            },
            details.join("; "),
        )];
    }
    failed
        .into_iter()
        .map(|(r, f)| Problem::new(f.cause(&r.target), f.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_shared::policy::Reporting;

    #[test]
    fn the_policy_server_the_guide_and_duo_are_asked_for_the_time() {
        let asked: Vec<bool> = [
            Endpoint::PolicyServer,
            Endpoint::Duo,
            Endpoint::Reporting,
            Endpoint::OfflineGuide,
        ]
        .map(asked_for_date)
        .to_vec();
        assert_eq!(asked, [true, true, false, true]);
    }

    #[test]
    fn hosts_and_ports_from_urls() {
        assert_eq!(
            url_host_port("https://example.com/a?b"),
            Some(("example.com".into(), 443))
        );
        assert_eq!(
            url_host_port("HTTPS://example.com:8443"),
            Some(("example.com".into(), 8443))
        );
        assert_eq!(
            url_host_port("http://127.0.0.1:8080/p"),
            Some(("127.0.0.1".into(), 8080))
        );
        assert_eq!(url_host_port("https://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(url_host_port("ftp://example.com"), None);
        // WHATWG reads a missing host's slashes away: the fetcher, with the
        // same parser, would connect to "x" too, so the check names "x".
        assert_eq!(url_host_port("https:///x"), Some(("x".into(), 443)));
        assert_eq!(url_host_port("https://"), None);
    }

    /// Issue 18: every check opened a bare connection to each of IT's
    /// servers. A fresh poll answer stands for the policy server (with its
    /// `Date`); the report collector is left to deliveries; an old poll
    /// does not count.
    #[test]
    fn the_periodic_check_leaves_it_servers_alone() {
        let target = |endpoint, host: &str| Target {
            endpoint,
            url: format!("https://{host}/"),
            host: host.into(),
            port: 443,
        };
        let targets = vec![
            target(Endpoint::PolicyServer, "policy.example.com"),
            target(Endpoint::Duo, "api-1.duosecurity.com"),
            target(Endpoint::Reporting, "collect.example.com"),
            target(Endpoint::OfflineGuide, "docs.example.com"),
        ];
        let now = std::time::Instant::now();
        let poll = crate::policy::fetch::Answered {
            addr: "192.0.2.7:443".parse().unwrap(),
            at: now - Duration::from_secs(60),
            date: None,
        };
        let fresh = Duration::from_secs(900);
        let (left, known) = periodic(targets.clone(), Some(&poll), now, fresh);
        let hosts: Vec<&str> = left.iter().map(|t| t.host.as_str()).collect();
        assert_eq!(hosts, ["api-1.duosecurity.com", "docs.example.com"]);
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].target.endpoint, Endpoint::PolicyServer);
        assert_eq!(known[0].result, Ok(poll.addr));

        let stale = crate::policy::fetch::Answered {
            at: now - Duration::from_secs(901),
            ..poll
        };
        let (left, known) = periodic(targets.clone(), Some(&stale), now, fresh);
        assert_eq!(left.len(), 3, "the policy server is asked again");
        assert!(known.is_empty());
        let (left, _) = periodic(targets, None, now, fresh);
        assert!(left.iter().all(|t| t.endpoint != Endpoint::Reporting));
    }

    #[test]
    fn targets_cover_every_endpoint_once() {
        let mut policy = Policy::default();
        policy.links.offline_guide_url = "https://docs.example.com/guide".into();
        policy.reporting = Some(Reporting {
            url: "https://docs.example.com/report".into(),
            interval_secs: 900,
        });
        let config = InstallConfig {
            device_id: "d".into(),
            policy_url: Some("https://policy.example.com:8443/p.json".into()),
            public_keys: vec![],
            allow_unsigned_local_policy: false,
            ..InstallConfig::default()
        };
        let t = targets(&policy, Some(&config));
        let labels: Vec<_> = t
            .iter()
            .map(|t| (t.label(), t.host.as_str(), t.port))
            .collect();
        assert_eq!(
            labels,
            [
                ("policy server", "policy.example.com", 8443),
                ("IT reporting", "docs.example.com", 443),
            ]
        );
        assert_eq!(
            targets(&Policy::default(), None).len(),
            1,
            "the guide is always needed"
        );
    }

    #[test]
    fn section_names_the_failing_stage() {
        let target = |endpoint, host: &str, port| Target {
            endpoint,
            url: format!("https://{host}:{port}/"),
            host: host.into(),
            port,
        };
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let ok = Reached {
            target: target(Endpoint::PolicyServer, "policy.example.com", 443),
            result: Ok("192.0.2.1:443".parse().unwrap()),
            date: None,
        };
        let dns = Reached {
            target: target(Endpoint::OfflineGuide, "docs.example.com", 443),
            result: Err(Failure::Dns("failed to lookup address information".into())),
            date: None,
        };
        let online = to_section(std::slice::from_ref(&ok), now);
        assert_eq!(online.state, NetworkState::Online);
        assert_eq!(online.detail, "reached policy server (policy.example.com)");
        let offline = to_section(&[ok, dns], now);
        assert_eq!(offline.state, NetworkState::Offline);
        assert_eq!(
            offline.detail,
            "cannot reach offline-access guide (docs.example.com): DNS lookup failed: failed to lookup address information"
        );
    }

    #[tokio::test]
    async fn reaches_a_listener_and_names_a_refused_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let targets = [
            Target {
                endpoint: Endpoint::PolicyServer,
                url: format!("http://127.0.0.1:{open}/"),
                host: "127.0.0.1".into(),
                port: open,
            },
            Target {
                endpoint: Endpoint::OfflineGuide,
                url: format!("https://127.0.0.1:{closed}/"),
                host: "127.0.0.1".into(),
                port: closed,
            },
        ];
        // A server that answers every request with a fixed Date header.
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nDate: Thu, 19 Nov 2026 08:26:40 GMT\r\n\
                              Content-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                });
            }
        });
        let results = check(targets.to_vec(), Duration::from_secs(2), Vec::new()).await;
        assert_eq!(
            results[0].result,
            Ok(format!("127.0.0.1:{open}").parse().unwrap())
        );
        let date = results[0].date.as_ref().expect("the Date header");
        assert_eq!(date.date, "Thu, 19 Nov 2026 08:26:40 GMT");
        assert_eq!(date.host, format!("127.0.0.1:{open}"));
        assert!(date.received >= date.sent);
        assert_eq!(results[1].date, None);
        assert!(
            matches!(&results[1].result, Err(Failure::Refused(e)) if e.contains("refused")),
            "{:?}",
            results[1]
        );
        // One endpoint refusing is that endpoint's cause, not "offline".
        let problems = problems(&results);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].cause,
            Cause::Refused {
                endpoint: results[1].target.endpoint,
                host: results[1].target.display(),
            }
        );
        assert!(problems[0].details.contains("refused"), "{problems:?}");
    }

    fn failed(endpoint: Endpoint, host: &str, failure: Failure) -> Reached {
        Reached {
            target: Target {
                endpoint,
                url: format!("https://{host}/"),
                host: host.into(),
                port: 443,
            },
            result: Err(failure),
            date: None,
        }
    }

    #[test]
    fn nothing_answering_is_offline_and_one_silent_endpoint_is_its_own_cause() {
        let silent = [
            failed(
                Endpoint::PolicyServer,
                "p.example",
                Failure::Dns("no such host".into()),
            ),
            failed(
                Endpoint::OfflineGuide,
                "g.example",
                Failure::Timeout(Duration::from_secs(5)),
            ),
        ];
        let p = problems(&silent);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].cause, Cause::Offline { endpoints: 2 });
        assert_eq!(
            p[0].details,
            "p.example: DNS lookup failed: no such host; g.example: no answer within 5 s"
        );

        // One refusal among silences: something answered, so each is named.
        let mixed = [
            failed(
                Endpoint::PolicyServer,
                "p.example",
                Failure::Refused("x".into()),
            ),
            failed(
                Endpoint::OfflineGuide,
                "g.example",
                Failure::Tcp("no route".into()),
            ),
        ];
        let names: Vec<&str> = problems(&mixed).iter().map(|p| p.cause.name()).collect();
        assert_eq!(names, ["refused", "unreachable"]);

        let cert = [failed(
            Endpoint::OfflineGuide,
            "g.example",
            Failure::Certificate {
                dates: false,
                detail: "invalid peer certificate: UnknownIssuer".into(),
                issuer: None,
            },
        )];
        assert_eq!(
            problems(&cert)[0].cause,
            Cause::UntrustedCertificate {
                endpoint: Endpoint::OfflineGuide,
                host: "g.example".into(),
                issuer: None
            }
        );
    }
}
