//! The enrollment state machine: pure apart from the OS random source that
//! issues secrets and recovery codes. `now` and the policy come in through
//! [`Ctx`]; nothing here touches files.
//!
//! `not_set_up → pairing → verified → recovery_codes_saved →
//! offline_guide_acknowledged → enrolled`. A failed command leaves the step
//! where it was (only the failure counter moves); `ResetEnrollment` is the one
//! way back.

use chrono::{DateTime, Duration, Utc};
use rampart_shared::mfa::{EnrollmentStep, EnrollmentView, Evidence, MfaCommand, PairingInfo};
use rampart_shared::policy::{Policy, ProviderKind};
use rampart_shared::signin::SigninCounts;
use rampart_shared::totp::{self, Params, Secret};
use rampart_shared::user::UserId;
use rampart_shared::version::Version;

use super::duo::types::{DuoPhase, DuoState};
use super::error::MfaError;
use super::provider;
use super::recovery::{self, HashCost, RecoveryHash};

/// Whose enrollment: both the user id (uid or SID: what the OS says about
/// the IPC peer) and the login name (the authenticator app's account label).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserKey {
    pub id: UserId,
    pub name: String,
}

/// What the machine needs from the world for one command.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub now: DateTime<Utc>,
    pub policy: &'a Policy,
    pub agent_version: Version,
    /// What the agent measured about this computer's clock.
    pub clock: ComputerClock,
}

/// This computer's clock as the agent measured it, for telling whose clock
/// a code that matches a shifted time blames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ComputerClock {
    /// This computer's clock minus true time at the last clock check, when
    /// it measured one.
    pub offset_ms: Option<i64>,
    /// How far this computer's clock moved since that check: wall time
    /// elapsed minus monotonic time elapsed (`None`: never checked).
    pub moved_ms: Option<i64>,
}

/// A movement of this computer's clock smaller than this is noise (the
/// check's own timing), not a clock that was set.
pub const CLOCK_MOVED_MIN_MS: u64 = 2_000;
/// A code's step is 30 s, so a code that matches `d` steps off says the
/// phone is off by `30·d` s give or take one step; a little more for the
/// measurement's own uncertainty.
pub const CLOCK_MATCH_MS: u64 = 35_000;

/// Whose clock a code explains. A code that is wrong now but matches a
/// step `phone_skew_secs` away says "phone minus this computer ≈
/// phone_skew". If this computer's clock is `c` off true time (measured
/// offset plus how far it moved since), a right phone gives `phone_skew ≈
/// -c`: so when `phone_skew + c ≈ 0`, the phone is right and this computer
/// is wrong. A clock that moved since its check is named as such (the
/// check will be run again); a skew the check already measured is named as
/// that skew. Otherwise the phone is the likely culprit (`None`).
pub fn blame_computer(
    phone_skew_secs: i64,
    clock: ComputerClock,
    allowed_ms: u64,
) -> Option<MfaError> {
    let explains = |computer_ms: i64| {
        phone_skew_secs
            .saturating_mul(1000)
            .saturating_add(computer_ms)
            .unsigned_abs()
            <= CLOCK_MATCH_MS
    };
    let offset = clock.offset_ms.unwrap_or(0);
    match clock.moved_ms {
        Some(moved)
            if moved.unsigned_abs() > CLOCK_MOVED_MIN_MS
                && explains(offset.saturating_add(moved)) =>
        {
            return Some(MfaError::ComputerClockMoved { moved_ms: moved });
        }
        _ => {}
    }
    match clock.offset_ms {
        Some(offset) if explains(offset.saturating_add(clock.moved_ms.unwrap_or(0))) => {
            Some(MfaError::ComputerClockSkew {
                offset_ms: offset,
                allowed_ms,
            })
        }
        _ => None,
    }
}

