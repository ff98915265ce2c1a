//! Cleaning attachments before they leave: what a file says about who made it, where and with what
//! is removed, or the file is refused with a reason the worker can act on. Never silently passed on.
//!
//! - JPEG: every APPn segment except JFIF (APP0) and Adobe (APP14), and comments, are dropped (EXIF,
//!   GPS, XMP, IPTC, maker notes).
//! - PNG: only the chunks needed to draw the image are kept (no text, EXIF, time or ICC profile).
//! - PDF: author, creator, producer, title, subject and keywords are blanked in place (same length,
//!   so the cross-reference table stays valid) and XMP packets are blanked; a PDF that hides such
//!   fields in compressed streams is refused.
//! - Office Open XML (docx, xlsx, pptx): document properties are replaced, author and initials
//!   attributes (comments, tracked changes) are emptied, embedded JPEG and PNG images are cleaned as
//!   above; other embedded files (objects, thumbnails in other formats) make the document refused.
//! - Plain text and CSV pass (the leak guard reads them).
//! - PGP keys and signatures are removed: they name their owner.
//! - Anything else is refused: the relay cannot vouch for what it cannot clean.

use std::io::{Read, Write};

use crate::mail::compose::Attachment;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("attachment {0}: this file type cannot be cleaned of identifying details; send it as PDF, JPEG, PNG, DOCX or plain text")]
    UnsupportedType(String),
    #[error("attachment {0}: {1}")]
    CannotClean(String, &'static str),
}

/// What became of an attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaned {
    Kept(Attachment),
    /// Removed entirely (PGP keys and signatures).
    Removed,
}

enum Kind {
    Jpeg,
    Png,
    Pdf,
    OfficeOpenXml,
    Text,
    Pgp,
    Other,
}

fn kind_of(attachment: &Attachment) -> Kind {
    let data = &attachment.data;
    let name = attachment.filename.to_ascii_lowercase();
    let declared = attachment.content_type.to_ascii_lowercase();
    let pgp_armor = data.windows(15).any(|w| w == b"-----BEGIN PGP ");
    if declared.starts_with("application/pgp")
        || [".asc", ".sig", ".gpg", ".pgp"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || pgp_armor
    {
        return Kind::Pgp;
    }
    if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Kind::Jpeg
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Kind::Png
    } else if data.starts_with(b"%PDF-") {
        Kind::Pdf
    } else if data.starts_with(b"PK\x03\x04")
        && [".docx", ".xlsx", ".pptx"]
            .iter()
            .any(|e| name.ends_with(e))
    {
        Kind::OfficeOpenXml
    } else if (declared.starts_with("text/plain") || declared.starts_with("text/csv"))
        && std::str::from_utf8(data).is_ok()
        && !data.contains(&0)
    {
        Kind::Text
    } else {
        Kind::Other
    }
}

pub fn sanitise(attachment: Attachment) -> Result<Cleaned, Refused> {
    let name = attachment.filename.clone();
    let cleaned =
        match kind_of(&attachment) {
            Kind::Pgp => return Ok(Cleaned::Removed),
            Kind::Jpeg => jpeg(&attachment.data)
                .ok_or(Refused::CannotClean(name, "the JPEG file is damaged"))?,
            Kind::Png => png(&attachment.data)
                .ok_or(Refused::CannotClean(name, "the PNG file is damaged"))?,
            Kind::Pdf => pdf(&attachment.data).map_err(|why| Refused::CannotClean(name, why))?,
            Kind::OfficeOpenXml => {
                office(&attachment.data).map_err(|why| Refused::CannotClean(name, why))?
            }
            Kind::Text => attachment.data.clone(),
            Kind::Other => return Err(Refused::UnsupportedType(name)),
        };
    Ok(Cleaned::Kept(Attachment {
        data: cleaned,
        ..attachment
    }))
}

