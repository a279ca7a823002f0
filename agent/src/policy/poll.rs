//! Polling the remote URL: an owned request that runs on its own task, and
//! taking its outcome into account on the loop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::status::PolicySource;

use super::accept::{AcceptedRecord, Candidate};
use super::fetch::{FetchOutcome, Fetcher};
use super::{Applied, PolicyStore, schedule};

/// One poll, owned, so it can run on another task while the store is used.
#[derive(Debug, Clone)]
pub struct PollRequest {
    /// Open to the store's tests, which check the URL and validators a
    /// poll would send.
    pub(super) target: Option<(Fetcher, reqwest::Url, Option<String>, Option<String>)>,
}

impl PollRequest {
    pub async fn run(self) -> FetchOutcome {
        match self.target {
            Some((fetcher, url, etag, last_modified)) => {
                fetcher
                    .fetch(&url, etag.as_deref(), last_modified.as_deref())
                    .await
            }
            None => FetchOutcome::NotConfigured,
        }
    }
}

impl PolicyStore {
    pub fn poll_request(&self) -> PollRequest {
        let Some(url) = self.url.clone() else {
            return PollRequest { target: None };
        };
        let fetcher = self.fetcher.clone();
        // Validators only for the URL they came from, and only while that
        // copy is the one in force (or the server would answer 304 to a
        // document the agent does not use).
        let (etag, last_modified) = match &self.persisted.last {
            Some(last)
                if last.url.as_deref() == Some(url.as_str())
                    && matches!(
                        self.in_force.source,
                        PolicySource::Remote | PolicySource::LastKnownGood
                    ) =>
            {
                (last.etag.clone(), last.last_modified.clone())
            }
            _ => (None, None),
        };
        PollRequest {
            target: Some((fetcher, url, etag, last_modified)),
        }
    }

    /// The last poll the policy server answered (the network check's).
    pub fn last_poll_answer(&self) -> Option<super::fetch::Answered> {
        self.fetcher.last_answer()
    }

    /// Polls the policy URL once. I/O only: the store is not changed.
    pub async fn fetch(&self) -> FetchOutcome {
        self.poll_request().run().await
    }

    /// Takes a poll's outcome into account: decides, persists an accepted
    /// document, and says when to poll next.
    pub fn apply(&mut self, outcome: FetchOutcome, now: DateTime<Utc>) -> Applied {
        let mut applied = Applied::nothing();
        match outcome {
            FetchOutcome::NotConfigured => return applied,
            FetchOutcome::NotModified => {
                self.fetch_error = None;
                self.fetch_failed_at = None;
                self.consecutive_errors = 0;
                self.error = None;
                self.error_from_poll = false;
                if self.in_force.source == PolicySource::LastKnownGood {
                    self.in_force.source = PolicySource::Remote;
                    self.kept = None;
                    applied.changed = true;
                }
            }
            FetchOutcome::Failed(e) => {
                tracing::warn!("policy poll failed: {e}");
                self.fetch_error = Some(e);
                self.fetch_failed_at = Some(now);
                if self.error_from_poll {
                    self.error = None;
                    self.error_from_poll = false;
                }
                self.consecutive_errors = self.consecutive_errors.saturating_add(1);
            }
            FetchOutcome::Fetched(fetched) => {
                self.fetch_error = None;
                self.fetch_failed_at = None;
                let record = AcceptedRecord {
                    document: String::from_utf8_lossy(&fetched.document).into_owned(),
                    signature: Some(fetched.signature.clone()),
                    serial: 0,
                    source: PolicySource::Remote,
                    url: Some(fetched.url.clone()),
                    fetched_at: now,
                    etag: fetched.etag.clone(),
                    last_modified: fetched.last_modified.clone(),
                };
                let candidate = Candidate {
                    document: &fetched.document,
                    signature: Some(&fetched.signature),
                    source: PolicySource::Remote,
                };
                self.take_decision(candidate, record, now, &mut applied);
                self.error_from_poll = applied.rejected.is_some();
                if applied.rejected.is_some() {
                    self.consecutive_errors = self.consecutive_errors.saturating_add(1);
                } else {
                    self.consecutive_errors = 0;
                }
            }
        }
        if self.url.is_some() {
            let interval = Duration::from_secs(self.in_force.policy.poll_interval_secs);
            applied.next_poll = Some(schedule::next_poll_delay(
                interval,
                self.consecutive_errors,
                self.rng.f64(),
            ));
        }
        applied
    }
}
