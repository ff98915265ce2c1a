//! PDF: cleaned by blanking metadata in place, and read for the leak guard.
//!
//! The file is scanned for every indirect object (also those in object streams); streams are
//! decoded through their filters, paid from the message's [`Budget`]. The text read is: every
//! string outside the pages (annotations, bookmarks, form fields, document information) as a text
//! string; the text each page and form shows, through its fonts' character maps or encodings; XMP
//! metadata; and the strings of any other stream that is not an image or a font program. A PDF
//! the relay cannot read completely (encrypted, an unknown filter, a damaged compressed part, a
//! font whose codes cannot be mapped to characters, embedded files) is refused.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{find, Budget, Problem};

mod content;
mod filters;
mod fonts;
mod syntax;

use fonts::Decoder;
use syntax::{Body, Dict, Document, Lexer, Object, Token};

const PDF_FIELDS: [&[u8]; 6] = [
    b"/Author",
    b"/Creator",
    b"/Producer",
    b"/Title",
    b"/Subject",
    b"/Keywords",
];

const HIDDEN_METADATA: Problem = Problem::CannotClean(
    "the PDF hides author or program details in compressed parts; print it to a new PDF and attach that",
);
const EMBEDDED_FILES: Problem = Problem::CannotClean(
    "the PDF holds embedded files that cannot be cleaned; save it without them and attach that",
);
const UNMAPPABLE: Problem = Problem::Unreadable(
    "the PDF uses fonts whose characters the relay cannot map to letters; print it to a new PDF with another program and attach that",
);
const TOO_COMPLEX: Problem = Problem::Unreadable(
    "the PDF has more parts than the relay can read; print it to a new PDF and attach that",
);

/// Blanks the document information and XMP metadata in place; refuses what cannot be blanked.
pub(super) fn clean(data: &[u8], budget: &mut Budget) -> Result<Vec<u8>, Problem> {
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
    {
        let parts = Parts::read(&out, budget)?;
        // Fields hidden in compressed streams (object streams, compressed metadata) cannot be
        // blanked in place: refuse rather than pass them on.
        for stream in parts.decoded.values() {
            let identifying = PDF_FIELDS.iter().any(|field| {
                let mut from = 0;
                while let Some(at) = find(&stream[from..], field).map(|i| i + from) {
                    if has_content(stream, skip_whitespace(stream, at + field.len())) {
                        return true;
                    }
                    from = at + field.len();
                }
                false
            }) || find(stream, b"xmpmeta").is_some();
            if identifying {
                return Err(HIDDEN_METADATA);
            }
        }
    }
    Ok(out)
}

