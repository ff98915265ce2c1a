//! The ceremonies: valid round trips, then each refusal of client data, authenticator data,
//! signatures and counters, made by changing one thing in a valid message.

use super::*;

// ---- round trips ----

fn round_trip(key: TestKey) {
    let challenge = Challenge::random();
    let credential = register(&challenge, &valid_object(&key)).unwrap();
    assert_eq!(credential.credential_id, CREDENTIAL_ID);
    assert_eq!(credential.public_key, key.public());
    assert_eq!(credential.sign_count, 0);
    assert!(credential.user_verified);

    let stored = PublicKey::from_stored(&credential.public_key.to_stored()).unwrap();
    let challenge = Challenge::random();
    let client = client_data_with(
        "webauthn.get",
        &challenge.to_base64url(),
        ORIGIN,
        r#","crossOrigin":false,"other_keys_can_be_added_here":"do not compare clientDataJSON against a template""#,
    );
    let auth = auth_head("localhost", FLAG_UP | FLAG_UV, 7);
    assert_eq!(
        assert_with(&key, &stored, 6, &client, &auth, &challenge),
        Ok(7)
    );
}

#[test]
fn es256_registration_and_assertion_round_trip() {
    round_trip(TestKey::es256());
}

#[test]
fn ed25519_registration_and_assertion_round_trip() {
    round_trip(TestKey::ed25519());
}

#[test]
fn user_verified_is_reported_not_required() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let object = attestation_object(&registration_auth_data(&key.cose(), FLAG_UP | FLAG_AT, 3));
    let credential = register(&challenge, &object).unwrap();
    assert!(!credential.user_verified);
    assert_eq!(credential.sign_count, 3);
    assert_eq!(login(&key, FLAG_UP, 4, 3), Ok(4));
}

#[test]
fn a_packed_attestation_statement_is_accepted_unverified() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let auth = registration_auth_data(&key.cose(), FLAG_UP | FLAG_AT, 0);
    let statement = map(&[
        (tstr("alg"), int(-7)),
        (tstr("sig"), bstr(&[0x30; 70])),
        (tstr("x5c"), [head(4, 1), bstr(&[0x30; 300])].concat()),
    ]);
    let object = map(&[
        (tstr("fmt"), tstr("packed")),
        (tstr("attStmt"), statement),
        (tstr("authData"), bstr(&auth)),
    ]);
    assert!(register(&challenge, &object).is_ok());
}

#[test]
fn extensions_are_accepted_only_when_flagged() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let ext = map(&[(tstr("credProtect"), int(2))]);
    let flags = FLAG_UP | FLAG_AT;
    let with_ext = [
        registration_auth_data(&key.cose(), flags | FLAG_ED, 0),
        ext.clone(),
    ]
    .concat();
    assert!(register(&challenge, &attestation_object(&with_ext)).is_ok());
    let unflagged = [registration_auth_data(&key.cose(), flags, 0), ext.clone()].concat();
    assert_eq!(
        register(&challenge, &attestation_object(&unflagged)),
        Err(WebauthnError::AuthData)
    );
    let missing = registration_auth_data(&key.cose(), flags | FLAG_ED, 0);
    assert_eq!(
        register(&challenge, &attestation_object(&missing)),
        Err(WebauthnError::AuthData)
    );

    let challenge = Challenge::random();
    let client = client_data("webauthn.get", &challenge);
    let public = key.public();
    let flagged = [auth_head("localhost", FLAG_UP | FLAG_ED, 0), ext.clone()].concat();
    assert_eq!(
        assert_with(&key, &public, 0, &client, &flagged, &challenge),
        Ok(0)
    );
    let unflagged = [auth_head("localhost", FLAG_UP, 0), ext].concat();
    assert_eq!(
        assert_with(&key, &public, 0, &client, &unflagged, &challenge),
        Err(WebauthnError::AuthData)
    );
    let not_a_map = [auth_head("localhost", FLAG_UP | FLAG_ED, 0), int(5)].concat();
    assert_eq!(
        assert_with(&key, &public, 0, &client, &not_a_map, &challenge),
        Err(WebauthnError::AuthData)
    );
}

