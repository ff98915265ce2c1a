//! What the bytes of a PDF string show: the font's ToUnicode character map when it has one, else
//! its encoding (WinAnsi, MacRoman, Standard, with glyph-name differences), and for text outside
//! pages (annotations, bookmarks, form fields) PDFDocEncoding or UTF-16/UTF-8 with a byte order
//! mark. Composite fonts without a character map cannot be read: their codes are glyph numbers.

use std::collections::HashMap;

use super::syntax::{Dict, Document, Lexer, Object, Token};
use crate::mail::sanitize::text::cp1252;

/// How a font's codes become text.
#[derive(Debug, Clone)]
pub(super) enum Decoder {
    /// One byte per code (simple fonts); a character map, when present, is asked first.
    Simple {
        table: Vec<Option<String>>,
        to_unicode: Option<CMap>,
    },
    /// Multi-byte codes mapped by the font's character map.
    Composite(CMap),
    /// Two-byte codes that are UTF-16 (predefined Unicode character maps).
    Utf16,
    /// Glyph numbers without a map: the relay cannot tell what they show.
    Unmappable,
}

/// A code the font does not map to text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unmapped;

impl Decoder {
    /// A font nobody described: bytes as Windows-1252, what most simple fonts use.
    pub(super) fn fallback() -> Self {
        Decoder::Simple {
            table: (0..=255u8).map(|b| Some(win_ansi(b).to_string())).collect(),
            to_unicode: None,
        }
    }

    pub(super) fn decode(&self, bytes: &[u8]) -> Result<String, Unmapped> {
        let mut out = String::new();
        match self {
            Decoder::Simple { table, to_unicode } => match to_unicode {
                Some(cmap) => {
                    for (length, code) in cmap.codes(bytes, 1) {
                        if cmap.lookup_into(length, code, &mut out) {
                            continue;
                        }
                        match table.get(code as usize).filter(|_| length == 1) {
                            Some(text) => out.push_str(text.as_deref().unwrap_or(" ")),
                            None => return Err(Unmapped),
                        }
                    }
                }
                None => {
                    for &b in bytes {
                        out.push_str(table[usize::from(b)].as_deref().unwrap_or(" "));
                    }
                }
            },
            Decoder::Composite(cmap) => {
                for (length, code) in cmap.codes(bytes, 2) {
                    if !cmap.lookup_into(length, code, &mut out) {
                        return Err(Unmapped);
                    }
                }
            }
            Decoder::Utf16 => {
                let units = bytes
                    .chunks(2)
                    .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
                out.extend(char::decode_utf16(units).map(|c| c.unwrap_or(' ')));
            }
            Decoder::Unmappable => {
                if !bytes.is_empty() {
                    return Err(Unmapped);
                }
            }
        }
        Ok(out)
    }
}

