//! Phone aliases: a pool of rented numbers, each assigned to a worker's or a team's alias. A call or a
//! text to an alias number is judged by the same rule as mail (`intake::decide`, through `routing`),
//! answered in the provider's dialect (`twiml` for a hosted provider, `sip` for Kamailio, `kannel` for
//! SMS), and what is kept (texts, voicemail) is sealed into the mailbox through `intake::submit`.
//! Workers' real numbers stay sealed to the server key and are opened only to build a `<Dial>` or a
//! REST request; no number is ever logged.

pub mod kannel;
pub mod pool;
pub mod provider;
pub mod ring;
pub mod routing;
pub mod signature;
pub mod sip;
pub mod sms;
pub mod twiml;
pub mod voice;
pub mod voicemail;

use std::fmt;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use crate::config::{PhoneConfig, PhoneProviderKind};
use crate::error::{Error, Result};

/// A phone number in E.164 form (`+31612345678`). Dutch national notation (`06-12 34 56 78`) is
/// accepted on input and converted.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(text: &str) -> Result<Self> {
        let compact: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let international = if let Some(rest) = compact.strip_prefix("00") {
            format!("+{rest}")
        } else if let Some(rest) = compact.strip_prefix('0') {
            format!("+31{rest}")
        } else {
            compact
        };
        let digits = international.strip_prefix('+').unwrap_or_default();
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(Error::invalid(
                "not a phone number (use +31612345678 or 0612345678)",
            ));
        }
        Ok(Self(international))
    }

    /// A number as telephone networks hand it over: international digits without `+` (Kannel,
    /// SIP user parts) or any notation `parse` takes.
    pub fn from_network(text: &str) -> Result<Self> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && !text.starts_with('0') {
            Self::parse(&format!("+{text}"))
        } else {
            Self::parse(text)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The phone side of the relay, built from `[phone]` when it is enabled: the provider (REST for the
/// hosted path, Kannel for the self-hosted one), the secret that signs webhooks, and the public URL
/// the relay names its callbacks under.
pub struct Phone {
    pub config: PhoneConfig,
    pub provider: Arc<dyn provider::Provider>,
    /// Woken when a voicemail job was stored.
    pub voicemail_wake: Arc<tokio::sync::Notify>,
    auth_token: SecretString,
    /// Telnyx's Ed25519 key, when webhooks are signed that way.
    webhook_public_key: Option<[u8; 32]>,
    public_base: String,
}

/// How a webhook proves it comes from the provider.
#[derive(Clone, Copy, Debug)]
pub enum WebhookCheck<'a> {
    /// `X-Twilio-Signature`: HMAC-SHA1 with the auth token (Twilio, SignalWire).
    Hmac(&'a [u8]),
    /// `telnyx-signature-ed25519` over `telnyx-timestamp|body` (Telnyx TeXML).
    Ed25519(&'a [u8; 32]),
    /// Nothing can sign (the self-hosted path): no signed webhook is accepted.
    Refuse,
}

impl Phone {
    /// `None` when `[phone] enabled` is false.
    pub fn from_config(config: &PhoneConfig) -> Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        let auth_token = load_auth_token(config)?;
        let provider: Arc<dyn provider::Provider> = match config.provider {
            PhoneProviderKind::Twiml => {
                Arc::new(provider::TwilioRest::new(config, auth_token.clone())?)
            }
            PhoneProviderKind::KannelSip => Arc::new(provider::KannelSms::new(config)?),
        };
        Ok(Some(Self::with_provider(config, auth_token, provider)))
    }

    /// With a provider of the caller's choosing (tests, and the on-call capability's own adapters).
    pub fn with_provider(
        config: &PhoneConfig,
        auth_token: SecretString,
        provider: Arc<dyn provider::Provider>,
    ) -> Self {
        Self {
            config: config.clone(),
            provider,
            voicemail_wake: Arc::new(tokio::sync::Notify::new()),
            auth_token,
            webhook_public_key: (config.provider == PhoneProviderKind::Twiml)
                .then(|| signature::parse_ed25519_public_key(&config.webhook_public_key))
                .flatten(),
            public_base: config.public_base_url.trim_end_matches('/').to_string(),
        }
    }

    /// How webhooks are signed: with Telnyx's public key when one is configured, else with the auth
    /// token; when there is neither (the self-hosted path), no signed webhook is accepted.
    pub fn webhook_check(&self) -> WebhookCheck<'_> {
        if let Some(key) = &self.webhook_public_key {
            return WebhookCheck::Ed25519(key);
        }
        let token = self.auth_token.expose_secret().as_bytes();
        if token.is_empty() {
            WebhookCheck::Refuse
        } else {
            WebhookCheck::Hmac(token)
        }
    }

    /// The public URL of one of the relay's phone paths (`/phone/voice/dial?step=1`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.public_base)
    }
}

