//! Hostile input: unsupported and malformed COSE keys, attestation objects of the wrong shape,
//! hostile CBOR, oversize inputs, and damage (truncation, flipped bytes, random bytes) that must
//! be refused without a panic.

use super::*;

// ---- COSE keys ----

fn register_cose(cose: &[u8]) -> Result<NewCredential, WebauthnError> {
    let challenge = Challenge::random();
    register(
        &challenge,
        &attestation_object(&registration_auth_data(cose, FLAG_UP | FLAG_AT, 0)),
    )
}

#[test]
fn unsupported_cose_keys_are_refused() {
    let (x, y) = ([1u8; 32], [2u8; 32]);
    let rs256 = map(&[
        (int(1), int(3)),
        (int(3), int(-257)),
        (int(-1), bstr(&[0xc5; 256])),
        (int(-2), bstr(&[1, 0, 1])),
    ]);
    let okp = |alg: i64, crv: i64, x: &[u8]| {
        map(&[
            (int(1), int(1)),
            (int(3), int(alg)),
            (int(-1), int(crv)),
            (int(-2), bstr(x)),
        ])
    };
    let no_alg = map(&[
        (int(1), int(2)),
        (int(-1), int(1)),
        (int(-2), bstr(&x)),
        (int(-3), bstr(&y)),
    ]);
    let cases = vec![
        rs256,
        no_alg,
        cose_ec2(-35, 1, &x, &y), // ES384
        cose_ec2(-7, 2, &x, &y),  // P-384 curve
        cose_ec2(-8, 1, &x, &y),  // EdDSA alg on an EC2 key
        cose_ec2(-7, 1, &x[..31], &y),
        cose_ec2(-7, 1, &x, &[2; 33]),
        map(&[
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), bstr(&x)),
        ]),
        okp(-8, 7, &x), // Ed448 curve
        okp(-7, 6, &x), // ES256 alg on an OKP key
        okp(-8, 6, &[3; 31]),
        okp(-8, 6, &[3; 57]),
        map(&[(int(1), int(1)), (int(-1), int(6)), (int(-2), bstr(&x))]),
        map(&[]),
    ];
    for cose in cases {
        assert_eq!(register_cose(&cose), Err(WebauthnError::UnsupportedKey));
    }
}

#[test]
fn malformed_cose_keys_are_refused() {
    let (x, y) = ([1u8; 32], [2u8; 32]);
    let dup_alg = map(&[
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(3), int(-7)),
        (int(-1), int(1)),
        (int(-2), bstr(&x)),
        (int(-3), bstr(&y)),
    ]);
    let x_as_text = map(&[
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(-1), int(1)),
        (int(-2), tstr("not bytes")),
        (int(-3), bstr(&y)),
    ]);
    let bytes_label = map(&[(bstr(b"k"), int(1))]);
    assert_eq!(
        register_cose(&x_as_text),
        Err(WebauthnError::UnsupportedKey)
    );
    for cose in [dup_alg, bytes_label, [head(4, 0)].concat(), int(5)] {
        assert_eq!(register_cose(&cose), Err(WebauthnError::Cbor));
    }
    // Unknown labels and text labels are skipped.
    let key = TestKey::es256();
    let PublicKey::Es256(p) = key.public() else {
        unreachable!()
    };
    let extended = map(&[
        (tstr("note"), map(&[(int(1), bstr(b"x"))])),
        (int(1), int(2)),
        (int(3), int(-7)),
        (int(-1), int(1)),
        (int(-2), bstr(&p[1..33])),
        (int(-3), bstr(&p[33..])),
        (int(-4), bstr(&[0; 32])),
    ]);
    assert_eq!(register_cose(&extended).unwrap().public_key, key.public());
}

// ---- attestation object shape and hostile CBOR ----

