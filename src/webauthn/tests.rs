//! Test vectors are built here from keys generated with ring, hand-encoded as the CBOR an authenticator
//! sends, so every refusal can be produced by changing exactly one thing in a valid message.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use super::*;

mod ceremonies;
mod hostile;

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

// ---- client data (shared by the ceremonies and the hostile inputs) ----

fn register_with_client(client: &[u8]) -> Result<NewCredential, WebauthnError> {
    let key = TestKey::es256();
    verify_registration(&rp(), &CHALLENGE, client, &valid_object(&key))
}

const CHALLENGE: Challenge = Challenge([7; 32]);

fn create(extra: &str) -> Vec<u8> {
    client_data_with("webauthn.create", &CHALLENGE.to_base64url(), ORIGIN, extra)
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
