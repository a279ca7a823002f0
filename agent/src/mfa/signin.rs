//! Sign-in verification (`verify_signin`): a code typed at a sign-in prompt
//! checked against one user's finished TOTP setup.
//!
//! The rules, pure on [`Enrollment`]: the code of this 30 s step or one
//! either way; a step at or before the last accepted one is a replay
//! (RFC 6238 §5.2: the last accepted step is in the state file, shared with
//! enrollment's verification); wrong codes count towards the same throttle
//! as enrollment's (`machine::wait_after`: the fifth wrong code in a row
//! starts a 30 s wait, each further one doubles it up to 15 min), a typo or
//! a replay does not; an unused recovery code is
//! accepted and spent. The engine's half applies a rule to a copy and keeps
//! it only once the state file has it: a sign-in the disk did not record
//! is refused (`unavailable`), so a code can never be accepted twice
//! across a restart.
//!
//! A recovery code costs one Argon2id hash per unused code: the loop takes
//! the candidates ([`MfaEngine::recovery_candidates`]), hashes them on a
//! blocking thread ([`recovery::find`]) and finishes on the loop
//! ([`MfaEngine::finish_recovery`]). Codes are never logged or stored.

use chrono::{DateTime, Utc};
use rampart_shared::mfa::EnrollmentStep;
use rampart_shared::policy::ProviderKind;
use rampart_shared::signin::{SigninMethod, SigninRefusal, SigninResult, SigninSection};
use rampart_shared::totp::VerifyError;
use rampart_shared::user::UserId;
use zeroize::Zeroizing;

use super::error::MfaError;
use super::machine::{Enrollment, UserKey};
use super::recovery::{self, RecoveryHash};
use super::{MfaEngine, Slot, provider};

/// What the person typed, by its shape.
#[derive(Debug)]
pub enum Typed {
    /// Six digits (spaces allowed): the authenticator app's code.
    Totp(Zeroizing<String>),
    /// Ten letters and digits of the recovery alphabet, normalized.
    Recovery(Zeroizing<String>),
}

/// Sorts a typed code by its shape; `None`: neither shape.
pub fn classify(input: &str) -> Option<Typed> {
    let digits = Zeroizing::new(
        input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>(),
    );
    if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Typed::Totp(digits));
    }
    recovery::normalize(input).map(|code| Typed::Recovery(Zeroizing::new(code)))
}

/// A spent recovery code as the blocking check found it: its index and
/// stored hash, so the loop can tell that the list was not replaced since.
pub type Found = Option<(usize, Vec<u8>)>;

fn refused(reason: SigninRefusal, message: impl Into<String>) -> SigninResult {
    SigninResult::refused(reason, message)
}

fn malformed() -> SigninResult {
    refused(
        SigninRefusal::Malformed,
        "Enter the 6-digit code from your authenticator app, or a 10-character recovery code.",
    )
}

pub fn not_enrolled(user: &str) -> SigninResult {
    refused(
        SigninRefusal::NotEnrolled,
        format!(
            "{user} has no finished sign-in code setup on this device: open Rampart and set up MFA, or ask IT."
        ),
    )
}

fn unreadable(reason: &str) -> SigninResult {
    refused(
        SigninRefusal::Unavailable,
        format!(
            "Your saved MFA setup on this device cannot be read ({reason}): ask IT to reset it."
        ),
    )
}

impl Enrollment {
    /// A code can sign this user in: a finished setup of the built-in
    /// TOTP provider (Duo's own products sign Duo users in).
    fn signin_ready(&self) -> Result<(), SigninResult> {
        if self.step == EnrollmentStep::Enrolled && self.provider == ProviderKind::Totp {
            Ok(())
        } else {
            Err(not_enrolled(&self.owner.name))
        }
    }

    /// While a wait is in force no code is looked at.
    fn signin_throttle(&mut self, now: DateTime<Utc>) -> Result<(), SigninResult> {
        self.check_throttle(now).map_err(|e| {
            self.signin.throttled = self.signin.throttled.saturating_add(1);
            throttled(&e)
        })
    }

    /// The answer to a code of neither shape, an empty one included (a
    /// front end asks with one before prompting): not enrolled, a wait in
    /// force (counted as a throttled sign-in), or `malformed`, which is not
    /// a guess and counts nothing.
    pub fn signin_shapeless(&mut self, now: DateTime<Utc>) -> SigninResult {
        match self.signin_ready().and_then(|()| self.signin_throttle(now)) {
            Err(r) => r,
            Ok(()) => malformed(),
        }
    }

