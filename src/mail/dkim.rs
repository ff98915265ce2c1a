//! The relay's DKIM keys: every message that leaves from the relay domain carries two signatures
//! (RFC 8463 §3 recommends signing with both): RSA-SHA256, which every receiver verifies, and
//! Ed25519-SHA256, which not every receiver verifies yet. Each key has its own selector, so each has
//! its own DNS record; DMARC passes when either signature verifies.
//!
//! Keys are PEM files (PKCS#8, or PKCS#1 for RSA). A missing key is generated (mode 0600): RSA with
//! 2048 bits, Ed25519. A relay from before the RSA key keeps its Ed25519 key and selector and only
//! gains the RSA key. `schuilnaam mail dkim-record` prints both records to publish.

use std::fmt;
use std::path::Path;

use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{Error, Result};

/// Size of a generated RSA key: what receivers expect today (RFC 8301 requires at least 1024 and
/// recommends 2048); its record needs two DNS strings.
pub const RSA_BITS: usize = 2048;

/// The longest string a TXT record holds (one length byte, RFC 1035 §3.3); longer values are
/// published as several strings, which DKIM verifiers join (RFC 6376 §3.6.2.2).
pub const MAX_TXT_STRING: usize = 255;

/// Headers the signatures cover (those the relay writes; absent ones are simply skipped).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Rsa,
    Ed25519,
}

impl Algorithm {
    /// The `k=` tag of the record.
    fn key_type(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }

    /// The configuration keys of this algorithm's file and selector, for error messages.
    fn setting(self) -> &'static str {
        match self {
            Self::Rsa => "outbound.dkim_rsa_key",
            Self::Ed25519 => "outbound.dkim_ed25519_key",
        }
    }
}

/// Where one key lives and the selector its record is published under.
#[derive(Clone, Copy, Debug)]
pub struct KeyFile<'a> {
    pub path: &'a Path,
    pub selector: &'a str,
}

/// One key with its signer and what its record publishes.
struct Half<K: SigningKey<Hasher = Sha256>> {
    signer: DkimSigner<K, Done>,
    selector: String,
    /// The public key as the record's `p=` carries it (DER).
    public: Vec<u8>,
}

/// The relay's two DKIM keys for the relay domain.
pub struct DkimKey {
    rsa: Half<RsaKey<Sha256>>,
    ed25519: Half<Ed25519Key>,
    domain: String,
}

fn dkim_error(e: impl fmt::Display) -> Error {
    Error::Crypto(format!("DKIM: {e}"))
}

impl DkimKey {
    /// The keys `config` names (`outbound.dkim_rsa_key`/`dkim_ed25519_key` with their selectors),
    /// generating those that do not exist.
    pub fn from_config(config: &Config) -> Result<Self> {
        let (rsa, ed25519) = (config.dkim_rsa_key_path(), config.dkim_ed25519_key_path());
        Self::load_or_create(
            &config.relay.domain,
            KeyFile {
                path: &rsa,
                selector: &config.outbound.dkim_rsa_selector,
            },
            KeyFile {
                path: &ed25519,
                selector: &config.outbound.dkim_ed25519_selector,
            },
        )
    }

    /// Loads both keys, generating each one whose file does not exist (mode 0600).
    pub fn load_or_create(domain: &str, rsa: KeyFile<'_>, ed25519: KeyFile<'_>) -> Result<Self> {
        let rsa_der = load_or_generate(rsa, Algorithm::Rsa)?;
        let ed25519_der = load_or_generate(ed25519, Algorithm::Ed25519)?;
        let rsa_key = rsa_key(&rsa_der).ok_or_else(|| wrong_key(rsa.path, Algorithm::Rsa))?;
        let ed25519_key =
            ed25519_key(&ed25519_der).ok_or_else(|| wrong_key(ed25519.path, Algorithm::Ed25519))?;
        let rsa_public = rsa_spki(&rsa_key.public_key());
        let ed25519_public = ed25519_key.public_key();
        Ok(Self {
            rsa: Half {
                signer: signer(rsa_key, domain, rsa.selector),
                selector: rsa.selector.to_string(),
                public: rsa_public,
            },
            ed25519: Half {
                signer: signer(ed25519_key, domain, ed25519.selector),
                selector: ed25519.selector.to_string(),
                public: ed25519_public,
            },
            domain: domain.to_string(),
        })
    }

    /// The two `DKIM-Signature:` header lines (each ending in CRLF, RSA first) to put in front of
    /// `message`. Neither signature covers the other, so their order does not matter to verifiers.
    pub fn sign(&self, message: &[u8]) -> Result<String> {
        let rsa = self.rsa.signer.sign(message).map_err(dkim_error)?;
        let ed25519 = self.ed25519.signer.sign(message).map_err(dkim_error)?;
        Ok(format!("{}{}", rsa.to_header(), ed25519.to_header()))
    }