/// Keeps the segments needed to decode the image; drops EXIF/XMP/IPTC/ICC/comments.
fn jpeg(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..2]);
    let mut pos = 2;
    loop {
        // Markers may be padded with 0xFF fill bytes.
        while data.get(pos) == Some(&0xff) && data.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        if data.get(pos)? != &0xff {
            return None;
        }
        let marker = *data.get(pos + 1)?;
        match marker {
            0xd9 => {
                out.extend_from_slice(&[0xff, 0xd9]);
                return Some(out);
            }
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => {
                out.extend_from_slice(&data[pos..pos + 2]);
                pos += 2;
                continue;
            }
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([
            *data.get(pos + 2)?,
            *data.get(pos + 3)?,
        ]));
        if length < 2 {
            return None;
        }
        let end = pos + 2 + length;
        let segment = data.get(pos..end)?;
        let keep = match marker {
            0xe0 => segment.get(4..9) == Some(b"JFIF\0"),
            0xee => true,
            0xe1..=0xed | 0xef | 0xfe => false,
            _ => true,
        };
        if keep {
            out.extend_from_slice(segment);
        }
        if marker == 0xda {
            // Start of scan: the entropy-coded data and the rest of the file follow.
            out.extend_from_slice(&data[end..]);
            return Some(out);
        }
        pos = end;
    }
}

/// Keeps the chunks needed to draw the image.
fn png(data: &[u8]) -> Option<Vec<u8>> {
    const KEEP: [&[u8; 4]; 10] = [
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs",
    ];
    let mut out = data.get(..8)?.to_vec();
    let mut pos = 8;
    while pos < data.len() {
        let length = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let chunk_type = data.get(pos + 4..pos + 8)?;
        let end = pos.checked_add(12)?.checked_add(length)?;
        let chunk = data.get(pos..end)?;
        if KEEP.iter().any(|k| k.as_slice() == chunk_type) {
            out.extend_from_slice(chunk);
        }
        if chunk_type == b"IEND" {
            return Some(out);
        }
        pos = end;
    }
    None
}

const PDF_FIELDS: [&[u8]; 6] = [
    b"/Author",
    b"/Creator",
    b"/Producer",
    b"/Title",
    b"/Subject",
    b"/Keywords",
];

fn pdf(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = data.to_vec();
    // XMP first: blanking it can leave a field name followed by a string that was not one before
    // (`/Author<` + blanked XMP + hex digits), which the field pass must then see (found by fuzzing).
    blank_between(&mut out, b"<x:xmpmeta", b"</x:xmpmeta>");
    blank_between(&mut out, b"<?xpacket begin", b"<?xpacket end");
    for field in PDF_FIELDS {
        let mut from = 0;
        while let Some(at) = find(&out[from..], field).map(|i| i + from) {
            let value_start = skip_whitespace(&out, at + field.len());
            blank_pdf_string(&mut out, value_start);
            from = at + field.len();
        }
    }
    // Fields hidden in compressed streams (object streams, compressed metadata) cannot be blanked
    // in place: refuse rather than pass them on.
    for stream in flate_streams(&out) {
        let identifying = PDF_FIELDS.iter().any(|field| {
            find(&stream, field).is_some_and(|at| {
                let value = skip_whitespace(&stream, at + field.len());
                has_content(&stream, value)
            })
        }) || find(&stream, b"xmpmeta").is_some();
        if identifying {
            return Err("the PDF hides author or program details in compressed parts; print it to a new PDF and attach that");
        }
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn skip_whitespace(data: &[u8], mut pos: usize) -> usize {
    while data.get(pos).is_some_and(|b| b.is_ascii_whitespace()) {
        pos += 1;
    }
    pos
}

/// Whether the PDF string at `pos` is non-empty.
fn has_content(data: &[u8], pos: usize) -> bool {
    match data.get(pos) {
        Some(b'(') => data.get(pos + 1) != Some(&b')'),
        Some(b'<') => data.get(pos + 1) != Some(&b'>'),
        _ => false,
    }
}

/// Overwrites the literal `(…)` or hex `<…>` string at `pos` with spaces, keeping its length.
fn blank_pdf_string(data: &mut [u8], pos: usize) {
    match data.get(pos) {
        Some(b'(') => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < data.len() {
                match data[i] {
                    b'\\' => {
                        data[i] = b' ';
                        if i + 1 < data.len() {
                            data[i + 1] = b' ';
                        }
                        i += 2;
                        continue;
                    }
                    b'(' => {
                        depth += 1;
                        if i != pos {
                            data[i] = b' ';
                        }
                    }
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            return;
                        }
                        data[i] = b' ';
                    }
                    _ => data[i] = b' ',
                }
                i += 1;
            }
        }
        Some(b'<') if data.get(pos + 1) != Some(&b'<') => {
            let mut i = pos + 1;
            while i < data.len() && data[i] != b'>' {
                if data[i].is_ascii_hexdigit() {
                    // "20" pairs: the string decodes to spaces.
                    data[i] = if (i - pos) % 2 == 1 { b'2' } else { b'0' };
                }
                i += 1;
            }
        }
        _ => {}
    }
}

