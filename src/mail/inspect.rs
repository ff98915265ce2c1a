//! Inspecting an inbound message before anything else is decided: is it a well-formed RFC 5322
//! message we are willing to keep (header lines within limits, no NUL bytes, MIME not absurdly deep,
//! base64 that is base64), and what do routing and the reader need from it. Pure: bytes in, facts out.

use mail_parser::{Encoding, Message, MimeHeaders, PartType};
use serde::{Deserialize, Serialize};

use crate::mail::EmailAddress;

/// RFC 5322: a line is at most 998 characters (plus CRLF).
pub const MAX_HEADER_LINE: usize = 998;
/// Multipart nesting deeper than this is refused (real mail stays below 10).
pub const MAX_MIME_DEPTH: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the message does not start with a header section")]
    NotAMessage,
    #[error("the message contains NUL bytes")]
    NulBytes,
    #[error("a header line is longer than {MAX_HEADER_LINE} characters")]
    HeaderLineTooLong,
    #[error("the header section is not valid text")]
    HeaderNotText,
    #[error("the message has no From address")]
    NoFrom,
    #[error("the message has more than one From address")]
    SeveralFrom,
    #[error("the From address is not valid")]
    InvalidFrom,
    #[error("MIME parts are nested more than {MAX_MIME_DEPTH} levels deep")]
    TooDeep,
    #[error("a base64-encoded part is not valid base64")]
    InvalidBase64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttachmentInfo {
    pub filename: String,
    pub content_type: String,
    pub size: usize,
}

/// What the relay takes from an acceptable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub from: EmailAddress,
    pub subject: String,
    pub text: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub urgent: bool,
    pub attachments: Vec<AttachmentInfo>,
}

impl Inspected {
    /// The From domain, lower case.
    pub fn from_domain(&self) -> String {
        self.from.domain().to_string()
    }
}

pub fn inspect(raw: &[u8]) -> Result<Inspected, Malformed> {
    if raw.contains(&0) {
        return Err(Malformed::NulBytes);
    }
    check_header_section(raw)?;
    let message = crate::mail::parse_message(raw).ok_or(Malformed::NotAMessage)?;
    check_depth(&message)?;
    check_base64(&message, raw)?;
    let from = single_from(&message)?;
    let subject = message.subject().unwrap_or_default().to_string();
    let urgent = is_urgent(
        &subject,
        message.header_raw("Importance"),
        message.header_raw("X-Priority"),
    );
    Ok(Inspected {
        from,
        text: message
            .body_text(0)
            .map(|text| text.into_owned())
            .unwrap_or_default(),
        message_id: message.message_id().and_then(valid_message_id),
        references: references(&message),
        urgent,
        attachments: attachments(&message),
        subject,
    })
}

/// Most References kept for threading a reply (the newest ones).
pub const MAX_REFERENCES: usize = 20;

/// A Message-ID from the sender's headers, when it is one; anything else is dropped, never copied into
/// a reply's headers.
fn valid_message_id(text: &str) -> Option<String> {
    crate::mail::MsgId::parse(text)
        .ok()
        .map(|id| id.as_str().to_string())
}

fn references(message: &Message<'_>) -> Vec<String> {
    let all: Vec<String> = message
        .references()
        .as_text_list()
        .map(|ids| ids.iter().filter_map(|id| valid_message_id(id)).collect())
        .unwrap_or_default();
    let skip = all.len().saturating_sub(MAX_REFERENCES);
    all.into_iter().skip(skip).collect()
}

/// The header section: present, text, and no line longer than the standard allows.
fn check_header_section(raw: &[u8]) -> Result<(), Malformed> {
    let end = find_header_end(raw).unwrap_or(raw.len());
    let header = &raw[..end];
    let first_line = header.split(|b| *b == b'\n').next().unwrap_or_default();
    let looks_like_field = first_line
        .iter()
        .position(|b| *b == b':')
        .is_some_and(|colon| {
            colon > 0
                && first_line[..colon]
                    .iter()
                    .all(|b| b.is_ascii_graphic() && *b != b':')
        });
    if !looks_like_field {
        return Err(Malformed::NotAMessage);
    }
    if header
        .split(|b| *b == b'\n')
        .any(|line| line.strip_suffix(b"\r").unwrap_or(line).len() > MAX_HEADER_LINE)
    {
        return Err(Malformed::HeaderLineTooLong);
    }
    if std::str::from_utf8(header).is_err() {
        return Err(Malformed::HeaderNotText);
    }
    Ok(())
}

fn find_header_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n"))
}

