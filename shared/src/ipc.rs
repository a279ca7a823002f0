//! The local IPC protocol between the agent and its clients (the app, the CLI).
//!
//! Newline-delimited JSON over a Unix domain socket (a named pipe on Windows),
//! each frame at most [`MAX_FRAME_BYTES`] including its newline. The client
//! speaks first with [`Request::Hello`]; anything else first is refused. Each
//! request carries a client-chosen `id` that its reply echoes; events pushed
//! after [`Request::Subscribe`] carry none. `docs/protocol.md` is the prose
//! version of this module and the literal-JSON tests below pin the bytes.
//!
//! Every variant notes the protocol version that introduced it; old variants
//! keep decoding forever.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mfa::{EnrollmentView, MfaCommand};
use crate::policy::Policy;
use crate::signin::{SigninResult, TypedCode};
use crate::status::{AgentMode, AgentStatus, PolicySource};
use crate::version::Version;

/// Bumped when a change would make an older peer misread a frame.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest frame, newline included, in either direction.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Client to agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFrame {
    pub id: u64,
    pub request: Request,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// v1. Must be the first frame on a connection.
    Hello { protocol: u32, client: String },
    /// v1. The current status.
    Status,
    /// v1. Replies with the current status, then pushes
    /// [`Event::StatusChanged`] whenever it changes, until the client leaves.
    Subscribe,
    /// v1. The policy in force and where it came from.
    PolicyShow,
    /// v1. Re-run checks now (the wizard's "Check again"). Any user may ask.
    Refresh { check: Check },
    /// v1. Change the log filter at run time. Root or the agent's own user.
    SetLogLevel { level: LogLevel },
    /// v1. Drive the MFA enrollment: the asking user's own (the agent's
    /// user in dev mode), or with `user` (added with issue 19; an older
    /// agent refuses the field) the named login's, which only root may
    /// change for another user.
    Mfa {
        command: MfaCommand,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// v1, added after its first release (an older agent answers
    /// `unknown_request` and keeps the connection). A keepalive: a subscriber
    /// that sends nothing for the agent's subscriber idle limit may be closed
    /// while its user holds many connections. Answered with `pong`.
    Ping,
    /// v1, added with issue 19 (an older agent answers `unknown_request`):
    /// check a code someone typed to sign in as `user` (a login name).
    /// Root may ask for any user; any other user only for their own
    /// account. Answered with `signin`. The code is never logged.
    VerifySignin { user: String, code: TypedCode },
}

