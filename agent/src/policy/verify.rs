//! minisign signatures: the pinned keys from the install config, and the one
//! check every signed policy goes through.
//!
//! One crate, `minisign`, reads keys and signatures, verifies (prehashed and
//! legacy signatures, then the trusted comment's global signature) and, in the
//! CLI, makes keys and signatures. It is laxer than the format on two points,
//! which [`parse_signature`] closes: it ignores bytes after the signature and
//! does not check the global signature's length (a short one would panic in
//! its Ed25519 check).

use std::fmt;
use std::io::Cursor;

/// A minisign key id, shown as the stock tool shows it (`5F1A...` hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016X}", u64::from_le_bytes(self.0))
    }
}

/// One trusted public key.
#[derive(Clone)]
pub struct PinnedKey {
    id: KeyId,
    key: minisign::PublicKey,
}

impl fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinnedKey({})", self.id)
    }
}

impl PinnedKey {
    /// Reads a public key: the base64 line alone, or a whole `.pub` file
    /// (`untrusted comment: ...` then the base64 line).
    pub fn parse(text: &str) -> Result<Self, String> {
        let line = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or("empty public key")?;
        let key = minisign::PublicKey::from_base64(line)
            .map_err(|e| format!("not a minisign public key ({e})"))?;
        // The crate reads any two algorithm bytes; minisign keys are Ed25519.
        if !matches!(key.to_bytes().get(..2), Some(b"Ed" | b"ED")) {
            return Err("not a minisign public key (not an Ed25519 key)".into());
        }
        let id = KeyId::from_slice(key.keynum()).ok_or("not a minisign public key (no key id)")?;
        Ok(Self { id, key })
    }

    pub fn id(&self) -> KeyId {
        self.id
    }
}

/// The keys a policy may be signed with (several while rotating).
#[derive(Debug, Clone, Default)]
pub struct PinnedKeys(Vec<PinnedKey>);