/// Wrong codes allowed before waits begin.
pub const FREE_FAILURES: u32 = 5;
pub const FIRST_WAIT_SECS: u64 = 30;
pub const MAX_WAIT_SECS: u64 = 15 * 60;

/// One user's enrollment. `Debug` is safe to log: [`Secret`]'s hides itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub owner: UserKey,
    pub provider: ProviderKind,
    /// Never `NotRequired`: that is derived from policy when viewed.
    pub step: EnrollmentStep,
    /// The authenticator app's entry name, fixed when pairing began.
    pub issuer: String,
    pub secret: Option<Secret>,
    pub last_accepted_step: Option<u64>,
    pub consecutive_failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
    pub recovery: Vec<RecoveryHash>,
    pub verified_at: Option<DateTime<Utc>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub evidence: Option<Evidence>,
    /// Duo's part, once Duo was asked.
    pub duo: Option<DuoState>,
    /// What sign-ins did (`mfa::signin`): counts only.
    pub signin: SigninCounts,
}

/// What a successful command hands back beyond the new state.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Only from the command that created them.
    pub recovery_codes: Option<Vec<String>>,
}

/// Only the enrollment's owner or an administrator (root, LocalSystem, an
/// elevated Windows admin) may drive it; only an administrator may reset it.
pub fn authorize(
    peer: &UserId,
    peer_admin: bool,
    owner: &UserId,
    command: &MfaCommand,
) -> Result<(), MfaError> {
    match command {
        _ if peer_admin => Ok(()),
        MfaCommand::ResetEnrollment => Err(MfaError::Forbidden(
            "Only an administrator can reset an MFA setup.",
        )),
        _ if peer == owner => Ok(()),
        _ => Err(MfaError::Forbidden(
            "Only the person whose MFA this is, or an administrator, can change it.",
        )),
    }
}

/// The wait after the `failures`-th consecutive wrong code: none for the first
/// five, then 30 s doubling up to 15 min.
pub fn wait_after(failures: u32) -> Option<u64> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    let doubled = FIRST_WAIT_SECS.checked_shl(over).unwrap_or(MAX_WAIT_SECS);
    Some(doubled.min(MAX_WAIT_SECS))
}

impl Enrollment {
    pub fn new(owner: UserKey, provider: ProviderKind) -> Self {
        Self {
            owner,
            provider,
            step: EnrollmentStep::NotSetUp,
            issuer: String::new(),
            secret: None,
            last_accepted_step: None,
            consecutive_failures: 0,
            locked_until: None,
            recovery: Vec::new(),
            verified_at: None,
            enrolled_at: None,
            evidence: None,
            duo: None,
            signin: SigninCounts::default(),
        }
    }

