//! The deployment secret a device sends with each report
//! (`Authorization: Bearer …`), read from the file the install config names
//! (`report_secret_file`). A file of its own rather than a field of
//! `agent.json`: `doctor` and `diagnose` read the install config as an
//! ordinary user, so that file stays world-readable; the secret's file is
//! the service's alone (0600, or SYSTEM and Administrators on Windows).
//!
//! The secret is held only here and in the request header (marked
//! sensitive); its `Debug` is redacted and no error message carries it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rampart_shared::status::CredentialError;
use zeroize::Zeroizing;

use crate::fsutil::FsError;

/// Shorter secrets are guessable and would match by chance in the support
/// bundle's secret scan.
pub const MIN_SECRET_LEN: usize = 16;
/// Longer is a wrong file, not a secret.
pub const MAX_SECRET_LEN: usize = 4096;

/// Why the deployment secret cannot be used. No variant holds the secret
/// or any part of it: these words reach the status, the log and `doctor`.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "the deployment secret is {0} characters long; it needs at least {MIN_SECRET_LEN} \
         (generate one with `openssl rand -hex 32`)"
    )]
    TooShort(usize),
    #[error(
        "the deployment secret is longer than {MAX_SECRET_LEN} characters; is this the right file?"
    )]
    TooLong,
    #[error(
        "the deployment secret may hold only letters, digits and - . _ ~ + / (then = at the end); \
         generate one with `openssl rand -hex 32`"
    )]
    NotAToken,
    // The OS's words are part of the messages below, so they are not also a
    // `source`: an error chain would say them twice.
    /// The file's metadata cannot be read (most often: there is no file).
    #[error(
        "the deployment secret file {path} cannot be read ({error}); ask IT to reinstall Rampart with the deployment secret"
    )]
    Unreadable { path: PathBuf, error: io::Error },
    #[error(
        "the deployment secret file {path} can be read by other users (mode {mode:03o}); \
         run `chmod 600 {path}` as an administrator"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("the deployment secret file {path} cannot be read ({error})")]
    Read { path: PathBuf, error: FsError },
    #[error(
        "the deployment secret file {path} is missing; ask IT to reinstall Rampart with the deployment secret"
    )]
    Missing { path: PathBuf },
    #[error("the deployment secret file {path} is not text")]
    NotText { path: PathBuf },
    /// The file's text is not a usable secret.
    #[error("{path}: {error}")]
    InFile {
        path: PathBuf,
        error: Box<SecretError>,
    },
    #[error("the deployment secret cannot be sent in a header")]
    NotAHeader,
}

/// The deployment secret, checked. Cheap to clone.
#[derive(Clone)]
pub struct ReportSecret(std::sync::Arc<Zeroizing<String>>);

impl fmt::Debug for ReportSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportSecret(***)")
    }
}

impl ReportSecret {
    /// Checks a secret as read from its file or given to the installer:
    /// surrounding whitespace is dropped; what remains must be a bearer
    /// token (RFC 6750 `b64token`: letters, digits and `-._~+/`, then `=`
    /// padding), so that it travels in the header unchanged. Errors never
    /// quote the secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let secret = text.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(secret.len()));
        }
        if secret.len() > MAX_SECRET_LEN {
            return Err(SecretError::TooLong);
        }
        let body = secret.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(SecretError::NotAToken);
        }
        Ok(Self(std::sync::Arc::new(Zeroizing::new(secret.to_owned()))))
    }

    /// Reads and checks the secret file. On Unix the file must be readable
    /// by its owner alone: anyone who reads it can report for any device.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let path_buf = || path.to_owned();
        let metadata = std::fs::metadata(path).map_err(|error| SecretError::Unreadable {
            path: path_buf(),
            error,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(SecretError::TooOpen {
                    path: path_buf(),
                    mode: mode & 0o777,
                });
            }
        }
        #[cfg(not(unix))]
        let _ = metadata;
        let bytes = crate::fsutil::read_capped(path, MAX_SECRET_LEN as u64 + 64)
            .map_err(|error| SecretError::Read {
                path: path_buf(),
                error,
            })?
            .ok_or_else(|| SecretError::Missing { path: path_buf() })?;
        let bytes = Zeroizing::new(bytes);
        let text =
            std::str::from_utf8(&bytes).map_err(|_| SecretError::NotText { path: path_buf() })?;
        Self::parse(text).map_err(|error| SecretError::InFile {
            path: path_buf(),
            error: Box::new(error),
        })
    }

    /// The `Authorization` header value, marked sensitive so that reqwest
    /// and hyper never show it.
    pub fn header(&self) -> Result<reqwest::header::HeaderValue, SecretError> {
        // The header error is dropped: it could only ever describe the secret.
        let mut value =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.expose()))
                .map_err(|_| SecretError::NotAHeader)?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The secret itself: for the header and the support bundle's scan only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