    /// The TXT records that publish the public keys, RSA first.
    pub fn dns_records(&self) -> Records {
        Records {
            domain: self.domain.clone(),
            records: vec![
                self.record(Algorithm::Rsa, &self.rsa.selector, &self.rsa.public),
                self.record(
                    Algorithm::Ed25519,
                    &self.ed25519.selector,
                    &self.ed25519.public,
                ),
            ],
        }
    }

    fn record(&self, algorithm: Algorithm, selector: &str, public: &[u8]) -> DnsRecord {
        DnsRecord::new(
            algorithm.key_type(),
            selector,
            &self.domain,
            format!(
                "v=DKIM1; k={}; p={}",
                algorithm.key_type(),
                data_encoding::BASE64.encode(public)
            ),
        )
    }
}

/// One TXT record to publish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// `rsa` or `ed25519`.
    pub algorithm: &'static str,
    pub selector: String,
    /// `<selector>._domainkey.<domain>`, without the final dot.
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: &'static str,
    /// The whole value, for a DNS provider's form that takes one string.
    pub value: String,
    /// The value in strings of at most 255 bytes, as the record carries it.
    pub strings: Vec<String>,
    /// The record as a zone-file line.
    pub zone: String,
}

impl DnsRecord {
    fn new(algorithm: &'static str, selector: &str, domain: &str, value: String) -> Self {
        let name = format!("{selector}._domainkey.{domain}");
        let strings: Vec<String> = split_txt(&value).into_iter().map(str::to_string).collect();
        let quoted: Vec<String> = strings.iter().map(|s| zone_quote(s)).collect();
        Self {
            algorithm,
            selector: selector.to_string(),
            zone: format!("{name}. IN TXT {}", quoted.join(" ")),
            name,
            record_type: "TXT",
            value,
            strings,
        }
    }
}

/// The relay's DKIM records: `--json` gives the list, the text form is a zone-file fragment.
#[derive(Clone, Debug, Serialize)]
pub struct Records {
    #[serde(skip)]
    domain: String,
    pub records: Vec<DnsRecord>,
}

impl fmt::Display for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "; DKIM for {}: publish every record below; mail carries one signature per record.",
            self.domain
        )?;
        for record in &self.records {
            let label = match record.algorithm {
                "rsa" => "RSA-SHA256",
                _ => "Ed25519-SHA256 (RFC 8463)",
            };
            writeln!(f)?;
            writeln!(
                f,
                "; {label}, selector {}: {} string(s) of at most {MAX_TXT_STRING} bytes",
                record.selector,
                record.strings.len()
            )?;
            writeln!(f, "{}", record.zone)?;
            writeln!(f, "; the same value as one string, for a web form:")?;
            writeln!(f, "; {}", record.value)?;
        }
        Ok(())
    }
}

/// `value` in pieces of at most 255 bytes, cut at character boundaries (always at least one piece).
pub fn split_txt(value: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = value;
    while rest.len() > MAX_TXT_STRING {
        let mut cut = MAX_TXT_STRING;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    pieces
}

/// A zone-file character string: quoted, with `"` and `\` escaped.
fn zone_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Whether `selector` is a valid DKIM selector (RFC 6376 §3.1: dot-separated labels of letters,
/// digits and inner hyphens) that fits in a DNS name.
pub fn is_valid_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 200
        && selector.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The key in `file`, after writing a new one there when the file does not exist.
fn load_or_generate(file: KeyFile<'_>, algorithm: Algorithm) -> Result<PrivateKeyDer<'static>> {
    if !file.path.exists() {
        let pem = match algorithm {
            Algorithm::Rsa => generate_rsa()?,
            Algorithm::Ed25519 => {
                let der = Zeroizing::new(Ed25519Key::generate_pkcs8().map_err(dkim_error)?);
                pem_encode("PRIVATE KEY", &der)
            }
        };
        // When another instance or command wrote one first, that one is used.
        if write_new_key(file.path, pem.as_bytes())? {
            tracing::info!(
                algorithm = algorithm.key_type(),
                selector = file.selector,
                "generated a DKIM key: publish its record (schuilnaam mail dkim-record)"
            );
        }
    }
    let pem = Zeroizing::new(std::fs::read(file.path)?);
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| dkim_error(format!("{}: {e}", file.path.display())))?
        .ok_or_else(|| {
            dkim_error(format!(
                "{} ({}) holds no private key",
                file.path.display(),
                algorithm.setting()
            ))
        })
}

/// Writes `pem` to `path` (mode 0600) unless that file exists; `false` when it did. The key is
/// written in full under a temporary name and then linked into place, so that relays and commands
/// starting at the same moment all read the same whole key, never half of one.
fn write_new_key(path: &Path, pem: &[u8]) -> Result<bool> {
    let name = path
        .file_name()
        .ok_or_else(|| dkim_error(format!("{} is not a file name", path.display())))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        crate::crypto::random_id()
    ));
    crate::crypto::write_private_file(&temporary, pem)?;
    let linked = std::fs::hard_link(&temporary, path);
    std::fs::remove_file(&temporary)?;
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A new RSA key as PKCS#8 PEM. The `rsa` crate only generates it; signing is ring's (mail-auth).
fn generate_rsa() -> Result<Zeroizing<String>> {
    use rsa::pkcs8::EncodePrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(dkim_error)?;
    let der = key.to_pkcs8_der().map_err(dkim_error)?;
    Ok(pem_encode("PRIVATE KEY", der.as_bytes()))
}

fn rsa_key(der: &PrivateKeyDer<'_>) -> Option<RsaKey<Sha256>> {
    RsaKey::<Sha256>::from_key_der(der.clone_key()).ok()
}

fn ed25519_key(der: &PrivateKeyDer<'_>) -> Option<Ed25519Key> {
    match der {
        // "maybe unchecked": also the PKCS#8 v1 files `openssl genpkey` writes (no public key).
        PrivateKeyDer::Pkcs8(pkcs8) => {
            Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()).ok()
        }
        _ => None,
    }
}

