//! Telephony. For now: the validated phone number type that partners and workers register.

use std::fmt;

use serde::Serialize;

use crate::error::{Error, Result};

/// A phone number in E.164 form (`+31612345678`). Dutch national notation (`06-12 34 56 78`) is
/// accepted on input and converted.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self> {
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let international = if let Some(rest) = compact.strip_prefix("00") {
            format!("+{rest}")
        } else if let Some(rest) = compact.strip_prefix('0') {
            format!("+31{rest}")
        } else {
            compact
        };
        let digits = international.strip_prefix('+').unwrap_or_default();
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(Error::invalid(
                "not a phone number (use +31612345678 or 0612345678)",
            ));
        }
        Ok(Self(international))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Real numbers are personal data: `Debug` shows only the country code.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({}…)", &self.0[..3.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations_normalise_to_e164() {
        for input in [
            "+31612345678",
            "+31 6 12345678",
            "0612345678",
            "06-12 34 56 78",
            "06-12345678",
            "0031612345678",
            "(06) 12345678",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "+31612345678",
                "{input}"
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for input in [
            "",
            "+",
            "+31",
            "06-1234",
            "+31abc45678",
            "+0612345678",
            "1234567890123456789",
        ] {
            assert!(PhoneNumber::parse(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn debug_hides_the_number() {
        let number = PhoneNumber::parse("+31612345678").unwrap();
        assert!(!format!("{number:?}").contains("12345678"));
    }
}
