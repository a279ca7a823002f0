//! Answers to the IPC requests that need the loop. Reads (`status`,
//! `subscribe`, `policy_show`) never come here: the IPC server answers them
//! from the published snapshots.

use rampart_shared::ipc::{Check, ErrorCode, IpcError, LogLevel, Request, Response};
use rampart_shared::mfa::MfaCommand;
use rampart_shared::signin::TypedCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use tracing::info;

use super::Event;
use super::duo_jobs::DuoJob;
use super::shell::{Shell, mfa_ctx};
use crate::ipc::server::IpcCommand;
use crate::ipc::{Peer, user_name};
use crate::mfa;

/// Where an IPC request's answer goes.
pub(super) type ReplyTo = oneshot::Sender<Result<Response, IpcError>>;
/// An answer ready to send.
pub(super) type ReadyReply = (ReplyTo, Result<Response, IpcError>);

/// The requests the loop answers, sorted out of [`Request`] first so that
/// each has one handler and none is matched twice.
enum LoopRequest {
    SetLogLevel(LogLevel),
    Refresh(Check),
    Mfa {
        command: MfaCommand,
        user: Option<String>,
    },
    VerifySignin {
        user: String,
        code: TypedCode,
    },
}

impl TryFrom<Request> for LoopRequest {
    type Error = IpcError;

    fn try_from(request: Request) -> Result<Self, IpcError> {
        match request {
            Request::SetLogLevel { level } => Ok(Self::SetLogLevel(level)),
            Request::Refresh { check } => Ok(Self::Refresh(check)),
            Request::Mfa { command, user } => Ok(Self::Mfa { command, user }),
            Request::VerifySignin { user, code } => Ok(Self::VerifySignin { user, code }),
            other => Err(IpcError::new(
                ErrorCode::Internal,
                format!(
                    "\"{}\" is answered by the IPC server, not the event loop",
                    other.name()
                ),
            )),
        }
    }
}

impl Shell {
    /// The answer to a request, or `None` when it waits on Duo (the answer
    /// then comes with [`Event::DuoAnswered`]).
    pub(super) fn handle_ipc(
        &mut self,
        command: IpcCommand,
        events: &mpsc::Sender<Event>,
    ) -> Option<ReadyReply> {
        let IpcCommand {
            peer,
            request,
            reply: to,
        } = command;
        let result = match LoopRequest::try_from(request) {
            Ok(LoopRequest::Mfa { command, user }) => {
                return self.handle_mfa(peer, command, user.as_deref(), to, events);
            }
            Ok(LoopRequest::VerifySignin { user, code }) => {
                return self.handle_signin(peer, user, code, to, events);
            }
            Ok(LoopRequest::SetLogLevel(level)) => self.set_log_level(level),
            Ok(LoopRequest::Refresh(check)) => Ok(self.refresh(check, events)),
            Err(error) => Err(error),
        };
        Some((to, result))
    }

    fn set_log_level(&self, level: LogLevel) -> Result<Response, IpcError> {
        let control = self.config.log_control.as_ref().ok_or_else(|| {
            IpcError::new(
                ErrorCode::Internal,
                "this agent's log level cannot be changed at run time",
            )
        })?;
        control(level).map_err(|e| IpcError::new(ErrorCode::Internal, e.to_string()))?;
        info!(level = level.as_str(), "log level changed over IPC");
        Ok(Response::Accepted)
    }

    /// "Check again": the checks asked for are due now.
    fn refresh(&mut self, check: Check, events: &mpsc::Sender<Event>) -> Response {
        let now = TokioInstant::now();
        if matches!(check, Check::All | Check::Clock) {
            self.due.clock = Some(now);
        }
        if matches!(check, Check::All | Check::Network) {
            self.due.network = Some(now);
        }
        if matches!(check, Check::All | Check::Policy) {
            self.due.policy = Some(now);
            self.due.housekeeping = Some(now);
        }
        if matches!(check, Check::All | Check::Network) {
            self.reporter.kick();
        }
        if check == Check::All {
            // A state file IT mended (or removed) counts now, not
            // at the next start.
            self.mfa.reload_broken();
            self.refresh_duo_status(events);
        }
        Response::Accepted
    }

    /// Answers an MFA command now, or starts the Duo exchange it needs and
    /// answers when Duo has (`None`: the reply is on its way).
    fn handle_mfa(
        &mut self,
        peer: Peer,
        command: MfaCommand,
        user: Option<&str>,
        to: ReplyTo,
        events: &mpsc::Sender<Event>,
    ) -> Option<ReadyReply> {
        let Some(id) = peer.user else {
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::PermissionDenied,
                    "the agent cannot tell which user is asking, so it will not change MFA state",
                )),
            ));
        };
        let peer = mfa::Peer {
            user_name: user_name(&id),
            id,
            admin: peer.admin,
        };
        let owner = match user {
            None => self.mfa_owner(Some(&peer)),
            Some(name) => self.mfa_user(name),
        };
        let Some(owner) = owner else {
            return Some((
                to,
                Err(IpcError::new(
                    ErrorCode::Internal,
                    match user {
                        Some(name) => format!(
                            "this computer has no user named \"{name}\" and no MFA setup for one: check the login name"
                        ),
                        None => "no MFA owner can be determined".to_owned(),
                    },
                )),
            ));
        };
        let ctx = mfa_ctx(&self.policy, self.computer_clock());
        let view = match self.mfa.plan(&peer, &owner, &command, &ctx) {
            mfa::Plan::Reply(view) => view,
            mfa::Plan::Duo(call) => {
                if self.in_flight.duo {
                    // A poll just gets the current view; anything else waits.
                    let view = if command == MfaCommand::CheckProgress {
                        self.mfa.reply(&peer, &owner, &command, &ctx)
                    } else {
                        let mut view =
                            self.mfa
                                .reply(&peer, &owner, &MfaCommand::CheckProgress, &ctx);
                        view.error = Some(mfa::MfaError::ProviderInFlight.view());
                        view
                    };
                    Box::new(view)
                } else {
                    let job = DuoJob {
                        peer,
                        owner,
                        command: Some(command),
                        call,
                        reply: Some(to),
                    };
                    return match self.start_duo(job, events) {
                        Ok(()) => None,
                        Err((to, view)) => Some((to, Ok(Response::Enrollment { view }))),
                    };
                }
            }
        };
        if view
            .error
            .as_ref()
            .and_then(|e| e.problem.as_ref())
            .is_some_and(|p| {
                matches!(
                    p.cause,
                    rampart_shared::cause::Cause::ComputerClockMoved { .. }
                )
            })
            && !self.in_flight.clock
        {
            // The clock was set since it was checked: check it again now,
            // so the status (and the wizard's clock line) says so too.
            self.due.clock = Some(TokioInstant::now());
        }
        Some((to, Ok(Response::Enrollment { view })))
    }
}
