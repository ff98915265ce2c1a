use proptest::prelude::*;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::readings::overrides_undone;
use super::*;
use crate::mail::compose::Attachment;
use crate::mail::sanitize::fixtures::{docx, flate, pdf, pdf_page, pdf_stream, zip, HELVETICA};
use crate::mail::sanitize::{readable_text, sanitise, Budget, Cleaned};

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
        "nummer 6 12 34 56 78 (zonder nul)",
        "zaak 2026 0612345678",
    ] {
        let leak = check(&keys, &set, text).unwrap_err();
        assert_eq!(leak.kind, MarkerKind::Phone, "{text}");
    }
    for text in [
        "06-12 34 56 79",
        "bel 112",
        "zaaknummer 2026-0612-3456",
        "0101234567",
        "612345679",
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
    assert_eq!(
        find("mail ｊａｎ．ｄｅｖｒｉｅｓ＠ｐｒｉｖｅ．ｅｘａｍｐｌｅ"),
        Some(MarkerKind::Email)
    );
    // Particles alone are no marker; other words pass.
    assert_eq!(find("de rapportage van de raad"), None);
    assert_eq!(find("Alphen heeft een station"), None);
}

#[test]
fn the_worker_is_told_what_was_found_and_logs_cannot_be() {
    let (_dir, keys) = keys();
    let set = markers(&keys, &[(MarkerKind::Phone, "0612345678")]);
    let leak = check(&keys, &set, "bel 06-12 34 56 78").unwrap_err();
    assert_eq!(
        leak.to_string(),
        "the message contains your own phone number (\"06-12 34 56 78\"); remove it and send again"
    );
    let debug = format!("{leak:?}");
    assert!(
        !debug.contains("12 34") && debug.contains("Phone"),
        "{debug}"
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

#[test]
fn registration_forms_of_plain_markers_are_unchanged() {
    // Markers stored before normalising was complete must keep matching: for the forms workers
    // register (Latin letters, Dutch accents, ASCII numbers) the stored text is what it was.
    for (kind, text, form) in [
        (
            MarkerKind::Name,
            "José Öztürk-Vriës",
            vec!["jose", "ozturk", "vries"],
        ),
        (
            MarkerKind::Town,
            "Alphen aan den Rijn",
            vec!["alphen aan den rijn"],
        ),
        (
            MarkerKind::Town,
            "'s-Hertogenbosch",
            vec!["s hertogenbosch"],
        ),
        (MarkerKind::Plate, "12-ABC-3", vec!["12abc3"]),
        (MarkerKind::Phone, "06-12 34 56 78", vec!["+31612345678"]),
        (
            MarkerKind::Email,
            "Jan.Jansen+x@Prive.example",
            vec!["jan.jansen+x@prive.example"],
        ),
    ] {
        assert_eq!(normalise(kind, text).unwrap(), form, "{text}");
    }
    // Registered in any Unicode form, a marker is stored in the plain one.
    assert_eq!(
        normalise(MarkerKind::Name, "Ｊａｎ 𝐉𝐚𝐧𝐬𝐞𝐧").unwrap(),
        vec!["jan", "jansen"]
    );
    assert_eq!(
        normalise(MarkerKind::Phone, "٠٦١٢٣٤٥٦٧٨").unwrap(),
        vec!["+31612345678"]
    );
}

#[test]
fn markers_stored_in_the_old_form_keep_matching() {
    let (_dir, keys) = keys();
    // "Šimek" was stored as "šimek" (the old folding knew no š); today it normalises to "simek".
    let set: HashSet<_> = [(
        MarkerKind::Name,
        marker_hash(&keys, MarkerKind::Name, "šimek"),
    )]
    .into();
    assert!(check(&keys, &set, "groet, Šimek").is_err());
    assert!(
        check(&keys, &set, "groet, Simek").is_ok(),
        "the old form never matched this"
    );
    let fresh = markers(&keys, &[(MarkerKind::Name, "Šimek")]);
    assert!(check(&keys, &fresh, "groet, Simek").is_err());
    assert!(check(&keys, &fresh, "groet, S\u{30c}imek").is_err());
}

#[test]
fn canonical_forms() {
    for (written, compared) in [
        ("Ｊａｎ", "jan"),
        ("𝐉𝐚𝐧 𝕵𝖆𝖓 𝙹𝚊𝚗", "jan jan jan"),
        (
            "J\u{200d}a\u{200b}n\u{00ad}s\u{2060}e\u{feff}n\u{200e}",
            "jansen",
        ),
        ("J\u{301}a\u{308}n", "jan"),
        ("Jаnsеn", "jansen"),
        ("ΝΑΝ", "nan"),
        (
            "٠٦١٢ ۰۶ ०६ ০৬ ๐๖ ０６ 𝟎𝟔 ⁰⁶ ①",
            "0612 06 06 06 06 06 06 06 1",
        ),
        ("06\u{a0}12\u{202f}34\u{2009}56\u{3000}78", "06 12 34 56 78"),
        ("06‐12–34—56−78", "06-12-34-56-78"),
        ("ﬁjn Straße Łódź Øre ĳs", "fijn strasse lodz ore ijs"),
        ("J\u{fe0f}an\u{e0041}", "jan"),
    ] {
        assert_eq!(canonical(written), compared, "{written}");
    }
    // Every decimal digit of every script is its ASCII digit.
    for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
        if c.general_category() == GeneralCategory::DecimalNumber {
            let folded = canonical(&c.to_string());
            assert!(
                folded.len() == 1 && folded.as_bytes()[0].is_ascii_digit(),
                "{c:?} → {folded}"
            );
            if let Some(ascii) = c.to_digit(10) {
                assert_eq!(folded, ascii.to_string());
            }
        }
    }
    assert_eq!(canonical("٣"), "3");
    assert_eq!(canonical("௯"), "9");
}

#[test]
fn header_encodings_and_overrides_are_read() {
    assert_eq!(
        readings("=?UTF-8?B?SmFu?= =?utf-8?q?_Jansen?=.pdf")[1],
        "Jan Jansen.pdf"
    );
    assert_eq!(
        readings("UTF-8''Jan%20Jansen%2Epdf")[1],
        "UTF-8''Jan Jansen.pdf"
    );
    assert_eq!(readings("%3D%3Futf-8%3FB%3FSmFu%3F%3D")[1], "Jan");
    assert_eq!(overrides_undone("a \u{202e}nesnaJ\u{202c} b"), "a Jansen b");
    assert_eq!(readings("geen codering").len(), 1);
}

// ---- the table: one marker in every encoding that once went past the guard ----------------------

/// What became of a message.
#[derive(Debug, PartialEq)]
enum Outcome {
    Leak(MarkerKind),
    Refused(String),
    Sent,
}

/// What `mail::reply::send` does with a draft: clean the attachments, read them, check subject,
/// body and every attachment's text.
fn send(
    keys: &ServerKey,
    markers: &HashSet<(MarkerKind, String)>,
    subject: &str,
    body: &str,
    attachments: Vec<Attachment>,
) -> Outcome {
    let mut cleaning = Budget::per_message();
    let mut kept = Vec::new();
    for attachment in attachments {
        match sanitise(attachment, &mut cleaning) {
            Ok(Cleaned::Kept(a)) => kept.push(a),
            Ok(Cleaned::Removed) => {}
            Err(refused) => return Outcome::Refused(refused.to_string()),
        }
    }
    let guard = Guard::new(keys, markers);
    for text in [subject, body] {
        if let Err(leak) = guard.check(text) {
            return Outcome::Leak(leak.kind);
        }
    }
    let mut reading = Budget::per_message();
    for attachment in &kept {
        match readable_text(attachment, &mut reading) {
            Ok(text) => {
                if let Err(leak) = guard.check(&text) {
                    return Outcome::Leak(leak.kind);
                }
            }
            Err(refused) => return Outcome::Refused(refused.to_string()),
        }
    }
    Outcome::Sent
}

fn file(name: &str, content_type: &str, data: impl Into<Vec<u8>>) -> Attachment {
    Attachment {
        filename: name.into(),
        content_type: content_type.into(),
        data: data.into(),
    }
}

fn text_file(data: impl Into<Vec<u8>>, content_type: &str) -> Attachment {
    file("notitie.txt", content_type, data)
}

fn pdf_file(data: Vec<u8>) -> Attachment {
    file("brief.pdf", "application/pdf", data)
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xfe, 0xff]
    } else {
        vec![0xff, 0xfe]
    };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

