//! The provider seam: what differs between the built-in TOTP provider and
//! Duo. The state machine asks the backend to begin pairing and to check the
//! user's proof; everything else (steps, recovery codes, evidence,
//! throttling) is the same for every provider.
//!
//! Duo pairs and confirms over the network, so its path is planned in
//! [`super::duo`] and never reaches these methods; they refuse for Duo so
//! that a mistake there is a plain error instead of a silent TOTP pairing.

use chrono::{DateTime, Utc};
use rampart_shared::policy::{Provider, ProviderKind};
use rampart_shared::totp::{self, Params, SECRET_BYTES, Secret};

use super::error::MfaError;
use super::recovery::os_random;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Totp,
    /// Handled by [`super::duo`]: every operation here refuses.
    Duo,
}

impl Backend {
    pub fn for_policy(provider: &Provider) -> Self {
        Self::for_kind(provider.kind())
    }

    pub fn for_kind(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Totp => Self::Totp,
            ProviderKind::Duo => Self::Duo,
        }
    }

    pub fn kind(self) -> ProviderKind {
        match self {
            Self::Totp => ProviderKind::Totp,
            Self::Duo => ProviderKind::Duo,
        }
    }

    /// A fresh 160-bit secret from the OS CSPRNG.
    pub fn begin_pairing(self) -> Result<Secret, MfaError> {
        match self {
            Self::Totp => {
                let mut bytes = vec![0u8; SECRET_BYTES];
                os_random(&mut bytes)?;
                Ok(Secret::from_bytes(bytes))
            }
            Self::Duo => Err(MfaError::ProviderUnavailable(ProviderKind::Duo)),
        }
    }

    /// Checks a code typed during pairing; returns the step to remember
    /// against replay.
    pub fn verify(
        self,
        secret: &Secret,
        code: &str,
        now: DateTime<Utc>,
        last_accepted_step: Option<u64>,
    ) -> Result<u64, MfaError> {
        match self {
            Self::Totp => totp::verify(
                secret,
                Params::PRODUCT,
                code,
                now.timestamp(),
                last_accepted_step,
            )
            .map_err(MfaError::Code),
            Self::Duo => Err(MfaError::ProviderUnavailable(ProviderKind::Duo)),
        }
    }
}
