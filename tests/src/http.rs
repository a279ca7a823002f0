//! A small HTTP/1.1 server for end-to-end tests, on 127.0.0.1 only.
//!
//! - [`HttpServer::serve`] a static file: `ETag` and `Last-Modified`, and 304
//!   to a matching `If-None-Match` (or `If-Modified-Since` without one);
//! - [`HttpServer::script`] answers: a queue of [`Reply`]s used in order
//!   before the route's static file (or 404), to stage 500s, stalls,
//!   redirects, oversized or undeclared-length bodies;
//! - [`HttpServer::require_bearer`] guards a route as a report collector
//!   should: a request without `Authorization: Bearer <token>` for that
//!   exact token gets 401, before any script or file;
//! - every request is recorded with what was answered ([`Recorded`]).
//!
//! One request per connection (`Connection: close`), a thread per
//! connection; a stalled reply holds its connection until the server is
//! dropped. Nothing here sleeps. [`HttpServer::start_https`] serves the same
//! over TLS (a [`crate::tls::TestCa`] certificate), optionally keeping
//! connections alive; each request records its connection and whether that
//! connection's TLS session was resumed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// What the server does with a reply's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Send everything and close.
    No,
    /// Send nothing at all; hold the connection.
    BeforeHeaders,
    /// Send the head and the whole body, then hold the connection open
    /// (with no `Content-Length`, the client cannot know the body ended).
    AfterBody,
    /// Send the head, then the body one byte every this many milliseconds
    /// (a server that never quite stalls).
    Trickle(u64),
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send `Content-Length` (otherwise the body is delimited by close).
    pub declare_length: bool,
    pub stall: Stall,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            declare_length: true,
            stall: Stall::No,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Self::new(status, Vec::new()).header("Location", location)
    }

    pub fn stall(mut self, stall: Stall) -> Self {
        self.stall = stall;
        self
    }

    pub fn undeclared_length(mut self) -> Self {
        self.declare_length = false;
        self
    }
}

/// One request and what it got.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The request target as sent (with the query).
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub status: u16,
    /// Body bytes the server meant to send (0 for a 304 or a stall before
    /// the head).
    pub body_len: usize,
    /// The connection it came on: 1 for the server's first, and so on.
    pub connection: u64,
    /// Over TLS: whether the connection resumed an earlier session.
    pub tls_resumed: Option<bool>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
struct StaticFile {
    body: Vec<u8>,
    content_type: String,
    etag: String,
    last_modified: String,
}

#[derive(Default)]
struct Routes {
    files: HashMap<String, StaticFile>,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// Routes that take only this bearer token.
    bearer: HashMap<String, String>,
    requests: Vec<Recorded>,
    shutdown: bool,
    /// Every reply carries `Date:` this far from this machine's clock
    /// ([`HttpServer::send_date`]); `None`: no `Date` header.
    date_ahead: Option<chrono::TimeDelta>,
}

struct Shared {
    routes: Mutex<Routes>,
    /// Woken on shutdown: releases stalled connections.
    released: Condvar,
}

pub struct HttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<thread::JoinHandle<()>>,
    /// The CA file, over TLS.
    ca: Option<(tempfile::TempDir, PathBuf)>,
}

/// How connections are served.
#[derive(Clone)]
struct Mode {
    tls: Option<Arc<rustls::ServerConfig>>,
    keep_alive: bool,
}

impl HttpServer {
    /// Listens on 127.0.0.1 on a free port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Listens on 127.0.0.1:`port` (0: a free one), e.g. a port a client was
    /// told about while nothing listened there.
    pub fn start_on(port: u16) -> Self {
        Self::listen(
            port,
            Mode {
                tls: None,
                keep_alive: false,
            },
            None,
        )
    }

