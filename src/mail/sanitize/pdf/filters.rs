//! Stream filters: the ones a PDF's text and metadata can hide behind are decoded (Flate, LZW,
//! ASCII85, ASCIIHex, RunLength, with PNG and TIFF predictors); image codecs are recognised and not
//! decoded (pixels hold no text the relay could read); anything else is refused. Every decoded byte
//! is paid from the message's budget, and a decoder stops one byte past what the budget allows.

use std::borrow::Cow;

use super::syntax::{Dict, Document, Object};
use crate::mail::sanitize::{Budget, Problem, Unpack};

pub(super) const DAMAGED: Problem = Problem::Unreadable(
    "a compressed part of the PDF is damaged; print it to a new PDF and attach that",
);
const UNKNOWN_FILTER: Problem = Problem::Unreadable(
    "the PDF uses a compression the relay cannot unpack; print it to a new PDF and attach that",
);
pub(super) const ENCRYPTED: Problem = Problem::Unreadable(
    "the PDF is encrypted or protected with a password; save a copy without protection and attach that",
);

fn unpack_problem(e: Unpack) -> Problem {
    match e {
        Unpack::OverBudget => Problem::TooLarge,
        Unpack::Damaged => DAMAGED,
    }
}

/// The decoded data of a stream; `None` for image data, which is not decoded.
pub(super) fn decode<'a>(
    doc: &Document,
    dict: &Dict,
    raw: &'a [u8],
    budget: &mut Budget,
) -> Result<Option<Cow<'a, [u8]>>, Problem> {
    let filters: Vec<Vec<u8>> = match dict.get(b"Filter").map(|f| doc.resolve(f)) {
        None | Some(Object::Null) => Vec::new(),
        Some(Object::Name(name)) => vec![name.clone()],
        Some(Object::Array(items)) => items
            .iter()
            .map(|item| match doc.resolve(item) {
                Object::Name(name) => Ok(name.clone()),
                _ => Err(UNKNOWN_FILTER),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(UNKNOWN_FILTER),
    };
    let parameters = dict
        .get(b"DecodeParms")
        .or_else(|| dict.get(b"DP"))
        .map(|p| doc.resolve(p));
    let mut data = Cow::Borrowed(raw);
    for (index, filter) in filters.iter().enumerate() {
        let parms = match parameters {
            Some(Object::Array(items)) => items.get(index).and_then(|p| doc.dict(p)),
            Some(Object::Dict(dict)) if index == 0 || filters.len() == 1 => Some(dict),
            _ => None,
        };
        let decoded = match filter.as_slice() {
            b"FlateDecode" | b"Fl" => {
                let inflated = budget
                    .read_all(flate2::read::ZlibDecoder::new(&data[..]))
                    .map_err(unpack_problem)?;
                predicted(inflated, parms, budget)?
            }
            b"LZWDecode" | b"LZW" => {
                let early = parms
                    .and_then(|p| p.get(b"EarlyChange"))
                    .and_then(Object::as_number)
                    != Some(0.0);
                let out = lzw(&data, early, budget.allowance()).map_err(unpack_problem)?;
                budget.pay(out.len()).map_err(unpack_problem)?;
                predicted(out, parms, budget)?
            }
            b"ASCIIHexDecode" | b"AHx" => {
                let out = ascii_hex(&data);
                budget.pay(out.len()).map_err(unpack_problem)?;
                out
            }
            b"ASCII85Decode" | b"A85" => {
                let out = ascii85(&data).ok_or(DAMAGED)?;
                budget.pay(out.len()).map_err(unpack_problem)?;
                out
            }
            b"RunLengthDecode" | b"RL" => {
                let out = run_length(&data, budget.allowance()).map_err(unpack_problem)?;
                budget.pay(out.len()).map_err(unpack_problem)?;
                out
            }
            b"DCTDecode" | b"DCT" | b"JPXDecode" | b"CCITTFaxDecode" | b"CCF" | b"JBIG2Decode" => {
                return Ok(None)
            }
            b"Crypt" => return Err(ENCRYPTED),
            _ => return Err(UNKNOWN_FILTER),
        };
        data = Cow::Owned(decoded);
    }
    Ok(Some(data))
}

/// Undoes a PNG or TIFF predictor.
fn predicted(data: Vec<u8>, parms: Option<&Dict>, budget: &mut Budget) -> Result<Vec<u8>, Problem> {
    let number = |key: &[u8], default: f64| {
        parms
            .and_then(|p| p.get(key))
            .and_then(Object::as_number)
            .unwrap_or(default)
    };
    let predictor = number(b"Predictor", 1.0) as i64;
    if predictor <= 1 {
        return Ok(data);
    }
    let colors = number(b"Colors", 1.0).clamp(1.0, 64.0) as usize;
    let bits = number(b"BitsPerComponent", 8.0).clamp(1.0, 16.0) as usize;
    let columns = number(b"Columns", 1.0).clamp(1.0, 1_000_000.0) as usize;
    let row = (colors * bits * columns).div_ceil(8);
    let pixel = (colors * bits).div_ceil(8).max(1);
    match predictor {
        2 if bits == 8 => {
            let mut out = data;
            for line in out.chunks_mut(row) {
                for i in pixel..line.len() {
                    line[i] = line[i].wrapping_add(line[i - pixel]);
                }
            }
            Ok(out)
        }
        10..=15 => {
            let mut out = Vec::with_capacity(data.len());
            let mut previous = vec![0u8; row];
            for line in data.chunks(row + 1) {
                let (kind, bytes) = line.split_first().ok_or(DAMAGED)?;
                let mut current = bytes.to_vec();
                current.resize(row, 0);
                for i in 0..row {
                    let left = if i >= pixel { current[i - pixel] } else { 0 };
                    let up = previous[i];
                    let up_left = if i >= pixel { previous[i - pixel] } else { 0 };
                    let add = match kind {
                        0 => 0,
                        1 => left,
                        2 => up,
                        3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                        4 => paeth(left, up, up_left),
                        _ => return Err(DAMAGED),
                    };
                    current[i] = current[i].wrapping_add(add);
                }
                out.extend_from_slice(&current[..bytes.len().min(row)]);
                previous = current;
            }
            // Unfiltering never grows the data; it was paid for already.
            let _ = budget;
            Ok(out)
        }
        _ => Err(UNKNOWN_FILTER),
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut high: Option<u8> = None;
    for &b in data {
        if b == b'>' {
            break;
        }
        let Some(value) = (b as char).to_digit(16) else {
            continue;
        };
        match high.take() {
            Some(h) => out.push(h << 4 | value as u8),
            None => high = Some(value as u8),
        }
    }
    if let Some(h) = high {
        out.push(h << 4);
    }
    out
}

fn ascii85(data: &[u8]) -> Option<Vec<u8>> {
    let data = data.strip_prefix(b"<~").unwrap_or(data);
    let mut out = Vec::with_capacity(data.len() * 4 / 5 + 4);
    let mut group = [0u32; 5];
    let mut count = 0;
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        i += 1;
        match b {
            b'~' => break,
            b'z' if count == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[count] = u32::from(b - b'!');
                count += 1;
                if count == 5 {
                    let value = group
                        .iter()
                        .try_fold(0u32, |acc, d| acc.checked_mul(85)?.checked_add(*d))?;
                    out.extend_from_slice(&value.to_be_bytes());
                    count = 0;
                }
            }
            _ if super::syntax::is_whitespace(b) => {}
            _ => return None,
        }
    }
    if count == 1 {
        return None;
    }
    if count > 1 {
        for digit in group.iter_mut().skip(count) {
            *digit = 84;
        }
        let value = group
            .iter()
            .try_fold(0u32, |acc, d| acc.checked_mul(85)?.checked_add(*d))?;
        out.extend_from_slice(&value.to_be_bytes()[..count - 1]);
    }
    Some(out)
}