    /// Runs one (already authorized) command. On error the step is unchanged;
    /// the failure counter may have moved, so the caller persists either way.
    pub fn apply(
        &mut self,
        command: &MfaCommand,
        ctx: &Ctx<'_>,
        cost: HashCost,
    ) -> Result<Outcome, MfaError> {
        use EnrollmentStep as S;
        match (command, self.step) {
            (MfaCommand::ResetEnrollment, _) => {
                *self = Self::new(self.owner.clone(), ctx.policy.mfa.provider.kind());
                Ok(Outcome::default())
            }
            (MfaCommand::StartEnrollment, S::NotSetUp | S::NotRequired) => {
                if !ctx.policy.mfa.required {
                    return Err(MfaError::NotRequired);
                }
                let kind = ctx.policy.mfa.provider.kind();
                self.secret = Some(provider::begin_pairing(kind)?);
                self.provider = kind;
                self.issuer = ctx.policy.organization.clone();
                self.step = S::Pairing;
                Ok(Outcome::default())
            }
            // Resuming: the window was closed and opened again.
            (MfaCommand::StartEnrollment, _) => Ok(Outcome::default()),
            // Nothing to ask a provider about: the reply is the current view.
            (MfaCommand::CheckProgress, _) => Ok(Outcome::default()),
            (MfaCommand::VerifyCode { code }, S::Pairing) => self.verify(code, ctx, cost),
            (MfaCommand::ConfirmRecoveryCodesSaved, S::Verified) => {
                self.step = S::RecoveryCodesSaved;
                Ok(Outcome::default())
            }
            (MfaCommand::AcknowledgeOfflineGuide { guide_url }, S::RecoveryCodesSaved) => {
                if *guide_url != ctx.policy.links.offline_guide_url {
                    return Err(MfaError::GuideChanged);
                }
                self.evidence = Some(Evidence {
                    acknowledged_at: ctx.now,
                    user_id: self.owner.id.clone(),
                    user: self.owner.name.clone(),
                    guide_url: guide_url.clone(),
                    policy_serial: ctx.policy.serial,
                    agent_version: ctx.agent_version,
                });
                self.finish(ctx.now);
                Ok(Outcome::default())
            }
            // No step stops here any more, but Duo's first version (commit
            // 7160219) left Duo users here when its completion
            // refused; their state files still say so. The guide was
            // acknowledged: finish.
            (MfaCommand::AcknowledgeOfflineGuide { .. }, S::OfflineGuideAcknowledged) => {
                self.finish(ctx.now);
                Ok(Outcome::default())
            }
            (
                MfaCommand::RegenerateRecoveryCodes,
                S::Verified | S::RecoveryCodesSaved | S::OfflineGuideAcknowledged | S::Enrolled,
            ) => {
                let (codes, hashes) = recovery::generate(cost)?;
                // Replacing the list is what invalidates every earlier code.
                self.recovery = hashes;
                Ok(Outcome {
                    recovery_codes: Some(codes),
                })
            }
            (_, current) => Err(MfaError::WrongStep { current }),
        }
    }

    /// The last step: no provider has anything left to confirm after the
    /// offline guide (Duo confirmed the phone before the recovery codes),
    /// so acknowledging it is what enrolls.
    fn finish(&mut self, now: DateTime<Utc>) {
        self.step = EnrollmentStep::Enrolled;
        self.enrolled_at = Some(now);
    }

    /// The user proved the phone (a TOTP code, or Duo's allow): the one
    /// place a setup becomes verified. Fresh recovery codes replace any
    /// earlier ones; nothing changes if they cannot be made.
    pub(super) fn verified(
        &mut self,
        now: DateTime<Utc>,
        cost: HashCost,
    ) -> Result<Outcome, MfaError> {
        let (codes, hashes) = recovery::generate(cost)?;
        self.clear_failures();
        self.recovery = hashes;
        self.verified_at = Some(now);
        self.step = EnrollmentStep::Verified;
        Ok(Outcome {
            recovery_codes: Some(codes),
        })
    }

    fn verify(&mut self, code: &str, ctx: &Ctx<'_>, cost: HashCost) -> Result<Outcome, MfaError> {
        let now = ctx.now;
        self.check_throttle(now)?;
        let secret = self.secret.as_ref().ok_or_else(|| MfaError::StateCorrupt {
            reason: "pairing has no secret".into(),
        })?;
        match provider::verify(self.provider, secret, code, now, self.last_accepted_step) {
            Ok(step) => {
                let outcome = self.verified(now, cost)?;
                self.last_accepted_step = Some(step);
                Ok(outcome)
            }
            // The right code for a shifted time, and this computer's clock
            // is what shifted: not a guess, so it does not count.
            Err(MfaError::Code(totp::VerifyError::Wrong {
                phone_skew_secs: Some(skew),
            })) => match blame_computer(
                skew,
                ctx.clock,
                ctx.policy.clock.max_skew_secs.saturating_mul(1000),
            ) {
                Some(blamed) => Err(blamed),
                None => {
                    let e = MfaError::Code(totp::VerifyError::Wrong {
                        phone_skew_secs: Some(skew),
                    });
                    Err(self.fail(now, e))
                }
            },
            Err(e @ MfaError::Code(totp::VerifyError::Wrong { .. })) => Err(self.fail(now, e)),
            // A typo or a replay is not a guess: it does not count.
            Err(e) => Err(e),
        }
    }

