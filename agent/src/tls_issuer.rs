//! Who issued a certificate this computer refused: the name a person can
//! give IT ("issued by Corp Proxy CA" points at a TLS-inspecting proxy at
//! once). Asked only after the real connection refused the certificate: a
//! second handshake records the server's certificate and aborts before
//! anything is sent, so nothing is ever trusted here. [`issuer_name`] is
//! pure and reads just enough DER for the issuer's common name or
//! organization.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// The issuer named in the certificate `host` presents at `addr`, or
/// `None` when the handshake does not get that far or the name cannot be
/// read. Blocking: run it off the event loop.
pub fn presented_issuer(host: &str, addr: SocketAddr, timeout: Duration) -> Option<String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        seen: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).ok()?;
    let mut conn = ClientConnection::new(Arc::new(config), name).ok()?;
    let mut socket = TcpStream::connect_timeout(&addr, timeout).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    socket.set_write_timeout(Some(timeout)).ok()?;
    // Ends with the recorder's refusal (or any failure): the certificate,
    // if one came, is recorded by then.
    while conn.is_handshaking() {
        if conn.complete_io(&mut socket).is_err() {
            break;
        }
    }
    let der = recorder.seen.lock().ok()?.take()?;
    issuer_name(&der)
}

/// Records the server's certificate and refuses it.
#[derive(Debug)]
struct Recorder {
    seen: Mutex<Option<Vec<u8>>>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(end_entity.to_vec());
        }
        Err(rustls::Error::General("recorded, never trusted".into()))
    }

    // Never reached: the handshake stops at the certificate.
    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not verified here".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("not verified here".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// One DER element: its tag, its content, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];

/// The issuer's common name, else its organization, from a DER X.509
/// certificate.
pub fn issuer_name(der: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // [0] version (optional), serial number, signature algorithm.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    let (_, _, after_serial) = element(rest)?;
    let (_, _, after_algorithm) = element(after_serial)?;
    let (SEQUENCE, mut issuer, _) = element(after_algorithm)? else {
        return None;
    };
    let (mut common, mut organization) = (None, None);
    while !issuer.is_empty() {
        let (SET, mut set, next) = element(issuer)? else {
            return None;
        };
        issuer = next;
        while !set.is_empty() {
            let (SEQUENCE, pair, next) = element(set)? else {
                return None;
            };
            set = next;
            let (OID, oid, value) = element(pair)? else {
                return None;
            };
            let (tag, text, _) = element(value)?;
            // UTF8String, PrintableString, T61String, IA5String.
            let text = matches!(tag, 0x0c | 0x13 | 0x14 | 0x16)
                .then(|| String::from_utf8_lossy(text).into_owned());
            match oid {
                COMMON_NAME => common = common.or(text),
                ORGANIZATION => organization = organization.or(text),
                _ => {}
            }
        }
    }
    common.or(organization).filter(|n| !n.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate's DER up to its issuer, built by hand: version,
    /// serial, algorithm, then an issuer of O=Corp, CN=Corp Proxy CA.
    fn cert(issuer: &[u8]) -> Vec<u8> {
        fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if content.len() < 0x80 {
                out.push(content.len() as u8);
            } else {
                out.extend([0x81, content.len() as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let mut tbs = wrap(0xa0, &wrap(0x02, &[2]));
        tbs.extend(wrap(0x02, &[1, 2, 3]));
        tbs.extend(wrap(SEQUENCE, &wrap(OID, &[0x2a, 0x86, 0x48])));
        tbs.extend(wrap(SEQUENCE, issuer));
        wrap(SEQUENCE, &wrap(SEQUENCE, &tbs))
    }

    fn rdn(oid: &[u8], tag: u8, value: &str) -> Vec<u8> {
        let mut pair = vec![OID, oid.len() as u8];
        pair.extend_from_slice(oid);
        pair.extend([tag, value.len() as u8]);
        pair.extend_from_slice(value.as_bytes());
        let mut seq = vec![SEQUENCE, pair.len() as u8];
        seq.extend(pair);
        let mut set = vec![SET, seq.len() as u8];
        set.extend(seq);
        set
    }

    #[test]
    fn the_common_name_else_the_organization() {
        let mut both = rdn(ORGANIZATION, 0x13, "Corp");
        both.extend(rdn(COMMON_NAME, 0x0c, "Corp Proxy CA"));
        assert_eq!(issuer_name(&cert(&both)).as_deref(), Some("Corp Proxy CA"));
        let org = rdn(ORGANIZATION, 0x13, "Corp");
        assert_eq!(issuer_name(&cert(&org)).as_deref(), Some("Corp"));
        assert_eq!(issuer_name(&cert(&[])), None);
    }

    #[test]
    fn truncated_or_garbage_der_is_none_not_a_panic() {
        let mut both = rdn(ORGANIZATION, 0x13, "Corp");
        both.extend(rdn(COMMON_NAME, 0x0c, "Corp Proxy CA"));
        let good = cert(&both);
        for cut in 0..good.len() {
            assert_eq!(issuer_name(&good[..cut]), None, "cut at {cut}");
        }
        assert_eq!(issuer_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(issuer_name(b""), None);
    }
}
