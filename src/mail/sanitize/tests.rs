use std::io::{Read, Write};

use proptest::prelude::*;

use super::fixtures::*;
use super::*;

fn attachment(filename: &str, content_type: &str, data: Vec<u8>) -> Attachment {
    Attachment {
        filename: filename.into(),
        content_type: content_type.into(),
        data,
    }
}

fn clean(a: Attachment) -> Result<Cleaned, Refused> {
    sanitise(a, &mut Budget::per_message())
}

fn kept(result: Result<Cleaned, Refused>) -> Attachment {
    match result.unwrap() {
        Cleaned::Kept(a) => a,
        Cleaned::Removed => panic!("removed"),
    }
}

fn read(a: &Attachment) -> Result<String, Refused> {
    readable_text(a, &mut Budget::per_message())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

#[test]
fn jpeg_loses_exif_gps_and_comments_but_stays_a_jpeg() {
    let original = jpeg_with_gps("Jan Jansen");
    let cleaned = kept(clean(attachment(
        "foto.jpg",
        "image/jpeg; name=\"Jan\"",
        original.clone(),
    )));
    assert_eq!(
        cleaned.content_type, "image/jpeg",
        "the relay writes the type"
    );
    let cleaned = cleaned.data;
    assert!(!contains(&cleaned, b"Exif"));
    assert!(!contains(&cleaned, b"GPS"));
    assert!(!contains(&cleaned, b"Jan Jansen"));
    assert!(cleaned.starts_with(&[0xff, 0xd8, 0xff, 0xe0]));
    assert!(cleaned.ends_with(&[0xff, 0xd9]));
    // Everything from the quantisation table on is unchanged.
    let tail = &original[original.windows(2).position(|w| w == [0xff, 0xdb]).unwrap()..];
    assert!(cleaned.ends_with(tail));
}

#[test]
fn png_keeps_only_the_image() {
    let mut png = png_with_text("Jan Jansen");
    png.extend_from_slice(b"after the end: Jan Jansen");
    let cleaned = kept(clean(attachment("a.png", "image/png", png))).data;
    assert!(!contains(&cleaned, b"Jan Jansen"));
    assert!(!contains(&cleaned, b"eXIf"));
    assert!(contains(&cleaned, b"IDAT"));
    assert!(cleaned.ends_with(b"IEND\0\0\0\0"));
}

#[test]
fn pdf_fields_are_blanked_in_place() {
    let original = pdf_with_author("Jan Jansen");
    let cleaned = kept(clean(attachment(
        "v.pdf",
        "application/pdf",
        original.clone(),
    )))
    .data;
    assert_eq!(cleaned.len(), original.len(), "offsets stay valid");
    assert!(!contains(&cleaned, b"Jan Jansen"));
    assert!(!contains(&cleaned, b"Microsoft"));
    assert!(contains(&cleaned, b"/Author"));
    assert!(contains(&cleaned, b"xref"));
}

fn object_stream_pdf(member: &[u8], filter: &str, encode: fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut members = b"4 0 ".to_vec();
    let first = members.len();
    members.extend_from_slice(member);
    let encoded = encode(&members);
    pdf(
        &[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [] /Count 0 >>".to_vec(),
            pdf_stream(
                &format!("/Type /ObjStm /N 1 /First {first} {filter}"),
                &encoded,
            ),
        ],
        "",
    )
}

/// Found by fuzzing (fuzz target `sanitise_pdf`): blanking the XMP packet after the fields left
/// `/Author<` followed by hex digits, a new author string that a second pass still blanked.
#[test]
fn a_cleaned_pdf_has_nothing_left_to_blank() {
    let original = b"%PDF-/Author<<x:xmpmeta</x:xmpmeta>e".to_vec();
    let once = kept(clean(attachment("v.pdf", "application/pdf", original))).data;
    let twice = kept(clean(attachment("v.pdf", "application/pdf", once.clone()))).data;
    assert_eq!(once, twice);
    assert!(!once.contains(&b'e'), "{}", String::from_utf8_lossy(&once));
}

#[test]
fn pdf_hiding_an_author_in_a_compressed_stream_is_refused() {
    let hidden = b"<< /Author (Jan Jansen) >>";
    let flated = object_stream_pdf(hidden, "/Filter /FlateDecode", flate);
    let err = clean(attachment("v.pdf", "application/pdf", flated)).unwrap_err();
    assert!(err.to_string().contains("print it to a new PDF"), "{err}");
    // Also behind a filter the relay did not decode before (ASCIIHex over Flate).
    let hex_flated = object_stream_pdf(hidden, "/Filter [/ASCIIHexDecode /FlateDecode]", |d| {
        hex::encode(flate(d)).into_bytes()
    });
    let err = clean(attachment("v.pdf", "application/pdf", hex_flated)).unwrap_err();
    assert!(matches!(err, Refused::CannotClean(..)), "{err}");
}

#[test]
fn pdfs_the_relay_cannot_read_completely_are_refused() {
    let page = |filter: &str, content: &[u8]| pdf_page(content, filter, HELVETICA, &[]);
    let cases: [(&str, Vec<u8>); 5] = [
        ("an unknown filter", page("/Filter /BrotliDecode", b"xx")),
        ("a damaged compressed stream", page("/Filter /FlateDecode", b"\x78\x9c\xff\xff\xff")),
        (
            "encryption",
            pdf(&[b"<< /Type /Catalog >>".to_vec()], "/Encrypt << /Filter /Standard >>"),
        ),
        (
            "a composite font without a character map",
            pdf_page(
                b"BT /F1 12 Tf <0012003400560078> Tj ET",
                "",
                "<< /Type /Font /Subtype /Type0 /BaseFont /Calibri /Encoding /Identity-H >>",
                &[],
            ),
        ),
        (
            "embedded files",
            pdf(
                &[
                    b"<< /Type /Catalog /Names << /EmbeddedFiles << /Names [(a.txt) 2 0 R] >> >> >>".to_vec(),
                    b"<< /Type /Filespec /F (a.txt) /EF << /F 3 0 R >> >>".to_vec(),
                    pdf_stream("/Type /EmbeddedFile", b"Jan Jansen"),
                ],
                "",
            ),
        ),
    ];
    for (what, data) in cases {
        let a = attachment("brief.pdf", "application/pdf", data);
        let cleaned = clean(a.clone());
        let refused = match cleaned {
            Err(refused) => refused,
            Ok(Cleaned::Kept(a)) => read(&a).expect_err(what),
            Ok(Cleaned::Removed) => panic!("{what}: removed"),
        };
        assert!(
            matches!(refused, Refused::Unreadable(..) | Refused::CannotClean(..)),
            "{what}: {refused}"
        );
        assert!(
            refused.to_string().starts_with("attachment brief.pdf: "),
            "{refused}"
        );
    }
}

#[test]
fn office_documents_lose_their_properties_and_authors() {
    let document = zip(&[
        (
            "docProps/core.xml",
            b"<cp:coreProperties><dc:creator>Jan Jansen</dc:creator></cp:coreProperties>",
        ),
        (
            "docProps/app.xml",
            b"<Properties><Company>Jeugdbescherming</Company></Properties>",
        ),
        (
            "word/document.xml",
            b"<w:ins w:author=\"Jan Jansen\" w:date=\"x\">tekst</w:ins><w:del w:author='Jan Jansen'/>",
        ),
        ("docProps/custom.xml", b"<Properties>Jan Jansen</Properties>"),
    ]);
    let cleaned = kept(clean(attachment(
        "brief.docx",
        "application/octet-stream",
        document,
    )));
    assert_eq!(cleaned.content_type, DOCX);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(cleaned.data)).unwrap();
    let mut all = String::new();
    for i in 0..archive.len() {
        archive
            .by_index(i)
            .unwrap()
            .read_to_string(&mut all)
            .unwrap();
    }
    assert!(
        !all.contains("Jan Jansen") && !all.contains("Jeugdbescherming"),
        "{all}"
    );
    assert!(all.contains("tekst"));
}

