//! The run: every connection driven from one thread (epoll, and a timerfd
//! for the next scheduled send), each answer checked and timed into a
//! [`Tally`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rampart_shared::ipc::{ClientFrame, Request, Response, ServerFrame, decode_server_frame};
use rustix::buffer::spare_capacity;
use rustix::time::Timespec;

use crate::options::Options;

/// A send this far behind its schedule is counted as late.
const LATE_AFTER: Duration = Duration::from_micros(250);

/// An answer slower than this is an error (the agent's own write
/// deadline is 5 s).
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// When connection `index` of `connections` sends its `k`-th request,
/// after the start, in an open loop at `rate` requests a second in all.
pub fn scheduled(rate: f64, connections: usize, index: usize, k: u64) -> Duration {
    Duration::from_secs_f64((k as f64 * connections as f64 + index as f64) / rate)
}

fn frame(id: u64, request: Request) -> Vec<u8> {
    let mut line = serde_json::to_vec(&ClientFrame { id, request }).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Whether `line` is a status reply to `id`: the agent writes the
/// reply's head in this order whether it serializes it or splices a
/// cached status in (pinned by a test in `agent/src/ipc/server.rs`).
pub fn is_status_reply(line: &[u8], id: u64) -> bool {
    let head =
        format!("{{\"reply\":{{\"id\":{id},\"response\":{{\"type\":\"status\",\"status\":{{");
    line.starts_with(head.as_bytes()) && line.ends_with(b"}}}\n")
}

#[derive(Default)]
pub struct Tally {
    pub latencies: Vec<Duration>,
    pub send_lags: Vec<Duration>,
    /// From the actual send to the answer (open loop).
    pub answer_times: Vec<Duration>,
    pub replies: u64,
    pub late: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Connects and says hello, blocking: before the clock starts.
fn open(options: &Options) -> Result<UnixStream, String> {
    let mut stream = UnixStream::connect(&options.socket)
        .map_err(|e| format!("could not connect to {}: {e}", options.socket.display()))?;
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let hello = Request::Hello {
        protocol: rampart_shared::ipc::PROTOCOL_VERSION,
        client: "rampart-status-load".into(),
    };
    stream
        .write_all(&frame(0, hello))
        .map_err(|e| format!("sending hello failed: {e}"))?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("no answer to hello within {READ_TIMEOUT:?}: {e}"))?;
    match decode_server_frame(&line) {
        Ok(ServerFrame::Reply {
            response: Response::Hello { .. },
            ..
        }) => {}
        _ => return Err(format!("hello was answered with {}", shown(&line))),
    }
    stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

fn shown(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    text.trim_end().chars().take(200).collect()
}

/// One connection of the run: at most one request outstanding.
struct Conn {
    stream: UnixStream,
    /// Bytes read and not yet a whole frame.
    buf: Vec<u8>,
    /// The number of the next request (its id is one more).
    k: u64,
    /// The outstanding request: its number, scheduled and actual send.
    pending: Option<(u64, Instant, Instant)>,
}

struct Clock {
    start: Instant,
    warm: Instant,
    end: Instant,
}

const TIMER: u64 = u64::MAX;

/// Drives every connection from one thread (epoll, and a timerfd for the
/// next scheduled send), so that the client's own threads do not crowd
/// the agent off a small machine.
pub fn run(options: &Options, tally: &mut Tally) -> rustix::io::Result<()> {
    use rustix::event::epoll;
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create,
        timerfd_settime,
    };

    let n = options.connections;
    let poller = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let timer = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    epoll::add(
        &poller,
        &timer,
        epoll::EventData::new_u64(TIMER),
        epoll::EventFlags::IN,
    )?;
    let mut conns: Vec<Option<Conn>> = Vec::with_capacity(n);
    for index in 0..n {
        match open(options) {
            Ok(stream) => {
                epoll::add(
                    &poller,
                    &stream,
                    epoll::EventData::new_u64(index as u64),
                    epoll::EventFlags::IN,
                )?;
                conns.push(Some(Conn {
                    stream,
                    buf: Vec::with_capacity(64 * 1024),
                    k: 0,
                    pending: None,
                }));
            }
            Err(e) => {
                tally.error(e);
                conns.push(None);
            }
        }
    }
    let start = Instant::now() + Duration::from_millis(5);
    let clock = Clock {
        start,
        warm: start + Duration::from_secs_f64(options.warmup),
        end: start + Duration::from_secs_f64(options.seconds),
    };
    let due = |index: usize, k: u64| match options.rate {
        Some(rate) => clock.start + scheduled(rate, n, index, k),
        None => clock.start,
    };
    // Connections waiting to send, soonest first.
    let mut waiting: BinaryHeap<Reverse<(Instant, usize)>> = conns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_some())
        .map(|(i, _)| Reverse((due(i, 0), i)))
        .collect();
    let mut outstanding = 0usize;
    let mut events = Vec::with_capacity(n + 1);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut last_check = Instant::now();
    loop {
        let now = Instant::now();
        while let Some(&Reverse((at, i))) = waiting.peek() {
            if at > now {
                break;
            }
            waiting.pop();
            if at >= clock.end {
                continue;
            }
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            let sent = Instant::now();
            let request = frame(conn.k + 1, Request::Status);
            // One small request on an otherwise idle connection: the
            // socket's buffer takes it whole.
            match conn.stream.write(&request) {
                Ok(len) if len == request.len() => {
                    conn.pending = Some((conn.k, at, sent));
                    outstanding += 1;
                }
                other => {
                    tally.error(format!("sending a request failed: {other:?}"));
                    conns[i] = None;
                }
            }
        }
        if waiting.is_empty() && outstanding == 0 {
            return Ok(());
        }
        if let Some(&Reverse((at, _))) = waiting.peek() {
            let wait = at.saturating_duration_since(Instant::now());
            let value = Timespec::try_from(wait.max(Duration::from_nanos(1))).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            timerfd_settime(
                &timer,
                TimerfdTimerFlags::empty(),
                &Itimerspec {
                    it_interval: Timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    },
                    it_value: value,
                },
            )?;
        }
        events.clear();
        let tick = Timespec {
            tv_sec: 0,
            tv_nsec: 100_000_000,
        };
        match epoll::wait(&poller, spare_capacity(&mut events), Some(&tick)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            let i = event.data.u64();
            if i == TIMER {
                let _ = rustix::io::read(&timer, &mut [0u8; 8]);
                continue;
            }
            let i = i as usize;
            let Some(conn) = conns[i].as_mut() else {
                continue;
            };
            match read_answers(conn, &mut scratch, &clock, options, tally) {
                Ok(answered) => {
                    if answered {
                        outstanding -= 1;
                        let at = match options.rate {
                            Some(_) => due(i, conn.k),
                            None => Instant::now(),
                        };
                        waiting.push(Reverse((at, i)));
                    }
                }
                Err(e) => {
                    tally.error(e);
                    outstanding -= usize::from(conn.pending.is_some());
                    conns[i] = None;
                }
            }
        }
        // An answer that never comes is an error, not a hang.
        let now = Instant::now();
        if now - last_check < Duration::from_millis(100) {
            continue;
        }
        last_check = now;
        if now > clock.end + 2 * READ_TIMEOUT {
            tally.error(format!(
                "{outstanding} requests still unanswered at the end"
            ));
            return Ok(());
        }
        for conn in conns.iter_mut() {
            if let Some((k, _, sent)) = conn.as_ref().and_then(|c| c.pending)
                && now - sent > READ_TIMEOUT
            {
                tally.error(format!(
                    "no answer to request {} within {READ_TIMEOUT:?}",
                    k + 1
                ));
                outstanding -= 1;
                *conn = None;
            }
        }
    }
}

