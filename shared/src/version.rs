//! Release versions (`MAJOR.MINOR.PATCH`), compared numerically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A release version. Pre-release and build suffixes are deliberately not
/// accepted: policy minimums and update floors compare plain releases only, so
/// there is never a question of how `1.2.0-rc1` orders against `1.2.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{input}\" is not a version: expected MAJOR.MINOR.PATCH, e.g. 1.4.2")]
pub struct VersionError {
    input: String,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// The version of this build.
    pub fn current() -> Self {
        // CARGO_PKG_VERSION is always MAJOR.MINOR.PATCH for this workspace; a
        // parse failure would be a packaging bug, caught by the test below.
        crate::RAMPART_VERSION.parse().unwrap_or(Self::new(0, 0, 0))
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || VersionError {
            input: s.to_owned(),
        };
        let mut parts = s.split('.');
        let mut next = || -> Result<u64, VersionError> {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        let version = Self::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_build_has_a_parseable_version() {
        assert_eq!(
            Version::current().to_string(),
            crate::RAMPART_VERSION,
            "CARGO_PKG_VERSION must be MAJOR.MINOR.PATCH"
        );
    }

    #[test]
    fn orders_numerically_not_lexically() {
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(v("6.0.10") > v("6.0.9"));
        assert!(v("10.0.0") > v("9.99.99"));
        assert_eq!(v("1.2.3"), Version::new(1, 2, 3));
    }

    #[test]
    fn rejects_anything_but_three_numbers() {
        for bad in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "v1.2.3",
            "1.2.3-rc1",
            "1..3",
            " 1.2.3",
            "+1.2.3",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert!(
                err.to_string().contains("MAJOR.MINOR.PATCH"),
                "{bad}: {err}"
            );
        }
    }
}
