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
pub mod sender;
pub mod smarthost;
pub mod smtp;
pub mod undelivered;

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

    /// An address the relay may send to: no `%` or `!` in the local part, which some mail servers
    /// still read as source routes (`evil%evil.example@partner.example` would be passed on to
    /// `evil.example`).
    pub fn parse_recipient(text: &str) -> Result<Self> {
        let address = Self::parse(text)?;
        let (local, _) = address.0.rsplit_once('@').unwrap_or_default();
        if local.contains(['%', '!']) {
            return Err(Error::invalid(
                "the address contains % or !, which would route the mail elsewhere",
            ));
        }
        Ok(address)
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

/// A Message-ID as RFC 5322 §3.6.4 writes it (`id-left "@" id-right`, each dot-atom text), kept
/// without its angle brackets, at most 250 characters. Anything else (a header fragment, a line
/// break, a second `>`) is not a Message-ID and is never copied into a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgId(String);

/// Longest Message-ID accepted (RFC 5322 lines are at most 998 characters; real IDs are far shorter).
pub const MAX_MESSAGE_ID: usize = 250;

impl MsgId {
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        let bare = trimmed
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(trimmed);
        let invalid = || Error::invalid("not a Message-ID (local@domain, at most 250 characters)");
        let (left, right) = bare.split_once('@').ok_or_else(invalid)?;
        if bare.len() > MAX_MESSAGE_ID || !dot_atom_text(left) || !dot_atom_text(right) {
            return Err(invalid());
        }
        Ok(Self(bare.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 5322 dot-atom text: atext characters in dot-separated, non-empty runs.
fn dot_atom_text(text: &str) -> bool {
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    !text.is_empty()
        && text
            .split('.')
            .all(|run| !run.is_empty() && run.chars().all(atext))
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

    #[test]
    fn message_ids_are_parsed_strictly() {
        for good in [
            "abc@jbwest.example",
            "<abc@jbwest.example>",
            "a.b+c=d@x.example",
            "CAF=x_9@mail.gmail.com",
        ] {
            assert!(MsgId::parse(good).is_ok(), "{good:?}");
        }
        assert_eq!(
            MsgId::parse("<abc@x.example>").unwrap().as_str(),
            "abc@x.example"
        );
        let long = format!("{}@x.example", "a".repeat(MAX_MESSAGE_ID));
        for bad in [
            "",
            "abc",
            "<a@b>>Bcc:x",
            "a@b>\r\nBcc: x@y",
            "a b@x.example",
            "a@b@c",
            "@x.example",
            "a@",
            "a..b@x",
            "<a@b",
            long.as_str(),
        ] {
            assert!(MsgId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn recipients_may_not_route_elsewhere() {
        assert!(EmailAddress::parse_recipient("team@jbwest.example").is_ok());
        for bad in [
            "evil%evil.example@jbwest.example",
            "evil.example!user@jbwest.example",
        ] {
            assert!(EmailAddress::parse(bad).is_ok(), "{bad}");
            assert!(EmailAddress::parse_recipient(bad).is_err(), "{bad}");
        }
    }
}
