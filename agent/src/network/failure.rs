//! How reaching an endpoint failed, by kind and stage (the network check
//! and doctor's probe share it), and what that is in the shared vocabulary
//! (`Failure::cause`). TLS refusals of a certificate are found inside the
//! error wrappers HTTP clients put around them; an untrusted certificate's
//! issuer is asked for once ([`with_issuer`]).

use std::net::SocketAddr;
use std::time::Duration;

use rampart_shared::cause::Cause;

use super::{Endpoint, Target};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// The host answered the connection with a refusal (a closed port).
    #[error("connection refused: {0}")]
    Refused(String),
    #[error("connection failed: {0}")]
    Tcp(String),
    #[error("no answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
    /// Connected, but the TLS handshake refused the server's certificate:
    /// the endpoint cannot be used although TCP reaches it.
    #[error("certificate refused: {detail}")]
    Certificate {
        dates: bool,
        detail: String,
        /// Who issued the refused certificate, when it could be read
        /// ([`crate::tls_issuer`]).
        issuer: Option<String>,
    },
    /// Connected, but the TLS handshake failed for another reason.
    #[error("{0}")]
    Tls(String),
    /// Connected, but no proper HTTP answer came.
    #[error("{0}")]
    Http(String),
}

/// Where a probe stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Stage {
    #[serde(rename = "DNS")]
    Dns,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "HTTP")]
    Http,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Self::Dns => "DNS",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
            Self::Http => "HTTP",
        }
    }
}

impl Failure {
    /// The stage of the exchange that failed.
    pub fn stage(&self) -> Stage {
        match self {
            Self::Dns(_) => Stage::Dns,
            Self::Refused(_) | Self::Tcp(_) | Self::Timeout(_) => Stage::Tcp,
            Self::Certificate { .. } | Self::Tls(_) => Stage::Tls,
            Self::Http(_) => Stage::Http,
        }
    }

    /// The failure in the shared vocabulary, for `target`.
    pub fn cause(&self, target: &Target) -> Cause {
        self.cause_at(target.endpoint, target.display())
    }

    /// The failure in the shared vocabulary, for `endpoint` at `host`.
    pub fn cause_at(&self, endpoint: Endpoint, host: String) -> Cause {
        match self {
            Self::Dns(_) => Cause::Dns { endpoint, host },
            Self::Refused(_) => Cause::Refused { endpoint, host },
            // "No route to host", "network unreachable", a handshake or an
            // answer that broke off: the endpoint could not be used.
            Self::Tcp(_) | Self::Tls(_) | Self::Http(_) => Cause::Unreachable { endpoint, host },
            Self::Timeout(after) => Cause::Timeout {
                endpoint,
                host,
                after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
            },
            Self::Certificate { dates: true, .. } => Cause::CertificateDates { endpoint, host },
            Self::Certificate {
                dates: false,
                issuer,
                ..
            } => Cause::UntrustedCertificate {
                endpoint,
                host,
                issuer: issuer.clone(),
            },
        }
    }

    /// Whether the failure says nothing about the endpoint itself, only
    /// that nothing could be reached: no name, no route, no answer.
    pub(super) fn is_silence(&self) -> bool {
        matches!(self, Self::Dns(_) | Self::Tcp(_) | Self::Timeout(_))
    }
}

/// A failed connection of an HTTP client, by kind: a refused certificate, a
/// refused connection, or another failure to connect.
pub fn connect_failure(e: &(dyn std::error::Error + 'static), detail: String) -> Failure {
    if let Some(dates) = certificate_refusal(e) {
        return Failure::Certificate {
            dates,
            detail,
            issuer: None,
        };
    }
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return Failure::Refused(detail);
            }
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn std::error::Error + 'static));
                continue;
            }
        }
        next = err.source();
    }
    Failure::Tcp(detail)
}

/// Whether `e` (anywhere in its chain) is a TLS refusal of the server's
/// certificate: `Some(true)` when only its dates are wrong for this
/// computer's clock, `Some(false)` when it is not trusted.
pub fn certificate_refusal(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    use rustls::CertificateError as C;
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(rustls::Error::InvalidCertificate(c)) = err.downcast_ref::<rustls::Error>() {
            return Some(matches!(
                c,
                C::Expired
                    | C::NotValidYet
                    | C::ExpiredContext { .. }
                    | C::NotValidYetContext { .. }
            ));
        }
        // An io::Error's `source` skips the error it wraps (tokio-rustls's
        // io::Error inside hyper's): step into it instead.
        next = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// A refusal of an untrusted certificate, with its issuer's name when a
/// second handshake can read it (off the event loop, within `timeout`).
pub async fn with_issuer(
    failure: Failure,
    host: &str,
    addr: SocketAddr,
    timeout: Duration,
) -> Failure {
    match failure {
        Failure::Certificate {
            dates: false,
            detail,
            issuer: None,
        } => {
            let host = host.to_owned();
            let issuer = tokio::task::spawn_blocking(move || {
                crate::tls_issuer::presented_issuer(&host, addr, timeout)
            })
            .await
            .ok()
            .flatten();
            Failure::Certificate {
                dates: false,
                detail,
                issuer,
            }
        }
        other => other,
    }
}