/// Why reports wait: the words `status`, `doctor` and the log use.
/// `http_status`: the collector's 401 or 403; `None` when the secret file
/// itself is the trouble (`why`). `configured`: whether this device has a
/// secret to send at all.
pub fn credential_error(
    http_status: Option<u16>,
    configured: bool,
    why: Option<&str>,
    at: DateTime<Utc>,
) -> CredentialError {
    let message = match (http_status, configured) {
        (Some(code), true) => format!(
            "the report collector refused this device's credential (HTTP {code}): ask IT to check \
             the deployment secret; reports wait on this device until then"
        ),
        (Some(code), false) => format!(
            "the report collector asks for a credential (HTTP {code}) and this device has none: ask \
             IT to install the deployment secret; reports wait on this device until then"
        ),
        (None, _) => format!(
            "{}; reports wait on this device until then",
            why.unwrap_or("the deployment secret cannot be read")
        ),
    };
    CredentialError {
        message,
        http_status,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "PLANTEDreportSECRET0123456789abcdef";

    #[test]
    fn a_secret_is_trimmed_and_checked_without_being_quoted() {
        let s = ReportSecret::parse(&format!("  {SECRET}\n")).unwrap();
        assert_eq!(s.expose(), SECRET);
        assert!(!format!("{s:?}").contains("PLANTED"));
        assert!(ReportSecret::parse("dGhpcyBpcyBhIHRlc3Qgc2VjcmV0==").is_ok());
        for bad in [
            "short",
            "has a space in the middle of it",
            "quote\"inside-0123456789",
            "==================",
            "ünïcödé-0123456789abcdef",
        ] {
            let err = ReportSecret::parse(bad).unwrap_err().to_string();
            assert!(!err.contains(bad), "{err}");
            assert!(err.contains("deployment secret"), "{err}");
        }
        assert!(ReportSecret::parse(&"a".repeat(MAX_SECRET_LEN + 1)).is_err());
    }

    #[test]
    fn the_header_is_bearer_and_sensitive() {
        let h = ReportSecret::parse(SECRET).unwrap().header().unwrap();
        assert_eq!(h.to_str().unwrap(), format!("Bearer {SECRET}"));
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("PLANTED"));
    }

    // File modes are Unix's; on Windows the ACLs are winsec's job.
    #[cfg(unix)]
    #[test]
    fn the_file_must_be_private_and_errors_never_quote_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("report.secret");
        let missing = ReportSecret::load(&file).unwrap_err().to_string();
        assert!(missing.contains("ask IT"), "{missing}");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = ReportSecret::load(&file).unwrap_err().to_string();
        assert!(open.contains("chmod 600"), "{open}");
        assert!(!open.contains("PLANTED"), "{open}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(ReportSecret::load(&file).unwrap().expose(), SECRET);
        std::fs::write(&file, "PLANTED with spaces 0123456789").unwrap();
        let bad = ReportSecret::load(&file).unwrap_err().to_string();
        assert!(!bad.contains("PLANTED"), "{bad}");
    }

    #[test]
    fn the_words_say_who_acts() {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let refused = credential_error(Some(401), true, None, at);
        assert_eq!(
            refused.message,
            "the report collector refused this device's credential (HTTP 401): ask IT to check the \
             deployment secret; reports wait on this device until then"
        );
        assert_eq!(refused.http_status, Some(401));
        let none = credential_error(Some(403), false, None, at);
        assert!(none.message.contains("this device has none"), "{none:?}");
        let unreadable = credential_error(
            None,
            true,
            Some("the deployment secret file /x is missing"),
            at,
        );
        assert!(
            unreadable
                .message
                .starts_with("the deployment secret file /x is missing; reports wait")
        );
    }
}
