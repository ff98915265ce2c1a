//! What reaches a worker's real phone and mailbox when they are paged, and the channels that carry it.
//!
//! Every text is content-free and of constant shape: "Schuilnaam: nieuwe melding voor LET. Code 4821."
//! — no sender, subject, alias, organisation, case or team; the label is one configured word that is
//! the same for every alert, and the code is always four digits. The code ties an SMS reply ("OK
//! 4821"), a call and the web app to the alert. The e-mail is built the same way (fixed texts, a
//! fixed-length Message-ID) and leaves through the durable outbound queue.
//!
//! A channel is a small trait: the SMS and voice-call channels speak to the telephony provider, the
//! e-mail channel queues a message; tests install their own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::core::Core;
use crate::error::{Error, Result};
use crate::ids::{AlertId, NotificationId, OutboundId, WorkerId};
use crate::mail::outbound::{self, Kind};
use crate::mail::{compose, EmailAddress};
use crate::phone::PhoneNumber;

/// How a notification travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Sms,
    Call,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [ChannelKind::Sms, ChannelKind::Call, ChannelKind::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Call => "call",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| Error::invalid("a channel is sms, call or email"))
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four digits that name an alert in every text about it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AlertCode(String);

impl AlertCode {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(text.to_string()))
        } else {
            Err(Error::invalid("an alert code has four digits"))
        }
    }

    /// A random code (uniqueness among live alerts is the database's to enforce).
    pub fn random() -> Self {
        use rand::Rng as _;
        Self(format!("{:04}", rand::rngs::OsRng.gen_range(0..10_000u32)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AlertCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a notification goes out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A step of an alert's escalation.
    Alert { alert_id: AlertId, code: AlertCode },
    /// "Je dienst begint": the incoming worker at a handover.
    Handover,
    /// The rota has a gap in the coming days: every member, daily, until it is filled.
    Gap,
}

impl Purpose {
    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Alert { .. } => "alert",
            Purpose::Handover => "handover",
            Purpose::Gap => "gap",
        }
    }
}

/// The content-free text of an SMS (and of the e-mail's first line).
pub fn text(label: &str, purpose: &Purpose) -> String {
    match purpose {
        Purpose::Alert { code, .. } => alert_text(label, code),
        Purpose::Handover => format!("Schuilnaam: je dienst voor {label} begint nu."),
        Purpose::Gap => format!("Schuilnaam: het rooster van {label} heeft een gat."),
    }
}

/// "Schuilnaam: nieuwe melding voor LET. Code 4821." — the same for every kind of alert.
pub fn alert_text(label: &str, code: &AlertCode) -> String {
    format!("Schuilnaam: nieuwe melding voor {label}. Code {code}.")
}

/// What the voice call says (digit by digit, so a speech engine does not read "vierduizend…").
pub fn spoken_text(label: &str, code: &AlertCode) -> String {
    let digits: Vec<String> = code.as_str().chars().map(String::from).collect();
    format!(
        "Schuilnaam. Nieuwe melding voor {label}. Code {}. Druk 1 om te bevestigen.",
        digits.join(" ")
    )
}

/// TwiML for an alert call: says the code and waits for one key; `action` receives the key press
/// (a signed webhook). Silence repeats the text once, then the call ends.
pub fn call_twiml(label: &str, code: &AlertCode, action: &str) -> String {
    let say = xml_escape(&spoken_text(label, code));
    let action = xml_escape(action);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Response>\
         <Gather numDigits=\"1\" timeout=\"10\" action=\"{action}\" method=\"POST\">\
         <Say language=\"nl-NL\">{say}</Say>\
         </Gather>\
         <Gather numDigits=\"1\" timeout=\"10\" action=\"{action}\" method=\"POST\">\
         <Say language=\"nl-NL\">{say}</Say>\
         </Gather>\
         <Hangup/>\
         </Response>"
    )
}

/// TwiML after a key press: confirmed, or not (a wrong key, or the alert was closed meanwhile).
pub fn keypress_twiml(acknowledged: bool) -> String {
    let say = if acknowledged {
        "Bevestigd. Dank je."
    } else {
        "Niet bevestigd."
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Response><Say language=\"nl-NL\">{say}</Say><Hangup/></Response>"
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The e-mail subject: fixed per purpose.
pub fn email_subject(purpose: &Purpose) -> &'static str {
    match purpose {
        Purpose::Alert { .. } => "Schuilnaam: nieuwe melding",
        Purpose::Handover => "Schuilnaam: je dienst begint",
        Purpose::Gap => "Schuilnaam: gat in het rooster",
    }
}

/// The e-mail body: the text and fixed lines.
pub fn email_body(label: &str, purpose: &Purpose) -> String {
    let action = match purpose {
        Purpose::Alert { code, .. } => {
            format!("Log in om te bevestigen, of antwoord op de sms met: OK {code}")
        }
        Purpose::Handover => "Log in om te zien wie na jou dienst heeft.".to_string(),
        Purpose::Gap => "Log in om het rooster te bekijken.".to_string(),
    };
    format!(
        "{}\r\n{action}\r\n\r\nDit bericht is automatisch verstuurd en bevat geen inhoud.\r\n",
        text(label, purpose)
    )
}

/// One notification, ready for its channel. The real phone number and e-mail address were opened
/// from the worker's sealed contact details for this send only.
pub struct Delivery {
    pub notification_id: NotificationId,
    pub purpose: Purpose,
    pub step: i64,
    pub worker_id: WorkerId,
    pub phone: PhoneNumber,
    pub email: EmailAddress,
    /// The content-free SMS text (`text(label, purpose)`).
    pub text: String,
}

/// A channel's answer when it handed the notification on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the SMS or call, or the outbound queue's id of the e-mail.
    pub reference: Option<String>,
}