#[test]
fn images_inside_office_documents_lose_their_exif() {
    let photo = jpeg_with_gps("Jan Jansen");
    let document = zip(&[
        (
            "word/document.xml",
            b"<w:p><w:r><w:t>foto</w:t></w:r></w:p>",
        ),
        ("word/media/image1.jpeg", &photo),
    ]);
    let cleaned = kept(clean(attachment(
        "foto.docx",
        "application/octet-stream",
        document,
    )))
    .data;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(cleaned)).unwrap();
    let mut image = Vec::new();
    archive
        .by_name("word/media/image1.jpeg")
        .unwrap()
        .read_to_end(&mut image)
        .unwrap();
    assert!(image.starts_with(&[0xff, 0xd8]));
    assert!(!contains(&image, b"GPS"));
    assert!(!contains(&image, b"Jan Jansen"));
    // An embedded object the relay cannot clean makes the whole document refused.
    let with_object = zip(&[
        ("word/document.xml", b"<w:p/>"),
        (
            "word/embeddings/oleObject1.bin",
            b"\xd0\xcf\x11\xe0 Jan Jansen",
        ),
    ]);
    assert!(matches!(
        clean(attachment(
            "brief.docx",
            "application/octet-stream",
            with_object
        )),
        Err(Refused::CannotClean(..))
    ));
}

