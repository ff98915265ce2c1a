//! WebAuthn (passkey) verification, pure and free of I/O: W3C WebAuthn Level 2/3, §7.1 (registering a
//! credential) and §7.2 (verifying an assertion), for ES256 (P-256) and Ed25519 keys.
//!
//! A passkey replaces the TOTP code at login; the passphrase stays the first factor. The caller stores
//! challenges (single use, expiring), credentials and counters, and checks that an assertion's
//! credential id belongs to the worker logging in; this module only decides whether bytes the browser
//! sent are a valid answer to a challenge.
//!
//! Attestation is not verified: the relay asks for attestation "none" (passkeys from synced providers
//! give "none" anyway) and trusts no authenticator vendor. What proves the worker is the passphrase plus
//! possession of the key registered while logged in, not the make of the authenticator. So any `fmt` is
//! accepted and `attStmt` is only checked to be a well-formed CBOR map.
//!
//! All input is hostile: every length is checked before it is used, CBOR nesting is bounded, and no input
//! can make these functions panic (the tests truncate and flip every byte of valid messages).

use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ED25519};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

/// Browsers send a few hundred bytes of clientDataJSON; anything far larger is not a browser.
const MAX_CLIENT_DATA: usize = 4 * 1024;
/// A "none" attestation object is about 200 bytes; "packed" with a certificate chain a few KiB.
const MAX_ATTESTATION_OBJECT: usize = 16 * 1024;
const MAX_AUTHENTICATOR_DATA: usize = 4 * 1024;
/// A DER ECDSA P-256 signature is at most 72 bytes, an Ed25519 signature 64.
const MAX_SIGNATURE: usize = 128;
/// §6.1: credentialIdLength is at most 1023.
const MAX_CREDENTIAL_ID: usize = 1023;
/// Deepest CBOR nesting accepted in skipped values (attStmt, extensions); real ones are 3 deep.
const MAX_CBOR_DEPTH: usize = 16;

/// rpIdHash (32) + flags (1) + signCount (4).
const AUTH_DATA_HEAD: usize = 37;
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// Tags of `PublicKey::to_stored`.
const STORED_ES256: u8 = 1;
const STORED_ED25519: u8 = 2;

/// Who we are to the authenticator: the RP ID (a host name, e.g. "localhost" or "relay.example") and the
/// exact web origin the pages are served from (e.g. "https://localhost:8443").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
}

/// 32 random bytes, single use; the caller stores and expires them.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge([u8; 32]);

impl Challenge {
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let bytes: [u8; 32] = ring::rand::generate(&rng)
            .expect("the system random source works")
            .expose();
        Self(bytes)
    }

    /// A challenge the caller kept as bytes (e.g. in its store) and now verifies an answer against.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Unpadded base64url, as clientDataJSON carries it.
    pub fn to_base64url(&self) -> String {
        data_encoding::BASE64URL_NOPAD.encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A challenge is not a secret for long, but logs have no use for it either.
impl std::fmt::Debug for Challenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Challenge(..)")
    }
}

/// A credential's public key, as stored: `to_stored()` gives one algorithm byte followed by the key
/// (1 = ES256: 65-byte uncompressed P-256 point 0x04||x||y; 2 = Ed25519: 32 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Es256([u8; 65]),
    Ed25519([u8; 32]),
}

impl PublicKey {
    pub fn to_stored(&self) -> Vec<u8> {
        let (tag, key): (u8, &[u8]) = match self {
            Self::Es256(point) => (STORED_ES256, point),
            Self::Ed25519(key) => (STORED_ED25519, key),
        };
        let mut stored = Vec::with_capacity(1 + key.len());
        stored.push(tag);
        stored.extend_from_slice(key);
        stored
    }

    /// Parses `to_stored` output back; a wrong tag, a wrong length or a P-256 point that is not
    /// uncompressed is refused (the store is trusted, but a damaged row must not become a key).
    pub fn from_stored(bytes: &[u8]) -> Result<Self, WebauthnError> {
        match bytes.split_first() {
            Some((&STORED_ES256, point)) if point.first() == Some(&0x04) => point
                .try_into()
                .map(Self::Es256)
                .map_err(|_| WebauthnError::StoredKey),
            Some((&STORED_ED25519, key)) => key
                .try_into()
                .map(Self::Ed25519)
                .map_err(|_| WebauthnError::StoredKey),
            _ => Err(WebauthnError::StoredKey),
        }
    }

