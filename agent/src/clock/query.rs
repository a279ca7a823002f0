//! The I/O edge: resolve, ask every address at once, collect what came back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use rampart_shared::status::human_duration;
use sntpc::{NtpContext, NtpUdpSocket};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use super::packet::{NTP_PACKET_LEN, check_answer, root_distance_ms};
use super::report::{AddrResult, ClockReport, QueryError, Sample};
use super::select::settled;
use super::stamp::{Arrival, Stamps};
use super::target::{Target, parse_target};

/// How long the round still waits for the other servers once a majority of
/// those asked has answered and agrees: one silent server must not hold the
/// check for the whole timeout.
pub const GRACE: Duration = Duration::from_millis(30);

/// One address's result: the server's position, the address's, the result.
type Found = (usize, usize, AddrResult);

/// Asks every address of every server concurrently and returns one result
/// per address, in the order the servers were given. The whole round,
/// name resolution included, ends within `timeout`: what has not answered by
/// then is recorded as timed out. It ends [`GRACE`] after a majority of the
/// servers agreed; a server that had not answered by then is recorded as
/// late.
pub async fn query_servers(servers: &[String], timeout: Duration) -> ClockReport {
    let started = Instant::now();
    let deadline = started + timeout;
    let (tx, mut rx) = mpsc::unbounded_channel::<Found>();
    let mut tasks = JoinSet::new();
    for (index, server) in servers.iter().enumerate() {
        let (server, tx) = (server.clone(), tx.clone());
        tasks.spawn(async move { query_server(index, server, timeout, deadline, &tx).await });
    }
    drop(tx);
    // Kept apart from their positions so `settled` reads them as they are.
    let mut results: Vec<AddrResult> = Vec::with_capacity(servers.len());
    let mut positions: Vec<(usize, usize)> = Vec::with_capacity(servers.len());
    let mut cut_off: Option<Instant> = None;
    loop {
        let grace = async {
            match cut_off {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = rx.recv() => match got {
                Some((server, addr, result)) => {
                    positions.push((server, addr));
                    results.push(result);
                    if cut_off.is_none() && settled(&results, servers.len()) {
                        cut_off = Some(Instant::now() + GRACE);
                    }
                }
                // Every server finished (answered, failed or timed out).
                None => break,
            },
            () = grace => break,
        }
    }
    tasks.abort_all();
    let after_ms = ms(started.elapsed());
    for (index, server) in servers.iter().enumerate() {
        if !positions.iter().any(|(i, _)| *i == index) {
            positions.push((index, 0));
            results.push(AddrResult {
                server: server.clone(),
                addr: None,
                outcome: Err(QueryError::Late { after_ms }),
            });
        }
    }
    let mut found: Vec<((usize, usize), AddrResult)> = positions.into_iter().zip(results).collect();
    found.sort_by_key(|(position, _)| *position);
    ClockReport {
        results: found.into_iter().map(|(_, r)| r).collect(),
    }
}

/// Resolves one server and asks each of its addresses, sending each result
/// as it comes.
async fn query_server(
    index: usize,
    server: String,
    timeout: Duration,
    deadline: Instant,
    tx: &mpsc::UnboundedSender<Found>,
) {
    let send = |addr_index, addr, outcome| {
        let result = AddrResult {
            server: server.clone(),
            addr,
            outcome,
        };
        // The round may have ended already; then nobody needs this one.
        let _ = tx.send((index, addr_index, result));
    };
    let addrs = match parse_target(&server) {
        Err(err) => return send(0, None, Err(QueryError::Dns(err.to_string()))),
        Ok(Target::Addr(addr)) => vec![addr],
        Ok(Target::Name { host, port }) => {
            match timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port))).await {
                Err(_) => {
                    let why = format!("no answer within {}", human_duration(ms(timeout)));
                    return send(0, None, Err(QueryError::Dns(why)));
                }
                Ok(Err(err)) => return send(0, None, Err(QueryError::Dns(err.to_string()))),
                Ok(Ok(found)) => {
                    let mut addrs: Vec<SocketAddr> = Vec::new();
                    for addr in found {
                        if !addrs.contains(&addr) {
                            addrs.push(addr);
                        }
                    }
                    if addrs.is_empty() {
                        let why = "the name has no addresses".to_owned();
                        return send(0, None, Err(QueryError::Dns(why)));
                    }
                    addrs
                }
            }
        }
    };
    tracing::debug!(%server, ?addrs, "querying time server");

    let mut tasks = JoinSet::new();
    for (addr_index, addr) in addrs.iter().copied().enumerate() {
        tasks.spawn(async move { (addr_index, addr, query_addr(addr, timeout, deadline).await) });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((addr_index, addr, outcome)) => send(addr_index, Some(addr), outcome),
            Err(err) => tracing::error!(%err, %server, "clock query task failed"),
        }
    }
}

async fn query_addr(
    addr: SocketAddr,
    timeout: Duration,
    deadline: Instant,
) -> Result<Sample, QueryError> {
    let timed_out = || QueryError::Timeout {
        after_ms: ms(timeout),
    };
    let socket = timeout_at(deadline, ConnectedSocket::open(addr))
        .await
        .map_err(|_| timed_out())??;
    let context = NtpContext::new(Stamps::new(&socket.arrival));
    let answer = timeout_at(deadline, sntpc::get_time(addr, &socket, context))
        .await
        .map_err(|_| timed_out())?;
    if let Err(sntpc::Error::Network) = answer {
        return Err(socket.take_error());
    }
    let sample = judge_answer(answer, &socket.last_answer())?;
    tracing::debug!(%addr, ?sample, "time server answered");
    Ok(sample)
}

