//! The provider behind the phone aliases: a trait the rest of the relay talks to, and its adapters.
//! `TwilioRest` speaks the Twilio-compatible REST dialect (Twilio, SignalWire):
//! `POST {api_base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` and `Calls.json` with basic
//! auth, `GET`/`DELETE` of recordings. `KannelSms` sends texts through Kannel's smsbox `sendsms`.
//!
//! TLS to the API is always verified (the public roots, plus `[phone] api_ca` when set); redirects are
//! not followed (they would carry the credentials elsewhere). Errors never carry the provider's text,
//! which can quote numbers: only the HTTP status and the provider's numeric error code.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::PhoneNumber;
use crate::config::PhoneConfig;
use crate::error::{Error, Result};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one REST request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest recording fetched (a two-minute WAV at 8 kHz is about 2 MB).
pub const MAX_RECORDING_BYTES: usize = 16 * 1024 * 1024;

/// A text to send.
#[derive(Clone, Debug)]
pub struct OutgoingSms {
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    pub body: String,
    /// Where the provider reports delivery (`StatusCallback` / Kannel's `dlr-url`).
    pub status_callback: Option<String>,
}

/// What a call does once the callee answers.
#[derive(Clone, Debug)]
pub enum CallScript {
    /// The provider fetches TwiML from this URL (signed like any webhook).
    Url(String),
    /// Inline TwiML.
    Twiml(String),
}

/// A call to place.
#[derive(Clone, Debug)]
pub struct OutgoingCall {
    /// The caller ID (an alias number from the pool).
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    pub script: CallScript,
    /// Ring this long before giving up.
    pub timeout_seconds: u32,
    /// Where the provider reports the call's end (`StatusCallback`).
    pub status_callback: Option<String>,
}

/// The provider's id of what it accepted (`SM…`, `CA…`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub sid: String,
}

/// A recording as fetched.
pub struct Recording {
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A provider-assigned id (`CA…`, `SM…`, `RE…`; SignalWire uses UUIDs): 2 to 64 letters, digits and
/// hyphens, so it is safe in a URL path and a database key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sid(String);

impl Sid {
    /// One of the shapes the providers issue: Twilio's two capital letters and 32 hex digits (`CA…`,
    /// `SM…`, `RE…`), SignalWire's UUID, or Telnyx's `v3:` ids. Strict on purpose: Twilio's signature
    /// runs every name and value together, so a lenient id could absorb the next parameter
    /// (`CA…CallStatusringing`) and turn a captured webhook into a "new" call with the same signature.
    /// A `v3:` id cannot be made that way: Telnyx signs the body's bytes as they are.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let twilio = bytes.len() == 34
            && bytes[..2].iter().all(u8::is_ascii_uppercase)
            && bytes[2..].iter().all(u8::is_ascii_hexdigit);
        let uuid = bytes.len() == 36
            && bytes.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        let telnyx = text.strip_prefix("v3:").is_some_and(|rest| {
            (16..=100).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        (twilio || uuid || telnyx).then(|| Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// This path cannot do it (calls through Kannel, recordings without a hosted provider).
    #[error("the configured phone provider cannot do this")]
    NotSupported,
    /// The provider refused the request (bad number, no credit, …): retrying will not help.
    #[error("the phone provider refused the request (HTTP {status}, code {code})")]
    Refused { status: u16, code: i64 },
    /// The provider could not be reached or failed: retry later.
    #[error("the phone provider is unavailable: {0}")]
    Unavailable(String),
}

impl From<ProviderError> for Error {
    fn from(error: ProviderError) -> Self {
        Error::Conflict(error.to_string())
    }
}

/// What the relay asks of a phone provider.
pub trait Provider: Send + Sync {
    fn send_sms<'a>(
        &'a self,
        sms: &'a OutgoingSms,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>>;
    fn fetch_recording<'a>(
        &'a self,
        sid: &'a Sid,
    ) -> BoxFuture<'a, Result<Recording, ProviderError>>;
    /// Deletes a recording at the provider; one that is already gone counts as deleted.
    fn delete_recording<'a>(&'a self, sid: &'a Sid) -> BoxFuture<'a, Result<(), ProviderError>>;
}

/// An HTTPS client for a provider API: verified TLS (public roots plus an optional extra CA), no
/// redirects, a timeout.
pub fn https_client(extra_ca: &std::path::Path) -> Result<reqwest::Client> {
    crate::tls::install_default_provider();
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("schuilnaam/", env!("CARGO_PKG_VERSION")));
    if !extra_ca.as_os_str().is_empty() {
        let pem = std::fs::read(extra_ca)
            .map_err(|e| Error::invalid(format!("phone.api_ca {}: {e}", extra_ca.display())))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| Error::invalid("phone.api_ca holds no readable PEM certificate"))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Tls(format!("phone API client: {e}")))
}

/// The Twilio-compatible REST API.
pub struct TwilioRest {
    client: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: SecretString,
}

/// The error body of the Twilio-compatible API: only the numeric code is kept.
#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<i64>,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

impl TwilioRest {
    pub fn new(config: &PhoneConfig, auth_token: SecretString) -> Result<Self> {
        Ok(Self {
            client: https_client(&config.api_ca)?,
            base: config.api_base_url.trim_end_matches('/').to_string(),
            account_sid: config.account_sid.clone(),
            auth_token,
        })
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}/{tail}",
            self.base, self.account_sid
        )
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
    }

    async fn create(
        &self,
        resource: &str,
        form: &[(&str, &str)],
    ) -> Result<Accepted, ProviderError> {
        let response = self
            .request(reqwest::Method::POST, self.url(resource))
            .form(form)
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(refusal(response).await);
        }
        let created: Created = response
            .json()
            .await
            .map_err(|_| ProviderError::Unavailable("unreadable answer".into()))?;
        let sid = Sid::parse(&created.sid)
            .ok_or_else(|| ProviderError::Unavailable("answer without a valid sid".into()))?;
        Ok(Accepted {
            sid: sid.as_str().to_string(),
        })
    }
}

