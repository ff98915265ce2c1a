//! JPEG: keeps the segments needed to decode the image; drops EXIF, GPS, XMP, IPTC, ICC profiles,
//! maker notes and comments wherever they stand, and anything after the end of the image.

/// The cleaned image, or `None` when the file is damaged.
pub(super) fn clean(data: &[u8]) -> Option<Vec<u8>> {
    if !data.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&[0xff, 0xd8]);
    let mut pos = 2;
    loop {
        // Markers may be padded with 0xFF fill bytes.
        while data.get(pos) == Some(&0xff) && data.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        if *data.get(pos)? != 0xff {
            return None;
        }
        let marker = *data.get(pos + 1)?;
        match marker {
            0xd9 => {
                // End of image: whatever follows (appended files, text) is not part of it.
                out.extend_from_slice(&[0xff, 0xd9]);
                return Some(out);
            }
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => {
                out.extend_from_slice(&[0xff, marker]);
                pos += 2;
                continue;
            }
            0x00 | 0xd8 => return None,
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([
            *data.get(pos + 2)?,
            *data.get(pos + 3)?,
        ]));
        if length < 2 {
            return None;
        }
        let end = pos + 2 + length;
        let segment = data.get(pos..end)?;
        let keep = match marker {
            0xe0 => segment.get(4..9) == Some(b"JFIF\0"),
            0xee => true,
            0xe1..=0xed | 0xef | 0xfe => false,
            _ => true,
        };
        if keep {
            out.extend_from_slice(segment);
        }
        pos = end;
        if marker == 0xda {
            // Start of scan: entropy-coded data up to the next marker (stuffed 0xFF00 bytes and
            // restart markers belong to the data).
            let scan_end = next_marker(data, pos)?;
            out.extend_from_slice(&data[pos..scan_end]);
            pos = scan_end;
        }
    }
}

/// The position of the first marker at or after `from` that ends entropy-coded data.
fn next_marker(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < data.len() {
        if data[i] == 0xff {
            match data[i + 1] {
                0x00 | 0xd0..=0xd7 => i += 2,
                0xff => i += 1,
                _ => return Some(i),
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::sanitize::fixtures::jpeg_with_gps;

    fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
        let mut s = vec![0xff, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    }

    #[test]
    fn comments_between_scans_and_data_after_the_image_are_dropped() {
        let mut image = jpeg_with_gps("Jan Jansen");
        image.truncate(image.len() - 2);
        // A second scan, preceded by a comment and a new EXIF segment, as a progressive image has.
        image.extend(segment(0xfe, b"second comment by Jan Jansen"));
        image.extend(segment(0xe1, b"Exif\0\0Jan Jansen"));
        image.extend(segment(0xda, &[1, 1, 0, 0, 0x3f, 0]));
        image.extend_from_slice(&[0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56]);
        image.extend_from_slice(&[0xff, 0xd9]);
        image.extend_from_slice(b"appended: Jan Jansen, 06-12345678");
        let cleaned = clean(&image).unwrap();
        assert!(!cleaned.windows(6).any(|w| w == b"Jansen"));
        assert!(cleaned.ends_with(&[0x12, 0xff, 0x00, 0x34, 0xff, 0xd0, 0x56, 0xff, 0xd9]));
        assert_eq!(clean(&cleaned).unwrap(), cleaned, "idempotent");
    }

    #[test]
    fn damaged_images_are_refused() {
        assert_eq!(clean(&[0xff, 0xd8, 0xff]), None);
        assert_eq!(clean(&[0xff, 0xd8, 0xff, 0xe1, 0, 1]), None);
        // A scan that never ends.
        let mut image = vec![0xff, 0xd8];
        image.extend(segment(0xda, &[1, 1, 0, 0, 0x3f, 0]));
        image.extend_from_slice(&[1, 2, 3]);
        assert_eq!(clean(&image), None);
    }
}
