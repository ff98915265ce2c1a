//! Cryptography in one place: age sealing (X25519 recipients, interoperable with the reference `age`
//! CLI), identities wrapped with age scrypt under a worker's passphrase, the server's own age key,
//! argon2id passphrase hashes, random identifiers and tokens.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Decrypted bytes; wiped when dropped.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// Encrypts `plaintext` to every recipient as a binary age file.
pub fn seal(recipients: &[x25519::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::Crypto("no recipients to seal to".into()));
    }
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| Error::Crypto(e.to_string()))?;
    let mut sealed = Vec::with_capacity(plaintext.len() + 256);
    let mut writer = encryptor.wrap_output(&mut sealed)?;
    writer.write_all(plaintext)?;
    writer.finish()?;
    Ok(sealed)
}

/// Decrypts an age file with one identity. Fails for any identity the file was not sealed to.
pub fn open(identity: &dyn age::Identity, sealed: &[u8]) -> Result<Plaintext> {
    open_with_any(std::iter::once(identity), sealed)
}

/// Decrypts an age file with whichever of the identities it was sealed to.
pub fn open_with_any<'a>(
    identities: impl Iterator<Item = &'a dyn age::Identity>,
    sealed: &[u8],
) -> Result<Plaintext> {
    // age's own error texts are not formatted: some of them panic on edge values (ExcessiveWork).
    let decryptor = age::Decryptor::new_buffered(sealed)
        .map_err(|_| Error::Crypto("not a readable age file".into()))?;
    let mut reader = decryptor
        .decrypt(identities)
        .map_err(|_| Error::Crypto("no matching identity, or too much work demanded".into()))?;
    let mut plaintext = Zeroizing::new(Vec::with_capacity(sealed.len()));
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| Error::Crypto("the age file is damaged".into()))?;
    Ok(plaintext)
}

pub fn parse_recipient(text: &str) -> Result<x25519::Recipient> {
    x25519::Recipient::from_str(text.trim())
        .map_err(|_| Error::invalid("not an age X25519 recipient (age1…)"))
}

pub fn parse_identity(text: &str) -> Result<x25519::Identity> {
    // An identity file may hold comments (age-keygen writes two); take the first key line.
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with("AGE-SECRET-KEY-"))
        .and_then(|line| x25519::Identity::from_str(line).ok())
        .ok_or_else(|| Error::invalid("no age X25519 identity (AGE-SECRET-KEY-1…) found"))
}

/// A worker's identities: the current one (new messages are sealed to it) first, then older ones kept
/// only to open messages sealed before a rotation. As text it is a standard age identity file, so the
/// reference `age -d -i` reads it too.
#[derive(Clone)]
pub struct Keyring {
    identities: Vec<x25519::Identity>,
}

impl Keyring {
    pub fn single(identity: x25519::Identity) -> Self {
        Self {
            identities: vec![identity],
        }
    }

    /// Every `AGE-SECRET-KEY-1…` line of an identity file, in order; comments and blank lines skipped.
    pub fn parse(text: &str) -> Result<Self> {
        let identities = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                x25519::Identity::from_str(line)
                    .map_err(|_| Error::invalid("an identity line is not an age X25519 identity"))
            })
            .collect::<Result<Vec<_>>>()?;
        if identities.is_empty() {
            return Err(Error::invalid(
                "no age X25519 identity (AGE-SECRET-KEY-1…) found",
            ));
        }
        Ok(Self { identities })
    }

    /// The identity new messages are sealed to.
    pub fn current(&self) -> &x25519::Identity {
        &self.identities[0]
    }

    /// A new keyring whose current identity is freshly generated; this one's identities follow it.
    pub fn rotated(&self) -> Self {
        let mut identities = vec![x25519::Identity::generate()];
        identities.extend(self.identities.iter().cloned());
        Self { identities }
    }

    pub fn len(&self) -> usize {
        self.identities.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Opens an age file sealed to any identity of the ring.
    pub fn open(&self, sealed: &[u8]) -> Result<Plaintext> {
        open_with_any(
            self.identities.iter().map(|i| i as &dyn age::Identity),
            sealed,
        )
    }

    /// The ring as an age identity file, one `AGE-SECRET-KEY-1…` line per identity, current first.
    pub fn to_identity_file(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::new());
        for identity in &self.identities {
            text.push_str(identity.to_string().expose_secret());
            text.push('\n');
        }
        text
    }
}