fn unavailable(error: reqwest::Error) -> ProviderError {
    // reqwest's text names the URL, which holds no number (only the account and resource).
    let kind = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection failed (or the certificate was not trusted)"
    } else {
        "request failed"
    };
    ProviderError::Unavailable(kind.into())
}

async fn refusal(response: reqwest::Response) -> ProviderError {
    let status = response.status().as_u16();
    let code = response
        .json::<ApiError>()
        .await
        .ok()
        .and_then(|e| e.code)
        .unwrap_or(0);
    if status >= 500 || status == 429 {
        ProviderError::Unavailable(format!("HTTP {status}"))
    } else {
        ProviderError::Refused { status, code }
    }
}

impl Provider for TwilioRest {
    fn send_sms<'a>(
        &'a self,
        sms: &'a OutgoingSms,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let mut form = vec![
                ("From", sms.from.as_str()),
                ("To", sms.to.as_str()),
                ("Body", sms.body.as_str()),
            ];
            if let Some(callback) = &sms.status_callback {
                form.push(("StatusCallback", callback));
            }
            self.create("Messages.json", &form).await
        })
    }

    fn place_call<'a>(
        &'a self,
        call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let timeout = call.timeout_seconds.to_string();
            let mut form = vec![
                ("From", call.from.as_str()),
                ("To", call.to.as_str()),
                ("Timeout", timeout.as_str()),
            ];
            match &call.script {
                CallScript::Url(url) => form.push(("Url", url)),
                CallScript::Twiml(twiml) => form.push(("Twiml", twiml)),
            }
            if let Some(callback) = &call.status_callback {
                form.push(("StatusCallback", callback));
            }
            self.create("Calls.json", &form).await
        })
    }

    fn fetch_recording<'a>(
        &'a self,
        sid: &'a Sid,
    ) -> BoxFuture<'a, Result<Recording, ProviderError>> {
        Box::pin(async move {
            let url = self.url(&format!("Recordings/{}.wav", sid.as_str()));
            let mut response = self
                .request(reqwest::Method::GET, url)
                .send()
                .await
                .map_err(unavailable)?;
            if !response.status().is_success() {
                return Err(refusal(response).await);
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .filter(|v| v.starts_with("audio/"))
                .unwrap_or("audio/x-wav")
                .to_string();
            let mut data = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
                if data.len() + chunk.len() > MAX_RECORDING_BYTES {
                    return Err(ProviderError::Refused {
                        status: 413,
                        code: 0,
                    });
                }
                data.extend_from_slice(&chunk);
            }
            Ok(Recording { content_type, data })
        })
    }

    fn delete_recording<'a>(&'a self, sid: &'a Sid) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let url = self.url(&format!("Recordings/{}.json", sid.as_str()));
            let response = self
                .request(reqwest::Method::DELETE, url)
                .send()
                .await
                .map_err(unavailable)?;
            match response.status().as_u16() {
                200..=299 | 404 => Ok(()),
                _ => Err(refusal(response).await),
            }
        })
    }
}