    /// Checks a TOTP code for a sign-in.
    pub fn signin_totp(&mut self, code: &str, now: DateTime<Utc>) -> SigninResult {
        if let Err(r) = self.signin_ready().and_then(|()| self.signin_throttle(now)) {
            return r;
        }
        let Some(secret) = &self.secret else {
            return unreadable("an enrolled setup without a secret");
        };
        match provider::verify(self.provider, secret, code, now, self.last_accepted_step) {
            Ok(step) => {
                self.last_accepted_step = Some(step);
                self.accept(now, SigninMethod::Totp)
            }
            Err(MfaError::Code(VerifyError::Replayed)) => {
                self.signin.replayed = self.signin.replayed.saturating_add(1);
                refused(
                    SigninRefusal::Replayed,
                    "That code was already used to sign in: wait for the next code in your authenticator app.",
                )
            }
            Err(MfaError::Code(VerifyError::Malformed { .. })) => malformed(),
            Err(_) => self.wrong(now),
        }
    }

    /// The unused recovery codes to hash, once the throttle allows a try.
    pub fn recovery_candidates(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(usize, RecoveryHash)>, SigninResult> {
        self.signin_ready()?;
        if recovery::unused(&self.recovery) == 0 {
            return Err(refused(
                SigninRefusal::NoRecoveryCodes,
                "Every recovery code of yours is used: sign in with your authenticator app, or ask IT to reset your MFA setup.",
            ));
        }
        self.signin_throttle(now)?;
        Ok(self
            .recovery
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, h)| h.used_at.is_none())
            .collect())
    }

    /// Spends the recovery code the blocking check found. A code that is
    /// no longer in the list (regenerated meanwhile) or spent meanwhile by
    /// another sign-in is refused.
    pub fn finish_recovery(&mut self, found: Found, now: DateTime<Utc>) -> SigninResult {
        if let Err(r) = self.signin_ready() {
            return r;
        }
        let entry = found.and_then(|(index, hash)| {
            self.recovery
                .get_mut(index)
                .filter(|h| h.hash == hash && h.used_at.is_none())
        });
        match entry {
            Some(entry) => {
                entry.used_at = Some(now);
                self.signin.recovery_codes_used = self.signin.recovery_codes_used.saturating_add(1);
                self.accept(now, SigninMethod::RecoveryCode)
            }
            None => self.wrong(now),
        }
    }

    fn accept(&mut self, now: DateTime<Utc>, method: SigninMethod) -> SigninResult {
        self.clear_failures();
        self.signin.accepted = self.signin.accepted.saturating_add(1);
        self.signin.last_accepted_at = Some(now);
        SigninResult::Accepted {
            method,
            recovery_codes_left: recovery::unused(&self.recovery),
        }
    }

    /// A wrong code: counted, and the throttle's wait once waits begin.
    fn wrong(&mut self, now: DateTime<Utc>) -> SigninResult {
        self.signin.wrong_code = self.signin.wrong_code.saturating_add(1);
        let wrong = MfaError::Code(VerifyError::Wrong {
            phone_skew_secs: None,
        });
        match self.fail(now, wrong) {
            e @ MfaError::Throttled { .. } => {
                self.signin.throttled = self.signin.throttled.saturating_add(1);
                throttled(&e)
            }
            _ => refused(
                SigninRefusal::WrongCode,
                "That code is not right (or that recovery code was already used): check the code in your authenticator app and try again.",
            ),
        }
    }

    /// `status.mfa.signin` for this user.
    pub fn signin_section(&self) -> SigninSection {
        SigninSection {
            recovery_codes_left: recovery::unused(&self.recovery),
            locked_until: self.locked_until,
            counts: self.signin.clone(),
        }
    }
}

