//! PNG: keeps the chunks needed to draw the image (no text, EXIF, time or ICC profile) and nothing
//! after the end chunk.

pub(super) const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// The cleaned image, or `None` when the file is damaged.
pub(super) fn clean(data: &[u8]) -> Option<Vec<u8>> {
    const KEEP: [&[u8; 4]; 10] = [
        b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs",
    ];
    if !data.starts_with(SIGNATURE) {
        return None;
    }
    let mut out = SIGNATURE.to_vec();
    let mut pos = SIGNATURE.len();
    while pos < data.len() {
        let length = u32::from_be_bytes(data.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let chunk_type = data.get(pos + 4..pos + 8)?;
        let end = pos.checked_add(12)?.checked_add(length)?;
        let chunk = data.get(pos..end)?;
        if KEEP.iter().any(|k| k.as_slice() == chunk_type) {
            out.extend_from_slice(chunk);
        }
        if chunk_type == b"IEND" {
            return Some(out);
        }
        pos = end;
    }
    None
}
