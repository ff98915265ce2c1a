//! Normalising: every way of writing the same letters and digits folded to one form (see the
//! parent module), the words of a folded text, and the older folding that markers stored before
//! were made with.

use std::collections::HashSet;

use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The form the guard compares text in (see the module documentation): what looks the same to a
/// reader is the same here.
pub fn canonical(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if !invisible(c) {
            decompose_compatible(c, |d| fold_into(d, &mut out));
        }
    }
    out
}

/// Characters that show nothing: formatting characters (Cf), the other default-ignorable code
/// points, and combining marks (diacritics and variation selectors, once letters are decomposed).
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' | '\u{2060}'..='\u{206f}'
            | '\u{fff0}'..='\u{fff8}' | '\u{e0000}'..='\u{e0fff}'
    ) || is_combining_mark(c)
        || c.general_category() == GeneralCategory::Format
}

/// Appends one decomposed character in its compared form.
fn fold_into(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    if invisible(c) {
        return;
    }
    match c.general_category() {
        GeneralCategory::SpaceSeparator
        | GeneralCategory::LineSeparator
        | GeneralCategory::ParagraphSeparator => return out.push(' '),
        GeneralCategory::DashPunctuation => return out.push('-'),
        GeneralCategory::DecimalNumber => return out.push(decimal_digit(c)),
        _ => {}
    }
    match c {
        '\u{2212}' => return out.push('-'),
        '\u{2044}' | '\u{2215}' => return out.push('/'),
        '\u{00b7}' | '\u{2022}' | '\u{2027}' | '\u{30fb}' => return out.push('.'),
        '\u{2800}' => return out.push(' '),
        _ => {}
    }
    let c = latin_lookalike(c).unwrap_or(c);
    for lower in c.to_lowercase() {
        if is_combining_mark(lower) {
            continue;
        }
        match latin_lookalike(lower) {
            Some(latin) => out.push(latin),
            None => match letter_fold(lower) {
                Some(folded) => out.push_str(folded),
                None => out.push(lower),
            },
        }
    }
}

/// The ASCII digit of a decimal digit of any script. Decimal digits come in runs of ten from zero
/// (the Unicode stability policy); adjacent runs are counted from the first.
fn decimal_digit(c: char) -> char {
    let mut start = c as u32;
    while let Some(previous) = start.checked_sub(1).and_then(char::from_u32) {
        if previous.general_category() != GeneralCategory::DecimalNumber {
            break;
        }
        start -= 1;
    }
    char::from(b'0' + ((c as u32 - start) % 10) as u8)
}

/// Greek and Cyrillic letters drawn like Latin ones.
fn latin_lookalike(c: char) -> Option<char> {
    Some(match c {
        'Α' | 'А' => 'A',
        'Β' | 'В' => 'B',
        'С' => 'C',
        'Ε' | 'Е' => 'E',
        'Η' | 'Н' => 'H',
        'Ι' | 'І' | 'Ӏ' => 'I',
        'Ј' => 'J',
        'Κ' | 'К' => 'K',
        'Μ' | 'М' => 'M',
        'Ν' => 'N',
        'Ο' | 'О' => 'O',
        'Ρ' | 'Р' => 'P',
        'Ԛ' => 'Q',
        'Ѕ' => 'S',
        'Τ' | 'Т' => 'T',
        'Υ' | 'У' | 'Ү' => 'Y',
        'Ԝ' => 'W',
        'Χ' | 'Х' => 'X',
        'Ζ' => 'Z',
        'а' | 'α' => 'a',
        'ϲ' | 'с' => 'c',
        'ԁ' => 'd',
        'е' => 'e',
        'ɡ' => 'g',
        'һ' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' | 'ϳ' => 'j',
        'κ' => 'k',
        'ӏ' => 'l',
        'ο' | 'о' => 'o',
        'ρ' | 'р' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'χ' | 'х' => 'x',
        'у' | 'ү' => 'y',
        _ => return None,
    })
}

/// Latin letters without a decomposition that readers see as plain letters.
fn letter_fold(c: char) -> Option<&'static str> {
    Some(match c {
        'ł' => "l",
        'ø' => "o",
        'đ' | 'ð' => "d",
        'ħ' => "h",
        'ŧ' => "t",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        _ => return None,
    })
}

fn is_word_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.is_alphanumeric()
    }
}

/// Words of letters and digits, separated by single spaces, and where each starts and ends.
pub(super) struct Words {
    joined: String,
    bounds: Vec<(usize, usize)>,
}

impl Words {
    pub(super) fn of(folded: &str) -> Self {
        let mut joined = String::with_capacity(folded.len());
        let mut bounds = Vec::new();
        for word in folded
            .split(|c: char| !is_word_char(c))
            .filter(|w| !w.is_empty())
        {
            if !joined.is_empty() {
                joined.push(' ');
            }
            let start = joined.len();
            joined.push_str(word);
            bounds.push((start, joined.len()));
        }
        Words { joined, bounds }
    }

    pub(super) fn len(&self) -> usize {
        self.bounds.len()
    }

    pub(super) fn word(&self, i: usize) -> &str {
        &self.joined[self.bounds[i].0..self.bounds[i].1]
    }

    /// Words `i..i+n`, separated by single spaces.
    pub(super) fn gram(&self, i: usize, n: usize) -> &str {
        &self.joined[self.bounds[i].0..self.bounds[i + n - 1].1]
    }

    pub(super) fn list(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.word(i).to_string()).collect()
    }
}

// ---- markers registered before normalising was complete ----------------------------------------

/// How names, towns and plates were folded before: a few accents, then lower case. A marker
/// stored then keeps matching text written the same way (the guard also reads text this way when
/// it holds letters that the two foldings treat differently).
fn legacy_fold(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
        'ç' | 'Ç' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ñ' | 'Ñ' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ý' | 'ÿ' | 'Ý' => 'y',
        other => other,
    }
}

pub(super) fn legacy_folded(text: &str) -> String {
    text.chars()
        .map(legacy_fold)
        .collect::<String>()
        .to_lowercase()
}

/// Whether `text` has a letter or digit that the old folding kept and the current one changes.
pub(super) fn needs_legacy_reading(text: &str) -> bool {
    let mut seen = HashSet::new();
    text.chars()
        .filter(|c| !c.is_ascii() && c.is_alphanumeric() && legacy_fold(*c) == *c)
        .any(|c| {
            seen.insert(c)
                && legacy_folded(c.encode_utf8(&mut [0; 4]))
                    != canonical(c.encode_utf8(&mut [0; 4]))
        })
}
