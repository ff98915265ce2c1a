//! Plain text and CSV, and the character sets the relay can read (shared with the PDF reader and
//! the leak guard's reading of encoded header words).
//!
//! A text attachment is decoded from what its byte order mark or declared `charset` says (UTF-8,
//! UTF-16, UTF-7, US-ASCII, ISO-8859-1, ISO-8859-15, Windows-1252) and passed on as UTF-8 with a
//! content type the relay writes itself; text in any other encoding is refused, because the leak
//! guard could not read what the recipient's program will show.

use super::Problem;

/// Whether a declared content type is one the relay passes as text.
pub(super) fn is_text_type(declared: &str) -> bool {
    let essence = declared.split(';').next().unwrap_or("").trim();
    essence == "text/plain" || essence == "text/csv"
}

/// The text as UTF-8 and the content type it leaves with.
pub(super) fn clean(data: &[u8], content_type: &str) -> Result<(Vec<u8>, String), Problem> {
    let text = read(data, content_type)?;
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    // Written without byte order marks: a U+FEFF left at the start (a second mark after the first,
    // found by fuzzing) would be read as a UTF-8 mark by the next reader, and the text would change.
    let text = text.trim_start_matches('\u{feff}');
    Ok((
        text.as_bytes().to_vec(),
        format!("{essence}; charset=utf-8"),
    ))
}

/// The text of a text attachment.
pub(super) fn read(data: &[u8], content_type: &str) -> Result<String, Problem> {
    let text = decode_document(data, charset_parameter(content_type).as_deref())
        .ok_or(Problem::CannotClean(
        "the text is not in an encoding the relay can read; save it as UTF-8 and attach it again",
    ))?;
    if text.contains('\0') {
        return Err(Problem::CannotClean(
            "the file holds binary data, not text; send it as PDF or as plain text",
        ));
    }
    Ok(text)
}

/// The `charset` parameter of a content type, lower case, without quotes.
fn charset_parameter(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    })
}

/// A whole document: a byte order mark decides, then the declared character set, then UTF-8.
pub(crate) fn decode_document(data: &[u8], charset: Option<&str>) -> Option<String> {
    if data.starts_with(&[0xff, 0xfe, 0, 0]) || data.starts_with(&[0, 0, 0xfe, 0xff]) {
        return None; // UTF-32
    }
    if let Some(rest) = data.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8(rest.to_vec()).ok();
    }
    if let Some(rest) = data.strip_prefix(&[0xff, 0xfe]) {
        return utf16(rest, false);
    }
    if let Some(rest) = data.strip_prefix(&[0xfe, 0xff]) {
        return utf16(rest, true);
    }
    decode(charset.unwrap_or("utf-8"), data)
}

/// Bytes in a named character set, if the relay knows it.
pub(crate) fn decode(charset: &str, data: &[u8]) -> Option<String> {
    let charset = charset.trim().to_ascii_lowercase();
    match charset.as_str() {
        "utf-8" | "utf8" | "us-ascii" | "ascii" => String::from_utf8(data.to_vec()).ok(),
        "utf-16be" => utf16(data, true),
        "utf-16le" => utf16(data, false),
        // Without a byte order mark UTF-16 is big-endian (RFC 2781).
        "utf-16" => match data {
            [0xff, 0xfe, rest @ ..] => utf16(rest, false),
            [0xfe, 0xff, rest @ ..] => utf16(rest, true),
            _ => utf16(data, true),
        },
        "utf-7" | "utf7" => utf7(data),
        "iso-8859-1" | "latin1" | "latin-1" | "iso8859-1" | "iso_8859-1" | "l1" => {
            Some(data.iter().map(|&b| char::from(b)).collect())
        }
        "iso-8859-15" | "latin9" | "latin-9" | "iso8859-15" => {
            Some(data.iter().map(|&b| latin9(b)).collect())
        }
        "windows-1252" | "cp1252" | "x-cp1252" => Some(data.iter().map(|&b| cp1252(b)).collect()),
        _ => None,
    }
}

