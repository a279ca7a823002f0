//! Reports to IT's collector (`policy.reporting`): built from the status on
//! start, on every change IT cares about and every interval, queued durably
//! ([`queue`]) and delivered in order by tasks the service loop starts
//! (`Event::ReportSent` brings the answer back). Format: docs/reporting.md.

pub mod credential;
pub mod queue;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rampart_shared::policy::Reporting;
use rampart_shared::report::{REPORT_SCHEMA, Report, ReportClock, ReportMfa, ReportUpdate};
use rampart_shared::status::{AgentStatus, ClockState, MfaState, Overall, UpdateState};
use rampart_shared::version::Version;
use tokio::time::Instant as TokioInstant;
use tracing::{debug, info, warn};

use crate::mfa::Enrollment;
use crate::storage::{self, LastFailure, StateKind};
pub use credential::{ReportSecret, SecretError};
pub use queue::{Queue, QueueError};
use rampart_shared::status::{CredentialError, StorageFailure};

/// How long one delivery may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Retry delays double from this up to [`MAX_RETRY_DELAY`].
pub const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// What a report is about: a new report is made when this changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    mfa: MfaState,
    clock: ClockState,
    overall: Overall,
    policy_serial: u64,
    update: UpdateState,
}

impl Fingerprint {
    pub fn of(status: &AgentStatus) -> Self {
        Self {
            mfa: status.mfa.state,
            clock: status.clock.state,
            overall: status.overall,
            policy_serial: status.policy.serial,
            update: status.update.state,
        }
    }
}

/// Who and what this device is, for [`build`].
#[derive(Debug, Clone)]
pub struct Identity {
    pub device_id: String,
    pub hostname: String,
}

/// The report for `status`. Pure but for the random `report_id` passed in.
pub fn build(
    report_id: String,
    now: DateTime<Utc>,
    identity: &Identity,
    status: &AgentStatus,
    enrollment: Option<&Enrollment>,
    reason: &str,
    dropped_reports: u64,
) -> Report {
    Report {
        schema: REPORT_SCHEMA,
        report_id,
        sent_at: now,
        device_id: identity.device_id.clone(),
        hostname: identity.hostname.clone(),
        user: enrollment.map(|e| e.owner.name.clone()),
        mfa: ReportMfa {
            state: status.mfa.state,
            provider: status.mfa.provider,
            enrolled_at: enrollment.and_then(|e| e.enrolled_at),
            evidence: enrollment.and_then(|e| e.evidence.clone()),
            signin: status.mfa.signin.clone(),
        },
        clock: ReportClock {
            state: status.clock.state,
            offset_ms: status.clock.offset_ms,
            checked_at: status.clock.checked_at,
        },
        policy_serial: status.policy.serial,
        agent_version: Version::current(),
        overall: status.overall,
        reason: reason.to_owned(),
        dropped_reports,
        update: Some(ReportUpdate {
            state: status.update.state,
            offered_version: status.update.offered_version.clone(),
            cause: status
                .update
                .problem
                .as_ref()
                .map(|p| p.cause.name().to_owned()),
            reason: status.update.detail.clone(),
        }),
        mfa_users: status.mfa_users.clone(),
    }
}

/// 32 random hex digits.
pub fn new_report_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness, not secrecy, is what matters here.
        bytes = fastrand::u128(..).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn hostname() -> String {
    #[cfg(unix)]
    {
        rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned()
    }
    #[cfg(not(unix))]
    {
        std::env::var("COMPUTERNAME").unwrap_or_default()
    }
}

/// What the collector made of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// 2xx: done.
    Delivered,
    /// A 4xx other than 401, 403 and 429: this report will never be taken;
    /// drop it.
    Refused(u16),
    /// 401 or 403: the collector does not take this device's credential.
    /// No report will be taken until IT mends it, and then every one will:
    /// keep them all and try again later.
    CredentialRefused(u16),
    /// 429, 5xx, other statuses, or no answer: try again later.
    Retry(String),
}

#[derive(Debug)]
pub struct SendOutcome {
    pub seq: u64,
    pub result: SendResult,
}

