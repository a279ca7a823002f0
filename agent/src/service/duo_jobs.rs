//! Duo exchanges in flight: an MFA command (or a status refresh) that needs
//! Duo is parked as a [`DuoJob`], the exchange runs as a task, and the answer
//! finishes the command when it comes back as [`Event::DuoAnswered`].
//!
//! Architecture Invariant: one Duo exchange at a time (`InFlight::duo`); an
//! MFA command that needs Duo while one runs is answered at once from the
//! current state (a poll as it stands, anything else with
//! `ProviderInFlight`), never queued.

use rampart_shared::ipc::Response;
use rampart_shared::mfa::{EnrollmentView, MfaCommand};
use rampart_shared::policy::Provider;
use tokio::sync::mpsc;
use tracing::warn;

use super::Event;
use super::handlers::{ReadyReply, ReplyTo};
use super::main_loop::spawn_job;
use super::shell::{Shell, mfa_ctx};
use crate::duo::{DuoClient, DuoConfig};
use crate::mfa::{self, UserKey};

/// An MFA command waiting on Duo: what the loop needs to finish it.
pub struct DuoJob {
    pub(super) peer: mfa::Peer,
    pub(super) owner: UserKey,
    /// `None`: a status refresh.
    pub(super) command: Option<MfaCommand>,
    pub(super) call: mfa::duo::DuoCall,
    pub(super) reply: Option<ReplyTo>,
}

impl std::fmt::Debug for DuoJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoJob")
            .field("owner", &self.owner.id)
            .field("command", &self.command)
            .field("call", &self.call)
            .finish_non_exhaustive()
    }
}

impl Shell {
    /// The Duo client for the policy in force.
    fn duo_client(&mut self) -> Result<DuoClient, mfa::MfaError> {
        if let Some(client) = &self.duo_client {
            return Ok(client.clone());
        }
        let Provider::Duo {
            api_host,
            integration_key,
            secret_key_file,
            ..
        } = &self.policy.in_force().0.mfa.provider
        else {
            return Err(mfa::MfaError::ProviderError(
                "The policy no longer names Duo. Close the setup window and open it again.".into(),
            ));
        };
        let extra_ca = self
            .config
            .install
            .as_ref()
            .and_then(|i| i.extra_ca_file.as_deref());
        let built = DuoConfig::from_policy(
            api_host,
            integration_key,
            std::path::Path::new(secret_key_file),
            extra_ca,
        )
        .and_then(DuoClient::new);
        match built {
            Ok(client) => {
                self.duo_client = Some(client.clone());
                Ok(client)
            }
            Err(e) => {
                warn!(error = %e, "Duo client cannot be built");
                let mfa::duo::DuoFailure::Other(sentence) = mfa::duo::calls::describe(&e) else {
                    return Err(mfa::MfaError::ProviderError(e.to_string()));
                };
                Err(mfa::MfaError::ProviderError(sentence))
            }
        }
    }

    /// Starts the Duo exchange for `job` as a task that reports back with
    /// [`Event::DuoAnswered`]. When no client can be built, hands back the
    /// reply channel and the view that says why.
    pub(super) fn start_duo(
        &mut self,
        mut job: DuoJob,
        events: &mpsc::Sender<Event>,
    ) -> Result<(), (ReplyTo, Box<EnrollmentView>)> {
        let client = match self.duo_client() {
            Ok(client) => client,
            Err(error) => {
                let ctx = mfa_ctx(&self.policy, mfa::ComputerClock::default());
                let mut view =
                    self.mfa
                        .reply(&job.peer, &job.owner, &MfaCommand::CheckProgress, &ctx);
                view.error = Some(error.view());
                return match job.reply.take() {
                    Some(to) => Err((to, Box::new(view))),
                    None => Ok(()),
                };
            }
        };
        spawn_job(Some(&mut self.in_flight.duo), events, async move {
            let reply = mfa::duo::calls::perform(&client, &job.call).await;
            Event::DuoAnswered(Box::new(job), reply)
        });
        Ok(())
    }

    pub(super) fn on_duo_answered(
        &mut self,
        mut job: DuoJob,
        reply: mfa::duo::DuoReply,
    ) -> Option<ReadyReply> {
        self.in_flight.duo = false;
        let ctx = mfa_ctx(&self.policy, mfa::ComputerClock::default());
        let view = self.mfa.finish_duo(
            &job.peer,
            &job.owner,
            job.command.as_ref(),
            &job.call,
            reply,
            &ctx,
        );
        job.reply.take().map(|to| {
            (
                to,
                Ok(Response::Enrollment {
                    view: Box::new(view),
                }),
            )
        })
    }

    /// The refresh button, for a Duo user: ask Duo whether it still has
    /// their phone (`/preauth`).
    pub(super) fn refresh_duo_status(&mut self, events: &mpsc::Sender<Event>) {
        if self.in_flight.duo {
            return;
        }
        let Some(owner) = self.mfa_owner(None) else {
            return;
        };
        let Some(call) = self.mfa.status_refresh(&owner, self.policy.in_force().0) else {
            return;
        };
        let job = DuoJob {
            // The agent asks on the owner's behalf; no command runs.
            peer: mfa::Peer {
                id: owner.id.clone(),
                admin: false,
                user_name: owner.name.clone(),
            },
            owner,
            command: None,
            call,
            reply: None,
        };
        let _ = self.start_duo(job, events);
    }
}
