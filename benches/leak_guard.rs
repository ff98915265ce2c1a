//! The leak guard over long texts: `cargo bench --bench leak_guard`.
//!
//! A worker with every kind of identity marker registered (name, phone, e-mail, town, plate) sends
//! 16 MiB of ordinary text (Dutch words, numbers, addresses), 16 MiB of digits, 16 MiB of random
//! digits separated by spaces (the worst case for phone numbers: every digit starts the stretches of
//! 9 to 13 digits a number could be) and 16 MiB of random words (the worst case for names, towns and
//! plates: nothing repeats). None contains a marker, so the guard reads each to its end. It prints
//! the time of each and the rate.

use std::collections::HashSet;
use std::time::Instant;

use schuilnaam::crypto::ServerKey;
use schuilnaam::mail::leak::{self, MarkerKind};

const SIZE: usize = 16 << 20;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ServerKey::load_or_create(&dir.path().join("server.key")).unwrap();
    let mut markers = HashSet::new();
    for (kind, text) in [
        (MarkerKind::Name, "Jan de Vries"),
        (MarkerKind::Town, "Alphen aan den Rijn"),
        (MarkerKind::Plate, "12-ABC-3"),
        (MarkerKind::Email, "jan.devries@prive.example"),
        (MarkerKind::Phone, "+31612345678"),
    ] {
        for form in leak::normalise(kind, text).unwrap() {
            markers.insert((kind, leak::marker_hash(&keys, kind, &form)));
        }
    }
    let words = [
        "de",
        "rapportage",
        "van",
        "het",
        "gesprek",
        "met",
        "moeder",
        "op",
        "dinsdag",
        "zaak",
        "2026-0412",
        "bel",
        "020-1234567",
        "mail",
        "info@jb.example",
        "één",
        "kind",
        "school",
        "Utrecht,",
    ];
    let mut text = String::with_capacity(SIZE + 16);
    let mut i = 0usize;
    while text.len() < SIZE {
        text.push_str(words[(i * 7 + i / 3) % words.len()]);
        text.push(if i.is_multiple_of(13) { '\n' } else { ' ' });
        i += 1;
    }
    let digits: String = (0..SIZE)
        .map(|i| char::from(b'0' + (i * 7 % 10) as u8))
        .collect();
    // The worst cases: nothing repeats. Random digits each a group of its own (every digit starts
    // the stretches of 9 to 13 digits a number could be), and random words of 1 to 12 letters.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut spaced = String::with_capacity(SIZE + 2);
    while spaced.len() < SIZE {
        spaced.push(char::from(b'0' + (random() % 10) as u8));
        spaced.push(' ');
    }
    // Letters that cannot spell a registered marker.
    let letters = b"bcdfghklmnpqstwxz";
    let mut random_words = String::with_capacity(SIZE + 16);
    while random_words.len() < SIZE {
        for _ in 0..1 + random() % 12 {
            random_words.push(char::from(letters[(random() % 17) as usize]));
        }
        random_words.push(' ');
    }
    for (what, input) in [
        ("text", &text),
        ("digits", &digits),
        ("digits, each a group", &spaced),
        ("random words", &random_words),
    ] {
        let started = Instant::now();
        let result = leak::check(&keys, &markers, input);
        let elapsed = started.elapsed();
        assert!(result.is_ok(), "{what}: no marker in it");
        println!(
            "leak guard, 16 MiB of {what}: {:.2} s ({:.1} MiB/s)",
            elapsed.as_secs_f64(),
            16.0 / elapsed.as_secs_f64()
        );
    }
}
