//! The Duo path through the enrollment machine, pure: which Duo call a
//! command needs ([`plan()`]), and what Duo's answer does to the enrollment
//! ([`Enrollment::apply_duo`](crate::mfa::Enrollment::apply_duo)). The
//! calls themselves are made by [`super::duo_calls::perform`], off the
//! event loop.
//!
//! `types` is the vocabulary (what is stored, asked and answered), which the
//! machine, the errors and the store use; `plan` and `apply` use the
//! machine, never the other way round.
//!
//! `not_set_up →(preauth)→ pairing` with a [`DuoPhase`]:
//! - `enroll`: `/enroll` → `Activate` (QR + link) →(enroll_status
//!   `success`)→ `Confirm`; `invalid` marks the activation expired and
//!   `RenewActivation` asks for a new one. A user who exists in Duo
//!   without a phone gets Duo's enrollment portal (`Portal`) instead.
//! - `auth`: `Confirm`: a push (`/auth` async, then `/auth_status`) or a
//!   passcode. An allowed confirmation is what verifying a TOTP code is:
//!   recovery codes are issued and the shared steps follow.
//! - `allow`: noted as a bypass (the status says "not required").
//! - `deny`: noted; the status says "error" and the user is sent to support.

mod apply;
mod plan;
pub mod types;

pub use apply::portal_url_is_duos;
pub use plan::{plan, username};
pub use types::*;

#[cfg(test)]
mod tests;
