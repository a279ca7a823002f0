//! Parsing a configured time server (`host`, `host:port`, `::1`, `[v6]:port`).

use std::net::{IpAddr, SocketAddr};

pub const NTP_PORT: u16 = 123;

/// What a server string names: an address to query at once, or a name to
/// resolve first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    Name { host: String, port: u16 },
}

/// Why a server string is not usable; the message is shown to people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

pub fn parse_target(server: &str) -> Result<Target, TargetError> {
    let s = server.trim();
    if s.is_empty() {
        return Err(TargetError("empty server name".into()));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Target::Addr(addr));
    }
    // A bare IPv6 address: its colons are not a port separator.
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(Target::Addr(SocketAddr::new(ip, NTP_PORT)));
    }
    if let Some(inner) = s.strip_prefix('[') {
        // `[v6]` without a port; `[v6]:port` was handled by SocketAddr above.
        return match inner.strip_suffix(']').map(str::parse::<IpAddr>) {
            Some(Ok(ip)) => Ok(Target::Addr(SocketAddr::new(ip, NTP_PORT))),
            _ => Err(TargetError(format!("`{s}` is not a valid [IPv6]:port"))),
        };
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| TargetError(format!("`{port}` in `{s}` is not a port number")))?;
            (host, port)
        }
        None => (s, NTP_PORT),
    };
    if host.is_empty() || host.contains(':') || host.contains(char::is_whitespace) {
        return Err(TargetError(format!("`{s}` is not a host name or address")));
    }
    Ok(Target::Name {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Target {
        Target::Addr(s.parse().unwrap())
    }

    fn name(host: &str, port: u16) -> Target {
        Target::Name {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("127.0.0.1", addr("127.0.0.1:123")),
            ("127.0.0.1:9", addr("127.0.0.1:9")),
            ("::1", addr("[::1]:123")),
            ("fe80::1", addr("[fe80::1]:123")),
            ("[::1]", addr("[::1]:123")),
            ("[::1]:10123", addr("[::1]:10123")),
            ("time.apple.com", name("time.apple.com", 123)),
            ("pool.ntp.org:4123", name("pool.ntp.org", 4123)),
            ("  localhost ", name("localhost", 123)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_target(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejected_forms() {
        for input in [
            "",
            "  ",
            "host:",
            "host:0",
            "host:70000",
            "host:abc",
            "[::1",
            "[nope]:1",
            ":123",
            "a b",
        ] {
            assert!(parse_target(input).is_err(), "{input:?} was accepted");
        }
    }
}