    /// HTTPS on 127.0.0.1, with a certificate from a fresh test CA
    /// ([`Self::ca_file`]). `keep_alive`: answer requests on a connection
    /// until the client closes it, as a production server does; otherwise
    /// one request per connection, so that every request is a new TLS
    /// handshake.
    pub fn start_https(keep_alive: bool) -> Self {
        let ca = crate::tls::TestCa::new("Rampart test policy server CA");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, &ca.ca_pem).unwrap();
        Self::listen(
            0,
            Mode {
                tls: Some(ca.server),
                keep_alive,
            },
            Some((dir, file)),
        )
    }

    /// The PEM CA file that signed an HTTPS server's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.ca.as_ref().expect("an HTTPS server").1
    }

    fn listen(port: u16, mode: Mode, ca: Option<(tempfile::TempDir, PathBuf)>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
            released: Condvar::new(),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || {
                for (n, stream) in (1..).zip(listener.incoming()) {
                    if shared.routes.lock().unwrap().shutdown {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (shared, mode) = (shared.clone(), mode.clone());
                    thread::spawn(move || serve(&shared, stream, &mode, n));
                }
            })
        };
        Self {
            addr,
            shared,
            acceptor: Some(acceptor),
            ca,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/path` (`https://` over TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Serves `body` at `path` with a content-derived ETag. Replaces any
    /// earlier file at that path.
    pub fn serve(&self, path: &str, body: impl Into<Vec<u8>>, content_type: &str) {
        let body = body.into();
        let file = StaticFile {
            etag: format!("\"{:016x}\"", fnv1a(&body)),
            // A fixed date: If-Modified-Since is an exact match here.
            last_modified: "Mon, 23 Nov 2026 10:00:00 GMT".to_owned(),
            content_type: content_type.to_owned(),
            body,
        };
        self.shared
            .routes
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), file);
    }

    /// The ETag [`serve`](Self::serve) gives the file at `path`.
    pub fn etag(&self, path: &str) -> Option<String> {
        self.shared
            .routes
            .lock()
            .unwrap()
            .files
            .get(path)
            .map(|f| f.etag.clone())
    }

    /// Queues replies for `path`, used one per request before its file.
    pub fn script(&self, path: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut routes = self.shared.routes.lock().unwrap();
        routes
            .scripts
            .entry(path.to_owned())
            .or_default()
            .extend(replies);
    }

    /// From now on `path` answers 401 unless the request carries
    /// `Authorization: Bearer <token>`; what it answers otherwise is as
    /// before (a script, the file, or 404).
    pub fn require_bearer(&self, path: &str, token: &str) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .bearer
            .insert(path.to_owned(), token.to_owned());
    }

    /// From now on every reply carries a `Date` header `ahead` of this
    /// machine's clock (zero: the right time), as an HTTP date.
    pub fn send_date(&self, ahead: chrono::TimeDelta) {
        self.shared.routes.lock().unwrap().date_ahead = Some(ahead);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.routes.lock().unwrap().requests.clone()
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.shared.routes.lock().unwrap().requests.clear();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shared.routes.lock().unwrap().shutdown = true;
        self.shared.released.notify_all();
        // Wake the acceptor so that it sees the flag and closes the socket.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The request as read off the wire: method, target, headers, body.
type RawRequest = (String, String, Vec<(String, String)>, Vec<u8>);

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => &s.sock,
        }
    }

    fn resumed(&self) -> Option<bool> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(s) => s
                .conn
                .handshake_kind()
                .map(|kind| kind == rustls::HandshakeKind::Resumed),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

fn serve(shared: &Shared, stream: TcpStream, mode: &Mode, connection: u64) {
    let mut conn = match &mode.tls {
        None => Conn::Plain(stream),
        Some(config) => {
            let Ok(server) = rustls::ServerConnection::new(config.clone()) else {
                return;
            };
            Conn::Tls(Box::new(rustls::StreamOwned::new(server, stream)))
        }
    };
    while handle(shared, &mut conn, mode.keep_alive, connection) {}
    if let Conn::Tls(tls) = &mut conn {
        tls.conn.send_close_notify();
        let _ = tls.flush();
    }
}