#[test]
fn one_marker_in_every_encoding_is_refused() {
    use MarkerKind::{Name, Phone};
    let (_dir, keys) = keys();
    let set = markers(&keys, &[(Name, "Pieter Jansen"), (Phone, "06-12345678")]);
    let docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    let body = |text: &str| (text.to_string(), Vec::new());
    let attached = |a: Attachment| ("zie bijlage".to_string(), vec![a]);
    let type0_cmap = b"begincmap 1 begincodespacerange <0000> <FFFF> endcodespacerange \
        1 beginbfrange <0001> <0005> [<004A> <0061> <006E> <0073> <0065>] endbfrange endcmap";
    let mut beyond_old_limit = b"BT /F1 12 Tf (".to_vec();
    beyond_old_limit.resize(33 << 20, b' ');
    beyond_old_limit.extend_from_slice(b"Jansen) Tj ET");
    let cases: Vec<(&str, Draft, Outcome)> = vec![
        ("fullwidth digits", body("bel ０６－１２３４５６７８"), Outcome::Leak(Phone)),
        ("Arabic-Indic digits", body("bel ٠٦١٢٣٤٥٦٧٨"), Outcome::Leak(Phone)),
        ("Persian digits", body("bel ۰۶-۱۲۳۴۵۶۷۸"), Outcome::Leak(Phone)),
        ("Devanagari digits", body("bel ०६ १२ ३४ ५६ ७८"), Outcome::Leak(Phone)),
        ("mathematical digits", body("bel 𝟎𝟔𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖"), Outcome::Leak(Phone)),
        ("mathematical bold letters", body("groet, 𝐉𝐚𝐧𝐬𝐞𝐧"), Outcome::Leak(Name)),
        ("fullwidth letters", body("groet, Ｊａｎｓｅｎ"), Outcome::Leak(Name)),
        ("zero-width joiners between letters", body("groet, J\u{200d}a\u{200d}n\u{200d}s\u{200d}e\u{200d}n"), Outcome::Leak(Name)),
        ("zero-width spaces between digits", body("06\u{200b}1234\u{200b}5678"), Outcome::Leak(Phone)),
        ("soft hyphens", body("groet, Jan\u{ad}sen"), Outcome::Leak(Name)),
        ("bidirectional marks and a word joiner", body("J\u{200e}an\u{2060}sen"), Outcome::Leak(Name)),
        ("variation selectors", body("J\u{fe0f}ansen\u{fe0e}"), Outcome::Leak(Name)),
        ("combining accents", body("groet, J\u{301}a\u{308}nse\u{300}n"), Outcome::Leak(Name)),
        ("Cyrillic look-alikes", body("groet, Jаnsеn"), Outcome::Leak(Name)),
        ("a right-to-left override", body("groet, \u{202e}nesnaJ\u{202c}"), Outcome::Leak(Name)),
        ("no-break and thin spaces between digit groups", body("06\u{a0}12\u{2009}34\u{202f}56\u{2007}78"), Outcome::Leak(Phone)),
        ("the leading zero left off", body("bel 6 12 34 56 78"), Outcome::Leak(Phone)),
        ("an encoded word in the subject", ("=?UTF-8?B?UGlldGVy?=".to_string(), Vec::new()), Outcome::Leak(Name)),
        ("a file name", attached(text_file("hallo", "text/plain")).map_name("Jansen.txt"), Outcome::Leak(Name)),
        ("a percent-encoded file name", attached(text_file("hallo", "text/plain")).map_name("%4A%61nsen.txt"), Outcome::Leak(Name)),
        ("an RFC 2231 file name", attached(text_file("hallo", "text/plain")).map_name("utf-8''J%C3%A1nsen.txt"), Outcome::Leak(Name)),
        ("an encoded-word file name", attached(text_file("hallo", "text/plain")).map_name("=?utf-8?q?Jansen?=.txt"), Outcome::Leak(Name)),
        ("UTF-16 text with a byte order mark", attached(text_file(utf16("groet, Jansen", false), "text/plain")), Outcome::Leak(Name)),
        ("UTF-7 text", attached(text_file("groet, +AEo-ansen", "text/plain; charset=utf-7")), Outcome::Leak(Name)),
        ("text in an unknown encoding", attached(text_file(b"\x1b$BJansen".to_vec(), "text/plain; charset=iso-2022-jp")), Outcome::Refused("encoding".into())),
        ("PDF text split by kerning", attached(pdf_file(pdf_page(b"BT /F1 12 Tf [(Ja)12(n)-20(sen)] TJ ET", "", HELVETICA, &[]))), Outcome::Leak(Name)),
        ("PDF text split across Tj operators", attached(pdf_file(pdf_page(b"BT /F1 12 Tf 72 700 Td (Jan) Tj 21 0 Td (sen) Tj ET", "", HELVETICA, &[]))), Outcome::Leak(Name)),
        ("a PDF hex string", attached(pdf_file(pdf_page(b"BT /F1 12 Tf <4A616E73656E> Tj ET", "", HELVETICA, &[]))), Outcome::Leak(Name)),
        ("PDF octal escapes", attached(pdf_file(pdf_page(b"BT /F1 12 Tf (\\112\\141\\156sen) Tj ET", "", HELVETICA, &[]))), Outcome::Leak(Name)),
        ("a PDF UTF-16BE string with a byte order mark", attached(pdf_file(pdf(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /Annots [<< /Subtype /Text /Contents <FEFF004A0061006E00730065006E> >>] >>".to_vec(),
        ], ""))), Outcome::Leak(Name)),
        ("a Flate-compressed PDF page", attached(pdf_file(pdf_page(&flate(b"BT /F1 12 Tf (06-1234 5678) Tj ET"), "/Filter /FlateDecode", HELVETICA, &[]))), Outcome::Leak(Phone)),
        ("a PDF page behind ASCIIHex", attached(pdf_file(pdf_page(hex::encode(b"BT /F1 12 Tf (Jansen) Tj ET").as_bytes(), "/Filter /ASCIIHexDecode", HELVETICA, &[]))), Outcome::Leak(Name)),
        ("a PDF font mapping glyphs to letters", attached(pdf_file(pdf_page(
            b"BT /F1 12 Tf <000100020003000400050003> Tj ET",
            "",
            "<< /Type /Font /Subtype /Type0 /Encoding /Identity-H /ToUnicode 6 0 R >>",
            &[pdf_stream("", type0_cmap)],
        ))), Outcome::Leak(Name)),
        ("a PDF font without a character map", attached(pdf_file(pdf_page(
            b"BT /F1 12 Tf <0001000200030004> Tj ET",
            "",
            "<< /Type /Font /Subtype /Type0 /Encoding /Identity-H >>",
            &[],
        ))), Outcome::Refused("cannot map".into())),
        ("a PDF filter the relay does not decode", attached(pdf_file(pdf_page(b"xx", "/Filter /JBIG3Decode", HELVETICA, &[]))), Outcome::Refused("cannot unpack".into())),
        ("a PDF page beyond the old read limit", attached(pdf_file(pdf_page(&flate(&beyond_old_limit), "/Filter /FlateDecode", HELVETICA, &[]))), Outcome::Refused("larger than the relay can check".into())),
        ("a DOCX split across runs", attached(file("brief.docx", docx_type, docx("<w:p><w:r><w:t>Ja</w:t></w:r><w:proofErr/><w:r><w:rPr><w:b/></w:rPr><w:t>nsen</w:t></w:r></w:p>"))), Outcome::Leak(Name)),
        ("a DOCX character reference", attached(file("brief.docx", docx_type, docx("<w:p><w:r><w:t>&#74;&#x61;nsen</w:t></w:r></w:p>"))), Outcome::Leak(Name)),
        ("a DOCX image description", attached(file("brief.docx", docx_type, docx("<w:p><w:r><w:drawing><wp:docPr id=\"1\" descr=\"foto van Jansen\"/></w:drawing></w:r></w:p>"))), Outcome::Leak(Name)),
        ("a DOCX part in UTF-16", attached(file("brief.docx", docx_type, zip(&[("word/document.xml", &utf16("<?xml version=\"1.0\" encoding=\"UTF-16\"?><w:t>Jansen</w:t>", true))]))), Outcome::Leak(Name)),
        ("an XLSX shared string in rich runs", attached(file("lijst.xlsx", "application/octet-stream", zip(&[("xl/sharedStrings.xml", b"<sst><si><r><t>06-1234</t></r><r><rPr><b/></rPr><t>5678</t></r></si></sst>")]))), Outcome::Leak(Phone)),
        ("a PPTX slide", attached(file("dia.pptx", "application/octet-stream", zip(&[("ppt/slides/slide1.xml", b"<p:sld><a:p><a:r><a:t>Pieter</a:t></a:r></a:p></p:sld>")]))), Outcome::Leak(Name)),
        ("a DOCX part beyond the old read limit", attached(file("groot.docx", docx_type, zip(&[("word/document.xml", &[vec![b' '; 65 << 20], b"<w:t>Jansen</w:t>".to_vec()].concat())]))), Outcome::Refused("larger than the relay can check".into())),
    ];
    assert!(cases.len() >= 20);
    for (what, (text, attachments), expected) in cases {
        let (subject, body) = if what.contains("subject") {
            (text.as_str(), "zie onder")
        } else {
            ("Vraag", text.as_str())
        };
        let outcome = send(&keys, &set, subject, body, attachments);
        match (&expected, &outcome) {
            (Outcome::Refused(reason), Outcome::Refused(said)) => {
                assert!(said.contains(reason.as_str()), "{what}: {said}")
            }
            _ => assert_eq!(outcome, expected, "{what}"),
        }
    }
}