/// The HTTP client for deliveries could not be built (its TLS setup, in
/// practice). reqwest's words are part of the message, not a `source`: an
/// error chain would say them twice.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTP client: {0}")]
pub struct ClientError(reqwest::Error);

/// The HTTP client for deliveries; built once.
pub fn client(extra_ca_file: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    crate::install_tls_provider();
    let builder = reqwest::Client::builder()
        .user_agent(concat!("rampart-agent/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(SEND_TIMEOUT)
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    crate::network::trusting_extra_ca(builder, extra_ca_file)
        .build()
        .map_err(ClientError)
}

/// One report to deliver, as [`Reporter::next_delivery`] hands it out.
#[derive(Debug)]
pub struct Delivery {
    pub client: reqwest::Client,
    pub seq: u64,
    pub payload: Vec<u8>,
    /// The deployment secret, when the install config names one.
    pub secret: Option<ReportSecret>,
}

/// One delivery: POST the report with its `Idempotency-Key` and, when this
/// device has one, its deployment secret as a bearer token.
pub async fn send(delivery: Delivery, url: String) -> SendOutcome {
    let Delivery {
        client,
        seq,
        payload,
        secret,
    } = delivery;
    let result = match rampart_shared::links::check_report_url(&url) {
        Err(e) => SendResult::Retry(format!("\"{url}\" {e}")),
        Ok(()) => {
            let key = serde_json::from_slice::<serde_json::Value>(&payload)
                .ok()
                .and_then(|v| v["report_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut request = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", key);
            if let Some(secret) = &secret {
                match secret.header() {
                    Ok(value) => request = request.header(reqwest::header::AUTHORIZATION, value),
                    Err(why) => {
                        return SendOutcome {
                            seq,
                            result: SendResult::Retry(why.to_string()),
                        };
                    }
                }
            }
            let answer = request.body(payload).send().await;
            match answer {
                Ok(response) => classify(response.status().as_u16()),
                Err(e) => SendResult::Retry(crate::error_chain(&e)),
            }
        }
    };
    SendOutcome { seq, result }
}

pub fn classify(status: u16) -> SendResult {
    match status {
        200..=299 => SendResult::Delivered,
        401 | 403 => SendResult::CredentialRefused(status),
        429 => SendResult::Retry("HTTP 429 Too Many Requests".into()),
        400..=499 => SendResult::Refused(status),
        other => SendResult::Retry(format!("HTTP {other}")),
    }
}

/// Delay before retry number `failures` (1-based): 1 s, 2 s, 4 s ... 5 min,
/// with up to 20 % jitter so a fleet does not retry in step.
pub fn retry_delay(failures: u32) -> Duration {
    let base = FIRST_RETRY_DELAY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY_DELAY);
    base + base.mul_f64(fastrand::f64() * 0.2)
}

/// The reporting state the service loop keeps.
#[derive(Debug)]
pub struct Reporter {
    dir: PathBuf,
    queue: Option<Queue>,
    identity: Identity,
    client: Option<reqwest::Client>,
    last: Option<Fingerprint>,
    pub in_flight: bool,
    failures: u32,
    pub send_due: Option<TokioInstant>,
    pub interval_due: Option<TokioInstant>,
    /// The latest failed write of the queue, until one succeeds.
    save_failure: LastFailure,
    /// Reports made since the last one that could be queued, and lost: the
    /// next queued report adds them to its `dropped_reports`. In memory only
    /// (the disk is what failed); a restart before space returns loses it.
    not_queued: u64,
    /// The install config's `report_secret_file`.
    secret_file: Option<PathBuf>,
    /// The install config's `extra_ca_file`.
    extra_ca_file: Option<PathBuf>,
    /// Read from `secret_file` before the first delivery, and again after
    /// the collector refused it (IT may have replaced the file since).
    secret: Option<ReportSecret>,
    /// Why reports wait for IT, until a delivery goes through.
    credential_error: Option<CredentialError>,
    /// When the collector last took a report (since start).
    last_delivered_at: Option<chrono::DateTime<Utc>>,
}

/// The words for a queue that could not be written (or opened).
fn queue_failure(error: &QueueError, dir: &Path) -> StorageFailure {
    let at = Utc::now();
    match error {
        QueueError::Fs(e) => storage::failure(StateKind::ReportQueue, e, at),
        QueueError::Append { path, source } => {
            let f = storage::describe(
                StateKind::ReportQueue,
                path,
                Some(source.kind()),
                source.to_string(),
                at,
            );
            tracing::error!(path = f.path, details = f.details, "{}", f.message);
            f
        }
        other => {
            let f = storage::describe(
                StateKind::ReportQueue,
                &dir.join("queue"),
                None,
                other.to_string(),
                at,
            );
            tracing::error!(path = f.path, details = f.details, "{}", f.message);
            f
        }
    }
}

impl Reporter {
    /// Opens the queue in `state_dir/reports`. A queue that cannot be opened
    /// is logged and reporting is off until the next start.
    pub fn open(
        state_dir: &Path,
        device_id: String,
        secret_file: Option<PathBuf>,
        extra_ca_file: Option<PathBuf>,
    ) -> Self {
        let dir = state_dir.join("reports");
        let mut save_failure = LastFailure::default();
        let queue = match Queue::open(&dir) {
            Ok(q) => {
                if q.recovered_torn_record {
                    warn!(
                        "report queue: discarded a record torn by a crash (it was never acknowledged)"
                    );
                }
                Some(q)
            }
            Err(error) => {
                warn!(%error, "report queue unusable; reports are off until the agent restarts");
                save_failure.set(queue_failure(&error, &dir));
                None
            }
        };
        Self {
            dir,
            queue,
            identity: Identity {
                device_id,
                hostname: hostname(),
            },
            client: None,
            last: None,
            in_flight: false,
            failures: 0,
            send_due: None,
            interval_due: None,
            save_failure,
            not_queued: 0,
            secret_file,
            extra_ca_file,
            secret: None,
            credential_error: None,
            last_delivered_at: None,
        }
    }

    /// When the collector last took a report, since the agent started.
    pub fn last_delivered_at(&self) -> Option<chrono::DateTime<Utc>> {
        self.last_delivered_at
    }

    /// Why reports wait for IT (the secret file, or the collector refusing
    /// it), until a delivery goes through.
    pub fn credential_error(&self) -> Option<&CredentialError> {
        self.credential_error.as_ref()
    }

    /// Records why reports wait, logging it once per change of words (a
    /// retry every few minutes is not news).
    fn set_credential_error(&mut self, error: CredentialError) {
        if self.credential_error.as_ref().map(|e| &e.message) == Some(&error.message) {
            return;
        }
        warn!(http_status = error.http_status, "{}", error.message);
        self.credential_error = Some(error);
    }

    /// The latest failed write of the queue, until one succeeds.
    pub fn storage_failure(&self) -> Option<&StorageFailure> {
        self.save_failure.get()
    }

    /// Reports lost since the last one that could be queued.
    pub fn not_queued(&self) -> u64 {
        self.not_queued
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pending(&self) -> usize {
        self.queue.as_ref().map_or(0, Queue::len)
    }

    /// Whether a report has been made since start.
    pub fn has_reported(&self) -> bool {
        self.last.is_some()
    }

    /// Whether `status` differs from the last report in what IT sees.
    pub fn changed(&self, status: &AgentStatus) -> bool {
        self.last != Some(Fingerprint::of(status))
    }

    /// Queues a report of `status`; schedules a delivery.
    pub fn enqueue(&mut self, status: &AgentStatus, enrollment: Option<&Enrollment>, reason: &str) {
        self.last = Some(Fingerprint::of(status));
        if !self.push(status, enrollment, reason) {
            self.not_queued += 1;
        }
    }

    /// While reports are lost for want of space: one more try, so that IT
    /// hears of them once space returns rather than at the next interval.
    /// A failed try is not a lost report and is not counted.
    pub fn retry_lost(&mut self, status: &AgentStatus, enrollment: Option<&Enrollment>) {
        if self.not_queued > 0 && self.queue.is_some() {
            self.push(status, enrollment, "queue_recovered");
        }
    }

    /// Whether the report was queued.
    fn push(
        &mut self,
        status: &AgentStatus,
        enrollment: Option<&Enrollment>,
        reason: &str,
    ) -> bool {
        let Some(queue) = self.queue.as_mut() else {
            return false;
        };
        let report_id = new_report_id();
        let identity = &self.identity;
        let not_queued = self.not_queued;
        let pushed = queue.push_with(|dropped| {
            let report = build(
                report_id.clone(),
                Utc::now(),
                identity,
                status,
                enrollment,
                reason,
                dropped + not_queued,
            );
            serde_json::to_vec(&report).unwrap_or_default()
        });
        match pushed {
            Ok(seq) => {
                info!(%report_id, seq, reason, pending = queue.len(), not_queued_before = not_queued, "report queued");
                self.not_queued = 0;
                self.save_failure.clear();
                if !self.in_flight && self.send_due.is_none() {
                    self.send_due = Some(TokioInstant::now());
                }
                true
            }
            Err(error) => {
                self.save_failure.set(queue_failure(&error, &self.dir));
                false
            }
        }
    }

    /// "Check again": retry now rather than after the backoff.
    pub fn kick(&mut self) {
        if !self.in_flight && self.pending() > 0 {
            self.send_due = Some(TokioInstant::now());
        }
    }

    /// The delivery to start now, if any.
    pub fn next_delivery(&mut self) -> Option<Delivery> {
        self.send_due = None;
        if self.in_flight {
            return None;
        }
        let (seq, payload) = self.queue.as_ref()?.front()?;
        let payload = payload.to_vec();
        if let Some(file) = &self.secret_file
            && self.secret.is_none()
        {
            match ReportSecret::load(file) {
                Ok(secret) => self.secret = Some(secret),
                Err(why) => {
                    // Sending without the secret would only be refused, or
                    // worse, taken by a collector that checks nothing.
                    self.failures += 1;
                    self.send_due = Some(TokioInstant::now() + retry_delay(self.failures));
                    let why = why.to_string();
                    let error = credential::credential_error(None, true, Some(&why), Utc::now());
                    self.set_credential_error(error);
                    return None;
                }
            }
        }
        if self.client.is_none() {
            match client(self.extra_ca_file.as_deref()) {
                Ok(c) => self.client = Some(c),
                Err(error) => {
                    warn!(%error, "reports cannot be sent");
                    return None;
                }
            }
        }
        let client = self.client.clone()?;
        self.in_flight = true;
        Some(Delivery {
            client,
            seq,
            payload,
            secret: self.secret.clone(),
        })
    }

    /// Applies a delivery's answer and schedules the next step.
    pub fn on_sent(&mut self, outcome: SendOutcome) {
        self.in_flight = false;
        let Some(queue) = self.queue.as_mut() else {
            return;
        };
        let now = TokioInstant::now();
        let done = match &outcome.result {
            SendResult::Delivered => {
                self.failures = 0;
                self.last_delivered_at = Some(Utc::now());
                if self.credential_error.take().is_some() {
                    info!("the report collector takes this device's credential again");
                }
                debug!(seq = outcome.seq, "report delivered");
                queue.ack(outcome.seq)
            }
            SendResult::Refused(status) => {
                self.failures = 0;
                warn!(
                    seq = outcome.seq,
                    status, "the collector refused a report (HTTP 4xx); it is dropped, not retried"
                );
                queue.reject(outcome.seq)
            }
            SendResult::CredentialRefused(status) => {
                self.failures += 1;
                let delay = retry_delay(self.failures);
                self.send_due = Some(now + delay);
                self.secret = None;
                let error = credential::credential_error(
                    Some(*status),
                    self.secret_file.is_some(),
                    None,
                    Utc::now(),
                );
                self.set_credential_error(error);
                return;
            }
            SendResult::Retry(why) => {
                self.failures += 1;
                let delay = retry_delay(self.failures);
                info!(
                    why,
                    retry_in_ms = delay.as_millis() as u64,
                    pending = queue.len(),
                    "report not delivered"
                );
                self.send_due = Some(now + delay);
                return;
            }
        };
        match done {
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "cannot record a report's delivery; it may be sent again");
                self.save_failure.set(queue_failure(&error, &self.dir));
            }
        }
        if !queue.is_empty() {
            self.send_due = Some(now);
        }
    }

    /// Sets (or clears) the interval timer for `reporting`.
    pub fn configure(&mut self, reporting: Option<&Reporting>) {
        self.interval_due =
            reporting.map(|r| TokioInstant::now() + Duration::from_secs(r.interval_secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::Core;
    use rampart_shared::status::AgentMode;

    #[test]
    fn statuses_classify_as_the_collector_contract_says() {
        assert_eq!(classify(200), SendResult::Delivered);
        assert_eq!(classify(202), SendResult::Delivered);
        assert!(matches!(classify(429), SendResult::Retry(_)));
        assert!(matches!(classify(503), SendResult::Retry(_)));
        assert!(matches!(classify(302), SendResult::Retry(_)));
        assert_eq!(classify(400), SendResult::Refused(400));
        assert_eq!(classify(404), SendResult::Refused(404));
        assert_eq!(classify(401), SendResult::CredentialRefused(401));
        assert_eq!(classify(403), SendResult::CredentialRefused(403));
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let d1 = retry_delay(1);
        assert!(d1 >= FIRST_RETRY_DELAY && d1 <= FIRST_RETRY_DELAY.mul_f64(1.2));
        assert!(retry_delay(3) >= Duration::from_secs(4));
        assert!(retry_delay(40) <= MAX_RETRY_DELAY.mul_f64(1.2));
    }

    #[test]
    fn report_ids_are_32_hex_digits_and_differ() {
        let a = new_report_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, new_report_id());
    }

    #[test]
    fn a_report_carries_the_status_and_the_drop_count() {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let status = Core::fresh_status(AgentMode::Dev, now);
        let identity = Identity {
            device_id: "LAPTOP-0042".into(),
            hostname: "laptop".into(),
        };
        let r = build("id".into(), now, &identity, &status, None, "start", 3);
        assert_eq!(r.mfa.state, MfaState::NotSetUp);
        assert_eq!(r.overall, status.overall);
        assert_eq!(r.dropped_reports, 3);
        assert_eq!(r.user, None);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["dropped_reports"], 3);
        assert_eq!(json["device_id"], "LAPTOP-0042");
    }

    #[test]
    fn a_report_tells_it_how_many_recovery_codes_are_left_and_every_user() {
        use rampart_shared::signin::SigninSection;
        use rampart_shared::status::UserMfa;
        use rampart_shared::user::UserId;
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let mut status = Core::fresh_status(AgentMode::System, now);
        status.mfa.signin = Some(SigninSection {
            recovery_codes_left: 9,
            ..Default::default()
        });
        status.mfa_users = vec![UserMfa {
            user: "ada".into(),
            id: UserId::Uid(1000),
            mfa: status.mfa.clone(),
        }];
        let identity = Identity {
            device_id: "d".into(),
            hostname: "h".into(),
        };
        let r = build("id".into(), now, &identity, &status, None, "start", 0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["mfa"]["signin"]["recovery_codes_left"], 9);
        assert_eq!(json["mfa_users"][0]["uid"], 1000);
        assert_eq!(json["mfa_users"][0]["signin"]["recovery_codes_left"], 9);
    }

    #[test]
    fn a_fingerprint_ignores_what_it_should() {
        let now = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let a = Core::fresh_status(AgentMode::Dev, now);
        let mut b = a.clone();
        b.network.detail = "something else".into();
        b.clock.checked_at = Some(now);
        assert_eq!(Fingerprint::of(&a), Fingerprint::of(&b));
        b.clock.state = ClockState::Skewed;
        assert_ne!(Fingerprint::of(&a), Fingerprint::of(&b));
    }
}