/// Everything the PDF shows or holds as text.
pub(super) fn text(data: &[u8], budget: &mut Budget) -> Result<String, Problem> {
    let parts = Parts::read(data, budget)?;
    let doc = &parts.doc;
    let mut out = String::new();
    // Strings outside the pages: annotations, bookmarks, form fields, document information.
    let mut strings = Vec::new();
    for indirect in &doc.objects {
        match &indirect.body {
            Body::Object(object) => object.strings(&mut strings),
            Body::Stream { dict, .. } => dict.0.iter().for_each(|(_, v)| v.strings(&mut strings)),
        }
    }
    for dict in &doc.trailers {
        dict.0.iter().for_each(|(_, v)| v.strings(&mut strings));
    }
    for s in strings {
        out.push_str(&fonts::text_string(s));
        out.push('\n');
    }
    // What the pages and forms show.
    let mut decoders = Decoders::default();
    let all_fonts = parts.all_fonts(&mut decoders);
    let mut shown = HashSet::new();
    for indirect in &doc.objects {
        let Body::Object(Object::Dict(page)) = &indirect.body else {
            continue;
        };
        if !page.is(b"Type", b"Page") {
            continue;
        }
        let streams = parts.content_streams(page);
        if streams.is_empty() || !shown.insert(streams.clone()) {
            continue;
        }
        let mut content = Vec::new();
        for index in &streams {
            if let Some(data) = parts.decoded.get(index) {
                content.extend_from_slice(data);
                content.push(b'\n');
            }
        }
        let resources = parts.inherited_resources(page);
        let fonts = parts.fonts(resources, &all_fonts, &mut decoders);
        content::text(&content, &fonts, &mut out).map_err(|_| UNMAPPABLE)?;
    }
    for (index, indirect) in doc.objects.iter().enumerate() {
        let Body::Stream { dict, .. } = &indirect.body else {
            continue;
        };
        let Some(data) = parts.decoded.get(&index) else {
            continue;
        };
        if parts.content.contains(&index) {
            if dict.is(b"Subtype", b"Form") {
                let resources = dict.get(b"Resources").and_then(|r| doc.dict(r));
                let fonts = parts.fonts(resources, &all_fonts, &mut decoders);
                content::text(data, &fonts, &mut out).map_err(|_| UNMAPPABLE)?;
            }
        } else if dict.is(b"Type", b"Metadata") || dict.is(b"Subtype", b"XML") {
            super::office::xml_text(&String::from_utf8_lossy(data), &mut out);
        } else if !dict.is(b"Type", b"ObjStm") {
            // Any other stream: its strings.
            let mut lexer = Lexer::new(data, 0);
            while let Some(token) = lexer.next_token() {
                if let Token::String(s) = token {
                    out.push_str(&fonts::text_string(&s));
                    out.push('\n');
                }
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// LZW-encodes data, for the tests of the whole sanitiser.
#[cfg(test)]
pub(super) fn lzw_for_tests(data: &[u8]) -> Vec<u8> {
    filters::tests::lzw_encode(data)
}

/// A scanned PDF with its streams decoded.
struct Parts<'a> {
    doc: Document,
    /// Decoded data by index into `doc.objects` (not for images, font programs, xref streams).
    decoded: HashMap<usize, Cow<'a, [u8]>>,
    /// Streams that are drawn: the contents of pages, and forms.
    content: HashSet<usize>,
}

#[derive(Default)]
struct Decoders {
    by_object: HashMap<u32, Rc<Decoder>>,
}

impl<'a> Parts<'a> {
    fn read(data: &'a [u8], budget: &mut Budget) -> Result<Self, Problem> {
        let mut doc = Document::scan(data);
        if doc.too_complex {
            return Err(TOO_COMPLEX);
        }
        let encrypted = doc.trailers.iter().any(|t| t.get(b"Encrypt").is_some())
            || doc.objects.iter().any(|o| match &o.body {
                Body::Stream { dict, .. } => {
                    dict.is(b"Type", b"XRef") && dict.get(b"Encrypt").is_some()
                }
                Body::Object(_) => false,
            });
        if encrypted {
            return Err(filters::ENCRYPTED);
        }
        let mut decoded: HashMap<usize, Cow<'a, [u8]>> = HashMap::new();
        // Object streams first: they hold objects (fonts, pages) the rest needs.
        let object_streams: Vec<usize> = doc
            .objects
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(&o.body, Body::Stream { dict, .. } if dict.is(b"Type", b"ObjStm")))
            .map(|(i, _)| i)
            .collect();
        let mut items = 0usize;
        for index in object_streams {
            let Body::Stream { dict, raw } = &doc.objects[index].body else {
                continue;
            };
            let Some(data) = filters::decode(&doc, dict, &data[raw.clone()], budget)? else {
                continue;
            };
            let members = object_stream_members(dict, &data, &mut items)?;
            for (number, object) in members {
                doc.add(number, Body::Object(object));
            }
            decoded.insert(index, data);
        }
        // What is drawn, what is never text, what cannot be cleaned.
        let mut content = HashSet::new();
        let mut fonts_programs = HashSet::new();
        let mut embedded = false;
        let mut visit = |dict: &Dict, doc: &Document| {
            if dict.is(b"Type", b"Page") {
                for number in references(dict.get(b"Contents"), doc) {
                    content.insert(number);
                }
            }
            for key in [&b"FontFile"[..], b"FontFile2", b"FontFile3"] {
                if let Some(Object::Ref(number)) = dict.get(key) {
                    fonts_programs.insert(*number);
                }
            }
            if dict.get(b"EF").is_some() || dict.is(b"Type", b"EmbeddedFile") {
                embedded = true;
            }
        };
        for indirect in &doc.objects {
            match &indirect.body {
                Body::Object(object) => visit_dicts(object, &mut |d| visit(d, &doc)),
                Body::Stream { dict, .. } => {
                    visit(dict, &doc);
                    dict.0
                        .iter()
                        .for_each(|(_, v)| visit_dicts(v, &mut |d| visit(d, &doc)));
                }
            }
        }
        if embedded {
            return Err(EMBEDDED_FILES);
        }
        let mut content: HashSet<usize> = content
            .into_iter()
            .filter_map(|number| doc.by_number.get(&number).copied())
            .collect();
        let font_programs: HashSet<usize> = fonts_programs
            .into_iter()
            .filter_map(|number| doc.by_number.get(&number).copied())
            .collect();
        for (index, indirect) in doc.objects.iter().enumerate() {
            let Body::Stream { dict, raw } = &indirect.body else {
                continue;
            };
            if dict.is(b"Subtype", b"Form") {
                content.insert(index);
            }
            let drawn = content.contains(&index);
            let never_text = font_programs.contains(&index)
                || dict.is(b"Type", b"XRef")
                || dict.is(b"Subtype", b"Image")
                || decoded.contains_key(&index);
            if never_text && !drawn {
                continue;
            }
            if let Some(data) = filters::decode(&doc, dict, &data[raw.clone()], budget)? {
                decoded.insert(index, data);
            }
        }
        Ok(Parts {
            doc,
            decoded,
            content,
        })
    }

    /// The indexes of the streams a page's `/Contents` names, in order.
    fn content_streams(&self, page: &Dict) -> Vec<usize> {
        references(page.get(b"Contents"), &self.doc)
            .into_iter()
            .filter_map(|number| self.doc.by_number.get(&number).copied())
            .collect()
    }

    /// A page's resources, inherited from its ancestors when it has none.
    fn inherited_resources<'s>(&'s self, page: &'s Dict) -> Option<&'s Dict> {
        let mut node = page;
        for _ in 0..32 {
            if let Some(resources) = node.get(b"Resources").and_then(|r| self.doc.dict(r)) {
                return Some(resources);
            }
            node = node.get(b"Parent").and_then(|p| self.doc.dict(p))?;
        }
        None
    }

    /// The decoder of a font (dictionary or reference), made once per font object.
    fn decoder(&self, font: &Object, decoders: &mut Decoders) -> Option<Rc<Decoder>> {
        let stream_data = |number: u32| -> Option<&[u8]> {
            let index = self.doc.by_number.get(&number)?;
            self.decoded.get(index).map(|d| &d[..])
        };
        if let Object::Ref(number) = font {
            if let Some(decoder) = decoders.by_object.get(number) {
                return Some(decoder.clone());
            }
            let dict = self.doc.dict(font)?;
            let decoder = Rc::new(fonts::decoder(&self.doc, dict, &stream_data));
            decoders.by_object.insert(*number, decoder.clone());
            return Some(decoder);
        }
        let dict = self.doc.dict(font)?;
        Some(Rc::new(fonts::decoder(&self.doc, dict, &stream_data)))
    }

    /// Every font named in any resource dictionary of the file (first definition of a name wins):
    /// what a content stream uses when its own resources do not name the font.
    fn all_fonts(&self, decoders: &mut Decoders) -> HashMap<Vec<u8>, Rc<Decoder>> {
        let mut out = HashMap::new();
        let mut font_dicts = Vec::new();
        for indirect in &self.doc.objects {
            let dicts: Vec<&Dict> = match &indirect.body {
                Body::Object(Object::Dict(d)) => vec![d],
                Body::Stream { dict, .. } => vec![dict],
                _ => vec![],
            };
            for dict in dicts {
                if let Some(resources) = dict.get(b"Resources").and_then(|r| self.doc.dict(r)) {
                    if let Some(fonts) = resources.get(b"Font").and_then(|f| self.doc.dict(f)) {
                        font_dicts.push(fonts);
                    }
                }
            }
        }
        for fonts in font_dicts {
            for (name, font) in &fonts.0 {
                if !out.contains_key(name) {
                    if let Some(decoder) = self.decoder(font, decoders) {
                        out.insert(name.clone(), decoder);
                    }
                }
            }
        }
        out
    }

    /// The fonts of a content stream: its resources', then any the file names.
    fn fonts(
        &self,
        resources: Option<&Dict>,
        all: &HashMap<Vec<u8>, Rc<Decoder>>,
        decoders: &mut Decoders,
    ) -> HashMap<Vec<u8>, Rc<Decoder>> {
        let mut out = all.clone();
        if let Some(fonts) = resources
            .and_then(|r| r.get(b"Font"))
            .and_then(|f| self.doc.dict(f))
        {
            for (name, font) in &fonts.0 {
                if let Some(decoder) = self.decoder(font, decoders) {
                    out.insert(name.clone(), decoder);
                }
            }
        }
        out
    }
}

/// The object numbers a value references: one reference or an array of them.
fn references(value: Option<&Object>, doc: &Document) -> Vec<u32> {
    match value {
        Some(Object::Ref(number)) => match doc.object(*number) {
            // An indirect array of references.
            Some(Object::Array(items)) => items
                .iter()
                .filter_map(|i| match i {
                    Object::Ref(n) => Some(*n),
                    _ => None,
                })
                .collect(),
            _ => vec![*number],
        },
        Some(Object::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Object::Ref(n) => Some(*n),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Calls `visit` for every dictionary in `object`, however deeply nested.
fn visit_dicts(object: &Object, visit: &mut dyn FnMut(&Dict)) {
    match object {
        Object::Dict(dict) => {
            visit(dict);
            dict.0.iter().for_each(|(_, v)| visit_dicts(v, visit));
        }
        Object::Array(items) => items.iter().for_each(|i| visit_dicts(i, visit)),
        _ => {}
    }
}

/// The objects of an object stream: `/N` pairs of object number and offset, then the objects
/// from `/First` on.
fn object_stream_members(
    dict: &Dict,
    data: &[u8],
    items: &mut usize,
) -> Result<Vec<(u32, Object)>, Problem> {
    let count = dict.get(b"N").and_then(Object::as_number).unwrap_or(0.0);
    let first = dict
        .get(b"First")
        .and_then(Object::as_number)
        .unwrap_or(0.0);
    if !(0.0..=data.len() as f64).contains(&count) || !(0.0..=data.len() as f64).contains(&first) {
        return Ok(Vec::new());
    }
    let (count, first) = (count as usize, first as usize);
    let mut header = Lexer::new(data, 0);
    let mut members = Vec::new();
    for _ in 0..count {
        let (Some(Token::Int(number)), Some(Token::Int(offset))) =
            (header.next_token(), header.next_token())
        else {
            break;
        };
        let (Ok(number), Ok(offset)) = (u32::try_from(number), usize::try_from(offset)) else {
            continue;
        };
        let Some(start) = first.checked_add(offset).filter(|s| *s <= data.len()) else {
            continue;
        };
        let mut lexer = Lexer::new(data, start);
        lexer.max_items = syntax::MAX_ITEMS.saturating_sub(*items);
        let parsed = lexer.next_object();
        *items += lexer.items;
        if lexer.exhausted() {
            return Err(TOO_COMPLEX);
        }
        if let Some(Ok(object)) = parsed {
            members.push((number, object));
        }
    }
    Ok(members)
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