fn check_depth(message: &Message<'_>) -> Result<(), Malformed> {
    // Walk the part tree from the root with an explicit stack (no recursion on attacker input).
    let mut stack = vec![(0u32, 1usize)];
    while let Some((id, depth)) = stack.pop() {
        if depth > MAX_MIME_DEPTH {
            return Err(Malformed::TooDeep);
        }
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        match &part.body {
            PartType::Multipart(children) => {
                stack.extend(children.iter().map(|child| (*child, depth + 1)));
            }
            PartType::Message(nested) => check_depth(nested).map_err(|_| Malformed::TooDeep)?,
            _ => {}
        }
    }
    Ok(())
}

/// Every base64 part must decode strictly (ignoring line breaks): lenient decoders hide garbage.
fn check_base64(message: &Message<'_>, raw: &[u8]) -> Result<(), Malformed> {
    for part in &message.parts {
        let declared_base64 = part
            .content_transfer_encoding()
            .is_some_and(|cte| cte.trim().eq_ignore_ascii_case("base64"));
        if part.encoding != Encoding::Base64 && !declared_base64 {
            continue;
        }
        if part.is_encoding_problem {
            return Err(Malformed::InvalidBase64);
        }
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        let Some(encoded) = raw.get(start..end.min(raw.len())) else {
            continue;
        };
        let compact: Vec<u8> = encoded
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if !compact.is_empty()
            && data_encoding::BASE64.decode(&compact).is_err()
            && data_encoding::BASE64_NOPAD
                .decode(strip_padding(&compact))
                .is_err()
        {
            return Err(Malformed::InvalidBase64);
        }
    }
    Ok(())
}

fn strip_padding(bytes: &[u8]) -> &[u8] {
    let mut end = bytes.len();
    while end > 0 && bytes[end - 1] == b'=' {
        end -= 1;
    }
    &bytes[..end]
}

fn single_from(message: &Message<'_>) -> Result<EmailAddress, Malformed> {
    // Two From fields: authentication could judge one while the reader is shown the other.
    if message.header_values("From").count() > 1 {
        return Err(Malformed::SeveralFrom);
    }
    let from = message.from().ok_or(Malformed::NoFrom)?;
    let mut addresses = from.iter();
    let first = addresses.next().ok_or(Malformed::NoFrom)?;
    if addresses.next().is_some() {
        return Err(Malformed::SeveralFrom);
    }
    let address = first.address().ok_or(Malformed::InvalidFrom)?;
    EmailAddress::parse(address).map_err(|_| Malformed::InvalidFrom)
}

fn attachments(message: &Message<'_>) -> Vec<AttachmentInfo> {
    message
        .attachments()
        .map(|part| AttachmentInfo {
            filename: part.attachment_name().unwrap_or("bijlage").to_string(),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_string()),
            size: part.len(),
        })
        .collect()
}

