//! The support bundle's pure parts: the secret scan and the archive.
//!
//! Secrets stay out of the bundle twice over. By construction: the bundle
//! is made of the status, doctor's report, the policy in force, the install
//! config, logs and OS facts; none of their types can hold a TOTP secret
//! (`totp::Secret` and `mfa::Enrollment` implement no `Serialize`; the
//! recovery codes exist at rest only as Argon2id hashes; the logs never carry
//! either, see ARCHITECTURE.md). And by a final scan: every secret the
//! device knows is looked for in the assembled archive bytes in each form it
//! could take, and the archive is refused if one is found.

use std::io::{Read, Write};

use rampart_shared::totp::Secret;

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive.
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A secret to look for, with a label for the refusal (never the secret).
#[derive(Clone)]
pub struct Needle {
    pub label: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Needle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Needle")
            .field("label", &self.label)
            .field("bytes", &"***")
            .finish()
    }
}

/// Shorter needles would match by chance; no real secret is this short.
const MIN_NEEDLE: usize = 8;

/// Every form a TOTP secret could take in text or bytes: raw, base32 (upper,
/// lower, grouped in fours as the app shows it) and hex.
pub fn totp_needles(label: &str, secret: &Secret) -> Vec<Needle> {
    let b32 = secret.to_base32();
    let hex: String = secret.expose().iter().map(|b| format!("{b:02x}")).collect();
    let forms = [
        ("raw", secret.expose().to_vec()),
        ("base32", b32.clone().into_bytes()),
        ("base32, lower case", b32.to_ascii_lowercase().into_bytes()),
        ("base32, grouped", secret.to_grouped().into_bytes()),
        ("hex", hex.clone().into_bytes()),
        ("hex, upper case", hex.to_ascii_uppercase().into_bytes()),
    ];
    forms
        .into_iter()
        .filter(|(_, b)| b.len() >= MIN_NEEDLE)
        .map(|(form, bytes)| Needle {
            label: format!("{label} ({form})"),
            bytes,
        })
        .collect()
}

/// A secret held as text (a Duo secret key file): as is and trimmed.
pub fn text_needles(label: &str, text: &[u8]) -> Vec<Needle> {
    let trimmed = text.trim_ascii();
    let mut out = Vec::new();
    if trimmed.len() >= MIN_NEEDLE {
        out.push(Needle {
            label: label.to_owned(),
            bytes: trimmed.to_vec(),
        });
    }
    out
}

/// The first needle found in `haystack`.
pub fn find_secret<'n>(haystack: &[u8], needles: &'n [Needle]) -> Option<&'n Needle> {
    needles.iter().find(|n| {
        !n.bytes.is_empty()
            && haystack
                .windows(n.bytes.len())
                .any(|w| w == n.bytes.as_slice())
    })
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "refusing to write the bundle: it would contain a secret ({0}); nothing was written. Please report this as a bug"
    )]
    SecretFound(String),
    #[error("cannot build the archive: {0}")]
    Archive(#[from] std::io::Error),
}

/// The tar of `entries`, scanned; then gzipped. Errors if any needle is in
/// any entry or in the tar stream itself.
pub fn build_archive(
    entries: &[Entry],
    needles: &[Needle],
    mtime: u64,
) -> Result<Vec<u8>, BundleError> {
    for entry in entries {
        if let Some(n) = find_secret(&entry.bytes, needles) {
            return Err(BundleError::SecretFound(format!(
                "{} in {}",
                n.label, entry.name
            )));
        }
    }
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &entry.name, entry.bytes.as_slice())?;
    }
    let tar_bytes = tar.into_inner()?;
    if let Some(n) = find_secret(&tar_bytes, needles) {
        return Err(BundleError::SecretFound(format!(
            "{} in the archive",
            n.label
        )));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes)?;
    Ok(gz.finish()?)
}

/// Reads a bundle back: each entry's name and bytes, in archive order. The
/// inverse of [`build_archive`], public so that this module's tests and the
/// end-to-end test of `rampart-agent diagnose` read bundles with one
/// unpacker, not two that could disagree about what a bundle holds.
pub fn read_archive(gz: impl Read) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gz));
    archive
        .entries()?
        .map(|entry| {
            let mut entry = entry?;
            let name = entry.path()?.display().to_string();
            let mut body = Vec::new();
            entry.read_to_end(&mut body)?;
            Ok((name, body))
        })
        .collect()
}

/// The last `max` bytes of `bytes`, starting at a line boundary when one
/// is near.
pub fn tail(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let start = bytes.len() - max;
    let cut = &bytes[start..];
    match cut.iter().position(|&b| b == b'\n') {
        Some(nl) if nl + 1 < cut.len() => &cut[nl + 1..],
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes((1..=20).collect())
    }

    #[test]
    fn a_clean_bundle_round_trips() {
        let entries = vec![
            Entry {
                name: "status.json".into(),
                bytes: b"{}".to_vec(),
            },
            Entry {
                name: "logs/agent.log".into(),
                bytes: b"line\n".to_vec(),
            },
        ];
        let gz = build_archive(&entries, &totp_needles("TOTP secret", &secret()), 0).unwrap();
        let files = read_archive(gz.as_slice()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0], ("status.json".into(), b"{}".to_vec()));
        assert_eq!(files[1].0, "logs/agent.log");
    }

    #[test]
    fn every_form_of_a_planted_secret_is_refused() {
        let s = secret();
        let needles = totp_needles("TOTP secret of uid 1000", &s);
        let b32 = s.to_base32();
        let hex: String = s.expose().iter().map(|b| format!("{b:02x}")).collect();
        let plants: Vec<Vec<u8>> = vec![
            format!("log: secret={b32} oops").into_bytes(),
            b32.to_ascii_lowercase().into_bytes(),
            s.to_grouped().into_bytes(),
            [b"x".as_slice(), s.expose(), b"y"].concat(),
            hex.clone().into_bytes(),
            hex.to_ascii_uppercase().into_bytes(),
        ];
        for plant in plants {
            let entries = vec![Entry {
                name: "logs/agent.log".into(),
                bytes: plant.clone(),
            }];
            let err = build_archive(&entries, &needles, 0).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("TOTP secret of uid 1000"), "{text}");
            assert!(text.contains("logs/agent.log"), "{text}");
            assert!(!text.contains(&b32), "the refusal never shows the secret");
        }
    }

    #[test]
    fn a_duo_key_file_is_scanned_for_trimmed() {
        let needles = text_needles("Duo secret key", b"  s3cr3tDuoKeyValue1234\n");
        let entries = vec![Entry {
            name: "policy.json".into(),
            bytes: b"{\"k\": \"s3cr3tDuoKeyValue1234\"}".to_vec(),
        }];
        assert!(matches!(
            build_archive(&entries, &needles, 0),
            Err(BundleError::SecretFound(_))
        ));
        assert!(text_needles("short", b"abc").is_empty());
    }

    #[test]
    fn tails_start_at_a_line() {
        assert_eq!(tail(b"abc", 10), b"abc");
        assert_eq!(tail(b"one\ntwo\nthree\n", 8), b"three\n");
        assert_eq!(tail(b"abcdefgh", 3), b"fgh");
    }
}
