//! How an attachment's type is told (PGP armour, declared types, names) for text, CSV and PGP files:
//! the first byte picks the name and declared type, the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;

const AS: [(&str, &str); 6] = [
    ("notities.txt", "text/plain"),
    ("lijst.csv", "text/csv; charset=utf-8"),
    ("sleutel.asc", "application/pgp-keys"),
    ("handtekening.sig", "application/pgp-signature"),
    ("bericht", "application/octet-stream"),
    ("brief.docx", "text/plain"),
];

fuzz_target!(|input: &[u8]| {
    let Some((&pick, data)) = input.split_first() else {
        return;
    };
    let (name, content_type) = AS[usize::from(pick) % AS.len()];
    schuilnaam_fuzz::sanitise_and_check(name, content_type, data);
});
