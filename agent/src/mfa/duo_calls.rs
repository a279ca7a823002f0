//! The I/O half of the Duo path: makes the exchanges a [`DuoCall`] stands
//! for, off the event loop, and reduces every failure to a [`DuoFailure`]
//! the user can read.

use std::time::Duration;

use chrono::Utc;

use super::duo::{DuoCall, DuoFailure, DuoReply};
use crate::duo::{DuoClient, DuoError, EnrollStatus, Preauth};

/// Longer than this and the wizard would sit on a spinner: give up and say so.
pub const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// Duo's error for `/enroll` with parameters it will not take; for a
/// username Duo already has, its `message_detail` is `username`.
const INVALID_PARAMETERS: u32 = 40002;

pub async fn perform(client: &DuoClient, call: &DuoCall) -> DuoReply {
    let mut clock_offset = None;
    match tokio::time::timeout(CALL_DEADLINE, exchange(client, call, &mut clock_offset)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => DuoReply::Failed(failure(client, e, clock_offset).await),
        Err(_) => DuoReply::Failed(DuoFailure::Other(format!(
            "Duo did not answer within {} s. Check your internet connection, then try again.",
            CALL_DEADLINE.as_secs()
        ))),
    }
}

/// `clock_offset`: set once `/ping` has measured this computer's clock
/// minus Duo's, in seconds.
async fn exchange(
    client: &DuoClient,
    call: &DuoCall,
    clock_offset: &mut Option<i64>,
) -> Result<DuoReply, DuoError> {
    Ok(match call {
        DuoCall::Start { username } => {
            // Unsigned, so it answers even when the keys are wrong.
            *clock_offset = Some(measure_offset(client).await?);
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

/// The failure in the user's words; a refused signature measures the clock
/// against Duo's `/ping`, which needs no signature.
async fn failure(client: &DuoClient, error: DuoError, clock_offset: Option<i64>) -> DuoFailure {
    if error.is_invalid_signature() {
        let offset = match clock_offset {
            Some(known) => Some(known),
            None => measure_offset(client).await.ok(),
        };
        return DuoFailure::InvalidSignature {
            clock_offset_secs: offset,
        };
    }
    describe(&error)
}

/// This computer's clock minus Duo's, in whole seconds, against the middle
/// of the round trip. Duo's `time` is truncated to the second, so its clock
/// is taken as half a second later than it says.
pub async fn measure_offset(client: &DuoClient) -> Result<i64, DuoError> {
    let before = Utc::now();
    let duo_time = client.ping().await?;
    let after = Utc::now();
    let local_mid = before + (after - before) / 2;
    Ok(offset_secs((local_mid - duo_time).num_milliseconds()))
}

/// `local_minus_duo_ms` against Duo's truncated seconds: rounding
/// (ms - 500) to the nearest second is flooring ms.
pub fn offset_secs(local_minus_duo_ms: i64) -> i64 {
    local_minus_duo_ms.div_euclid(1000)
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
    fn offsets_allow_for_duos_truncated_seconds() {
        // Duo said 700 when it was 700.3; this clock read 100.3: 600 s slow.
        assert_eq!(offset_secs(-599_700), -600);
        assert_eq!(offset_secs(-599_000), -599);
        assert_eq!(offset_secs(300), 0);
        assert_eq!(offset_secs(1_400), 1);
        assert_eq!(offset_secs(600_600), 600);
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
