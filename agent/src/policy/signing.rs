//! The secret key `policy sign` signs with: every kind the stock `minisign`
//! tool writes, and where a password-protected key's password comes from.
//!
//! The `minisign` crate refuses the unencrypted keys of `minisign -G -W`: the
//! C tool leaves their checksum zeroed, so the crate calls them corrupted, and
//! its password path then says "Key is not encrypted". Such a key is read
//! here field by field instead, and proved whole by signing a probe and
//! verifying it with the public half the key carries.
//!
//! Its interactive prompt needs a terminal; a CI pipeline has none, so the
//! password may come from a file or the environment ([`PasswordSource`]).

use std::io::Cursor;

use thiserror::Error;

/// The environment variable `policy sign` reads a key's password from.
pub const PASSWORD_ENV: &str = "RAMPART_SIGNING_PASSWORD";

/// Base64-decoded length of a minisign secret key: algorithms (2+2+2), KDF
/// salt (32), KDF limits (8+8), key id (8), Ed25519 secret key (64), checksum (32).
const SECRET_KEY_BYTES: usize = 158;
const KDF_NONE: [u8; 2] = [0, 0];
const KDF_SCRYPT: [u8; 2] = *b"Sc";

/// Where the password of a password-protected key comes from.
#[derive(Debug)]
pub enum PasswordSource {
    /// Already read (from `--password-file` or the environment).
    Given(String),
    /// Asked on the terminal by the `minisign` crate.
    Terminal,
    /// No terminal and nothing given: a protected key cannot be opened.
    Unavailable,
}

#[derive(Debug, Error)]
pub enum SigningKeyError {
    #[error("this is not a minisign secret key ({0})")]
    NotAKey(String),
    #[error(
        "the key is not an Ed25519 minisign key (algorithm {0:?}); make one with `rampart-agent policy keygen` or `minisign -G`"
    )]
    UnsupportedAlgorithm(String),
    #[error(
        "the key is password-protected with an unknown method ({0:?}); minisign keys use scrypt (\"Sc\")"
    )]
    UnsupportedEncryption(String),
    #[error(
        "the key is password-protected and there is no terminal to ask for the password: pass --password-file FILE or set {PASSWORD_ENV}"
    )]
    NoPassword,
    #[error("wrong password for this key (or the key file is damaged)")]
    WrongPassword,
    #[error(
        "the key is damaged: its secret and public halves do not match; use the file `minisign -G` or `policy keygen` wrote"
    )]
    Corrupted,
    #[error("cannot open the key: {0}")]
    Other(String),
}

/// What was opened, and whether it needed a password (to warn when one was
/// given for nothing).
pub struct OpenedKey {
    pub key: minisign::SecretKey,
    pub was_encrypted: bool,
}

/// Opens the text of a `.key` file, encrypted or not.
pub fn open_secret_key(text: &str, password: PasswordSource) -> Result<OpenedKey, SigningKeyError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or_else(|| SigningKeyError::NotAKey("no key line".into()))?;
    let bytes = data_encoding::BASE64
        .decode(line.as_bytes())
        .map_err(|e| SigningKeyError::NotAKey(format!("not base64: {e}")))?;
    if bytes.len() != SECRET_KEY_BYTES {
        return Err(SigningKeyError::NotAKey(format!(
            "{} bytes where a key has {SECRET_KEY_BYTES}",
            bytes.len()
        )));
    }
    if &bytes[..2] != b"Ed" {
        return Err(SigningKeyError::UnsupportedAlgorithm(
            String::from_utf8_lossy(&bytes[..2]).into_owned(),
        ));
    }
    let kdf: [u8; 2] = [bytes[2], bytes[3]];
    let key = match kdf {
        KDF_NONE => minisign::SecretKey::from_bytes(&bytes)
            .map_err(|e| SigningKeyError::NotAKey(e.to_string()))?,
        KDF_SCRYPT => {
            let password = match password {
                PasswordSource::Given(p) => Some(p),
                PasswordSource::Terminal => None,
                PasswordSource::Unavailable => return Err(SigningKeyError::NoPassword),
            };
            let boxed = minisign::SecretKeyBox::from_string(&format!(
                "untrusted comment: minisign encrypted secret key\n{line}\n"
            ))
            .map_err(|e| SigningKeyError::NotAKey(e.to_string()))?;
            minisign::SecretKey::from_box(boxed, password).map_err(|e| match e.kind() {
                minisign::ErrorKind::Verify => SigningKeyError::WrongPassword,
                _ => SigningKeyError::Other(e.to_string()),
            })?
        }
        other => {
            return Err(SigningKeyError::UnsupportedEncryption(
                String::from_utf8_lossy(&other).into_owned(),
            ));
        }
    };
    prove_whole(&key)?;
    Ok(OpenedKey {
        key,
        was_encrypted: kdf == KDF_SCRYPT,
    })
}

