//! Small files carrying identifying details, as phones, word processors and PDF writers make them
//! (for the tests of the sanitiser, the leak guard and the whole relay).

use std::io::Write;

/// A 1×1 JPEG with an EXIF segment (camera owner, GPS position) and a comment.
pub fn jpeg_with_gps(owner: &str) -> Vec<u8> {
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
    exif.extend_from_slice(b"GPSLatitude 52.0907N GPSLongitude 5.1214E Owner ");
    exif.extend_from_slice(owner.as_bytes());
    let mut out = vec![0xff, 0xd8];
    out.extend(jpeg_segment(0xe0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"));
    out.extend(jpeg_segment(0xe1, &exif));
    out.extend(jpeg_segment(0xfe, format!("taken by {owner}").as_bytes()));
    // A minimal baseline image: DQT, SOF0, DHT, SOS and scan data.
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1u8; 64]);
    out.extend(jpeg_segment(0xdb, &dqt));
    out.extend(jpeg_segment(0xc0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
    let mut dht = vec![0u8, 1];
    dht.extend_from_slice(&[0u8; 15]);
    dht.push(0);
    out.extend(jpeg_segment(0xc4, &dht));
    out.extend(jpeg_segment(0xda, &[1, 1, 0, 0, 0x3f, 0]));
    out.extend_from_slice(&[0x00, 0x3f]);
    out.extend_from_slice(&[0xff, 0xd9]);
    out
}

/// One JPEG segment: marker, length, payload.
pub fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = vec![0xff, marker];
    s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A 1×1 PNG with a text chunk and an EXIF chunk naming `owner`.
pub fn png_with_text(owner: &str) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
    png.extend(png_chunk(b"tEXt", format!("Author\0{owner}").as_bytes()));
    png.extend(png_chunk(b"eXIf", b"MM\0*GPS"));
    png.extend(png_chunk(b"IDAT", b"data"));
    png.extend(png_chunk(b"IEND", b""));
    png
}

/// One PNG chunk (the checksum is not computed: the sanitiser does not read it).
pub fn png_chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(kind);
    c.extend_from_slice(data);
    c.extend_from_slice(&[0, 0, 0, 0]);
    c
}

/// A one-page PDF whose Info dictionary names its author and the program.
pub fn pdf_with_author(author: &str) -> Vec<u8> {
    pdf(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>".to_vec(),
        format!(
            "<< /Author ({author}) /Creator (Microsoft Word - {author}) /Producer (Writer) /Title (Verslag \\(concept\\)) >>"
        )
        .into_bytes(),
    ], "/Info 4 0 R")
}

/// A PDF of the given objects (numbered from 1, the first the catalog) with a valid
/// cross-reference table; `trailer` is added to the trailer dictionary.
pub fn pdf(objects: &[Vec<u8>], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R {trailer} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A stream object: its dictionary entries (without `/Length`) and data.
pub fn pdf_stream(entries: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< {entries} /Length {} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A one-page PDF showing `content` (with `filter` applied to it as given, e.g. already
/// compressed) in font `/F1`, described by `font` (object 5); `extra` objects follow from 6 on.
pub fn pdf_page(content: &[u8], filter: &str, font: &str, extra: &[Vec<u8>]) -> Vec<u8> {
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>".to_vec(),
        pdf_stream(filter, content),
        font.as_bytes().to_vec(),
    ];
    objects.extend_from_slice(extra);
    pdf(&objects, "")
}

/// A standard Type 1 font.
pub const HELVETICA: &str =
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";

/// zlib-compressed data, as a `/FlateDecode` stream holds it.
pub fn flate(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A zip package of the given entries (deflated).
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for (name, contents) in entries {
            zip.start_file(*name, options).expect("writing to memory");
            zip.write_all(contents).expect("writing to memory");
        }
        zip.finish().expect("writing to memory");
    }
    buffer.into_inner()
}

/// A Word document whose body is the given paragraphs' XML (`<w:p>…</w:p>`).
pub fn docx(body: &str) -> Vec<u8> {
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}</w:body></w:document>"
    );
    zip(&[
        (
            "[Content_Types].xml",
            b"<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>",
        ),
        ("word/document.xml", document.as_bytes()),
    ])
}