/// Reads what `conn` has; returns whether its outstanding request was
/// answered (and counted).
fn read_answers(
    conn: &mut Conn,
    scratch: &mut [u8],
    clock: &Clock,
    options: &Options,
    tally: &mut Tally,
) -> Result<bool, String> {
    loop {
        match conn.stream.read(scratch) {
            Ok(0) => return Err("the agent closed the connection".into()),
            Ok(len) => conn.buf.extend_from_slice(&scratch[..len]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading an answer failed: {e}")),
        }
    }
    let Some(end) = conn.buf.iter().position(|&b| b == b'\n') else {
        return Ok(false);
    };
    let answered = Instant::now();
    let line = &conn.buf[..=end];
    let Some((k, due, sent)) = conn.pending else {
        return Err(format!("an answer nobody asked for: {}", shown(line)));
    };
    let id = k + 1;
    if end + 1 != conn.buf.len() {
        return Err(format!("more than one answer to request {id}"));
    }
    if !is_status_reply(line, id) {
        return Err(format!("request {id} was answered with {}", shown(line)));
    }
    if k == 0
        && !matches!(
            decode_server_frame(line),
            Ok(ServerFrame::Reply { id: got, response: Response::Status { .. } }) if got == id
        )
    {
        return Err(format!(
            "request {id}'s answer does not decode as a status reply: {}",
            shown(line)
        ));
    }
    conn.buf.clear();
    conn.pending = None;
    conn.k += 1;
    tally.replies += 1;
    if due >= clock.warm {
        tally.latencies.push(answered - due);
        if options.rate.is_some() {
            let lag = sent - due;
            tally.late += u64::from(lag > LATE_AFTER);
            tally.send_lags.push(lag);
            tally.answer_times.push(answered - sent);
        }
    }
    Ok(true)
}

/// N connections need N descriptors, more than a shell's usual 1024.
pub fn raise_file_limit(connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = connections as u64 + 64;
    if limit.current.is_some_and(|c| c < wanted) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_spreads_the_rate_over_the_connections() {
        // 4 connections at 1000 req/s: one request every 0.25 ms in all,
        // each connection every 1 ms, staggered.
        let at = |i, k| scheduled(4000.0, 4, i, k);
        assert_eq!(at(0, 0), Duration::ZERO);
        assert_eq!(at(1, 0), Duration::from_micros(250));
        assert_eq!(at(0, 1), Duration::from_millis(1));
        assert_eq!(at(3, 2), Duration::from_micros(2750));
    }

    #[test]
    fn only_a_status_reply_to_the_same_id_counts() {
        let good =
            b"{\"reply\":{\"id\":7,\"response\":{\"type\":\"status\",\"status\":{\"x\":1}}}}\n";
        assert!(is_status_reply(good, 7));
        assert!(!is_status_reply(good, 8));
        assert!(!is_status_reply(
            b"{\"error\":{\"id\":7,\"error\":{\"code\":\"internal\",\"message\":\"m\"}}}\n",
            7
        ));
        assert!(!is_status_reply(&good[..good.len() - 2], 7), "cut short");
    }
}
