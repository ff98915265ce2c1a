//! The leak guard: an outgoing message that contains one of the worker's own identity markers — a
//! part of their real name, their phone number in any common Dutch notation, their private e-mail
//! address, their home town, their licence plate — is refused, with a message that says what was
//! found. Markers are stored only as keyed HMACs of normalised text; the guard normalises the
//! outgoing text the same way and compares hashes.
//!
//! Normalising ([`canonical`]) makes every way of writing the same letters and digits compare
//! equal: Unicode compatibility decomposition (fullwidth, mathematical, circled, superscript
//! forms, ligatures), diacritics removed, every invisible or formatting character removed (Unicode
//! category Cf: zero-width space and joiners, soft hyphen, bidirectional marks, word joiner, tags;
//! variation selectors and fillers), digits of every script read as ASCII digits, every kind of
//! space read as a space and every dash as a hyphen, Greek and Cyrillic letters that look Latin
//! read as the Latin letter, lower case. Registration ([`normalise`]) and checking use the same
//! function. The text is also read with RFC 2047 encoded words and percent-escapes decoded, and
//! with right-to-left overrides undone, as a recipient's program would show it.
//!
//! The work is linear in the text: one HMAC per candidate (keyed once per check, not per
//! candidate), one-word candidates hashed once however often they occur, licence-plate candidates
//! only of a length a plate can have.

use std::collections::HashSet;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::crypto::{KeyedHash, ServerKey};
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;

mod fold;
mod readings;

pub use fold::canonical;
use fold::{legacy_folded, needs_legacy_reading, Words};
use readings::readings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkerKind {
    Name,
    Phone,
    Email,
    Town,
    Plate,
}

