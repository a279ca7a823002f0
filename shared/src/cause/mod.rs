//! One vocabulary of causes: every failure the product can meet, each with
//! the plain words a person reads (the measured figure inside them) and one
//! next step. The status window, the wizard, `doctor` and the CLI all say a
//! cause through [`Cause::words`] and [`Cause::next_step`]; the raw error
//! text travels beside it as [`Problem::details`], shown only on demand.
//! `docs/troubleshooting.md` is generated from [`examples`] (a test fails
//! when the page drifts).
//!
//! Protocol 1, added with issue 14: a `Problem` appears in status sections
//! and MFA errors. A cause a newer agent knows decodes as [`Cause::Other`],
//! whose words are the `details`.

use serde::{Deserialize, Serialize};

use crate::status::{describe_offset, human_duration};
use crate::version::Version;

/// What an endpoint is to this device: who can mend it when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// IT's policy server.
    PolicyServer,
    /// Duo's Auth API (the policy's `api_host`).
    Duo,
    /// IT's report collector.
    Reporting,
    /// The offline-access guide the employee must read.
    OfflineGuide,
}

impl Endpoint {
    /// What it is to the employee: "policy server", "offline-access guide".
    pub fn label(self) -> &'static str {
        match self {
            Self::PolicyServer => "policy server",
            Self::Duo => "Duo",
            Self::Reporting => "IT reporting",
            Self::OfflineGuide => "offline-access guide",
        }
    }

    /// Run by IT: when it alone fails, the fix is theirs, not the Wi-Fi's.
    pub fn run_by_it(self) -> bool {
        matches!(self, Self::PolicyServer | Self::Reporting)
    }
}

/// A failure, by cause, with what was measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum Cause {
    /// Every endpoint failed to resolve or connect: no usable network.
    Offline { endpoints: u32 },
    /// The endpoint's name does not resolve.
    Dns { endpoint: Endpoint, host: String },
    /// The endpoint's host answered, refusing the connection.
    Refused { endpoint: Endpoint, host: String },
    /// Connected to nothing usable: no route, or a handshake or answer that
    /// broke off. No figure: nothing was measured but the failure.
    Unreachable { endpoint: Endpoint, host: String },
    /// No answer within the time allowed.
    Timeout {
        endpoint: Endpoint,
        host: String,
        after_ms: u64,
    },
    /// TLS: a certificate this computer does not trust.
    UntrustedCertificate {
        endpoint: Endpoint,
        host: String,
        /// The issuer the server presented, when it could be read.
        #[serde(default)]
        issuer: Option<String>,
    },
    /// TLS: the certificate's validity starts after this computer's "now",
    /// or ended before it: usually this computer's clock.
    CertificateDates { endpoint: Endpoint, host: String },
    /// The endpoint answered with an HTTP status that is not what it is for.
    HttpStatus {
        endpoint: Endpoint,
        host: String,
        status: u16,
    },
    /// No time server answered (UDP port 123 blocked, often), and no web
    /// server's time could stand in.
    NtpBlocked { servers: u32 },
    /// This computer's clock measured beyond the allowed skew.
    ClockSkew { offset_ms: i64, allowed_ms: u64 },
    /// A code that is wrong now matches the phone's clock off by this much
    /// (the phone minus this computer).
    PhoneClockSkew { offset_ms: i64 },
    /// This computer's clock moved since it was last measured: the code
    /// failed because of this computer, not the phone.
    ComputerClockMoved { moved_ms: i64 },
    /// Duo refused Rampart's integration key or secret (40101, 40103 with
    /// the clock right).
    DuoCredentials,
    /// Duo refused the request's time (40103/40105 with a measured skew):
    /// this computer's clock minus Duo's.
    DuoClock { offset_ms: i64 },
    /// Duo's policy denies this user.
    DuoDenied,
    /// The phone's activation was not confirmed by Duo within this long.
    DuoActivationPending { waited_ms: u64 },
    /// This agent is older than the policy's minimum.
    VersionTooOld {
        current: Version,
        minimum: Version,
        /// Whether this agent updates itself (an update source is set).
        updates_itself: bool,
    },
    /// The app found no agent answering and no service installed.
    AgentDown,
    /// The service is installed but has not answered yet.
    ServiceStarting { waited_ms: u64 },
    /// A state file could not be written because the disk is full.
    StorageFull { what: String },
    /// IT's latest policy was refused (signature, schema, serial).
    PolicyRejected,
    /// Issue 20: the release feed could not be read. `reason`: plain words
    /// naming the server and the figure.
    UpdateCheckFailed { reason: String },
    /// Issue 20: the feed's newest release is older than what is installed
    /// here (IT withdrew a release); nothing is downgraded.
    OlderReleaseOffered { offered: String, installed: String },
    /// Issue 20: a release could not be installed; what runs is unchanged.
    UpdateFailed { version: String, reason: String },
    /// Issue 20: a new release did not start properly and the previous
    /// version was put back; it is not installed again on this device.
    UpdateRolledBack { version: String, reason: String },
    /// A cause a newer agent knows; its words are the problem's details.
    #[serde(other)]
    Other,
}