fn run_length(data: &[u8], limit: u64) -> Result<Vec<u8>, Unpack> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&length) = data.get(i) {
        i += 1;
        match length {
            128 => break,
            0..=127 => {
                let end = (i + usize::from(length) + 1).min(data.len());
                out.extend_from_slice(&data[i..end]);
                i = end;
            }
            _ => {
                let byte = *data.get(i).ok_or(Unpack::Damaged)?;
                i += 1;
                out.resize(out.len() + 257 - usize::from(length), byte);
            }
        }
        if out.len() as u64 > limit {
            return Err(Unpack::OverBudget);
        }
    }
    Ok(out)
}

/// LZW as PDF and TIFF use it: 9 to 12 bit codes, 256 clears the table, 257 ends the data.
fn lzw(data: &[u8], early_change: bool, limit: u64) -> Result<Vec<u8>, Unpack> {
    const CLEAR: usize = 256;
    const END: usize = 257;
    // Each entry: the entry it extends (or none) and its last byte.
    let mut table: Vec<(Option<u16>, u8)> = (0..=255u8).map(|b| (None, b)).collect();
    table.push((None, 0));
    table.push((None, 0));
    let mut out = Vec::new();
    let mut previous: Option<usize> = None;
    let mut width = 9;
    let (mut buffer, mut bits) = (0u32, 0u32);
    let mut scratch = Vec::new();
    let expand = |table: &[(Option<u16>, u8)], code: usize, scratch: &mut Vec<u8>| {
        scratch.clear();
        let mut current = Some(code as u16);
        while let Some(c) = current {
            let (prefix, byte) = table[usize::from(c)];
            scratch.push(byte);
            current = prefix;
        }
        scratch.reverse();
    };
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= width {
            bits -= width;
            let code = ((buffer >> bits) & ((1 << width) - 1)) as usize;
            buffer &= (1 << bits) - 1;
            match code {
                CLEAR => {
                    table.truncate(258);
                    width = 9;
                    previous = None;
                    continue;
                }
                END => return Ok(out),
                _ => {}
            }
            match previous {
                None => {
                    if code >= table.len() {
                        return Err(Unpack::Damaged);
                    }
                    expand(&table, code, &mut scratch);
                }
                Some(prev) => {
                    if code < table.len() {
                        expand(&table, code, &mut scratch);
                        let first = scratch[0];
                        if table.len() < 4096 {
                            table.push((Some(prev as u16), first));
                        }
                    } else if code == table.len() {
                        expand(&table, prev, &mut scratch);
                        let first = scratch[0];
                        scratch.push(first);
                        if table.len() < 4096 {
                            table.push((Some(prev as u16), first));
                        }
                    } else {
                        return Err(Unpack::Damaged);
                    }
                }
            }
            out.extend_from_slice(&scratch);
            if out.len() as u64 > limit {
                return Err(Unpack::OverBudget);
            }
            previous = Some(code);
            let next = table.len() + usize::from(early_change);
            width = match next {
                0..=511 => 9,
                512..=1023 => 10,
                1024..=2047 => 11,
                _ => 12,
            };
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// LZW-encodes `data` (one code per byte, clearing before the table fills): enough for tests.
    pub(crate) fn lzw_encode(data: &[u8]) -> Vec<u8> {
        let mut codes = vec![256u32];
        let mut size = 258;
        for &b in data {
            codes.push(u32::from(b));
            size += 1;
            if size >= 4000 {
                codes.push(256);
                size = 258;
            }
        }
        codes.push(257);
        let mut out = Vec::new();
        let (mut buffer, mut bits) = (0u64, 0u32);
        let mut table_len = 258usize;
        let mut width = 9;
        for (i, code) in codes.iter().enumerate() {
            buffer = (buffer << width) | u64::from(*code);
            bits += width;
            while bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
            if *code == 256 {
                table_len = 258;
            } else if i > 1 && codes[i - 1] != 256 {
                table_len += 1;
            }
            width = match table_len + 1 {
                0..=511 => 9,
                512..=1023 => 10,
                1024..=2047 => 11,
                _ => 12,
            };
        }
        if bits > 0 {
            out.push((buffer << (8 - bits)) as u8);
        }
        out
    }

    #[test]
    fn the_cheap_filters_decode() {
        assert_eq!(ascii_hex(b"4A 61\n6e7>ignored"), b"Jan\x70");
        assert_eq!(ascii85(b"<~9jqo^~>").unwrap(), b"Man ");
        assert_eq!(ascii85(b"87cURD]i,\"Ebo80~>").unwrap(), b"Hello World!");
        assert_eq!(ascii85(b"z~>").unwrap(), [0; 4]);
        assert_eq!(
            run_length(&[2, b'J', b'a', b'n', 253, b'!', 128], 100).unwrap(),
            b"Jan!!!!"
        );
        assert_eq!(run_length(&[129, b'x'], 10), Err(Unpack::OverBudget));
        let text = b"Jan Jansen, 06-12345678, Jan Jansen".repeat(300);
        assert_eq!(lzw(&lzw_encode(&text), true, u64::MAX).unwrap(), text);
        // The classic example of the PDF reference: 45 45 45 45 45 65 45 45 45 66.
        let encoded = [0x80, 0x0b, 0x60, 0x50, 0x22, 0x0c, 0x0c, 0x85, 0x01];
        assert_eq!(
            lzw(&encoded, true, u64::MAX).unwrap(),
            b"\x2d\x2d\x2d\x2d\x2d\x41\x2d\x2d\x2d\x42"
        );
    }

    #[test]
    fn png_predictors_are_undone() {
        // Two rows of three bytes: "Up" then "Sub".
        let data = vec![2, 1, 2, 3, 1, 10, 1, 1];
        let mut parms = Dict::default();
        parms.0.push((b"Predictor".to_vec(), Object::Int(12)));
        parms.0.push((b"Columns".to_vec(), Object::Int(3)));
        let out = predicted(data, Some(&parms), &mut Budget::per_message()).unwrap();
        assert_eq!(out, [1, 2, 3, 10, 11, 12]);
    }
}