fn throttled(e: &MfaError) -> SigninResult {
    let retry_after_secs = match e {
        MfaError::Throttled { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    SigninResult::Refused {
        reason: SigninRefusal::Throttled,
        message: e.to_string(),
        retry_after_secs,
    }
}

impl MfaEngine {
    /// Whose enrollment a sign-in as `user` is about: by the id the OS
    /// gives that login name when it knows it (a renamed account keeps its
    /// uid), else by the name its state file records.
    pub fn signin_owner(&self, user: &str, id: Option<&UserId>) -> Option<UserKey> {
        self.users
            .keys()
            .find(|k| match id {
                Some(id) => &k.id == id,
                None => k.name == user,
            })
            .cloned()
    }

    /// Applies a sign-in rule to a copy of `owner`'s enrollment and keeps
    /// the change only once its state file has it.
    fn signin_change<T>(
        &mut self,
        owner: &UserKey,
        rule: impl FnOnce(&mut Enrollment) -> T,
    ) -> Result<T, SigninResult> {
        let before = match self.users.get(owner) {
            Some(Slot::Loaded(e)) => (**e).clone(),
            Some(Slot::Broken(reason)) => return Err(unreadable(reason)),
            None => return Err(not_enrolled(&owner.name)),
        };
        let mut next = before.clone();
        let out = rule(&mut next);
        if next != before {
            if let Err(e) = self.save(&next) {
                tracing::error!(user = %owner.id, error = %e, "sign-in not recorded: refused");
                return Err(refused(
                    SigninRefusal::Unavailable,
                    format!(
                        "This device could not record the sign-in, so it is refused: ask IT to check the disk (details: {e})."
                    ),
                ));
            }
            self.users
                .insert(owner.clone(), Slot::Loaded(Box::new(next)));
        }
        Ok(out)
    }

    pub fn signin_shapeless(&mut self, owner: &UserKey, now: DateTime<Utc>) -> SigninResult {
        self.signin_change(owner, |e| e.signin_shapeless(now))
            .unwrap_or_else(|r| r)
    }

    pub fn signin_totp(&mut self, owner: &UserKey, code: &str, now: DateTime<Utc>) -> SigninResult {
        self.signin_change(owner, |e| e.signin_totp(code, now))
            .unwrap_or_else(|r| r)
    }

    pub fn recovery_candidates(
        &mut self,
        owner: &UserKey,
        now: DateTime<Utc>,
    ) -> Result<Vec<(usize, RecoveryHash)>, SigninResult> {
        self.signin_change(owner, |e| e.recovery_candidates(now))
            .and_then(|r| r)
    }

    pub fn finish_recovery(
        &mut self,
        owner: &UserKey,
        found: Found,
        now: DateTime<Utc>,
    ) -> SigninResult {
        self.signin_change(owner, |e| e.finish_recovery(found, now))
            .unwrap_or_else(|r| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::HashCost;
    use crate::mfa::test_support::{T0, at, jane_key, policy};
    use rampart_shared::mfa::MfaCommand;
    use rampart_shared::totp::{self, Params};

    /// Jane, enrolled at T0, and her recovery codes.
    fn enrolled() -> (Enrollment, Vec<String>) {
        let p = policy();
        let mut e = Enrollment::new(jane_key(), ProviderKind::Totp);
        let ctx = crate::mfa::test_support::ctx(&p, T0);
        e.apply(&MfaCommand::StartEnrollment, &ctx, HashCost::TEST)
            .unwrap();
        let code = totp_at(&e, T0);
        let codes = e
            .apply(&MfaCommand::VerifyCode { code }, &ctx, HashCost::TEST)
            .unwrap()
            .recovery_codes
            .unwrap();
        e.apply(&MfaCommand::ConfirmRecoveryCodesSaved, &ctx, HashCost::TEST)
            .unwrap();
        let guide_url = p.links.offline_guide_url.clone();
        e.apply(
            &MfaCommand::AcknowledgeOfflineGuide { guide_url },
            &ctx,
            HashCost::TEST,
        )
        .unwrap();
        assert_eq!(e.step, EnrollmentStep::Enrolled);
        (e, codes)
    }

    fn totp_at(e: &Enrollment, t: i64) -> String {
        totp::totp(e.secret.as_ref().unwrap(), t, Params::PRODUCT)
    }

    fn reason(r: &SigninResult) -> Option<SigninRefusal> {
        match r {
            SigninResult::Refused { reason, .. } => Some(*reason),
            SigninResult::Accepted { .. } => None,
        }
    }

    fn wrong_for(e: &Enrollment, t: i64) -> String {
        let window: Vec<String> = (-1..=1).map(|d| totp_at(e, t + 30 * d)).collect();
        (0..1_000_000)
            .map(|n| format!("{n:06}"))
            .find(|c| !window.contains(c))
            .unwrap()
    }

    #[test]
    fn shapes() {
        assert!(matches!(classify("123 456"), Some(Typed::Totp(c)) if c.as_str() == "123456"));
        assert!(
            matches!(classify("abcde-fghjk"), Some(Typed::Recovery(c)) if c.as_str() == "ABCDEFGHJK")
        );
        assert!(classify("12345").is_none());
        assert!(classify("").is_none());
        assert!(classify("ABCDEFGHJ0").is_none());
    }

    #[test]
    fn the_code_of_this_step_or_one_either_way_and_never_twice() {
        let (mut e, _) = enrolled();
        let now = T0 + 600;
        // One step behind (a slow typist) and one ahead (a phone a little fast).
        let behind = totp_at(&e, now - 30);
        assert!(matches!(
            e.signin_totp(&behind, at(now)),
            SigninResult::Accepted {
                method: SigninMethod::Totp,
                recovery_codes_left: 10
            }
        ));
        // The same code again is a replay, and so is any earlier step's.
        assert_eq!(
            reason(&e.signin_totp(&behind, at(now))),
            Some(SigninRefusal::Replayed)
        );
        let ahead = totp_at(&e, now + 30);
        assert!(reason(&e.signin_totp(&ahead, at(now))).is_none());
        let current = totp_at(&e, now);
        assert_eq!(
            reason(&e.signin_totp(&current, at(now))),
            Some(SigninRefusal::Replayed),
            "a step before the last accepted one is spent too"
        );
        // Two steps away is wrong, not accepted.
        let far = totp_at(&e, now + 90);
        assert_eq!(
            reason(&e.signin_totp(&far, at(now + 30))),
            Some(SigninRefusal::WrongCode)
        );
        assert_eq!(
            (e.signin.accepted, e.signin.replayed, e.signin.wrong_code),
            (2, 2, 1)
        );
        assert_eq!(e.consecutive_failures, 1, "a replay is not a guess");
        assert_eq!(
            reason(&e.signin_totp("12x", at(now))),
            Some(SigninRefusal::Malformed)
        );
    }

    #[test]
    fn wrong_codes_throttle_as_enrollment_does_and_a_right_code_clears() {
        let (mut e, _) = enrolled();
        let now = T0 + 600;
        for _ in 0..4 {
            let wrong = wrong_for(&e, now);
            assert_eq!(
                reason(&e.signin_totp(&wrong, at(now))),
                Some(SigninRefusal::WrongCode)
            );
        }
        let wrong = wrong_for(&e, now);
        let fifth = e.signin_totp(&wrong, at(now));
        assert!(matches!(
            fifth,
            SigninResult::Refused {
                reason: SigninRefusal::Throttled,
                retry_after_secs: Some(30),
                ..
            }
        ));
        // During the wait even the right code is not looked at.
        let right = totp_at(&e, now + 29);
        let during = e.signin_totp(&right, at(now + 29));
        assert!(matches!(
            during,
            SigninResult::Refused {
                reason: SigninRefusal::Throttled,
                retry_after_secs: Some(1),
                ..
            }
        ));
        assert_eq!(e.last_accepted_step, Some(Params::PRODUCT.step(T0)));
        // After it, the right code signs in and clears the count.
        assert!(reason(&e.signin_totp(&right, at(now + 30))).is_none());
        assert_eq!((e.consecutive_failures, e.locked_until), (0, None));
        assert_eq!((e.signin.wrong_code, e.signin.throttled), (5, 2));
        assert_eq!(e.signin_section().counts.accepted, 1);
    }

    #[test]
    fn a_recovery_code_is_spent_once() {
        let (mut e, codes) = enrolled();
        let now = at(T0 + 600);
        let spend = |e: &mut Enrollment, code: &str| {
            let candidates = e.recovery_candidates(now)?;
            let Some(Typed::Recovery(code)) = classify(code) else {
                panic!("a recovery code's shape")
            };
            let found = recovery::find(&candidates, &code)
                .unwrap()
                .map(|i| (i, e.recovery[i].hash.clone()));
            Ok::<_, SigninResult>(e.finish_recovery(found, now))
        };
        let typed = format!("{}-{}", &codes[2][..5], codes[2][5..].to_lowercase());
        assert_eq!(
            spend(&mut e, &typed).unwrap(),
            SigninResult::Accepted {
                method: SigninMethod::RecoveryCode,
                recovery_codes_left: 9
            }
        );
        assert_eq!(e.recovery[2].used_at, Some(now));
        let again = spend(&mut e, &codes[2]).unwrap();
        assert_eq!(reason(&again), Some(SigninRefusal::WrongCode));
        assert_eq!(e.signin_section().recovery_codes_left, 9);
        assert_eq!(e.signin.recovery_codes_used, 1);

        // A code found before the list was regenerated is not spent after.
        let candidates = e.recovery_candidates(now).unwrap();
        let found = recovery::find(&candidates, &codes[3])
            .unwrap()
            .map(|i| (i, e.recovery[i].hash.clone()));
        let (_, fresh) = recovery::generate(HashCost::TEST).unwrap();
        e.recovery = fresh;
        assert_eq!(
            reason(&e.finish_recovery(found, now)),
            Some(SigninRefusal::WrongCode)
        );

        // None left: said as such, before any hashing.
        for h in &mut e.recovery {
            h.used_at = Some(now);
        }
        assert_eq!(
            spend(&mut e, &codes[4]).map_err(|r| reason(&r)),
            Err(Some(SigninRefusal::NoRecoveryCodes))
        );
    }

    #[test]
    fn a_shapeless_code_is_not_a_guess() {
        let (mut e, _) = enrolled();
        assert_eq!(
            reason(&e.signin_shapeless(at(T0))),
            Some(SigninRefusal::Malformed)
        );
        e.locked_until = Some(at(T0 + 30));
        assert_eq!(
            reason(&e.signin_shapeless(at(T0))),
            Some(SigninRefusal::Throttled)
        );
        assert_eq!(e.signin.throttled, 1, "a sign-in during a wait");
        e.step = EnrollmentStep::Verified;
        assert_eq!(
            reason(&e.signin_shapeless(at(T0))),
            Some(SigninRefusal::NotEnrolled)
        );
        assert_eq!((e.signin.throttled, e.signin.wrong_code), (1, 0));
    }

    #[test]
    fn only_a_finished_totp_setup_signs_in() {
        let (mut e, _) = enrolled();
        e.step = EnrollmentStep::RecoveryCodesSaved;
        let code = totp_at(&e, T0 + 600);
        assert_eq!(
            reason(&e.signin_totp(&code, at(T0 + 600))),
            Some(SigninRefusal::NotEnrolled)
        );
        e.step = EnrollmentStep::Enrolled;
        e.provider = ProviderKind::Duo;
        assert_eq!(
            reason(&e.signin_totp(&code, at(T0 + 600))),
            Some(SigninRefusal::NotEnrolled)
        );
        assert_eq!(e.signin, Default::default(), "nothing counted");
    }

    #[test]
    fn the_engine_keeps_the_last_step_across_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, _) = enrolled();
        crate::mfa::store::save(tmp.path(), &e).unwrap();
        let mut engine = MfaEngine::open_with_cost(tmp.path(), HashCost::TEST).unwrap();
        let key = engine.signin_owner("jane", None).unwrap();
        assert_eq!(
            engine.signin_owner("jane", Some(&UserId::Uid(1000))),
            Some(key.clone())
        );
        assert_eq!(engine.signin_owner("jane", Some(&UserId::Uid(1001))), None);
        let code = totp_at(&e, T0 + 600);
        assert!(reason(&engine.signin_totp(&key, &code, at(T0 + 600))).is_none());
        drop(engine);
        let mut engine = MfaEngine::open_with_cost(tmp.path(), HashCost::TEST).unwrap();
        assert_eq!(
            reason(&engine.signin_totp(&key, &code, at(T0 + 601))),
            Some(SigninRefusal::Replayed)
        );
        let section = engine.enrollment(&key).unwrap().signin_section();
        assert_eq!((section.counts.accepted, section.counts.replayed), (1, 1));
        let nobody = UserKey {
            id: UserId::Uid(1002),
            name: "bob".into(),
        };
        assert_eq!(
            reason(&engine.signin_totp(&nobody, &code, at(T0 + 601))),
            Some(SigninRefusal::NotEnrolled)
        );
    }
}
