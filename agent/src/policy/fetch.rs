//! The imperative edge: one poll of the policy URL over HTTP(S).
//!
//! `GET policy.json` with `If-None-Match` / `If-Modified-Since` from the
//! accepted copy; on 304 nothing else is downloaded; on 200 the body is read
//! with a hard 1 MiB cap while streaming, then `policy.json.minisig` is
//! fetched. Redirects: at most 3, each hop held to the same URL rule
//! (https, or plain http to loopback only).

use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rampart_shared::policy::MAX_POLICY_BYTES;
use rampart_shared::status::ClockSource;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{StatusCode, Url};

use crate::clock::http_date::DateSample;

/// Largest `.minisig` file read (a real one is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;
pub const MAX_REDIRECTS: usize = 3;

/// Timeouts for one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchTimeouts {
    pub connect: Duration,
    /// For each request as a whole, body included: a server that stalls
    /// mid-body cannot hold the poll forever.
    pub request: Duration,
}

impl Default for FetchTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// What one poll found.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// The install config has no `policy_url`.
    NotConfigured,
    /// 304: the accepted copy is current.
    NotModified,
    Fetched(Fetched),
    Failed(FetchError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub url: String,
    pub document: Vec<u8>,
    pub signature: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Client(String),
    #[error("{url}: no answer within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error("{url}: cannot connect: {detail}")]
    Connect {
        url: String,
        detail: String,
        /// What kind of failure, for the vocabulary (`FetchError::cause`).
        failure: crate::network::Failure,
    },
    #[error("{url}: redirect refused: {detail}")]
    Redirect { url: String, detail: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the body is larger than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("{url}: the signature is not text")]
    SignatureNotText { url: String },
    #[error("{url}: {detail}")]
    Transport { url: String, detail: String },
    /// The URL itself is refused before anything is sent.
    #[error(transparent)]
    Url(#[from] UrlError),
}

impl FetchError {
    /// The failure in the shared vocabulary, where it has a cause there:
    /// the policy server refusing, silent, untrusted or answering an error.
    pub fn cause(&self) -> Option<rampart_shared::cause::Cause> {
        use crate::network::{Endpoint, display_host, url_host_port};
        use rampart_shared::cause::Cause;
        let host = |url: &str| url_host_port(url).map(|(h, p)| display_host(&h, p));
        let endpoint = Endpoint::PolicyServer;
        match self {
            Self::Timeout { url, secs } => Some(Cause::Timeout {
                endpoint,
                host: host(url)?,
                after_ms: secs.saturating_mul(1000),
            }),
            Self::Connect { url, failure, .. } => Some(failure.cause_at(endpoint, host(url)?)),
            Self::Status { url, status } => Some(Cause::HttpStatus {
                endpoint,
                host: host(url)?,
                status: *status,
            }),
            _ => None,
        }
    }
}

/// `url::ParseError`, named through `Url` because the agent reaches the
/// `url` crate only through reqwest's re-export.
pub type UrlParseError = <Url as std::str::FromStr>::Err;

/// Why a URL the agent would fetch from (policy, release feed, redirect hop)
/// is refused. The words name the URL and say what to use instead. The URL
/// is kept as the parser wrote it, as text: a `Url` would make this error,
/// and every error holding it, several times larger.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    // The parser's words are part of the message, so they are not also a
    // `source`: an error chain would say them twice.
    #[error("\"{url}\" is not a URL: {reason}")]
    NotAUrl { url: String, reason: UrlParseError },
    #[error(
        "\"{0}\" uses plain http, which is only allowed to loopback (127.0.0.0/8, ::1, localhost): use https"
    )]
    PlainHttp(String),
    #[error("\"{url}\" has scheme {scheme}, expected https")]
    Scheme { url: String, scheme: String },
}

/// Checks a policy URL: `https://`, or `http://` to a loopback address.
pub fn check_policy_url(url: &str) -> Result<Url, UrlError> {
    let parsed = Url::parse(url).map_err(|reason| UrlError::NotAUrl {
        url: url.to_owned(),
        reason,
    })?;
    check_url(&parsed)?;
    Ok(parsed)
}

fn check_url(url: &Url) -> Result<(), UrlError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(UrlError::PlainHttp(url.to_string())),
        other => Err(UrlError::Scheme {
            url: url.to_string(),
            scheme: other.to_owned(),
        }),
    }
}

