//! The smarthost every message leaves through: TLS always required and always verified, the relay
//! domain as the client's name, and only a status code (never a server's text) kept from a failure.

use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{Config, SmarthostTls};
use crate::error::{Error, Result};
use crate::mail::outbound::Payload;

/// Sends through the smarthost; built once from the configuration.
pub struct Smarthost {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smarthost {
    /// `None` when no smarthost is configured. TLS is always required and always verified.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let Some((host, port)) = config
            .smarthost()
            .map_err(|e| Error::invalid(e.to_string()))?
        else {
            return Ok(None);
        };
        let mut tls = TlsParameters::builder(host.clone());
        if !config.outbound.extra_ca.as_os_str().is_empty() {
            let pem = std::fs::read(&config.outbound.extra_ca)?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| Error::Tls(e.to_string()))?,
            );
        }
        let tls = tls.build_rustls().map_err(|e| Error::Tls(e.to_string()))?;
        let tls = match config.outbound.tls {
            SmarthostTls::Starttls => Tls::Required(tls),
            SmarthostTls::Tls => Tls::Wrapper(tls),
        };
        // The relay introduces itself with the relay domain, never the machine's host name.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .hello_name(ClientId::Domain(config.relay.domain.clone()))
            .timeout(Some(Duration::from_secs(60)))
            .build();
        Ok(Some(Self { transport }))
    }

    pub async fn send(&self, payload: &Payload) -> std::result::Result<(), (bool, String)> {
        let parse = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|_| (true, "bad address".to_string()))
        };
        let from = if payload.envelope_from.is_empty() {
            None
        } else {
            Some(parse(&payload.envelope_from)?)
        };
        let to = payload
            .recipients
            .iter()
            .map(|r| parse(r))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let envelope = lettre::address::Envelope::new(from, to)
            .map_err(|_| (true, "bad envelope".to_string()))?;
        let message = data_encoding::BASE64
            .decode(payload.message_b64.as_bytes())
            .map_err(|_| (true, "damaged payload".to_string()))?;
        match self.transport.send_raw(&envelope, &message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Only the SMTP status code or the kind of failure is kept: server texts can quote
                // addresses.
                let code = match e.status() {
                    Some(code) => code.to_string(),
                    None if e.is_tls() || caused_by_tls(&e) => "tls".to_string(),
                    None if e.is_timeout() => "timeout".to_string(),
                    None => "connection".to_string(),
                };
                Err((e.is_permanent(), code))
            }
        }
    }
}

/// Whether a TLS failure (a certificate that did not verify, a failed handshake) lies under `error`:
/// lettre reports a failed STARTTLS handshake as a connection error.
fn caused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        cause = current.source();
    }
    false
}