impl MarkerKind {
    const ALL: [MarkerKind; 5] = [
        MarkerKind::Name,
        MarkerKind::Phone,
        MarkerKind::Email,
        MarkerKind::Town,
        MarkerKind::Plate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MarkerKind::Name => "name",
            MarkerKind::Phone => "phone",
            MarkerKind::Email => "email",
            MarkerKind::Town => "town",
            MarkerKind::Plate => "plate",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "name" => MarkerKind::Name,
            "phone" => MarkerKind::Phone,
            "email" => MarkerKind::Email,
            "town" => MarkerKind::Town,
            "plate" => MarkerKind::Plate,
            _ => return None,
        })
    }

    /// How the worker is told what was found.
    fn described(self) -> &'static str {
        match self {
            MarkerKind::Name => "your own name",
            MarkerKind::Phone => "your own phone number",
            MarkerKind::Email => "your own e-mail address",
            MarkerKind::Town => "your home town",
            MarkerKind::Plate => "your licence plate",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Name particles that are not worth a marker of their own.
const PARTICLES: [&str; 19] = [
    "van", "de", "der", "den", "het", "ten", "ter", "te", "op", "in", "t", "la", "le", "von", "du",
    "da", "di", "el", "vd",
];

/// Longest marker in words (town names such as "Alphen aan den Rijn").
const MAX_WORDS: usize = 5;

/// Longest licence plate in words ("12 ABC 3") and its length in letters and digits.
const PLATE_WORDS: usize = 3;
const PLATE_LENGTH: std::ops::RangeInclusive<usize> = 4..=10;

/// The normalised forms a registered marker is stored as (several for a name: one per part).
pub fn normalise(kind: MarkerKind, text: &str) -> Result<Vec<String>, String> {
    let words = || Words::of(&canonical(text)).list();
    let forms = match kind {
        MarkerKind::Name => words()
            .into_iter()
            .filter(|w| w.chars().count() >= 2 && !PARTICLES.contains(&w.as_str()))
            .collect(),
        MarkerKind::Town => {
            let w = words();
            if w.is_empty() || w.len() > MAX_WORDS {
                return Err("a town has one to five words".into());
            }
            vec![w.join(" ")]
        }
        MarkerKind::Plate => {
            let joined: String = words().concat();
            if !PLATE_LENGTH.contains(&joined.len()) {
                return Err("a licence plate has 4 to 10 letters and digits".into());
            }
            vec![joined]
        }
        MarkerKind::Phone => vec![PhoneNumber::parse(&canonical(text))
            .map_err(|e| e.to_string())?
            .as_str()
            .to_string()],
        MarkerKind::Email => vec![EmailAddress::parse(&canonical(text))
            .map_err(|e| e.to_string())?
            .canonical()],
    };
    if forms.is_empty() {
        return Err(format!("nothing to recognise in this {}", kind.as_str()));
    }
    Ok(forms)
}

/// The keyed hash a marker is stored and compared as.
pub fn marker_hash(keys: &ServerKey, kind: MarkerKind, normalised: &str) -> String {
    keys.keyed_hash(
        KeyedHash::Marker,
        format!("{}:{normalised}", kind.as_str()).as_bytes(),
    )
}

// ---- the guard -----------------------------------------------------------------------------------

/// What the guard found, for the worker. `Debug` does not show the fragment, so that no log line
/// can carry it.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message contains {} (\"{fragment}\"); remove it and send again", .kind.described())]
pub struct Leak {
    pub kind: MarkerKind,
    pub fragment: String,
}

impl fmt::Debug for Leak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leak")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The markers of one kind, and the HMAC keyed for them (cloned per candidate). A worker has a
/// handful of markers per kind: comparing them one by one is faster than hashing the digest.
struct KindHasher {
    mac: Hmac<Sha256>,
    known: Vec<[u8; 32]>,
}

impl KindHasher {
    fn hit(&self, parts: &[&[u8]]) -> bool {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        self.known.contains(&digest)
    }
}

/// A worker's markers, ready to check any number of texts.
pub struct Guard {
    kinds: [Option<KindHasher>; 5],
}

impl Guard {
    pub fn new(keys: &ServerKey, markers: &HashSet<(MarkerKind, String)>) -> Self {
        let kinds = MarkerKind::ALL.map(|kind| {
            let mut known: Vec<[u8; 32]> = markers
                .iter()
                .filter(|(k, _)| *k == kind)
                .filter_map(|(_, hash)| hex::decode(hash).ok()?.try_into().ok())
                .collect();
            known.sort_unstable();
            known.dedup();
            (!known.is_empty()).then(|| {
                let mut mac = keys.keyed_mac(KeyedHash::Marker);
                mac.update(kind.as_str().as_bytes());
                mac.update(b":");
                KindHasher { mac, known }
            })
        });
        Guard { kinds }
    }

    fn kind(&self, kind: MarkerKind) -> Option<&KindHasher> {
        self.kinds[kind.index()].as_ref()
    }

    /// Looks for any of the markers in `text`, read every way a recipient's program may show it.
    pub fn check(&self, text: &str) -> Result<(), Leak> {
        if self.kinds.iter().all(Option::is_none) {
            return Ok(());
        }
        for reading in readings(text) {
            self.check_reading(&reading)?;
        }
        Ok(())
    }

    fn check_reading(&self, text: &str) -> Result<(), Leak> {
        let folded = canonical(text);
        // The most specific kinds first: an address also contains name parts.
        self.emails(&folded)?;
        self.phones(&folded)?;
        let words_needed = [MarkerKind::Name, MarkerKind::Town, MarkerKind::Plate]
            .iter()
            .any(|k| self.kind(*k).is_some());
        if words_needed {
            self.grams(&Words::of(&folded))?;
            if needs_legacy_reading(text) {
                self.grams(&Words::of(&legacy_folded(text)))?;
            }
        }
        Ok(())
    }

    /// Every `local@domain` in the text.
    fn emails(&self, text: &str) -> Result<(), Leak> {
        let Some(hasher) = self.kind(MarkerKind::Email) else {
            return Ok(());
        };
        let bytes = text.as_bytes();
        let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
        let domain = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
        for at in bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'@')
            .map(|(i, _)| i)
        {
            let mut start = at;
            while start > 0 && local(bytes[start - 1]) {
                start -= 1;
            }
            let mut end = at + 1;
            while end < bytes.len() && domain(bytes[end]) {
                end += 1;
            }
            if start == at || end == at + 1 {
                continue;
            }
            let candidate = text[start..end].trim_end_matches('.');
            if let Ok(address) = EmailAddress::parse(candidate) {
                let address = address.canonical();
                if hasher.hit(&[address.as_bytes()]) {
                    return Err(Leak {
                        kind: MarkerKind::Email,
                        fragment: address,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every way a run of digits could be written as a phone number, in E.164. Runs may contain
    /// spaces, dashes, dots, slashes and brackets (`06-12 34 56 78`, `(010) 123 45 67`,
    /// `+31 6 1234 5678`, `0031612345678`); every stretch of 9 to 13 digits of a run is a
    /// candidate, and a stretch of 9 that does not start with 0 is also read as a Dutch number
    /// that lost its leading 0.
    fn phones(&self, text: &str) -> Result<(), Leak> {
        let Some(hasher) = self.kind(MarkerKind::Phone) else {
            return Ok(());
        };
        let bytes = text.as_bytes();
        let in_run = |b: u8| b.is_ascii_digit() || b" -./()+".contains(&b);
        let mut checked = Recent::new();
        let mut i = 0;
        while i < bytes.len() {
            if !(bytes[i].is_ascii_digit() || bytes[i] == b'+') {
                i += 1;
                continue;
            }
            let start = i;
            let plus = bytes[i] == b'+';
            // The positions and values of the last 13 digits of the run, and whether each begins
            // a group of digits (a number is read from the start of a group, not from inside one).
            let mut positions = [0usize; 13];
            let mut digits = [0u8; 13];
            let mut group_starts = [false; 13];
            let mut held = 0usize;
            let mut seen = 0usize;
            while i < bytes.len() && in_run(bytes[i]) {
                if bytes[i].is_ascii_digit() {
                    if held == 13 {
                        positions.copy_within(1.., 0);
                        digits.copy_within(1.., 0);
                        group_starts.copy_within(1.., 0);
                    } else {
                        held += 1;
                    }
                    positions[held - 1] = i;
                    digits[held - 1] = bytes[i];
                    group_starts[held - 1] = i == 0 || !bytes[i - 1].is_ascii_digit();
                    seen += 1;
                    // Longest first: the stretch that includes a leading 0 or 00 is the one shown.
                    for length in (9..=held).rev() {
                        if !group_starts[held - length] {
                            continue;
                        }
                        let first_of_run = seen == length;
                        let window = &digits[held - length..held];
                        let hit = phone_candidates(window, plus && first_of_run, |candidate| {
                            let packed = pack_number(candidate);
                            let spread = packed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
                            checked.first_time(packed, spread) && hasher.hit(&[candidate])
                        });
                        if hit {
                            let from = if first_of_run {
                                start
                            } else {
                                positions[held - length]
                            };
                            return Err(Leak {
                                kind: MarkerKind::Phone,
                                fragment: text[from..=i].to_string(),
                            });
                        }
                    }
                }
                i += 1;
            }
        }
        Ok(())
    }

    /// Names (one word), towns (one to five words) and plates (one to three words joined).
    fn grams(&self, words: &Words) -> Result<(), Leak> {
        let name = self.kind(MarkerKind::Name);
        let town = self.kind(MarkerKind::Town);
        let plate = self.kind(MarkerKind::Plate);
        // One and two words that were met recently were checked then (longer groups rarely repeat).
        let mut checked = Recent::new();
        for start in 0..words.len() {
            let word = words.word(start);
            let first_time = checked.first_time(word, fnv(word.as_bytes()));
            if first_time {
                if let Some(name) = name {
                    let could_be = word.chars().nth(1).is_some() && !PARTICLES.contains(&word);
                    if could_be && name.hit(&[word.as_bytes()]) {
                        return Err(Leak {
                            kind: MarkerKind::Name,
                            fragment: word.to_string(),
                        });
                    }
                }
            }
            let longest = MAX_WORDS.min(words.len() - start);
            for length in 1..=longest {
                let gram = words.gram(start, length);
                let new = match length {
                    1 => first_time,
                    2 => checked.first_time(gram, fnv(gram.as_bytes())),
                    _ => true,
                };
                if !new {
                    continue;
                }
                if let Some(town) = town {
                    if town.hit(&[gram.as_bytes()]) {
                        return Err(Leak {
                            kind: MarkerKind::Town,
                            fragment: gram.to_string(),
                        });
                    }
                }
                if let Some(plate) = plate.filter(|_| length <= PLATE_WORDS) {
                    let mut parts: [&[u8]; PLATE_WORDS] = [&[]; PLATE_WORDS];
                    for (part, i) in parts.iter_mut().zip(start..start + length) {
                        *part = words.word(i).as_bytes();
                    }
                    let letters: usize = parts.iter().map(|p| p.len()).sum();
                    if PLATE_LENGTH.contains(&letters) && plate.hit(&parts) {
                        return Err(Leak {
                            kind: MarkerKind::Plate,
                            fragment: gram.to_string(),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Candidates checked recently, so that a word, pair of words or number that recurs is hashed
/// once: a direct-mapped table of bounded size (a collision only means hashing a candidate again).
struct Recent<T> {
    slots: Vec<Option<T>>,
}

impl<T: PartialEq + Copy> Recent<T> {
    fn new() -> Self {
        Recent {
            slots: vec![None; 1 << 16],
        }
    }

    /// Whether `item` (whose hash is `hash`) was not met recently; remembers it.
    fn first_time(&mut self, item: T, hash: u64) -> bool {
        let slot = &mut self.slots[(hash as usize) & ((1 << 16) - 1)];
        if *slot == Some(item) {
            return false;
        }
        *slot = Some(item);
        true
    }
}

/// FNV-1a: quick, and good enough to spread candidates over [`Recent`]'s slots.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A phone number (`+` and at most 15 digits) packed exactly into 64 bits: length, then a digit
/// per four bits.
fn pack_number(candidate: &[u8]) -> u64 {
    candidate[1..]
        .iter()
        .fold(candidate.len() as u64, |acc, d| {
            acc << 4 | u64::from(d - b'0')
        })
}

/// Whether `hit` holds for one of the E.164 forms a stretch of digits can be read as (what
/// `PhoneNumber::parse` makes of it with and without a leading `+`).
fn phone_candidates(
    digits: &[u8],
    international: bool,
    mut hit: impl FnMut(&[u8]) -> bool,
) -> bool {
    let mut buffer = [0u8; 20];
    let mut e164 = |prefix: &[u8], rest: &[u8]| {
        let length = prefix.len() + rest.len();
        let first = prefix.first().or(rest.first());
        if !(8..=15).contains(&length) || first == Some(&b'0') {
            return false;
        }
        buffer[0] = b'+';
        buffer[1..=prefix.len()].copy_from_slice(prefix);
        buffer[1 + prefix.len()..=length].copy_from_slice(rest);
        hit(&buffer[..=length])
    };
    if international {
        e164(b"", digits)
    } else if let Some(rest) = digits.strip_prefix(b"00") {
        e164(b"", rest)
    } else if let Some(rest) = digits.strip_prefix(b"0") {
        e164(b"31", rest)
    } else {
        e164(b"", digits) || (digits.len() == 9 && e164(b"31", digits))
    }
}

/// Looks for any of the worker's markers in `text`.
pub fn check(
    keys: &ServerKey,
    markers: &HashSet<(MarkerKind, String)>,
    text: &str,
) -> Result<(), Leak> {
    if markers.is_empty() {
        return Ok(());
    }
    Guard::new(keys, markers).check(text)
}

#[cfg(test)]
mod tests;
