//! A message to a return path (`bounce+…`): is it a delivery failure report? Reports come with a
//! null envelope sender; with any other sender the body is not read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::mail::bounce::{classify, Returned};

fuzz_target!(|raw: &[u8]| {
    schuilnaam_fuzz::let_the_relay_catch_mail_parser_panics();
    let _ = classify("", raw);
    assert_eq!(
        classify("someone@partner.example", raw),
        Returned::NotAFailure
    );
});
