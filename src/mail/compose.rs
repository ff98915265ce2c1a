//! Building outgoing messages from scratch, header by header: nothing of any original message is
//! copied except what is named here. Dates are UTC with a fixed width, Message-IDs are random on the
//! relay domain, non-ASCII header text is RFC 2047 encoded, bodies are base64.

use crate::clock::Millis;
use crate::mail::MsgId;

/// `Mon, 02 Nov 2026 18:14:42 +0000`: always UTC (no time zone of the server or worker) and always the
/// same width.
pub fn rfc5322_date(millis: Millis) -> String {
    let time = jiff::Timestamp::from_millisecond(millis)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC);
    time.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// `32 hex digits@domain`.
pub fn new_message_id(domain: &str) -> MsgId {
    MsgId::parse(&format!("{}@{domain}", crate::crypto::random_id()))
        .expect("a random id on the relay domain is a Message-ID")
}

/// A header value: ASCII as it is (without line breaks), anything else as a UTF-8 encoded word.
pub fn header_text(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        clean
    } else {
        // Encoded words are at most 75 characters: split the text into chunks of whole characters.
        let mut words = Vec::new();
        let mut chunk = String::new();
        for c in clean.chars() {
            if chunk.len() + c.len_utf8() > 45 {
                words.push(std::mem::take(&mut chunk));
            }
            chunk.push(c);
        }
        if !chunk.is_empty() {
            words.push(chunk);
        }
        words
            .iter()
            .map(|w| format!("=?UTF-8?B?{}?=", data_encoding::BASE64.encode(w.as_bytes())))
            .collect::<Vec<_>>()
            .join("\r\n ")
    }
}

/// `"Display Name" <address>` with the name encoded when needed.
pub fn mailbox(display_name: &str, address: &str) -> String {
    let name = header_text(display_name);
    if name.is_empty() {
        format!("<{address}>")
    } else if name.starts_with("=?") {
        format!("{name} <{address}>")
    } else {
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{quoted}\" <{address}>")
    }
}

/// Base64 in lines of 76 characters, CRLF-terminated.
pub fn base64_lines(data: &[u8]) -> String {
    let encoded = data_encoding::BASE64.encode(data);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// A file attached to an outgoing message (already sanitised).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// The headers of an outgoing message, in the only form they can take.
pub struct Headers<'a> {
    pub from: String,
    pub to: &'a str,
    pub subject: &'a str,
    pub date: Millis,
    pub message_id: &'a MsgId,
    pub in_reply_to: Option<&'a MsgId>,
    pub references: &'a [MsgId],
}

/// The whole message: whitelisted headers, a UTF-8 text part, and the attachments.
pub fn message(headers: &Headers<'_>, body: &str, attachments: &[Attachment]) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(&format!("From: {}\r\n", headers.from));
    out.push_str(&format!("To: <{}>\r\n", headers.to));
    out.push_str(&format!("Subject: {}\r\n", header_text(headers.subject)));
    out.push_str(&format!("Date: {}\r\n", rfc5322_date(headers.date)));
    out.push_str(&format!("Message-ID: <{}>\r\n", headers.message_id));
    if let Some(parent) = headers.in_reply_to {
        out.push_str(&format!("In-Reply-To: <{parent}>\r\n"));
    }
    if !headers.references.is_empty() {
        let refs: Vec<String> = headers
            .references
            .iter()
            .map(|r| format!("<{r}>"))
            .collect();
        out.push_str(&format!("References: {}\r\n", refs.join("\r\n ")));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let text_part = format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
        base64_lines(body.as_bytes())
    );
    if attachments.is_empty() {
        out.push_str(&text_part);
        return out.into_bytes();
    }
    let boundary = format!("=_{}", crate::crypto::random_id());
    out.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str(&format!("--{boundary}\r\n{text_part}"));
    for attachment in attachments {
        let name = header_text(&attachment.filename).replace('"', "");
        out.push_str(&format!(
            "--{boundary}\r\nContent-Type: {}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{}",
            attachment.content_type,
            base64_lines(&attachment.data)
        ));
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_and_fixed_width() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        let a = rfc5322_date(1_762_000_000_000);
        let b = rfc5322_date(1_764_000_000_000);
        assert_eq!(a.len(), b.len());
        assert!(a.ends_with("+0000"));
    }

    #[test]
    fn header_text_is_safe() {
        assert_eq!(header_text("Aanmelding"), "Aanmelding");
        assert_eq!(header_text("a\r\nBcc: x@y"), "aBcc: x@y");
        let encoded = header_text("Overdracht één");
        assert!(encoded.starts_with("=?UTF-8?B?"), "{encoded}");
        assert_eq!(
            mailbox("LET-medewerker 17", "k7@relay.example"),
            "\"LET-medewerker 17\" <k7@relay.example>"
        );
    }

    fn id(text: &str) -> MsgId {
        MsgId::parse(text).unwrap()
    }

    #[test]
    fn message_has_only_whitelisted_headers() {
        let headers = Headers {
            from: mailbox("LET-medewerker 17", "k7@relay.example"),
            to: "team@jbwest.example",
            subject: "Re: Aanmelding",
            date: 0,
            message_id: &id("abc@relay.example"),
            in_reply_to: Some(&id("<orig@jbwest.example>")),
            references: &[id("first@jbwest.example")],
        };
        let raw = message(
            &headers,
            "Dank",
            &[Attachment {
                filename: "verslag.pdf".into(),
                content_type: "application/pdf".into(),
                data: b"%PDF".to_vec(),
            }],
        );
        let text = String::from_utf8(raw).unwrap();
        let header_names: Vec<&str> = text
            .split("\r\n\r\n")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(
            header_names,
            [
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "In-Reply-To",
                "References",
                "MIME-Version",
                "Content-Type"
            ]
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(text.as_bytes())
            .unwrap();
        assert_eq!(parsed.body_text(0).unwrap().trim(), "Dank");
        assert_eq!(parsed.attachment_count(), 1);
        assert_eq!(parsed.in_reply_to().as_text(), Some("orig@jbwest.example"));
    }
}
