//! Box names.

use crate::StoreError;
use std::fmt;

/// A validated box name: `[a-z0-9][a-z0-9._-]{0,62}`.
///
/// The rule keeps a name safe as a single path component, a hostname-like
/// label and a shell word: no `/`, no leading `.`, no upper case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BoxName(String);

impl BoxName {
    /// Checks `name` against the rule.
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let bytes = name.as_bytes();
        let first_ok = matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'));
        let rest_ok = bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'));
        if first_ok && rest_ok && bytes.len() <= 63 {
            Ok(BoxName(name.to_owned()))
        } else {
            Err(StoreError::InvalidName {
                name: name.to_owned(),
            })
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BoxName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for ok in ["a", "0", "web-1", "py3.12_env", &"x".repeat(63)] {
            assert!(BoxName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_paths_dots_and_case() {
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "A",
            "a/b",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            assert!(BoxName::new(bad).is_err(), "{bad:?}");
        }
    }
}