    pub(super) fn check_throttle(&self, now: DateTime<Utc>) -> Result<(), MfaError> {
        match self.locked_until {
            Some(until) if until > now => {
                let ms = (until - now).num_milliseconds().max(0) as u64;
                Err(MfaError::Throttled {
                    retry_after_secs: ms.div_ceil(1000),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong guess; once waits begin, the wait is the error.
    pub(super) fn fail(&mut self, now: DateTime<Utc>, error: MfaError) -> MfaError {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match wait_after(self.consecutive_failures) {
            Some(secs) => {
                self.locked_until = Some(now + Duration::seconds(secs as i64));
                MfaError::Throttled {
                    retry_after_secs: secs,
                }
            }
            None => error,
        }
    }

    pub(super) fn clear_failures(&mut self) {
        self.consecutive_failures = 0;
        self.locked_until = None;
    }

    /// The step as the user sees it under `policy`.
    pub fn visible_step(&self, policy: &Policy) -> EnrollmentStep {
        match self.step {
            EnrollmentStep::NotSetUp if !policy.mfa.required || self.duo_bypass() => {
                EnrollmentStep::NotRequired
            }
            step => step,
        }
    }

    /// Duo lets this user in without a second factor.
    pub fn duo_bypass(&self) -> bool {
        self.step == EnrollmentStep::NotSetUp
            && matches!(
                self.duo.as_ref().map(|d| &d.phase),
                Some(DuoPhase::Bypass { .. })
            )
    }

    /// The reply to a command. The secret leaves the agent only while pairing.
    pub fn view(&self, policy: &Policy, recovery_codes: Option<Vec<String>>) -> EnrollmentView {
        let step = self.visible_step(policy);
        let pairing = match (step, &self.secret) {
            (EnrollmentStep::Pairing, Some(secret)) => Some(PairingInfo {
                otpauth_uri: totp::otpauth_uri(
                    secret,
                    &self.issuer,
                    &self.owner.name,
                    Params::PRODUCT,
                ),
                secret_grouped: secret.to_grouped(),
                issuer: self.issuer.clone(),
                account: self.owner.name.clone(),
            }),
            _ => None,
        };
        EnrollmentView {
            step,
            provider: match step {
                EnrollmentStep::NotSetUp | EnrollmentStep::NotRequired => {
                    policy.mfa.provider.kind()
                }
                _ => self.provider,
            },
            pairing,
            recovery_codes,
            recovery_codes_left: (!self.recovery.is_empty())
                .then(|| recovery::unused(&self.recovery)),
            enrolled_at: self.enrolled_at,
            evidence: self.evidence.clone(),
            error: None,
            duo: self.duo.as_ref().and_then(|d| d.phase.prompt(step)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mfa::test_support::{
        T0, at, ctx, duo_policy, matching_code, new_enrollment, policy,
    };
    use rampart_shared::mfa::MfaErrorCode;

    fn jane() -> Enrollment {
        new_enrollment(ProviderKind::Totp)
    }

    fn run(e: &mut Enrollment, p: &Policy, now: i64, c: MfaCommand) -> Result<Outcome, MfaError> {
        e.apply(&c, &ctx(p, now), HashCost::TEST)
    }

    fn code(e: &Enrollment, now: i64) -> String {
        totp::totp(e.secret.as_ref().unwrap(), now, Params::PRODUCT)
    }

    fn verify(e: &mut Enrollment, p: &Policy, now: i64, code: &str) -> Result<Outcome, MfaError> {
        run(e, p, now, MfaCommand::VerifyCode { code: code.into() })
    }

    /// Verifies the code the phone shows at `phone_time`.
    fn verify_at(
        e: &mut Enrollment,
        p: &Policy,
        now: i64,
        phone_time: i64,
    ) -> Result<Outcome, MfaError> {
        let c = code(e, phone_time);
        verify(e, p, now, &c)
    }

    fn wrong_code(e: &Enrollment, now: i64) -> String {
        // Far from any window so it is wrong, and no skew is diagnosed.
        let far = code(e, now + 3600);
        assert_ne!(far, code(e, now));
        far
    }

    #[test]
    fn the_whole_path_to_enrolled() {
        let p = policy();
        let mut e = jane();
        assert_eq!(e.view(&p, None).step, EnrollmentStep::NotSetUp);

        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        assert_eq!(e.step, EnrollmentStep::Pairing);
        let view = e.view(&p, None);
        let pairing = view.pairing.unwrap();
        assert_eq!(pairing.issuer, "ACME Corp");
        assert!(
            pairing
                .otpauth_uri
                .starts_with("otpauth://totp/ACME%20Corp:jane?secret=")
        );
        assert_eq!(
            pairing.secret_grouped.len(),
            32 + 7,
            "160 bits in 8 groups of 4"
        );

        let out = verify_at(&mut e, &p, T0, T0).unwrap();
        assert_eq!(out.recovery_codes.unwrap().len(), 10);
        assert_eq!(e.step, EnrollmentStep::Verified);
        assert_eq!(
            e.view(&p, None).pairing,
            None,
            "secret is not shown after pairing"
        );

        run(&mut e, &p, T0 + 5, MfaCommand::ConfirmRecoveryCodesSaved).unwrap();
        assert_eq!(e.step, EnrollmentStep::RecoveryCodesSaved);

        let ack = MfaCommand::AcknowledgeOfflineGuide {
            guide_url: "https://it.acme.example/offline".into(),
        };
        run(&mut e, &p, T0 + 10, ack).unwrap();
        assert_eq!(e.step, EnrollmentStep::Enrolled);
        assert_eq!(e.enrolled_at, Some(at(T0 + 10)));
        assert_eq!(
            e.evidence,
            Some(Evidence {
                acknowledged_at: at(T0 + 10),
                user_id: UserId::Uid(1000),
                user: "jane".into(),
                guide_url: "https://it.acme.example/offline".into(),
                policy_serial: 7,
                agent_version: Version::new(0, 1, 0),
            })
        );
    }

    #[test]
    fn failures_keep_the_step() {
        let p = policy();
        let mut e = jane();
        // Out of order: nothing moves.
        for c in [
            MfaCommand::VerifyCode {
                code: "123456".into(),
            },
            MfaCommand::ConfirmRecoveryCodesSaved,
            MfaCommand::RegenerateRecoveryCodes,
        ] {
            let err = run(&mut e, &p, T0, c).unwrap_err();
            assert_eq!(err.code(), MfaErrorCode::WrongStep, "{err}");
            assert_eq!(e.step, EnrollmentStep::NotSetUp);
        }
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let before = e.clone();
        let wrong = wrong_code(&e, T0);
        assert_eq!(
            verify(&mut e, &p, T0, &wrong).unwrap_err().code(),
            MfaErrorCode::WrongCode
        );
        assert_eq!(
            verify(&mut e, &p, T0, "12x").unwrap_err().code(),
            MfaErrorCode::MalformedCode
        );
        assert_eq!(e.step, EnrollmentStep::Pairing);
        assert_eq!(
            e.secret, before.secret,
            "a failure does not re-issue the secret"
        );
        assert_eq!(
            e.consecutive_failures, 1,
            "a typo is not counted as a guess"
        );

        // A guide that is not the policy's is refused and nothing is recorded.
        verify_at(&mut e, &p, T0, T0).unwrap();
        run(&mut e, &p, T0, MfaCommand::ConfirmRecoveryCodesSaved).unwrap();
        let other = MfaCommand::AcknowledgeOfflineGuide {
            guide_url: "https://elsewhere.example/".into(),
        };
        assert_eq!(
            run(&mut e, &p, T0, other).unwrap_err().code(),
            MfaErrorCode::GuideChanged
        );
        assert_eq!(e.step, EnrollmentStep::RecoveryCodesSaved);
        assert_eq!(e.evidence, None);
    }

    #[test]
    fn start_resumes_instead_of_issuing_a_second_secret() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let first = e.view(&p, None).pairing;
        run(&mut e, &p, T0 + 60, MfaCommand::StartEnrollment).unwrap();
        assert_eq!(e.view(&p, None).pairing, first);
    }

    #[test]
    fn replayed_code_is_refused_after_verification() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let c = code(&e, T0);
        verify(&mut e, &p, T0, &c).unwrap();
        let step = e.last_accepted_step.unwrap();
        let secret = e.secret.clone().unwrap();
        assert_eq!(
            totp::verify(&secret, Params::PRODUCT, &c, T0 + 1, Some(step)),
            Err(totp::VerifyError::Replayed)
        );
    }

    #[test]
    fn not_required_and_duo() {
        let mut p = policy();
        p.mfa.required = false;
        let mut e = jane();
        assert_eq!(e.view(&p, None).step, EnrollmentStep::NotRequired);
        let err = run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::NotRequired);

        let p = duo_policy();
        // Duo's start is planned by `mfa::duo`; here it must not pair TOTP.
        let err = run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::ProviderUnavailable, "{err}");
        assert_eq!(e.step, EnrollmentStep::NotSetUp);
        assert_eq!(e.secret, None);
        assert_eq!(e.view(&p, None).provider, ProviderKind::Duo);
    }

    #[test]
    fn throttling_waits_double_from_30_s_to_15_min() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let mut now = T0;
        for _ in 0..4 {
            let wrong = wrong_code(&e, now);
            assert_eq!(
                verify(&mut e, &p, now, &wrong).unwrap_err().code(),
                MfaErrorCode::WrongCode
            );
        }
        let expected = [30, 60, 120, 240, 480, 900, 900];
        for want in expected {
            let wrong = wrong_code(&e, now);
            let err = verify(&mut e, &p, now, &wrong).unwrap_err();
            assert_eq!(err.view().retry_after_secs, Some(want), "{err}");
            // While waiting even the right code is not looked at.
            let right = code(&e, now + want as i64 - 1);
            let err = verify(&mut e, &p, now + want as i64 - 1, &right).unwrap_err();
            assert_eq!(err.view().retry_after_secs, Some(1));
            now += want as i64;
        }
        assert_eq!(e.step, EnrollmentStep::Pairing);
        // A right code after the wait clears the count.
        verify_at(&mut e, &p, now, now).unwrap();
        assert_eq!((e.consecutive_failures, e.locked_until), (0, None));
    }

    #[test]
    fn throttle_message_counts_down_in_words() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        e.consecutive_failures = 6;
        e.locked_until = Some(at(T0 + 90));
        let err = verify(&mut e, &p, T0, "000000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Too many wrong codes. Try again in 1 min 30 s."
        );
        let err = verify(&mut e, &p, T0 + 89, "000000").unwrap_err();
        assert_eq!(err.to_string(), "Too many wrong codes. Try again in 1 s.");
    }

    #[test]
    fn wait_schedule() {
        let waits: Vec<_> = (0..=12).map(wait_after).collect();
        let none = [None; 5];
        assert_eq!(waits[..5], none);
        assert_eq!(waits[5..], [30, 60, 120, 240, 480, 900, 900, 900].map(Some));
        assert_eq!(wait_after(u32::MAX), Some(900));
    }

    #[test]
    fn phone_clock_skew_reaches_the_user() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let err = verify_at(&mut e, &p, T0, T0 + 300).unwrap_err().view();
        assert_eq!(err.code, MfaErrorCode::PhoneClockSkew);
        assert_eq!(err.phone_skew_secs, Some(300));
        assert!(
            err.message.contains("about 5 minutes ahead"),
            "{}",
            err.message
        );
        assert_eq!(e.step, EnrollmentStep::Pairing);
        assert_eq!(
            err.problem.map(|p| p.cause),
            Some(rampart_shared::cause::Cause::PhoneClockSkew { offset_ms: 300_000 })
        );
    }

    /// Verifies, with what the agent measured about its clock, the code a
    /// right phone shows at true time `T0` while this computer reads `now`.
    fn verify_with_clock(
        e: &mut Enrollment,
        p: &Policy,
        now: i64,
        clock: ComputerClock,
    ) -> Result<Outcome, MfaError> {
        let c = code(e, T0);
        let ctx = Ctx {
            clock,
            ..ctx(p, now)
        };
        e.apply(&MfaCommand::VerifyCode { code: c }, &ctx, HashCost::TEST)
    }

    #[test]
    fn a_computer_clock_that_moved_is_blamed_not_the_phone() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        // The clock check found this computer right; since, its clock
        // jumped 5 min forward. The phone is right: its code is for T0.
        let jumped = ComputerClock {
            offset_ms: Some(150),
            moved_ms: Some(300_400),
        };
        let err = verify_with_clock(&mut e, &p, T0 + 300, jumped).unwrap_err();
        let view = err.view();
        assert_eq!(
            view.problem.map(|p| p.cause),
            Some(rampart_shared::cause::Cause::ComputerClockMoved { moved_ms: 300_400 })
        );
        assert_eq!(view.code, MfaErrorCode::WrongCode);
        assert_eq!(view.phone_skew_secs, None, "the phone is not blamed");
        assert!(
            view.message
                .starts_with("This computer's clock moved 5 min forward")
        );
        assert_eq!(e.consecutive_failures, 0, "the right code is not a guess");

        // The same code, with this computer's clock steady: the phone.
        let steady = ComputerClock {
            offset_ms: Some(150),
            moved_ms: Some(300),
        };
        let err = verify_with_clock(&mut e, &p, T0 + 300, steady).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::PhoneClockSkew);
        assert_eq!(e.consecutive_failures, 1);

