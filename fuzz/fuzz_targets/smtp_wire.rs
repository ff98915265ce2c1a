//! The SMTP framing: command lines and the DATA phase, fed in arbitrary chunks. No panic; DATA ends
//! only on <CR><LF>.<CR><LF>; a message taken contains no bare LF or CR; feeding the same bytes split
//! differently gives the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::mail::smtp::wire::{next_command, CommandLine, DataEnd, DataParser};

/// Feeds `bytes` in chunks of `chunk` bytes; the end (if any) and what is left after it.
fn feed(bytes: &[u8], chunk: usize) -> (Option<DataEnd>, Vec<u8>) {
    let mut parser = DataParser::new(64 * 1024);
    let mut input = Vec::new();
    let mut fed = 0;
    for piece in bytes.chunks(chunk.max(1)) {
        input.extend_from_slice(piece);
        fed += piece.len();
        if let Some(end) = parser.feed(&mut input) {
            // What the parser left of the bytes fed so far, then the bytes not fed yet.
            let consumed = fed - input.len();
            return (Some(end), bytes[consumed..].to_vec());
        }
    }
    (None, Vec::new())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    // Command lines: every complete line is one of the three outcomes, and a line taken has no CR/LF.
    let mut input = bytes.to_vec();
    let mut discarding = false;
    while let Some(line) = next_command(&mut input, &mut discarding) {
        if let CommandLine::Line(line) = line {
            assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
        }
    }
    // DATA: whole, byte by byte, and in chunks of `split` bytes, the same answer.
    let (whole, whole_rest) = feed(bytes, bytes.len());
    let (bytewise, bytewise_rest) = feed(bytes, 1);
    let (chunked, chunked_rest) = feed(bytes, usize::from(split));
    assert_eq!(whole, bytewise);
    assert_eq!(whole, chunked);
    assert_eq!(whole_rest, bytewise_rest);
    assert_eq!(whole_rest, chunked_rest);
    if let Some(end) = whole {
        let consumed = bytes.len() - whole_rest.len();
        assert!(consumed >= 3 && bytes[..consumed].ends_with(b".\r\n"));
        let before = &bytes[..consumed - 3];
        assert!(
            before.is_empty() || before.ends_with(b"\r\n"),
            "ended after a bare LF"
        );
        if let DataEnd::Complete(message) = end {
            for (i, byte) in message.iter().enumerate() {
                match byte {
                    b'\n' => assert!(i > 0 && message[i - 1] == b'\r', "bare LF taken"),
                    b'\r' => assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR taken"),
                    _ => {}
                }
            }
        }
    }
});