/// A draft's subject or body, and its attachments.
type Draft = (String, Vec<Attachment>);

trait RenameFirst {
    fn map_name(self, name: &str) -> Self;
}

impl RenameFirst for Draft {
    fn map_name(mut self, name: &str) -> Self {
        self.1[0].filename = name.to_string();
        self
    }
}

// ---- a long text --------------------------------------------------------------------------------

/// A long text with every kind of marker registered is read to its very end (the time for 16 MiB
/// is measured by `cargo bench --bench leak_guard`).
#[test]
fn a_long_text_is_read_to_its_end() {
    let (_dir, keys) = keys();
    let set = markers(
        &keys,
        &[
            (MarkerKind::Name, "Jan de Vries"),
            (MarkerKind::Town, "Alphen aan den Rijn"),
            (MarkerKind::Plate, "12-ABC-3"),
            (MarkerKind::Email, "jan.devries@prive.example"),
            (MarkerKind::Phone, "+31612345678"),
        ],
    );
    let guard = Guard::new(&keys, &set);
    let text = long_text(256 << 10);
    assert!(guard.check(&text).is_ok());
    for (tail, kind) in [
        (" groet, 0612345678", MarkerKind::Phone),
        (" groet, Vries", MarkerKind::Name),
        (" in Alphen aan den Rijn", MarkerKind::Town),
        (" 12 ABC 3", MarkerKind::Plate),
    ] {
        assert_eq!(
            guard.check(&format!("{text}{tail}")).unwrap_err().kind,
            kind,
            "{tail}"
        );
    }
    let digits: String = (0..64 << 10)
        .map(|i| char::from(b'0' + (i * 7 % 10) as u8))
        .collect();
    assert!(guard.check(&digits).is_ok());
    assert!(guard.check(&format!("{digits} 0612345678")).is_err());
}

