//! A load generator for the agent's `status` request, run as a process of
//! its own so that the figures include everything a real client pays (two
//! processes, the kernel's socket, the scheduler):
//!
//! ```text
//! rampart-status-load SOCKET --connections N --seconds D [--rate R] [--warmup W] [--label L] [--header]
//! ```
//!
//! - closed loop (no `--rate`): each of N connections sends its next request
//!   as soon as the previous answer arrives;
//! - open loop (`--rate R`): R requests a second in all, connection `i`
//!   sending at `start + (k*N + i)/R`. Like real clients, a connection never
//!   has two requests outstanding, so a slow answer delays the next send;
//!   latency is counted from the *scheduled* send time, so that delay is
//!   measured rather than hidden (coordinated omission), and such requests
//!   are counted as late.
//!
//! Prints one row: replies, achieved rate, errors, late sends, and p50, p90,
//! p99, p99.9 and max latency in ms over the requests scheduled after the
//! warm-up; in an open loop also `lag99`, the 99th percentile of how late
//! the client sent, and `ans99`, of the answer's time from the actual send
//! (the agent's share, without the client's lateness); and `steal %`, the
//! CPU time the machine's host took from it during the run (a VM's vCPU
//! waiting for the host stalls client and agent alike). Every answer must be a status reply to its own id (the first on
//! each connection is decoded in full with the shared frame types); anything
//! else is an error, and any error makes the exit status 1.
//! One thread drives every connection (epoll), so that on a small machine the
//! client takes as little CPU from the agent as it can. Linux only.

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(linux::main());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!(
        "rampart-status-load drives the agent's Unix socket with epoll and is not supported on this \
         platform; run it on Linux"
    );
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use rustix::buffer::spare_capacity;
    use rustix::time::Timespec;

    use rampart_shared::ipc::{ClientFrame, Request, Response, ServerFrame, decode_server_frame};

    /// A send this far behind its schedule is counted as late.
    const LATE_AFTER: Duration = Duration::from_micros(250);
    /// An answer slower than this is an error (the agent's own write
    /// deadline is 5 s).
    const READ_TIMEOUT: Duration = Duration::from_secs(5);
    const USAGE: &str = "usage: rampart-status-load SOCKET --connections N --seconds D [--rate R] [--warmup W] [--label L] [--header]";

    #[derive(Debug, Clone, PartialEq)]
    pub struct Options {
        pub socket: PathBuf,
        pub connections: usize,
        pub seconds: f64,
        /// Requests per second over all connections; `None`: closed loop.
        pub rate: Option<f64>,
        pub warmup: f64,
        pub label: Option<String>,
        pub header: bool,
    }

    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut it = args.iter();
        let socket = it.next().ok_or("no socket given")?.into();
        let mut options = Options {
            socket,
            connections: 1,
            seconds: 5.0,
            rate: None,
            warmup: 0.5,
            label: None,
            header: false,
        };
        fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
            value
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        }
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--connections" => options.connections = number(flag, it.next())?,
                "--seconds" => options.seconds = number(flag, it.next())?,
                "--rate" => options.rate = Some(number(flag, it.next())?),
                "--warmup" => options.warmup = number(flag, it.next())?,
                "--label" => options.label = Some(it.next().ok_or("--label needs text")?.clone()),
                "--header" => options.header = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if options.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if options.seconds.is_nan() || options.seconds <= 0.0 {
            return Err("--seconds must be more than 0".into());
        }
        if options.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
            return Err("--rate must be more than 0".into());
        }
        if options.warmup.is_nan() || options.warmup < 0.0 || options.warmup >= options.seconds {
            return Err("--warmup must be at least 0 and less than --seconds".into());
        }
        Ok(options)
    }

    /// When connection `index` of `connections` sends its `k`-th request,
    /// after the start, in an open loop at `rate` requests a second in all.
    pub fn scheduled(rate: f64, connections: usize, index: usize, k: u64) -> Duration {
        Duration::from_secs_f64((k as f64 * connections as f64 + index as f64) / rate)
    }

    /// The value at quantile `q` of sorted samples (nearest rank).
    pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
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
    struct Tally {
        latencies: Vec<Duration>,
        send_lags: Vec<Duration>,
        /// From the actual send to the answer (open loop).
        answer_times: Vec<Duration>,
        replies: u64,
        late: u64,
        errors: u64,
        first_error: Option<String>,
    }

    impl Tally {
        fn error(&mut self, what: String) {
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
    fn run(options: &Options, tally: &mut Tally) -> rustix::io::Result<()> {
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
                let value =
                    Timespec::try_from(wait.max(Duration::from_nanos(1))).unwrap_or(Timespec {
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

    /// The machine's stolen and total CPU time so far (the `cpu` line of
    /// /proc/stat): on a virtual machine, time its CPUs waited for the host.
    fn cpu_times() -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest times are
        // already inside user and nice).
        Some((*fields.get(7)?, fields.iter().take(8).sum()))
    }

    fn ms(d: Duration) -> String {
        format!("{:.3}", d.as_secs_f64() * 1e3)
    }

    pub fn main() -> i32 {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let options = match parse(&args) {
            Ok(options) => options,
            Err(e) => {
                eprintln!("rampart-status-load: {e}\n{USAGE}");
                return 2;
            }
        };
        let n = options.connections;
        raise_file_limit(n);
        let mut total = Tally::default();
        let steal_before = cpu_times();
        if let Err(e) = run(&options, &mut total) {
            total.error(format!("the client's event loop failed: {e}"));
        }
        total.latencies.sort_unstable();
        total.send_lags.sort_unstable();
        total.answer_times.sort_unstable();
        let steal = match (steal_before, cpu_times()) {
            (Some((s0, t0)), Some((s1, t1))) if t1 > t0 => {
                format!("{:.1}", 100.0 * (s1 - s0) as f64 / (t1 - t0) as f64)
            }
            _ => "?".into(),
        };
        let measured = options.seconds - options.warmup;
        let achieved = total.latencies.len() as f64 / measured;
        let label = options.label.clone().unwrap_or_else(|| match options.rate {
            None => format!("closed loop, {n} conn"),
            Some(rate) => format!("open loop {rate} req/s, {n} conn"),
        });
        if options.header {
            println!(
                "{:<34} {:>8} {:>9} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}",
                "case",
                "replies",
                "req/s",
                "errors",
                "late",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "p99.9 ms",
                "max ms",
                "lag99 ms",
                "ans99 ms",
                "steal %"
            );
        }
        let lat = &total.latencies;
        println!(
            "{label:<34} {:>8} {achieved:>9.0} {:>6} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {steal:>7}",
            total.replies,
            total.errors,
            if options.rate.is_some() {
                total.late.to_string()
            } else {
                "-".into()
            },
            ms(quantile(lat, 0.50)),
            ms(quantile(lat, 0.90)),
            ms(quantile(lat, 0.99)),
            ms(quantile(lat, 0.999)),
            ms(quantile(lat, 1.0)),
            if options.rate.is_some() {
                ms(quantile(&total.send_lags, 0.99))
            } else {
                "-".into()
            },
            if options.rate.is_some() {
                ms(quantile(&total.answer_times, 0.99))
            } else {
                "-".into()
            },
        );
        if let Some(e) = &total.first_error {
            eprintln!(
                "rampart-status-load: {} of the requests failed; the first: {e}",
                total.errors
            );
        }
        if total.errors > 0 || total.replies == 0 {
            if total.replies == 0 && total.errors == 0 {
                eprintln!("rampart-status-load: no answer at all; is an agent listening there?");
            }
            return 1;
        }
        0
    }

    /// N connections need N descriptors, more than a shell's usual 1024.
    fn raise_file_limit(connections: usize) {
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

        fn args(text: &str) -> Vec<String> {
            text.split_whitespace().map(str::to_owned).collect()
        }

        #[test]
        fn options_parse_and_refuse_nonsense() {
            let o = parse(&args("/s --connections 200 --seconds 10 --rate 10000")).unwrap();
            assert_eq!(
                (o.connections, o.seconds, o.rate),
                (200, 10.0, Some(10000.0))
            );
            assert_eq!(o.warmup, 0.5);
            assert!(parse(&args("/s --connections 0")).is_err());
            assert!(parse(&args("/s --rate -1")).is_err());
            assert!(parse(&args("/s --seconds 1 --warmup 1")).is_err());
            assert!(parse(&args("/s --bogus")).is_err());
            assert!(parse(&[]).is_err());
        }

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
        fn quantiles_are_nearest_rank() {
            let sorted: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
            assert_eq!(quantile(&sorted, 0.5), Duration::from_micros(500));
            assert_eq!(quantile(&sorted, 0.99), Duration::from_micros(990));
            assert_eq!(quantile(&sorted, 0.999), Duration::from_micros(999));
            assert_eq!(quantile(&sorted, 1.0), Duration::from_micros(1000));
            assert_eq!(quantile(&sorted, 0.0), Duration::from_micros(1));
            assert_eq!(quantile(&[], 0.5), Duration::ZERO);
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
}
