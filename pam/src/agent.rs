//! One blocking exchange with the agent: connect, `hello`, `verify_signin`,
//! read the answer. The frames are the shared ones (`rampart_shared::ipc`);
//! every read and write is bounded by the module's timeout.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use rampart_shared::ipc::{
    ClientFrame, ErrorCode, FrameSplitter, IpcError, PROTOCOL_VERSION, Request, Response,
    ServerFrame, decode_server_frame, encode_frame,
};
use rampart_shared::signin::SigninResult;

/// Why the agent gave no answer to act on.
#[derive(Debug)]
pub enum AskError {
    /// Nothing listens on the socket (the agent is stopped), or it did not
    /// answer in time.
    Unreachable(std::io::Error),
    /// The agent refused the request (`permission_denied` when a user's
    /// screen locker asks for another account).
    Refused(IpcError),
    /// An answer this module cannot read (another protocol version).
    Garbled(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(e) => write!(f, "the agent cannot be reached: {e}"),
            Self::Refused(e) => write!(f, "the agent refused the request: {}", e.message),
            Self::Garbled(why) => write!(f, "the agent's answer cannot be read ({why})"),
        }
    }
}

/// Asks the agent on `socket` whether `code` signs `user` in.
pub fn verify_signin(
    socket: &Path,
    user: &str,
    code: &str,
    timeout: Duration,
) -> Result<SigninResult, AskError> {
    let mut stream = UnixStream::connect(socket).map_err(AskError::Unreachable)?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(AskError::Unreachable)?;
    let mut splitter = FrameSplitter::default();
    let hello = Request::Hello {
        protocol: PROTOCOL_VERSION,
        client: format!("pam_rampart/{}", rampart_shared::RAMPART_VERSION),
    };
    match exchange(&mut stream, &mut splitter, 1, hello)? {
        Response::Hello { .. } => {}
        other => return Err(AskError::Garbled(format!("{other:?} to hello"))),
    }
    let request = Request::VerifySignin {
        user: user.to_owned(),
        code: rampart_shared::signin::TypedCode::new(code),
    };
    match exchange(&mut stream, &mut splitter, 2, request)? {
        Response::Signin { result } => Ok(result),
        other => Err(AskError::Garbled(format!(
            "a {} reply to verify_signin",
            serde_json::to_value(&other)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_owned))
                .unwrap_or_default()
        ))),
    }
}

fn exchange(
    stream: &mut UnixStream,
    splitter: &mut FrameSplitter,
    id: u64,
    request: Request,
) -> Result<Response, AskError> {
    let mut bytes = encode_frame(&ClientFrame { id, request });
    let written = stream.write_all(&bytes);
    // The frame carries the code: it does not outlive the write.
    bytes.fill(0);
    written.map_err(AskError::Unreachable)?;
    loop {
        let frame = read_frame(stream, splitter)?;
        match decode_server_frame(&frame) {
            Ok(ServerFrame::Reply { id: got, response }) if got == id => return Ok(response),
            Ok(ServerFrame::Error { error, .. }) => {
                return Err(match error.code {
                    ErrorCode::UnknownRequest | ErrorCode::ProtocolMismatch => {
                        AskError::Garbled(error.message)
                    }
                    _ => AskError::Refused(error),
                });
            }
            // Another id or a pushed event: not this request's answer.
            Ok(_) => {}
            Err(e) => return Err(AskError::Garbled(e.to_string())),
        }
    }
}

fn read_frame(stream: &mut UnixStream, splitter: &mut FrameSplitter) -> Result<Vec<u8>, AskError> {
    let mut buf = [0u8; 4096];
    loop {
        match splitter.next_frame() {
            Some(Ok(frame)) => return Ok(frame),
            Some(Err(e)) => return Err(AskError::Garbled(e.to_string())),
            None => {}
        }
        let n = stream.read(&mut buf).map_err(AskError::Unreachable)?;
        if n == 0 {
            return Err(AskError::Unreachable(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the agent closed the connection",
            )));
        }
        splitter.push(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    /// A stand-in agent that answers hello and then `answer` (a raw line),
    /// and hands back what it was sent.
    fn fake_agent(
        answer: &'static str,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<Vec<String>>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("a.sock")).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut got = Vec::new();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            got.push(line.clone());
            writer
                .write_all(b"{\"reply\":{\"id\":1,\"response\":{\"type\":\"hello\",\"protocol\":1,\"agent_version\":\"0.1.0\",\"mode\":\"system\"}}}\n")
                .unwrap();
            line.clear();
            reader.read_line(&mut line).unwrap();
            got.push(line);
            writer.write_all(answer.as_bytes()).unwrap();
            got
        });
        (dir, handle)
    }

    #[test]
    fn asks_with_the_shared_frames_and_reads_the_result() {
        let (dir, agent) = fake_agent(
            "{\"reply\":{\"id\":2,\"response\":{\"type\":\"signin\",\"result\":{\"outcome\":\"refused\",\"reason\":\"replayed\",\"message\":\"m\"}}}}\n",
        );
        let result = verify_signin(
            &dir.path().join("a.sock"),
            "ada",
            "123456",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            result,
            SigninResult::refused(rampart_shared::signin::SigninRefusal::Replayed, "m")
        );
        let sent = agent.join().unwrap();
        assert!(sent[0].contains("\"type\":\"hello\""), "{}", sent[0]);
        assert_eq!(
            sent[1],
            "{\"id\":2,\"request\":{\"type\":\"verify_signin\",\"user\":\"ada\",\"code\":\"123456\"}}\n"
        );
    }

    #[test]
    fn an_older_agent_and_a_refusal_are_told_apart() {
        let (dir, agent) = fake_agent(
            "{\"error\":{\"id\":2,\"error\":{\"code\":\"unknown_request\",\"message\":\"unknown request type\"}}}\n",
        );
        let err = verify_signin(
            &dir.path().join("a.sock"),
            "ada",
            "1",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, AskError::Garbled(_)), "{err}");
        agent.join().unwrap();
        let (dir, agent) = fake_agent(
            "{\"error\":{\"id\":2,\"error\":{\"code\":\"permission_denied\",\"message\":\"not yours\"}}}\n",
        );
        let err = verify_signin(
            &dir.path().join("a.sock"),
            "bob",
            "1",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(err, AskError::Refused(_)), "{err}");
        agent.join().unwrap();
    }

    #[test]
    fn no_agent_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify_signin(
            &dir.path().join("none.sock"),
            "ada",
            "1",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, AskError::Unreachable(_)), "{err}");
    }
}
