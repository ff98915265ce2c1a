//! Configuration: the embedded default file, an optional file laid over it, then `SCHUILNAAM_*`
//! environment variables. Secrets (the database URL's password) never reach `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::webauthn::RelyingParty;
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

/// The commented default configuration, compiled in so that a fresh machine needs no file.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/schuilnaam.toml");

/// Where `--config` points when the flag is not given.
pub const DEFAULT_PATH: &str = "config/schuilnaam.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub relay: RelayConfig,
    pub database: DatabaseConfig,
    pub crypto: CryptoConfig,
    pub tls: TlsConfig,
    pub worker_api: WorkerApiConfig,
    pub partner_api: PartnerApiConfig,
    pub admin: ListenerConfig,
    pub session: SessionConfig,
    pub login: LoginConfig,
    pub smtp: SmtpConfig,
    pub dns: DnsConfig,
    pub outbound: OutboundConfig,
    pub retention: RetentionConfig,
    pub phone: PhoneConfig,
    pub oncall: crate::oncall::OnCallConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub listen: SocketAddr,
    pub hostname: String,
    pub require_tls: bool,
    pub max_message_bytes: usize,
    pub max_messages_per_minute_per_address: u32,
    pub max_messages_per_minute_per_domain: u32,
    pub command_timeout_seconds: u64,
    pub data_timeout_seconds: u64,
    pub xforward_from: Vec<std::net::IpAddr>,
    pub max_sessions_per_address: usize,
    pub max_data_memory_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// `host:port` of a resolver, or empty for the system's.
    pub resolver: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmarthostTls {
    /// STARTTLS, required (port 587).
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    pub smarthost: String,
    pub tls: SmarthostTls,
    pub extra_ca: PathBuf,
    /// The RSA DKIM key (PEM); empty: `<data_dir>/dkim-rsa.pem`.
    pub dkim_rsa_key: PathBuf,
    pub dkim_rsa_selector: String,
    /// The Ed25519 DKIM key (PEM); empty: `<data_dir>/dkim-key.pem`.
    pub dkim_ed25519_key: PathBuf,
    pub dkim_ed25519_selector: String,
    pub notify_from: String,
    pub notify_interval_seconds: u64,
    pub give_up_after_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub domain: String,
    pub data_dir: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoConfig {
    pub server_key: PathBuf,
    pub scrypt_work_factor: u8,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerApiConfig {
    pub listen: SocketAddr,
    /// Open connections per client address (IPv6 /64); more are closed at once.
    pub max_connections_per_address: usize,
    /// The origin workers open the web app at (`https://relay.example`); passkeys are bound to its
    /// host. Empty: `https://localhost:<port the listener bound>` (development).
    #[serde(default)]
    pub public_origin: String,
}

impl WorkerApiConfig {
    /// Who the relay is to a passkey: the configured origin, or the loopback development one.
    pub fn relying_party(&self, bound_port: u16) -> Result<RelyingParty, ConfigError> {
        if self.public_origin.is_empty() {
            return Ok(RelyingParty {
                id: "localhost".into(),
                origin: format!("https://localhost:{bound_port}"),
            });
        }
        relying_party_of(&self.public_origin).ok_or_else(|| {
            ConfigError::Invalid(
                "worker_api.public_origin must be https://HOST or https://HOST:PORT, with a host \
                 name (not an IP address) and nothing after it"
                    .into(),
            )
        })
    }
}

/// `https://host[:port]` with a DNS host name, as a browser serialises the origin (lower case, the
/// default port left out). Passkeys cannot be bound to an IP address.
fn relying_party_of(origin: &str) -> Option<RelyingParty> {
    let rest = origin.strip_prefix("https://")?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port.parse::<u16>().ok().filter(|p| *p != 0)?)),
        None => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let is_ip = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if host.len() > 253 || is_ip || !host.split('.').all(label_ok) {
        return None;
    }
    let origin = match port {
        Some(port) if port != 443 => format!("https://{host}:{port}"),
        _ => format!("https://{host}"),
    };
    Some(RelyingParty { id: host, origin })
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerApiConfig {
    pub listen: SocketAddr,
    /// Open connections per client address (IPv6 /64); more are closed at once.
    pub max_connections_per_address: usize,
    pub max_body_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    pub idle_timeout_seconds: u64,
    pub absolute_timeout_seconds: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    pub max_failures_per_handle: u32,
    pub max_failures_per_address: u32,
    pub window_seconds: u64,
}

/// Which path calls and texts take: a hosted provider speaking the Twilio-compatible dialect (TwiML
/// webhooks, REST), or the self-hosted pair (SMS through Kannel, voice routing for Kamailio).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum PhoneProviderKind {
    #[serde(rename = "twiml")]
    Twiml,
    #[serde(rename = "kannel+sip")]
    KannelSip,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneConfig {
    /// Off: no phone listener, no provider; the number pool can still be managed.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Open connections per client address (IPv6 /64); more are closed at once.
    pub max_connections_per_address: usize,
    pub provider: PhoneProviderKind,
    /// The base URL the provider was given for the webhooks (signatures are checked against it).
    pub public_base_url: String,
    /// Twilio-compatible REST API.
    pub api_base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    pub auth_token_file: PathBuf,
    /// Telnyx (TeXML): the account's Ed25519 public key (base64). When set, webhooks are checked
    /// against it (`telnyx-signature-ed25519`) instead of the auth token (`X-Twilio-Signature`).
    pub webhook_public_key: String,
    /// An extra CA (PEM) the API's certificate may chain to, besides the public roots.
    pub api_ca: PathBuf,
    pub ring_seconds: u32,
    pub voicemail_max_seconds: u32,
    pub quarantine_days: u32,
    pub max_body_bytes: usize,
    /// How long a webhook's CallSid / MessageSid is remembered to refuse a replay.
    pub replay_window_seconds: u64,
    /// Kannel's smsbox `sendsms` URL (http:// only on loopback).
    pub kannel_sendsms_url: String,
    pub kannel_username: String,
    pub kannel_password: String,
    /// The secret Kannel's `post-url` and `dlr-url` carry (`?secret=` or `X-Schuilnaam-Secret`).
    pub kannel_secret: String,
    /// Addresses Kannel and Kamailio may call the relay from.
    pub allow_from: Vec<std::net::IpAddr>,
    /// How a real number becomes a SIP target on the trunk: `{number}` is replaced (without `+`).
    pub sip_target: String,
    /// The secret Kamailio's route query carries (`?secret=` or `X-Schuilnaam-Secret`).
    pub sip_secret: String,
}

impl fmt::Debug for PhoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &str| if secret.is_empty() { "" } else { "***" };
        f.debug_struct("PhoneConfig")
            .field("enabled", &self.enabled)
            .field("listen", &self.listen)
            .field(
                "max_connections_per_address",
                &self.max_connections_per_address,
            )
            .field("provider", &self.provider)
            .field("public_base_url", &self.public_base_url)
            .field("api_base_url", &self.api_base_url)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &hidden(&self.auth_token))
            .field("auth_token_file", &self.auth_token_file)
            .field("webhook_public_key", &self.webhook_public_key)
            .field("api_ca", &self.api_ca)
            .field("ring_seconds", &self.ring_seconds)
            .field("voicemail_max_seconds", &self.voicemail_max_seconds)
            .field("quarantine_days", &self.quarantine_days)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("replay_window_seconds", &self.replay_window_seconds)
            .field("kannel_sendsms_url", &self.kannel_sendsms_url)
            .field("kannel_username", &self.kannel_username)
            .field("kannel_password", &hidden(&self.kannel_password))
            .field("kannel_secret", &hidden(&self.kannel_secret))
            .field("allow_from", &self.allow_from)
            .field("sip_target", &self.sip_target)
            .field("sip_secret", &hidden(&self.sip_secret))
            .finish()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub messages_days: u32,
    pub sweep_interval_seconds: u64,
}

