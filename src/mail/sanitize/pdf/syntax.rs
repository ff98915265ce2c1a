//! PDF syntax, as much as the relay needs to find every object, stream and string of a file: a
//! lexer (also for content streams and character maps), objects, and a scan of the file for its
//! indirect objects that does not trust the cross-reference table (which a damaged or edited file
//! gets wrong, and which a viewer repairs by scanning too).

use std::collections::HashMap;
use std::ops::Range;

/// Nesting deeper than this is not followed (arrays in arrays in …): no stack is exhausted.
const MAX_DEPTH: u32 = 64;
/// More array items and dictionary entries than any real file of the accepted size holds; a file
/// with more is refused rather than parsed into memory many times its size.
pub(super) const MAX_ITEMS: usize = 2_000_000;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Object {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    String(Vec<u8>),
    Name(Vec<u8>),
    Array(Vec<Object>),
    Dict(Dict),
    Ref(u32),
}

impl Object {
    pub(super) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Object::Name(name) => Some(name),
            _ => None,
        }
    }

    pub(super) fn as_number(&self) -> Option<f64> {
        match self {
            Object::Int(i) => Some(*i as f64),
            Object::Real(r) => Some(*r),
            _ => None,
        }
    }

    /// Every string in this object, however deeply nested.
    pub(super) fn strings<'a>(&'a self, out: &mut Vec<&'a [u8]>) {
        match self {
            Object::String(s) => out.push(s),
            Object::Array(items) => items.iter().for_each(|item| item.strings(out)),
            Object::Dict(dict) => dict.0.iter().for_each(|(_, value)| value.strings(out)),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Dict(pub Vec<(Vec<u8>, Object)>);

impl Dict {
    pub(super) fn get(&self, key: &[u8]) -> Option<&Object> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `/key` is the name `/value`.
    pub(super) fn is(&self, key: &[u8], value: &[u8]) -> bool {
        self.get(key).and_then(Object::as_name) == Some(value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Int(i64),
    Real(f64),
    String(Vec<u8>),
    Name(Vec<u8>),
    ArrayOpen,
    ArrayClose,
    DictOpen,
    DictClose,
    Keyword(Vec<u8>),
}

pub(super) fn is_whitespace(b: u8) -> bool {
    matches!(b, 0 | b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

pub(super) struct Lexer<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// Array items and dictionary entries built so far, and how many may be.
    pub items: usize,
    pub max_items: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            items: 0,
            max_items: MAX_ITEMS,
        }
    }

    /// Whether more items were met than may be built (the rest are skipped).
    pub(super) fn exhausted(&self) -> bool {
        self.items > self.max_items
    }

    fn skip_space(&mut self) {
        while let Some(&b) = self.data.get(self.pos) {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while self
                    .data
                    .get(self.pos)
                    .is_some_and(|b| *b != b'\n' && *b != b'\r')
                {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    pub(super) fn next_token(&mut self) -> Option<Token> {
        self.skip_space();
        let b = *self.data.get(self.pos)?;
        Some(match b {
            b'(' => Token::String(self.literal()),
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                Token::DictOpen
            }
            b'<' => Token::String(self.hex()),
            b'>' if self.data.get(self.pos + 1) == Some(&b'>') => {
                self.pos += 2;
                Token::DictClose
            }
            b'[' => {
                self.pos += 1;
                Token::ArrayOpen
            }
            b']' => {
                self.pos += 1;
                Token::ArrayClose
            }
            b'/' => Token::Name(self.name()),
            b'{' | b'}' | b')' | b'>' => {
                self.pos += 1;
                Token::Keyword(vec![b])
            }
            _ => {
                let start = self.pos;
                while self.data.get(self.pos).is_some_and(|b| is_regular(*b)) {
                    self.pos += 1;
                }
                let word = &self.data[start..self.pos];
                number(word).unwrap_or_else(|| Token::Keyword(word.to_vec()))
            }
        })
    }

    /// A literal string `( … )`, unescaped; the lexer stands after it.
    fn literal(&mut self) -> Vec<u8> {
        let data = self.data;
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < data.len() {
            match data[i] {
                b'\\' => {
                    i += 1;
                    match data.get(i) {
                        Some(b'n') => out.push(b'\n'),
                        Some(b'r') => out.push(b'\r'),
                        Some(b't') => out.push(b'\t'),
                        Some(b'b') => out.push(8),
                        Some(b'f') => out.push(12),
                        Some(b'0'..=b'7') => {
                            let mut value = 0u32;
                            let mut digits = 0;
                            while digits < 3 && matches!(data.get(i), Some(b'0'..=b'7')) {
                                value = value * 8 + u32::from(data[i] - b'0');
                                i += 1;
                                digits += 1;
                            }
                            out.push(value as u8);
                            continue;
                        }
                        // A backslash at the end of a line continues the string on the next.
                        Some(b'\r') => {
                            if data.get(i + 1) == Some(&b'\n') {
                                i += 1;
                            }
                        }
                        Some(b'\n') => {}
                        Some(&other) => out.push(other),
                        None => break,
                    }
                }
                b'(' => {
                    if depth > 0 {
                        out.push(b'(');
                    }
                    depth += 1;
                }
                b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                    out.push(b')');
                }
                b'\r' => {
                    out.push(b'\n');
                    if data.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        self.pos = i.min(data.len());
        out
    }

    /// A hexadecimal string `< … >`; whitespace is ignored, an odd last digit counts as `d0`.
    fn hex(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        self.pos += 1;
        while let Some(&b) = self.data.get(self.pos) {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            let Some(value) = (b as char).to_digit(16) else {
                continue;
            };
            match high.take() {
                Some(h) => out.push(h << 4 | value as u8),
                None => high = Some(value as u8),
            }
        }
        if let Some(h) = high {
            out.push(h << 4);
        }
        out
    }

    fn name(&mut self) -> Vec<u8> {
        self.pos += 1;
        let mut out = Vec::new();
        while let Some(&b) = self.data.get(self.pos).filter(|b| is_regular(**b)) {
            self.pos += 1;
            let escaped = (b == b'#')
                .then(|| self.data.get(self.pos..self.pos + 2))
                .flatten()
                .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
            match escaped {
                Some(value) => {
                    out.push(value);
                    self.pos += 2;
                }
                None => out.push(b),
            }
        }
        out
    }

    /// The next object; `Err` with the token when it is not the start of one (an operator, a
    /// closing bracket), `None` at the end of the data.
    pub(super) fn next_object(&mut self) -> Option<Result<Object, Token>> {
        let token = self.next_token()?;
        Some(self.object_from(token, 0))
    }

    fn object_from(&mut self, token: Token, depth: u32) -> Result<Object, Token> {
        Ok(match token {
            Token::Int(i) => {
                // `n g R` is a reference.
                let saved = self.pos;
                match (self.next_token(), self.next_token()) {
                    (Some(Token::Int(_)), Some(Token::Keyword(k)))
                        if k == b"R" && (0..=u32::MAX as i64).contains(&i) =>
                    {
                        Object::Ref(i as u32)
                    }
                    _ => {
                        self.pos = saved;
                        Object::Int(i)
                    }
                }
            }
            Token::Real(r) => Object::Real(r),
            Token::String(s) => Object::String(s),
            Token::Name(n) => Object::Name(n),
            Token::ArrayOpen | Token::DictOpen if depth >= MAX_DEPTH || self.exhausted() => {
                self.skip_nested();
                Object::Null
            }
            Token::ArrayOpen => {
                let mut items = Vec::new();
                loop {
                    let before = self.pos;
                    let Some(token) = self.next_token() else {
                        break;
                    };
                    if token == Token::ArrayClose {
                        break;
                    }
                    if is_structural(&token) {
                        self.pos = before;
                        break;
                    }
                    if let Ok(item) = self.object_from(token, depth + 1) {
                        self.items += 1;
                        if !self.exhausted() {
                            items.push(item);
                        }
                    }
                }
                Object::Array(items)
            }
            Token::DictOpen => {
                let mut entries = Vec::new();
                loop {
                    let before = self.pos;
                    let Some(token) = self.next_token() else {
                        break;
                    };
                    if is_structural(&token) {
                        self.pos = before;
                        break;
                    }
                    match token {
                        Token::DictClose => break,
                        Token::Name(key) => {
                            let Some(value) = self.next_token() else {
                                break;
                            };
                            self.items += 1;
                            match self.object_from(value, depth + 1) {
                                Ok(value) => entries.push((key, value)),
                                Err(Token::DictClose) => {
                                    entries.push((key, Object::Null));
                                    break;
                                }
                                Err(_) => entries.push((key, Object::Null)),
                            }
                            if self.exhausted() {
                                entries.pop();
                            }
                        }
                        _ => {}
                    }
                }
                Object::Dict(Dict(entries))
            }
            Token::Keyword(k) if k == b"true" => Object::Bool(true),
            Token::Keyword(k) if k == b"false" => Object::Bool(false),
            Token::Keyword(k) if k == b"null" => Object::Null,
            other => return Err(other),
        })
    }

    /// Skips to the end of the array or dictionary just opened, without building it.
    fn skip_nested(&mut self) {
        let mut depth = 1usize;
        while let Some(token) = self.next_token() {
            match token {
                Token::ArrayOpen | Token::DictOpen => depth += 1,
                Token::ArrayClose | Token::DictClose => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Keywords that end an object whatever it still has open (a damaged file's unclosed dictionary
/// does not swallow the objects after it).
fn is_structural(token: &Token) -> bool {
    matches!(token, Token::Keyword(k) if matches!(k.as_slice(), b"endobj" | b"obj" | b"stream" | b"endstream" | b"xref" | b"trailer"))
}

fn number(word: &[u8]) -> Option<Token> {
    let text = std::str::from_utf8(word).ok()?;
    let digits = text.trim_start_matches(['+', '-']);
    if digits.is_empty()
        || text.len() - digits.len() > 1
        || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || digits.bytes().filter(|b| *b == b'.').count() > 1
        || digits == "."
    {
        return None;
    }
    if !digits.contains('.') {
        if let Ok(i) = text.parse::<i64>() {
            return Some(Token::Int(i));
        }
    }
    let normalised = if digits.starts_with('.') {
        text.replacen('.', "0.", 1)
    } else {
        text.to_string()
    };
    normalised
        .trim_end_matches('.')
        .parse()
        .ok()
        .map(Token::Real)
}

/// An indirect object of the file or of one of its object streams.
pub(super) struct Indirect {
    pub body: Body,
}

pub(super) enum Body {
    Object(Object),
    /// A stream: its dictionary and where its (still encoded) data stands in the file.
    Stream {
        dict: Dict,
        raw: Range<usize>,
    },
}

pub(super) struct Document {
    pub objects: Vec<Indirect>,
    /// The last definition of each object number (later incremental updates win).
    pub by_number: HashMap<u32, usize>,
    pub trailers: Vec<Dict>,
    /// More items than [`MAX_ITEMS`]: the file was not read completely.
    pub too_complex: bool,
}

impl Document {
    /// Every indirect object and trailer in the file, found by scanning it.
    pub(super) fn scan(data: &[u8]) -> Self {
        let mut doc = Document {
            objects: Vec::new(),
            by_number: HashMap::new(),
            trailers: Vec::new(),
            too_complex: false,
        };
        let mut items = 0usize;
        let mut indirect_lengths = Vec::new();
        let mut pos = 0;
        while let Some(at) = super::super::find(&data[pos..], b"obj").map(|i| i + pos) {
            pos = at + 3;
            let Some(number) = object_header(data, at) else {
                continue;
            };
            if data.get(at + 3).is_some_and(|b| is_regular(*b)) {
                continue;
            }
            let mut lexer = Lexer::new(data, at + 3);
            lexer.max_items = MAX_ITEMS.saturating_sub(items);
            let parsed = lexer.next_object();
            items += lexer.items;
            if lexer.exhausted() {
                doc.too_complex = true;
                break;
            }
            let Some(Ok(object)) = parsed else {
                continue;
            };
            let after_object = lexer.pos;
            let is_stream = matches!(lexer.next_token(), Some(Token::Keyword(k)) if k == b"stream");
            let body = match (object, is_stream) {
                (Object::Dict(dict), true) => {
                    let mut start = lexer.pos;
                    if data.get(start) == Some(&b'\r') {
                        start += 1;
                    }
                    if data.get(start) == Some(&b'\n') {
                        start += 1;
                    }
                    let declared = dict.get(b"Length");
                    let raw = match declared.and_then(Object::as_number) {
                        Some(length) => stream_extent(data, start, length),
                        None => None,
                    }
                    .or_else(|| searched_extent(data, start));
                    let Some(raw) = raw else {
                        pos = after_object;
                        continue;
                    };
                    if let Some(Object::Ref(length)) = declared {
                        indirect_lengths.push((doc.objects.len(), *length));
                    }
                    pos = raw.end;
                    Body::Stream { dict, raw }
                }
                (object, _) => {
                    // An unbalanced string may have run past the end of its object: scanning
                    // goes on from there, so that the objects after it are found too.
                    let end = super::super::find(&data[at + 3..], b"endobj").map(|i| at + 9 + i);
                    pos = end
                        .filter(|end| *end < after_object)
                        .unwrap_or(after_object);
                    Body::Object(object)
                }
            };
            doc.add(number, body);
        }
        // Streams whose length is an indirect object: the declared length wins when it fits.
        for (index, length_object) in indirect_lengths {
            let length = doc.object(length_object).and_then(Object::as_number);
            if let (Some(length), Body::Stream { raw, .. }) = (length, &doc.objects[index].body) {
                if let Some(extent) = stream_extent(data, raw.start, length) {
                    doc.objects[index].body = match std::mem::replace(
                        &mut doc.objects[index].body,
                        Body::Object(Object::Null),
                    ) {
                        Body::Stream { dict, .. } => Body::Stream { dict, raw: extent },
                        other => other,
                    };
                }
            }
        }
        let mut from = 0;
        while let Some(at) = super::super::find(&data[from..], b"trailer").map(|i| i + from) {
            let mut lexer = Lexer::new(data, at + 7);
            if let Some(Ok(Object::Dict(dict))) = lexer.next_object() {
                doc.trailers.push(dict);
            }
            from = at + 7;
        }
        doc
    }

    pub(super) fn add(&mut self, number: u32, body: Body) {
        self.by_number.insert(number, self.objects.len());
        self.objects.push(Indirect { body });
    }

    /// The object numbered `number`, if it is not a stream.
    pub(super) fn object(&self, number: u32) -> Option<&Object> {
        match &self.objects.get(*self.by_number.get(&number)?)?.body {
            Body::Object(object) => Some(object),
            Body::Stream { .. } => None,
        }
    }

    /// Follows references (a few steps at most) to the object they name.
    pub(super) fn resolve<'o>(&'o self, object: &'o Object) -> &'o Object {
        let mut current = object;
        for _ in 0..8 {
            match current {
                Object::Ref(number) => match self.object(*number) {
                    Some(target) => current = target,
                    None => return current,
                },
                _ => return current,
            }
        }
        current
    }

    /// The dictionary an object is or names (also a stream's dictionary).
    pub(super) fn dict<'o>(&'o self, object: &'o Object) -> Option<&'o Dict> {
        match self.resolve(object) {
            Object::Dict(dict) => Some(dict),
            Object::Ref(number) => match &self.objects.get(*self.by_number.get(number)?)?.body {
                Body::Stream { dict, .. } => Some(dict),
                Body::Object(_) => None,
            },
            _ => None,
        }
    }
}

/// The object number of the `n g obj` header whose keyword starts at `at`.
fn object_header(data: &[u8], at: usize) -> Option<u32> {
    let mut i = at;
    let skip = |i: &mut usize, want_digits: bool| -> Option<usize> {
        let end = *i;
        while *i > 0
            && (data[*i - 1].is_ascii_digit() == want_digits)
            && (want_digits || is_whitespace(data[*i - 1]))
        {
            *i -= 1;
        }
        (*i < end).then_some(end)
    };
    skip(&mut i, false)?;
    skip(&mut i, true)?;
    skip(&mut i, false)?;
    let number_end = skip(&mut i, true)?;
    if i > 0 && is_regular(data[i - 1]) {
        return None;
    }
    std::str::from_utf8(&data[i..number_end]).ok()?.parse().ok()
}

/// The data of a stream of the declared length starting at `start`, if `endstream` follows it.
fn stream_extent(data: &[u8], start: usize, length: f64) -> Option<Range<usize>> {
    if !(0.0..=data.len() as f64).contains(&length) {
        return None;
    }
    let end = start.checked_add(length as usize)?;
    let mut after = end;
    while data.get(after).is_some_and(|b| is_whitespace(*b)) {
        after += 1;
    }
    data.get(after..)?
        .starts_with(b"endstream")
        .then_some(start..end)
}

/// The data of a stream up to the next `endstream` (without the line break before it).
fn searched_extent(data: &[u8], start: usize) -> Option<Range<usize>> {
    let mut end = super::super::find(data.get(start..)?, b"endstream")? + start;
    if end > start && data[end - 1] == b'\n' {
        end -= 1;
    }
    if end > start && data[end - 1] == b'\r' {
        end -= 1;
    }
    Some(start..end)
}

#[cfg(test)]
mod tests;