fn is_loopback(url: &Url) -> bool {
    // `Url` has already normalised the host (`0x7f.1` is `127.0.0.1`).
    url.host_str().is_some_and(|host| {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

fn build_client(
    timeouts: FetchTimeouts,
    extra_ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, FetchError> {
    // reqwest is built without a bundled crypto provider (aws-lc-rs needs
    // a C/cmake build); ring is the process-wide one. Already installed
    // (by an earlier client) is fine.
    crate::install_tls_provider();
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let detail = format!("more than {MAX_REDIRECTS} redirects");
            attempt.error(detail)
        } else if let Err(e) = check_url(attempt.url()) {
            attempt.error(e)
        } else {
            attempt.follow()
        }
    });
    let builder = reqwest::Client::builder()
        .user_agent(concat!("rampart-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .redirect(redirects);
    crate::network::trusting_extra_ca(builder, extra_ca_file)
        .build()
        .map_err(|e| FetchError::Client(format!("cannot set up the HTTP client: {}", chain(&e))))
}

/// `.../policy.json` -> `.../policy.json.minisig` (query kept off).
pub fn signature_url(url: &Url) -> Url {
    let mut sig = url.clone();
    sig.set_path(&format!("{}.minisig", url.path()));
    sig.set_query(None);
    sig.set_fragment(None);
    sig
}

/// A reusable HTTP client for policy polls: one connection pool and TLS
/// session cache for every poll. Built on the first poll, not at start-up:
/// loading the system's roots takes milliseconds that the first status
/// answer should not wait for. Clones share the client.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: Arc<OnceLock<Result<reqwest::Client, FetchError>>>,
    timeouts: FetchTimeouts,
    /// The install config's `extra_ca_file`.
    extra_ca_file: Option<std::path::PathBuf>,
    last_answer: Arc<Mutex<Option<Answered>>>,
}

/// The policy server's last answer to a poll (200 or 304): the network
/// check counts it as the server reached, without connecting again.
#[derive(Debug, Clone)]
pub struct Answered {
    pub addr: SocketAddr,
    pub at: Instant,
    /// Its `Date` header, for the clock's fallback.
    pub date: Option<DateSample>,
}

impl Fetcher {
    pub fn new(timeouts: FetchTimeouts, extra_ca_file: Option<std::path::PathBuf>) -> Self {
        Self {
            client: Arc::default(),
            timeouts,
            extra_ca_file,
            last_answer: Arc::default(),
        }
    }

    /// The last poll the server answered, if any.
    pub fn last_answer(&self) -> Option<Answered> {
        self.last_answer.lock().ok().and_then(|a| a.clone())
    }

    fn remember(&self, url: &Url, response: &reqwest::Response, sent: DateTime<Utc>) {
        let Some(addr) = response.remote_addr() else {
            return;
        };
        let date = response
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .zip(url.host_str())
            .map(|(date, host)| DateSample {
                host: crate::network::display_host(
                    host.trim_start_matches('[').trim_end_matches(']'),
                    url.port_or_known_default().unwrap_or(443),
                ),
                source: ClockSource::HttpDate,
                date: date.to_owned(),
                sent,
                received: Utc::now(),
            });
        if let Ok(mut last) = self.last_answer.lock() {
            *last = Some(Answered {
                addr,
                at: Instant::now(),
                date,
            });
        }
    }

    fn client(&self) -> Result<&reqwest::Client, FetchError> {
        self.client
            .get_or_init(|| build_client(self.timeouts, self.extra_ca_file.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// One poll. `etag` / `last_modified` are the accepted copy's validators.
    pub async fn fetch(
        &self,
        url: &Url,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> FetchOutcome {
        match self.fetch_inner(url, etag, last_modified).await {
            Ok(outcome) => outcome,
            Err(e) => FetchOutcome::Failed(e),
        }
    }

    async fn fetch_inner(
        &self,
        url: &Url,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<FetchOutcome, FetchError> {
        check_url(url)?;
        let mut request = self.client()?.get(url.clone());
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let sent = Utc::now();
        let response = request.send().await.map_err(|e| self.classify(url, e))?;
        let status = response.status();
        if matches!(status, StatusCode::OK | StatusCode::NOT_MODIFIED) {
            self.remember(url, &response, sent);
        }
        if status == StatusCode::NOT_MODIFIED && (etag.is_some() || last_modified.is_some()) {
            tracing::debug!(%url, "policy not modified");
            return Ok(FetchOutcome::NotModified);
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (new_etag, new_last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let document = self.read_body(url, response, MAX_POLICY_BYTES).await?;

        let sig_url = signature_url(url);
        let response = self
            .client()?
            .get(sig_url.clone())
            .send()
            .await
            .map_err(|e| self.classify(&sig_url, e))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status {
                url: sig_url.to_string(),
                status: response.status().as_u16(),
            });
        }
        let signature = self
            .read_body(&sig_url, response, MAX_SIGNATURE_BYTES)
            .await?;
        let signature = String::from_utf8(signature).map_err(|_| FetchError::SignatureNotText {
            url: sig_url.to_string(),
        })?;
        tracing::debug!(%url, bytes = document.len(), "policy downloaded");
        Ok(FetchOutcome::Fetched(Fetched {
            url: url.to_string(),
            document,
            signature,
            etag: new_etag,
            last_modified: new_last_modified,
        }))
    }

    /// A GET whose body the caller reads (the release feed and archives,
    /// `update::fetch`): the same URL rule, redirects and failure words as
    /// a policy poll. Anything but 200 is a failure.
    pub async fn get(&self, url: &Url, accept: &str) -> Result<reqwest::Response, FetchError> {
        check_url(url)?;
        let response = self
            .client()?
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| self.classify(url, e))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    /// Reads a body, giving up as soon as it passes `max` bytes: a hostile
    /// or broken server cannot make the agent buffer more than that.
    pub async fn read_body(
        &self,
        url: &Url,
        mut response: reqwest::Response,
        max: usize,
    ) -> Result<Vec<u8>, FetchError> {
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            max,
        };
        if response
            .content_length()
            .is_some_and(|len| len > max as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(url, e))? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    pub fn classify(&self, url: &Url, e: reqwest::Error) -> FetchError {
        let url = url.to_string();
        if e.is_timeout() {
            FetchError::Timeout {
                url,
                secs: self.timeouts.request.as_secs().max(1),
            }
        } else if e.is_redirect() {
            FetchError::Redirect {
                url,
                detail: chain_sources(&e),
            }
        } else if e.is_connect() {
            let detail = chain_sources(&e);
            FetchError::Connect {
                failure: crate::network::connect_failure(&e, detail.clone()),
                url,
                detail,
            }
        } else {
            FetchError::Transport {
                url,
                detail: chain(&e),
            }
        }
    }
}

/// An error and its causes, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Only the causes: reqwest's own top line repeats the URL.
fn chain_sources(e: &reqwest::Error) -> String {
    match e.source() {
        Some(s) => chain(s),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_plain_http_only_to_loopback() {
        for ok in [
            "https://policy.example.com/policy.json",
            "http://127.0.0.1:8080/policy.json",
            "http://127.8.9.10/p.json",
            "http://[::1]:80/p.json",
            "http://localhost/p.json",
            "http://LOCALHOST:1/p.json",
        ] {
            assert!(check_policy_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://policy.example.com/policy.json",
                "only allowed to loopback",
            ),
            ("http://10.0.0.1/p.json", "only allowed to loopback"),
            (
                "http://localhost.evil.com/p.json",
                "only allowed to loopback",
            ),
            ("ftp://127.0.0.1/p.json", "has scheme ftp"),
            ("policy.json", "is not a URL"),
        ] {
            let err = check_policy_url(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    /// The words of each refusal, whole: the install config's errors and a
    /// refused redirect quote them.
    #[test]
    fn refusals_quote_the_url() {
        let words = |url: &str| check_policy_url(url).unwrap_err().to_string();
        assert_eq!(
            words("http://p.example.com/x"),
            "\"http://p.example.com/x\" uses plain http, which is only allowed to loopback \
             (127.0.0.0/8, ::1, localhost): use https"
        );
        assert_eq!(
            words("ftp://h.example/x"),
            "\"ftp://h.example/x\" has scheme ftp, expected https"
        );
        assert_eq!(
            words("policy.json"),
            "\"policy.json\" is not a URL: relative URL without a base"
        );
    }

    #[test]
    fn the_signature_sits_beside_the_document() {
        let url = Url::parse("https://h.example/a/policy.json?v=2").unwrap();
        assert_eq!(
            signature_url(&url).as_str(),
            "https://h.example/a/policy.json.minisig"
        );
    }
}