/// Why a channel could not hand a notification on. The text is a short code ("http-503",
/// "timeout", "tls"): never a number, an address or a provider's error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Worth another try (5xx, timeout, connection or TLS failure).
    Temporary(String),
    /// Another try will not help (the provider refused the request).
    Permanent(String),
}

impl SendError {
    pub fn code(&self) -> &str {
        match self {
            SendError::Temporary(code) | SendError::Permanent(code) => code,
        }
    }
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Sent, SendError>> + Send + 'a>>;

/// A way to reach a worker.
pub trait Channel: Send + Sync + 'static {
    fn kind(&self) -> ChannelKind;
    fn send<'a>(&'a self, core: &'a Core, delivery: &'a Delivery) -> SendFuture<'a>;
}

/// E-mail through the durable outbound queue: the notification is "sent" once queued; the outbound
/// sender delivers it over TLS with its own retries.
pub struct EmailChannel;

impl Channel for EmailChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    fn send<'a>(&'a self, core: &'a Core, delivery: &'a Delivery) -> SendFuture<'a> {
        Box::pin(async move {
            let id = queue_email(core, delivery)
                .await
                .map_err(|_| SendError::Temporary("queue".into()))?;
            core.outbound_wake.notify_one();
            Ok(Sent {
                reference: Some(id.to_string()),
            })
        })
    }
}

async fn queue_email(core: &Core, delivery: &Delivery) -> Result<OutboundId> {
    let label = core.oncall.label().to_string();
    let keys = core.server_key.clone();
    let dkim = core.dkim.clone();
    let domain = core.config.relay.domain.clone();
    let from_local = core.config.outbound.notify_from.clone();
    let to = delivery.email.as_str().to_string();
    let worker_id = delivery.worker_id.clone();
    let purpose = delivery.purpose.clone();
    let now = core.now();
    // Signing (RSA) and sealing are CPU work: off the async threads.
    let prepared = core
        .cpu
        .run(move || -> Result<outbound::Prepared> {
            let id = OutboundId::random();
            let from = format!("{from_local}@{domain}");
            let message_id = compose::new_message_id(&domain);
            let unsigned = compose::message(
                &compose::Headers {
                    from: compose::mailbox("schuilnaam", &from),
                    to: &to,
                    subject: email_subject(&purpose),
                    date: now,
                    message_id: &message_id,
                    in_reply_to: None,
                    references: &[],
                },
                &email_body(&label, &purpose),
                &[],
            );
            let mut signed = dkim.sign(&unsigned)?.into_bytes();
            signed.extend_from_slice(&unsigned);
            outbound::prepare(
                &keys,
                outbound::Outgoing {
                    envelope_from: outbound::return_path(&keys, &id, &domain),
                    id,
                    kind: Kind::Notification,
                    worker_id: Some(worker_id),
                    recipients: vec![to.clone()],
                    message: &signed,
                    summary: None,
                },
            )
        })
        .await??;
    let id = prepared.id.clone();
    let mut wtx = core.store.begin_write().await?;
    outbound::enqueue(&mut wtx, prepared, now).await?;
    wtx.commit().await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_text_is_the_documented_sentence() {
        assert_eq!(
            alert_text("LET", &AlertCode::parse("4821").unwrap()),
            "Schuilnaam: nieuwe melding voor LET. Code 4821."
        );
    }

    #[test]
    fn every_code_gives_a_text_of_one_length() {
        let lengths: std::collections::BTreeSet<usize> = (0..10_000)
            .step_by(7)
            .map(|n| {
                let code = AlertCode::parse(&format!("{n:04}")).unwrap();
                let alert = Purpose::Alert {
                    alert_id: AlertId::random(),
                    code: code.clone(),
                };
                assert_eq!(
                    email_body("LET", &alert).len(),
                    email_body(
                        "LET",
                        &Purpose::Alert {
                            alert_id: AlertId::random(),
                            code: AlertCode::parse("0000").unwrap()
                        }
                    )
                    .len()
                );
                text("LET", &alert).len() + spoken_text("LET", &code).len()
            })
            .collect();
        assert_eq!(lengths.len(), 1, "{lengths:?}");
    }

    #[test]
    fn codes_are_four_digits() {
        for _ in 0..1000 {
            AlertCode::parse(AlertCode::random().as_str()).unwrap();
        }
        for bad in ["", "123", "12345", "12a4", "-123"] {
            assert!(AlertCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn call_twiml_gathers_one_digit_and_says_the_code() {
        let twiml = call_twiml(
            "LET",
            &AlertCode::parse("4821").unwrap(),
            "https://relay.example/phone/oncall/keypress/abc?x=1&y=2",
        );
        assert!(twiml.contains("<Gather numDigits=\"1\""));
        assert!(twiml.contains("Code 4 8 2 1. Druk 1 om te bevestigen."));
        assert!(twiml.contains("abc?x=1&amp;y=2"));
    }
}