/// The decoder of a font dictionary; `stream` gives the decoded data of a stream by object number.
pub(super) fn decoder<'s>(
    doc: &Document,
    font: &Dict,
    stream: &dyn Fn(u32) -> Option<&'s [u8]>,
) -> Decoder {
    let to_unicode = match font.get(b"ToUnicode") {
        Some(Object::Ref(number)) => stream(*number).map(CMap::parse),
        Some(Object::Name(name)) if name.starts_with(b"Identity") => {
            return Decoder::Utf16;
        }
        _ => None,
    }
    .filter(|cmap| !cmap.is_empty());
    let subtype = font.get(b"Subtype").map(|s| doc.resolve(s));
    if subtype.and_then(Object::as_name) == Some(b"Type0") {
        if let Some(cmap) = to_unicode {
            return Decoder::Composite(cmap);
        }
        return match font.get(b"Encoding").map(|e| doc.resolve(e)) {
            Some(Object::Name(name)) if contains(name, b"UCS2") || contains(name, b"UTF16") => {
                Decoder::Utf16
            }
            _ => Decoder::Unmappable,
        };
    }
    Decoder::Simple {
        table: simple_table(doc, font),
        to_unicode,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What each byte of a simple font shows: its base encoding with the `/Differences` applied.
fn simple_table(doc: &Document, font: &Dict) -> Vec<Option<String>> {
    let encoding = font.get(b"Encoding").map(|e| doc.resolve(e));
    let base_name = match encoding {
        Some(Object::Name(name)) => Some(name.as_slice()),
        Some(Object::Dict(dict)) => dict.get(b"BaseEncoding").and_then(Object::as_name),
        _ => None,
    };
    let base: fn(u8) -> char = match base_name {
        Some(b"MacRomanEncoding") => mac_roman,
        Some(b"StandardEncoding") => standard,
        _ => win_ansi,
    };
    let mut table: Vec<Option<String>> = (0..=255u8).map(|b| Some(base(b).to_string())).collect();
    if let Some(Object::Dict(dict)) = encoding {
        if let Some(Object::Array(differences)) = dict.get(b"Differences").map(|d| doc.resolve(d)) {
            let mut code = 0usize;
            for item in differences {
                match item {
                    Object::Int(start) => code = (*start).clamp(0, 256) as usize,
                    Object::Name(glyph) => {
                        if code < 256 {
                            // An unknown glyph name keeps what the code shows in the base
                            // encoding: most programs keep letters on their usual codes.
                            if let Some(text) = glyph_text(glyph) {
                                table[code] = Some(text);
                            }
                        }
                        code += 1;
                    }
                    _ => {}
                }
            }
        }
    }
    table
}

/// The text of a glyph name: the Adobe Glyph List's common Latin part, `uniXXXX`, `uXXXX[XX]`,
/// ligatures joined by `_`, variants after a `.` ignored.
pub(super) fn glyph_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next()?;
    if base.is_empty() {
        return None;
    }
    let mut out = String::new();
    for part in base.split('_') {
        out.push_str(&glyph_component(part)?);
    }
    Some(out)
}

fn glyph_component(name: &str) -> Option<String> {
    if name.len() == 1 && name.as_bytes()[0].is_ascii_alphabetic() {
        return Some(name.to_string());
    }
    if let Some(hex) = name.strip_prefix("uni") {
        if hex.len() % 4 == 0 && !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let units: Vec<u16> = hex
                .as_bytes()
                .chunks(4)
                .filter_map(|c| u16::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
                .collect();
            return char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok();
        }
    }
    if let Some(hex) = name.strip_prefix('u') {
        if (4..=6).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return char::from_u32(u32::from_str_radix(hex, 16).ok()?).map(String::from);
        }
    }
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    if let Some(digit) = DIGITS.iter().position(|d| *d == name) {
        return Some(digit.to_string());
    }
    const NAMED: &[(&str, &str)] = &[
        ("space", " "),
        ("nbspace", " "),
        ("nonbreakingspace", " "),
        ("hyphen", "-"),
        ("minus", "-"),
        ("endash", "-"),
        ("emdash", "-"),
        ("period", "."),
        ("comma", ","),
        ("colon", ":"),
        ("semicolon", ";"),
        ("at", "@"),
        ("plus", "+"),
        ("parenleft", "("),
        ("parenright", ")"),
        ("slash", "/"),
        ("underscore", "_"),
        ("quoteright", "'"),
        ("quotesingle", "'"),
        ("quoteleft", "'"),
        ("ampersand", "&"),
        ("percent", "%"),
        ("numbersign", "#"),
        ("exclam", "!"),
        ("question", "?"),
        ("quotedbl", "\""),
        ("asterisk", "*"),
        ("equal", "="),
        ("bracketleft", "["),
        ("bracketright", "]"),
        ("bullet", "•"),
        ("periodcentered", "·"),
        ("fi", "fi"),
        ("fl", "fl"),
        ("ff", "ff"),
        ("ffi", "ffi"),
        ("ffl", "ffl"),
        ("dotlessi", "ı"),
        ("lslash", "ł"),
        ("Lslash", "Ł"),
        ("oslash", "ø"),
        ("Oslash", "Ø"),
        ("germandbls", "ß"),
        ("ae", "æ"),
        ("AE", "Æ"),
        ("oe", "œ"),
        ("OE", "Œ"),
        ("eth", "ð"),
        ("Eth", "Ð"),
        ("thorn", "þ"),
        ("Thorn", "Þ"),
        ("dcroat", "đ"),
        ("Dcroat", "Đ"),
        ("ij", "ij"),
        ("IJ", "IJ"),
        ("Euro", "€"),
    ];
    if let Some((_, text)) = NAMED.iter().find(|(n, _)| *n == name) {
        return Some((*text).to_string());
    }
    // A letter with an accent: `eacute`, `Ccedilla`, `scaron`, `odieresis`, …
    const ACCENTS: [&str; 14] = [
        "acute",
        "grave",
        "circumflex",
        "dieresis",
        "tilde",
        "ring",
        "cedilla",
        "caron",
        "macron",
        "breve",
        "ogonek",
        "dotaccent",
        "hungarumlaut",
        "commaaccent",
    ];
    let first = name.chars().next()?;
    if first.is_ascii_alphabetic() && ACCENTS.contains(&&name[1..]) {
        return Some(first.to_string());
    }
    None
}

