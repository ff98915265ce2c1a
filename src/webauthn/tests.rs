//! Test vectors are built here from keys generated with ring, hand-encoded as the CBOR an authenticator
//! sends, so every refusal can be produced by changing exactly one thing in a valid message.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::*;

const ORIGIN: &str = "https://localhost:8443";

fn rp() -> RelyingParty {
    RelyingParty {
        id: "localhost".into(),
        origin: ORIGIN.into(),
    }
}

// ---- a tiny CBOR encoder (shortest heads, definite lengths) ----

fn head(major: u8, n: u64) -> Vec<u8> {
    let m = major << 5;
    match n {
        0..=23 => vec![m | n as u8],
        24..=0xff => vec![m | 24, n as u8],
        0x100..=0xffff => [&[m | 25][..], &(n as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[m | 26][..], &(n as u32).to_be_bytes()].concat(),
        _ => [&[m | 27][..], &n.to_be_bytes()].concat(),
    }
}

fn int(n: i64) -> Vec<u8> {
    if n >= 0 {
        head(0, n as u64)
    } else {
        head(1, (-1 - n) as u64)
    }
}

fn bstr(bytes: &[u8]) -> Vec<u8> {
    [head(2, bytes.len() as u64), bytes.to_vec()].concat()
}

fn tstr(text: &str) -> Vec<u8> {
    [head(3, text.len() as u64), text.as_bytes().to_vec()].concat()
}

fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = head(5, entries.len() as u64);
    for (key, value) in entries {
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out
}

// ---- keys ----

enum TestKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl TestKey {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Self::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    fn public(&self) -> PublicKey {
        match self {
            Self::Es256(k) => PublicKey::Es256(k.public_key().as_ref().try_into().unwrap()),
            Self::Ed25519(k) => PublicKey::Ed25519(k.public_key().as_ref().try_into().unwrap()),
        }
    }

    fn cose(&self) -> Vec<u8> {
        match self.public() {
            PublicKey::Es256(p) => cose_ec2(-7, 1, &p[1..33], &p[33..]),
            PublicKey::Ed25519(k) => map(&[
                (int(1), int(1)),
                (int(3), int(-8)),
                (int(-1), int(6)),
                (int(-2), bstr(&k)),
            ]),
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256(k) => k
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(k) => k.sign(message).as_ref().to_vec(),
        }
    }
}

fn cose_ec2(alg: i64, crv: i64, x: &[u8], y: &[u8]) -> Vec<u8> {
    map(&[
        (int(1), int(2)),
        (int(3), int(alg)),
        (int(-1), int(crv)),
        (int(-2), bstr(x)),
        (int(-3), bstr(y)),
    ])
}

// ---- messages ----

fn client_data(kind: &str, challenge: &Challenge) -> Vec<u8> {
    client_data_with(kind, &challenge.to_base64url(), ORIGIN, "")
}

/// `extra` is spliced in as further members, e.g. `,"crossOrigin":true`.
fn client_data_with(kind: &str, challenge: &str, origin: &str, extra: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{origin}"{extra}}}"#)
        .into_bytes()
}

fn auth_head(rp_id: &str, flags: u8, count: u32) -> Vec<u8> {
    let mut data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
    data.push(flags);
    data.extend_from_slice(&count.to_be_bytes());
    data
}

const CREDENTIAL_ID: &[u8] = b"credential-id-0123456789";

fn attested(cose: &[u8]) -> Vec<u8> {
    let mut data = vec![0xaa; 16];
    data.extend_from_slice(&(CREDENTIAL_ID.len() as u16).to_be_bytes());
    data.extend_from_slice(CREDENTIAL_ID);
    data.extend_from_slice(cose);
    data
}

fn registration_auth_data(cose: &[u8], flags: u8, count: u32) -> Vec<u8> {
    [auth_head("localhost", flags, count), attested(cose)].concat()
}

fn attestation_object(auth_data: &[u8]) -> Vec<u8> {
    map(&[
        (tstr("fmt"), tstr("none")),
        (tstr("attStmt"), map(&[])),
        (tstr("authData"), bstr(auth_data)),
    ])
}

fn register(challenge: &Challenge, object: &[u8]) -> Result<NewCredential, WebauthnError> {
    verify_registration(
        &rp(),
        challenge,
        &client_data("webauthn.create", challenge),
        object,
    )
}

fn valid_object(key: &TestKey) -> Vec<u8> {
    attestation_object(&registration_auth_data(
        &key.cose(),
        FLAG_UP | FLAG_UV | FLAG_AT,
        0,
    ))
}

/// Signs `auth_data || SHA-256(client_data)` as an authenticator does, and verifies.
fn assert_with(
    key: &TestKey,
    stored: &PublicKey,
    stored_count: u32,
    client_data: &[u8],
    auth_data: &[u8],
    challenge: &Challenge,
) -> Result<u32, WebauthnError> {
    let message = [auth_data, digest(&SHA256, client_data).as_ref()].concat();
    let signature = key.sign(&message);
    verify_assertion(
        &rp(),
        challenge,
        stored,
        stored_count,
        &Assertion {
            client_data_json: client_data,
            authenticator_data: auth_data,
            signature: &signature,
        },
    )
}

fn login(key: &TestKey, flags: u8, count: u32, stored_count: u32) -> Result<u32, WebauthnError> {
    let challenge = Challenge::random();
    assert_with(
        key,
        &key.public(),
        stored_count,
        &client_data("webauthn.get", &challenge),
        &auth_head("localhost", flags, count),
        &challenge,
    )
}

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

fn register_with_client(client: &[u8]) -> Result<NewCredential, WebauthnError> {
    let key = TestKey::es256();
    verify_registration(&rp(), &CHALLENGE, client, &valid_object(&key))
}

const CHALLENGE: Challenge = Challenge([7; 32]);

fn create(extra: &str) -> Vec<u8> {
    client_data_with("webauthn.create", &CHALLENGE.to_base64url(), ORIGIN, extra)
}

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

// ---- stored keys and challenges ----

#[test]
fn stored_keys_round_trip_and_refuse_damage() {
    for key in [TestKey::es256().public(), TestKey::ed25519().public()] {
        let stored = key.to_stored();
        assert_eq!(PublicKey::from_stored(&stored), Ok(key.clone()));
        for len in 0..stored.len() {
            assert_eq!(
                PublicKey::from_stored(&stored[..len]),
                Err(WebauthnError::StoredKey)
            );
        }
        let longer = [stored.clone(), vec![0]].concat();
        assert_eq!(
            PublicKey::from_stored(&longer),
            Err(WebauthnError::StoredKey)
        );
        for tag in [0, 3, 0xff] {
            let mut retagged = stored.clone();
            retagged[0] = tag;
            assert_eq!(
                PublicKey::from_stored(&retagged),
                Err(WebauthnError::StoredKey)
            );
        }
    }
    let es = TestKey::es256().public().to_stored();
    assert_eq!((es[0], es.len(), es[1]), (1, 66, 0x04));
    let mut compressed = es.clone();
    compressed[1] = 0x02;
    assert_eq!(
        PublicKey::from_stored(&compressed),
        Err(WebauthnError::StoredKey)
    );
    let ed = TestKey::ed25519().public().to_stored();
    assert_eq!((ed[0], ed.len()), (2, 33));
    // An Ed25519 key's bytes under the ES256 tag (and the reverse) are refused by length.
    assert_eq!(
        PublicKey::from_stored(&[&[1][..], &ed[1..]].concat()),
        Err(WebauthnError::StoredKey)
    );
    assert_eq!(
        PublicKey::from_stored(&[&[2][..], &es[1..]].concat()),
        Err(WebauthnError::StoredKey)
    );
}

#[test]
fn challenges_are_random_unpadded_and_not_printed() {
    let (a, b) = (Challenge::random(), Challenge::random());
    assert_ne!(a, b);
    let text = a.to_base64url();
    assert_eq!(text.len(), 43);
    assert!(text
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    assert_eq!(
        data_encoding::BASE64URL_NOPAD
            .decode(text.as_bytes())
            .unwrap(),
        a.as_bytes()
    );
    assert_eq!(Challenge::from_bytes(*a.as_bytes()), a);
    assert_eq!(format!("{a:?}"), "Challenge(..)");
}

#[test]
fn error_messages_carry_no_bytes() {
    for error in [
        WebauthnError::Signature,
        WebauthnError::UnsupportedKey,
        WebauthnError::TooLarge("signature"),
        WebauthnError::Counter,
    ] {
        let text = error.to_string();
        assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
    }
}