/// The error for a file that holds a key, but not one of the kind its setting wants.
fn wrong_key(path: &Path, wanted: Algorithm) -> Error {
    let der = std::fs::read(path).ok().and_then(|pem| {
        let pem = Zeroizing::new(pem);
        rustls_pemfile::private_key(&mut pem.as_slice())
            .ok()
            .flatten()
    });
    let found = der.as_ref().and_then(|der| match wanted {
        Algorithm::Rsa => ed25519_key(der).map(|_| Algorithm::Ed25519),
        Algorithm::Ed25519 => rsa_key(der).map(|_| Algorithm::Rsa),
    });
    match found {
        Some(other) => dkim_error(format!(
            "{} ({}) holds an {} key; give it as {} and let the relay generate the {} key",
            path.display(),
            wanted.setting(),
            other.key_type(),
            other.setting(),
            wanted.key_type(),
        )),
        None => dkim_error(format!(
            "{} ({}) is not a usable {} key{}",
            path.display(),
            wanted.setting(),
            wanted.key_type(),
            match wanted {
                Algorithm::Rsa => " (PKCS#8 or PKCS#1 PEM, 2048 to 8192 bits)",
                Algorithm::Ed25519 => " (PKCS#8 PEM)",
            }
        )),
    }
}

fn signer<K: SigningKey<Hasher = Sha256>>(
    key: K,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
}