    /// Checks `signature` over `message` with this key, as browsers send it (DER for ECDSA).
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), WebauthnError> {
        let result = match self {
            Self::Es256(point) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point).verify(message, signature)
            }
            Self::Ed25519(key) => UnparsedPublicKey::new(&ED25519, key).verify(message, signature),
        };
        result.map_err(|_| WebauthnError::Signature)
    }
}

/// What a verified registration yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCredential {
    pub credential_id: Vec<u8>,
    pub public_key: PublicKey,
    pub sign_count: u32,
    pub user_verified: bool,
}

/// The browser's answer to navigator.credentials.get(): raw bytes of response.clientDataJSON,
/// response.authenticatorData and response.signature.
pub struct Assertion<'a> {
    pub client_data_json: &'a [u8],
    pub authenticator_data: &'a [u8],
    pub signature: &'a [u8],
}

/// Why an answer was refused. The messages name what was wrong, never key or signature bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebauthnError {
    #[error("the {0} is too large")]
    TooLarge(&'static str),
    #[error("the client data is not the JSON object a browser sends")]
    ClientData,
    #[error("the client data has the wrong type for this ceremony")]
    Type,
    #[error("the client data does not carry the challenge that was issued")]
    Challenge,
    #[error("the client data comes from another origin")]
    Origin,
    #[error("the ceremony ran in a cross-origin frame")]
    CrossOrigin,
    #[error("the authenticator data is for another relying party")]
    RpId,
    #[error("the authenticator did not report the user present")]
    UserNotPresent,
    #[error("the authenticator data carries no attested credential")]
    NoCredentialData,
    #[error("the authenticator data is malformed")]
    AuthData,
    #[error("the attestation object is not well-formed CBOR of the expected shape")]
    Cbor,
    #[error("the credential key type or algorithm is not supported")]
    UnsupportedKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the signature counter did not increase (a cloned authenticator?)")]
    Counter,
    #[error("the stored public key is malformed")]
    StoredKey,
}

/// §7.1: verifies the browser's answer to navigator.credentials.create(), the raw bytes of
/// response.clientDataJSON and response.attestationObject. Attestation is not verified (module docs).
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &Challenge,
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Result<NewCredential, WebauthnError> {
    check_size(client_data_json, MAX_CLIENT_DATA, "client data")?;
    check_size(
        attestation_object,
        MAX_ATTESTATION_OBJECT,
        "attestation object",
    )?;
    check_client_data(rp, challenge, client_data_json, "webauthn.create")?;
    let auth_data = attestation_auth_data(attestation_object)?;
    let head = AuthDataHead::parse(auth_data)?;
    head.check(rp)?;
    if head.flags & FLAG_AT == 0 {
        return Err(WebauthnError::NoCredentialData);
    }
    let (credential_id, public_key) = attested_credential(head.flags, head.rest)?;
    Ok(NewCredential {
        credential_id: credential_id.to_vec(),
        public_key,
        sign_count: head.sign_count,
        user_verified: head.flags & FLAG_UV != 0,
    })
}

/// §7.2: verifies an assertion against a stored key; returns the new signature counter to store.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &Challenge,
    key: &PublicKey,
    stored_sign_count: u32,
    assertion: &Assertion<'_>,
) -> Result<u32, WebauthnError> {
    check_size(assertion.client_data_json, MAX_CLIENT_DATA, "client data")?;
    check_size(
        assertion.authenticator_data,
        MAX_AUTHENTICATOR_DATA,
        "authenticator data",
    )?;
    check_size(assertion.signature, MAX_SIGNATURE, "signature")?;
    check_client_data(rp, challenge, assertion.client_data_json, "webauthn.get")?;
    let head = AuthDataHead::parse(assertion.authenticator_data)?;
    head.check(rp)?;
    assertion_tail(head.flags, head.rest)?;
    // The signed message is authenticatorData || SHA-256(clientDataJSON), so both are covered.
    let client_hash = digest(&SHA256, assertion.client_data_json);
    let mut message = Vec::with_capacity(assertion.authenticator_data.len() + 32);
    message.extend_from_slice(assertion.authenticator_data);
    message.extend_from_slice(client_hash.as_ref());
    key.verify(&message, assertion.signature)?;
    check_counter(stored_sign_count, head.sign_count)?;
    Ok(head.sign_count)
}

fn check_size(bytes: &[u8], max: usize, what: &'static str) -> Result<(), WebauthnError> {
    if bytes.len() > max {
        return Err(WebauthnError::TooLarge(what));
    }
    Ok(())
}

/// §7.2 step 22: a counter that does not grow means two copies of one key exist. Many passkeys never
/// count (always 0); both zero is allowed.
fn check_counter(stored: u32, new: u32) -> Result<(), WebauthnError> {
    if (stored != 0 || new != 0) && new <= stored {
        return Err(WebauthnError::Counter);
    }
    Ok(())
}

