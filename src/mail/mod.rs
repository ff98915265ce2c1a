//! E-mail: the inbound SMTP listener, sender authentication, who may write, replies from the alias
//! (composition, sanitising, the leak guard), the outbound queue, and the address type.

pub mod auth;
pub mod bounce;
pub mod compose;
pub mod dkim;
pub mod inspect;
pub mod leak;
pub mod outbound;
pub mod reply;
pub mod sanitize;
pub mod smtp;

use std::fmt;

use crate::error::{Error, Result};

/// mail-parser over bytes from outside. A panic inside the parser is taken as "not a message" rather
/// than ending the session that read them: mail-parser 0.11.9 trips a debug assertion on a
/// `message/rfc822` part with nothing after its header in a multipart (found by fuzzing; release
/// builds skip the assertion).
pub fn parse_message(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    std::panic::catch_unwind(|| mail_parser::MessageParser::default().parse(raw))
        .ok()
        .flatten()
}

/// An e-mail address with a plausible shape: one `@`, a non-empty local part without spaces or
/// control characters, and a valid domain.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (local, domain) = text
            .rsplit_once('@')
            .ok_or_else(|| Error::invalid("not an e-mail address (name@domain)"))?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_graphic() && !"<>()[]\\,;:\"@".contains(c));
        let domain = crate::alias::Domain::parse(domain)
            .map_err(|_| Error::invalid("not an e-mail address (name@domain)"))?;
        if !local_ok {
            return Err(Error::invalid("not an e-mail address (name@domain)"));
        }
        Ok(Self(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain, lower case.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// The address with its local part lower-cased too: the form contacts are compared in.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Real addresses are personal data: `Debug` shows only the domain.
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        write!(f, "EmailAddress(…@{domain})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_debug_hides_the_person() {
        let address = EmailAddress::parse(" Jan.Jansen+werk@Voorbeeld.NL ").unwrap();
        assert_eq!(address.as_str(), "Jan.Jansen+werk@voorbeeld.nl");
        assert!(!format!("{address:?}").contains("Jansen"));
        for bad in [
            "",
            "jan",
            "@voorbeeld.nl",
            "jan@",
            "jan jansen@voorbeeld.nl",
            "jan@voorbeeld",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
