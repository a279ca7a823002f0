//! The imperative shell: the pure [`Core`] plus the parts that own I/O (the
//! policy store, the MFA engine, the reporter) and the timers.
//!
//! Architecture Invariant: the shell is owned by the event loop alone and
//! changed only between events; tasks it starts hold copies of what they
//! need, never the shell.

use std::time::SystemTime;

use chrono::Utc;
use rampart_shared::policy::Reporting;
use rampart_shared::status::{
    AgentMode, AgentStatus, ClockSection, ReportingSection, StorageSection, UserMfa,
};
use rampart_shared::version::Version;
use tokio::time::Instant as TokioInstant;
use tracing::info;

use super::core::Core;
use super::{AgentConfig, AgentError, HOUSEKEEPING_INTERVAL};
use crate::clock::{self, KodBackoff};
use crate::config::{InstallConfig, UpdateSource};
use crate::ipc::server::PolicyInForce;
use crate::ipc::{current_user, user_name};
use crate::mfa::{self, MfaEngine, UserKey};
use crate::policy::PolicyStore;
use crate::report::{self, Reporter};
use crate::update::apply::{UpdateError, UpdateRequest};
use crate::update::{self, ClockFacts, UpdateOutcome};

pub(super) struct Shell {
    pub(super) reporter: Reporter,
    pub(super) core: Core,
    pub(super) policy: PolicyStore,
    pub(super) mfa: MfaEngine,
    /// The enrollment this agent reports on in dev and embedded mode.
    pub(super) agent_user: Option<UserKey>,
    pub(super) kod: KodBackoff,
    pub(super) managed_mtime: Option<SystemTime>,
    /// The last self-update check's outcome (`None`: none has run).
    pub(super) update: Option<UpdateOutcome>,
    /// The last rollback of a release that did not reach "serving", read
    /// at start: shown and reported until a newer release is installed.
    pub(super) rolled_back: Option<UpdateOutcome>,
    pub(super) due: Due,
    pub(super) in_flight: InFlight,
    pub(super) failures: Failures,
    /// The last clock round's own verdict, and whether no time server
    /// answered at all: the `Date` headers of the next network check may
    /// measure the clock instead (`clock::http_date::fallback`).
    pub(super) clock_ntp: Option<(ClockSection, bool)>,
    /// The `Date` headers of the last network check.
    pub(super) date_samples: Vec<clock::http_date::DateSample>,
    /// The wall and monotonic clocks when the last clock check finished:
    /// how far the wall clock moved since is measured against them.
    pub(super) clock_checked_at: Option<(chrono::DateTime<Utc>, std::time::Instant)>,
    /// Built on first use from the policy's Duo provider; cleared when the
    /// policy changes. A failure is not kept: IT may fix the key file.
    pub(super) duo_client: Option<crate::duo::DuoClient>,
    pub(super) config: AgentConfig,
}

/// When each kind of work is next due (`None`: not scheduled).
#[derive(Debug)]
pub(super) struct Due {
    pub(super) clock: Option<TokioInstant>,
    pub(super) network: Option<TokioInstant>,
    pub(super) policy: Option<TokioInstant>,
    pub(super) housekeeping: Option<TokioInstant>,
    pub(super) update: Option<TokioInstant>,
}

/// Checks under way, so that a burst of "Check again" starts one, not ten.
#[derive(Debug, Default)]
pub(super) struct InFlight {
    pub(super) clock: bool,
    pub(super) network: bool,
    pub(super) policy: bool,
    pub(super) update: bool,
    /// One Duo exchange at a time: Duo's own clients do the same per user.
    pub(super) duo: bool,
    /// Recovery codes being hashed (`service::signin`): each check holds
    /// 19 MiB per Argon2id hash on a blocking thread, so only a few run.
    pub(super) recovery_checks: usize,
}

/// Checks that failed in a row (`retry::next_check_in`): a clock check
/// that measured nothing, a network check that did not reach every endpoint.
#[derive(Debug, Default)]
pub(super) struct Failures {
    pub(super) clock: u32,
    pub(super) network: u32,
    /// Update checks that failed in a row (feed unreachable, install failed).
    pub(super) update: u32,
}

impl Failures {
    pub(super) fn count(count: &mut u32, failed: bool) -> u32 {
        *count = if failed { count.saturating_add(1) } else { 0 };
        *count
    }
}

