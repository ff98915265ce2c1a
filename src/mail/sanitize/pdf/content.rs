//! The text a page's content stream shows, line by line. Pieces of text shown one after another
//! on one line (strings of a `TJ` array, consecutive `Tj`, pieces placed by `Td`/`Tm` on the same
//! baseline) are read twice: separated where the file leaves a gap, and joined, so that a word
//! split across operators is recognised whether or not the gap shows.

use std::collections::HashMap;
use std::rc::Rc;

use super::fonts::{text_string, Decoder, Unmapped};
use super::syntax::{Lexer, Object, Token};

/// A `TJ` adjustment more negative than this (thousandths of the font size) is a word gap.
const GAP: f64 = -100.0;
/// At most this many operands are kept before an operator (no operator takes more than six).
const MAX_OPERANDS: usize = 16;

#[derive(Default)]
struct Line {
    spaced: String,
    joined: String,
    gap: bool,
    had_gap: bool,
}

impl Line {
    fn show(&mut self, text: &str) {
        if self.gap && !self.spaced.is_empty() {
            self.spaced.push(' ');
            self.had_gap = true;
        }
        self.gap = false;
        self.spaced.push_str(text);
        self.joined.push_str(text);
    }

    fn flush(&mut self, out: &mut String) {
        if !self.spaced.is_empty() {
            out.push_str(&self.spaced);
            out.push('\n');
            if self.had_gap {
                out.push_str(&self.joined);
                out.push('\n');
            }
        }
        *self = Line::default();
    }
}

/// Appends the text of `content` to `out`; `fonts` maps the stream's font resource names to how
/// their codes read.
pub(super) fn text(
    content: &[u8],
    fonts: &HashMap<Vec<u8>, Rc<Decoder>>,
    out: &mut String,
) -> Result<(), Unmapped> {
    let fallback = Decoder::fallback();
    let mut font = &fallback;
    let mut lexer = Lexer::new(content, 0);
    let mut operands: Vec<Object> = Vec::new();
    let mut line = Line::default();
    // The text line matrix (a b c d e f) and the baseline of the current line.
    let mut matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let mut baseline: Option<f64> = None;
    let mut other_text = String::new();
    let number = |operands: &[Object], back: usize| {
        operands
            .len()
            .checked_sub(back)
            .and_then(|i| operands[i].as_number())
            .unwrap_or(0.0)
    };
    while let Some(token) = lexer.next_token() {
        let op = match token {
            // Arrays are read as they come (a `TJ` array can be as long as the stream).
            Token::ArrayOpen => {
                let mut depth = 1usize;
                while let Some(token) = lexer.next_token() {
                    match token {
                        Token::ArrayOpen => depth += 1,
                        Token::ArrayClose => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        Token::String(bytes) => line.show(&font.decode(&bytes)?),
                        Token::Int(n) if (n as f64) < GAP => line.gap = true,
                        Token::Real(n) if n < GAP => line.gap = true,
                        _ => {}
                    }
                }
                operands.push(Object::Null);
                continue;
            }
            Token::Keyword(op) => op,
            other => {
                let object = match other {
                    Token::Int(i) => Object::Int(i),
                    Token::Real(r) => Object::Real(r),
                    Token::String(s) => Object::String(s),
                    Token::Name(n) => Object::Name(n),
                    Token::DictOpen => {
                        // Marked-content properties (`/ActualText`, `/Alt`) and inline image
                        // parameters: their strings are text a reader can get at.
                        let start = lexer.pos - 2;
                        let mut dict_lexer = Lexer::new(content, start);
                        let parsed = dict_lexer.next_object();
                        // An unclosed dictionary is ignored, not allowed to swallow the text after it.
                        let closed = content[..dict_lexer.pos].ends_with(b">>");
                        if closed {
                            lexer.pos = dict_lexer.pos;
                        }
                        if let (true, Some(Ok(object))) = (closed, parsed) {
                            let mut strings = Vec::new();
                            object.strings(&mut strings);
                            for s in strings {
                                other_text.push_str(&text_string(s));
                                other_text.push('\n');
                            }
                        }
                        Object::Null
                    }
                    _ => Object::Null,
                };
                operands.push(object);
                if operands.len() > MAX_OPERANDS {
                    operands.remove(0);
                }
                continue;
            }
        };
        match op.as_slice() {
            b"Tf" => {
                font = operands
                    .len()
                    .checked_sub(2)
                    .and_then(|i| operands[i].as_name())
                    .and_then(|name| fonts.get(name))
                    .map(|decoder| &**decoder)
                    .unwrap_or(&fallback);
            }
            b"BT" => matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            b"Td" | b"TD" => {
                let (tx, ty) = (number(&operands, 2), number(&operands, 1));
                matrix[4] += tx * matrix[0] + ty * matrix[2];
                matrix[5] += tx * matrix[1] + ty * matrix[3];
                move_to(&mut line, &mut baseline, matrix[5], out);
            }
            b"Tm" => {
                for (i, value) in matrix.iter_mut().enumerate() {
                    *value = number(&operands, 6 - i);
                }
                move_to(&mut line, &mut baseline, matrix[5], out);
            }
            b"T*" => {
                line.flush(out);
                baseline = None;
            }
            b"Tj" | b"'" | b"\"" => {
                if op != b"Tj" {
                    line.flush(out);
                    baseline = None;
                }
                if let Some(Object::String(bytes)) = operands.last() {
                    line.show(&font.decode(bytes)?);
                }
            }
            b"ID" => {
                // Inline image data runs to `EI` standing alone.
                lexer.pos = inline_image_end(content, lexer.pos + 1);
            }
            _ => {}
        }
        operands.clear();
    }
    line.flush(out);
    out.push_str(&other_text);
    Ok(())
}