        // It moved, but the other way from what the code says: the phone.
        let other_way = ComputerClock {
            offset_ms: Some(0),
            moved_ms: Some(-300_000),
        };
        let err = verify_with_clock(&mut e, &p, T0 + 300, other_way).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::PhoneClockSkew);

        // The check after the jump measured the skew: named as that skew.
        let measured = ComputerClock {
            offset_ms: Some(299_800),
            moved_ms: Some(0),
        };
        let err = verify_with_clock(&mut e, &p, T0 + 300, measured).unwrap_err();
        assert_eq!(
            err.view().problem.map(|p| p.cause),
            Some(rampart_shared::cause::Cause::ClockSkew {
                offset_ms: 299_800,
                allowed_ms: p.clock.max_skew_secs * 1000
            })
        );
        // Never measured: nothing to blame this computer with.
        let err = verify_with_clock(&mut e, &p, T0 + 300, ComputerClock::default()).unwrap_err();
        assert_eq!(err.code(), MfaErrorCode::PhoneClockSkew);
    }

    #[test]
    fn blame_follows_the_sign_of_the_movement() {
        // This computer's clock went back 2 min: codes match a phone 2 min
        // ahead, which is this computer's doing.
        let back = ComputerClock {
            offset_ms: None,
            moved_ms: Some(-120_000),
        };
        assert!(matches!(
            blame_computer(120, back, 30_000),
            Some(MfaError::ComputerClockMoved { moved_ms: -120_000 })
        ));
        assert!(blame_computer(-120, back, 30_000).is_none());
        // A small wobble is never a movement.
        let wobble = ComputerClock {
            offset_ms: None,
            moved_ms: Some(1_500),
        };
        assert!(blame_computer(60, wobble, 30_000).is_none());
    }

    #[test]
    fn only_owner_or_admin_and_reset_is_admin_only() {
        let verify = MfaCommand::VerifyCode { code: "1".into() };
        let reset = MfaCommand::ResetEnrollment;
        let check = |peer: u32, owner: u32, command: &MfaCommand| {
            authorize(&UserId::Uid(peer), peer == 0, &UserId::Uid(owner), command)
        };
        assert!(check(1000, 1000, &verify).is_ok());
        assert!(check(0, 1000, &verify).is_ok());
        let other = check(1001, 1000, &verify).unwrap_err();
        assert_eq!(other.code(), MfaErrorCode::Forbidden);
        assert!(check(1000, 1000, &reset).is_err());
        assert!(check(1001, 1000, &reset).is_err());
        assert!(check(0, 1000, &reset).is_ok());
    }

    #[test]
    fn the_same_rules_for_windows_sids() {
        let sid = |s: &str| UserId::Sid(s.into());
        let jane = sid("S-1-5-21-1-2-3-1001");
        let bob = sid("S-1-5-21-1-2-3-1002");
        let verify = MfaCommand::VerifyCode { code: "1".into() };
        let reset = MfaCommand::ResetEnrollment;
        assert!(authorize(&jane, false, &jane, &verify).is_ok());
        assert!(authorize(&bob, false, &jane, &verify).is_err());
        // An administrator's own SID is not the owner's, and need not be.
        assert!(authorize(&bob, true, &jane, &verify).is_ok());
        assert!(authorize(&sid("S-1-5-18"), true, &jane, &reset).is_ok());
        assert!(authorize(&jane, false, &jane, &reset).is_err());
        // A UAC-filtered admin token arrives with `admin` false: it is just
        // another user.
        assert!(authorize(&bob, false, &jane, &reset).is_err());
        // Equal digits in another kind of id are another user.
        assert!(authorize(&UserId::Uid(1001), false, &sid("1001"), &verify).is_err());
    }

    #[test]
    fn regeneration_invalidates_every_old_recovery_code() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        let old = verify_at(&mut e, &p, T0, T0)
            .unwrap()
            .recovery_codes
            .unwrap();
        assert_eq!(matching_code(&e.recovery, &old[0]), Some(0));

        let new = run(&mut e, &p, T0, MfaCommand::RegenerateRecoveryCodes)
            .unwrap()
            .recovery_codes
            .unwrap();
        assert_eq!(e.view(&p, None).recovery_codes_left, Some(10));
        assert!(
            e.view(&p, None).recovery_codes.is_none(),
            "codes are shown once"
        );
        for code in &old {
            assert_eq!(matching_code(&e.recovery, code), None, "an old code");
        }
        assert_eq!(matching_code(&e.recovery, &new[1]), Some(1));
    }

    #[test]
    fn a_setup_left_at_offline_guide_acknowledged_finishes() {
        let p = policy();
        let mut e = jane();
        e.step = EnrollmentStep::OfflineGuideAcknowledged;
        let ack = MfaCommand::AcknowledgeOfflineGuide {
            guide_url: "https://it.acme.example/offline".into(),
        };
        run(&mut e, &p, T0, ack).unwrap();
        assert_eq!(e.step, EnrollmentStep::Enrolled);
        assert_eq!(e.enrolled_at, Some(at(T0)));
    }

    #[test]
    fn reset_starts_over() {
        let p = policy();
        let mut e = jane();
        run(&mut e, &p, T0, MfaCommand::StartEnrollment).unwrap();
        verify_at(&mut e, &p, T0, T0).unwrap();
        run(&mut e, &p, T0, MfaCommand::ResetEnrollment).unwrap();
        assert_eq!(e, jane());
    }
}
