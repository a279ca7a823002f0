//! A deliberately raw, blocking IPC client: tests must be able to send what a
//! well-behaved client never would.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

pub struct RawClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl RawClient {
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect to the agent socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set a read timeout");
        let writer = stream.try_clone().expect("clone the socket");
        Self {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Connects and completes a protocol-1 handshake.
    pub fn greeted(socket: &Path) -> Self {
        let mut client = Self::connect(socket);
        let reply = client.call(
            0,
            json!({"type": "hello", "protocol": 1, "client": "rampart-tests"}),
        );
        assert_eq!(reply["reply"]["response"]["type"], "hello", "{reply}");
        client
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn send(&mut self, id: u64, request: Value) {
        let mut line = json!({"id": id, "request": request}).to_string();
        line.push('\n');
        self.send_raw(line.as_bytes()).expect("send a frame");
    }

    /// The next frame from the agent, or `None` once it has closed.
    pub fn read(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("the agent sends JSON frames")),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("reading from the agent failed: {e}"),
        }
    }

    pub fn call(&mut self, id: u64, request: Value) -> Value {
        self.send(id, request);
        self.read().expect("the agent answered")
    }

    /// True when the agent closes the connection within the read timeout
    /// (anything it still sends first is discarded).
    pub fn is_closed_by_agent(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}