/// Texts through Kannel's smsbox (`sendsms`); Kannel speaks SMPP to the operator. No calls, no
/// recordings: on the self-hosted path voice is routed by Kamailio.
pub struct KannelSms {
    client: reqwest::Client,
    url: String,
    username: String,
    password: SecretString,
}

impl KannelSms {
    pub fn new(config: &PhoneConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::Tls(format!("Kannel client: {e}")))?;
        Ok(Self {
            client,
            url: config.kannel_sendsms_url.clone(),
            username: config.kannel_username.clone(),
            password: SecretString::from(config.kannel_password.clone()),
        })
    }
}

/// A number as Kannel and SMPP write it: international digits without `+`.
pub fn network_digits(number: &PhoneNumber) -> &str {
    number.as_str().trim_start_matches('+')
}

impl Provider for KannelSms {
    fn send_sms<'a>(
        &'a self,
        sms: &'a OutgoingSms,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async move {
            let id = crate::crypto::random_id();
            let mut query: Vec<(&str, &str)> = vec![
                ("username", &self.username),
                ("password", self.password.expose_secret()),
                ("from", network_digits(&sms.from)),
                ("to", network_digits(&sms.to)),
                ("text", &sms.body),
                ("charset", "UTF-8"),
            ];
            // GSM 7-bit carries plain ASCII; anything else goes as UCS-2 or it arrives as '?'.
            if !sms
                .body
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control() || c == '\n')
            {
                query.push(("coding", "2"));
            }
            let dlr;
            if let Some(callback) = &sms.status_callback {
                dlr = format!("{callback}&status=%d");
                query.push(("dlr-mask", "3"));
                query.push(("dlr-url", &dlr));
            }
            let response = self
                .client
                .get(&self.url)
                .query(&query)
                .send()
                .await
                .map_err(unavailable)?;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            match status {
                200..=299 if text.starts_with("0:") || text.contains("Accepted") => {
                    Ok(Accepted { sid: id })
                }
                500..=599 => Err(ProviderError::Unavailable(format!("HTTP {status}"))),
                _ => Err(ProviderError::Refused { status, code: 0 }),
            }
        })
    }

    fn place_call<'a>(
        &'a self,
        _call: &'a OutgoingCall,
    ) -> BoxFuture<'a, Result<Accepted, ProviderError>> {
        Box::pin(async { Err(ProviderError::NotSupported) })
    }

    fn fetch_recording<'a>(
        &'a self,
        _sid: &'a Sid,
    ) -> BoxFuture<'a, Result<Recording, ProviderError>> {
        Box::pin(async { Err(ProviderError::NotSupported) })
    }

    fn delete_recording<'a>(&'a self, _sid: &'a Sid) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(ProviderError::NotSupported) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_safe_in_a_path() {
        assert!(Sid::parse("RE0123456789abcdef0123456789abcdef").is_some());
        assert!(Sid::parse("b3877c40-da60-4998-90ad-b792e98472af").is_some());
        assert!(Sid::parse("v3:AbC-_0123456789xyz").is_some());
        for bad in [
            "",
            "R",
            "RE/../x",
            "RE?x=1",
            "RE x",
            &"a".repeat(65),
            "v3:short",
        ] {
            assert!(Sid::parse(bad).is_none(), "{bad:?}");
        }
    }

    /// The next parameter folded into the id (same signature, "new" id) is not an id.
    #[test]
    fn a_sid_cannot_absorb_the_next_parameter() {
        for folded in [
            "CA0123456789abcdef0123456789abcdefCallStatusringing",
            "SM0123456789abcdef0123456789abcdefNumMedia0",
            "RE0123456789abcdef0123456789abcdefRecordingStatuscompleted",
            "b3877c40-da60-4998-90ad-b792e98472afCallStatusringing",
            "CA0123456789abcdef0123456789abcde",
            "ca0123456789abcdef0123456789abcdef",
        ] {
            assert!(Sid::parse(folded).is_none(), "{folded}");
        }
    }

    #[test]
    fn kannel_numbers_have_no_plus() {
        let n = PhoneNumber::parse("+31612345678").unwrap();
        assert_eq!(network_digits(&n), "31612345678");
    }
}
