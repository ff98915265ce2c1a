//! Real e-mail addresses and phone numbers (of partners, allowed contacts, workers' markers): no panic,
//! and what a parse returns parses again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::mail::EmailAddress;
use schuilnaam::phone::PhoneNumber;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = EmailAddress::parse(text) {
        assert_eq!(
            EmailAddress::parse(address.as_str()).ok().as_ref(),
            Some(&address)
        );
        let canonical =
            EmailAddress::parse(&address.canonical()).expect("the canonical form parses");
        assert_eq!(canonical.canonical(), address.canonical());
        assert!(schuilnaam::alias::Domain::parse(address.domain()).is_ok());
    }
    if let Ok(number) = PhoneNumber::parse(text) {
        assert_eq!(
            PhoneNumber::parse(number.as_str()).ok().as_ref(),
            Some(&number)
        );
        assert!(number.as_str().starts_with('+'));
    }
});
