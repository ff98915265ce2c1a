//! The leak guard: an outgoing message that contains one of the worker's own identity markers — a
//! part of their real name, their phone number in any common Dutch notation, their private e-mail
//! address, their home town, their licence plate — is refused, with a message that says what was
//! found. Markers are stored only as keyed HMACs of normalised text; the guard normalises the
//! outgoing text the same way and compares hashes.

use std::collections::HashSet;

use serde::Serialize;

use crate::crypto::{KeyedHash, ServerKey};
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;

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
}

/// Name particles that are not worth a marker of their own.
const PARTICLES: [&str; 19] = [
    "van", "de", "der", "den", "het", "ten", "ter", "te", "op", "in", "t", "la", "le", "von", "du",
    "da", "di", "el", "vd",
];

/// Longest marker in words (town names such as "Alphen aan den Rijn").
const MAX_WORDS: usize = 5;

/// Lower case, accents folded, words of letters and digits.
fn words(text: &str) -> Vec<String> {
    let folded: String = text.chars().map(fold).collect::<String>().to_lowercase();
    folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn fold(c: char) -> char {
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

/// The normalised forms a registered marker is stored as (several for a name: one per part).
pub fn normalise(kind: MarkerKind, text: &str) -> Result<Vec<String>, String> {
    let forms = match kind {
        MarkerKind::Name => words(text)
            .into_iter()
            .filter(|w| w.chars().count() >= 2 && !PARTICLES.contains(&w.as_str()))
            .collect(),
        MarkerKind::Town => {
            let w = words(text);
            if w.is_empty() || w.len() > MAX_WORDS {
                return Err("a town has one to five words".into());
            }
            vec![w.join(" ")]
        }
        MarkerKind::Plate => {
            let joined: String = words(text).concat();
            if !(4..=10).contains(&joined.len()) {
                return Err("a licence plate has 4 to 10 letters and digits".into());
            }
            vec![joined]
        }
        MarkerKind::Phone => vec![PhoneNumber::parse(text)
            .map_err(|e| e.to_string())?
            .as_str()
            .to_string()],
        MarkerKind::Email => vec![EmailAddress::parse(text)
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

/// What the guard found, for the worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the message contains {} (\"{fragment}\"); remove it and send again", .kind.described())]
pub struct Leak {
    pub kind: MarkerKind,
    pub fragment: String,
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
    let has = |kind: MarkerKind| markers.iter().any(|(k, _)| *k == kind);
    let hit = |kind: MarkerKind, normalised: &str| {
        markers.contains(&(kind, marker_hash(keys, kind, normalised)))
    };
    // The most specific kinds first: an address also contains name parts.
    if has(MarkerKind::Email) {
        for address in email_like(text) {
            if hit(MarkerKind::Email, &address) {
                return Err(Leak {
                    kind: MarkerKind::Email,
                    fragment: address,
                });
            }
        }
    }
    if has(MarkerKind::Phone) {
        for (number, shown) in phone_like(text) {
            if hit(MarkerKind::Phone, &number) {
                return Err(Leak {
                    kind: MarkerKind::Phone,
                    fragment: shown,
                });
            }
        }
    }
    if has(MarkerKind::Name) || has(MarkerKind::Town) || has(MarkerKind::Plate) {
        let w = words(text);
        for start in 0..w.len() {
            for len in 1..=MAX_WORDS.min(w.len() - start) {
                let gram = &w[start..start + len];
                let spaced = gram.join(" ");
                if len == 1 && has(MarkerKind::Name) && hit(MarkerKind::Name, &spaced) {
                    return Err(Leak {
                        kind: MarkerKind::Name,
                        fragment: spaced,
                    });
                }
                if has(MarkerKind::Town) && hit(MarkerKind::Town, &spaced) {
                    return Err(Leak {
                        kind: MarkerKind::Town,
                        fragment: spaced,
                    });
                }
                if len <= 3 && has(MarkerKind::Plate) && hit(MarkerKind::Plate, &gram.concat()) {
                    return Err(Leak {
                        kind: MarkerKind::Plate,
                        fragment: spaced,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Every `local@domain` in the text, lower case.
fn email_like(text: &str) -> Vec<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._%+-".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for (at, _) in chars.iter().enumerate().filter(|(_, c)| **c == '@') {
        let start = (0..at).rev().take_while(|i| allowed(chars[*i])).last();
        let end = (at + 1..chars.len())
            .take_while(|i| {
                chars[*i].is_ascii_alphanumeric() || chars[*i] == '.' || chars[*i] == '-'
            })
            .last();
        if let (Some(start), Some(end)) = (start, end) {
            let candidate: String = chars[start..=end].iter().collect();
            let candidate = candidate.trim_end_matches('.').to_ascii_lowercase();
            if let Ok(address) = EmailAddress::parse(&candidate) {
                found.push(address.canonical());
            }
        }
    }
    found
}

/// Every way a run of digits in the text could be written as a phone number, in E.164, with the
/// text it came from. Runs may contain spaces, dashes, dots, slashes and brackets
/// (`06-12 34 56 78`, `(010) 123 45 67`, `+31 6 1234 5678`, `0031612345678`).
fn phone_like(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i].is_ascii_digit() || chars[i] == '+') {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits: Vec<(usize, char)> = Vec::new();
        let plus = chars[i] == '+';
        while i < chars.len() && (chars[i].is_ascii_digit() || " -./()+".contains(chars[i])) {
            if chars[i].is_ascii_digit() {
                digits.push((i, chars[i]));
            }
            i += 1;
        }
        for first in 0..digits.len() {
            for len in 9..=13usize {
                let Some(slice) = digits.get(first..first + len) else {
                    break;
                };
                let number: String = slice.iter().map(|(_, d)| *d).collect();
                let international = plus && first == 0;
                let candidates = if international {
                    vec![format!("+{number}")]
                } else {
                    vec![number.clone(), format!("+{number}")]
                };
                for candidate in candidates {
                    if let Ok(parsed) = PhoneNumber::parse(&candidate) {
                        let from = if first == 0 { start } else { slice[0].0 };
                        let shown: String = chars[from..=slice[len - 1].0].iter().collect();
                        found.push((parsed.as_str().to_string(), shown));
                    }
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (tempfile::TempDir, ServerKey) {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKey::load_or_create(&dir.path().join("k")).unwrap();
        (dir, keys)
    }

    fn markers(keys: &ServerKey, entries: &[(MarkerKind, &str)]) -> HashSet<(MarkerKind, String)> {
        entries
            .iter()
            .flat_map(|(kind, text)| {
                normalise(*kind, text)
                    .unwrap()
                    .into_iter()
                    .map(|n| (*kind, marker_hash(keys, *kind, &n)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn phone_numbers_in_every_dutch_notation() {
        let (_dir, keys) = keys();
        let set = markers(&keys, &[(MarkerKind::Phone, "+31612345678")]);
        for text in [
            "bel me op 06-12 34 56 78 graag",
            "0612345678",
            "06 12345678",
            "+31 6 1234 5678",
            "+31612345678",
            "0031 6 12 34 56 78",
            "(06) 12 34 56 78",
            "06.12.34.56.78",
            "tel: 06/12345678.",
        ] {
            let leak = check(&keys, &set, text).unwrap_err();
            assert_eq!(leak.kind, MarkerKind::Phone, "{text}");
        }
        for text in [
            "06-12 34 56 79",
            "bel 112",
            "zaaknummer 2026-0612-3456",
            "0101234567",
        ] {
            assert!(check(&keys, &set, text).is_ok(), "{text}");
        }
    }

    #[test]
    fn names_towns_plates_and_addresses() {
        let (_dir, keys) = keys();
        let set = markers(
            &keys,
            &[
                (MarkerKind::Name, "Jan de Vries"),
                (MarkerKind::Town, "Alphen aan den Rijn"),
                (MarkerKind::Plate, "12-ABC-3"),
                (MarkerKind::Email, "jan.devries@prive.example"),
            ],
        );
        let find = |text| check(&keys, &set, text).err().map(|l| l.kind);
        assert_eq!(find("Groet, Jan"), Some(MarkerKind::Name));
        assert_eq!(find("mevrouw De VRIES belde"), Some(MarkerKind::Name));
        assert_eq!(find("Vriës"), Some(MarkerKind::Name));
        assert_eq!(
            find("ik woon in alphen aan den rijn"),
            Some(MarkerKind::Town)
        );
        assert_eq!(find("auto 12-abc-3 staat er"), Some(MarkerKind::Plate));
        assert_eq!(find("kenteken 12 ABC 3"), Some(MarkerKind::Plate));
        assert_eq!(
            find("mail Jan.DeVries@Prive.example graag"),
            Some(MarkerKind::Email)
        );
        // Particles alone are no marker; other words pass.
        assert_eq!(find("de rapportage van de raad"), None);
        assert_eq!(find("Alphen heeft een station"), None);
    }

    #[test]
    fn the_worker_is_told_what_was_found() {
        let (_dir, keys) = keys();
        let set = markers(&keys, &[(MarkerKind::Phone, "0612345678")]);
        let leak = check(&keys, &set, "bel 06-12 34 56 78").unwrap_err();
        assert_eq!(
            leak.to_string(),
            "the message contains your own phone number (\"06-12 34 56 78\"); remove it and send again"
        );
    }

    #[test]
    fn registration_is_validated() {
        assert!(normalise(MarkerKind::Name, "van der").is_err());
        assert!(normalise(MarkerKind::Phone, "12").is_err());
        assert!(normalise(MarkerKind::Plate, "A").is_err());
        assert_eq!(
            normalise(MarkerKind::Name, "Jan van Dijk").unwrap(),
            vec!["jan", "dijk"]
        );
    }
}
