//! Alias addresses, local parts and domains as typed by administrators and read from RCPT TO: no
//! panic, and what a parse returns parses again to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::alias::{Address, Domain, LocalPart};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(address) = Address::parse(text) {
        assert_eq!(
            Address::parse(address.as_str()).ok().as_ref(),
            Some(&address)
        );
        let (local, domain) = address
            .as_str()
            .rsplit_once('@')
            .expect("an address has an @");
        assert_eq!(address.domain(), domain);
        let local = LocalPart::parse(local).expect("the local part parses");
        let domain = Domain::parse(domain).expect("the domain parses");
        assert_eq!(Address::from_parts(&local, &domain), address);
    }
    if let Ok(domain) = Domain::parse(text) {
        assert_eq!(Domain::parse(domain.as_str()).ok().as_ref(), Some(&domain));
    }
    if let Ok(local) = LocalPart::parse(text) {
        let relay = Domain::parse("relay.example").expect("a valid domain");
        let address = Address::from_parts(&local, &relay);
        assert_eq!(
            Address::parse(address.as_str()).ok().as_ref(),
            Some(&address)
        );
    }
});