#[test]
fn attestation_object_shape_is_checked() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let auth = registration_auth_data(&key.cose(), FLAG_UP | FLAG_AT, 0);
    let fmt = (tstr("fmt"), tstr("none"));
    let stmt = (tstr("attStmt"), map(&[]));
    let data = (tstr("authData"), bstr(&auth));
    let cases = vec![
        map(&[stmt.clone(), data.clone()]),
        map(&[fmt.clone(), data.clone()]),
        map(&[fmt.clone(), stmt.clone()]),
        map(&[fmt.clone(), stmt.clone(), data.clone(), data.clone()]),
        map(&[fmt.clone(), fmt.clone(), stmt.clone(), data.clone()]),
        map(&[(tstr("fmt"), int(1)), stmt.clone(), data.clone()]),
        map(&[fmt.clone(), (tstr("attStmt"), head(4, 0)), data.clone()]),
        map(&[fmt.clone(), stmt.clone(), (tstr("authData"), tstr("text"))]),
        map(&[(int(1), tstr("none")), stmt.clone(), data.clone()]),
        [attestation_object(&auth), vec![0]].concat(),
        head(4, 3),
        vec![],
        vec![0xa3],
        // Indefinite-length map, and a reserved additional-information value.
        [vec![0xbf], tstr("fmt"), tstr("none"), vec![0xff]].concat(),
        vec![0xbc],
        // Text that is not UTF-8.
        map(&[
            (vec![0x63, 0x66, 0x6d, 0xff], tstr("none")),
            stmt.clone(),
            data.clone(),
        ]),
    ];
    for object in cases {
        assert_eq!(
            register(&challenge, &object),
            Err(WebauthnError::Cbor),
            "{object:02x?}"
        );
    }
    // Key order does not matter, unknown keys are skipped.
    let reordered = map(&[data, (tstr("epAtt"), head(7, 21)), stmt, fmt]);
    assert!(register(&challenge, &reordered).is_ok());
}

/// An attestation object whose attStmt holds `inner`.
fn with_statement(inner: Vec<u8>) -> Vec<u8> {
    let key = TestKey::es256();
    let auth = registration_auth_data(&key.cose(), FLAG_UP | FLAG_AT, 0);
    map(&[
        (tstr("fmt"), tstr("none")),
        (tstr("attStmt"), map(&[(tstr("x"), inner)])),
        (tstr("authData"), bstr(&auth)),
    ])
}

