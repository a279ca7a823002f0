//! The event loop: waits for the next [`Event`], lets the shell handle it,
//! publishes what changed, then answers the request that caused it.
//!
//! Architecture Invariant: the loop is the only writer of the status, policy
//! and owner watches ([`Publisher`]); the IPC server only reads them.
//! Architecture Invariant: work that waits on the network runs as a task
//! ([`spawn_job`]) that changes no state; its answer comes back as an event
//! and the loop applies it, so the shell is never shared.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rampart_shared::status::{AgentMode, AgentStatus, ClockState, NetworkState};
use rampart_shared::user::UserId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;
use tracing::{info, warn};

use super::shell::{Failures, Shell};
use super::{
    CLOCK_TIMEOUT, Event, HOUSEKEEPING_INTERVAL, NETWORK_INTERVAL, NETWORK_TIMEOUT, StopReason,
    Timer, UPDATE_INTERVAL,
};
use crate::clock::{self, ClockReport};
use crate::ipc::server::{IpcCommand, PolicyInForce};
use crate::policy::FetchOutcome;
use crate::update::{self, UpdateOutcome};
use crate::{network, report, retry};

pub(super) async fn run(
    mut shell: Shell,
    mut commands: mpsc::Receiver<IpcCommand>,
    mut shutdown: oneshot::Receiver<()>,
    publisher: Publisher,
) -> StopReason {
    let (events_tx, mut events_rx) = mpsc::channel(16);
    // The IPC server already answers from the status published at start.
    shell.policy.save_deferred();
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => Event::Shutdown,
            Some(command) = commands.recv() => Event::Ipc(command),
            Some(event) = events_rx.recv() => event,
            () = sleep_until(shell.due.clock) => Event::Due(Timer::Clock),
            () = sleep_until(shell.due.network) => Event::Due(Timer::Network),
            () = sleep_until(shell.due.policy) => Event::Due(Timer::Policy),
            () = sleep_until(shell.due.housekeeping) => Event::Due(Timer::Housekeeping),
            () = sleep_until(shell.reporter.send_due) => Event::Due(Timer::ReportSend),
            () = sleep_until(shell.reporter.interval_due) => Event::Due(Timer::ReportInterval),
            () = sleep_until(shell.due.update) => Event::Due(Timer::Update),
        };
        let mut reply = None;
        match event {
            Event::Shutdown => return StopReason::Requested,
            Event::Ipc(command) => reply = shell.handle_ipc(command, &events_tx),
            Event::DuoAnswered(job, answer) => reply = shell.on_duo_answered(*job, answer),
            Event::RecoveryChecked(check) => reply = shell.on_recovery_checked(*check),
            Event::Due(timer) => shell.start_due_work(timer, &events_tx),
            Event::ClockChecked(report) => shell.on_clock_checked(report),
            Event::NetworkChecked(results) => shell.on_network_checked(&results),
            Event::PolicyFetched(outcome) => shell.on_policy_fetched(outcome),
            Event::ReportSent(outcome) => shell.reporter.on_sent(outcome),
            Event::UpdateChecked(outcome) => shell.on_update_checked(outcome),
        }
        shell.report_if_changed();
        // Publish before replying: a client that reads the status right
        // after its own request must see the request's effect.
        publisher.publish(&shell);
        if let Some((to, result)) = reply {
            let _ = to.send(result);
        }
        if let Some(UpdateOutcome::Updated { to, .. }) = &shell.update
            && shell.config.mode == AgentMode::System
        {
            info!(%to, "updated; stopping so that the service manager starts the new binary");
            return StopReason::Updated { to: to.to_string() };
        }
    }
}

/// Marks a job in flight (`in_flight`: the flag its answer's handler clears;
/// `None` when the job keeps its own) and runs it as a task whose answer
/// comes back to the loop as the event it returns.
pub(super) fn spawn_job(
    in_flight: Option<&mut bool>,
    events: &mpsc::Sender<Event>,
    job: impl Future<Output = Event> + Send + 'static,
) {
    if let Some(flag) = in_flight {
        *flag = true;
    }
    let events = events.clone();
    tokio::spawn(async move {
        // A closed channel means the loop has stopped: nobody wants the answer.
        let _ = events.send(job.await).await;
    });
}