/// A cause and the raw text behind it (an OS or library error), which is
/// shown only on demand under "Details".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    #[serde(flatten)]
    pub cause: Cause,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl Problem {
    pub fn new(cause: Cause, details: impl Into<String>) -> Self {
        Self {
            cause,
            details: details.into(),
        }
    }

    /// The headline: the cause's words, or for a cause this build does not
    /// know, the details it came with.
    pub fn words(&self) -> String {
        match self.cause {
            Cause::Other if !self.details.is_empty() => self.details.clone(),
            _ => self.cause.words(),
        }
    }

    /// The headline and the next step: the whole message people read.
    pub fn sentence(&self) -> String {
        format!("{} {}", self.words(), self.cause.next_step())
    }
}

fn seconds(ms: u64) -> String {
    human_duration(ms)
}

impl Cause {
    /// The stable name, as in the JSON and the troubleshooting page.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Offline { .. } => "offline",
            Self::Dns { .. } => "dns",
            Self::Refused { .. } => "refused",
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::UntrustedCertificate { .. } => "untrusted_certificate",
            Self::CertificateDates { .. } => "certificate_dates",
            Self::HttpStatus { .. } => "http_status",
            Self::NtpBlocked { .. } => "ntp_blocked",
            Self::ClockSkew { .. } => "clock_skew",
            Self::PhoneClockSkew { .. } => "phone_clock_skew",
            Self::ComputerClockMoved { .. } => "computer_clock_moved",
            Self::DuoCredentials => "duo_credentials",
            Self::DuoClock { .. } => "duo_clock",
            Self::DuoDenied => "duo_denied",
            Self::DuoActivationPending { .. } => "duo_activation_pending",
            Self::VersionTooOld { .. } => "version_too_old",
            Self::AgentDown => "agent_down",
            Self::ServiceStarting { .. } => "service_starting",
            Self::StorageFull { .. } => "storage_full",
            Self::PolicyRejected => "policy_rejected",
            Self::UpdateCheckFailed { .. } => "update_check_failed",
            Self::OlderReleaseOffered { .. } => "older_release_offered",
            Self::UpdateFailed { .. } => "update_failed",
            Self::UpdateRolledBack { .. } => "update_rolled_back",
            Self::Other => "other",
        }
    }

    /// The endpoint the cause is about, for causes that concern one.
    pub fn endpoint(&self) -> Option<Endpoint> {
        match self {
            Self::Dns { endpoint, .. }
            | Self::Refused { endpoint, .. }
            | Self::Unreachable { endpoint, .. }
            | Self::Timeout { endpoint, .. }
            | Self::UntrustedCertificate { endpoint, .. }
            | Self::CertificateDates { endpoint, .. }
            | Self::HttpStatus { endpoint, .. } => Some(*endpoint),
            _ => None,
        }
    }

    /// What happened, in plain words, with the measured figure: one
    /// sentence that names the cause.
    pub fn words(&self) -> String {
        match self {
            Self::Offline { endpoints } => format!(
                "This computer is not connected to the internet: none of the {endpoints} servers Rampart needs could be reached."
            ),
            Self::Dns { endpoint, host } => format!(
                "The name {host} ({}) could not be found on this network.",
                endpoint.label()
            ),
            Self::Refused { endpoint, host } => {
                format!("{host} ({}) refused the connection.", endpoint.label())
            }
            Self::Unreachable { endpoint, host } => {
                format!("{host} ({}) could not be reached.", endpoint.label())
            }
            Self::Timeout {
                endpoint,
                host,
                after_ms,
            } => format!(
                "{host} ({}) did not answer within {}.",
                endpoint.label(),
                seconds(*after_ms)
            ),
            Self::UntrustedCertificate {
                endpoint,
                host,
                issuer,
            } => format!(
                "{host} ({}) presented a certificate this computer does not trust{}.",
                endpoint.label(),
                issuer
                    .as_deref()
                    .map(|i| format!(", issued by \"{i}\""))
                    .unwrap_or_default()
            ),
            Self::CertificateDates { endpoint, host } => format!(
                "The certificate of {host} ({}) is not valid at this computer's date and time.",
                endpoint.label()
            ),
            Self::HttpStatus {
                endpoint,
                host,
                status,
            } => format!(
                "{host} ({}) answered with an error (HTTP {status}).",
                endpoint.label()
            ),
            Self::NtpBlocked { servers } => format!(
                "No time server answered ({servers} tried): this network probably blocks time checks (UDP port 123)."
            ),
            Self::ClockSkew {
                offset_ms,
                allowed_ms,
            } => format!(
                "Your computer's {}; at most {} is allowed.",
                describe_offset(*offset_ms),
                human_duration(*allowed_ms)
            ),
            Self::PhoneClockSkew { offset_ms } => format!(
                "The code matches your phone's clock being {} {}.",
                human_duration(offset_ms.unsigned_abs()),
                if *offset_ms < 0 { "behind" } else { "ahead" }
            ),
            Self::ComputerClockMoved { moved_ms } => format!(
                "This computer's clock moved {} {} since it was checked, so the code could not match.",
                human_duration(moved_ms.unsigned_abs()),
                if *moved_ms < 0 { "back" } else { "forward" }
            ),
            Self::DuoCredentials => {
                "Duo refused Rampart's credentials (the integration key or secret key).".to_owned()
            }
            Self::DuoClock { offset_ms } => format!(
                "Duo refused the request because this computer's {} by Duo's time.",
                describe_offset(*offset_ms)
            ),
            Self::DuoDenied => "Duo does not allow MFA setup for your account.".to_owned(),
            Self::DuoActivationPending { waited_ms } => format!(
                "Duo has not confirmed your phone's activation after {}.",
                human_duration(*waited_ms)
            ),
            Self::VersionTooOld {
                current, minimum, ..
            } => format!("This Rampart is version {current}; IT requires {minimum} or newer."),
            Self::AgentDown => "The Rampart service is not running.".to_owned(),
            Self::ServiceStarting { waited_ms } => format!(
                "The Rampart service is installed but has not answered for {}.",
                human_duration(*waited_ms)
            ),
            Self::StorageFull { what } => {
                format!("{} could not be saved: the disk is full.", capitalize(what))
            }
            Self::PolicyRejected => {
                "IT's latest policy was refused, so the one before it stays in force.".to_owned()
            }
            Self::UpdateCheckFailed { reason } => {
                format!("Rampart could not check for updates: {reason}.")
            }
            Self::OlderReleaseOffered { offered, installed } => format!(
                "IT offers only an older release of Rampart ({offered}) than the one installed here ({installed}); this computer keeps {installed}."
            ),
            Self::UpdateFailed { version, reason } if version.is_empty() => {
                format!("Rampart could not update itself: {reason}.")
            }
            Self::UpdateFailed { version, reason } => {
                format!("Rampart could not install update {version}: {reason}.")
            }
            Self::UpdateRolledBack { version, reason } => format!(
                "Rampart {version} did not start properly ({reason}), so the previous version was put back."
            ),
            Self::Other => {
                "Something went wrong that this version of Rampart cannot name.".to_owned()
            }
        }
    }

    /// The words and the next step: the whole message people read.
    pub fn sentence(&self) -> String {
        format!("{} {}", self.words(), self.next_step())
    }

    /// The one thing to do next.
    pub fn next_step(&self) -> String {
        const AUTO_TIME: &str =
            "Turn on \"Set time automatically\" in your computer's date and time settings";
        match self {
            Self::Offline { .. } => {
                "Connect to Wi-Fi or plug in a network cable, then click Check again.".to_owned()
            }
            Self::Dns { endpoint, host } if endpoint.run_by_it() => format!(
                "Tell IT that {host} cannot be found from this network; nothing on this computer needs to change."
            ),
            Self::Dns { .. } => {
                "If web pages open, tell IT: this network cannot find the server. Otherwise connect to another network.".to_owned()
            }
            Self::Refused { endpoint, host } | Self::HttpStatus { endpoint, host, .. }
                if endpoint.run_by_it() =>
            {
                format!("Tell IT that {host} is not answering Rampart; nothing on this computer needs to change.")
            }
            Self::Refused { .. } | Self::HttpStatus { .. } => {
                "Try again in a few minutes; if it keeps failing, tell IT.".to_owned()
            }
            Self::Unreachable { host, .. } | Self::Timeout { host, .. } => format!(
                "If other websites open, a firewall is probably blocking {host}: tell IT. Otherwise connect to another network."
            ),
            Self::UntrustedCertificate { .. } => {
                "Tell IT: a network proxy that inspects encrypted traffic, or a company certificate missing from this computer, is the likely cause. Until then, try another network.".to_owned()
            }
            Self::CertificateDates { .. } | Self::ClockSkew { .. } | Self::ComputerClockMoved { .. } | Self::DuoClock { .. } => {
                format!("{AUTO_TIME}, then try again.")
            }
            Self::NtpBlocked { .. } => format!(
                "You can continue. If codes are refused, {}.",
                AUTO_TIME.replacen("Turn", "turn", 1)
            ),
            Self::PhoneClockSkew { .. } => {
                "On your phone, turn on automatic date and time, then type the new code.".to_owned()
            }
            Self::DuoCredentials | Self::PolicyRejected => {
                "Tell IT; nothing on this computer needs to change.".to_owned()
            }
            Self::DuoDenied => "Contact your IT support team: only they can allow it.".to_owned(),
            Self::DuoActivationPending { .. } => {
                "Check that Duo Mobile shows your account, then click Try again. If it still waits, tell IT.".to_owned()
            }
            Self::VersionTooOld {
                updates_itself: true,
                ..
            } => "Rampart is updating itself; this window continues when it is done.".to_owned(),
            Self::VersionTooOld { .. } => {
                "Install the new version IT provides (see the support link), then open Rampart again.".to_owned()
            }
            Self::AgentDown => {
                "Restart your computer; if this stays, tell IT.".to_owned()
            }
            Self::ServiceStarting { .. } => {
                "Wait a moment; Rampart tries again by itself.".to_owned()
            }
            Self::StorageFull { .. } => "Free some disk space, then try again.".to_owned(),
            Self::UpdateCheckFailed { .. } | Self::OlderReleaseOffered { .. } => {
                "Nothing to do on this computer: Rampart keeps working and checks again by itself. If this lasts for days, tell IT.".to_owned()
            }
            Self::UpdateFailed { .. } => {
                "Rampart keeps working on the version it has and tries again later; if this stays, tell IT and attach the details.".to_owned()
            }
            Self::UpdateRolledBack { version, .. } => format!(
                "Rampart keeps working on the previous version and will not install {version} again; IT has been told. Tell IT if you see problems."
            ),
            Self::Other => "Tell IT and attach the details.".to_owned(),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One instance of every cause, in the order the troubleshooting page
/// lists them: the page and the literal tests are made from these.
pub fn examples() -> Vec<Cause> {
    let host = || "policy.example.com".to_owned();
    vec![
        Cause::Offline { endpoints: 3 },
        Cause::Dns {
            endpoint: Endpoint::PolicyServer,
            host: host(),
        },
        Cause::Refused {
            endpoint: Endpoint::PolicyServer,
            host: host(),
        },
        Cause::Unreachable {
            endpoint: Endpoint::OfflineGuide,
            host: "guide.example.com".into(),
        },
        Cause::Timeout {
            endpoint: Endpoint::Duo,
            host: "api-1234.duosecurity.com".into(),
            after_ms: 5_000,
        },
        Cause::UntrustedCertificate {
            endpoint: Endpoint::Duo,
            host: "api-1234.duosecurity.com".into(),
            issuer: Some("Corp Proxy CA".into()),
        },
        Cause::CertificateDates {
            endpoint: Endpoint::OfflineGuide,
            host: "guide.example.com".into(),
        },
        Cause::HttpStatus {
            endpoint: Endpoint::Reporting,
            host: "collector.example.com".into(),
            status: 503,
        },
        Cause::NtpBlocked { servers: 4 },
        Cause::ClockSkew {
            offset_ms: 600_000,
            allowed_ms: 30_000,
        },
        Cause::PhoneClockSkew {
            offset_ms: -300_000,
        },
        Cause::ComputerClockMoved { moved_ms: 300_000 },
        Cause::DuoCredentials,
        Cause::DuoClock { offset_ms: 600_000 },
        Cause::DuoDenied,
        Cause::DuoActivationPending { waited_ms: 120_000 },
        Cause::VersionTooOld {
            current: Version::new(0, 1, 0),
            minimum: Version::new(0, 2, 0),
            updates_itself: true,
        },
        Cause::VersionTooOld {
            current: Version::new(0, 1, 0),
            minimum: Version::new(0, 2, 0),
            updates_itself: false,
        },
        Cause::AgentDown,
        Cause::ServiceStarting { waited_ms: 60_000 },
        Cause::StorageFull {
            what: "your MFA setup".into(),
        },
        Cause::PolicyRejected,
        Cause::UpdateCheckFailed {
            reason: "the release server releases.example.com could not be reached".into(),
        },
        Cause::OlderReleaseOffered {
            offered: "0.1.0".into(),
            installed: "0.2.0".into(),
        },
        Cause::UpdateFailed {
            version: "0.3.0".into(),
            reason: "the release is not signed by a key this device trusts".into(),
        },
        Cause::UpdateRolledBack {
            version: "0.3.0".into(),
            reason: "it exited with code 1 before it was serving".into(),
        },
    ]
}

/// `docs/troubleshooting.md`, made from [`examples`].
pub fn troubleshooting_page() -> String {
    let mut page = String::from(
        "# Troubleshooting\n\n\
         <!-- Generated from shared/src/cause/mod.rs by `RAMPART_BLESS=1 cargo test -p rampart-shared \
         troubleshooting`; edit the words there. -->\n\n\
         Every failure Rampart reports has one of these causes. The app, `rampart-agent status` and \
         `rampart-agent doctor` show the words and the next step below (with the real host names \
         and figures); the raw error text is under \"Details\". In status JSON a problem is \
         `{\"cause\": \"<name>\", …, \"details\": \"…\"}`.\n\n\
         | cause | what the person reads | next step |\n|---|---|---|\n",
    );
    for cause in examples() {
        page.push_str(&format!(
            "| `{}` | {} | {} |\n",
            cause.name(),
            cause.words().replace('|', "\\|"),
            cause.next_step().replace('|', "\\|")
        ));
    }
    page
}

#[cfg(test)]
mod tests;