/// Windows-1252 as PDF's WinAnsiEncoding.
fn win_ansi(b: u8) -> char {
    cp1252(b)
}

fn mac_roman(b: u8) -> char {
    const HIGH: &str = "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø¿¡¬√ƒ≈∆«»…\u{a0}ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{f8ff}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ";
    match b {
        0x80..=0xff => HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or(' '),
        _ => char::from(b),
    }
}

fn standard(b: u8) -> char {
    match b {
        0x27 => '’',
        0x60 => '‘',
        0xae => 'ﬁ',
        0xaf => 'ﬂ',
        0xe1 => 'Æ',
        0xe8 => 'Ł',
        0xe9 => 'Ø',
        0xea => 'Œ',
        0xf1 => 'æ',
        0xf5 => 'ı',
        0xf8 => 'ł',
        0xf9 => 'ø',
        0xfa => 'œ',
        0xfb => 'ß',
        0x80..=0xff => ' ',
        _ => char::from(b),
    }
}

/// A text string outside the pages: UTF-16 or UTF-8 with a byte order mark, else PDFDocEncoding.
pub(super) fn text_string(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xfe, 0xff]) {
        let units = rest
            .chunks(2)
            .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        return char::decode_utf16(units)
            .map(|c| c.unwrap_or(' '))
            .collect();
    }
    if let Some(rest) = bytes.strip_prefix(&[0xff, 0xfe]) {
        let units = rest
            .chunks(2)
            .map(|pair| u16::from_le_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        return char::decode_utf16(units)
            .map(|c| c.unwrap_or(' '))
            .collect();
    }
    if let Some(rest) = bytes.strip_prefix(&[0xef, 0xbb, 0xbf]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    bytes.iter().map(|&b| pdf_doc(b)).collect()
}

fn pdf_doc(b: u8) -> char {
    const HIGH: &str = "•†‡…—–ƒ⁄‹›−‰„“”‘’‚™ﬁﬂŁŒŠŸŽıłœšž";
    match b {
        0x80..=0x9e => HIGH.chars().nth(usize::from(b - 0x80)).unwrap_or(' '),
        0xa0 => '€',
        _ => char::from(b),
    }
}

/// A ToUnicode character map: which codes (of which byte length) show which text.
#[derive(Debug, Clone, Default)]
pub(super) struct CMap {
    spaces: Vec<(usize, u32, u32)>,
    single: HashMap<(usize, u32), String>,
    ranges: Vec<(usize, u32, u32, RangeTarget)>,
    /// The one code length all mappings use, if they agree.
    uniform: Option<usize>,
}

#[derive(Debug, Clone)]
enum RangeTarget {
    /// The first code shows these UTF-16 units; each next code the last unit plus one.
    Offset(Vec<u16>),
    Each(Vec<String>),
}

/// More mappings than any font needs; a map with more is read no further.
const MAX_MAPPINGS: usize = 200_000;

fn code_of(bytes: &[u8]) -> Option<(usize, u32)> {
    (1..=4).contains(&bytes.len()).then(|| {
        (
            bytes.len(),
            bytes.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b)),
        )
    })
}

fn utf16_text(bytes: &[u8]) -> String {
    let units = bytes
        .chunks(2)
        .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(' '))
        .collect()
}

impl CMap {
    pub(super) fn parse(data: &[u8]) -> Self {
        let mut cmap = CMap::default();
        let mut lexer = Lexer::new(data, 0);
        let mut operands: Vec<Object> = Vec::new();
        let mut section: Option<Vec<u8>> = None;
        let mut mappings = 0usize;
        while let Some(next) = lexer.next_object() {
            match next {
                Ok(object) => {
                    if section.is_some() {
                        operands.push(object);
                    }
                }
                Err(Token::Keyword(word)) => match word.as_slice() {
                    b"begincodespacerange" | b"beginbfchar" | b"beginbfrange" => {
                        section = Some(word);
                        operands.clear();
                    }
                    b"endcodespacerange" | b"endbfchar" | b"endbfrange" => {
                        match section.as_deref() {
                            Some(b"begincodespacerange") => cmap.add_spaces(&operands),
                            Some(b"beginbfchar") => cmap.add_chars(&operands),
                            Some(b"beginbfrange") => cmap.add_ranges(&operands),
                            _ => {}
                        }
                        mappings += operands.len();
                        section = None;
                        operands.clear();
                    }
                    _ => {}
                },
                Err(_) => {}
            }
            if mappings > MAX_MAPPINGS {
                break;
            }
        }
        cmap.ranges.sort_by_key(|(l, lo, ..)| (*l, *lo));
        let mut lengths = cmap
            .single
            .keys()
            .map(|(l, _)| *l)
            .chain(cmap.ranges.iter().map(|(l, ..)| *l));
        cmap.uniform = match lengths.next() {
            Some(first) if lengths.all(|l| l == first) => Some(first),
            _ => None,
        };
        cmap
    }