/// The members of clientDataJSON we check; browsers add others, which are ignored. A duplicated
/// member we read is refused (serde), so two parsers cannot see two different challenges.
#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: Option<bool>,
    #[serde(rename = "topOrigin", default, deserialize_with = "present")]
    top_origin: bool,
}

/// True whenever the member is there, whatever its value (even null).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// §7.1 steps 5-10 / §7.2 steps 10-15: type, challenge, origin, and no embedding in another site.
fn check_client_data(
    rp: &RelyingParty,
    challenge: &Challenge,
    json: &[u8],
    kind: &str,
) -> Result<(), WebauthnError> {
    let text = std::str::from_utf8(json).map_err(|_| WebauthnError::ClientData)?;
    let data: ClientData = serde_json::from_str(text).map_err(|_| WebauthnError::ClientData)?;
    if data.kind != kind {
        return Err(WebauthnError::Type);
    }
    if !equal_in_constant_time(
        data.challenge.as_bytes(),
        challenge.to_base64url().as_bytes(),
    ) {
        return Err(WebauthnError::Challenge);
    }
    if data.origin != rp.origin {
        return Err(WebauthnError::Origin);
    }
    // A page of ours framed by another site must not log anyone in.
    if data.cross_origin == Some(true) || data.top_origin {
        return Err(WebauthnError::CrossOrigin);
    }
    Ok(())
}

/// The challenge's length is public; its bytes are compared without an early exit.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The fixed head of authenticatorData (§6.1) and what follows it.
struct AuthDataHead<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    rest: &'a [u8],
}

impl<'a> AuthDataHead<'a> {
    fn parse(data: &'a [u8]) -> Result<Self, WebauthnError> {
        if data.len() < AUTH_DATA_HEAD {
            return Err(WebauthnError::AuthData);
        }
        let (head, rest) = data.split_at(AUTH_DATA_HEAD);
        Ok(Self {
            rp_id_hash: &head[..32],
            flags: head[32],
            sign_count: u32::from_be_bytes([head[33], head[34], head[35], head[36]]),
            rest,
        })
    }

    /// The checks both ceremonies share: our RP ID, the user present, backup flags consistent.
    fn check(&self, rp: &RelyingParty) -> Result<(), WebauthnError> {
        if self.rp_id_hash != digest(&SHA256, rp.id.as_bytes()).as_ref() {
            return Err(WebauthnError::RpId);
        }
        if self.flags & FLAG_UP == 0 {
            return Err(WebauthnError::UserNotPresent);
        }
        // Level 3: "backed up" without "backup eligible" is a contradiction.
        if self.flags & FLAG_BS != 0 && self.flags & FLAG_BE == 0 {
            return Err(WebauthnError::AuthData);
        }
        Ok(())
    }
}

/// In an assertion nothing follows the head but, when ED is set, exactly one extensions map. Attested
/// credential data belongs to registration only.
fn assertion_tail(flags: u8, rest: &[u8]) -> Result<(), WebauthnError> {
    if flags & FLAG_AT != 0 {
        return Err(WebauthnError::AuthData);
    }
    let mut reader = Cbor::new(rest);
    extensions(flags, &mut reader)
}

/// When ED is set, one extensions map must come next (and is skipped: we ask for no extensions);
/// after it, or without ED, nothing may follow.
fn extensions(flags: u8, reader: &mut Cbor<'_>) -> Result<(), WebauthnError> {
    if flags & FLAG_ED != 0 {
        if reader.peek_major() != Some(MAJOR_MAP) {
            return Err(WebauthnError::AuthData);
        }
        reader.skip(0).map_err(|_| WebauthnError::AuthData)?;
    }
    if !reader.at_end() {
        return Err(WebauthnError::AuthData);
    }
    Ok(())
}

/// attestationObject (§6.5): a CBOR map {"fmt": text, "attStmt": map, "authData": bytes}. `fmt` and
/// `attStmt` are only checked for shape (attestation is not verified, see the module docs).
fn attestation_auth_data(object: &[u8]) -> Result<&[u8], WebauthnError> {
    let mut reader = Cbor::new(object);
    let entries = reader.map_len()?;
    let (mut fmt, mut att_stmt, mut auth_data) = (false, false, None);
    for _ in 0..entries {
        match reader.text()? {
            "fmt" if !fmt => {
                reader.text()?;
                fmt = true;
            }
            "attStmt" if !att_stmt => {
                if reader.peek_major() != Some(MAJOR_MAP) {
                    return Err(WebauthnError::Cbor);
                }
                reader.skip(0)?;
                att_stmt = true;
            }
            "authData" if auth_data.is_none() => auth_data = Some(reader.bytes()?),
            "fmt" | "attStmt" | "authData" => return Err(WebauthnError::Cbor),
            _ => reader.skip(0)?,
        }
    }
    if !reader.at_end() || !fmt || !att_stmt {
        return Err(WebauthnError::Cbor);
    }
    auth_data.ok_or(WebauthnError::Cbor)
}