/// What one exchange means: sntpc's verdict and the raw answer it read, to a
/// sample or the reason the answer does not count. Pure, so the fuzzer
/// (fuzz/fuzz_targets/sntp_answer.rs) drives it with sntpc on hostile bytes.
pub fn judge_answer(
    answer: sntpc::Result<sntpc::NtpResult>,
    raw: &[u8],
) -> Result<Sample, QueryError> {
    let result = answer.map_err(from_sntpc)?;
    check_answer(raw)?;
    Ok(Sample {
        // sntpc's offset is true time minus local time, in microseconds.
        offset_ms: -(result.offset() as f64) / 1000.0,
        rtt_ms: result.roundtrip() as f64 / 1000.0,
        root_distance_ms: root_distance_ms(raw),
        stratum: result.stratum(),
        leap_indicator: result.leap_indicator(),
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn from_sntpc(err: sntpc::Error) -> QueryError {
    use sntpc::Error as E;
    let bad = |why: &str| QueryError::BadPacket(why.to_owned());
    match err {
        E::KissOfDeath(code) => {
            // chronyd answers stratum 0 with a zero reference id while it is
            // unsynchronized: that is not a kiss, only kiss codes are ASCII.
            let code = code.as_str();
            if !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric()) {
                QueryError::KissOfDeath(code.to_owned())
            } else {
                QueryError::Unsynchronized
            }
        }
        E::UnsynchronizedClock | E::IncorrectStratumHeaders => QueryError::Unsynchronized,
        E::ExcessiveRootDistance => bad("the server is too far from its own reference clock"),
        E::IncorrectOriginTimestamp => bad("it does not answer our request"),
        E::IncorrectMode => bad("it is not a server reply"),
        E::InvalidTimestamp => bad("it carries no usable time"),
        E::BackwardReferenceTimestamp => bad("its reference time is later than its transmit time"),
        E::IncorrectResponseVersion => bad("unsupported NTP version"),
        E::IncorrectPayload => bad("the packet is too short"),
        E::ResponseAddressMismatch => bad("it came from another address"),
        E::AddressResolve => QueryError::Dns("address could not be resolved".into()),
        E::Network => QueryError::Io("send or receive failed".into()),
        other => QueryError::BadPacket(format!("{other:?}")),
    }
}

/// A UDP socket connected to one server, so that the kernel drops datagrams
/// from anyone else and reports ICMP port unreachable as "refused" at once
/// rather than after the timeout. sntpc's adapters (sntpc-net-tokio) map
/// every I/O error to `Error::Network`; this one keeps the cause, and the
/// raw answer for the checks sntpc does not make, and the kernel's stamp of
/// its arrival.
struct ConnectedSocket {
    socket: UdpSocket,
    last_error: Mutex<Option<io::Error>>,
    last_answer: Mutex<Vec<u8>>,
    arrival: Arrival,
}

impl ConnectedSocket {
    async fn open(addr: SocketAddr) -> Result<Self, QueryError> {
        // The family must match the server's: a v4 socket cannot reach ::1.
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| io_error(&e))?;
        socket.connect(addr).await.map_err(|e| io_error(&e))?;
        #[cfg(unix)]
        if let Err(err) = super::stamp::enable(&socket) {
            // Then the reading after the answer is the stamp, as before.
            tracing::debug!(%err, "no kernel receive timestamps");
        }
        Ok(Self {
            socket,
            last_error: Mutex::new(None),
            last_answer: Mutex::new(Vec::new()),
            arrival: Arrival::default(),
        })
    }

    fn remember(&self, err: io::Error) -> sntpc::Error {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(err);
        }
        sntpc::Error::Network
    }

    /// The bytes of the last datagram received (empty if none was).
    fn last_answer(&self) -> Vec<u8> {
        self.last_answer
            .lock()
            .map(|answer| answer.clone())
            .unwrap_or_default()
    }

    fn take_error(&self) -> QueryError {
        match self.last_error.lock().ok().and_then(|mut slot| slot.take()) {
            Some(err) => io_error(&err),
            None => QueryError::Io("send or receive failed".into()),
        }
    }
}

fn io_error(err: &io::Error) -> QueryError {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => QueryError::Refused,
        _ => QueryError::Io(err.to_string()),
    }
}

impl NtpUdpSocket for ConnectedSocket {
    async fn send_to(&self, buf: &[u8], _addr: SocketAddr) -> sntpc::Result<usize> {
        self.socket.send(buf).await.map_err(|e| self.remember(e))
    }

    async fn recv_from(&self, buf: &mut [u8]) -> sntpc::Result<(usize, SocketAddr)> {
        #[cfg(unix)]
        let (n, at) = self
            .socket
            // ERROR too, as tokio's own `recv`: an ICMP "port unreachable"
            // raises only EPOLLERR, and is "refused" at once.
            .async_io(
                tokio::io::Interest::READABLE | tokio::io::Interest::ERROR,
                || super::stamp::recv(&self.socket, buf),
            )
            .await
            .map_err(|e| self.remember(e))?;
        #[cfg(not(unix))]
        let (n, at) = (
            self.socket.recv(buf).await.map_err(|e| self.remember(e))?,
            None,
        );
        self.arrival.set(at);
        if let Ok(mut answer) = self.last_answer.lock() {
            answer.clear();
            answer.extend_from_slice(&buf[..n.min(buf.len()).min(NTP_PACKET_LEN)]);
        }
        let peer = self.socket.peer_addr().map_err(|e| self.remember(e))?;
        Ok((n, peer))
    }
}