fn long_text(size: usize) -> String {
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
    let mut text = String::with_capacity(size + 16);
    let mut i = 0usize;
    while text.len() < size {
        text.push_str(words[(i * 7 + i / 3) % words.len()]);
        text.push(if i.is_multiple_of(13) { '\n' } else { ' ' });
        i += 1;
    }
    text
}

// ---- properties -----------------------------------------------------------------------------------

fn invisible() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\u{200b}',
        '\u{200c}',
        '\u{200d}',
        '\u{00ad}',
        '\u{200e}',
        '\u{200f}',
        '\u{2060}',
        '\u{feff}',
        '\u{fe0f}',
        '\u{034f}',
        '\u{180e}',
        '\u{e0020}',
        '\u{202a}',
        '\u{2066}',
    ])
}

/// `text` with invisible characters inserted before the characters at the given positions.
fn sprinkle(text: &str, inserts: &[(usize, char)]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        for (_, invisible) in inserts.iter().filter(|(at, _)| at % (chars.len() + 1) == i) {
            out.push(*invisible);
        }
        out.push(*c);
    }
    out
}

fn marker_text() -> impl Strategy<Value = (MarkerKind, String)> {
    prop_oneof![
        prop::sample::select(vec!["Jansen", "JANSEN", "Jánsen", "Ｊａｎｓｅｎ", "𝐉𝐚𝐧𝐬𝐞𝐧"])
            .prop_map(|s| (MarkerKind::Name, s.to_string())),
        prop::sample::select(vec![
            "06-12345678",
            "0612345678",
            "+31 6 1234 5678",
            "06 12 34 56 78",
            "٠٦١٢٣٤٥٦٧٨",
            "(06) 1234\u{a0}5678",
            "0031612345678",
        ])
        .prop_map(|s| (MarkerKind::Phone, s.to_string())),
    ]
}