impl Shell {
    /// Loads what the state directory keeps and schedules the first checks
    /// at once.
    pub(super) fn open(config: AgentConfig) -> Result<Self, AgentError> {
        let now = Utc::now();
        let policy = PolicyStore::load_at_start(&config.paths, config.install.as_ref(), now);
        let mfa = MfaEngine::open(&config.paths.state_dir.join("mfa"))?;
        let agent_user = match config.mode {
            // In dev and embedded mode the agent runs as the person at the
            // screen: theirs is the enrollment. The system service learns its
            // owner from the first user who enrolls.
            AgentMode::Dev | AgentMode::Embedded => current_user().map(|id| UserKey {
                name: user_name(&id),
                id,
            }),
            AgentMode::System => None,
        };
        let start = TokioInstant::now();
        let device_id = config
            .install
            .as_ref()
            .map_or_else(report::hostname, |i| i.device_id.clone());
        let install = config.install.as_ref();
        let mut reporter = Reporter::open(
            &config.paths.state_dir,
            device_id,
            install.and_then(|i| i.report_secret_file.clone()),
            install.and_then(|i| i.extra_ca_file.clone()),
        );
        reporter.configure(policy.in_force().0.reporting.as_ref());
        Ok(Self {
            reporter,
            core: Core::new(config.mode, policy.in_force().0.clock.max_skew_secs, now),
            policy,
            mfa,
            agent_user,
            kod: KodBackoff::default(),
            managed_mtime: None,
            update: None,
            rolled_back: update::health::last_rollback(&config.paths.state_dir),
            due: Due {
                clock: Some(start),
                network: Some(start),
                policy: Some(start),
                housekeeping: Some(start + HOUSEKEEPING_INTERVAL),
                // Set after the first clock check, whose result may pause updates.
                update: None,
            },
            in_flight: InFlight::default(),
            failures: Failures::default(),
            clock_ntp: None,
            date_samples: Vec::new(),
            clock_checked_at: None,
            duo_client: None,
            config,
        })
    }

    pub(super) fn policy_in_force(&self) -> PolicyInForce {
        let (policy, source) = self.policy.in_force();
        PolicyInForce {
            source,
            policy: policy.clone(),
        }
    }

    pub(super) fn status(&self) -> AgentStatus {
        let (policy, _) = self.policy.in_force();
        let mfa = match self.mfa_owner(None) {
            Some(owner) => self.mfa.section(&owner, policy),
            None => mfa::section::section(None, policy),
        };
        let mut policy_section = self.policy.section();
        if let Some(error) = &self.config.install_error {
            policy_section.error = Some(match policy_section.error {
                Some(e) => format!("{error}; {e}"),
                None => error.clone(),
            });
        }
        let update = update::section(
            Version::current(),
            policy.agent.min_version,
            update::health::shown(self.update.as_ref(), self.rolled_back.as_ref()),
            || matches!(self.update_request(), Some(Ok(_))),
        );
        let storage = StorageSection {
            failures: [
                self.mfa.storage_failure(),
                self.policy.storage_failure(),
                self.reporter.storage_failure(),
            ]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
            reports_not_queued: self.reporter.not_queued(),
        };
        let reporting = ReportingSection {
            credential_error: self.reporter.credential_error().cloned(),
            last_delivered_at: self.reporter.last_delivered_at(),
        };
        let mut status = self
            .core
            .status(policy_section, mfa, update, storage, reporting);
        status.mfa_users = self.mfa_users(policy);
        status
    }

    /// The self-update request, when this agent updates itself at all: the
    /// installed service with a release feed and keys in its install config.
    /// A dev or embedded agent is a build tree's binary and never replaces
    /// itself; a package-managed one has no `update_source`.
    pub(super) fn update_request(&self) -> Option<Result<UpdateRequest, UpdateError>> {
        if self.config.mode != AgentMode::System {
            return None;
        }
        let install = self.config.install.as_ref()?;
        let source = install.update_source.clone()?;
        Some(self.self_update_request(install, source))
    }

    fn self_update_request(
        &self,
        install: &InstallConfig,
        source: UpdateSource,
    ) -> Result<UpdateRequest, UpdateError> {
        let policy = self.policy.in_force().0;
        Ok(UpdateRequest {
            source,
            keys: install.update_keys().map_err(UpdateError::Keys)?,
            channel: policy.agent.update_channel,
            min_version: policy.agent.min_version,
            clock: ClockFacts {
                state: self.core.clock.state,
                offset_ms: self.core.clock.offset_ms,
            },
            state_dir: self.config.paths.state_dir.clone(),
            exe: std::env::current_exe().map_err(UpdateError::CurrentExe)?,
            current: update::release::running(),
            apply: true,
            trial: true,
            limits: update::fetch::DownloadLimits::default(),
            extra_ca_file: install.extra_ca_file.clone(),
        })
    }

