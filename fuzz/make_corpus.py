#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/: the inputs the relay's own tests build (the
messages of src/mail/inspect.rs and bounce.rs, the files of src/mail/sanitize.rs and its fixtures, the
texts of src/mail/leak.rs), rebuilt here byte for byte where the tests build them from code. No
third-party files. Run it again after changing it; the output is deterministic. Seeds are named by
content hash, as libFuzzer names what it adds, so a re-run does not duplicate them."""

import hashlib
import io
import os
import struct
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


# --- Mail (src/mail/inspect.rs, src/mail/bounce.rs, tests/relay/smtp_inbound.rs) -----------------

def message(headers, body):
    return f"{headers}\r\n\r\n{body}"


inspect = [
    message(
        "From: Team West <team@jbwest.example>\r\nTo: k7m2q9xd3abc@relay.example\r\nSubject: Aanmelding\r\n"
        "Message-ID: <abc@jbwest.example>\r\nReferences: <one@x> <two@x>",
        "Graag contact.\r\n",
    ),
    message("From: a@b.example\r\nSubject: SPOED: bel terug\r\nImportance: High\r\nX-Priority: 1 (Highest)", "b"),
    message("From: a@b.example, c@d.example", "b"),
    message("From: a@b.example\r\nFrom: c@d.example", "b"),
    message("Subject: =?utf-8?q?Verslag_=C3=A9=C3=A9n?=\r\nFrom: =?iso-8859-1?q?Ren=E9?= <r@b.example>", "x"),
    "hello world\r\n\r\nbody",
]
for payload in ["SGFsbG8gd2VyZWxk\r\nIQ==", "SGFsbG8*** not base64 !!!"]:
    inspect.append(
        "From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n"
        "--x\r\nContent-Type: text/plain\r\n\r\nhallo\r\n"
        "--x\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; filename=\"a.pdf\"\r\n\r\n{payload}\r\n--x--\r\n"
    )
body = "innermost\r\n"
for level in reversed(range(22)):
    body = (f"Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n{body}\r\n"
            f"--b{level}--\r\n")
inspect.append(f"From: a@b.example\r\nMIME-Version: 1.0\r\n{body}")
inspect.append(
    "From: a@b.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"o\"\r\n\r\n"
    "--o\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    "<p>Groet,<br>Jan =3D team</p>\r\n"
    "--o\r\nContent-Type: message/rfc822\r\n\r\n"
    "From: c@d.example\r\nSubject: doorgestuurd\r\n\r\noorspronkelijk\r\n--o--\r\n"
)
for m in inspect:
    write("inspect", m)


def report(action):
    return (
        "From: MAILER-DAEMON@mx.partner.example\r\nTo: bounce+x@relay.example\r\n"
        "Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n"
        "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.partner.example\r\n\r\n"
        f"Final-Recipient: rfc822; someone@partner.example\r\nAction: {action}\r\n"
        "Status: 5.1.1\r\n\r\n--b--\r\n"
    )


for m in [
    report("failed"),
    report("delayed"),
    "From: team@partner.example\r\nAuto-Submitted: auto-replied\r\nSubject: Afwezig\r\n\r\n"
    "Ik ben tot maandag afwezig.\r\n",
    "From: MAILER-DAEMON@old.example\r\nSubject: failure notice\r\n\r\n"
    "Sorry, I couldn't deliver your message.\r\n",
]:
    write("bounce_classify", m)


# --- Files (src/mail/sanitize.rs and its fixtures module) -------------------------------------------

def segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_gps(owner):
    exif = b"Exif\0\0MM\0*\0\0\0\x08" + b"GPSLatitude 52.0907N GPSLongitude 5.1214E Owner " + owner
    out = b"\xff\xd8"
    out += segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
    out += segment(0xE1, exif)
    out += segment(0xFE, b"taken by " + owner)
    out += segment(0xDB, b"\0" + b"\x01" * 64)
    out += segment(0xC0, bytes([8, 0, 1, 0, 1, 1, 1, 0x11, 0]))
    out += segment(0xC4, b"\0\x01" + b"\0" * 15 + b"\0")
    out += segment(0xDA, bytes([1, 1, 0, 0, 0x3F, 0]))
    return out + b"\x00\x3f" + b"\xff\xd9"


def pdf_with_author(author):
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        f"<< /Author ({author}) /Creator (Microsoft Word - {author}) /Producer (Writer) "
        "/Title (Verslag \\(concept\\)) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objects):
        offsets.append(len(out))
        out += f"{i + 1} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return out


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + b"\0\0\0\0"


def docx(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, contents in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), contents,
                       compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


write("sanitise_jpeg", jpeg_with_gps(b"Jan Jansen"))

write("sanitise_png", b"\x89PNG\r\n\x1a\n"
      + png_chunk(b"IHDR", bytes([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]))
      + png_chunk(b"tEXt", b"Author\0Jan Jansen")
      + png_chunk(b"eXIf", b"MM\0*GPS")
      + png_chunk(b"IDAT", b"data")
      + png_chunk(b"IEND", b""))

write("sanitise_pdf", pdf_with_author("Jan Jansen"))
write("sanitise_pdf", b"%PDF-1.5\n1 0 obj\n<< /Type /ObjStm /Filter /FlateDecode >>\nstream\n"
      + zlib.compress(b"<< /Author (Jan Jansen) >>") + b"\nendstream\nendobj\n%%EOF\n")
page = zlib.compress(b"BT /F1 12 Tf [(J)20(an)-300(Jan)15(sen)] TJ (bel 06-12 34 56 78) Tj ET")
write("sanitise_pdf", f"%PDF-1.4\n1 0 obj\n<< /Length {len(page)} /Filter /FlateDecode >>\nstream\n".encode()
      + page + b"\nendstream\nendobj\n%%EOF\n")
write("sanitise_pdf", b"%PDF-1.7\n1 0 obj\n<< /Type /Metadata /Subtype /XML >>\nstream\n"
      b"<?xpacket begin=\"\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?><x:xmpmeta xmlns:x=\"adobe:ns:meta/\">"
      b"<dc:creator>Jan Jansen</dc:creator></x:xmpmeta><?xpacket end=\"w\"?>\nendstream\nendobj\n"
      b"2 0 obj\n<< /Author <4a616e> /Keywords () >>\nendobj\n%%EOF\n")

write("sanitise_office", docx([
    ("docProps/core.xml", b"<cp:coreProperties><dc:creator>Jan Jansen</dc:creator></cp:coreProperties>"),
    ("docProps/app.xml", b"<Properties><Company>Jeugdbescherming</Company></Properties>"),
    ("word/document.xml", b"<w:ins w:author=\"Jan Jansen\" w:date=\"x\">tekst</w:ins>"),
]))
write("sanitise_office", docx([
    ("word/document.xml", b"<w:p><w:r><w:t>foto</w:t></w:r></w:p>"),
    ("word/media/image1.jpeg", jpeg_with_gps(b"Jan Jansen")),
    ("docProps/custom.xml", b"<Properties><property name=\"x\">Jan</property></Properties>"),
]))
write("sanitise_office", docx([
    ("word/document.xml", b"<w:p/>"),
    ("word/embeddings/oleObject1.bin", b"\xd0\xcf\x11\xe0 Jan Jansen"),
]))
write("sanitise_office", docx([
    ("word/document.xml",
     b"<w:p><w:r><w:t>Met vriendelijke groet,</w:t></w:r></w:p><w:p><w:r><w:t>Jan</w:t></w:r>"
     b"<w:r><w:t xml:space=\"preserve\"> Jan</w:t></w:r><w:r><w:t>sen &amp; co</w:t></w:r></w:p>"),
]))

# The first byte picks the name and declared type (see fuzz_targets/sanitise_text.rs).
write("sanitise_text", b"\0hallo")
write("sanitise_text", b"\x01naam;telefoon\nJan;0612345678\n")
write("sanitise_text", b"\x02-----BEGIN PGP PUBLIC KEY BLOCK-----\n...")
write("sanitise_text", b"\x04MZ\x90\0")

# --- Text (src/mail/leak.rs) ------------------------------------------------------------------------

for text in [
    "bel me op 06-12 34 56 78 graag", "+31 6 1234 5678", "0031 6 12 34 56 78", "(06) 12 34 56 78",
    "tel: 06/12345678.", "zaaknummer 2026-0612-3456", "Groet, Jan", "mevrouw De VRIES belde", "Vriës",
    "ik woon in alphen aan den rijn", "auto 12-abc-3 staat er", "kenteken 12 ABC 3",
    "mail Jan.DeVries@Prive.example graag", "de rapportage van de raad",
]:
    write("leak_check", text)

# --- Addresses and numbers (src/alias.rs, src/mail/mod.rs, src/phone/mod.rs) ------------------------

for text in ["k7m2q9xd3abc@relay.example", "aanmelding@relay.example", " Info@Relay.Example. ",
             "a..b@relay.example", "x@-bad.example", "bounce+abc.def@relay.example"]:
    write("alias_parse", text)
for text in ["team@jbwest.example", "Jan.DeVries@Prive.example", "06-12 34 56 78", "+31 6 1234 5678",
             "0031612345678", "(010) 123 45 67", "+32 470 12 34 56"]:
    write("contact_parse", text)

# --- Passkey answers (src/webauthn.rs, tests/relay/web_passkeys.rs) ---------------------------------
# The first byte chooses: even, an attestation object for registration; odd, 64 bytes of signature
# and then the authenticator data of an assertion. Keys are fixed bytes (the target checks parsing).


def cbor_bytes(data):
    if len(data) < 24:
        return bytes([0x40 | len(data)]) + data
    if len(data) < 256:
        return bytes([0x58, len(data)]) + data
    return bytes([0x59]) + struct.pack(">H", len(data)) + data


def cbor_text(text):
    return bytes([0x60 | len(text)]) + text.encode()


rp_id_hash = hashlib.sha256(b"localhost").digest()
credential_id = bytes(range(16))
es256 = (bytes([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21]) + cbor_bytes(bytes([0x11] * 32))
         + bytes([0x22]) + cbor_bytes(bytes([0x22] * 32)))
ed25519 = bytes([0xA4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21]) + cbor_bytes(bytes([0x33] * 32))
for flags, key in [(0x45, es256), (0x41, ed25519), (0x45 | 0x80, es256 + bytes([0xA0]))]:
    auth_data = (rp_id_hash + bytes([flags]) + struct.pack(">I", 0) + bytes(16)
                 + struct.pack(">H", len(credential_id)) + credential_id + key)
    attestation = (bytes([0xA3]) + cbor_text("fmt") + cbor_text("none") + cbor_text("attStmt")
                   + bytes([0xA0]) + cbor_text("authData") + cbor_bytes(auth_data))
    write("webauthn", bytes([0]) + attestation)
write("webauthn", bytes([1]) + bytes([0x30] * 64) + rp_id_hash + bytes([0x05]) + struct.pack(">I", 1))
