//! The readings of a text: as written, and as a recipient's program may show it.

use std::borrow::Cow;

/// The text as written, and as programs may show it: RFC 2047 encoded words decoded (a file name
/// or subject written as `=?UTF-8?B?…?=`), percent-escapes decoded (RFC 2231 file names, links),
/// and right-to-left overrides undone.
pub(super) fn readings(text: &str) -> Vec<Cow<'_, str>> {
    let mut out = vec![Cow::Borrowed(text)];
    if let Some(decoded) = encoded_words(text) {
        out.push(Cow::Owned(decoded));
    }
    if let Some(decoded) = percent_decoded(text) {
        if let Some(both) = encoded_words(&decoded) {
            out.push(Cow::Owned(both));
        }
        out.push(Cow::Owned(decoded));
    }
    if text.contains('\u{202e}') {
        out.push(Cow::Owned(overrides_undone(text)));
    }
    out
}

/// The text with its RFC 2047 encoded words decoded; `None` when it has none.
pub(super) fn encoded_words(text: &str) -> Option<String> {
    if !text.contains("=?") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut decoded_any = false;
    let mut after_word = false;
    while let Some(at) = rest.find("=?") {
        let between = &rest[..at];
        let word = encoded_word(&rest[at..]);
        // White space between two encoded words is not shown.
        if !(after_word && word.is_some() && between.trim().is_empty()) {
            out.push_str(between);
        }
        match word {
            Some((decoded, length)) => {
                out.push_str(&decoded);
                rest = &rest[at + length..];
                decoded_any = true;
                after_word = true;
            }
            None => {
                out.push_str("=?");
                rest = &rest[at + 2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    decoded_any.then_some(out)
}

/// One encoded word `=?charset?B|Q?text?=` at the start of `text`: its text and its length.
fn encoded_word(text: &str) -> Option<(String, usize)> {
    let inner = text.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let payload = &rest[..end];
    if charset.is_empty() || payload.contains(char::is_whitespace) {
        return None;
    }
    let length = 2 + charset.len() + 1 + encoding.len() + 1 + end + 2;
    let bytes = match encoding {
        "B" | "b" => {
            let clean = payload.trim_end_matches('=');
            data_encoding::BASE64_NOPAD.decode(clean.as_bytes()).ok()?
        }
        "Q" | "q" => {
            let mut out = Vec::new();
            let raw = payload.as_bytes();
            let mut i = 0;
            while i < raw.len() {
                match raw[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    other => out.push(other),
                }
                i += 1;
            }
            out
        }
        _ => return None,
    };
    // RFC 2231 lets a language follow the character set: `utf-8*nl`.
    let charset = charset.split('*').next().unwrap_or(charset);
    let decoded = crate::mail::sanitize::text::decode(charset, &bytes)
        .unwrap_or_else(|| bytes_as_text(&bytes));
    Some((decoded, length))
}

/// UTF-8 when the bytes are, else Windows-1252.
fn bytes_as_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_) => bytes
            .iter()
            .map(|b| crate::mail::sanitize::text::cp1252(*b))
            .collect(),
    }
}

/// The text with `%XX` escapes decoded; `None` when it has none.
pub(super) fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut decoded_any = false;
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escape {
            Some(byte) => {
                out.push(byte);
                decoded_any = true;
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    decoded_any.then(|| bytes_as_text(&out))
}

/// The text as shown: what stands between a right-to-left override (U+202E) and the end of the
/// override (U+202C) or of the line is drawn in reverse order.
pub(super) fn overrides_undone(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut reversed: Option<Vec<char>> = None;
    for c in text.chars() {
        match (&mut reversed, c) {
            (None, '\u{202e}') => reversed = Some(Vec::new()),
            (Some(run), '\u{202c}' | '\n' | '\r' | '\u{2029}') => {
                out.extend(run.iter().rev());
                if c != '\u{202c}' {
                    out.push(c);
                }
                reversed = None;
            }
            (Some(run), _) => run.push(c),
            (None, _) => out.push(c),
        }
    }
    if let Some(run) = reversed {
        out.extend(run.iter().rev());
    }
    out
}
