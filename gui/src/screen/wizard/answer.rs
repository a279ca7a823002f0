//! Following the agent: each answer to an MFA command moves the wizard to
//! the step the agent says the user is at, or is said on the step it
//! concerns (a refused code stays on the code step).

use rampart_shared::cause::Cause;
use rampart_shared::mfa::{DuoPrompt, EnrollmentStep, EnrollmentView, MfaErrorCode, MfaErrorView};

use super::{Action, State, Step, before, duo_activate, duo_confirm, offline, pair, recovery};

impl State {
    /// Moves to the step the agent says the user is at.
    pub(super) fn apply(&mut self, mut view: EnrollmentView) -> Vec<Action> {
        match view.error.take() {
            Some(error) => {
                if !self.refused(error, &mut view) {
                    return vec![];
                }
            }
            None => {
                self.notice = None;
                self.retry = None;
            }
        }
        self.follow(view)
    }

    /// The agent refused: said on the step it concerns, or as the notice.
    /// Returns whether the wizard still follows the agent's step (the
    /// enrollment was moved on by somebody else).
    fn refused(&mut self, error: MfaErrorView, view: &mut EnrollmentView) -> bool {
        let pairing = view.step == EnrollmentStep::Pairing;
        let pending = matches!(
            error.problem.as_ref().map(|p| &p.cause),
            Some(Cause::DuoActivationPending { .. })
        );
        match &mut self.step {
            // A refused code stays on the code step, shown as the agent wrote it.
            Step::Verify(v) if pairing => {
                v.refused(error);
                return false;
            }
            Step::DuoConfirm(c) if pairing => {
                if let Some(DuoPrompt::Confirm { devices, push }) = view.duo.take() {
                    c.refresh(devices, push);
                }
                c.refused(error);
                return false;
            }
            // Duo has not confirmed the phone's activation in time: said on
            // the activation screen, which stops polling until "Try again".
            Step::DuoActivate(a) if pairing && pending => {
                a.pending(error.message);
                self.notice = None;
                return false;
            }
            _ => {}
        }
        match error.code {
            MfaErrorCode::AccessDenied => {
                self.step = Step::Denied(error.message);
                self.notice = None;
                false
            }
            // Somebody else moved the enrollment on: follow the agent.
            MfaErrorCode::WrongStep => {
                self.notice = Some(error.message);
                true
            }
            _ => {
                self.notice = Some(error.message);
                self.unbusy();
                false
            }
        }
    }

    /// Goes to the agent's step, or updates the one on screen.
    fn follow(&mut self, view: EnrollmentView) -> Vec<Action> {
        let EnrollmentView {
            step,
            pairing,
            recovery_codes,
            duo,
            ..
        } = view;
        match (step, duo) {
            (EnrollmentStep::NotRequired, Some(DuoPrompt::Bypass { message })) => {
                self.step = Step::Bypass(message);
            }
            (EnrollmentStep::Pairing, Some(prompt)) => self.duo_pairing(prompt),
            (EnrollmentStep::NotRequired | EnrollmentStep::NotSetUp, _) => {
                if !matches!(self.step, Step::Before(_)) {
                    self.step = Step::Before(before::State::default());
                }
            }
            (EnrollmentStep::Pairing, None) => match pairing {
                Some(pairing) => {
                    if !matches!(self.step, Step::Verify(_)) {
                        self.step = Step::Pair(pair::State::new(&pairing));
                    }
                    self.pairing = Some(pairing);
                }
                None => self.notice = Some("The agent did not send the pairing code.".into()),
            },
            (EnrollmentStep::Verified, _) => {
                self.pairing = None;
                match &mut self.step {
                    Step::Recovery(r) => r.answered(recovery_codes),
                    _ => self.step = Step::Recovery(recovery::State::new(recovery_codes)),
                }
            }
            (EnrollmentStep::RecoveryCodesSaved, _) => {
                if !matches!(self.step, Step::Offline(_)) {
                    self.step = Step::Offline(offline::State::default());
                    return self.open_guide_by_itself();
                }
            }
            (EnrollmentStep::OfflineGuideAcknowledged | EnrollmentStep::Enrolled, _) => {
                self.step = Step::Done;
            }
        }
        vec![]
    }

    /// Duo's pairing: the phone to confirm, or the activation to finish.
    fn duo_pairing(&mut self, prompt: DuoPrompt) {
        match (&mut self.step, prompt) {
            (Step::DuoConfirm(c), DuoPrompt::Confirm { devices, push }) => {
                c.refresh(devices, push);
            }
            (_, DuoPrompt::Confirm { devices, push }) => {
                self.step = Step::DuoConfirm(duo_confirm::State::new(devices, push));
            }
            (Step::DuoActivate(a), prompt) => a.refresh(&prompt),
            (_, prompt) => {
                if let Some(a) = duo_activate::State::from_prompt(&prompt) {
                    self.step = Step::DuoActivate(a);
                }
            }
        }
    }
}