fn load_auth_token(config: &PhoneConfig) -> Result<SecretString> {
    if !config.auth_token_file.as_os_str().is_empty() {
        let text = std::fs::read_to_string(&config.auth_token_file).map_err(|e| {
            Error::invalid(format!(
                "phone.auth_token_file {}: {e}",
                config.auth_token_file.display()
            ))
        })?;
        return Ok(SecretString::from(text.trim().to_string()));
    }
    Ok(SecretString::from(config.auth_token.clone()))
}

/// Checks `[phone]` (called from `Config::validate`); the text names the setting.
pub fn validate_config(config: &PhoneConfig) -> std::result::Result<(), String> {
    if config.quarantine_days == 0 {
        return Err("phone.quarantine_days must be positive".into());
    }
    if !(5..=120).contains(&config.ring_seconds) {
        return Err("phone.ring_seconds must be between 5 and 120".into());
    }
    if !(5..=600).contains(&config.voicemail_max_seconds) {
        return Err("phone.voicemail_max_seconds must be between 5 and 600".into());
    }
    if config.max_body_bytes < 1024 {
        return Err("phone.max_body_bytes must be at least 1024".into());
    }
    if !config.sip_target.contains("{number}") {
        return Err("phone.sip_target must contain {number}".into());
    }
    if !config.enabled {
        return Ok(());
    }
    let base = reqwest::Url::parse(&config.public_base_url)
        .map_err(|_| "phone.public_base_url must be an https:// URL".to_string())?;
    if base.scheme() != "https" || base.query().is_some() {
        return Err("phone.public_base_url must be an https:// URL without a query".into());
    }
    match config.provider {
        PhoneProviderKind::Twiml => {
            let api = reqwest::Url::parse(&config.api_base_url)
                .map_err(|_| "phone.api_base_url must be an https:// URL".to_string())?;
            if api.scheme() != "https" {
                return Err(
                    "phone.api_base_url must be an https:// URL (TLS is always verified)".into(),
                );
            }
            let sid_ok = !config.account_sid.is_empty()
                && config
                    .account_sid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !sid_ok {
                return Err("phone.account_sid is required (letters, digits, -)".into());
            }
            if config.auth_token.is_empty() && config.auth_token_file.as_os_str().is_empty() {
                return Err("phone.auth_token or phone.auth_token_file is required".into());
            }
            if !config.webhook_public_key.is_empty()
                && signature::parse_ed25519_public_key(&config.webhook_public_key).is_none()
            {
                return Err(
                    "phone.webhook_public_key must be an Ed25519 public key in base64 (32 bytes)"
                        .into(),
                );
            }
        }
        PhoneProviderKind::KannelSip => {
            let url = reqwest::Url::parse(&config.kannel_sendsms_url)
                .map_err(|_| "phone.kannel_sendsms_url must be a URL".to_string())?;
            let loopback = url.host_str().is_some_and(|host| {
                host == "localhost"
                    || host
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                return Err(
                    "phone.kannel_sendsms_url must be https://, or http:// on loopback".into(),
                );
            }
            if config.kannel_secret.len() < 16 || config.sip_secret.len() < 16 {
                return Err(
                    "phone.kannel_secret and phone.sip_secret need at least 16 characters".into(),
                );
            }
        }
    }
    Ok(())
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Real numbers are personal data: `Debug` shows only the country code.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({}…)", &self.0[..3.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations_normalise_to_e164() {
        for input in [
            "+31612345678",
            "+31 6 12345678",
            "0612345678",
            "06-12 34 56 78",
            "06-12345678",
            "0031612345678",
            "(06) 12345678",
        ] {
            assert_eq!(
                PhoneNumber::parse(input).unwrap().as_str(),
                "+31612345678",
                "{input}"
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for input in [
            "",
            "+",
            "+31",
            "06-1234",
            "+31abc45678",
            "+0612345678",
            "1234567890123456789",
        ] {
            assert!(PhoneNumber::parse(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn debug_hides_the_number() {
        let number = PhoneNumber::parse("+31612345678").unwrap();
        assert!(!format!("{number:?}").contains("12345678"));
    }
}
