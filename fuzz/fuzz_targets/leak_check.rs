//! The leak guard over outgoing text, with one marker of every kind registered.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use schuilnaam::mail::leak::{check, MarkerKind};

fuzz_target!(|data: &[u8]| {
    static MARKERS: OnceLock<HashSet<(MarkerKind, String)>> = OnceLock::new();
    let markers = MARKERS.get_or_init(|| schuilnaam_fuzz::markers(&schuilnaam_fuzz::REGISTERED));
    let text = String::from_utf8_lossy(data);
    if let Err(leak) = check(schuilnaam_fuzz::server_key(), markers, &text) {
        // What the worker is shown was found in their own text.
        assert!(!leak.fragment.is_empty());
    }
});