// ---- client data refusals ----

#[test]
fn client_data_refusals() {
    let challenge = CHALLENGE.to_base64url();
    let cases: Vec<(Vec<u8>, WebauthnError)> = vec![
        (
            client_data_with("webauthn.get", &challenge, ORIGIN, ""),
            WebauthnError::Type,
        ),
        (
            client_data_with("payment.get", &challenge, ORIGIN, ""),
            WebauthnError::Type,
        ),
        (
            client_data("webauthn.create", &Challenge([8; 32])),
            WebauthnError::Challenge,
        ),
        // The same bytes padded, or in standard base64, are not the exact text issued.
        (
            client_data_with("webauthn.create", &format!("{challenge}="), ORIGIN, ""),
            WebauthnError::Challenge,
        ),
        (
            client_data_with(
                "webauthn.create",
                &data_encoding::BASE64.encode(&[0xff; 32]),
                ORIGIN,
                "",
            ),
            WebauthnError::Challenge,
        ),
        (
            client_data_with("webauthn.create", "", ORIGIN, ""),
            WebauthnError::Challenge,
        ),
        (
            client_data_with("webauthn.create", &challenge, "https://localhost:8444", ""),
            WebauthnError::Origin,
        ),
        (
            client_data_with("webauthn.create", &challenge, "https://localhost:8443/", ""),
            WebauthnError::Origin,
        ),
        (
            client_data_with("webauthn.create", &challenge, "http://localhost:8443", ""),
            WebauthnError::Origin,
        ),
        (create(r#","crossOrigin":true"#), WebauthnError::CrossOrigin),
        (
            create(r#","topOrigin":"https://evil.example""#),
            WebauthnError::CrossOrigin,
        ),
        (create(r#","topOrigin":null"#), WebauthnError::CrossOrigin),
        (
            create(r#","crossOrigin":"false""#),
            WebauthnError::ClientData,
        ),
        (create(r#","challenge":"AAAA""#), WebauthnError::ClientData),
        (
            create(r#","type":"webauthn.create""#),
            WebauthnError::ClientData,
        ),
        (create("} "), WebauthnError::ClientData),
        (b"".to_vec(), WebauthnError::ClientData),
        (b"[]".to_vec(), WebauthnError::ClientData),
        (b"null".to_vec(), WebauthnError::ClientData),
        (
            format!(r#"{{"type":"webauthn.create","challenge":"{challenge}"}}"#).into_bytes(),
            WebauthnError::ClientData,
        ),
        (
            format!(r#"{{"type":"webauthn.create","origin":"{ORIGIN}"}}"#).into_bytes(),
            WebauthnError::ClientData,
        ),
        (
            [&create("")[..], &[0xff]].concat(),
            WebauthnError::ClientData,
        ),
    ];
    for (client, expected) in cases {
        assert_eq!(
            register_with_client(&client),
            Err(expected),
            "{}",
            String::from_utf8_lossy(&client)
        );
    }
    // Unknown members, crossOrigin false and surrounding whitespace are fine.
    assert!(register_with_client(&create(
        r#","crossOrigin":false,"tokenBinding":{"status":"supported"}"#
    ))
    .is_ok());
    let mut spaced = b" \n".to_vec();
    spaced.extend_from_slice(&create(""));
    spaced.push(b'\n');
    assert!(register_with_client(&spaced).is_ok());
}

#[test]
fn non_utf8_client_data_is_refused() {
    let mut client = create(r#","x":"é""#);
    let at = client.iter().position(|&b| b == 0xc3).unwrap();
    client[at] = 0xff;
    assert_eq!(
        register_with_client(&client),
        Err(WebauthnError::ClientData)
    );
}

#[test]
fn an_assertion_refuses_create_client_data() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let client = client_data("webauthn.create", &challenge);
    let auth = auth_head("localhost", FLAG_UP, 0);
    assert_eq!(
        assert_with(&key, &key.public(), 0, &client, &auth, &challenge),
        Err(WebauthnError::Type)
    );
    let other = Challenge::random();
    let client = client_data("webauthn.get", &other);
    assert_eq!(
        assert_with(&key, &key.public(), 0, &client, &auth, &challenge),
        Err(WebauthnError::Challenge)
    );
}

// ---- authenticator data refusals ----

#[test]
fn registration_authenticator_data_refusals() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let cose = key.cose();
    let good = FLAG_UP | FLAG_AT;
    let other_rp = [auth_head("relay.example", good, 0), attested(&cose)].concat();
    let cases = vec![
        (other_rp, WebauthnError::RpId),
        (
            registration_auth_data(&cose, FLAG_AT | FLAG_UV, 0),
            WebauthnError::UserNotPresent,
        ),
        (
            auth_head("localhost", FLAG_UP, 0),
            WebauthnError::NoCredentialData,
        ),
        (
            registration_auth_data(&cose, FLAG_UP, 0),
            WebauthnError::NoCredentialData,
        ),
        (
            registration_auth_data(&cose, good | FLAG_BS, 0),
            WebauthnError::AuthData,
        ),
        (
            [registration_auth_data(&cose, good, 0), vec![0]].concat(),
            WebauthnError::AuthData,
        ),
        (auth_head("localhost", good, 0), WebauthnError::AuthData),
        (vec![0; 36], WebauthnError::AuthData),
    ];
    for (auth, expected) in cases {
        assert_eq!(
            register(&challenge, &attestation_object(&auth)),
            Err(expected)
        );
    }
    // Synced passkeys say "backup eligible, backed up".
    let synced = registration_auth_data(&cose, good | FLAG_BE | FLAG_BS, 0);
    assert!(register(&challenge, &attestation_object(&synced)).is_ok());
}

fn with_credential_id(id_len: u16, id: &[u8], cose: &[u8]) -> Vec<u8> {
    let mut data = auth_head("localhost", FLAG_UP | FLAG_AT, 0);
    data.extend_from_slice(&[0; 16]);
    data.extend_from_slice(&id_len.to_be_bytes());
    data.extend_from_slice(id);
    data.extend_from_slice(cose);
    data
}

#[test]
fn credential_id_length_is_bounded() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let cose = key.cose();
    let longest = vec![9; 1023];
    let ok = with_credential_id(1023, &longest, &cose);
    assert_eq!(
        register(&challenge, &attestation_object(&ok))
            .unwrap()
            .credential_id,
        longest
    );
    for auth in [
        with_credential_id(0, &[], &cose),
        with_credential_id(1024, &[9; 1024], &cose),
        with_credential_id(0xffff, &[9; 100], &cose),
    ] {
        assert_eq!(
            register(&challenge, &attestation_object(&auth)),
            Err(WebauthnError::AuthData)
        );
    }
}

#[test]
fn assertion_authenticator_data_refusals() {
    let key = TestKey::ed25519();
    let challenge = Challenge::random();
    let client = client_data("webauthn.get", &challenge);
    let public = key.public();
    let cases = vec![
        (auth_head("relay.example", FLAG_UP, 0), WebauthnError::RpId),
        (
            auth_head("localhost", FLAG_UV, 0),
            WebauthnError::UserNotPresent,
        ),
        (
            auth_head("localhost", FLAG_UP | FLAG_AT, 0),
            WebauthnError::AuthData,
        ),
        (
            auth_head("localhost", FLAG_UP | FLAG_BS, 0),
            WebauthnError::AuthData,
        ),
        (
            [auth_head("localhost", FLAG_UP, 0), vec![0]].concat(),
            WebauthnError::AuthData,
        ),
        (
            auth_head("localhost", FLAG_UP, 0)[..36].to_vec(),
            WebauthnError::AuthData,
        ),
        (vec![], WebauthnError::AuthData),
    ];
    for (auth, expected) in cases {
        assert_eq!(
            assert_with(&key, &public, 0, &client, &auth, &challenge),
            Err(expected)
        );
    }
}

// ---- signatures and counters ----

#[test]
fn tampered_or_foreign_signatures_are_refused() {
    for (key, other) in [
        (TestKey::es256(), TestKey::es256()),
        (TestKey::ed25519(), TestKey::ed25519()),
    ] {
        let challenge = Challenge::random();
        let client = client_data("webauthn.get", &challenge);
        let auth = auth_head("localhost", FLAG_UP, 1);
        let message = [&auth[..], digest(&SHA256, &client).as_ref()].concat();
        let good = key.sign(&message);
        let check = |public: &PublicKey, auth: &[u8], client: &[u8], signature: &[u8]| {
            verify_assertion(
                &rp(),
                &challenge,
                public,
                0,
                &Assertion {
                    client_data_json: client,
                    authenticator_data: auth,
                    signature,
                },
            )
        };
        assert_eq!(check(&key.public(), &auth, &client, &good), Ok(1));
        // Another key's signature over the same message, and this signature under another key.
        let foreign = other.sign(&message);
        assert_eq!(
            check(&key.public(), &auth, &client, &foreign),
            Err(WebauthnError::Signature)
        );
        assert_eq!(
            check(&other.public(), &auth, &client, &good),
            Err(WebauthnError::Signature)
        );
        // Any bit of the signature, the counter or the client data changed.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                check(&key.public(), &auth, &client, &bad),
                Err(WebauthnError::Signature)
            );
        }
        let mut bumped = auth.clone();
        bumped[36] = 2;
        assert_eq!(
            check(&key.public(), &bumped, &client, &good),
            Err(WebauthnError::Signature)
        );
        let mut uv = auth.clone();
        uv[32] |= FLAG_UV;
        assert_eq!(
            check(&key.public(), &uv, &client, &good),
            Err(WebauthnError::Signature)
        );
        let spaced = [&client[..], b" "].concat();
        assert_eq!(
            check(&key.public(), &auth, &spaced, &good),
            Err(WebauthnError::Signature)
        );
        assert_eq!(
            check(&key.public(), &auth, &client, &[]),
            Err(WebauthnError::Signature)
        );
    }
}

#[test]
fn an_es256_signature_in_raw_form_is_refused() {
    // Browsers send ASN.1 DER; 64 raw bytes r||s are not accepted.
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let client = client_data("webauthn.get", &challenge);
    let auth = auth_head("localhost", FLAG_UP, 0);
    let der = key.sign(&[&auth[..], digest(&SHA256, &client).as_ref()].concat());
    assert!(der.len() > 64 && der[0] == 0x30);
    let raw = [0x11; 64];
    let result = verify_assertion(
        &rp(),
        &challenge,
        &key.public(),
        0,
        &Assertion {
            client_data_json: &client,
            authenticator_data: &auth,
            signature: &raw,
        },
    );
    assert_eq!(result, Err(WebauthnError::Signature));
}

#[test]
fn the_counter_must_grow_unless_both_are_zero() {
    let key = TestKey::es256();
    assert_eq!(login(&key, FLAG_UP, 0, 0), Ok(0));
    assert_eq!(login(&key, FLAG_UP, 3, 0), Ok(3));
    assert_eq!(login(&key, FLAG_UP, 6, 5), Ok(6));
    assert_eq!(login(&key, FLAG_UP, u32::MAX, 5), Ok(u32::MAX));
    assert_eq!(login(&key, FLAG_UP, 5, 5), Err(WebauthnError::Counter));
    assert_eq!(login(&key, FLAG_UP, 4, 5), Err(WebauthnError::Counter));
    assert_eq!(login(&key, FLAG_UP, 0, 5), Err(WebauthnError::Counter));
    assert_eq!(
        login(&key, FLAG_UP, u32::MAX, u32::MAX),
        Err(WebauthnError::Counter)
    );
}