/// Signs a probe and verifies it with the public half inside the key: a key
/// whose bytes were damaged (or decrypted with a wrong password that slipped
/// past the checksum) cannot pass.
fn prove_whole(key: &minisign::SecretKey) -> Result<(), SigningKeyError> {
    let public =
        minisign::PublicKey::from_secret_key(key).map_err(|_| SigningKeyError::Corrupted)?;
    let probe = b"rampart signing key probe";
    let sig = minisign::sign(None, key, Cursor::new(probe), None, None)
        .map_err(|_| SigningKeyError::Corrupted)?;
    minisign::verify(&public, &sig, Cursor::new(probe), true, false, false)
        .map_err(|_| SigningKeyError::Corrupted)
}

/// A password file's text: one trailing line ending is not part of the
/// password (`echo secret > file`), anything else is.
pub fn password_from_file_text(text: &str) -> String {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.strip_suffix('\r').unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unencrypted_pair() -> (minisign::PublicKey, String) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        (pair.pk, pair.sk.to_box(None).unwrap().into_string())
    }

    /// The stock tool's `-G -W` key: no KDF and a zeroed checksum.
    fn like_stock_unencrypted(text: &str) -> String {
        let line = text.lines().nth(1).unwrap();
        let mut bytes = data_encoding::BASE64.decode(line.as_bytes()).unwrap();
        bytes[SECRET_KEY_BYTES - 32..].fill(0);
        format!(
            "untrusted comment: minisign encrypted secret key\n{}\n",
            data_encoding::BASE64.encode(&bytes)
        )
    }

    fn signs_for(key: &minisign::SecretKey, public: &minisign::PublicKey) -> bool {
        let sig = minisign::sign(None, key, Cursor::new(b"doc"), None, None).unwrap();
        minisign::verify(public, &sig, Cursor::new(b"doc"), true, false, false).is_ok()
    }

    #[test]
    fn opens_unencrypted_keys_with_and_without_a_checksum() {
        let (public, text) = unencrypted_pair();
        // The crate's own unencrypted key (checksum written) ...
        let opened = open_secret_key(&text, PasswordSource::Unavailable).unwrap();
        assert!(!opened.was_encrypted);
        assert!(signs_for(&opened.key, &public));
        // ... and the stock tool's (checksum zero), which the crate refuses.
        let stock = like_stock_unencrypted(&text);
        assert!(
            minisign::SecretKey::from_unencrypted_box(
                minisign::SecretKeyBox::from_string(&stock).unwrap()
            )
            .is_err()
        );
        let opened = open_secret_key(&stock, PasswordSource::Unavailable).unwrap();
        assert!(signs_for(&opened.key, &public));
    }

    #[test]
    fn a_damaged_unencrypted_key_is_refused() {
        let (_, text) = unencrypted_pair();
        let line = text.lines().nth(1).unwrap();
        let mut bytes = data_encoding::BASE64.decode(line.as_bytes()).unwrap();
        bytes[70] ^= 1; // inside the Ed25519 seed
        let damaged = format!(
            "untrusted comment: c\n{}\n",
            data_encoding::BASE64.encode(&bytes)
        );
        assert!(matches!(
            open_secret_key(&damaged, PasswordSource::Unavailable),
            Err(SigningKeyError::Corrupted)
        ));
    }

    #[test]
    fn encrypted_keys_need_the_right_password() {
        let pair =
            minisign::KeyPair::generate_encrypted_keypair(Some("correct horse".into())).unwrap();
        let text = pair.sk.to_box(None).unwrap().into_string();
        assert!(matches!(
            open_secret_key(&text, PasswordSource::Unavailable),
            Err(SigningKeyError::NoPassword)
        ));
        assert!(matches!(
            open_secret_key(&text, PasswordSource::Given("wrong".into())),
            Err(SigningKeyError::WrongPassword)
        ));
        let opened = open_secret_key(&text, PasswordSource::Given("correct horse".into())).unwrap();
        assert!(opened.was_encrypted);
        assert!(signs_for(&opened.key, &pair.pk));
    }

    #[test]
    fn other_texts_are_not_keys() {
        for (text, want) in [
            ("", "no key line"),
            ("untrusted comment: x\n!!!\n", "not base64"),
            ("untrusted comment: x\nRWQ=\n", "2 bytes"),
        ] {
            let err = open_secret_key(text, PasswordSource::Unavailable)
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let (public, _) = unencrypted_pair();
        let err = open_secret_key(
            &public.to_box().unwrap().into_string(),
            PasswordSource::Unavailable,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("where a key has 158"), "{err}");
    }

    #[test]
    fn one_trailing_line_ending_is_not_part_of_the_password() {
        assert_eq!(password_from_file_text("s3cret\n"), "s3cret");
        assert_eq!(password_from_file_text("s3cret\r\n"), "s3cret");
        assert_eq!(password_from_file_text("s3cret"), "s3cret");
        assert_eq!(password_from_file_text("s3cret \n\n"), "s3cret \n");
    }
}