/// Overwrites everything from `start` up to and including `end` with spaces, for every occurrence.
fn blank_between(data: &mut [u8], start: &[u8], end: &[u8]) {
    let mut from = 0;
    while let Some(s) = find(&data[from..], start).map(|i| i + from) {
        let Some(e) = find(&data[s..], end).map(|i| i + s + end.len()) else {
            return;
        };
        for byte in &mut data[s..e] {
            if *byte != b'\n' && *byte != b'\r' {
                *byte = b' ';
            }
        }
        from = e;
    }
}

/// The decompressed contents of every FlateDecode stream (bounded, to resist decompression bombs).
fn flate_streams(data: &[u8]) -> Vec<Vec<u8>> {
    const LIMIT: u64 = 32 * 1024 * 1024;
    let mut streams = Vec::new();
    let mut from = 0;
    while let Some(s) = find(&data[from..], b"stream").map(|i| i + from) {
        let mut body = s + 6;
        if data.get(body) == Some(&b'\r') {
            body += 1;
        }
        if data.get(body) == Some(&b'\n') {
            body += 1;
        }
        let Some(e) = find(&data[body..], b"endstream").map(|i| i + body) else {
            break;
        };
        let dict_start = data[..s].windows(2).rposition(|w| w == b"<<").unwrap_or(0);
        if find(&data[dict_start..s], b"/FlateDecode").is_some() {
            let mut decoded = Vec::new();
            let decoder = flate2::read::ZlibDecoder::new(&data[body..e]);
            if decoder.take(LIMIT).read_to_end(&mut decoded).is_ok() {
                streams.push(decoded);
            }
        }
        from = e + 9;
    }
    streams
}

/// Rewrites an Office Open XML package without document properties or author attributes.
fn office(data: &[u8]) -> Result<Vec<u8>, &'static str> {
    const DAMAGED: &str = "the document could not be read";
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|_| DAMAGED)?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|_| DAMAGED)?;
        let name = entry.name().to_string();
        if name == "docProps/custom.xml" || name.starts_with("customXml/") {
            continue;
        }
        let mut contents = Vec::new();
        entry
            .by_ref()
            .take(64 * 1024 * 1024)
            .read_to_end(&mut contents)
            .map_err(|_| DAMAGED)?;
        let lower = name.to_ascii_lowercase();
        let contents = match lower.as_str() {
            "docprops/core.xml" => EMPTY_CORE_PROPERTIES.as_bytes().to_vec(),
            "docprops/app.xml" => EMPTY_APP_PROPERTIES.as_bytes().to_vec(),
            _ if lower.ends_with(".xml") || lower.ends_with(".rels") => empty_attributes(
                &contents,
                &[b"w:author=\"", b"w:initials=\"", b" author=\""],
            ),
            // Photos pasted into a document keep their camera's EXIF and GPS.
            _ if contents.starts_with(&[0xff, 0xd8, 0xff]) => {
                jpeg(&contents).ok_or("an image in the document is damaged")?
            }
            _ if contents.starts_with(b"\x89PNG\r\n\x1a\n") => {
                png(&contents).ok_or("an image in the document is damaged")?
            }
            _ if lower.ends_with('/') || contents.is_empty() => contents,
            _ => {
                return Err("the document holds embedded files that cannot be cleaned; save it without them (or as PDF) and attach that")
            }
        };
        out.start_file(name, options).map_err(|_| DAMAGED)?;
        out.write_all(&contents).map_err(|_| DAMAGED)?;
    }
    Ok(out.finish().map_err(|_| DAMAGED)?.into_inner())
}

