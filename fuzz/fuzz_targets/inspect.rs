//! Inbound mail as it arrives after DATA: the MIME structure checks and the facts taken from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::mail::inspect::inspect;

fuzz_target!(|raw: &[u8]| {
    schuilnaam_fuzz::let_the_relay_catch_mail_parser_panics();
    if let Ok(inspected) = inspect(raw) {
        // What routing reads next must hold for anything inspect lets through.
        let domain = inspected.from_domain();
        assert!(
            schuilnaam::alias::Domain::parse(&domain).is_ok(),
            "From domain does not parse"
        );
        assert_eq!(
            schuilnaam::mail::EmailAddress::parse(inspected.from.as_str())
                .ok()
                .as_ref(),
            Some(&inspected.from)
        );
    }
});
