//! Which links Rampart will ever hand to a browser, and where NTP servers are.
//!
//! Only `https` links are opened: a policy is signed, but a link is still the
//! easiest place to smuggle a `file:`, `javascript:` or custom-scheme URL past a
//! reviewer, so the check is strict and shared by the policy validator and the
//! app.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LinkError {
    #[error("must start with https:// (only https links are opened in the browser)")]
    NotHttps,
    #[error("has no host after https://")]
    NoHost,
    #[error("host \"{0}\" contains characters a host name cannot have")]
    BadHost(String),
    #[error("contains whitespace or control characters")]
    BadCharacter,
    #[error("is longer than {MAX_LINK_LEN} characters")]
    TooLong,
}

pub const MAX_LINK_LEN: usize = 2048;

/// Accepts `https://host[:port][/path][?query][#fragment]` with a DNS name, an
/// IPv4 address or a bracketed IPv6 address as the host; no user info.
pub fn check_https_link(link: &str) -> Result<(), LinkError> {
    if link.len() > MAX_LINK_LEN {
        return Err(LinkError::TooLong);
    }
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LinkError::BadCharacter);
    }
    let rest = strip_prefix_ignore_case(link, "https://").ok_or(LinkError::NotHttps)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(LinkError::NoHost);
    }
    if authority.contains('@') {
        return Err(LinkError::BadHost(authority.to_owned()));
    }
    let (host, port) =
        split_host_port(authority).ok_or(LinkError::BadHost(authority.to_owned()))?;
    if host.is_empty() {
        return Err(LinkError::NoHost);
    }
    if port.is_some_and(|p| p == 0) || !is_host(host) {
        return Err(LinkError::BadHost(authority.to_owned()));
    }
    Ok(())
}

/// A URL the agent sends reports to (never opened in a browser):
/// `https://`, or `http://` to a loopback address (127.0.0.0/8, `[::1]`,
/// `localhost`), the same exception the policy fetcher makes, so that a
/// collector on the same machine (a local log shipper, or a test) can take
/// reports. Everything else must be https.
pub fn check_report_url(url: &str) -> Result<(), LinkError> {
    if let Some(rest) = strip_prefix_ignore_case(url, "http://") {
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(LinkError::BadCharacter);
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = split_host_port(authority).map(|(h, _)| h);
        let loopback = host.is_some_and(|h| {
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        return if loopback && !authority.contains('@') {
            Ok(())
        } else {
            Err(LinkError::NotHttps)
        };
    }
    check_https_link(url)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`. Returns the host without
/// brackets. `None` when the port is not a number in 0..=65535 or brackets
/// do not match.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        if !host.contains(':') {
            return None;
        }
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(parse_port(after.strip_prefix(':')?)?))),
        };
    }
    match authority.matches(':').count() {
        0 => Some((authority, None)),
        // A bare IPv6 address (several colons, no brackets) has no port.
        1 => {
            let (host, port) = authority.split_once(':')?;
            Some((host, Some(parse_port(port)?)))
        }
        _ => Some((authority, None)),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A DNS name, an IPv4 address, or an IPv6 address (as found inside brackets).
pub fn is_host(host: &str) -> bool {
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Why an NTP server entry is refused. Each variant carries the whole entry,
/// which the words quote: the policy validator shows them under the entry's
/// JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NtpServerError {
    #[error("\"{0}\" is not host or host:port")]
    NotHostPort(String),
    #[error("\"{0}\" has port 0")]
    PortZero(String),
    #[error("\"{0}\" is not a valid host name or address")]
    BadHost(String),
}

/// Checks one NTP server entry: `host`, `host:port`, `v6`, or `[v6]:port`.
pub fn check_ntp_server(entry: &str) -> Result<(), NtpServerError> {
    let (host, port) =
        split_host_port(entry).ok_or_else(|| NtpServerError::NotHostPort(entry.to_owned()))?;
    if port == Some(0) {
        return Err(NtpServerError::PortZero(entry.to_owned()));
    }
    if !is_host(host) {
        return Err(NtpServerError::BadHost(entry.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_https_links() {
        for ok in [
            "https://example.com",
            "https://example.com/",
            "HTTPS://Example.com/guide?x=1#top",
            "https://support.example.com:8443/new-ticket",
            "https://127.0.0.1/x",
            "https://[::1]:8443/x",
        ] {
            assert_eq!(check_https_link(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_a_browser_should_not_be_handed() {
        let cases = [
            ("http://example.com", LinkError::NotHttps),
            ("file:///etc/passwd", LinkError::NotHttps),
            ("javascript:alert(1)", LinkError::NotHttps),
            ("https://", LinkError::NoHost),
            ("https:///path", LinkError::NoHost),
            (
                "https://user@evil.example",
                LinkError::BadHost("user@evil.example".into()),
            ),
            ("https://exa mple.com", LinkError::BadCharacter),
            ("https://example.com/\n", LinkError::BadCharacter),
            (
                "https://ex_ample.com",
                LinkError::BadHost("ex_ample.com".into()),
            ),
            (
                "https://example.com:0/",
                LinkError::BadHost("example.com:0".into()),
            ),
            (
                "https://example.com:99999/",
                LinkError::BadHost("example.com:99999".into()),
            ),
            ("https://[zz::1]/", LinkError::BadHost("[zz::1]".into())),
        ];
        for (link, want) in cases {
            assert_eq!(check_https_link(link), Err(want), "{link}");
        }
        assert_eq!(
            check_https_link(&format!("https://example.com/{}", "a".repeat(3000))),
            Err(LinkError::TooLong)
        );
    }

    #[test]
    fn ntp_server_entries() {
        for ok in [
            "pool.ntp.org",
            "time.example.com:123",
            "127.0.0.1:11123",
            "::1",
            "[::1]:11123",
        ] {
            assert_eq!(check_ntp_server(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "pool ntp",
            "host:",
            "host:0",
            "host:x",
            "[::1",
            "-bad-.example",
        ] {
            assert!(check_ntp_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn report_urls_allow_plain_http_only_to_loopback() {
        for ok in [
            "https://reports.example.com/rampart",
            "http://127.0.0.1:8080/r",
            "http://[::1]:9/r",
            "http://localhost/r",
        ] {
            assert_eq!(check_report_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://reports.example.com/r",
            "http://10.0.0.1/r",
            "http://127.0.0.1@evil.example/r",
            "ftp://127.0.0.1/r",
        ] {
            assert!(check_report_url(bad).is_err(), "{bad}");
        }
    }
}
