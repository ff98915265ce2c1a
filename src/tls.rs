//! TLS: the development CA (generated on first start so `serve` works on a fresh machine), the server
//! certificate, and the two rustls configurations: the worker listener (no client authentication) and
//! the partner listener (a client certificate from the partner CA is required at the handshake).
//! TLS 1.2 and 1.3 only, ring as the crypto provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::Config;
use crate::error::{Error, Result};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
/// The development CA lives ten years; what it issues lives one. The server certificate is issued
/// afresh at every start (in memory only), so it never expires under a running development setup.
const CA_YEARS: i16 = 10;
const LEAF_YEARS: i16 = 1;

/// Validity from yesterday (clock skew) to `years` from today, in UTC.
fn validity(params: &mut CertificateParams, years: i16) {
    use jiff::ToSpan;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let as_rcgen = |date: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(date.year()), date.month() as u8, date.day() as u8)
    };
    params.not_before = as_rcgen(today.yesterday().unwrap_or(today));
    params.not_after = as_rcgen(today.checked_add(years.years()).unwrap_or(today));
}

fn tls_error(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{context}: {e}"))
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process-wide rustls provider (clients such as reqwest look it up). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The development CA: a key and a self-signed certificate in `<data_dir>/dev-ca`.
pub struct DevCa {
    dir: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM encoded.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl DevCa {
    pub fn load_or_create(dir: &Path) -> Result<Self> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        if cert_path.exists() && key_path.exists() {
            let key = KeyPair::from_pem(&std::fs::read_to_string(&key_path)?)
                .map_err(|e| tls_error("development CA key", e))?;
            let params = CertificateParams::from_ca_cert_pem(&std::fs::read_to_string(&cert_path)?)
                .map_err(|e| tls_error("development CA certificate", e))?;
            // Re-signing the parsed parameters yields an issuer with the same name and key.
            let cert = params
                .self_signed(&key)
                .map_err(|e| tls_error("development CA", e))?;
            return Ok(Self {
                dir: dir.to_path_buf(),
                cert,
                key,
            });
        }
        let key = KeyPair::generate().map_err(|e| tls_error("development CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_error("development CA", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "schuilnaam development CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, CA_YEARS);
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("development CA", e))?;
        create_private_dir(dir)?;
        crate::crypto::write_private_file(&key_path, key.serialize_pem().as_bytes())?;
        std::fs::write(&cert_path, cert.pem())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cert,
            key,
        })
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    fn issue(&self, mut params: CertificateParams) -> Result<Issued> {
        validity(&mut params, LEAF_YEARS);
        let key = KeyPair::generate().map_err(|e| tls_error("key generation", e))?;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| tls_error("signing", e))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A server certificate for the given host names and IP addresses.
    pub fn issue_server(&self, names: Vec<String>) -> Result<Issued> {
        let mut params =
            CertificateParams::new(names).map_err(|e| tls_error("server certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "schuilnaam development server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// A client certificate for a partner organisation.
    pub fn issue_client(&self, organisation: &str) -> Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| tls_error("client certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, organisation);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }
}

/// Certificates and keys the listeners need.
pub struct Material {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_roots: Arc<RootCertStore>,
}

/// Loads the configured certificate and partner CA, or the development ones: the CA is created when
/// missing, the server certificate is issued for this run.
pub fn load_material(config: &Config) -> Result<Material> {
    let (chain, key) = if config.tls.cert.as_os_str().is_empty() {
        let ca = DevCa::load_or_create(&config.dev_ca_dir())?;
        let issued = ca.issue_server(vec![
            "localhost".into(),
            "127.0.0.1".into(),
            "::1".into(),
            config.relay.domain.clone(),
        ])?;
        (
            parse_certs(issued.cert_pem.as_bytes(), "development server certificate")?,
            parse_key(issued.key_pem.as_bytes(), "development server key")?,
        )
    } else {
        (read_certs(&config.tls.cert)?, read_key(&config.tls.key)?)
    };
    let client_ca = if config.tls.client_ca.as_os_str().is_empty() {
        DevCa::load_or_create(&config.dev_ca_dir())?.cert_path()
    } else {
        config.tls.client_ca.clone()
    };
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&client_ca)? {
        roots
            .add(cert)
            .map_err(|e| tls_error(&format!("partner CA {}", client_ca.display()), e))?;
    }
    Ok(Material {
        chain,
        key,
        client_roots: Arc::new(roots),
    })
}

/// Creates a directory readable by its owner only (keys live in it).
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_error(what, e))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{what} holds no certificate")));
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| tls_error(what, e))?
        .ok_or_else(|| Error::Tls(format!("{what} holds no private key")))
}

pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| tls_error(&path.display().to_string(), e))?;
    parse_certs(&pem, &path.display().to_string())
}

pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).map_err(|e| tls_error(&path.display().to_string(), e))?;
    parse_key(&pem, &path.display().to_string())
}

fn base_builder() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>> {
    ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_error("protocol versions", e))
}

fn finish(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The worker listener: server authentication only.
pub fn worker_server_config(material: &Material) -> Result<Arc<ServerConfig>> {
    let config = base_builder()?
        .with_no_client_auth()
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| tls_error("server certificate", e))?;
    Ok(finish(config))
}

/// The SMTP listener's STARTTLS: server authentication only, no ALPN.
pub fn smtp_server_config(material: &Material) -> Result<Arc<ServerConfig>> {
    let config = base_builder()?
        .with_no_client_auth()
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| tls_error("server certificate", e))?;
    Ok(Arc::new(config))
}

/// The partner listener: a client certificate chaining to the partner CA is mandatory.
pub fn partner_server_config(material: &Material) -> Result<Arc<ServerConfig>> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(material.client_roots.clone(), provider())
            .build()
            .map_err(|e| tls_error("client verifier", e))?;
    let config = base_builder()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| tls_error("server certificate", e))?;
    Ok(finish(config))
}