const EMPTY_CORE_PROPERTIES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n\
<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
xmlns:dc=\"http://purl.org/dc/elements/1.1/\"/>";

const EMPTY_APP_PROPERTIES: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n\
<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\"/>";

/// Empties the values of the named attributes (`name="value"` → `name=""`).
fn empty_attributes(xml: &[u8], names: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(xml.len());
    let mut pos = 0;
    while pos < xml.len() {
        let hit = names.iter().find(|name| xml[pos..].starts_with(name));
        match hit {
            Some(name) => {
                out.extend_from_slice(name);
                pos += name.len();
                while pos < xml.len() && xml[pos] != b'"' {
                    pos += 1;
                }
            }
            None => {
                out.push(xml[pos]);
                pos += 1;
            }
        }
    }
    out
}

/// The text a reader of the cleaned attachment would see, as far as the relay can read it, for the
/// leak guard: plain text as is, the text strings of a PDF's pages (uncompressed and Flate-compressed
/// content), the text of an Office document's XML parts. Images have none. Best effort: a PDF whose
/// fonts map glyphs without a readable encoding yields nothing readable.
pub fn readable_text(attachment: &Attachment) -> Option<String> {
    let data = &attachment.data;
    match kind_of(attachment) {
        Kind::Text => std::str::from_utf8(data).ok().map(str::to_string),
        Kind::Pdf => Some(pdf_text(data)),
        Kind::OfficeOpenXml => office_text(data),
        _ => None,
    }
}

/// The literal strings of text operators (`(…) Tj`, `[(…) -250 (…)] TJ`) in the PDF and its streams.
fn pdf_text(data: &[u8]) -> String {
    let mut text = String::new();
    for source in std::iter::once(data.to_vec()).chain(flate_streams(data)) {
        pdf_strings(&source, &mut text);
    }
    text
}

