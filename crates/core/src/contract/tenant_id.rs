//! The tenant id: a DNS-1123 label of at most 40 characters.
//!
//! Validated on construction and on deserialization, so a `TenantId` in hand is
//! always safe to put into a namespace name, a NATS subject token and a KV key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest tenant id accepted. Leaves room for the namespace prefix
/// (`tenant-` by default) within the 63-character namespace name limit.
pub const MAX_TENANT_ID_LEN: usize = 40;

/// A validated tenant id (`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, 1 to 40 characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// The string is empty.
    #[error("tenant id is empty")]
    Empty,
    /// Longer than [`MAX_TENANT_ID_LEN`] characters.
    #[error("tenant id {id:?} is {len} characters long; the limit is {MAX_TENANT_ID_LEN}")]
    TooLong {
        /// The refused string, cut to its first 64 characters.
        id: String,
        /// Its full length, in characters.
        len: usize,
    },
    /// Contains something other than `a-z`, `0-9` and `-`, or starts or ends with `-`.
    #[error(
        "tenant id {id:?} is not a DNS-1123 label: use lower-case letters, digits and '-', \
         starting and ending with a letter or digit"
    )]
    NotDnsLabel {
        /// The refused string.
        id: String,
    },
}

impl TenantId {
    /// Parses and validates a tenant id.
    ///
    /// # Errors
    /// [`TenantIdError`] when the string is empty, longer than 40 characters or not a
    /// DNS-1123 label.
    pub fn parse(s: &str) -> Result<Self, TenantIdError> {
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        let len = s.chars().count();
        if len > MAX_TENANT_ID_LEN {
            return Err(TenantIdError::TooLong {
                id: s.chars().take(64).collect(),
                len,
            });
        }
        if !crate::names::is_dns_label(s, MAX_TENANT_ID_LEN) {
            return Err(TenantIdError::NotDnsLabel { id: s.to_owned() });
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "acme", "acme-corp", "a1", "0", &"x".repeat(40)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "-acme",
            "acme-",
            "Acme",
            "ac_me",
            "ac.me",
            "acme corp",
            "ac\u{e9}me",
            "a\n",
            &"x".repeat(41),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<TenantId>("\"acme\"").is_ok());
        let err = serde_json::from_str::<TenantId>("\"ACME\"").unwrap_err();
        assert!(err.to_string().contains("DNS-1123"), "{err}");
    }
}