impl Request {
    /// Requests that change the agent's state or behaviour, and so are refused
    /// to local users other than root and the agent's own user.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Self::SetLogLevel { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Status => "status",
            Self::Subscribe => "subscribe",
            Self::PolicyShow => "policy_show",
            Self::Refresh { .. } => "refresh",
            Self::SetLogLevel { .. } => "set_log_level",
            Self::Mfa { .. } => "mfa",
            Self::Ping => "ping",
            Self::VerifySignin { .. } => "verify_signin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    All,
    Clock,
    Network,
    Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// Agent to client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerFrame {
    Reply {
        id: u64,
        response: Response,
    },
    /// `id` is absent when the frame it answers could not be read far enough
    /// to find one.
    Error {
        id: Option<u64>,
        error: IpcError,
    },
    Event {
        event: Event,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// v1.
    Hello {
        protocol: u32,
        agent_version: Version,
        mode: AgentMode,
    },
    /// v1.
    Status { status: Box<AgentStatus> },
    /// v1. The status at the moment of subscribing; events follow.
    Subscribed { status: Box<AgentStatus> },
    /// v1.
    Policy {
        source: PolicySource,
        policy: Box<Policy>,
    },
    /// v1. The request was taken; its effect shows in the status.
    Accepted,
    /// v1. The enrollment after an `mfa` command. A refused command is
    /// answered here too, with `view.error` set and the step unchanged, so
    /// that the app always knows where the user stands.
    Enrollment { view: Box<EnrollmentView> },
    /// v1, added with `ping`: only a client that pings receives it.
    Pong,
    /// v1, added with `verify_signin`: accepted, or refused with a reason.
    Signin { result: SigninResult },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// v1.
    StatusChanged { status: Box<AgentStatus> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
}

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or not a frame of this protocol. The connection is closed.
    #[error("bad_frame")]
    BadFrame,
    /// Over [`MAX_FRAME_BYTES`]. The connection is closed.
    #[error("frame_too_large")]
    FrameTooLarge,
    /// A request before `hello`. The connection is closed.
    #[error("handshake_required")]
    HandshakeRequired,
    /// `hello` with another protocol version. The connection is closed.
    #[error("protocol_mismatch")]
    ProtocolMismatch,
    /// A well-formed frame with a request type this agent does not know
    /// (a newer client). The connection stays open.
    #[error("unknown_request")]
    UnknownRequest,
    /// The peer's user may not make this request. The connection stays open.
    #[error("permission_denied")]
    PermissionDenied,
    /// The agent could not do it; the message says why.
    #[error("internal")]
    Internal,
    /// The client was idle or too slow. The connection is closed.
    #[error("timeout")]
    Timeout,
}

impl ErrorCode {
    /// Whether the agent closes the connection after sending this error.
    pub fn is_fatal(self) -> bool {
        !matches!(
            self,
            Self::UnknownRequest | Self::PermissionDenied | Self::Internal
        )
    }
}

/// Serializes one frame with its terminating newline.
pub fn encode_frame<T: Serialize>(frame: &T) -> Vec<u8> {
    // Serializing these types cannot fail: no maps with non-string keys, no
    // custom serializers that error. An empty frame would be refused by the
    // peer, which is the safe outcome if that ever changed.
    let mut bytes = serde_json::to_vec(frame).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Why a client frame was not understood. Carries the request id whenever the
/// frame was readable far enough to have one, so the error reply can echo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub id: Option<u64>,
    pub error: IpcError,
}

/// Decodes one client frame (without its newline).
pub fn decode_client_frame(line: &[u8]) -> Result<ClientFrame, DecodeError> {
    let bad = |id, message: String| DecodeError {
        id,
        error: IpcError::new(ErrorCode::BadFrame, message),
    };
    // The common case, a well-formed request, in one typed pass; the Value
    // pass below only runs to explain a refusal.
    let typed_error = match serde_json::from_slice::<ClientFrame>(line) {
        Ok(frame) => return Ok(frame),
        Err(e) => e,
    };
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| bad(None, format!("frame is not valid JSON: {e}")))?;
    let id = value.get("id").and_then(Value::as_u64);
    let request_type = value
        .get("request")
        .and_then(|r| r.get("type"))
        .and_then(Value::as_str);
    match (id, request_type) {
        (Some(id), Some(t)) if !KNOWN_REQUESTS.contains(&t) => Err(DecodeError {
            id: Some(id),
            error: IpcError::new(
                ErrorCode::UnknownRequest,
                format!(
                    "unknown request type \"{t}\" (this agent speaks protocol {PROTOCOL_VERSION}: {})",
                    KNOWN_REQUESTS.join(", ")
                ),
            ),
        }),
        _ => Err(bad(id, format!("frame is not a request: {typed_error}"))),
    }
}

const KNOWN_REQUESTS: &[&str] = &[
    "hello",
    "status",
    "subscribe",
    "policy_show",
    "refresh",
    "set_log_level",
    "mfa",
    "ping",
    "verify_signin",
];

/// Decodes one agent frame (without its newline).
pub fn decode_server_frame(line: &[u8]) -> Result<ServerFrame, serde_json::Error> {
    serde_json::from_slice(line)
}

/// The frame was longer than [`MAX_FRAME_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame exceeds {MAX_FRAME_BYTES} bytes")]
pub struct FrameTooLarge;

/// Splits a byte stream into newline-terminated frames, refusing any frame
/// longer than the cap without buffering more than the cap. Pure, so that the
/// agent, the clients and the fuzzer share one implementation.
#[derive(Debug)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    max: usize,
}

impl Default for FrameSplitter {
    fn default() -> Self {
        Self::new(MAX_FRAME_BYTES)
    }
}

