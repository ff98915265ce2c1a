//! Texts. In: an on-call acknowledgement ("OK 4821" from the registered phone of someone on the
//! alert's list, to any number the relay receives texts for) acknowledges the alert and is not kept;
//! any other text to an alias number is one more channel into `intake::submit` (channel `sms`), with
//! the organisation registered for the sender's number or the sender as a phone contact as its claim;
//! every refusal, acceptance and acknowledgement gets the same answer. Out: from the alias number,
//! only to a partner's number or a contact allowed on that alias, through the leak guard.

use super::pool;
use super::provider::{OutgoingSms, ProviderError};
use super::routing;
use super::voice::{self, audit_refusal, CallOutError};
use super::{Phone, PhoneNumber};
use crate::audit::{self, Actor, Event};
use crate::core::Core;
use crate::error::Error;
use crate::intake::{self, Claim, Rejected, Submission};
use crate::mail::leak::{self, Leak};
use crate::mailbox::{Channel, MessageKind};
use crate::metrics::Metrics;
use crate::oncall::alert::{self, SmsAck};
use crate::partner::{self, Contact};

/// Longest text accepted or sent (ten concatenated parts).
pub const MAX_TEXT_CHARS: usize = 1600;

/// What became of a text in.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Stored(String),
    Refused,
    /// An on-call acknowledgement ("OK 4821" from the registered phone of someone on the alert's
    /// list): the alert is acknowledged (or already was) and the text is not kept.
    Acknowledged,
    /// The same text (MessageSid) was handled before.
    Replay,
}

/// Takes a text in: decides, seals and stores it, or refuses it. `dedup_key` (the provider's
/// MessageSid) makes a replay a no-op. A failure to store (`Err`) should make the provider retry.
pub async fn receive(
    core: &Core,
    replay_window_seconds: u64,
    dedup_key: Option<&str>,
    from: Option<PhoneNumber>,
    to: &PhoneNumber,
    text: &str,
) -> Result<Received, Error> {
    if let Some(key) = dedup_key {
        if !voice::first_time(core, key, replay_window_seconds).await? {
            return Ok(Received::Replay);
        }
    }
    if let Some(sender) = &from {
        match alert::acknowledge_by_sms(core, sender, text).await {
            Ok(SmsAck::Acknowledged | SmsAck::AlreadyClosed) => return Ok(Received::Acknowledged),
            Ok(SmsAck::Refused | SmsAck::NotAnAck) => {}
            Err(e) => {
                if let Some(key) = dedup_key {
                    forget(core, key).await;
                }
                return Err(e);
            }
        }
    }
    let state = pool::state_of(&core.store, to, core.now()).await?;
    let alias = match routing::checked_number(state.clone(), from.as_ref()) {
        Ok(alias) => alias,
        Err(refused) => {
            Metrics::inc(&core.metrics.messages_refused_total);
            audit_refusal(
                core,
                crate::audit::Action::SmsRefused,
                &state,
                None,
                refused,
            );
            return Ok(Received::Refused);
        }
    };
    let from = from.expect("checked_number refuses a missing sender");
    let organisation = partner::by_phone(&core.store, &from).await?;
    let submission = Submission {
        to: alias,
        claim: Claim {
            organisation,
            contact: Some(Contact::Phone(from.clone())),
            pinned_certificate: None,
        },
        channel: Channel::Sms,
        kind: MessageKind::Bericht,
        urgent: false,
        sender_label: from.as_str().to_string(),
        subject: format!("SMS van {from}"),
        body: clean_text(text),
        mail: None,
    };
    match intake::submit(core, submission).await {
        Ok(id) => Ok(Received::Stored(id.to_string())),
        Err(Rejected::Refused(_)) => Ok(Received::Refused),
        Err(Rejected::Failed(e)) => {
            if let Some(key) = dedup_key {
                forget(core, key).await;
            }
            Err(e)
        }
    }
}

/// Lets a webhook that could not be handled be handled when the provider sends it again.
async fn forget(core: &Core, key: &str) {
    let result = async {
        let mut wtx = core.store.begin_write().await?;
        sqlx::query("DELETE FROM phone_webhooks_seen WHERE key = $1")
            .bind(key)
            .execute(wtx.conn())
            .await?;
        wtx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(cause = %e, "could not forget a webhook that failed");
    }
}

/// A text as stored: control characters other than line breaks and tabs dropped, at most
/// `MAX_TEXT_CHARS` characters.
fn clean_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .take(MAX_TEXT_CHARS)
        .collect()
}

/// Why a text out was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Route(#[from] CallOutError),
    #[error("a text has 1 to {MAX_TEXT_CHARS} characters")]
    Invalid,
    #[error(transparent)]
    Leak(#[from] Leak),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// A text from one of the worker's aliases, sent from its number. Returns the provider's id.
pub async fn send(
    core: &Core,
    phone: &Phone,
    worker_id: &crate::ids::WorkerId,
    handle: &str,
    from_alias: &str,
    to: &PhoneNumber,
    body: &str,
) -> Result<String, SendError> {
    let chars = body.chars().count();
    if body.trim().is_empty()
        || chars > MAX_TEXT_CHARS
        || body.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(SendError::Invalid);
    }
    let (alias, number) = voice::own_alias_with_number(core, worker_id, from_alias).await??;
    let sender = voice::destination_allowed(core, &alias, to)
        .await?
        .ok_or(SendError::Route(CallOutError::NotAllowed))?;
    let markers = crate::worker::markers(&core.store, worker_id).await?;
    leak::check(&core.server_key, &markers, body)?;
    let sms = OutgoingSms {
        from: number,
        to: to.clone(),
        body: body.to_string(),
        status_callback: delivery_callback(phone),
    };
    let accepted = phone.provider.send_sms(&sms).await?;
    let detail = match sender {
        intake::AcceptedSender::Organisation(organisation) => {
            format!("to=org:{}", organisation.name)
        }
        intake::AcceptedSender::AllowedContact => "to=contact".to_string(),
    };
    audit::record(
        &core.store,
        core.now(),
        Event::new(
            &Actor::Worker(handle.to_string()),
            crate::audit::Action::SmsSent,
            alias.as_str(),
        )
        .detail(&detail),
    )
    .await?;
    Ok(accepted.sid)
}

/// Where delivery reports for texts out go: the hosted provider's `StatusCallback` (signed like any
/// webhook), or Kannel's `dlr-url` (with the shared secret).
fn delivery_callback(phone: &Phone) -> Option<String> {
    match phone.config.provider {
        crate::config::PhoneProviderKind::Twiml => Some(phone.url("/phone/sms/status")),
        crate::config::PhoneProviderKind::KannelSip => Some(phone.url(&format!(
            "/phone/kannel/dlr?secret={}",
            phone.config.kannel_secret
        ))),
    }
}
