//! A real `chronyd` serving time on loopback, optionally with a skewed clock
//! through libfaketime. It never touches the system clock (`-x`).
//!
//! ```ignore
//! let Some(server) = Chronyd::start(Ipv4Addr::LOCALHOST.into(), Some("+300s")) else { return };
//! // query server.server(): it answers 300 s ahead of this machine
//! ```

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{real_peer, real_servers_required, short_tempdir};

/// How long a fresh chronyd may take to answer its first query.
const READY_WITHIN: Duration = Duration::from_secs(10);

pub struct Chronyd {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Chronyd {
    /// Starts chronyd on `ip` and a free port, its clock shifted by `faketime`
    /// (libfaketime syntax: `"+300s"`, `"-90s"`), and waits until it answers.
    /// `None`: chronyd or libfaketime is missing and the test is skipped.
    pub fn start(ip: IpAddr, faketime: Option<&str>) -> Option<Self> {
        Self::start_on(SocketAddr::new(ip, free_udp_port(ip)), faketime)
    }

    /// As [`Chronyd::start`], on a given address (port 123 needs root).
    pub fn start_on(addr: SocketAddr, faketime: Option<&str>) -> Option<Self> {
        let chronyd = real_peer("chronyd", "chrony")?;
        let preload = match faketime {
            Some(_) => Some(libfaketime()?),
            None => None,
        };
        let dir = short_tempdir();
        let conf = dir.path().join("chrony.conf");
        let allow = match addr.ip() {
            IpAddr::V4(_) => "127.0.0.0/8",
            IpAddr::V6(_) => "::1",
        };
        let config = format!(
            "port {port}\nbindaddress {ip}\nallow {allow}\nlocal stratum 8\ncmdport 0\n\
             pidfile {dir}/chronyd.pid\ndriftfile {dir}/drift\n",
            port = addr.port(),
            ip = addr.ip(),
            dir = dir.path().display(),
        );
        std::fs::write(&conf, config).expect("write chrony.conf");
        let log = File::create(dir.path().join("chronyd.log")).expect("create chronyd.log");

        let mut cmd = Command::new(chronyd);
        // -x: never touch the system clock; -d: foreground, log to stderr;
        // -4/-6: only the family asked for, so an [::1] test cannot pass on v4.
        cmd.args(["-x", "-d", "-u", "root"])
            .arg(if addr.is_ipv4() { "-4" } else { "-6" })
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        if let (Some(preload), Some(shift)) = (preload, faketime) {
            // chronyd neither forks (-d) nor execs, so FAKETIME_DONT_RESET and
            // friends are not needed: the offset applies from the first call.
            cmd.env("LD_PRELOAD", preload).env("FAKETIME", shift);
        }
        let child = cmd.spawn().expect("spawn chronyd");
        let mut server = Self { child, addr, dir };
        server.wait_until_ready();
        Some(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as a `--server` argument: `127.0.0.1:4123`, `[::1]:4123`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chronyd.log")).unwrap_or_default()
    }

    fn wait_until_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll chronyd") {
                panic!("chronyd exited early ({status}):\n{}", self.log());
            }
            match sntp_query(self.addr, Duration::from_millis(100)) {
                Ok(answer) if answer.leap_indicator != 3 => return,
                _ if start.elapsed() > READY_WITHIN => {
                    panic!(
                        "chronyd on {} did not answer within {READY_WITHIN:?}:\n{}",
                        self.addr,
                        self.log()
                    )
                }
                // Not bound yet (refused) or not synchronized yet: ask again.
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `libfaketime.so.1`, or `None` with the same skip/fail rule as [`real_peer`].
pub fn libfaketime() -> Option<PathBuf> {
    let candidates = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .chain([PathBuf::from("/usr/lib/faketime/libfaketime.so.1")]);
    let found = candidates.into_iter().find(|p| p.is_file());
    if found.is_none() {
        let msg = "libfaketime.so.1 not found: install the Debian package `libfaketime`";
        assert!(
            !real_servers_required(),
            "RAMPART_REQUIRE_REAL_SERVERS=1 and {msg}"
        );
        eprintln!("\n!!!! SKIPPED: {msg} !!!!\n");
    }
    found
}

/// A UDP port that was free a moment ago on `ip`.
pub fn free_udp_port(ip: IpAddr) -> u16 {
    let socket = UdpSocket::bind((ip, 0)).expect("bind a UDP port");
    socket.local_addr().expect("local address").port()
}

/// The harness's own minimal SNTP client, independent of the code under test:
/// used to see that a server is up, and as a second opinion.
#[derive(Debug, Clone, Copy)]
pub struct SntpAnswer {
    pub leap_indicator: u8,
    pub stratum: u8,
    /// Server time minus local time, in seconds (RFC 5905 θ).
    pub theta: f64,
}

pub fn sntp_query(addr: SocketAddr, timeout: Duration) -> io::Result<SntpAnswer> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr)?;
    socket.set_read_timeout(Some(timeout))?;
    let mut request = [0u8; 48];
    request[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let t1 = now_ntp();
    request[40..48].copy_from_slice(&t1.to_be_bytes());
    socket.send(&request)?;
    let mut reply = [0u8; 128];
    let n = socket.recv(&mut reply)?;
    let t4 = now_ntp();
    if n < 48 || reply[24..32] != request[40..48] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an answer to our request",
        ));
    }
    let ts = |at: usize| u64::from_be_bytes(reply[at..at + 8].try_into().expect("8 bytes"));
    let secs = |t: u64| (t >> 32) as f64 + (t & 0xffff_ffff) as f64 / 4_294_967_296.0;
    let (t1, t2, t3, t4) = (secs(t1), secs(ts(32)), secs(ts(40)), secs(t4));
    Ok(SntpAnswer {
        leap_indicator: reply[0] >> 6,
        stratum: reply[1],
        theta: ((t2 - t1) + (t3 - t4)) / 2.0,
    })
}

/// Now as a 64-bit NTP timestamp (seconds since 1900 in the high half).
pub fn now_ntp() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    let secs = since.as_secs() + 2_208_988_800;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}
