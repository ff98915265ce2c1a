//! What the fuzz targets share: the one place that calls the sanitiser (so a change of its signature,
//! such as a decompression budget, is adapted here only), the idempotence check of cleaned files, and
//! a server key with identity markers for the leak guard.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use schuilnaam::crypto::ServerKey;
use schuilnaam::mail::compose::Attachment;
use schuilnaam::mail::leak::{self, MarkerKind};
use schuilnaam::mail::sanitize::{self, Cleaned, Refused};

/// A fixed age identity, made for fuzzing and used nowhere else. It is not a secret: it only makes the
/// markers' HMAC keys the same in every run, so that a crash reproduces.
const FUZZ_SERVER_KEY: &str =
    "AGE-SECRET-KEY-10TV64HDKKGEE2EA26T88M8S94XVA48Q3QDUWK570HGF6GX4ALW0QRM398U";

/// The sanitiser as the targets call it.
pub fn sanitise(attachment: Attachment) -> Result<Cleaned, Refused> {
    sanitize::sanitise(attachment, &mut sanitize::Budget::per_message())
}

/// The leak guard's reader of attachments as the targets call it.
pub fn readable_text(attachment: &Attachment) -> Option<String> {
    sanitize::readable_text(attachment, &mut sanitize::Budget::per_message()).ok()
}

pub fn attachment(filename: &str, content_type: &str, data: &[u8]) -> Attachment {
    Attachment {
        filename: filename.to_string(),
        content_type: content_type.to_string(),
        data: data.to_vec(),
    }
}

/// Sanitises `data` as the named file, reads its text before and after, and checks that a cleaned
/// file is a fixed point: sanitising it again keeps it, byte for byte. A second pass that still finds
/// something to remove means the first one let it through.
pub fn sanitise_and_check(filename: &str, content_type: &str, data: &[u8]) {
    let original = attachment(filename, content_type, data);
    let _ = readable_text(&original);
    let cleaned = match sanitise(original) {
        Ok(Cleaned::Kept(cleaned)) => cleaned,
        Ok(Cleaned::Removed) | Err(_) => return,
    };
    assert_eq!(cleaned.filename, filename);
    // The content type is the one the bytes show (a JPEG named .docx leaves as image/jpeg, text
    // with its charset), not the one claimed; it must be stable from here on.
    let content_type = cleaned.content_type.clone();
    let _ = readable_text(&cleaned);
    match sanitise(cleaned.clone()) {
        Ok(Cleaned::Kept(again)) => {
            assert!(
                again.data == cleaned.data,
                "a second pass changed the cleaned {filename} ({} -> {} bytes)",
                cleaned.data.len(),
                again.data.len()
            );
            assert_eq!(again.content_type, content_type);
        }
        // An Office document whose every entry was dropped (custom properties only) is rewritten as
        // an empty archive, which no longer looks like a document: refused, which is right.
        Err(Refused::UnsupportedType(_)) if !cleaned.data.starts_with(b"PK\x03\x04") => {}
        other => panic!("the cleaned {filename} is not kept by a second pass: {other:?}"),
    }
}

/// The server key the leak guard hashes markers with (written to a private temporary file once, as
/// `ServerKey` is loaded only from a file).
pub fn server_key() -> &'static ServerKey {
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("schuilnaam-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("server-key");
        std::fs::write(&path, format!("{FUZZ_SERVER_KEY}\n")).expect("key file");
        let key = ServerKey::load_or_create(&path).expect("the fuzzing key loads");
        let _ = std::fs::remove_dir_all(&dir);
        key
    })
}

/// The identity markers of a made-up worker, one of every kind, as the relay stores them.
pub const REGISTERED: [(MarkerKind, &str); 6] = [
    (MarkerKind::Name, "Jan de Vries"),
    (MarkerKind::Town, "Alphen aan den Rijn"),
    (MarkerKind::Plate, "12-ABC-3"),
    (MarkerKind::Email, "jan.devries@prive.example"),
    (MarkerKind::Phone, "06-12 34 56 78"),
    (MarkerKind::Phone, "+32 470 12 34 56"),
];

/// The stored form of `entries`: keyed hashes of the normalised text.
pub fn markers(entries: &[(MarkerKind, &str)]) -> HashSet<(MarkerKind, String)> {
    let keys = server_key();
    entries
        .iter()
        .flat_map(|(kind, text)| {
            leak::normalise(*kind, text)
                .expect("a registered marker normalises")
                .into_iter()
                .map(|n| (*kind, leak::marker_hash(keys, *kind, &n)))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// libfuzzer-sys aborts on every panic, even one the code under test catches. The relay catches
/// panics inside mail-parser (`schuilnaam::mail::parse_message`): mail-parser 0.11.9 trips a debug
/// assertion on some nested messages, and fuzz builds have debug assertions on. This lets those
/// unwind to the relay's handler (the first is printed); every other panic still aborts the run.
pub fn let_the_relay_catch_mail_parser_panics() {
    static ONCE: Once = Once::new();
    static SHOWN: AtomicBool = AtomicBool::new(false);
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|at| at.file().contains("/mail-parser-"));
            if !in_mail_parser {
                fuzzer_hook(info);
            } else if !SHOWN.swap(true, Ordering::Relaxed) {
                eprintln!("caught by the relay (shown once): {info}");
            }
        }));
    });
}