    fn add_spaces(&mut self, operands: &[Object]) {
        for pair in operands.chunks_exact(2) {
            if let (Object::String(lo), Object::String(hi)) = (&pair[0], &pair[1]) {
                if let (Some((length, lo)), Some((_, hi))) = (code_of(lo), code_of(hi)) {
                    self.spaces.push((length, lo, hi));
                }
            }
        }
    }

    fn add_chars(&mut self, operands: &[Object]) {
        for pair in operands.chunks_exact(2) {
            let target = match &pair[1] {
                Object::String(s) => utf16_text(s),
                Object::Name(n) => glyph_text(n).unwrap_or_default(),
                _ => continue,
            };
            if let Object::String(source) = &pair[0] {
                if let Some(code) = code_of(source) {
                    self.single.insert(code, target);
                }
            }
        }
    }

    fn add_ranges(&mut self, operands: &[Object]) {
        for triple in operands.chunks_exact(3) {
            let (Object::String(lo), Object::String(hi)) = (&triple[0], &triple[1]) else {
                continue;
            };
            let (Some((length, lo)), Some((_, hi))) = (code_of(lo), code_of(hi)) else {
                continue;
            };
            if hi < lo {
                continue;
            }
            let target = match &triple[2] {
                Object::String(start) => RangeTarget::Offset(
                    start
                        .chunks(2)
                        .map(|pair| u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]))
                        .collect(),
                ),
                Object::Array(items) => RangeTarget::Each(
                    items
                        .iter()
                        .map(|item| match item {
                            Object::String(s) => utf16_text(s),
                            _ => String::new(),
                        })
                        .collect(),
                ),
                _ => continue,
            };
            self.ranges.push((length, lo, hi, target));
        }
    }

    fn is_empty(&self) -> bool {
        self.single.is_empty() && self.ranges.is_empty()
    }

    /// Appends the text of a code; false when the map has none for it.
    fn lookup_into(&self, length: usize, code: u32, out: &mut String) -> bool {
        if let Some(text) = self.single.get(&(length, code)) {
            out.push_str(text);
            return true;
        }
        // Ranges are sorted by (length, first code): the candidate is the last one starting at
        // or before the code.
        let index = self
            .ranges
            .partition_point(|(l, lo, ..)| (*l, *lo) <= (length, code));
        let Some((l, lo, hi, target)) = index.checked_sub(1).map(|i| &self.ranges[i]) else {
            return false;
        };
        if *l != length || code > *hi {
            return false;
        }
        let offset = code - lo;
        match target {
            RangeTarget::Offset(units) => {
                let mut units = units.clone();
                if let Some(last) = units.last_mut() {
                    *last = last.wrapping_add(offset as u16);
                }
                out.extend(char::decode_utf16(units).map(|c| c.unwrap_or(' ')));
                true
            }
            RangeTarget::Each(items) => match items.get(offset as usize) {
                Some(text) => {
                    out.push_str(text);
                    true
                }
                None => false,
            },
        }
    }

    /// The codes in `bytes`, split by the map's code space (or by the length its mappings use).
    fn codes(&self, bytes: &[u8], default_length: usize) -> Vec<(usize, u32)> {
        let uniform = self.uniform.unwrap_or(default_length);
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let by_space = (1..=4).find(|n| {
                bytes
                    .get(i..i + n)
                    .and_then(code_of)
                    .is_some_and(|(length, code)| {
                        self.spaces
                            .iter()
                            .any(|(l, lo, hi)| *l == length && (*lo..=*hi).contains(&code))
                    })
            });
            let n = by_space
                .unwrap_or(if self.spaces.is_empty() { uniform } else { 1 })
                .min(bytes.len() - i)
                .max(1);
            if let Some(code) = code_of(&bytes[i..i + n]) {
                out.push(code);
            }
            i += n;
        }
        out
    }
}