/// Attested credential data (§6.5.1): aaguid (16), credentialIdLength (u16 BE), credentialId,
/// credentialPublicKey (COSE_Key), then extensions only when ED is set.
fn attested_credential(flags: u8, data: &[u8]) -> Result<(&[u8], PublicKey), WebauthnError> {
    let rest = data.get(16..).ok_or(WebauthnError::AuthData)?;
    let (length, rest) = rest
        .split_first_chunk::<2>()
        .ok_or(WebauthnError::AuthData)?;
    let length = usize::from(u16::from_be_bytes(*length));
    if length == 0 || length > MAX_CREDENTIAL_ID || rest.len() < length {
        return Err(WebauthnError::AuthData);
    }
    let (credential_id, rest) = rest.split_at(length);
    let mut reader = Cbor::new(rest);
    let public_key = cose_key(&mut reader)?;
    extensions(flags, &mut reader)?;
    Ok((credential_id, public_key))
}

/// A COSE_Key parameter's value as far as we care: an integer, a byte string, or something else
/// (kept only so that a key of another type is refused as unsupported, not as malformed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Param<'a> {
    Int(i128),
    Bytes(&'a [u8]),
    Other,
}

/// The members of a COSE_Key (RFC 9052/9053) we read; every label at most once.
#[derive(Default)]
struct CoseKey<'a> {
    kty: Option<Param<'a>>,
    alg: Option<Param<'a>>,
    crv: Option<Param<'a>>,
    x: Option<Param<'a>>,
    y: Option<Param<'a>>,
}

const COSE_KTY: i128 = 1;
const COSE_ALG: i128 = 3;
const COSE_CRV: i128 = -1;
const COSE_X: i128 = -2;
const COSE_Y: i128 = -3;
const KTY_OKP: Param<'static> = Param::Int(1);
const KTY_EC2: Param<'static> = Param::Int(2);
const ALG_ES256: Param<'static> = Param::Int(-7);
const ALG_EDDSA: Param<'static> = Param::Int(-8);
const CRV_P256: Param<'static> = Param::Int(1);
const CRV_ED25519: Param<'static> = Param::Int(6);

/// Reads one COSE_Key map and accepts only ES256 on P-256 and EdDSA on Ed25519, with `alg` present.
fn cose_key(reader: &mut Cbor<'_>) -> Result<PublicKey, WebauthnError> {
    let entries = reader.map_len()?;
    let mut key = CoseKey::default();
    for _ in 0..entries {
        if reader.peek_major() == Some(MAJOR_TEXT) {
            // Text labels are private-use; none of ours.
            reader.text()?;
            reader.skip(0)?;
            continue;
        }
        let slot = match reader.int()? {
            COSE_KTY => &mut key.kty,
            COSE_ALG => &mut key.alg,
            COSE_CRV => &mut key.crv,
            COSE_X => &mut key.x,
            COSE_Y => &mut key.y,
            _ => {
                reader.skip(0)?;
                continue;
            }
        };
        if slot.replace(reader.param()?).is_some() {
            return Err(WebauthnError::Cbor);
        }
    }
    key.into_public_key()
}

impl CoseKey<'_> {
    fn into_public_key(self) -> Result<PublicKey, WebauthnError> {
        match (self.kty, self.alg, self.crv) {
            (Some(KTY_EC2), Some(ALG_ES256), Some(CRV_P256)) => {
                let x = exact(self.x)?;
                let y = exact(self.y)?;
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                Ok(PublicKey::Es256(point))
            }
            (Some(KTY_OKP), Some(ALG_EDDSA), Some(CRV_ED25519)) if self.y.is_none() => {
                Ok(PublicKey::Ed25519(*exact(self.x)?))
            }
            _ => Err(WebauthnError::UnsupportedKey),
        }
    }
}