impl Config {
    /// Loads the embedded default, then `path` (which must exist when `explicit`), then the environment.
    pub fn load(path: &Path, explicit: bool) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(EMBEDDED_DEFAULT));
        if path.exists() {
            figment = figment.merge(Toml::file(path));
        } else if explicit {
            return Err(ConfigError::Missing(path.to_path_buf()));
        }
        Self::from_figment(figment.merge(environment()))
    }

    /// The embedded default alone, without a file or the environment (tests start here and adjust
    /// fields).
    pub fn embedded_default() -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(EMBEDDED_DEFAULT)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        if ["outbound.dkim_key", "outbound.dkim_selector"]
            .iter()
            .any(|old| figment.find_value(old).is_ok())
        {
            return Err(ConfigError::Invalid(RENAMED_DKIM_SETTINGS.into()));
        }
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.worker_api
            .relying_party(self.worker_api.listen.port())?;
        crate::alias::Domain::parse(&self.relay.domain)
            .map_err(|e| ConfigError::Invalid(format!("relay.domain: {e}")))?;
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(
                "database.url must start with sqlite: or postgres://".into(),
            ));
        }
        if !(1..=22).contains(&self.crypto.scrypt_work_factor) {
            return Err(ConfigError::Invalid(
                "crypto.scrypt_work_factor must be between 1 and 22".into(),
            ));
        }
        let tls_given = [&self.tls.cert, &self.tls.key]
            .iter()
            .filter(|p| !p.as_os_str().is_empty())
            .count();
        if tls_given == 1 {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be given together".into(),
            ));
        }
        // A production certificate with the development partner CA would let anyone holding a
        // development client certificate reach the partner listener.
        if tls_given == 2 && self.tls.client_ca.as_os_str().is_empty() {
            return Err(ConfigError::Invalid(
                "tls.client_ca (the CA that issues partner certificates) is required when tls.cert is set".into(),
            ));
        }
        if self.session.idle_timeout_seconds == 0 || self.session.absolute_timeout_seconds == 0 {
            return Err(ConfigError::Invalid(
                "session timeouts must be positive".into(),
            ));
        }
        crate::alias::Domain::parse(&self.smtp.hostname)
            .map_err(|e| ConfigError::Invalid(format!("smtp.hostname: {e}")))?;
        if self.smtp.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid(
                "smtp.max_message_bytes must be at least 1024".into(),
            ));
        }
        if self.smtp.max_data_memory_bytes < self.smtp.max_message_bytes {
            return Err(ConfigError::Invalid(
                "smtp.max_data_memory_bytes must be at least smtp.max_message_bytes".into(),
            ));
        }
        for (setting, per_address) in [
            (
                "smtp.max_sessions_per_address",
                self.smtp.max_sessions_per_address,
            ),
            (
                "worker_api.max_connections_per_address",
                self.worker_api.max_connections_per_address,
            ),
            (
                "partner_api.max_connections_per_address",
                self.partner_api.max_connections_per_address,
            ),
            (
                "phone.max_connections_per_address",
                self.phone.max_connections_per_address,
            ),
        ] {
            if per_address == 0 {
                return Err(ConfigError::Invalid(format!("{setting} must be positive")));
            }
        }
        if !self.dns.resolver.is_empty() {
            self.dns_resolver()?;
        }
        if !self.outbound.smarthost.is_empty() {
            self.smarthost()?;
        }
        for (setting, selector) in [
            (
                "outbound.dkim_rsa_selector",
                &self.outbound.dkim_rsa_selector,
            ),
            (
                "outbound.dkim_ed25519_selector",
                &self.outbound.dkim_ed25519_selector,
            ),
        ] {
            if !crate::mail::dkim::is_valid_selector(selector) {
                return Err(ConfigError::Invalid(format!(
                    "{setting} must be a DNS label (letters, digits, inner hyphens; dots between labels)"
                )));
            }
        }
        if self
            .outbound
            .dkim_rsa_selector
            .eq_ignore_ascii_case(&self.outbound.dkim_ed25519_selector)
        {
            return Err(ConfigError::Invalid(
                "outbound.dkim_rsa_selector and outbound.dkim_ed25519_selector must differ: each key has its own DNS record".into(),
            ));
        }
        if self.dkim_rsa_key_path() == self.dkim_ed25519_key_path() {
            return Err(ConfigError::Invalid(
                "outbound.dkim_rsa_key and outbound.dkim_ed25519_key must be different files"
                    .into(),
            ));
        }
        crate::alias::LocalPart::parse(&self.outbound.notify_from)
            .map_err(|e| ConfigError::Invalid(format!("outbound.notify_from: {e}")))?;
        crate::phone::validate_config(&self.phone).map_err(ConfigError::Invalid)?;
        if self.retention.messages_days == 0 || self.retention.sweep_interval_seconds == 0 {
            return Err(ConfigError::Invalid(
                "retention.messages_days and retention.sweep_interval_seconds must be positive"
                    .into(),
            ));
        }
        self.oncall
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The domain as its validated type (validated once in `load`).
    pub fn domain(&self) -> crate::alias::Domain {
        crate::alias::Domain::parse(&self.relay.domain).expect("validated at load")
    }

    /// The configured DNS resolver address, if any.
    pub fn dns_resolver(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.dns.resolver.is_empty() {
            return Ok(None);
        }
        self.dns.resolver.parse().map(Some).map_err(|_| {
            ConfigError::Invalid("dns.resolver must be host:port, e.g. 127.0.0.1:53".into())
        })
    }

    /// The smarthost as (host, port), if outbound mail is on.
    pub fn smarthost(&self) -> Result<Option<(String, u16)>, ConfigError> {
        if self.outbound.smarthost.is_empty() {
            return Ok(None);
        }
        let invalid = || ConfigError::Invalid("outbound.smarthost must be host:port".into());
        let (host, port) = self
            .outbound
            .smarthost
            .rsplit_once(':')
            .ok_or_else(invalid)?;
        let port: u16 = port.parse().map_err(|_| invalid())?;
        if host.is_empty() {
            return Err(invalid());
        }
        Ok(Some((host.trim_matches(['[', ']']).to_string(), port)))
    }

    /// The RSA DKIM key file: `outbound.dkim_rsa_key`, or `<data_dir>/dkim-rsa.pem` when that is
    /// empty.
    pub fn dkim_rsa_key_path(&self) -> PathBuf {
        self.or_in_data_dir(&self.outbound.dkim_rsa_key, "dkim-rsa.pem")
    }

    /// The Ed25519 DKIM key file: `outbound.dkim_ed25519_key`, or `<data_dir>/dkim-key.pem` (the
    /// name from when it was the only key) when that is empty.
    pub fn dkim_ed25519_key_path(&self) -> PathBuf {
        self.or_in_data_dir(&self.outbound.dkim_ed25519_key, "dkim-key.pem")
    }

    fn or_in_data_dir(&self, path: &Path, default_name: &str) -> PathBuf {
        if path.as_os_str().is_empty() {
            self.relay.data_dir.join(default_name)
        } else {
            path.to_path_buf()
        }
    }

    pub fn dev_ca_dir(&self) -> PathBuf {
        self.relay.data_dir.join("dev-ca")
    }
}

/// The answer to a file (or environment) from before the relay had two DKIM keys.
const RENAMED_DKIM_SETTINGS: &str = "outbound.dkim_key and outbound.dkim_selector are replaced: \
the relay now signs with an RSA key and an Ed25519 key, each under its own selector. Rename \
dkim_key to dkim_ed25519_key and dkim_selector to dkim_ed25519_selector (if that file holds an RSA \
key: to dkim_rsa_key and dkim_rsa_selector). The other key is generated when missing; publish its \
record (schuilnaam mail dkim-record; README, Mail)";

/// `SCHUILNAAM_SECTION__KEY` variables only: single-underscore names (`SCHUILNAAM_TOKEN`) belong to the
/// CLI, not to the configuration.
fn environment() -> Env {
    Env::prefixed("SCHUILNAAM_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

/// Replaces the password of a URL (user-info or `password=` parameter) with `***` so that it can be
/// shown.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = redact_userinfo(base);
    match query {
        None => base,
        Some(query) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => param.to_string(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
