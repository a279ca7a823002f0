//! The Duo path through the enrollment machine: which Duo call a command
//! needs ([`plan()`]), and what Duo's answer does to the enrollment
//! ([`Enrollment::apply_duo`](crate::mfa::Enrollment::apply_duo)), both
//! pure. The calls themselves are made by [`calls::perform`], off the event
//! loop: `calls` is the path's only I/O, kept here beside the plan it
//! carries out and the answers it brings back.
//!
//! `types` is the vocabulary (what is stored, asked and answered), which the
//! machine, the errors and the store use; `plan`, `apply` and `calls` use
//! the machine and the errors, never the other way round.
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
pub mod calls;
mod plan;
pub mod types;

pub use apply::portal_url_is_duos;
pub use plan::{plan, username};
pub use types::*;

#[cfg(test)]
mod tests;