fn pdf_strings(content: &[u8], text: &mut String) {
    let mut i = 0;
    let mut in_array = false;
    while i < content.len() {
        match content[i] {
            b'[' => in_array = true,
            b']' => {
                in_array = false;
                text.push(' ');
            }
            b'(' => {
                let (string, end) = pdf_literal(content, i);
                text.push_str(&String::from_utf8_lossy(&string));
                if !in_array {
                    text.push(' ');
                }
                i = end;
                continue;
            }
            // A wide negative adjustment inside a TJ array is a word space.
            b'-' if in_array => {
                let digits = content[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits >= 3 {
                    text.push(' ');
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The bytes of the literal string starting at `start` (unescaped), and the position after it.
fn pdf_literal(content: &[u8], start: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = start;
    while i < content.len() {
        match content[i] {
            b'\\' => {
                match content.get(i + 1) {
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') | Some(b't') => out.push(b' '),
                    Some(&other) if !other.is_ascii_digit() => out.push(other),
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'(' => {
                if depth > 0 {
                    out.push(b'(');
                }
                depth += 1;
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return (out, i + 1);
                }
                out.push(b')');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    (out, i)
}

/// The character data of every XML part of an Office Open XML package; paragraph-like elements
/// become line breaks so that words of adjacent cells or paragraphs do not run together.
fn office_text(data: &[u8]) -> Option<String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(data)).ok()?;
    let mut text = String::new();
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).ok()?;
        if !entry.name().to_ascii_lowercase().ends_with(".xml") {
            continue;
        }
        let mut xml = Vec::new();
        entry
            .by_ref()
            .take(64 * 1024 * 1024)
            .read_to_end(&mut xml)
            .ok()?;
        xml_character_data(&String::from_utf8_lossy(&xml), &mut text);
        text.push('\n');
    }
    Some(text)
}

fn xml_character_data(xml: &str, text: &mut String) {
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        text.push_str(&unescape_xml(&rest[..open]));
        let Some(close) = rest[open..].find('>') else {
            return;
        };
        let tag = &rest[open + 1..open + close];
        // Runs (`w:r`, `w:t`) join into words; paragraphs, cells, rows and breaks separate them.
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if matches!(
            name,
            "w:p" | "w:br" | "w:tab" | "w:tc" | "a:p" | "a:br" | "c" | "si" | "row"
        ) {
            text.push(' ');
        }
        rest = &rest[open + close + 1..];
    }
    text.push_str(&unescape_xml(rest));
}

fn unescape_xml(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[doc(hidden)]
pub mod fixtures {
    //! Small files carrying identifying details, as phones and word processors write them (for the
    //! tests of this module and of the whole relay).

    /// A 1×1 JPEG with an EXIF segment (camera owner, GPS position) and a comment.
    pub fn jpeg_with_gps(owner: &str) -> Vec<u8> {
        fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
            let mut s = vec![0xff, marker];
            s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
            s.extend_from_slice(payload);
            s
        }
        let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
        exif.extend_from_slice(b"GPSLatitude 52.0907N GPSLongitude 5.1214E Owner ");
        exif.extend_from_slice(owner.as_bytes());
        let mut out = vec![0xff, 0xd8];
        out.extend(segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
        out.extend(segment(0xe1, &exif));
        out.extend(segment(0xfe, format!("taken by {owner}").as_bytes()));
        // A minimal baseline image: DQT, SOF0, DHT, SOS and scan data.
        let mut dqt = vec![0u8];
        dqt.extend_from_slice(&[1u8; 64]);
        out.extend(segment(0xdb, &dqt));
        out.extend(segment(0xc0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
        let mut dht = vec![0u8, 1];
        dht.extend_from_slice(&[0u8; 15]);
        dht.push(0);
        out.extend(segment(0xc4, &dht));
        out.extend(segment(0xda, &[1, 1, 0, 0, 0x3f, 0]));
        out.extend_from_slice(&[0x00, 0x3f]);
        out.extend_from_slice(&[0xff, 0xd9]);
        out
    }

    /// A one-page PDF whose Info dictionary names its author and the program.
    pub fn pdf_with_author(author: &str) -> Vec<u8> {
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>".to_string(),
            format!(
                "<< /Author ({author}) /Creator (Microsoft Word - {author}) /Producer (Writer) /Title (Verslag \\(concept\\)) >>"
            ),
        ];
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn attachment(filename: &str, content_type: &str, data: Vec<u8>) -> Attachment {
        Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            data,
        }
    }

    fn kept(result: Result<Cleaned, Refused>) -> Vec<u8> {
        match result.unwrap() {
            Cleaned::Kept(a) => a.data,
            Cleaned::Removed => panic!("removed"),
        }
    }

    #[test]
    fn jpeg_loses_exif_gps_and_comments_but_stays_a_jpeg() {
        let original = jpeg_with_gps("Jan Jansen");
        let cleaned = kept(sanitise(attachment(
            "foto.jpg",
            "image/jpeg",
            original.clone(),
        )));
        assert!(!cleaned.windows(4).any(|w| w == b"Exif"));
        assert!(!cleaned.windows(3).any(|w| w == b"GPS"));
        assert!(!cleaned.windows(10).any(|w| w == b"Jan Jansen"));
        assert!(cleaned.starts_with(&[0xff, 0xd8, 0xff, 0xe0]));
        assert!(cleaned.ends_with(&[0xff, 0xd9]));
        // Everything from the quantisation table on is unchanged.
        let tail = &original[original.windows(2).position(|w| w == [0xff, 0xdb]).unwrap()..];
        assert!(cleaned.ends_with(tail));
    }

    #[test]
    fn png_keeps_only_the_image() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        png.extend(chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        png.extend(chunk(b"tEXt", b"Author\0Jan Jansen"));
        png.extend(chunk(b"eXIf", b"MM\0*GPS"));
        png.extend(chunk(b"IDAT", b"data"));
        png.extend(chunk(b"IEND", b""));
        let cleaned = kept(sanitise(attachment("a.png", "image/png", png)));
        assert!(!cleaned.windows(10).any(|w| w == b"Jan Jansen"));
        assert!(!cleaned.windows(4).any(|w| w == b"eXIf"));
        assert!(cleaned.windows(4).any(|w| w == b"IDAT"));
    }

    #[test]
    fn pdf_fields_are_blanked_in_place() {
        let original = pdf_with_author("Jan Jansen");
        let cleaned = kept(sanitise(attachment(
            "v.pdf",
            "application/pdf",
            original.clone(),
        )));
        assert_eq!(cleaned.len(), original.len(), "offsets stay valid");
        assert!(!cleaned.windows(10).any(|w| w == b"Jan Jansen"));
        assert!(!cleaned.windows(9).any(|w| w == b"Microsoft"));
        assert!(cleaned.windows(7).any(|w| w == b"/Author"));
        assert!(cleaned.windows(4).any(|w| w == b"xref"));
    }

    /// Found by fuzzing (fuzz target `sanitise_pdf`): blanking the XMP packet after the fields left
    /// `/Author<` followed by hex digits, a new author string that a second pass still blanked.
    #[test]
    fn a_cleaned_pdf_has_nothing_left_to_blank() {
        let original = b"%PDF-/Author<<x:xmpmeta</x:xmpmeta>e".to_vec();
        let once = kept(sanitise(attachment("v.pdf", "application/pdf", original)));
        let twice = kept(sanitise(attachment(
            "v.pdf",
            "application/pdf",
            once.clone(),
        )));
        assert_eq!(once, twice);
        assert!(!once.contains(&b'e'), "{}", String::from_utf8_lossy(&once));
    }

    #[test]
    fn pdf_hiding_an_author_in_a_compressed_stream_is_refused() {
        let mut compressed = Vec::new();
        {
            let mut encoder =
                flate2::write::ZlibEncoder::new(&mut compressed, flate2::Compression::default());
            encoder.write_all(b"<< /Author (Jan Jansen) >>").unwrap();
            encoder.finish().unwrap();
        }
        let mut pdf =
            b"%PDF-1.5\n1 0 obj\n<< /Type /ObjStm /Filter /FlateDecode >>\nstream\n".to_vec();
        pdf.extend_from_slice(&compressed);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        let err = sanitise(attachment("v.pdf", "application/pdf", pdf)).unwrap_err();
        assert!(err.to_string().contains("print it to a new PDF"), "{err}");
    }

    #[test]
    fn office_documents_lose_their_properties_and_authors() {
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            zip.start_file("docProps/core.xml", options).unwrap();
            zip.write_all(
                b"<cp:coreProperties><dc:creator>Jan Jansen</dc:creator></cp:coreProperties>",
            )
            .unwrap();
            zip.start_file("docProps/app.xml", options).unwrap();
            zip.write_all(b"<Properties><Company>Jeugdbescherming</Company></Properties>")
                .unwrap();
            zip.start_file("word/document.xml", options).unwrap();
            zip.write_all(b"<w:ins w:author=\"Jan Jansen\" w:date=\"x\">tekst</w:ins>")
                .unwrap();
            zip.finish().unwrap();
        }
        let cleaned = kept(sanitise(attachment(
            "brief.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            buffer.into_inner(),
        )));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(cleaned)).unwrap();
        let mut all = String::new();
        for i in 0..archive.len() {
            archive
                .by_index(i)
                .unwrap()
                .read_to_string(&mut all)
                .unwrap();
        }
        assert!(
            !all.contains("Jan Jansen") && !all.contains("Jeugdbescherming"),
            "{all}"
        );
        assert!(all.contains("tekst"));
    }

    fn docx(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buffer = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut buffer);
            let options = zip::write::SimpleFileOptions::default();
            for (name, contents) in entries {
                zip.start_file(*name, options).unwrap();
                zip.write_all(contents).unwrap();
            }
            zip.finish().unwrap();
        }
        buffer.into_inner()
    }

    #[test]
    fn images_inside_office_documents_lose_their_exif() {
        let photo = jpeg_with_gps("Jan Jansen");
        let document = docx(&[
            (
                "word/document.xml",
                b"<w:p><w:r><w:t>foto</w:t></w:r></w:p>",
            ),
            ("word/media/image1.jpeg", &photo),
        ]);
        let cleaned = kept(sanitise(attachment(
            "foto.docx",
            "application/octet-stream",
            document,
        )));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(cleaned)).unwrap();
        let mut image = Vec::new();
        archive
            .by_name("word/media/image1.jpeg")
            .unwrap()
            .read_to_end(&mut image)
            .unwrap();
        assert!(image.starts_with(&[0xff, 0xd8]));
        assert!(!image.windows(3).any(|w| w == b"GPS"));
        assert!(!image.windows(10).any(|w| w == b"Jan Jansen"));
        // An embedded object the relay cannot clean makes the whole document refused.
        let with_object = docx(&[
            ("word/document.xml", b"<w:p/>"),
            (
                "word/embeddings/oleObject1.bin",
                b"\xd0\xcf\x11\xe0 Jan Jansen",
            ),
        ]);
        assert!(matches!(
            sanitise(attachment(
                "brief.docx",
                "application/octet-stream",
                with_object
            )),
            Err(Refused::CannotClean(..))
        ));
    }

    #[test]
    fn the_leak_guard_can_read_pdf_and_office_text() {
        // Kerned words in a TJ array join; a wide adjustment is a space.
        let page = b"BT /F1 12 Tf [(J)20(an)-300(Jan)15(sen)] TJ (bel 06-12 34 56 78) Tj ET";
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(page).unwrap();
        let compressed = encoder.finish().unwrap();
        let mut pdf = b"%PDF-1.4\n1 0 obj\n<< /Length ".to_vec();
        pdf.extend_from_slice(
            format!("{} /Filter /FlateDecode >>\nstream\n", compressed.len()).as_bytes(),
        );
        pdf.extend_from_slice(&compressed);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        let text = readable_text(&attachment("brief.pdf", "application/pdf", pdf)).unwrap();
        assert!(text.contains("Jan Jansen"), "{text}");
        assert!(text.contains("06-12 34 56 78"), "{text}");

        let document = docx(&[(
            "word/document.xml",
            b"<w:p><w:r><w:t>Met vriendelijke groet,</w:t></w:r></w:p><w:p><w:r><w:t>Jan</w:t></w:r><w:r><w:t xml:space=\"preserve\"> Jan</w:t></w:r><w:r><w:t>sen &amp; co</w:t></w:r></w:p>",
        )]);
        let text = readable_text(&attachment(
            "brief.docx",
            "application/octet-stream",
            document,
        ))
        .unwrap();
        assert!(
            text.contains("groet,") && text.contains(" Jan Jansen & co"),
            "{text}"
        );
        assert_eq!(
            readable_text(&attachment(
                "x.png",
                "image/png",
                b"\x89PNG\r\n\x1a\n".to_vec()
            )),
            None
        );
    }

    #[test]
    fn pgp_is_removed_and_unknown_types_are_refused() {
        let key = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n...".to_vec();
        assert_eq!(
            sanitise(attachment("sleutel.asc", "application/pgp-keys", key)).unwrap(),
            Cleaned::Removed
        );
        let sig = attachment("signature.asc", "application/pgp-signature", b"x".to_vec());
        assert_eq!(sanitise(sig).unwrap(), Cleaned::Removed);
        let exe = attachment("tool.exe", "application/octet-stream", b"MZ\x90\0".to_vec());
        assert!(matches!(sanitise(exe), Err(Refused::UnsupportedType(_))));
        let text = attachment("notities.txt", "text/plain", b"hallo".to_vec());
        assert_eq!(kept(sanitise(text)), b"hallo");
    }
}
