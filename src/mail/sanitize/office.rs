//! Office Open XML (docx, xlsx, pptx): rewritten without document properties or author attributes,
//! with embedded photos cleaned, and read for the leak guard (character data, attribute values such
//! as alternative texts and link targets, and the names of the parts).

use std::io::{Cursor, Write};

use super::{jpeg, png, text, Budget, Problem, Unpack};

const DAMAGED: Problem = Problem::CannotClean("the document could not be read");
const UNREADABLE_XML: Problem =
    Problem::Unreadable("a part of the document is in a character encoding the relay cannot read");
/// More parts than any real document has; a package with more is refused before it is read.
const MAX_ENTRIES: usize = 10_000;

/// The content type of an Office Open XML file, by its (lower-case) file name; `None` for others.
pub(super) fn content_type(lower_name: &str) -> Option<&'static str> {
    [
        (
            ".docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            ".xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            ".pptx",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ]
    .into_iter()
    .find(|(extension, _)| lower_name.ends_with(extension))
    .map(|(_, content_type)| content_type)
}

fn unpacked(result: Result<Vec<u8>, Unpack>) -> Result<Vec<u8>, Problem> {
    result.map_err(|e| match e {
        Unpack::OverBudget => Problem::TooLarge,
        Unpack::Damaged => DAMAGED,
    })
}

fn open(data: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, Problem> {
    let archive = zip::ZipArchive::new(Cursor::new(data)).map_err(|_| DAMAGED)?;
    if archive.len() > MAX_ENTRIES {
        return Err(DAMAGED);
    }
    Ok(archive)
}

/// Rewrites the package without document properties or author attributes.
pub(super) fn clean(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, Problem> {
    let mut archive = open(data)?;
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|_| DAMAGED)?;
        let name = entry.name().to_string();
        if name == "docProps/custom.xml" || name.starts_with("customXml/") {
            continue;
        }
        let contents = unpacked(budget.read_all(entry))?;
        let lower = name.to_ascii_lowercase();
        let contents = match lower.as_str() {
            "docprops/core.xml" => EMPTY_CORE_PROPERTIES.as_bytes().to_vec(),
            "docprops/app.xml" => EMPTY_APP_PROPERTIES.as_bytes().to_vec(),
            _ if lower.ends_with(".xml") || lower.ends_with(".rels") => {
                let xml = as_utf8_xml(&contents)?;
                empty_attributes(&xml, AUTHOR_ATTRIBUTES).into_bytes()
            }
            // Photos pasted into a document keep their camera's EXIF and GPS.
            _ if contents.starts_with(&[0xff, 0xd8, 0xff]) => {
                jpeg::clean(&contents).ok_or(Problem::CannotClean("an image in the document is damaged"))?
            }
            _ if contents.starts_with(png::SIGNATURE) => {
                png::clean(&contents).ok_or(Problem::CannotClean("an image in the document is damaged"))?
            }
            _ if lower.ends_with('/') || contents.is_empty() => contents,
            _ => {
                return Err(Problem::CannotClean("the document holds embedded files that cannot be cleaned; save it without them (or as PDF) and attach that"))
            }
        };
        out.start_file(name, options).map_err(|_| DAMAGED)?;
        out.write_all(&contents).map_err(|_| DAMAGED)?;
    }
    Ok(out.finish().map_err(|_| DAMAGED)?.into_inner())
}

const AUTHOR_ATTRIBUTES: &[&str] = &[
    "w:author",
    "w:initials",
    "author",
    "w15:author",
    "w15:userId",
];

const EMPTY_CORE_PROPERTIES: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n\
<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
xmlns:dc=\"http://purl.org/dc/elements/1.1/\"/>";

const EMPTY_APP_PROPERTIES: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\r\n\
<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\"/>";

/// An XML part as text, whatever encoding its byte order mark or declaration names.
fn decode_xml(bytes: &[u8]) -> Result<String, Problem> {
    let has_bom = bytes.starts_with(&[0xef, 0xbb, 0xbf])
        || bytes.starts_with(&[0xff, 0xfe])
        || bytes.starts_with(&[0xfe, 0xff]);
    if has_bom {
        return text::decode_document(bytes, None).ok_or(UNREADABLE_XML);
    }
    if bytes.starts_with(b"<\0") {
        return text::decode("utf-16le", bytes).ok_or(UNREADABLE_XML);
    }
    if bytes.starts_with(b"\0<") {
        return text::decode("utf-16be", bytes).ok_or(UNREADABLE_XML);
    }
    match declared_encoding(bytes) {
        None => Ok(String::from_utf8_lossy(bytes).into_owned()),
        Some(name) if matches!(name.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") => {
            Ok(String::from_utf8_lossy(bytes).into_owned())
        }
        Some(name) => text::decode(&name, bytes).ok_or(UNREADABLE_XML),
    }
}