    /// Whose enrollment a request (or, with no peer, the status) is about:
    /// the agent's user in dev mode; in system mode the asking user's own
    /// (each person on a shared machine enrolls with their own factor), and
    /// for the status, reports and the kept connection slots the device's
    /// first user with an MFA setup (`status.mfa_users` lists them all).
    pub(super) fn mfa_owner(&self, peer: Option<&mfa::Peer>) -> Option<UserKey> {
        if let Some(user) = &self.agent_user {
            return Some(user.clone());
        }
        match peer {
            Some(peer) => Some(peer.key()),
            None => self.mfa.users().next().cloned(),
        }
    }

    /// The enrollment a request names by login name: the user with that
    /// uid when the OS knows the name, else the setup saved under it.
    /// Whether the asking user may change it is the engine's rule
    /// (`mfa::machine::authorize`: only root changes another's).
    pub(super) fn mfa_user(&self, name: &str) -> Option<UserKey> {
        let id = crate::ipc::user_id_by_name(name);
        self.mfa.signin_owner(name, id.as_ref()).or_else(|| {
            id.map(|id| UserKey {
                id,
                name: name.to_owned(),
            })
        })
    }

    /// Every user with an MFA setup, for `status.mfa_users` (system mode:
    /// a dev agent has one user).
    fn mfa_users(&self, policy: &rampart_shared::policy::Policy) -> Vec<UserMfa> {
        if self.agent_user.is_some() {
            return Vec::new();
        }
        self.mfa
            .users()
            .map(|key| UserMfa {
                user: key.name.clone(),
                id: key.id.clone(),
                mfa: self.mfa.section(key, policy),
            })
            .collect()
    }

    /// What the MFA machine is told about this computer's clock: the last
    /// check's offset, and how far the wall clock moved since that check.
    pub(super) fn computer_clock(&self) -> mfa::ComputerClock {
        mfa::ComputerClock {
            offset_ms: self.core.clock.offset_ms,
            moved_ms: self
                .clock_checked_at
                .map(|then| clock::moved_ms(then, (Utc::now(), std::time::Instant::now()))),
        }
    }

    pub(super) fn reporting(&self) -> Option<&Reporting> {
        self.policy.in_force().0.reporting.as_ref()
    }

    /// Queues a report of the current status, if the policy asks for them.
    pub(super) fn make_report(&mut self, reason: &str) {
        if self.reporting().is_none() {
            return;
        }
        let status = self.status();
        let owner = self.mfa_owner(None);
        let enrollment = owner.as_ref().and_then(|o| self.mfa.enrollment(o));
        self.reporter.enqueue(&status, enrollment, reason);
    }

    /// A report on start and whenever what IT sees changes.
    pub(super) fn report_if_changed(&mut self) {
        if self.reporting().is_none() {
            return;
        }
        let status = self.status();
        if self.reporter.changed(&status) {
            let reason = if self.reporter.has_reported() {
                "status_change"
            } else {
                "start"
            };
            self.make_report(reason);
        }
    }

    /// New NTP servers, endpoints or skew take effect at once.
    pub(super) fn policy_changed(&mut self) {
        let (policy, source) = self.policy.in_force();
        info!(?source, serial = policy.serial, "policy in force changed");
        self.duo_client = None;
        self.core.clock.max_skew_ms = policy.clock.max_skew_secs * 1000;
        let reporting = policy.reporting.clone();
        self.reporter.configure(reporting.as_ref());
        self.reporter.kick();
        let now = TokioInstant::now();
        self.due.clock = Some(now);
        self.due.network = Some(now);
        // A new minimum version or channel is acted on at once.
        if self.update.is_some() {
            self.due.update = Some(now);
        }
    }
}

/// What the MFA machine is told: now, the policy in force, this build, and
/// `clock`, this computer's clock as far as the caller's step needs it. It
/// borrows the policy store alone, so the MFA engine stays free to change.
pub(super) fn mfa_ctx(policy: &PolicyStore, clock: mfa::ComputerClock) -> mfa::Ctx<'_> {
    mfa::Ctx {
        now: Utc::now(),
        policy: policy.in_force().0,
        agent_version: Version::current(),
        clock,
    }
}
