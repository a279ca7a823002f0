//! The I/O half of the Duo path: makes the exchanges a [`DuoCall`] stands
//! for, off the event loop, and reduces every failure to a [`DuoFailure`]
//! the user can read.

use std::time::Duration;

use super::types::{DuoCall, DuoFailure, DuoReply};
use crate::duo::{DuoClient, DuoError, EnrollStatus, Preauth};

/// Longer than this and the wizard would sit on a spinner: give up and say so.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Duo's error for `/enroll` with parameters it will not take; for a
/// username Duo already has, its `message_detail` is `username`.
const INVALID_PARAMETERS: u32 = 40002;

/// Reading Duo's clock after a refusal takes at most this long more.
pub const PING_DEADLINE: Duration = Duration::from_secs(5);

pub async fn perform(client: &DuoClient, call: &DuoCall) -> DuoReply {
    let mut signed_with_duos_time = false;
    match tokio::time::timeout(
        CALL_DEADLINE,
        exchange(client, call, &mut signed_with_duos_time),
    )
    .await
    {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => DuoReply::Failed(failure(client, e, signed_with_duos_time).await),
        Err(_) => DuoReply::Failed(DuoFailure::Other(format!(
            "Duo did not answer within {} s. Check your internet connection, then try again.",
            CALL_DEADLINE.as_secs()
        ))),
    }
}

/// `signed_with_duos_time`: set when the signed requests carried Duo's
/// time rather than this computer's (a small skew, see
/// [`crate::duo::sign::signing_time`]), so a refusal is not the clock.
async fn exchange(
    client: &DuoClient,
    call: &DuoCall,
    signed_with_duos_time: &mut bool,
) -> Result<DuoReply, DuoError> {
    // Duo's clock, read when the last reading is missing or stale: `/ping`
    // is unsigned, so it answers even when the keys or the clock are wrong.
    // A failed read is not the call's failure: the signed request says more.
    if matches!(call, DuoCall::Start { .. }) || client.fresh_reading().is_none() {
        match client.read_clock().await {
            Ok(_) => {}
            Err(e) if matches!(call, DuoCall::Start { .. }) => return Err(e),
            Err(e) => tracing::debug!(error = %e, "Duo's clock could not be read"),
        }
    }
    *signed_with_duos_time = client.signing_time().1;
    Ok(match call {
        DuoCall::Start { username } => {
            client.check().await?;
            enroll_if_needed(client, username).await?
        }
        DuoCall::Renew { username } => enroll_if_needed(client, username).await?,
        DuoCall::EnrollStatus {
            username,
            user_id,
            activation_code,
        } => match client.enroll_status(user_id, activation_code).await? {
            // The devices to confirm with come from preauth.
            EnrollStatus::Success => DuoReply::Preauth(client.preauth(username).await?),
            other => DuoReply::EnrollStatus(other),
        },
        DuoCall::Preauth { username } => DuoReply::Preauth(client.preauth(username).await?),
        DuoCall::Push { username, device } => DuoReply::PushSent {
            txid: client.auth_push(username, device).await?,
        },
        DuoCall::AuthStatus { txid } => DuoReply::Auth(client.auth_status(txid).await?),
        DuoCall::Passcode { username, passcode } => {
            DuoReply::Auth(client.auth_passcode(username, passcode).await?)
        }
    })
}

/// `/preauth`; a user Duo does not know gets an activation from `/enroll`,
/// and a user Duo has but who has no phone gets the portal link.
async fn enroll_if_needed(client: &DuoClient, username: &str) -> Result<DuoReply, DuoError> {
    let portal = match client.preauth(username).await? {
        Preauth::Enroll { enroll_portal_url } => enroll_portal_url,
        other => return Ok(DuoReply::Preauth(other)),
    };
    match client.enroll(username).await {
        Ok(activation) => Ok(DuoReply::Activation(activation)),
        Err(DuoError::Fail {
            code: Some(INVALID_PARAMETERS),
            ..
        }) if portal.is_some() => Ok(DuoReply::Portal {
            url: portal.unwrap_or_default(),
        }),
        Err(e) => Err(e),
    }
}

/// The failure in the user's words. A refused signature or timestamp reads
/// Duo's clock again (bounded by [`PING_DEADLINE`]) for the figure.
async fn failure(client: &DuoClient, error: DuoError, signed_with_duos_time: bool) -> DuoFailure {
    let timestamp = error.is_bad_timestamp();
    if timestamp || error.is_invalid_signature() {
        let offset_ms = match tokio::time::timeout(PING_DEADLINE, client.read_clock()).await {
            Ok(Ok(reading)) => Some(reading.offset_ms()),
            _ => None,
        };
        return refusal(
            timestamp,
            offset_ms,
            signed_with_duos_time,
            error.to_string(),
        );
    }
    describe(&error)
}