/// PEM with 64-character lines; the text is wiped when dropped, like the key it holds.
fn pem_encode(label: &str, der: &[u8]) -> Zeroizing<String> {
    let body = Zeroizing::new(data_encoding::BASE64.encode(der));
    let mut out = Zeroizing::new(String::with_capacity(body.len() + body.len() / 64 + 64));
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
    use std::os::unix::fs::PermissionsExt;

    const MESSAGE: &[u8] =
        b"From: a@relay.example\r\nTo: b@x.example\r\nSubject: t\r\n\r\nbody\r\n";

    fn files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        (dir.join("dkim-rsa.pem"), dir.join("dkim-key.pem"))
    }

    fn load(rsa: &Path, ed25519: &Path) -> Result<DkimKey> {
        DkimKey::load_or_create(
            "relay.example",
            KeyFile {
                path: rsa,
                selector: "s1-rsa",
            },
            KeyFile {
                path: ed25519,
                selector: "s1",
            },
        )
    }

    #[test]
    fn generated_keys_sign_twice_and_publish_two_records() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, ed25519) = files(dir.path());
        let key = load(&rsa, &ed25519).unwrap();
        for path in [&rsa, &ed25519] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        let header = key.sign(MESSAGE).unwrap();
        let lines: Vec<&str> = header
            .split("\r\n")
            .filter(|l| l.starts_with("DKIM-Signature:"))
            .collect();
        assert_eq!(lines.len(), 2, "{header}");
        assert!(header.starts_with("DKIM-Signature: v=1; a=rsa-sha256; s=s1-rsa; d=relay.example;"));
        assert!(
            lines[1].starts_with("DKIM-Signature: v=1; a=ed25519-sha256; s=s1; d=relay.example;")
        );
        assert!(header.ends_with("\r\n"));

        let records = key.dns_records().records;
        assert_eq!(records[0].name, "s1-rsa._domainkey.relay.example");
        assert!(records[0].value.starts_with("v=DKIM1; k=rsa; p=MII"));
        // 2048 bits: a 294-byte SubjectPublicKeyInfo, 392 base64 characters, two strings.
        assert_eq!(records[0].value.len(), "v=DKIM1; k=rsa; p=".len() + 392);
        assert_eq!(records[0].strings.len(), 2);
        assert_eq!(records[1].name, "s1._domainkey.relay.example");
        assert!(records[1].value.starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(records[1].strings, vec![records[1].value.clone()]);

        // Reloading gives the same keys.
        let again = load(&rsa, &ed25519).unwrap();
        assert_eq!(again.dns_records().records, records);
    }

    #[test]
    fn an_ed25519_key_from_before_is_kept_and_gains_an_rsa_key() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, ed25519) = files(dir.path());
        // As the relay wrote it before it had two keys.
        let der = Ed25519Key::generate_pkcs8().unwrap();
        crate::crypto::write_private_file(&ed25519, pem_encode("PRIVATE KEY", &der).as_bytes())
            .unwrap();
        let before =
            data_encoding::BASE64.encode(&Ed25519Key::from_pkcs8_der(&der).unwrap().public_key());
        let key = load(&rsa, &ed25519).unwrap();
        let records = key.dns_records().records;
        assert_eq!(records[1].value, format!("v=DKIM1; k=ed25519; p={before}"));
        assert!(rsa.exists(), "the RSA key was generated next to it");
        assert_eq!(
            std::fs::read(&ed25519).unwrap(),
            pem_encode("PRIVATE KEY", &der).as_bytes(),
            "the old key file is untouched"
        );
    }

    #[test]
    fn relays_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, ed25519) = files(dir.path());
        let records: Vec<_> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| load(&rsa, &ed25519).unwrap().dns_records().records))
                .collect();
            starts.into_iter().map(|s| s.join().unwrap()).collect()
        });
        assert!(records.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(
            records[0],
            load(&rsa, &ed25519).unwrap().dns_records().records
        );
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["dkim-key.pem", "dkim-rsa.pem"],
            "no temporary files left"
        );
    }

    #[test]
    fn keys_in_the_wrong_setting_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (rsa, ed25519) = files(dir.path());
        load(&rsa, &ed25519).unwrap();
        // Swapped: each file holds the other kind.
        let err = load(&ed25519, &rsa).err().unwrap().to_string();
        assert!(
            err.contains("holds an ed25519 key") && err.contains("outbound.dkim_ed25519_key"),
            "{err}"
        );
        let err = load(&rsa, &rsa).err().unwrap().to_string();
        assert!(
            err.contains("holds an rsa key") && err.contains("outbound.dkim_rsa_key"),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a key").unwrap();
        let err = load(&rsa, &junk).err().unwrap().to_string();
        assert!(err.contains("holds no private key"), "{err}");
    }

    #[test]
    fn txt_strings_are_at_most_255_bytes() {
        let join = |pieces: &[&str]| pieces.concat();
        assert_eq!(split_txt(""), vec![""]);
        let exact = "a".repeat(255);
        assert_eq!(split_txt(&exact), vec![exact.as_str()]);
        let over = "b".repeat(256);
        let pieces = split_txt(&over);
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![255, 1]
        );
        assert_eq!(join(&pieces), over);
        for len in [510, 511, 800, 1000] {
            let value = "c".repeat(len);
            let pieces = split_txt(&value);
            assert_eq!(pieces.len(), len.div_ceil(255), "{len}");
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= 255));
            assert_eq!(join(&pieces), value);
        }
        // A multi-byte character is never cut in two.
        let value = format!("{}é{}", "d".repeat(254), "e".repeat(10));
        let pieces = split_txt(&value);
        assert_eq!(pieces[0].len(), 254);
        assert!(pieces[1].starts_with('é'));
        assert_eq!(join(&pieces), value);
    }

    #[test]
    fn zone_lines_quote_each_string() {
        let value = format!("v=DKIM1; k=rsa; p={}", "A".repeat(392));
        let record = DnsRecord::new("rsa", "sel-rsa", "relay.example", value.clone());
        let first = &value[..255];
        let second = &value[255..];
        assert_eq!(
            record.zone,
            format!("sel-rsa._domainkey.relay.example. IN TXT \"{first}\" \"{second}\"")
        );
        assert_eq!(record.strings, vec![first.to_string(), second.to_string()]);
        assert_eq!(zone_quote(r#"a"b\c"#), r#""a\"b\\c""#);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["type"], "TXT");
        assert_eq!(json["value"], value);
        assert_eq!(json["strings"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn selectors() {
        for ok in ["schuilnaam", "schuilnaam-rsa", "2027-05.rsa", "a"] {
            assert!(is_valid_selector(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a..b",
            "a_b",
            "sel ector",
            "sél",
            "a.",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_selector(bad), "{bad}");
        }
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der_tlv(0x04, &[0u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }
}