/// A coordinate of exactly 32 bytes (leading zeros are kept in COSE, so the length is fixed).
fn exact(coordinate: Option<Param<'_>>) -> Result<&[u8; 32], WebauthnError> {
    match coordinate {
        Some(Param::Bytes(bytes)) => bytes.try_into().map_err(|_| WebauthnError::UnsupportedKey),
        _ => Err(WebauthnError::UnsupportedKey),
    }
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const MAJOR_SIMPLE: u8 = 7;

/// A strict reader of the CBOR (RFC 8949) WebAuthn uses: definite lengths only (CTAP2 canonical
/// encoding has no indefinite ones), text must be UTF-8, every declared length and count is checked
/// against the bytes left before anything is taken, and nesting is bounded. It borrows; it never
/// allocates.
struct Cbor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cbor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn peek_major(&self) -> Option<u8> {
        self.data.get(self.pos).map(|b| b >> 5)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], WebauthnError> {
        let n = usize::try_from(n).map_err(|_| WebauthnError::Cbor)?;
        if n > self.remaining() {
            return Err(WebauthnError::Cbor);
        }
        let taken = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(taken)
    }

    /// One item's head: its major type and argument. Indefinite lengths and reserved values refused.
    fn head(&mut self) -> Result<(u8, u64), WebauthnError> {
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        let argument = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.array::<2>()?)),
            26 => u64::from(u32::from_be_bytes(self.array::<4>()?)),
            27 => u64::from_be_bytes(self.array::<8>()?),
            _ => return Err(WebauthnError::Cbor),
        };
        Ok((major, argument))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WebauthnError> {
        self.take(N as u64)?
            .try_into()
            .map_err(|_| WebauthnError::Cbor)
    }

    fn expect(&mut self, major: u8) -> Result<u64, WebauthnError> {
        match self.head()? {
            (found, argument) if found == major => Ok(argument),
            _ => Err(WebauthnError::Cbor),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], WebauthnError> {
        let length = self.expect(MAJOR_BYTES)?;
        self.take(length)
    }

    fn text(&mut self) -> Result<&'a str, WebauthnError> {
        let length = self.expect(MAJOR_TEXT)?;
        std::str::from_utf8(self.take(length)?).map_err(|_| WebauthnError::Cbor)
    }

    /// An integer of either sign; i128 holds CBOR's whole range (-2^64 ..= 2^64-1).
    fn int(&mut self) -> Result<i128, WebauthnError> {
        match self.head()? {
            (MAJOR_UNSIGNED, n) => Ok(i128::from(n)),
            (MAJOR_NEGATIVE, n) => Ok(-1 - i128::from(n)),
            _ => Err(WebauthnError::Cbor),
        }
    }

    /// A COSE parameter value: an integer or byte string is returned, anything else skipped.
    fn param(&mut self) -> Result<Param<'a>, WebauthnError> {
        match self.peek_major() {
            Some(MAJOR_UNSIGNED | MAJOR_NEGATIVE) => self.int().map(Param::Int),
            Some(MAJOR_BYTES) => self.bytes().map(Param::Bytes),
            _ => self.skip(0).map(|()| Param::Other),
        }
    }

    /// A map's entry count; each entry needs at least two bytes, so a larger count is a lie.
    fn map_len(&mut self) -> Result<u64, WebauthnError> {
        let entries = self.expect(MAJOR_MAP)?;
        self.check_count(entries, 2)?;
        Ok(entries)
    }

    fn check_count(&self, count: u64, bytes_each: u64) -> Result<(), WebauthnError> {
        match count.checked_mul(bytes_each) {
            Some(needed) if needed <= self.remaining() as u64 => Ok(()),
            _ => Err(WebauthnError::Cbor),
        }
    }

    /// Skips one well-formed item of any type. Every head consumes a byte, so the work is bounded by
    /// the input's length and the recursion by `MAX_CBOR_DEPTH`.
    fn skip(&mut self, depth: usize) -> Result<(), WebauthnError> {
        if depth >= MAX_CBOR_DEPTH {
            return Err(WebauthnError::Cbor);
        }
        match self.head()? {
            (MAJOR_UNSIGNED | MAJOR_NEGATIVE | MAJOR_SIMPLE, _) => Ok(()),
            (MAJOR_BYTES, length) => self.take(length).map(drop),
            (MAJOR_TEXT, length) => std::str::from_utf8(self.take(length)?)
                .map(drop)
                .map_err(|_| WebauthnError::Cbor),
            (MAJOR_ARRAY, count) => self.skip_items(count, 1, depth),
            (MAJOR_MAP, entries) => self.skip_items(entries, 2, depth),
            (MAJOR_TAG, _) => self.skip(depth + 1),
            _ => Err(WebauthnError::Cbor),
        }
    }

    fn skip_items(&mut self, count: u64, per: u64, depth: usize) -> Result<(), WebauthnError> {
        self.check_count(count, per)?;
        for _ in 0..count * per {
            self.skip(depth + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