/// Seals a keyring under a passphrase with age scrypt; the result is a standard age file.
pub fn wrap_keyring(
    keyring: &Keyring,
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<Vec<u8>> {
    let mut recipient = age::scrypt::Recipient::new(passphrase.clone());
    recipient.set_work_factor(work_factor);
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .map_err(|e| Error::Crypto(e.to_string()))?;
    let mut wrapped = Vec::new();
    let mut writer = encryptor.wrap_output(&mut wrapped)?;
    writer.write_all(keyring.to_identity_file().as_bytes())?;
    writer.finish()?;
    Ok(wrapped)
}

/// Opens a keyring wrapped by `wrap_keyring`. `max_work_factor` bounds the work an attacker-supplied
/// file could demand.
pub fn unwrap_keyring(
    wrapped: &[u8],
    passphrase: &SecretString,
    max_work_factor: u8,
) -> Result<Keyring> {
    let mut identity = age::scrypt::Identity::new(passphrase.clone());
    identity.set_max_work_factor(max_work_factor);
    let plaintext = open(&identity, wrapped)?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| Error::Crypto("bad identity".into()))?;
    Keyring::parse(text).map_err(|_| Error::Crypto("bad identity".into()))
}

/// The server's own age key: it seals what the relay must be able to read without a worker (real
/// contact details for notifications, TOTP secrets). Kept in a file outside the database.
pub struct ServerKey {
    identity: x25519::Identity,
    recipient: x25519::Recipient,
    /// Secret input to every passphrase hash: a copy of the database alone does not allow guessing
    /// passphrases against the hashes (the file holding this key is needed too).
    pepper: Zeroizing<[u8; 32]>,
    contact_key: Zeroizing<[u8; 32]>,
    marker_key: Zeroizing<[u8; 32]>,
    verp_key: Zeroizing<[u8; 32]>,
}

/// What a keyed hash is for; each purpose has its own key, derived from the server key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyedHash {
    /// Contacts a worker allowed on an alias (compared, never shown).
    Contact,
    /// Identity markers for the leak guard.
    Marker,
    /// Return paths of outbound mail (bounces must carry a valid one).
    ReturnPath,
}

impl ServerKey {
    /// Loads the key file, or creates it (mode 0600) when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        let identity = if path.exists() {
            parse_identity(&std::fs::read_to_string(path)?)
                .map_err(|_| Error::Crypto(format!("{} holds no age identity", path.display())))?
        } else {
            let identity = x25519::Identity::generate();
            let text = format!(
                "# schuilnaam server key: seals workers' contact details and TOTP secrets.\n\
                 # Keep it outside the database and back it up offline.\n{}\n",
                identity.to_string().expose_secret()
            );
            write_private_file(path, text.as_bytes())?;
            identity
        };
        let recipient = identity.to_public();
        let pepper = derive_secret(&identity, b"schuilnaam argon2id pepper v1");
        let contact_key = derive_secret(&identity, b"schuilnaam contacts v1");
        let marker_key = derive_secret(&identity, b"schuilnaam identity markers v1");
        let verp_key = derive_secret(&identity, b"schuilnaam return path v1");
        Ok(Self {
            identity,
            recipient,
            pepper,
            contact_key,
            marker_key,
            verp_key,
        })
    }

    /// HMAC-SHA256 of `data` under the key for `purpose`, hex encoded.
    pub fn keyed_hash(&self, purpose: KeyedHash, data: &[u8]) -> String {
        let mut mac = self.keyed_mac(purpose);
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The HMAC-SHA256 state keyed for `purpose`, for hashing many short inputs (the leak guard
    /// clones it per candidate instead of keying anew): fed `data`, it gives `keyed_hash`.
    pub fn keyed_mac(&self, purpose: KeyedHash) -> Hmac<Sha256> {
        let key = match purpose {
            KeyedHash::Contact => &self.contact_key,
            KeyedHash::Marker => &self.marker_key,
            KeyedHash::ReturnPath => &self.verp_key,
        };
        Hmac::<Sha256>::new_from_slice(&key[..]).expect("HMAC takes any key length")
    }

    pub fn passphrase_pepper(&self) -> &[u8] {
        &self.pepper[..]
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        seal(std::slice::from_ref(&self.recipient), plaintext)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Plaintext> {
        open(&self.identity, sealed)
    }
}

/// A secret derived from an identity for one purpose (HMAC-SHA256 keyed by the identity's secret).
fn derive_secret(identity: &x25519::Identity, purpose: &[u8]) -> Zeroizing<[u8; 32]> {
    let secret = identity.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(purpose);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Writes a file readable by its owner only, creating the directory when needed.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

/// argon2id with 64 MiB, 3 passes: well above the usual minimum (19 MiB, 2 passes), and bounded in
/// parallel use by the relay's KDF semaphore.
fn argon2(pepper: &[u8]) -> Argon2<'_> {
    let params = Params::new(64 * 1024, 3, 1, None).expect("valid argon2 parameters");
    Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, params)
        .expect("pepper length is valid")
}

/// argon2id hash (PHC string) of a passphrase, keyed with the server's pepper.
pub fn hash_passphrase(passphrase: &SecretString, pepper: &[u8]) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(pepper)
        .hash_password(passphrase.expose_secret().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Crypto(e.to_string()))
}