/// Reads one request off `stream`. The buffer is dropped after it: a
/// client sends its next request on a kept-alive connection only after the
/// answer, so nothing of that one is in it.
fn read_request(stream: &mut impl Read) -> Option<RawRequest> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, headers, body))
}

/// Answers one request; true when the connection stays open for another.
fn handle(shared: &Shared, stream: &mut Conn, keep_alive: bool, connection: u64) -> bool {
    let Some((method, target, headers, body)) = read_request(stream) else {
        return false;
    };
    let tls_resumed = stream.resumed();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };

    let reply = {
        let mut routes = shared.routes.lock().unwrap();
        let refused = routes.bearer.get(&path).is_some_and(|token| {
            // The scheme is case-insensitive (RFC 9110 11.1), the token not.
            let sent = header("authorization");
            let got = sent.as_deref().and_then(|v| v.split_once(' '));
            !matches!(got, Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && t == token)
        });
        let scripted = if refused {
            Some(Reply::new(401, "unknown credential\n").header("WWW-Authenticate", "Bearer"))
        } else {
            routes.scripts.get_mut(&path).and_then(VecDeque::pop_front)
        };
        let reply = scripted.unwrap_or_else(|| match routes.files.get(&path) {
            Some(file) => {
                let fresh = match header("if-none-match") {
                    Some(tags) => tags
                        .split(',')
                        .any(|t| t.trim() == file.etag || t.trim() == "*"),
                    None => header("if-modified-since").is_some_and(|s| s == file.last_modified),
                };
                let reply = if fresh {
                    Reply::new(304, Vec::new())
                } else {
                    Reply::new(200, file.body.clone()).header("Content-Type", &file.content_type)
                };
                reply
                    .header("ETag", &file.etag)
                    .header("Last-Modified", &file.last_modified)
            }
            None => Reply::new(404, "not found\n"),
        });
        let body_len = match reply.stall {
            Stall::BeforeHeaders => 0,
            _ if reply.status == 304 => 0,
            _ => reply.body.len(),
        };
        routes.requests.push(Recorded {
            method,
            path,
            target,
            headers: headers.clone(),
            body,
            status: reply.status,
            body_len,
            connection,
            tls_resumed,
        });
        match routes.date_ahead {
            Some(ahead) => reply.header(
                "Date",
                &(chrono::Utc::now() + ahead)
                    .format("%a, %d %b %Y %H:%M:%S GMT")
                    .to_string(),
            ),
            None => reply,
        }
    };

    let send_body = reply.status != 304;
    let persist = keep_alive && reply.stall == Stall::No && (reply.declare_length || !send_body);
    if reply.stall != Stall::BeforeHeaders {
        let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        if !persist {
            head.push_str("Connection: close\r\n");
        }
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if send_body && reply.declare_length {
            head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if let Stall::Trickle(every_ms) = reply.stall {
            // A client that gives up half-way closes the socket: a write
            // error here is the expected end of that story.
            if stream.write_all(&out).is_err() {
                return false;
            }
            // Each byte on its own, not held back for the peer's ACK.
            let _ = stream.tcp().set_nodelay(true);
            let _ = stream.flush();
            for byte in &reply.body {
                thread::sleep(std::time::Duration::from_millis(every_ms));
                if stream
                    .write_all(&[*byte])
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return false;
                }
            }
            return false;
        }
        // Head and body in one write: in two, a kept-alive connection meets
        // Nagle and the client's delayed ACK.
        if send_body {
            out.extend_from_slice(&reply.body);
        }
        if stream
            .write_all(&out)
            .and_then(|()| stream.flush())
            .is_err()
        {
            return false;
        }
    }
    if reply.stall != Stall::No {
        let mut routes = shared.routes.lock().unwrap();
        while !routes.shutdown {
            routes = shared.released.wait(routes).unwrap();
        }
    }
    persist
}