impl FrameSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            max,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame without its newline, `None` when more bytes are
    /// needed, or an error once the pending frame is over the cap (the caller
    /// then closes the connection: a stream with an oversized frame cannot be
    /// resynchronised safely).
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameTooLarge>> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = self.scanned + pos;
                if end + 1 > self.max {
                    return Some(Err(FrameTooLarge));
                }
                let mut frame: Vec<u8> = self.buf.drain(..=end).collect();
                frame.pop();
                self.scanned = 0;
                Some(Ok(frame))
            }
            None if self.buf.len() >= self.max => Some(Err(FrameTooLarge)),
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(json: Value) -> ClientFrame {
        decode_client_frame(json.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn client_frames_are_pinned() {
        assert_eq!(
            client(
                json!({"id": 1, "request": {"type": "hello", "protocol": 1, "client": "rampart-cli/0.1.0"}})
            ),
            ClientFrame {
                id: 1,
                request: Request::Hello {
                    protocol: 1,
                    client: "rampart-cli/0.1.0".into()
                }
            }
        );
        assert_eq!(
            client(json!({"id": 2, "request": {"type": "status"}})).request,
            Request::Status
        );
        assert_eq!(
            client(json!({"id": 3, "request": {"type": "subscribe"}})).request,
            Request::Subscribe
        );
        assert_eq!(
            client(json!({"id": 4, "request": {"type": "policy_show"}})).request,
            Request::PolicyShow
        );
        assert_eq!(
            client(json!({"id": 5, "request": {"type": "refresh", "check": "clock"}})).request,
            Request::Refresh {
                check: Check::Clock
            }
        );
        assert_eq!(
            client(json!({"id": 6, "request": {"type": "set_log_level", "level": "debug"}}))
                .request,
            Request::SetLogLevel {
                level: LogLevel::Debug
            }
        );
        assert_eq!(
            client(json!({"id": 7, "request": {"type": "mfa", "command": {"type": "verify_code", "code": "123 456"}}}))
                .request,
            Request::Mfa {
                command: MfaCommand::VerifyCode { code: "123 456".into() },
                user: None,
            }
        );
        assert_eq!(
            client(json!({"id": 8, "request": {"type": "mfa", "command": {"type": "start_enrollment"}}})).request,
            Request::Mfa {
                command: MfaCommand::StartEnrollment,
                user: None,
            }
        );
        assert_eq!(
            client(json!({"id": 8, "request": {"type": "mfa", "user": "bob", "command": {"type": "reset_enrollment"}}})).request,
            Request::Mfa {
                command: MfaCommand::ResetEnrollment,
                user: Some("bob".into()),
            }
        );
        assert_eq!(
            client(json!({"id": 9, "request": {"type": "ping"}})).request,
            Request::Ping
        );
        assert_eq!(
            client(json!({"id": 10, "request": {"type": "verify_signin", "user": "ada", "code": "123 456"}}))
                .request,
            Request::VerifySignin {
                user: "ada".into(),
                code: TypedCode::new("123 456")
            }
        );
        // And the encoder writes exactly this shape.
        assert_eq!(
            encode_frame(&ClientFrame {
                id: 2,
                request: Request::Status
            }),
            b"{\"id\":2,\"request\":{\"type\":\"status\"}}\n"
        );
    }

    #[test]
    fn server_frames_are_pinned() {
        let hello = ServerFrame::Reply {
            id: 1,
            response: Response::Hello {
                protocol: 1,
                agent_version: Version::new(0, 1, 0),
                mode: AgentMode::Dev,
            },
        };
        assert_eq!(
            String::from_utf8(encode_frame(&hello)).unwrap(),
            "{\"reply\":{\"id\":1,\"response\":{\"type\":\"hello\",\"protocol\":1,\"agent_version\":\"0.1.0\",\"mode\":\"dev\"}}}\n"
        );
        let error = ServerFrame::Error {
            id: Some(9),
            error: IpcError::new(ErrorCode::PermissionDenied, "nope"),
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"error": {"id": 9, "error": {"code": "permission_denied", "message": "nope"}}})
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::Reply {
                id: 3,
                response: Response::Accepted
            })
            .unwrap(),
            json!({"reply": {"id": 3, "response": {"type": "accepted"}}})
        );
        assert_eq!(
            serde_json::to_value(ServerFrame::Reply {
                id: 4,
                response: Response::Pong
            })
            .unwrap(),
            json!({"reply": {"id": 4, "response": {"type": "pong"}}})
        );
        assert_eq!(
            decode_server_frame(
                br#"{"reply":{"id":5,"response":{"type":"signin","result":{"outcome":"refused","reason":"replayed","message":"m"}}}}"#
            )
            .unwrap(),
            ServerFrame::Reply {
                id: 5,
                response: Response::Signin {
                    result: SigninResult::refused(crate::signin::SigninRefusal::Replayed, "m")
                }
            }
        );
        let decoded = decode_server_frame(
            br#"{"error":{"id":null,"error":{"code":"frame_too_large","message":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            decoded,
            ServerFrame::Error {
                id: None,
                error: IpcError::new(ErrorCode::FrameTooLarge, "x")
            }
        );
    }

    #[test]
    fn garbage_is_a_bad_frame_without_id() {
        let err = decode_client_frame(b"\x00\xffnot json").unwrap_err();
        assert_eq!(err.id, None);
        assert_eq!(err.error.code, ErrorCode::BadFrame);
        assert!(
            err.error.message.starts_with("frame is not valid JSON"),
            "{}",
            err.error.message
        );
    }

    #[test]
    fn unknown_request_keeps_its_id() {
        let err =
            decode_client_frame(br#"{"id":7,"request":{"type":"self_destruct"}}"#).unwrap_err();
        assert_eq!(err.id, Some(7));
        assert_eq!(err.error.code, ErrorCode::UnknownRequest);
        assert!(err.error.message.contains("\"self_destruct\""));
    }

    #[test]
    fn malformed_known_request_is_a_bad_frame_with_id() {
        let err =
            decode_client_frame(br#"{"id":8,"request":{"type":"refresh","check":"everything"}}"#)
                .unwrap_err();
        assert_eq!(err.id, Some(8));
        assert_eq!(err.error.code, ErrorCode::BadFrame);
        let err =
            decode_client_frame(br#"{"id":8,"request":{"type":"status"},"extra":1}"#).unwrap_err();
        assert_eq!(err.error.code, ErrorCode::BadFrame);
    }

    #[test]
    fn fatal_codes_close_the_connection() {
        assert!(ErrorCode::FrameTooLarge.is_fatal());
        assert!(ErrorCode::ProtocolMismatch.is_fatal());
        assert!(!ErrorCode::PermissionDenied.is_fatal());
        assert!(!ErrorCode::UnknownRequest.is_fatal());
    }

    #[test]
    fn splitter_yields_frames_across_chunk_boundaries() {
        let mut s = FrameSplitter::new(16);
        s.push(b"ab");
        assert_eq!(s.next_frame(), None);
        s.push(b"c\nde\n\nf");
        assert_eq!(s.next_frame(), Some(Ok(b"abc".to_vec())));
        assert_eq!(s.next_frame(), Some(Ok(b"de".to_vec())));
        assert_eq!(s.next_frame(), Some(Ok(Vec::new())));
        assert_eq!(s.next_frame(), None);
        assert_eq!(s.pending(), 1);
    }

    #[test]
    fn splitter_refuses_oversized_frames_with_and_without_newline() {
        let mut s = FrameSplitter::new(8);
        s.push(b"1234567\n");
        assert_eq!(s.next_frame(), Some(Ok(b"1234567".to_vec())));
        s.push(b"12345678\n");
        assert_eq!(s.next_frame(), Some(Err(FrameTooLarge)));

        let mut s = FrameSplitter::new(8);
        s.push(b"123456789");
        assert_eq!(s.next_frame(), Some(Err(FrameTooLarge)));
    }

    #[test]
    fn the_real_cap_is_64_kib_including_the_newline() {
        let mut s = FrameSplitter::default();
        let mut frame = vec![b'x'; MAX_FRAME_BYTES - 1];
        frame.push(b'\n');
        s.push(&frame);
        assert_eq!(s.next_frame().unwrap().unwrap().len(), MAX_FRAME_BYTES - 1);
        s.push(&vec![b'x'; MAX_FRAME_BYTES]);
        assert_eq!(s.next_frame(), Some(Err(FrameTooLarge)));
    }

    /// The status every `subscribed` reply and `status_changed` event
    /// carries, as a protocol 1 agent from before issue 14 wrote it (no
    /// `problem(s)`): it keeps decoding, and today's agent writes the same
    /// bytes for the same facts.
    const STATUS_V1: &str = "{\"schema\":1,\"overall\":\"healthy\",\"agent\":{\"version\":\"0.1.0\",\"mode\":\"dev\",\"pid\":42,\"started_at\":\"2026-11-18T11:06:40Z\",\"uptime_secs\":5},\"policy\":{\"source\":\"builtin\",\"serial\":0,\"fetched_at\":null,\"error\":null,\"fetch_error\":null,\"kept\":null,\"mfa_required\":true,\"provider\":\"totp\"},\"clock\":{\"state\":\"synced\",\"offset_ms\":12,\"uncertainty_ms\":1,\"max_skew_ms\":30000,\"server\":\"127.0.0.1:123\",\"checked_at\":\"2026-11-18T11:06:41Z\",\"detail\":\"clock is 12 ms fast\",\"source\":\"ntp\"},\"network\":{\"state\":\"online\",\"checked_at\":null,\"detail\":\"online\"},\"mfa\":{\"state\":\"enrolled\",\"provider\":\"totp\",\"detail\":null},\"update\":{\"state\":\"not_checked\",\"current_version\":\"0.1.0\",\"min_version\":null,\"detail\":\"meets the policy\"},\"storage\":{\"failures\":[],\"reports_not_queued\":0},\"reporting\":{\"credential_error\":null}}";

    #[test]
    fn subscribed_and_status_changed_frames_are_pinned() {
        let status = Box::new(crate::status::tests::sample());
        let subscribed = ServerFrame::Reply {
            id: 7,
            response: Response::Subscribed {
                status: status.clone(),
            },
        };
        let subscribed_line = format!(
            "{{\"reply\":{{\"id\":7,\"response\":{{\"type\":\"subscribed\",\"status\":{STATUS_V1}}}}}}}\n"
        );
        assert_eq!(
            String::from_utf8(encode_frame(&subscribed)).unwrap(),
            subscribed_line
        );
        assert_eq!(
            decode_server_frame(subscribed_line.trim_end().as_bytes()).unwrap(),
            subscribed
        );
        let changed = ServerFrame::Event {
            event: Event::StatusChanged { status },
        };
        let changed_line = format!(
            "{{\"event\":{{\"event\":{{\"type\":\"status_changed\",\"status\":{STATUS_V1}}}}}}}\n"
        );
        assert_eq!(
            String::from_utf8(encode_frame(&changed)).unwrap(),
            changed_line
        );
        assert_eq!(
            decode_server_frame(changed_line.trim_end().as_bytes()).unwrap(),
            changed
        );
    }

    /// One of each request. A new variant stops this match compiling until
    /// it is added to the list beside it.
    fn every_request() -> Vec<Request> {
        let all = vec![
            Request::Hello {
                protocol: PROTOCOL_VERSION,
                client: "test".into(),
            },
            Request::Status,
            Request::Subscribe,
            Request::PolicyShow,
            Request::Refresh { check: Check::All },
            Request::SetLogLevel {
                level: LogLevel::Info,
            },
            Request::Mfa {
                command: MfaCommand::StartEnrollment,
                user: None,
            },
            Request::Ping,
            Request::VerifySignin {
                user: "ada".into(),
                code: TypedCode::new("123456"),
            },
        ];
        for request in &all {
            match request {
                Request::Hello { .. }
                | Request::Status
                | Request::Subscribe
                | Request::PolicyShow
                | Request::Refresh { .. }
                | Request::SetLogLevel { .. }
                | Request::Mfa { .. }
                | Request::Ping
                | Request::VerifySignin { .. } => {}
            }
        }
        all
    }

    /// The names an unknown request is told about are the requests there
    /// are, each as its JSON `type`, and each documented.
    #[test]
    fn the_known_request_names_are_the_request_variants() {
        let requests = every_request();
        let names: Vec<&str> = requests.iter().map(Request::name).collect();
        assert_eq!(names, KNOWN_REQUESTS);
        let doc = include_str!("../../docs/protocol.md");
        for request in &requests {
            let json = serde_json::to_value(request).unwrap();
            assert_eq!(json["type"], request.name());
            assert!(
                doc.contains(&format!("| `{}` |", request.name())),
                "docs/protocol.md has no row for `{}`",
                request.name()
            );
        }
    }
}