pub fn verify_passphrase(passphrase: &SecretString, phc: &str, pepper: &[u8]) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2(pepper)
            .verify_password(passphrase.expose_secret().as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash to verify against when the handle does not exist, so that a login for an unknown handle
/// costs the same as one with a wrong passphrase (same parameters; nothing verifies against it).
pub fn decoy_passphrase_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_passphrase(&SecretString::from(random_token(16)), &random_bytes::<32>())
            .expect("argon2 with valid parameters")
    })
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A random 128-bit identifier, hex encoded.
pub fn random_id() -> String {
    hex::encode(random_bytes::<16>())
}

/// A random secret of `bytes` bytes, hex encoded.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Constant-time equality for secrets of equal length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_message_opens_only_for_its_recipients() {
        let alice = x25519::Identity::generate();
        let bob = x25519::Identity::generate();
        let mallory = x25519::Identity::generate();
        let sealed = seal(&[alice.to_public(), bob.to_public()], b"hallo").unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
        assert_eq!(&open(&alice, &sealed).unwrap()[..], b"hallo");
        assert_eq!(&open(&bob, &sealed).unwrap()[..], b"hallo");
        assert!(open(&mallory, &sealed).is_err());
        assert!(!sealed.windows(5).any(|w| w == b"hallo"));
    }

    #[test]
    fn wrapped_keyring_needs_the_passphrase() {
        let keyring = Keyring::single(x25519::Identity::generate());
        let passphrase = SecretString::from("correct horse".to_string());
        let wrapped = wrap_keyring(&keyring, &passphrase, 4).unwrap();
        let unwrapped = unwrap_keyring(&wrapped, &passphrase, 20).unwrap();
        assert_eq!(
            unwrapped.current().to_public().to_string(),
            keyring.current().to_public().to_string()
        );
        let wrong = SecretString::from("wrong horse".to_string());
        assert!(unwrap_keyring(&wrapped, &wrong, 20).is_err());
        // A file demanding more work than allowed is refused rather than computed.
        assert!(unwrap_keyring(&wrapped, &passphrase, 3).is_err());
    }

    #[test]
    fn a_rotated_keyring_opens_old_and_new_messages_and_seals_to_the_new_key() {
        let old = Keyring::single(x25519::Identity::generate());
        let before = seal(&[old.current().to_public()], b"voor").unwrap();
        let rotated = old.rotated();
        assert_eq!(rotated.len(), 2);
        assert_ne!(
            rotated.current().to_public().to_string(),
            old.current().to_public().to_string()
        );
        let after = seal(&[rotated.current().to_public()], b"na").unwrap();
        assert_eq!(&rotated.open(&before).unwrap()[..], b"voor");
        assert_eq!(&rotated.open(&after).unwrap()[..], b"na");
        // The old identity alone never opens what is sealed after the rotation.
        assert!(old.open(&after).is_err());
        let passphrase = SecretString::from("een nieuwe zin".to_string());
        let again = unwrap_keyring(
            &wrap_keyring(&rotated, &passphrase, 4).unwrap(),
            &passphrase,
            20,
        )
        .unwrap();
        assert_eq!(
            again.current().to_public().to_string(),
            rotated.current().to_public().to_string()
        );
        assert_eq!(&again.open(&before).unwrap()[..], b"voor");
    }

    #[test]
    fn passphrase_hash_verifies_only_the_passphrase_and_pepper() {
        let pepper = [7u8; 32];
        let passphrase = SecretString::from("een lange zin".to_string());
        let hash = hash_passphrase(&passphrase, &pepper).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"));
        assert!(verify_passphrase(&passphrase, &hash, &pepper));
        assert!(!verify_passphrase(
            &SecretString::from("een andere zin".to_string()),
            &hash,
            &pepper
        ));
        // Without the pepper (a stolen database alone) the right passphrase does not verify.
        assert!(!verify_passphrase(&passphrase, &hash, &[8u8; 32]));
        assert!(!verify_passphrase(&passphrase, "not a hash", &pepper));
    }

    #[test]
    fn identity_file_with_comments_parses() {
        let identity = x25519::Identity::generate();
        let file = format!(
            "# created: 2026-01-01\n# public key: {}\n{}\n",
            identity.to_public(),
            identity.to_string().expose_secret()
        );
        let parsed = parse_identity(&file).unwrap();
        assert_eq!(
            parsed.to_public().to_string(),
            identity.to_public().to_string()
        );
        assert!(parse_identity("# nothing here\n").is_err());
        let keyring = Keyring::parse(&file).unwrap();
        assert_eq!(keyring.len(), 1);
        assert!(Keyring::parse("# nothing here\n").is_err());
        assert!(Keyring::parse("AGE-SECRET-KEY-1NOTAKEY\n").is_err());
    }

    #[test]
    fn server_key_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/server-key.txt");
        let key = ServerKey::load_or_create(&path).unwrap();
        let sealed = key.seal(b"06-12345678").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ServerKey::load_or_create(&path).unwrap();
        assert_eq!(&again.open(&sealed).unwrap()[..], b"06-12345678");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
