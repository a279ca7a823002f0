//! The I/O edge: resolve, ask every address at once, collect what came back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use rampart_shared::status::human_duration;
use sntpc::{NtpContext, NtpUdpSocket, StdTimestampGen};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use super::packet::{NTP_PACKET_LEN, check_answer};
use super::report::{AddrResult, ClockReport, QueryError, Sample};
use super::target::{Target, parse_target};

/// Asks every address of every server concurrently and returns one result
/// per address, in the order the servers were given. The whole round,
/// name resolution included, ends within `timeout`: what has not answered by
/// then is recorded as timed out.
pub async fn query_servers(servers: &[String], timeout: Duration) -> ClockReport {
    let deadline = Instant::now() + timeout;
    let mut tasks = JoinSet::new();
    for (index, server) in servers.iter().enumerate() {
        let server = server.clone();
        tasks.spawn(async move { (index, query_server(server, timeout, deadline).await) });
    }
    let mut per_server: Vec<(usize, Vec<AddrResult>)> = Vec::with_capacity(servers.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => per_server.push(done),
            // A panicking query is a bug; the other servers still count.
            Err(err) => tracing::error!(%err, "clock query task failed"),
        }
    }
    per_server.sort_by_key(|(index, _)| *index);
    ClockReport {
        results: per_server.into_iter().flat_map(|(_, r)| r).collect(),
    }
}

async fn query_server(server: String, timeout: Duration, deadline: Instant) -> Vec<AddrResult> {
    let failed = |error| {
        vec![AddrResult {
            server: server.clone(),
            addr: None,
            outcome: Err(error),
        }]
    };
    let addrs = match parse_target(&server) {
        Err(err) => return failed(QueryError::Dns(err.to_string())),
        Ok(Target::Addr(addr)) => vec![addr],
        Ok(Target::Name { host, port }) => {
            match timeout_at(deadline, tokio::net::lookup_host((host.as_str(), port))).await {
                Err(_) => {
                    return failed(QueryError::Dns(format!(
                        "no answer within {}",
                        human_duration(ms(timeout))
                    )));
                }
                Ok(Err(err)) => return failed(QueryError::Dns(err.to_string())),
                Ok(Ok(found)) => {
                    let mut addrs: Vec<SocketAddr> = Vec::new();
                    for addr in found {
                        if !addrs.contains(&addr) {
                            addrs.push(addr);
                        }
                    }
                    if addrs.is_empty() {
                        return failed(QueryError::Dns("the name has no addresses".into()));
                    }
                    addrs
                }
            }
        }
    };
    tracing::debug!(%server, ?addrs, "querying time server");

    let mut tasks = JoinSet::new();
    for (index, addr) in addrs.iter().copied().enumerate() {
        tasks.spawn(async move { (index, addr, query_addr(addr, timeout, deadline).await) });
    }
    let mut results: Vec<(usize, AddrResult)> = Vec::with_capacity(addrs.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, addr, outcome)) => results.push((
                index,
                AddrResult {
                    server: server.clone(),
                    addr: Some(addr),
                    outcome,
                },
            )),
            Err(err) => tracing::error!(%err, %server, "clock query task failed"),
        }
    }
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, r)| r).collect()
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
    let context = NtpContext::new(StdTimestampGen::default());
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
/// raw answer for the checks sntpc does not make.
struct ConnectedSocket {
    socket: UdpSocket,
    last_error: Mutex<Option<io::Error>>,
    last_answer: Mutex<Vec<u8>>,
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
        Ok(Self {
            socket,
            last_error: Mutex::new(None),
            last_answer: Mutex::new(Vec::new()),
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
        let n = self.socket.recv(buf).await.map_err(|e| self.remember(e))?;
        if let Ok(mut answer) = self.last_answer.lock() {
            answer.clear();
            answer.extend_from_slice(&buf[..n.min(buf.len()).min(NTP_PACKET_LEN)]);
        }
        let peer = self.socket.peer_addr().map_err(|e| self.remember(e))?;
        Ok((n, peer))
    }
}
