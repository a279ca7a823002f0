//! The network edge of self-update: the feed (1 MiB at most) and the
//! release archive, bounded three ways: a size cap (the feed's `size` for
//! the asset when it gives one, else [`DEFAULT_MAX_BYTES`]), an overall
//! deadline and a stall timeout (no byte for that long). The archive goes
//! to a file in the state directory's update area, never to /tmp.

use std::path::Path;
use std::time::Duration;

use reqwest::Url;
use tokio::io::AsyncWriteExt;

use crate::config::UpdateSourceKind;
use crate::network::{display_host, url_host_port};
use crate::policy::fetch::{FetchError, FetchTimeouts, Fetcher};

use super::release::{self, FeedError, Listing};

/// Without a size from the feed: far above a real release (about 15 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
const MAX_FEED_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadLimits {
    /// The whole download, from the request to the last byte.
    pub deadline: Duration,
    /// No byte for this long: the server is stalling.
    pub stall: Duration,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(10 * 60),
            stall: Duration::from_secs(60),
        }
    }
}

/// Why the feed or the archive could not be had: plain words (`words`,
/// naming the server and the figure) and the raw text for "Details".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{words}")]
pub struct NetFailure {
    pub words: String,
    pub details: String,
}

fn server(url: &str) -> String {
    url_host_port(url)
        .map(|(h, p)| display_host(&h, p))
        .unwrap_or_else(|| url.to_owned())
}

fn plain(url: &str, e: &FetchError) -> NetFailure {
    let host = server(url);
    let words = match e {
        FetchError::Timeout { secs, .. } => {
            format!("the release server {host} did not answer within {secs} s")
        }
        FetchError::Connect { .. } => format!("the release server {host} could not be reached"),
        FetchError::Status { status, .. } => {
            format!("the release server {host} answered with an error (HTTP {status})")
        }
        FetchError::TooLarge { max, .. } => {
            format!("the release server {host} sent more than {max} bytes")
        }
        FetchError::Url(_) | FetchError::Redirect { .. } => {
            format!("the release address {url} is not allowed (https only)")
        }
        _ => format!("the connection to the release server {host} broke off"),
    };
    NetFailure {
        words,
        details: e.to_string(),
    }
}

/// A client that could not be set up fails the first request, with the
/// policy poll's words.
fn fetcher(request: Duration, extra_ca_file: Option<&Path>) -> Fetcher {
    Fetcher::new(
        FetchTimeouts {
            connect: Duration::from_secs(10),
            request,
        },
        extra_ca_file.map(Path::to_owned),
    )
}

fn parse_url(url: &str) -> Result<Url, NetFailure> {
    crate::policy::fetch::check_policy_url(url).map_err(|e| NetFailure {
        words: format!("the release address {url} is not allowed (https only)"),
        details: e.to_string(),
    })
}

/// The feed's releases. `url` is the manifest, or the GitHub repository API
/// URL (`…/repos/OWNER/NAME`, whose `/releases` is read).
pub async fn listing(
    kind: UpdateSourceKind,
    url: &str,
    extra_ca_file: Option<&Path>,
) -> Result<Listing, NetFailure> {
    let url = match kind {
        UpdateSourceKind::Manifest => url.to_owned(),
        UpdateSourceKind::Github => format!("{}/releases", url.trim_end_matches('/')),
    };
    let parsed = parse_url(&url)?;
    let fetcher = fetcher(Duration::from_secs(30), extra_ca_file);
    let body = async {
        let response = fetcher.get(&parsed, "application/json").await?;
        fetcher.read_body(&parsed, response, MAX_FEED_BYTES).await
    }
    .await
    .map_err(|e| plain(&url, &e))?;
    let unreadable = |e: FeedError| NetFailure {
        words: format!("the release list at {url} cannot be read"),
        details: e.to_string(),
    };
    match kind {
        UpdateSourceKind::Manifest => release::parse_manifest(&body, &url).map_err(unreadable),
        UpdateSourceKind::Github => release::parse_github(&body).map_err(unreadable),
    }
}

/// Why an archive was not downloaded whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    #[error("{0}")]
    Net(NetFailure),
    #[error("the release archive is larger than {max} bytes{}", if *.declared { " (the server said so before sending it)" } else { "" })]
    TooLarge { max: u64, declared: bool },
    #[error("the release download took longer than {}", human(*.0))]
    Deadline(Duration),
    #[error("the release server sent nothing for {}", human(*.0))]
    Stalled(Duration),
    #[error("cannot write the download to {path}: {error}")]
    Write { path: String, error: String },
}

fn human(d: Duration) -> String {
    rampart_shared::status::human_duration(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Downloads `url` to `dest`: at most `max` bytes, within the limits.
/// Returns the number of bytes written; a failure leaves a partial file for
/// the caller's temporary directory to remove.
pub async fn download(
    url: &str,
    dest: &Path,
    max: u64,
    limits: DownloadLimits,
    extra_ca_file: Option<&Path>,
) -> Result<u64, DownloadError> {
    let parsed = parse_url(url).map_err(DownloadError::Net)?;
    // The client's own request timeout backs up the deadline below.
    let fetcher = fetcher(limits.deadline + Duration::from_secs(5), extra_ca_file);
    let write_error = |error: std::io::Error| DownloadError::Write {
        path: dest.display().to_string(),
        error: error.to_string(),
    };
    let work = async {
        let mut response = fetcher
            .get(&parsed, "application/octet-stream")
            .await
            .map_err(|e| DownloadError::Net(plain(url, &e)))?;
        if response.content_length().is_some_and(|len| len > max) {
            return Err(DownloadError::TooLarge {
                max,
                declared: true,
            });
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(write_error)?;
        let mut written = 0u64;
        loop {
            let chunk = tokio::time::timeout(limits.stall, response.chunk())
                .await
                .map_err(|_| DownloadError::Stalled(limits.stall))?
                .map_err(|e| DownloadError::Net(plain(url, &fetcher.classify(&parsed, e))))?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > max {
                return Err(DownloadError::TooLarge {
                    max,
                    declared: false,
                });
            }
            file.write_all(&chunk).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        Ok(written)
    };
    tokio::time::timeout(limits.deadline, work)
        .await
        .map_err(|_| DownloadError::Deadline(limits.deadline))?
}