/// The `encoding` of the XML declaration, lower case.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = bytes.get(..bytes.len().min(200))?;
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = super::find(head, b"?>")?;
    let declaration = String::from_utf8_lossy(&head[..end]);
    let at = declaration.find("encoding")?;
    let rest = declaration[at + "encoding".len()..].trim_start();
    let rest = rest.strip_prefix('=')?.trim_start();
    let quote = rest.chars().next()?;
    let value = rest[1..].split(quote).next()?;
    Some(value.to_ascii_lowercase())
}

/// The part as UTF-8 text, its declaration saying so.
fn as_utf8_xml(bytes: &[u8]) -> Result<String, Problem> {
    let xml = decode_xml(bytes)?;
    let plain_utf8 = std::str::from_utf8(bytes).is_ok()
        && !bytes.starts_with(&[0xef, 0xbb, 0xbf])
        && declared_encoding(bytes).is_none_or(|e| matches!(e.as_str(), "utf-8" | "utf8"));
    if plain_utf8 {
        return Ok(xml);
    }
    let xml = xml.trim_start_matches('\u{feff}');
    match (xml.starts_with("<?xml"), xml.find("?>")) {
        (true, Some(end)) => Ok(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{}",
            &xml[end + 2..]
        )),
        _ => Ok(xml.to_string()),
    }
}

/// Empties the values of the named attributes (`name="value"` or `name='value'` → `name=""`).
fn empty_attributes(xml: &str, names: &[&str]) -> String {
    let bytes = xml.as_bytes();
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0;
    let mut pos = 0;
    while pos < bytes.len() {
        let at_boundary = pos > 0 && bytes[pos - 1].is_ascii_whitespace();
        let hit = at_boundary
            .then(|| {
                names
                    .iter()
                    .find(|name| bytes[pos..].starts_with(name.as_bytes()))
            })
            .flatten();
        let Some(name) = hit else {
            pos += 1;
            continue;
        };
        let mut i = pos + name.len();
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if bytes.get(i) != Some(&b'=') {
            pos += 1;
            continue;
        }
        i += 1;
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let Some(&quote) = bytes.get(i).filter(|q| **q == b'"' || **q == b'\'') else {
            pos += 1;
            continue;
        };
        let Some(close) = bytes[i + 1..].iter().position(|b| *b == quote) else {
            break;
        };
        out.push_str(&xml[copied..=i]);
        copied = i + 1 + close;
        pos = copied + 1;
    }
    out.push_str(&xml[copied..]);
    out
}

/// Everything a reader of the package can see: the names of its parts, the character data of
/// every XML part (paragraph-like elements become line breaks so that the words of adjacent cells
/// or paragraphs do not run together; runs join), and the attribute values (alternative texts,
/// link targets, comments' authors).
pub(super) fn text(data: &[u8], budget: &mut Budget) -> Result<String, Problem> {
    let mut archive = open(data)?;
    let mut out = String::new();
    for index in 0..archive.len() {
        let entry = archive.by_index(index).map_err(|_| DAMAGED)?;
        let name = entry.name().to_string();
        out.push_str(&name);
        out.push('\n');
        let lower = name.to_ascii_lowercase();
        if !(lower.ends_with(".xml") || lower.ends_with(".rels")) {
            continue;
        }
        let xml = decode_xml(&unpacked(budget.read_all(entry))?)?;
        xml_text(&xml, &mut out);
        out.push('\n');
    }
    Ok(out)
}

/// Appends the character data of `xml`, then its attribute values.
pub(super) fn xml_text(xml: &str, out: &mut String) {
    let mut attributes = String::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        unescape_into(&rest[..open], out);
        rest = &rest[open..];
        let skip_to = |rest: &str, end: &str| rest.find(end).map(|i| i + end.len());
        if rest.starts_with("<!--") {
            let Some(end) = skip_to(rest, "-->") else {
                return;
            };
            rest = &rest[end..];
        } else if let Some(data) = rest.strip_prefix("<![CDATA[") {
            let end = data.find("]]>").unwrap_or(data.len());
            out.push_str(&data[..end]);
            rest = data.get(end + 3..).unwrap_or("");
        } else if rest.starts_with("<?") {
            let Some(end) = skip_to(rest, "?>") else {
                return;
            };
            rest = &rest[end..];
        } else if rest.starts_with("<!") {
            let Some(end) = skip_to(rest, ">") else {
                return;
            };
            rest = &rest[end..];
        } else {
            let Some(end) = tag_end(rest) else { return };
            let tag = &rest[1..end];
            let name = tag
                .trim_start_matches('/')
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .unwrap_or("");
            // Runs (`w:r`, `w:t`) join into words; paragraphs, cells, rows and breaks separate them.
            if matches!(
                name,
                "w:p"
                    | "w:br"
                    | "w:cr"
                    | "w:tab"
                    | "w:tc"
                    | "a:p"
                    | "a:br"
                    | "a:tab"
                    | "c"
                    | "si"
                    | "row"
                    | "v"
                    | "is"
            ) {
                out.push(' ');
            }
            attribute_values(tag, &mut attributes);
            rest = &rest[end + 1..];
        }
    }
    unescape_into(rest, out);
    out.push('\n');
    out.push_str(&attributes);
}