impl Shell {
    /// Starts the checks that are due and not already running.
    fn start_due_work(&mut self, timer: Timer, events: &mpsc::Sender<Event>) {
        let now = TokioInstant::now();
        match timer {
            Timer::Clock => {
                self.due.clock = None;
                if self.in_flight.clock {
                    return;
                }
                let configured = self.policy.in_force().0.clock.ntp_servers.clone();
                let servers = self.kod.allowed(&configured, now.into_std());
                let skipped = self.kod.skipped(&configured, now.into_std());
                spawn_job(Some(&mut self.in_flight.clock), events, async move {
                    let report = clock::query_servers(&servers, CLOCK_TIMEOUT)
                        .await
                        .with_skipped(skipped, &configured);
                    Event::ClockChecked(report)
                });
            }
            Timer::Network => {
                self.due.network = None;
                if self.in_flight.network {
                    return;
                }
                let all = network::targets(self.policy.in_force().0, self.config.install.as_ref());
                let (targets, known) = network::periodic(
                    all.clone(),
                    self.policy.last_poll_answer().as_ref(),
                    std::time::Instant::now(),
                    NETWORK_INTERVAL,
                );
                let extra_ca = self
                    .config
                    .install
                    .as_ref()
                    .and_then(|i| i.extra_ca_file.clone());
                spawn_job(Some(&mut self.in_flight.network), events, async move {
                    let roots = network::usable_extra_roots(extra_ca.as_deref());
                    let mut results = known;
                    results.extend(network::check(targets, NETWORK_TIMEOUT, roots).await);
                    // In the targets' order, as status lists them.
                    results.sort_by_key(|r| all.iter().position(|t| *t == r.target));
                    Event::NetworkChecked(results)
                });
            }
            Timer::Policy => {
                self.due.policy = None;
                if self.in_flight.policy {
                    return;
                }
                let poll = self.policy.poll_request();
                spawn_job(Some(&mut self.in_flight.policy), events, async move {
                    Event::PolicyFetched(poll.run().await)
                });
            }
            Timer::Housekeeping => {
                self.due.housekeeping = Some(now + HOUSEKEEPING_INTERVAL);
                self.housekeeping();
            }
            Timer::Update => {
                self.due.update = None;
                if self.in_flight.update {
                    return;
                }
                match self.update_request() {
                    None => {}
                    Some(Err(why)) => {
                        self.update = Some(UpdateOutcome::failed(
                            "the install config's update settings cannot be used",
                            why.to_string(),
                        ));
                        self.due.update = Some(now + UPDATE_INTERVAL);
                    }
                    Some(Ok(request)) => {
                        spawn_job(Some(&mut self.in_flight.update), events, async move {
                            Event::UpdateChecked(update::apply::check_and_apply(request).await)
                        });
                    }
                }
            }
            Timer::ReportSend => {
                let Some(url) = self.reporting().map(|r| r.url.clone()) else {
                    self.reporter.send_due = None;
                    return;
                };
                // The reporter keeps its own in-flight flag.
                if let Some(delivery) = self.reporter.next_delivery() {
                    spawn_job(None, events, async move {
                        Event::ReportSent(report::send(delivery, url).await)
                    });
                }
            }
            Timer::ReportInterval => {
                self.make_report("interval");
                self.reporter
                    .configure(self.policy.in_force().0.reporting.as_ref());
            }
        }
    }

    /// The managed policy file, policy expiry, the administrator's reset
    /// request, and state writes that failed before.
    fn housekeeping(&mut self) {
        let now_utc = Utc::now();
        let mut changed = self.policy.check_expiry(now_utc);
        if let Some(applied) = self.policy.take_reset_request(now_utc) {
            changed |= applied.changed;
        }
        self.policy.retry_save();
        if self.reporting().is_some() {
            let status = self.status();
            let owner = self.mfa_owner(None);
            let enrollment = owner.as_ref().and_then(|o| self.mfa.enrollment(o));
            self.reporter.retry_lost(&status, enrollment);
        }
        let mtime = std::fs::metadata(self.config.paths.managed_policy())
            .and_then(|m| m.modified())
            .ok();
        if mtime != self.managed_mtime {
            self.managed_mtime = mtime;
            changed |= self.policy.reload_managed(now_utc).changed;
        }
        if changed {
            self.policy_changed();
        }
    }

