//! The provider seam: what differs between the built-in TOTP provider and
//! Duo. The state machine asks the backend to begin pairing and to check the
//! user's proof; everything else (steps, recovery codes, evidence,
//! throttling) is the same for every provider.
//!
//! The provider is the policy's [`ProviderKind`]: no type of its own. Duo
//! pairs and confirms over the network, so its path is planned in
//! [`super::duo`] and never reaches these functions; they refuse for Duo so
//! that a mistake there is a plain error instead of a silent TOTP pairing.

use chrono::{DateTime, Utc};
use rampart_shared::policy::ProviderKind;
use rampart_shared::totp::{self, Params, SECRET_BYTES, Secret};

use super::error::MfaError;
use super::recovery::os_random;

/// A fresh 160-bit secret from the OS CSPRNG.
pub fn begin_pairing(kind: ProviderKind) -> Result<Secret, MfaError> {
    match kind {
        ProviderKind::Totp => {
            let mut bytes = vec![0u8; SECRET_BYTES];
            os_random(&mut bytes)?;
            Ok(Secret::from_bytes(bytes))
        }
        ProviderKind::Duo => Err(MfaError::ProviderUnavailable(ProviderKind::Duo)),
    }
}

/// Checks a code typed during pairing; returns the step to remember
/// against replay.
pub fn verify(
    kind: ProviderKind,
    secret: &Secret,
    code: &str,
    now: DateTime<Utc>,
    last_accepted_step: Option<u64>,
) -> Result<u64, MfaError> {
    match kind {
        ProviderKind::Totp => totp::verify(
            secret,
            Params::PRODUCT,
            code,
            now.timestamp(),
            last_accepted_step,
        )
        .map_err(MfaError::Code),
        ProviderKind::Duo => Err(MfaError::ProviderUnavailable(ProviderKind::Duo)),
    }
}
