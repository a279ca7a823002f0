//! Who a local user is, as the OS identifies them: a uid on Unix, a SID on
//! Windows.
//!
//! On the wire and in state files it is one JSON field, `"uid": 1000` or
//! `"sid": "S-1-5-21-…"`, flattened into the record that carries it, so every
//! record written before Windows had identities still decodes unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UserId {
    #[serde(rename = "uid")]
    Uid(u32),
    /// In string form (`S-1-5-21-…-1001`), as `ConvertSidToStringSidW` gives it.
    #[serde(rename = "sid")]
    Sid(String),
}

/// The Windows account the system service runs as.
pub const LOCAL_SYSTEM_SID: &str = "S-1-5-18";
/// BUILTIN\Administrators.
pub const ADMINISTRATORS_SID: &str = "S-1-5-32-544";

impl UserId {
    pub const ROOT: Self = Self::Uid(0);

    /// Whether `text` has the shape of a string SID (`S-1-` then numbers
    /// separated by dashes). Shape only: no lookup.
    pub fn is_sid_text(text: &str) -> bool {
        let Some(rest) = text.strip_prefix("S-1-") else {
            return false;
        };
        let parts: Vec<&str> = rest.split('-').collect();
        // The identifier authority plus at most 15 sub-authorities.
        (1..=16).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit()))
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uid(uid) => write!(f, "uid {uid}"),
            Self::Sid(sid) => write!(f, "SID {sid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(flatten)]
        id: UserId,
        user: String,
    }

    #[test]
    fn flattened_it_is_one_field_either_way() {
        let unix = Record {
            id: UserId::Uid(1000),
            user: "jane".into(),
        };
        assert_eq!(
            serde_json::to_value(&unix).unwrap(),
            json!({"uid": 1000, "user": "jane"})
        );
        let windows = Record {
            id: UserId::Sid("S-1-5-21-1-2-3-1001".into()),
            user: r"ACME\jane".into(),
        };
        let text = serde_json::to_value(&windows).unwrap();
        assert_eq!(
            text,
            json!({"sid": "S-1-5-21-1-2-3-1001", "user": r"ACME\jane"})
        );
        assert_eq!(serde_json::from_value::<Record>(text).unwrap(), windows);
        let old: Record = serde_json::from_value(json!({"user": "jane", "uid": 1000})).unwrap();
        assert_eq!(old, unix);
        assert!(serde_json::from_value::<Record>(json!({"user": "jane"})).is_err());
    }

    #[test]
    fn sid_shape() {
        for good in [
            "S-1-5-18",
            "S-1-5-32-544",
            "S-1-5-21-3623811015-3361044348-30300820-1013",
        ] {
            assert!(UserId::is_sid_text(good), "{good}");
        }
        for bad in [
            "",
            "S-1-",
            "S-1-5-",
            "S-2-5-18",
            "s-1-5-18",
            "S-1-5-x",
            "S-1-5--18",
            "1000",
        ] {
            assert!(!UserId::is_sid_text(bad), "{bad}");
        }
        assert_eq!(UserId::Uid(0).to_string(), "uid 0");
        assert_eq!(UserId::Sid("S-1-5-18".into()).to_string(), "SID S-1-5-18");
    }
}