#[test]
fn the_leak_guard_can_read_pdf_and_office_text() {
    // Kerned words in a TJ array join; a wide adjustment is a space.
    let page = b"BT /F1 12 Tf [(J)20(an)-300(Jan)15(sen)] TJ (bel 06-12 34 56 78) Tj ET";
    let pdf = pdf_page(&flate(page), "/Filter /FlateDecode", HELVETICA, &[]);
    let text = read(&attachment("brief.pdf", "application/pdf", pdf)).unwrap();
    assert!(
        text.starts_with("brief.pdf\n"),
        "the file name comes first: {text}"
    );
    assert!(text.contains("Jan Jansen"), "{text}");
    assert!(text.contains("06-12 34 56 78"), "{text}");

    let document = docx(
        "<w:p><w:r><w:t>Met vriendelijke groet,</w:t></w:r></w:p><w:p><w:r><w:t>Jan</w:t></w:r><w:r><w:t xml:space=\"preserve\"> Jan</w:t></w:r><w:r><w:t>sen &amp; co</w:t></w:r></w:p>",
    );
    let text = read(&attachment(
        "brief.docx",
        "application/octet-stream",
        document,
    ))
    .unwrap();
    assert!(
        text.contains("groet,") && text.contains(" Jan Jansen & co"),
        "{text}"
    );
    assert_eq!(
        read(&attachment("Jan.png", "image/png", png_with_text("x"))).unwrap(),
        "Jan.png\n"
    );
}

#[test]
fn pdf_text_through_fonts_filters_and_strings() {
    let type0 = "<< /Type /Font /Subtype /Type0 /BaseFont /Calibri /Encoding /Identity-H /ToUnicode 6 0 R >>";
    let cmap = b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n\
        1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
        2 beginbfchar <0003> <0020> <0010> <004A> endbfchar\n\
        1 beginbfrange <0011> <0013> <0061> endbfrange\n\
        1 beginbfrange <0020> <0021> [<006E> <0073>] endbfrange\n\
        endcmap CMapName currentdict /CMap defineresource pop end end";
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a composite font with a ToUnicode map",
            pdf_page(
                b"BT /F1 12 Tf <0010 0011 0020 0003> Tj ET",
                "",
                type0,
                &[pdf_stream("", cmap)],
            ),
            "Jan ",
        ),
        (
            "glyph names in a simple font's differences",
            pdf_page(
                b"BT /F1 12 Tf (\x01\x02\x03) Tj ET",
                "",
                "<< /Type /Font /Subtype /Type1 /Encoding << /Differences [1 /J /a.sc /uni006E] >> >>",
                &[],
            ),
            "Jan",
        ),
        (
            "ASCII85 over Flate",
            {
                let content = flate(b"BT /F1 12 Tf (Jansen) Tj ET");
                pdf_page(&ascii85_encode(&content), "/Filter [/ASCII85Decode /FlateDecode]", HELVETICA, &[])
            },
            "Jansen",
        ),
        (
            "LZW",
            pdf_page(
                &super::pdf::lzw_for_tests(b"BT /F1 12 Tf (Jansen) Tj ET"),
                "/Filter /LZWDecode",
                HELVETICA,
                &[],
            ),
            "Jansen",
        ),
        (
            "RunLength",
            pdf_page(
                &[&[26u8][..], b"BT /F1 12 Tf (Jansen) Tj ET", &[128]].concat(),
                "/Filter /RunLengthDecode",
                HELVETICA,
                &[],
            ),
            "Jansen",
        ),
        (
            "a UTF-16 annotation",
            pdf(
                &[
                    b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
                    b"<< /Type /Page /Parent 2 0 R /Annots [<< /Type /Annot /Subtype /Text /Contents <FEFF004A0061006E> >>] >>".to_vec(),
                ],
                "",
            ),
            "Jan",
        ),
        (
            "a form XObject",
            pdf_page(
                b"/Fm1 Do",
                "",
                HELVETICA,
                &[pdf_stream(
                    "/Type /XObject /Subtype /Form /Resources << /Font << /F1 5 0 R >> >>",
                    b"BT /F1 9 Tf (Jan) Tj ( Jansen) Tj ET",
                )],
            ),
            "Jan Jansen",
        ),
    ];
    for (what, data, expected) in cases {
        let text = read(&attachment("x.pdf", "application/pdf", data))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(text.contains(expected), "{what}: {text:?}");
    }
}

