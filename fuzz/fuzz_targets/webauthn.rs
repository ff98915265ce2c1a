//! A browser's passkey answers, which anyone can post to the login and passkey pages: the
//! attestation object (CBOR, COSE key) and the authenticator data of an assertion. No panic; a
//! registration that verifies yields a key that is stored and read back unchanged; an assertion
//! against a fixed key never verifies (nobody here holds its private key).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schuilnaam::webauthn::{
    verify_assertion, verify_registration, Assertion, Challenge, PublicKey, RelyingParty,
};

fn relying_party() -> RelyingParty {
    RelyingParty {
        id: "localhost".into(),
        origin: "https://localhost:8443".into(),
    }
}

fn client_data(kind: &str, challenge: &Challenge) -> Vec<u8> {
    format!(
        r#"{{"type":"{kind}","challenge":"{}","origin":"https://localhost:8443"}}"#,
        challenge.to_base64url()
    )
    .into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let rp = relying_party();
    let challenge = Challenge::from_bytes([7; 32]);
    if selector % 2 == 0 {
        let client_data = client_data("webauthn.create", &challenge);
        if let Ok(credential) = verify_registration(&rp, &challenge, &client_data, rest) {
            let stored = credential.public_key.to_stored();
            assert_eq!(
                PublicKey::from_stored(&stored).ok().as_ref(),
                Some(&credential.public_key)
            );
            assert!(!credential.credential_id.is_empty());
        }
    } else {
        // The first 64 bytes as the signature, the rest as authenticator data.
        let split = rest.len().min(64);
        let (signature, authenticator_data) = rest.split_at(split);
        let client_data = client_data("webauthn.get", &challenge);
        let key = PublicKey::Ed25519([9; 32]);
        let assertion = Assertion {
            client_data_json: &client_data,
            authenticator_data,
            signature,
        };
        assert!(verify_assertion(&rp, &challenge, &key, 0, &assertion).is_err());
    }
});