impl PinnedKeys {
    pub fn new(keys: Vec<PinnedKey>) -> Self {
        Self(keys)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn list(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|k| k.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks `signature` (the text of a `.minisig` file) over `document`.
    /// Returns the id of the key that signed it.
    pub fn verify(&self, document: &[u8], signature: &str) -> Result<KeyId, SignatureError> {
        let sig = parse_signature(signature)?;
        let id = KeyId::from_slice(sig.keynum())
            .ok_or_else(|| SignatureError::Malformed("no key id".into()))?;
        let Some(key) = self.0.iter().find(|k| k.id == id) else {
            return Err(SignatureError::UnknownKey {
                signed_by: id,
                pinned: self.list(),
            });
        };
        // Legacy (non-prehashed) signatures are what minisign < 0.8 and `-l`
        // make; they are as sound for a 1 MiB document.
        // `minisign::verify` checks the key id again, the document, then the
        // trusted comment; quiet, no copy of the document to stdout.
        minisign::verify(&key.key, &sig, Cursor::new(document), true, false, true)
            .map_err(|_| SignatureError::Mismatch { key: id })?;
        Ok(id)
    }
}

/// Reads a `.minisig` text, refusing what the `minisign` crate lets through:
/// its two base64 lines must be exactly what it reads (no trailing bytes after
/// the 74-byte signature) and the global signature exactly 64 bytes.
fn parse_signature(text: &str) -> Result<minisign::SignatureBox, SignatureError> {
    let sig = minisign::SignatureBox::from_string(text)
        .map_err(|e| SignatureError::Malformed(e.to_string()))?;
    let canonical = sig.to_string();
    let given: Vec<&str> = text.lines().map(str::trim).collect();
    let read: Vec<&str> = canonical.lines().collect();
    // 64 bytes are 88 base64 characters ending in "==" (86 + 2 pad).
    let exact = read.len() == 4
        && [1, 3].iter().all(|&i| given.get(i) == read.get(i))
        && read[3].len() == 88
        && read[3].ends_with("==");
    if !exact {
        return Err(SignatureError::Malformed(
            "the signature or global signature has the wrong length".into(),
        ));
    }
    Ok(sig)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature is not a minisign signature: {0}")]
    Malformed(String),
    #[error("signed with key {signed_by}, which is not a pinned key (pinned: {pinned})")]
    UnknownKey { signed_by: KeyId, pinned: String },
    #[error("the signature by key {key} does not match the document: it was changed after signing")]
    Mismatch { key: KeyId },
}

#[cfg(test)]
pub(crate) mod testkeys {
    //! Keys and signatures made in-process for unit tests.
    use super::*;

    pub struct TestKey {
        pub public: String,
        secret: minisign::SecretKey,
    }

    impl TestKey {
        pub fn new() -> Self {
            let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            Self {
                public: kp.pk.to_base64(),
                secret: kp.sk,
            }
        }

        pub fn sign(&self, document: &[u8]) -> String {
            minisign::sign(None, &self.secret, document, Some("test"), None)
                .unwrap()
                .into_string()
        }

        pub fn pinned(&self) -> PinnedKeys {
            PinnedKeys::new(vec![PinnedKey::parse(&self.public).unwrap()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkeys::TestKey;
    use super::*;

    #[test]
    fn verifies_with_any_pinned_key_and_names_the_one_used() {
        let (old, new) = (TestKey::new(), TestKey::new());
        let keys = PinnedKeys::new(vec![
            PinnedKey::parse(&old.public).unwrap(),
            PinnedKey::parse(&new.public).unwrap(),
        ]);
        let doc = b"{\"serial\": 1}";
        let by = keys.verify(doc, &new.sign(doc)).unwrap();
        assert_eq!(by, PinnedKey::parse(&new.public).unwrap().id());
        keys.verify(doc, &old.sign(doc)).unwrap();
    }

    #[test]
    fn rejections_are_precise() {
        let (key, other) = (TestKey::new(), TestKey::new());
        let doc = b"{\"serial\": 1}";
        let sig = key.sign(doc);
        let keys = key.pinned();
        assert!(matches!(
            keys.verify(b"{\"serial\": 2}", &sig),
            Err(SignatureError::Mismatch { .. })
        ));
        let err = keys.verify(doc, &other.sign(doc)).unwrap_err();
        let other_id = PinnedKey::parse(&other.public).unwrap().id();
        assert_eq!(
            err.to_string(),
            format!(
                "signed with key {other_id}, which is not a pinned key (pinned: {})",
                PinnedKey::parse(&key.public).unwrap().id()
            )
        );
        assert!(matches!(
            keys.verify(doc, "garbage"),
            Err(SignatureError::Malformed(_))
        ));
        let none = PinnedKeys::default().verify(doc, &sig).unwrap_err();
        assert!(none.to_string().ends_with("(pinned: none)"), "{none}");
    }

    #[test]
    fn what_the_crate_lets_through_is_malformed_not_a_panic() {
        let key = TestKey::new();
        let doc = b"{\"serial\": 1}";
        let sig = key.sign(doc);
        let lines: Vec<&str> = sig.lines().collect();
        let with = |i: usize, line: &str| {
            let mut l = lines.clone();
            l[i] = line;
            l.join("\n")
        };
        let resized = |line: &str, len: usize| {
            let mut bytes = data_encoding::BASE64.decode(line.as_bytes()).unwrap();
            bytes.resize(len, 0);
            data_encoding::BASE64.encode(&bytes)
        };
        // A global signature of 48 bytes, then of 65: both refused; so is
        // the 74-byte signature followed by 1 more byte.
        let (short, long) = (resized(lines[3], 48), resized(lines[3], 65));
        let trailing = resized(lines[1], 75);
        for bad in [with(3, &short), with(3, &long), with(1, &trailing)] {
            assert!(
                matches!(
                    key.pinned().verify(doc, &bad),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
        key.pinned().verify(doc, &lines.join("\n")).unwrap();
    }

    #[test]
    fn only_ed25519_keys_are_read() {
        let line = TestKey::new().public;
        // "Ed" is "RW" in base64; "Xy" as the algorithm is "WH".
        let other = format!("WH{}", &line[2..]);
        assert_eq!(
            PinnedKey::parse(&other).unwrap_err(),
            "not a minisign public key (not an Ed25519 key)"
        );
    }

    #[test]
    fn key_ids_print_like_the_minisign_tool() {
        // From minisign-verify's documentation: key id 5F1A... is E7620F1842B4E81F.
        let k =
            PinnedKey::parse("RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3").unwrap();
        assert_eq!(k.id().to_string(), "E7620F1842B4E81F");
    }
}
