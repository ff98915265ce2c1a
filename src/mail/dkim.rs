//! The relay's DKIM key: it signs every message that leaves from the relay domain. Ed25519 or RSA,
//! PEM (PKCS#8, or PKCS#1 for RSA). A development key (Ed25519) is generated when none exists;
//! `schuilnaam mail dkim-record` prints the DNS record to publish.

use std::path::Path;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use rustls::pki_types::PrivateKeyDer;

use crate::error::{Error, Result};

/// Headers the signature covers (those the relay writes; absent ones are simply skipped).
const SIGNED_HEADERS: [&str; 9] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
];

enum Signer {
    Ed25519(DkimSigner<Ed25519Key, mail_auth::dkim::Done>),
    Rsa(DkimSigner<RsaKey<Sha256>, mail_auth::dkim::Done>),
}

pub struct DkimKey {
    signer: Signer,
    /// (algorithm, public key as published) for the DNS record.
    public: (&'static str, Vec<u8>),
    domain: String,
    selector: String,
}

fn dkim_error(e: impl std::fmt::Display) -> Error {
    Error::Crypto(format!("DKIM: {e}"))
}

impl DkimKey {
    /// Loads the key, generating an Ed25519 key (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path, domain: &str, selector: &str) -> Result<Self> {
        if !path.exists() {
            let der = Ed25519Key::generate_pkcs8().map_err(dkim_error)?;
            let pem = pem_encode("PRIVATE KEY", &der);
            crate::crypto::write_private_file(path, pem.as_bytes())?;
        }
        let pem = std::fs::read(path)?;
        let der = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(dkim_error)?
            .ok_or_else(|| dkim_error(format!("{} holds no private key", path.display())))?;
        let ed25519 = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                Ed25519Key::from_pkcs8_der(pkcs8.secret_pkcs8_der()).ok()
            }
            _ => None,
        };
        let (signer, public) = match ed25519 {
            Some(key) => {
                let public = ("ed25519", key.public_key());
                (Signer::Ed25519(signer(key, domain, selector)), public)
            }
            None => {
                let key = RsaKey::<Sha256>::from_key_der(der.clone_key()).map_err(dkim_error)?;
                let public = ("rsa", rsa_spki(&key.public_key()));
                (Signer::Rsa(signer(key, domain, selector)), public)
            }
        };
        Ok(Self {
            signer,
            public,
            domain: domain.to_string(),
            selector: selector.to_string(),
        })
    }

    /// The `DKIM-Signature:` header line (with CRLF) to put in front of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let signature = match &self.signer {
            Signer::Ed25519(signer) => signer.sign(message),
            Signer::Rsa(signer) => signer.sign(message),
        }
        .map_err(dkim_error)?;
        Ok(signature.to_header())
    }

    /// The TXT record that publishes the public key: (name, value).
    pub fn dns_record(&self) -> (String, String) {
        let (algorithm, public) = &self.public;
        (
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!(
                "v=DKIM1; k={algorithm}; p={}",
                data_encoding::BASE64.encode(public)
            ),
        )
    }
}

fn signer<K: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    key: K,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, mail_auth::dkim::Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = data_encoding::BASE64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM records carry.
fn rsa_spki(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x00];
    bit_string.extend_from_slice(pkcs1);
    let mut body = ALGORITHM.to_vec();
    body.extend(der_tlv(0x03, &bit_string));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_signs_and_publishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dkim.pem");
        let key = DkimKey::load_or_create(&path, "relay.example", "s1").unwrap();
        let message = b"From: a@relay.example\r\nTo: b@x.example\r\nSubject: t\r\n\r\nbody\r\n";
        let header = key.sign(message).unwrap();
        assert!(header.starts_with("DKIM-Signature: "), "{header}");
        assert!(header.contains("d=relay.example") && header.contains("s=s1"));
        assert!(header.contains("a=ed25519-sha256"));
        let (name, value) = key.dns_record();
        assert_eq!(name, "s1._domainkey.relay.example");
        assert!(value.starts_with("v=DKIM1; k=ed25519; p="));
        // Reloading gives the same key.
        let again = DkimKey::load_or_create(&path, "relay.example", "s1").unwrap();
        assert_eq!(again.dns_record(), key.dns_record());
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