fn filler() -> impl Strategy<Value = String> {
    "[a-z ,.!?\n]{0,60}".prop_map(|s| s.replace(char::is_numeric, ""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_marker_anywhere_in_plain_text_is_found(
        before in filler(),
        after in filler(),
        (kind, marker) in marker_text(),
        inserts in proptest::collection::vec((any::<usize>(), invisible()), 0..6),
    ) {
        let (_dir, keys) = keys();
        let set = markers(&keys, &[(MarkerKind::Name, "Pieter Jansen"), (MarkerKind::Phone, "0612345678")]);
        let text = format!("{before} {} {after}", sprinkle(&marker, &inserts));
        let leak = check(&keys, &set, &text);
        prop_assert_eq!(leak.map_err(|l| l.kind), Err(kind), "{:?}", text);
    }

    #[test]
    fn a_marker_in_a_word_document_is_found(
        (kind, marker) in marker_text(),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
        before in "[a-z ]{0,20}",
    ) {
        let (_dir, keys) = keys();
        let set = markers(&keys, &[(MarkerKind::Name, "Pieter Jansen"), (MarkerKind::Phone, "0612345678")]);
        // The marker split over runs at random places.
        let chars: Vec<char> = marker.chars().collect();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
        cuts.sort_unstable();
        let mut runs = String::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([chars.len()]) {
            let piece: String = chars[from..cut.max(from)].iter().collect();
            runs.push_str(&format!("<w:r><w:t xml:space=\"preserve\">{piece}</w:t></w:r>"));
            from = cut.max(from);
        }
        let document = docx(&format!("<w:p><w:r><w:t>{before} </w:t></w:r>{runs}</w:p>"));
        let attachment = file("brief.docx", "application/octet-stream", document);
        let text = readable_text(&attachment, &mut Budget::per_message()).unwrap();
        prop_assert_eq!(check(&keys, &set, &text).map_err(|l| l.kind), Err(kind));
    }

    #[test]
    fn a_marker_in_a_pdf_string_is_found(
        marker in prop::sample::select(vec!["Jansen", "06-12345678", "0612345678"]),
        cuts in proptest::collection::vec(any::<usize>(), 0..4),
        notation in 0..3u8,
        compressed in any::<bool>(),
    ) {
        let (_dir, keys) = keys();
        let set = markers(&keys, &[(MarkerKind::Name, "Pieter Jansen"), (MarkerKind::Phone, "0612345678")]);
        let bytes = marker.as_bytes();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut array = String::from("[");
        let mut from = 0;
        for (n, cut) in cuts.into_iter().chain([bytes.len()]).enumerate() {
            let piece = &bytes[from..cut.max(from)];
            from = cut.max(from);
            let string = match notation {
                0 => format!("({})", String::from_utf8_lossy(piece)),
                1 => format!("<{}>", hex::encode(piece)),
                _ => format!("({})", piece.iter().map(|b| format!("\\{b:03o}")).collect::<String>()),
            };
            array.push_str(&format!("{string} {} ", [-12, 30, 0, -80][n % 4]));
        }
        array.push(']');
        let content = format!("BT /F1 11 Tf 72 700 Td {array} TJ ET");
        let data = if compressed {
            pdf_page(&flate(content.as_bytes()), "/Filter /FlateDecode", HELVETICA, &[])
        } else {
            pdf_page(content.as_bytes(), "", HELVETICA, &[])
        };
        let text = readable_text(&pdf_file(data), &mut Budget::per_message()).unwrap();
        prop_assert!(check(&keys, &set, &text).is_err(), "{:?}", text);
    }
}

#[test]
fn refusals_name_the_file_and_never_the_marker() {
    let (_dir, keys) = keys();
    let set = markers(&keys, &[(MarkerKind::Name, "Pieter Jansen")]);
    let outcome = send(
        &keys,
        &set,
        "Vraag",
        "zie bijlage",
        vec![file(
            "brief.pdf",
            "application/pdf",
            pdf_page(
                b"BT /F1 1 Tf <0001> Tj ET",
                "",
                "<< /Subtype /Type0 /Encoding /Identity-H >>",
                &[],
            ),
        )],
    );
    let Outcome::Refused(said) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        said.starts_with("attachment brief.pdf: ") && !said.contains("Jansen"),
        "{said}"
    );
}