/// Pure: what a 40105 (`timestamp`) or 40103 means, given this computer's
/// clock minus Duo's (`offset_ms`, when `/ping` answered) and whether the
/// request was signed with Duo's time. 40105 is Duo naming the time; 40103
/// is the time only when the `Date` sent was beyond Duo's tolerance, and
/// otherwise the keys. Duo's own text goes in `details`.
pub fn refusal(
    timestamp: bool,
    offset_ms: Option<i64>,
    signed_with_duos_time: bool,
    details: String,
) -> DuoFailure {
    let tolerance_ms = crate::mfa::error::DUO_CLOCK_TOLERANCE_SECS * 1000;
    match offset_ms {
        None => DuoFailure::Unmeasured { timestamp, details },
        Some(offset_ms) if timestamp => DuoFailure::Clock { offset_ms, details },
        Some(offset_ms) if !signed_with_duos_time && offset_ms.unsigned_abs() > tolerance_ms => {
            DuoFailure::Clock { offset_ms, details }
        }
        Some(_) => DuoFailure::Credentials { details },
    }
}

/// This computer's clock minus Duo's, in whole seconds, against the middle
/// of the round trip (`doctor`'s figure). Keeps the reading for signing.
pub async fn measure_offset(client: &DuoClient) -> Result<i64, DuoError> {
    let reading = client.read_clock().await?;
    Ok(reading.offset_ms().div_euclid(1000))
}

/// Every other failure as a sentence with what to do.
pub fn describe(error: &DuoError) -> DuoFailure {
    match error {
        DuoError::RateLimited { retry_after } => DuoFailure::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        },
        DuoError::Unreachable(cause) => DuoFailure::Other(format!(
            "Rampart could not reach Duo ({cause}). Check your internet connection, then try again."
        )),
        DuoError::Config(what) => DuoFailure::Other(format!(
            "Duo is not set up correctly on this computer: {what}. Tell your IT team."
        )),
        DuoError::Fail { .. } | DuoError::BadResponse(_) => DuoFailure::Other(format!(
            "{error}. Try again; if it keeps failing, open a support ticket."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_blame_the_clock_only_when_it_is_measured_off() {
        let d = || "Duo refused the request: …".to_owned();
        // 40105: Duo named the time; the figure is the measured offset.
        assert_eq!(
            refusal(true, Some(600_000), false, d()),
            DuoFailure::Clock {
                offset_ms: 600_000,
                details: d()
            }
        );
        // 40103 with a clock beyond Duo's tolerance: the clock.
        assert_eq!(
            refusal(false, Some(-312_000), false, d()),
            DuoFailure::Clock {
                offset_ms: -312_000,
                details: d()
            }
        );
        // 40103 with the clock right, or signed with Duo's own time: the keys.
        assert_eq!(
            refusal(false, Some(1_000), false, d()),
            DuoFailure::Credentials { details: d() }
        );
        assert_eq!(
            refusal(false, Some(90_000), true, d()),
            DuoFailure::Credentials { details: d() }
        );
        // Duo's clock could not be read.
        assert_eq!(
            refusal(false, None, false, d()),
            DuoFailure::Unmeasured {
                timestamp: false,
                details: d()
            }
        );
    }

    #[test]
    fn failures_are_sentences_with_what_to_do() {
        let limited = describe(&DuoError::RateLimited {
            retry_after: Duration::from_millis(300),
        });
        assert_eq!(
            limited,
            DuoFailure::RateLimited {
                retry_after_secs: 1
            }
        );
        let DuoFailure::Other(text) = describe(&DuoError::Unreachable("connection refused".into()))
        else {
            panic!("not a sentence")
        };
        assert_eq!(
            text,
            "Rampart could not reach Duo (connection refused). Check your internet connection, \
             then try again."
        );
        let DuoFailure::Other(text) = describe(&DuoError::Fail {
            http_status: 400,
            code: Some(40002),
            message: "Invalid request parameters".into(),
            detail: Some("username".into()),
        }) else {
            panic!("not a sentence")
        };
        assert!(
            text.starts_with("Duo refused the request: Invalid request parameters"),
            "{text}"
        );
        assert!(text.ends_with("open a support ticket."), "{text}");
    }
}