/// The position of the `>` that closes the tag at the start of `rest` (quotes respected).
fn tag_end(rest: &str) -> Option<usize> {
    let mut quote = None;
    for (i, b) in rest.bytes().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'>') => return Some(i),
            _ => {}
        }
    }
    None
}

/// Appends the values of a tag's attributes (not namespace declarations), each on its own line.
fn attribute_values(tag: &str, out: &mut String) {
    let mut rest = tag;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq].split_whitespace().last().unwrap_or("");
        let after = rest[eq + 1..].trim_start();
        let Some(quote) = after.chars().next().filter(|q| *q == '"' || *q == '\'') else {
            rest = &rest[eq + 1..];
            continue;
        };
        let value_and_rest = &after[1..];
        let end = value_and_rest.find(quote).unwrap_or(value_and_rest.len());
        if !(name == "xmlns" || name.starts_with("xmlns:")) {
            unescape_into(&value_and_rest[..end], out);
            out.push('\n');
        }
        rest = value_and_rest.get(end + 1..).unwrap_or("");
    }
}

/// Appends XML character data with its entity and character references resolved.
fn unescape_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let reference = rest[1..]
            .find(';')
            .filter(|end| *end <= 12)
            .map(|end| &rest[1..1 + end]);
        let resolved = reference.and_then(|r| match r {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "amp" => Some('&'),
            _ => {
                let number = r.strip_prefix('#')?;
                let code = match number.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                    None => number.parse().ok()?,
                };
                char::from_u32(code)
            }
        });
        match (reference, resolved) {
            (Some(r), Some(c)) => {
                out.push(c);
                rest = &rest[r.len() + 2..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_emptied_in_either_quote_style() {
        let xml = "<w:ins w:author='Jan Jansen' w:id=\"1\"/><w:del w:author = \"Jan\" x:w:author=\"keep\"/>";
        assert_eq!(
            empty_attributes(xml, AUTHOR_ATTRIBUTES),
            "<w:ins w:author='' w:id=\"1\"/><w:del w:author = \"\" x:w:author=\"keep\"/>"
        );
        assert_eq!(
            empty_attributes("<a author=\"x", AUTHOR_ATTRIBUTES),
            "<a author=\"x"
        );
    }

    #[test]
    fn character_data_references_attributes_and_cdata_are_read() {
        let mut out = String::new();
        xml_text(
            "<?xml version=\"1.0\"?><!-- c --><w:p><w:r><w:t>&#74;&#x61;n</w:t></w:r><w:r><w:t>sen &amp; co</w:t></w:r></w:p>\
             <wp:docPr descr=\"Foto van Piet &quot;P&quot;\" xmlns:wp=\"http://x\"/><w:t><![CDATA[<b>06</b>]]></w:t>",
            &mut out,
        );
        assert!(out.contains("Jansen & co"), "{out}");
        assert!(out.contains("Foto van Piet \"P\""), "{out}");
        assert!(out.contains("<b>06</b>"), "{out}");
        assert!(!out.contains("http://x"), "{out}");
    }

    #[test]
    fn xml_in_utf16_is_read_and_rewritten_as_utf8() {
        let xml =
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?><w:ins w:author=\"Jan\">tekst</w:ins>";
        let mut bytes = vec![0xff, 0xfe];
        for unit in xml.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        assert!(decode_xml(&bytes).unwrap().contains("tekst"));
        let rewritten = as_utf8_xml(&bytes).unwrap();
        assert_eq!(
            empty_attributes(&rewritten, AUTHOR_ATTRIBUTES),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><w:ins w:author=\"\">tekst</w:ins>"
        );
        let latin = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><t>Vri\xebs</t>";
        assert!(decode_xml(latin).unwrap().contains("Vriës"));
        let unknown = b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><t>x</t>";
        assert_eq!(decode_xml(unknown), Err(UNREADABLE_XML));
    }
}