/// Spoed: `Importance: high`, `X-Priority: 1`, or the word SPOED in the subject.
pub fn is_urgent(subject: &str, importance: Option<&str>, x_priority: Option<&str>) -> bool {
    importance.is_some_and(|v| v.trim().eq_ignore_ascii_case("high"))
        || x_priority.is_some_and(|v| v.trim().starts_with('1'))
        || subject
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word.eq_ignore_ascii_case("spoed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(headers: &str, body: &str) -> Vec<u8> {
        format!("{headers}\r\n\r\n{body}").into_bytes()
    }

    #[test]
    fn a_plain_message_yields_its_facts() {
        let raw = message(
            "From: Team West <team@jbwest.example>\r\nTo: k7m2q9xd3abc@relay.example\r\nSubject: Aanmelding\r\nMessage-ID: <abc@jbwest.example>\r\nReferences: <one@x> <two@x>",
            "Graag contact.\r\n",
        );
        let inspected = inspect(&raw).unwrap();
        assert_eq!(inspected.from.as_str(), "team@jbwest.example");
        assert_eq!(inspected.from_domain(), "jbwest.example");
        assert_eq!(inspected.subject, "Aanmelding");
        assert_eq!(inspected.text.trim(), "Graag contact.");
        assert_eq!(inspected.message_id.as_deref(), Some("abc@jbwest.example"));
        assert_eq!(inspected.references, vec!["one@x", "two@x"]);
        assert!(!inspected.urgent);
    }

    #[test]
    fn only_real_message_ids_are_kept() {
        let long = format!("{}@x.example", "a".repeat(300));
        let raw = message(
            &format!(
                "From: a@b.example\r\nMessage-ID: <{long}>\r\nReferences: <ok@x.example> <a@b>>Bcc:x> <two@x.example>"
            ),
            "b",
        );
        let inspected = inspect(&raw).unwrap();
        assert_eq!(inspected.message_id, None);
        assert!(
            inspected
                .references
                .iter()
                .all(|r| crate::mail::MsgId::parse(r).is_ok()),
            "{:?}",
            inspected.references
        );
        assert!(inspected.references.contains(&"ok@x.example".to_string()));
        let many: String = (0..50).map(|i| format!("<r{i}@x.example> ")).collect();
        let raw = message(&format!("From: a@b.example\r\nReferences: {many}"), "b");
        let references = inspect(&raw).unwrap().references;
        assert_eq!(references.len(), MAX_REFERENCES);
        assert_eq!(references.last().unwrap(), "r49@x.example");
    }

    #[test]
    fn urgency_is_read_from_three_places() {
        assert!(is_urgent("x", Some("High"), None));
        assert!(is_urgent("x", None, Some("1 (Highest)")));
        assert!(is_urgent("SPOED: bel terug", None, None));
        assert!(is_urgent("[spoed] overname", None, None));
        assert!(!is_urgent("spoedig antwoord graag", None, Some("3")));
        assert!(!is_urgent("x", Some("low"), Some("5")));
    }

    #[test]
    fn garbage_is_not_a_message() {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8 | 0x80)
            .collect();
        assert!(inspect(&garbage).is_err());
        assert_eq!(
            inspect(b"hello world\r\n\r\nbody"),
            Err(Malformed::NotAMessage)
        );
        assert_eq!(
            inspect(b"From: a@b.example\r\n\0\r\n\r\nx"),
            Err(Malformed::NulBytes)
        );
    }

    #[test]
    fn header_limits() {
        let long = format!("From: a@b.example\r\nSubject: {}", "x".repeat(100 * 1024));
        assert_eq!(
            inspect(&message(&long, "b")),
            Err(Malformed::HeaderLineTooLong)
        );
        let mut raw = b"From: a@b.example\r\nSubject: ".to_vec();
        raw.extend_from_slice(&[0xc3, 0x28]);
        raw.extend_from_slice(b"\r\n\r\nbody");
        assert_eq!(inspect(&raw), Err(Malformed::HeaderNotText));
        assert_eq!(inspect(&message("Subject: x", "b")), Err(Malformed::NoFrom));
        assert_eq!(
            inspect(&message("From: a@b.example, c@d.example", "b")),
            Err(Malformed::SeveralFrom)
        );
        assert_eq!(
            inspect(&message("From: a@b.example\r\nFrom: c@d.example", "b")),
            Err(Malformed::SeveralFrom)
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut body = String::from("innermost\r\n");
        for level in (0..100).rev() {
            body = format!(
                "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n{body}\r\n--b{level}--\r\n"
            );
        }
        let raw = format!("From: a@b.example\r\nMIME-Version: 1.0\r\n{body}");
        assert_eq!(inspect(raw.as_bytes()), Err(Malformed::TooDeep));
    }

    /// Found by fuzzing (fuzz target `inspect`): mail-parser 0.11.9 trips a debug assertion on a
    /// `message/rfc822` part with nothing after its header; the session must get an answer, not a panic.
    #[test]
    fn a_message_that_trips_mail_parser_is_refused_not_a_panic() {
        let raw = b"Content-Type:multipart/;boundary=o\n\n--oContent-Type:message/rfc822\n\n\
                    Content-Type:message/rfc822\n\n\n--o--";
        // Debug builds catch the parser's panic; release builds parse on. Neither crashes, and
        // there is no From address.
        assert!(inspect(raw).is_err());
        assert_eq!(
            crate::mail::bounce::classify("", raw),
            crate::mail::bounce::Returned::Failed
        );
    }

    #[test]
    fn base64_must_be_base64() {
        let make = |payload: &str| {
            format!(
                "From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
                 --x\r\nContent-Type: text/plain\r\n\r\nhallo\r\n\
                 --x\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n{payload}\r\n--x--\r\n"
            )
        };
        let good = inspect(make("SGFsbG8gd2VyZWxk\r\nIQ==").as_bytes()).unwrap();
        assert_eq!(good.attachments.len(), 1);
        assert_eq!(good.attachments[0].filename, "a.pdf");
        assert_eq!(good.attachments[0].content_type, "application/pdf");
        assert_eq!(
            inspect(make("SGFsbG8*** not base64 !!!").as_bytes()),
            Err(Malformed::InvalidBase64)
        );
    }
}
