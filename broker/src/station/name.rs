//! Station names: validated once, at the boundary, into [`StationName`].

use std::fmt;

use crate::error::BrokerError;

/// Longest station name, in bytes.
const MAX_NAME_BYTES: usize = 128;

/// A name known to match `^[a-z0-9][a-z0-9._-]{0,127}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StationName(String);

impl StationName {
    pub fn parse(name: &str) -> Result<Self, BrokerError> {
        if is_valid_name(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(BrokerError::InvalidStationName {
                name: name.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `name` follows the rule station (and schema) names share.
pub fn is_valid_name(name: &str) -> bool {
    let valid_first = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid_rest = |c: u8| valid_first(c) || matches!(c, b'.' | b'_' | b'-');
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_BYTES
        && valid_first(bytes[0])
        && bytes[1..].iter().all(|&c| valid_rest(c))
}

impl fmt::Display for StationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for name in ["orders", "0", "a.b_c-d", &"x".repeat(128)] {
            assert!(StationName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_everything_else_quoting_the_rule() {
        for name in [
            "",
            "Orders",
            "-x",
            ".x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(129),
        ] {
            let error = StationName::parse(name).unwrap_err().to_string();
            assert!(error.contains("^[a-z0-9][a-z0-9._-]{0,127}$"), "{error}");
        }
    }
}