fn ascii85_encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(4) {
        let mut group = [0u8; 4];
        group[..chunk.len()].copy_from_slice(chunk);
        let mut value = u32::from_be_bytes(group);
        let mut digits = [0u8; 5];
        for digit in digits.iter_mut().rev() {
            *digit = (value % 85) as u8 + b'!';
            value /= 85;
        }
        out.extend_from_slice(&digits[..chunk.len() + 1]);
    }
    out.extend_from_slice(b"~>");
    out
}

#[test]
fn text_attachments_leave_as_utf8() {
    let mut utf16 = vec![0xfe, 0xff];
    utf16.extend("Groet, Jan".encode_utf16().flat_map(u16::to_be_bytes));
    let cleaned = kept(clean(attachment(
        "notitie.txt",
        "text/plain; name=x",
        utf16,
    )));
    assert_eq!(cleaned.data, b"Groet, Jan");
    assert_eq!(cleaned.content_type, "text/plain; charset=utf-8");
    let refused = clean(attachment(
        "n.txt",
        "text/plain; charset=koi8-r",
        b"\xea".to_vec(),
    ))
    .unwrap_err();
    assert!(
        refused.to_string().contains("save it as UTF-8"),
        "{refused}"
    );
}

#[test]
fn pgp_is_removed_and_unknown_types_are_refused() {
    let key = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n...".to_vec();
    assert_eq!(
        clean(attachment("sleutel.asc", "application/pgp-keys", key)).unwrap(),
        Cleaned::Removed
    );
    let sig = attachment("signature.asc", "application/pgp-signature", b"x".to_vec());
    assert_eq!(clean(sig).unwrap(), Cleaned::Removed);
    let exe = attachment("tool.exe", "application/octet-stream", b"MZ\x90\0".to_vec());
    assert!(matches!(clean(exe), Err(Refused::UnsupportedType(_))));
    let text = attachment("notities.txt", "text/plain", b"hallo".to_vec());
    assert_eq!(kept(clean(text)).data, b"hallo");
}

// ---- the decompression budget ---------------------------------------------------------------------

/// A zip entry of `size` zero bytes, compressed as it is written (a bomb without the memory).
fn bomb_entries(entries: &[(&str, u64)]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .large_file(true);
        let block = vec![b' '; 1 << 20];
        for (name, size) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(b"<w:document><w:body><w:p><w:r><w:t>")
                .unwrap();
            let mut left = *size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                zip.write_all(&block[..n]).unwrap();
                left -= n as u64;
            }
            zip.write_all(b"Jan Jansen</w:t></w:r></w:p></w:body></w:document>")
                .unwrap();
        }
        zip.finish().unwrap();
    }
    buffer.into_inner()
}

