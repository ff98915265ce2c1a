//! Mail from a worker, leaving from an alias: compose → sanitise → leak guard → queue (durable) →
//! send over TLS (the outbound sender) → record. The message is built from scratch (whitelisted
//! headers only), signed with the relay's DKIM key and addressed only to a partner organisation's
//! domain or to a contact allowed on that alias.

use crate::alias::Address;
use crate::audit::{self, Actor, Event};
use crate::mail::compose::{self, Attachment};
use crate::mail::leak::{self, Leak};
use crate::mail::outbound::{self, Kind, Summary};
use crate::mail::sanitize::{self, Cleaned, Refused};
use crate::mail::EmailAddress;
use crate::web::AppState;

/// Longest subject, in characters.
const MAX_SUBJECT: usize = 998;

/// What a worker wants to send.
pub struct Draft {
    pub from_alias: Address,
    pub to: EmailAddress,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub kind: Kind,
}

/// Who is sending.
pub struct Sender<'a> {
    pub worker_id: &'a str,
    pub handle: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("outbound mail is not configured on this relay")]
    NotConfigured,
    #[error("you can only send from a live alias of a mailbox you belong to")]
    NotYourAlias,
    #[error("you can only write to a partner organisation or to a contact allowed on this alias")]
    RecipientNotAllowed,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Leak(#[from] Leak),
    #[error(transparent)]
    Attachment(#[from] Refused),
    #[error(transparent)]
    Internal(#[from] crate::Error),
}

/// What was queued: its id, and the attachments removed on the way (PGP keys and signatures), so
/// that the worker is told rather than left to wonder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Queued {
    pub id: String,
    pub removed_attachments: Vec<String>,
}

/// Checks, cleans, composes, signs and queues.
pub async fn send(state: &AppState, sender: Sender<'_>, draft: Draft) -> Result<Queued, SendError> {
    if state.smarthost.is_none() {
        return Err(SendError::NotConfigured);
    }
    let pseudonym = sending_pseudonym(state, sender.worker_id, &draft.from_alias).await?;
    let to_partner = crate::partner::by_mail_domain(&state.store, draft.to.domain())
        .await?
        .is_some();
    if !to_partner
        && !crate::partner::contact_allowed(
            &state.store,
            &state.server_key,
            &draft.from_alias,
            &draft.to,
        )
        .await?
    {
        return Err(SendError::RecipientNotAllowed);
    }
    validate(&draft)?;
    let (attachments, removed_attachments) = clean(draft.attachments)?;
    if draft.body.trim().is_empty() && attachments.is_empty() {
        return Err(SendError::Invalid(
            "the message is empty once its PGP keys and signatures are removed".into(),
        ));
    }
    let markers = crate::worker::markers(&state.store, sender.worker_id).await?;
    leak::check(&state.server_key, &markers, &draft.subject)?;
    leak::check(&state.server_key, &markers, &draft.body)?;
    // Each attachment's name and text; reading unpacks again, from a budget of its own.
    let mut budget = sanitize::Budget::per_message();
    for attachment in &attachments {
        let text = sanitize::readable_text(attachment, &mut budget)?;
        leak::check(&state.server_key, &markers, &text)?;
    }

    let now = state.now();
    let id = crate::crypto::random_id();
    let domain = state.domain.as_str();
    let message_id = compose::new_message_id(domain);
    let unsigned = compose::message(
        &compose::Headers {
            from: compose::mailbox(&pseudonym, draft.from_alias.as_str()),
            to: draft.to.as_str(),
            subject: &draft.subject,
            date: now,
            message_id: &message_id,
            in_reply_to: draft.in_reply_to.as_deref(),
            references: &draft.references,
        },
        &draft.body,
        &attachments,
    );
    let mut signed = state.dkim.sign(&unsigned)?.into_bytes();
    signed.extend_from_slice(&unsigned);
    let prepared = outbound::prepare(
        &state.server_key,
        outbound::Outgoing {
            envelope_from: outbound::return_path(&state.server_key, &id, domain),
            id: id.clone(),
            kind: draft.kind,
            worker_id: Some(sender.worker_id.to_string()),
            recipients: vec![draft.to.as_str().to_string()],
            message: &signed,
            summary: Some(&Summary {
                recipient: draft.to.as_str().to_string(),
                subject: draft.subject.clone(),
                from_alias: draft.from_alias.to_string(),
            }),
        },
    )?;
    let mut wtx = state.store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(sender.handle.to_string()),
            "mail.queued",
            &id,
        )
        .detail(&format!(
            "kind={} from={} to_domain={} attachments={}",
            draft.kind.as_str(),
            draft.from_alias,
            draft.to.domain(),
            attachments.len()
        )),
    )
    .await?;
    outbound::enqueue(&mut wtx, prepared, now).await?;
    wtx.commit().await?;
    state.outbound_wake.notify_one();
    Ok(Queued {
        id,
        removed_attachments,
    })
}

/// The pseudonym to send under, after checking that the alias is live and the worker's.
async fn sending_pseudonym(
    state: &AppState,
    worker_id: &str,
    alias: &Address,
) -> Result<String, SendError> {
    let pseudonym: Option<String> = sqlx::query_scalar(
        "SELECT w.pseudonym FROM aliases a \
         JOIN mailbox_members m ON m.mailbox_id = a.mailbox_id \
         JOIN workers w ON w.id = m.worker_id \
         WHERE a.address = $1 AND a.burned_at IS NULL AND m.worker_id = $2",
    )
    .bind(alias.as_str())
    .bind(worker_id)
    .fetch_optional(state.store.pool())
    .await
    .map_err(crate::Error::from)?;
    pseudonym.ok_or(SendError::NotYourAlias)
}

fn validate(draft: &Draft) -> Result<(), SendError> {
    if draft.subject.chars().count() > MAX_SUBJECT || draft.subject.chars().any(char::is_control) {
        return Err(SendError::Invalid(format!(
            "the subject has at most {MAX_SUBJECT} characters and no line breaks"
        )));
    }
    if draft.body.trim().is_empty() && draft.attachments.is_empty() {
        return Err(SendError::Invalid("the message is empty".into()));
    }
    if draft.body.contains("-----BEGIN PGP") {
        return Err(SendError::Invalid(
            "the message contains a PGP block, which names its owner; remove it".into(),
        ));
    }
    Ok(())
}

/// The cleaned attachments, and the names of those removed entirely.
fn clean(attachments: Vec<Attachment>) -> Result<(Vec<Attachment>, Vec<String>), SendError> {
    let mut kept = Vec::with_capacity(attachments.len());
    let mut removed = Vec::new();
    let mut budget = sanitize::Budget::per_message();
    for attachment in attachments {
        let name = attachment.filename.clone();
        match sanitize::sanitise(attachment, &mut budget)? {
            Cleaned::Kept(attachment) => kept.push(attachment),
            Cleaned::Removed => removed.push(name),
        }
    }
    Ok((kept, removed))
}