fn utf16(data: &[u8], big_endian: bool) -> Option<String> {
    if !data.len().is_multiple_of(2) {
        return None;
    }
    let units = data.chunks_exact(2).map(|pair| {
        if big_endian {
            u16::from_be_bytes([pair[0], pair[1]])
        } else {
            u16::from_le_bytes([pair[0], pair[1]])
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .ok()
}

/// UTF-7 (RFC 2152): `+` opens modified base64 of UTF-16, `-` or any other character closes it.
fn utf7(data: &[u8]) -> Option<String> {
    fn sextet(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = String::new();
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        if b >= 0x80 {
            return None;
        }
        if b != b'+' {
            out.push(char::from(b));
            i += 1;
            continue;
        }
        i += 1;
        if data.get(i) == Some(&b'-') {
            out.push('+');
            i += 1;
            continue;
        }
        let (mut bits, mut count, mut units) = (0u32, 0u32, Vec::new());
        while let Some(value) = data.get(i).and_then(|&b| sextet(b)) {
            bits = (bits << 6) | value;
            count += 6;
            if count >= 16 {
                count -= 16;
                units.push((bits >> count) as u16);
                bits &= (1 << count) - 1;
            }
            i += 1;
        }
        if data.get(i) == Some(&b'-') {
            i += 1;
        }
        out.push_str(
            &char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()?,
        );
    }
    Some(out)
}

/// Windows-1252, which most programs use for text labelled ISO-8859-1 too.
pub(crate) fn cp1252(b: u8) -> char {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match b {
        0x80..=0x9f => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

fn latin9(b: u8) -> char {
    match b {
        0xa4 => '€',
        0xa6 => 'Š',
        0xa8 => 'š',
        0xb4 => 'Ž',
        0xb8 => 'ž',
        0xbc => 'Œ',
        0xbd => 'œ',
        0xbe => 'Ÿ',
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaned_text_starts_without_byte_order_marks() {
        // UTF-16BE with its mark, then a second mark as the first character (found by fuzzing).
        let data = [0xfe, 0xff, 0xfe, 0xff, 0x00, 0x68, 0x00, 0x69];
        let (once, content_type) = clean(&data, "text/plain").unwrap();
        assert_eq!(once, b"hi");
        assert_eq!(clean(&once, &content_type).unwrap().0, once);
    }

    #[test]
    fn encodings_the_relay_reads() {
        let mut utf16le = vec![0xff, 0xfe];
        for unit in "Jan Jansen".encode_utf16() {
            utf16le.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(read(&utf16le, "text/plain").unwrap(), "Jan Jansen");
        let utf16be: Vec<u8> = "Jan".encode_utf16().flat_map(u16::to_be_bytes).collect();
        assert_eq!(read(&utf16be, "text/plain; charset=UTF-16").unwrap(), "Jan");
        assert_eq!(
            read(b"+AEo-ansen +-1", "text/plain; charset=utf-7").unwrap(),
            "Jansen +1"
        );
        assert_eq!(
            read(b"Vri\xebs \x80", "text/csv; charset=\"windows-1252\"").unwrap(),
            "Vriës €"
        );
        assert_eq!(read(b"\xef\xbb\xbfhallo", "text/plain").unwrap(), "hallo");
        assert!(read(b"\x1b$B", "text/plain; charset=iso-2022-jp").is_err());
        assert!(read(b"Vri\xebs", "text/plain").is_err(), "not UTF-8");
        assert!(read(b"a\0b", "text/plain").is_err(), "binary");
        assert_eq!(
            clean(b"hallo", "Text/Plain; charset=us-ascii; name=x").unwrap(),
            (b"hallo".to_vec(), "text/plain; charset=utf-8".to_string())
        );
    }
}