#[test]
fn a_zip_bomb_is_refused_by_the_budget_not_cut_short() {
    const MIB: u64 = 1 << 20;
    // One part that inflates past the per-part limit (a few hundred KiB on the wire).
    let one = bomb_entries(&[("word/document.xml", 300 * MIB)]);
    assert!(one.len() < 2 * MIB as usize, "{}", one.len());
    let mut budget = Budget::per_message();
    let refused = sanitise(attachment("bom.docx", DOCX, one.clone()), &mut budget).unwrap_err();
    assert_eq!(refused, Refused::TooLarge("bom.docx".into()));
    assert!(
        refused.to_string().contains("at most 32 MiB per part"),
        "{refused}"
    );
    assert_eq!(
        budget.remaining(),
        Budget::MESSAGE,
        "nothing past the limit was paid for, or kept"
    );
    let refused = readable_text(
        &attachment("bom.docx", DOCX, one),
        &mut Budget::per_message(),
    )
    .unwrap_err();
    assert_eq!(refused, Refused::TooLarge("bom.docx".into()));

    // Parts each under the per-part limit that together exceed the message's budget.
    let parts = bomb_entries(&[
        ("word/document.xml", 30 * MIB),
        ("word/header1.xml", 30 * MIB),
        ("word/footer1.xml", 30 * MIB),
    ]);
    let refused = clean(attachment("drie.docx", DOCX, parts)).unwrap_err();
    assert_eq!(refused, Refused::TooLarge("drie.docx".into()));

    // The budget spans the attachments of one message.
    let small = bomb_entries(&[("word/document.xml", 20 * MIB)]);
    let mut budget = Budget::per_message();
    for _ in 0..3 {
        sanitise(attachment("a.docx", DOCX, small.clone()), &mut budget).unwrap();
    }
    let refused = sanitise(attachment("d.docx", DOCX, small), &mut budget).unwrap_err();
    assert_eq!(refused, Refused::TooLarge("d.docx".into()));
}

#[test]
fn reading_holds_no_more_than_the_part_limit() {
    // An endless stream: reading stops one byte past the allowance, in memory of that size.
    let mut budget = Budget::new(10 << 20, 3 << 20);
    assert_eq!(
        budget.read_all(std::io::repeat(b'x')),
        Err(Unpack::OverBudget)
    );
    assert_eq!(budget.remaining(), 10 << 20);
    let data = budget
        .read_all(std::io::repeat(b'x').take(3 << 20))
        .unwrap();
    assert_eq!(data.len(), 3 << 20);
    assert!(data.capacity() <= (3 << 20) + 1, "{}", data.capacity());
    assert_eq!(budget.remaining(), 7 << 20);
    // What is left of the message's budget is the limit when it is less than a part.
    let mut nearly_spent = Budget::new(1 << 20, 3 << 20);
    assert_eq!(
        nearly_spent.read_all(std::io::repeat(b'x').take((1 << 20) + 1)),
        Err(Unpack::OverBudget)
    );
}

#[test]
fn a_pdf_stream_over_the_budget_is_refused() {
    let mut content = b"BT /F1 12 Tf (".to_vec();
    content.resize(33 << 20, b' ');
    content.extend_from_slice(b"Jan Jansen) Tj ET");
    let data = pdf_page(&flate(&content), "/Filter /FlateDecode", HELVETICA, &[]);
    let a = attachment("groot.pdf", "application/pdf", data);
    assert_eq!(
        clean(a.clone()).unwrap_err(),
        Refused::TooLarge("groot.pdf".into())
    );
    assert_eq!(read(&a).unwrap_err(), Refused::TooLarge("groot.pdf".into()));
    // Within a budget the same stream is read to its end.
    let mut roomy = Budget::new(64 << 20, 64 << 20);
    assert!(readable_text(&a, &mut roomy)
        .unwrap()
        .contains("Jan Jansen"));
}

// ---- properties -----------------------------------------------------------------------------------

fn metadata() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ()\\\\.,éëï-]{0,40}"
}

fn docx_with(author: &str, text: &str, photo_owner: &str) -> Vec<u8> {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('"', "&quot;")
    };
    zip(&[
        ("[Content_Types].xml", b"<Types/>"),
        (
            "docProps/core.xml",
            format!(
                "<cp:coreProperties><dc:creator>{}</dc:creator></cp:coreProperties>",
                escape(author)
            )
            .as_bytes(),
        ),
        (
            "word/document.xml",
            format!(
                "<w:p><w:ins w:author=\"{}\"><w:r><w:t>{}</w:t></w:r></w:ins></w:p>",
                escape(author),
                escape(text)
            )
            .as_bytes(),
        ),
        ("word/media/image1.jpeg", &jpeg_with_gps(photo_owner)),
    ])
}