/// A move of the text position: a new line when the baseline changes, else a gap.
fn move_to(line: &mut Line, baseline: &mut Option<f64>, y: f64, out: &mut String) {
    match *baseline {
        Some(current) if (current - y).abs() <= 0.01 => line.gap = true,
        Some(_) => line.flush(out),
        None => line.gap = true,
    }
    *baseline = Some(y);
}

fn inline_image_end(content: &[u8], from: usize) -> usize {
    let mut i = from;
    while i + 1 < content.len() {
        let standalone = content[i] == b'E'
            && content[i + 1] == b'I'
            && i > 0
            && super::syntax::is_whitespace(content[i - 1])
            && content
                .get(i + 2)
                .is_none_or(|b| super::syntax::is_whitespace(*b));
        if standalone {
            return i + 2;
        }
        i += 1;
    }
    content.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(content: &[u8]) -> String {
        let mut out = String::new();
        text(content, &HashMap::new(), &mut out).unwrap();
        out
    }

    #[test]
    fn kerned_and_split_words_are_read_spaced_and_joined() {
        let out = read(b"BT /F1 12 Tf [(J)20(an)-300(Jan)15(sen)] TJ ET");
        assert!(out.contains("Jan Jansen\n"), "{out}");
        assert!(out.contains("JanJansen\n"), "{out}");
        let out =
            read(b"BT 100 700 Td (Pieter) Tj 40 0 Td (sen) Tj 0 -14 Td (06-1234) Tj (5678) Tj ET");
        assert!(out.contains("Pietersen"), "{out}");
        assert!(out.contains("06-12345678"), "{out}");
        assert!(!out.contains("sen06"), "a new line separates: {out}");
        let out = read(b"BT 1 0 0 1 72 700 Tm (Jan)Tj ET BT 1 0 0 1 95 700 Tm (sen)Tj ET");
        assert!(out.contains("Jansen"), "same baseline: {out}");
    }

    #[test]
    fn inline_images_and_marked_content() {
        let out = read(
            b"BI /W 2 /H 1 /BPC 8 /CS /G ID \x28\x29(( EI Q /Span << /ActualText (Jan Jansen) >> BDC (x) Tj EMC",
        );
        assert!(out.contains("Jan Jansen"), "{out}");
        assert!(out.starts_with("x\n"), "{out}");
        let out = read(b"BT << /Broken (x) (Jan) Tj (sen) Tj ET");
        assert!(out.contains("Jansen"), "{out}");
    }
}