#[test]
fn hostile_cbor_is_refused_without_panic_or_allocation() {
    let challenge = Challenge::random();
    let nested = |depth: usize| [vec![0x81; depth], vec![0x00]].concat();
    assert!(register(&challenge, &with_statement(nested(10))).is_ok());
    for depth in [15, 100, 10_000] {
        let object = with_statement(nested(depth));
        let expected = if object.len() > MAX_ATTESTATION_OBJECT {
            WebauthnError::TooLarge("attestation object")
        } else {
            WebauthnError::Cbor
        };
        assert_eq!(register(&challenge, &object), Err(expected));
    }
    // Tags nest too.
    assert_eq!(
        register(
            &challenge,
            &with_statement([vec![0xc6; 50], vec![0]].concat())
        ),
        Err(WebauthnError::Cbor)
    );
    let huge = [
        head(2, u64::MAX),
        head(3, u64::MAX),
        head(4, u64::MAX),
        head(5, u64::MAX),
        head(5, u64::MAX / 2 + 1),
        head(4, 1 << 40),
        head(2, 1 << 31),
        head(5, 30),
    ];
    for declared in huge {
        assert_eq!(
            register(&challenge, &with_statement(declared.clone())),
            Err(WebauthnError::Cbor)
        );
        // The same lies at the top level and inside the authenticator data's key.
        assert_eq!(register(&challenge, &declared), Err(WebauthnError::Cbor));
        assert_eq!(register_cose(&declared), Err(WebauthnError::Cbor));
    }
    // Every kind of value can be skipped: floats, simple values, tags, negative integers.
    let mixed = [
        head(4, 8),
        vec![0xf9, 0x3c, 0x00],
        vec![0xfa, 0, 0, 0, 0],
        vec![0xfb, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![0xf5, 0xf8, 0x20],
        vec![0xc1, 0x1a, 0, 0, 0, 1],
        int(-1_000_000),
        tstr("ok"),
    ]
    .concat();
    assert!(register(&challenge, &with_statement(mixed)).is_ok());
}

#[test]
fn oversize_inputs_are_refused() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let padding = " ".repeat(MAX_CLIENT_DATA);
    let big_client = create(&format!(r#","pad":"{padding}""#));
    assert_eq!(
        verify_registration(&rp(), &CHALLENGE, &big_client, &valid_object(&key)),
        Err(WebauthnError::TooLarge("client data"))
    );
    let big_object = with_statement(bstr(&vec![0; MAX_ATTESTATION_OBJECT]));
    assert_eq!(
        register(&challenge, &big_object),
        Err(WebauthnError::TooLarge("attestation object"))
    );
    let client = client_data("webauthn.get", &challenge);
    let auth = auth_head("localhost", FLAG_UP, 0);
    let big_auth = [auth.clone(), vec![0; MAX_AUTHENTICATOR_DATA]].concat();
    let check = |client: &[u8], auth: &[u8], signature: &[u8]| {
        verify_assertion(
            &rp(),
            &challenge,
            &key.public(),
            0,
            &Assertion {
                client_data_json: client,
                authenticator_data: auth,
                signature,
            },
        )
    };
    assert_eq!(
        check(&client, &big_auth, &[0; 70]),
        Err(WebauthnError::TooLarge("authenticator data"))
    );
    assert_eq!(
        check(&client, &auth, &[0; MAX_SIGNATURE + 1]),
        Err(WebauthnError::TooLarge("signature"))
    );
    let big_get = client_data_with(
        "webauthn.get",
        &challenge.to_base64url(),
        ORIGIN,
        &format!(r#","pad":"{padding}""#),
    );
    assert_eq!(
        check(&big_get, &auth, &[0; 70]),
        Err(WebauthnError::TooLarge("client data"))
    );
}

// ---- no panics on damaged input ----

#[test]
fn every_truncation_is_refused() {
    for key in [TestKey::es256(), TestKey::ed25519()] {
        let challenge = Challenge::random();
        let object = valid_object(&key);
        assert!(register(&challenge, &object).is_ok());
        for len in 0..object.len() {
            assert!(
                register(&challenge, &object[..len]).is_err(),
                "length {len}"
            );
        }
        // Truncating inside the authenticator data (the object re-wrapped around the shorter bytes).
        let auth = registration_auth_data(&key.cose(), FLAG_UP | FLAG_AT, 0);
        for len in 0..auth.len() {
            let object = attestation_object(&auth[..len]);
            assert!(register(&challenge, &object).is_err(), "auth length {len}");
        }

        let client = client_data("webauthn.get", &challenge);
        let ext = map(&[(tstr("credProtect"), int(2))]);
        let auth = [auth_head("localhost", FLAG_UP | FLAG_ED, 1), ext].concat();
        let public = key.public();
        assert_eq!(
            assert_with(&key, &public, 0, &client, &auth, &challenge),
            Ok(1)
        );
        for len in 0..auth.len() {
            // Signed as truncated, so only the structure can refuse it.
            assert!(
                assert_with(&key, &public, 0, &client, &auth[..len], &challenge).is_err(),
                "assertion auth length {len}"
            );
        }
    }
}

#[test]
fn flipping_any_byte_never_panics() {
    let key = TestKey::es256();
    let challenge = Challenge::random();
    let client = client_data("webauthn.create", &challenge);
    let object = valid_object(&key);
    let mut accepted = 0;
    for i in 0..object.len() {
        for mask in [0x01, 0x02, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut damaged = object.clone();
            damaged[i] ^= mask;
            if verify_registration(&rp(), &challenge, &client, &damaged).is_ok() {
                accepted += 1;
            }
        }
    }
    // Flips in the AAGUID, credential id, counter, some flags and the key's coordinates still parse
    // (the signature is what catches a damaged key, at login); flips in the structure do not.
    assert!(accepted > 0 && accepted < object.len() * 7, "{accepted}");
    let rp_hash = digest(&SHA256, b"localhost");
    let at = object
        .windows(32)
        .position(|w| w == rp_hash.as_ref())
        .unwrap();
    for i in at..at + 32 {
        let mut damaged = object.clone();
        damaged[i] ^= 0x01;
        assert_eq!(
            verify_registration(&rp(), &challenge, &client, &damaged),
            Err(WebauthnError::RpId)
        );
    }

    // In an assertion the signature covers every byte: each flip is refused.
    let get = client_data("webauthn.get", &challenge);
    let auth = auth_head("localhost", FLAG_UP, 9);
    let signature = key.sign(&[&auth[..], digest(&SHA256, &get).as_ref()].concat());
    for i in 0..auth.len() + signature.len() + get.len() {
        let (mut a, mut s, mut c) = (auth.clone(), signature.clone(), get.clone());
        match i {
            i if i < a.len() => a[i] ^= 0x04,
            i if i < a.len() + s.len() => s[i - a.len()] ^= 0x04,
            i => c[i - a.len() - s.len()] ^= 0x04,
        }
        let result = verify_assertion(
            &rp(),
            &challenge,
            &key.public(),
            0,
            &Assertion {
                client_data_json: &c,
                authenticator_data: &a,
                signature: &s,
            },
        );
        assert!(result.is_err(), "byte {i}");
    }
}

#[test]
fn random_bytes_never_panic() {
    // A cheap xorshift fuzz over the CBOR reader's entry points with CBOR-ish random input.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let challenge = Challenge::random();
    for _ in 0..20_000 {
        let len = (next() % 96) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = register(&challenge, &bytes);
        let _ = register_cose(&bytes);
        let _ = Cbor::new(&bytes).skip(0);
    }
}