fn pdf_with(author: &str, text: &str, compressed: bool) -> Vec<u8> {
    let content = format!(
        "BT /F1 12 Tf ({}) Tj ET",
        text.replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)")
    );
    let (data, filter) = if compressed {
        (flate(content.as_bytes()), "/Filter /FlateDecode")
    } else {
        (content.into_bytes(), "")
    };
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_vec(),
        pdf_stream(filter, &data),
        HELVETICA.as_bytes().to_vec(),
    ];
    objects.push(
        format!(
            "<< /Author ({}) /Producer <{}> >>",
            author.replace(['(', ')', '\\'], ""),
            hex::encode(author)
        )
        .into_bytes(),
    );
    objects.push(b"<< /Type /Metadata /Subtype /XML >>".to_vec());
    let mut out = pdf(&objects, "/Info 6 0 R");
    out.extend_from_slice(format!("<?xpacket begin=\"\"?><x:xmpmeta><dc:creator>{author}</dc:creator></x:xmpmeta><?xpacket end=\"w\"?>\n").as_bytes());
    out
}

fn jpeg_with(owner: &str, comment_after_scan: bool, trailer: &[u8]) -> Vec<u8> {
    let mut image = jpeg_with_gps(owner);
    if comment_after_scan {
        image.truncate(image.len() - 2);
        image.extend(jpeg_segment(0xfe, owner.as_bytes()));
        image.extend(jpeg_segment(0xda, &[1, 1, 0, 0, 0x3f, 0]));
        image.extend_from_slice(&[0x00, 0x3f, 0xff, 0xd9]);
    }
    image.extend_from_slice(trailer);
    image
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn sanitising_is_idempotent(
        author in metadata(),
        text in metadata(),
        compressed in any::<bool>(),
        comment_after_scan in any::<bool>(),
        trailer in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let inputs = [
            attachment("f.jpg", "image/jpeg", jpeg_with(&author, comment_after_scan, &trailer)),
            attachment("f.png", "image/png", [png_with_text(&author), trailer.clone()].concat()),
            attachment("b.docx", DOCX, docx_with(&author, &text, &author)),
            attachment("v.pdf", "application/pdf", pdf_with(&author, &text, compressed)),
            attachment("n.txt", "text/plain; charset=windows-1252", author.clone().into_bytes()),
        ];
        for input in inputs {
            let once = kept(clean(input.clone()));
            let twice = kept(clean(once.clone()));
            prop_assert_eq!(&once, &twice, "{}", input.filename);
        }
    }

    #[test]
    fn arbitrary_bytes_after_a_known_magic_never_panic(
        magic in prop::sample::select(vec![
            (&b"\xff\xd8\xff"[..], "x.jpg", "image/jpeg"),
            (&b"\x89PNG\r\n\x1a\n"[..], "x.png", "image/png"),
            (&b"%PDF-"[..], "x.pdf", "application/pdf"),
            (&b"PK\x03\x04"[..], "x.docx", DOCX),
            (&b"\xff\xfe"[..], "x.txt", "text/plain"),
        ]),
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (prefix, name, content_type) = magic;
        let a = attachment(name, content_type, [prefix, &tail[..]].concat());
        let _ = read(&a);
        if let Ok(Cleaned::Kept(cleaned)) = clean(a) {
            let _ = read(&cleaned);
        }
    }

    #[test]
    fn pdf_syntax_soup_never_panics(
        tokens in proptest::collection::vec(prop::sample::select(vec![
            "1 0 obj", "endobj", "<<", ">>", "[", "]", "(", ")", "\\", "<", ">", "/Type", "/ObjStm",
            "/Filter", "/FlateDecode", "/LZWDecode", "/ASCII85Decode", "/RunLengthDecode",
            "/Length", "5", "-3", "2 0 R", "stream\n", "\nendstream", "/Contents", "/Page", "/Font",
            "/ToUnicode", "/Type0", "beginbfrange", "endbfrange", "<00>", "<FFFF>", "Tj", "TJ",
            "Tf", "Td", "BI", "ID", "EI", "/N", "/First", "trailer", "/Encrypt", "%", "\n", " ",
        ]), 0..200),
    ) {
        let data = format!("%PDF-1.7\n{}", tokens.join(" "));
        let a = attachment("x.pdf", "application/pdf", data.into_bytes());
        let _ = read(&a);
        let _ = clean(a);
    }
}
