//! When the answer arrived: the kernel's receive timestamp, not the moment
//! this process got round to reading the datagram. On a loaded machine the
//! reading can wait milliseconds for a core, and each millisecond of waiting
//! moves the measured offset by half a millisecond (issue 18 saw 3 ms).
//! Unix kernels stamp datagrams on request (`SO_TIMESTAMP`); where that is
//! missing (Windows: its `SIO_TIMESTAMPING` needs Windows 11 and a capable
//! NIC driver), the time is read right after the datagram is, as before.

#[cfg(unix)]
use std::io;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use sntpc::NtpTimestampGenerator;

/// The arrival time of the last datagram (since the Unix epoch), kept for
/// the one reading that follows it, and when the request went out.
#[derive(Debug, Default)]
pub struct Arrival(Mutex<Readings>);

#[derive(Debug, Default)]
struct Readings {
    sent: Option<Duration>,
    arrived: Option<Duration>,
}

impl Arrival {
    pub fn set(&self, at: Option<Duration>) {
        if let Ok(mut readings) = self.0.lock() {
            readings.arrived = at;
        }
    }

    /// The time for sntpc's next reading, `now` being the clock's.
    fn reading(&self, now: Duration) -> Duration {
        let Ok(mut readings) = self.0.lock() else {
            return now;
        };
        match (readings.sent, readings.arrived.take()) {
            (Some(sent), Some(arrived)) => trusted_arrival(sent, arrived, now),
            (None, _) => {
                readings.sent = Some(now);
                now
            }
            (Some(_), None) => now,
        }
    }
}

/// The kernel's stamp if it lies between the send and now, as any arrival
/// must; else now. A stamp outside the exchange comes from another clock
/// than the one the process reads (libfaketime moves only the process's),
/// and mixing the two would halve the offset.
pub fn trusted_arrival(sent: Duration, arrived: Duration, now: Duration) -> Duration {
    if sent <= arrived && arrived <= now {
        arrived
    } else {
        now
    }
}

/// sntpc's clock for one exchange. sntpc reads it just before it sends the
/// request (T1) and just after `recv_from` returns (T4); for T4 it gives the
/// arrival time when the kernel recorded one.
#[derive(Debug, Clone, Copy)]
pub struct Stamps<'a> {
    arrival: &'a Arrival,
    now: Duration,
}

impl<'a> Stamps<'a> {
    pub fn new(arrival: &'a Arrival) -> Self {
        Self {
            arrival,
            now: Duration::ZERO,
        }
    }
}

impl NtpTimestampGenerator for Stamps<'_> {
    fn init(&mut self) {
        self.now = self.arrival.reading(since_epoch());
    }

    fn timestamp_sec(&self) -> u64 {
        self.now.as_secs()
    }

    fn timestamp_subsec_micros(&self) -> u32 {
        self.now.subsec_micros()
    }
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Asks the kernel to stamp every datagram this socket receives.
#[cfg(unix)]
pub fn enable(socket: &impl std::os::fd::AsFd) -> io::Result<()> {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::ReceiveTimestamp, &true)
        .map_err(io::Error::from)
}

/// One datagram and the kernel's stamp of its arrival, if it gave one.
/// Non-blocking like the socket: `WouldBlock` when nothing is waiting.
#[cfg(unix)]
pub fn recv(
    socket: &impl std::os::fd::AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, Option<Duration>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use nix::sys::time::{TimeVal, TimeValLike};

    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!(TimeVal);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    // A truncated control message only loses the stamp, not the answer.
    let stamp = msg.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestamp(at) => u64::try_from(at.num_microseconds())
                .ok()
                .map(Duration::from_micros),
            _ => None,
        })
    });
    Ok((msg.bytes, stamp))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A real datagram over loopback carries the kernel's stamp, taken
    /// before this test read it: sleeping before the read does not move it.
    /// Linux turns arrival stamping on a moment after the first socket asks
    /// (a deferred static key); until then it stamps at the read, which is
    /// what the process would read anyway. So the first datagrams may be
    /// stamped late; within a few tries one must be stamped on arrival.
    #[test]
    fn the_kernel_stamps_the_arrival_not_the_read() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        enable(&rx).unwrap();
        let mut seen = Vec::new();
        for _ in 0..20 {
            let before = since_epoch();
            tx.send_to(b"ntp", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let read_at = since_epoch();
            let mut buf = [0u8; 16];
            let (n, stamp) = recv(&rx, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"ntp");
            let stamp = stamp.expect("the kernel stamps the datagram");
            assert!(stamp + micros(1_000) >= before, "{stamp:?} {before:?}");
            if stamp < read_at {
                return;
            }
            seen.push((stamp, read_at));
        }
        panic!("every datagram was stamped when read, not on arrival: {seen:?}");
    }

    fn micros(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    fn read(stamps: &Stamps<'_>) -> Duration {
        Duration::new(
            stamps.timestamp_sec(),
            stamps.timestamp_subsec_micros() * 1000,
        )
    }

    #[test]
    fn the_arrival_counts_only_inside_the_exchange() {
        let (sent, now) = (micros(1_000), micros(9_000));
        assert_eq!(trusted_arrival(sent, micros(2_000), now), micros(2_000));
        assert_eq!(trusted_arrival(sent, sent, now), sent);
        // Before the send or after now: another clock's reading.
        assert_eq!(trusted_arrival(sent, micros(999), now), now);
        assert_eq!(trusted_arrival(sent, micros(9_001), now), now);
    }

    #[test]
    fn the_arrival_is_used_once_for_the_reading_after_the_answer() {
        let arrival = Arrival::default();
        let mut stamps = Stamps::new(&arrival);
        stamps.init(); // T1: the request goes out
        let arrived = read(&stamps) + micros(1);
        std::thread::sleep(Duration::from_millis(2));
        arrival.set(Some(arrived));
        stamps.init(); // T4
        assert_eq!(read(&stamps), arrived);
        // Used up: the next reading is the clock's again.
        stamps.init();
        assert!(read(&stamps) > arrived + micros(1_000));
    }
}