    fn on_clock_checked(&mut self, report: ClockReport) {
        self.in_flight.clock = false;
        let now = TokioInstant::now();
        self.kod.observe(&report, now.into_std());
        let clock_policy = &self.policy.in_force().0.clock;
        let max_skew = Duration::from_secs(clock_policy.max_skew_secs);
        let ntp = clock::to_section(&report, max_skew, Utc::now());
        let no_answer = matches!(
            clock::estimate(&report.results, max_skew),
            Err(clock::NoEstimate::NoAnswer)
        );
        // A failure for the retry: no time server measured the clock, even
        // when a Date header did.
        let failed = ntp.state == ClockState::Unknown;
        self.core.clock = clock::http_date::fallback(ntp.clone(), no_answer, &self.date_samples);
        self.clock_ntp = Some((ntp, no_answer));
        self.clock_checked_at = Some((Utc::now(), std::time::Instant::now()));
        let failures = Failures::count(&mut self.failures.clock, failed);
        let next = retry::next_check_in(
            failures,
            Duration::from_secs(clock_policy.check_interval_secs),
        );
        self.due.clock = Some(now + next);
        info!(state = ?self.core.clock.state, detail = %self.core.clock.detail, next_in_secs = next.as_secs(), "clock checked");
        // The first clock check may pause updates, so the first update
        // check waits for it; a check paused for the clock runs again as
        // soon as the clock is back in range.
        let clock = update::ClockFacts {
            state: self.core.clock.state,
            offset_ms: self.core.clock.offset_ms,
        };
        if update::check_after_clock(self.update.as_ref(), clock)
            && !self.in_flight.update
            && self.due.update.is_none_or(|due| due > now)
        {
            self.due.update = Some(now);
        }
    }

    fn on_network_checked(&mut self, results: &[network::Reached]) {
        self.in_flight.network = false;
        self.core.network = network::to_section(results, Utc::now());
        self.date_samples = network::date_samples(results);
        if let Some((ntp, no_answer)) = &self.clock_ntp {
            self.core.clock =
                clock::http_date::fallback(ntp.clone(), *no_answer, &self.date_samples);
        }
        let failed = self.core.network.state != NetworkState::Online;
        let failures = Failures::count(&mut self.failures.network, failed);
        let next = retry::next_check_in(failures, NETWORK_INTERVAL);
        self.due.network = Some(TokioInstant::now() + next);
        info!(state = ?self.core.network.state, detail = %self.core.network.detail, next_in_secs = next.as_secs(), "network checked");
    }

    fn on_policy_fetched(&mut self, outcome: FetchOutcome) {
        self.in_flight.policy = false;
        let applied = self.policy.apply(outcome, Utc::now());
        if let Some(why) = &applied.rejected {
            warn!(%why, "policy rejected; the policy in force stays");
        }
        self.due.policy = applied.next_poll.map(|d| TokioInstant::now() + d);
        if applied.changed {
            self.policy_changed();
        }
    }

    fn on_update_checked(&mut self, outcome: UpdateOutcome) {
        self.in_flight.update = false;
        // A feed that cannot be read is asked again in minutes, not hours.
        let failures = Failures::count(&mut self.failures.update, outcome.retry_soon());
        let next = update::next_check_in(failures);
        // Tags that are not versions: said once, not at every check.
        let unreadable = |o: Option<&UpdateOutcome>| match o {
            Some(UpdateOutcome::Decided(_, tags)) => tags.clone(),
            _ => Vec::new(),
        };
        let tags = unreadable(Some(&outcome));
        if !tags.is_empty() && tags != unreadable(self.update.as_ref()) {
            warn!(
                ?tags,
                "the release feed lists releases whose version cannot be read; they are ignored"
            );
        }
        info!(%outcome, next_in_secs = next.as_secs(), "self-update check finished");
        self.update = Some(outcome);
        self.due.update = Some(TokioInstant::now() + next);
    }
}

async fn sleep_until(at: Option<TokioInstant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(super) struct Publisher {
    pub(super) status: watch::Sender<Arc<AgentStatus>>,
    pub(super) policy: watch::Sender<Arc<PolicyInForce>>,
    /// The enrollment owner, for whom the IPC server keeps slots.
    pub(super) owner: watch::Sender<Option<UserId>>,
}

impl Publisher {
    fn publish(&self, shell: &Shell) {
        send_if_changed(&self.status, Arc::new(shell.status()));
        send_if_changed(&self.policy, Arc::new(shell.policy_in_force()));
        send_if_changed(&self.owner, shell.mfa_owner(None).map(|o| o.id));
    }
}

/// Subscribers are woken only for real changes (`Arc` compares contents).
fn send_if_changed<T: PartialEq>(watch: &watch::Sender<T>, value: T) {
    watch.send_if_modified(|current| {
        let changed = *current != value;
        if changed {
            *current = value;
        }
        changed
    });
}
