//! Mail from a worker, leaving from an alias: compose → sanitise → leak guard → queue (durable) →
//! send over TLS (the outbound sender) → record. The message is built from scratch (whitelisted
//! headers only), signed with the relay's DKIM key and addressed only to a partner organisation's
//! domain or to a contact allowed on that alias. The CPU-heavy middle (cleaning attachments, the leak
//! guard, composing, signing, sealing) runs in the core's CPU pool, off the async threads.

use std::collections::HashSet;
use std::sync::Arc;

use crate::alias::{Address, Domain};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::crypto::ServerKey;
use crate::ids::{OutboundId, WorkerId};
use crate::mail::compose::{self, Attachment};
use crate::mail::dkim::DkimKey;
use crate::mail::leak::{self, Leak, MarkerKind};
use crate::mail::outbound::{self, Kind, Prepared, Summary};
use crate::mail::sanitize::{self, Cleaned, Refused};
use crate::mail::{EmailAddress, MsgId};
use crate::mailbox::Letter;
use crate::partner::{self, Contact};

/// Longest subject, in characters.
const MAX_SUBJECT: usize = 998;

/// What a worker wants to send.
pub struct Draft {
    pub from_alias: Address,
    pub to: EmailAddress,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
    pub in_reply_to: Option<MsgId>,
    pub references: Vec<MsgId>,
    pub kind: Kind,
}

impl Draft {
    /// A reply to a letter that came by e-mail: from the alias it was sent to, to the address that sent
    /// it, with "Re:" before its subject and threaded under its Message-ID.
    pub fn answering(
        letter: &Letter,
        body: String,
        attachments: Vec<Attachment>,
    ) -> Result<Self, SendError> {
        let reply_to = letter.reply_to.as_deref().ok_or(SendError::NotByMail)?;
        let subject = if letter.subject.to_ascii_lowercase().starts_with("re:") {
            letter.subject.clone()
        } else {
            format!("Re: {}", letter.subject)
        };
        // Letters keep only valid Message-IDs; parsing again drops anything an older letter kept.
        let parent = letter
            .message_id
            .as_deref()
            .and_then(|id| MsgId::parse(id).ok());
        let mut references: Vec<MsgId> = letter
            .references
            .iter()
            .filter_map(|id| MsgId::parse(id).ok())
            .collect();
        references.extend(parent.clone());
        let skip = references
            .len()
            .saturating_sub(crate::mail::inspect::MAX_REFERENCES);
        references.drain(..skip);
        Ok(Self {
            from_alias: Address::parse(&letter.to)?,
            to: EmailAddress::parse_recipient(reply_to)
                .map_err(|e| SendError::Invalid(format!("the sender's address: {e}")))?,
            subject,
            body,
            attachments,
            in_reply_to: parent,
            references,
            kind: Kind::Reply,
        })
    }
}

/// Who is sending.
pub struct Sender<'a> {
    pub worker_id: &'a WorkerId,
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
    #[error("this message did not come by e-mail; there is no address to answer")]
    NotByMail,
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
    pub id: OutboundId,
    pub removed_attachments: Vec<String>,
}

/// Checks, cleans, composes, signs and queues.
pub async fn send(core: &Core, sender: Sender<'_>, draft: Draft) -> Result<Queued, SendError> {
    if core.smarthost.is_none() {
        return Err(SendError::NotConfigured);
    }
    let pseudonym =
        crate::worker::pseudonym_sending_from(&core.store, sender.worker_id, &draft.from_alias)
            .await?
            .ok_or(SendError::NotYourAlias)?;
    let to_partner = partner::by_mail_domain(&core.store, draft.to.domain())
        .await?
        .is_some();
    let contact = Contact::Email(draft.to.clone());
    if !to_partner
        && !partner::contact_allowed(&core.store, &core.server_key, &draft.from_alias, &contact)
            .await?
    {
        return Err(SendError::RecipientNotAllowed);
    }
    validate(&draft)?;
    let markers = crate::worker::markers(&core.store, sender.worker_id).await?;
    let now = core.now();
    let id = OutboundId::random();
    let detail = format!(
        "kind={} from={} to_domain={} attachments={}",
        draft.kind.as_str(),
        draft.from_alias,
        draft.to.domain(),
        draft.attachments.len()
    );
    let composer = Composer {
        keys: core.server_key.clone(),
        dkim: core.dkim.clone(),
        domain: core.domain.clone(),
        pseudonym,
        markers,
        worker_id: sender.worker_id.clone(),
        id: id.clone(),
        now,
    };
    let (prepared, removed_attachments) = core.cpu.run(move || composer.compose(draft)).await??;
    let mut wtx = core.store.begin_write().await?;
    let actor = Actor::Worker(sender.handle.to_string());
    audit::append(
        &mut wtx,
        now,
        Event::new(&actor, Action::MailQueued, id.as_str()).detail(&detail),
    )
    .await?;
    outbound::enqueue(&mut wtx, prepared, now).await?;
    wtx.commit().await?;
    core.outbound_wake.notify_one();
    Ok(Queued {
        id,
        removed_attachments,
    })
}

/// Everything the CPU-heavy part needs, owned, so that it can run on another thread.
struct Composer {
    keys: Arc<ServerKey>,
    dkim: Arc<DkimKey>,
    domain: Domain,
    pseudonym: String,
    markers: HashSet<(MarkerKind, String)>,
    /// The sending worker, recorded with the queued message for a "niet afgeleverd" notice.
    worker_id: WorkerId,
    id: OutboundId,
    now: Millis,
}

impl Composer {
    /// Cleans the attachments, runs the leak guard over everything that leaves, composes, signs and
    /// seals for the queue. Returns the prepared message and the names of removed attachments.
    fn compose(self, draft: Draft) -> Result<(Prepared, Vec<String>), SendError> {
        let (attachments, removed) = clean(draft.attachments)?;
        if draft.body.trim().is_empty() && attachments.is_empty() {
            return Err(SendError::Invalid(
                "the message is empty once its PGP keys and signatures are removed".into(),
            ));
        }
        let texts = [draft.subject.as_str(), draft.body.as_str()]
            .into_iter()
            .chain(attachments.iter().map(|a| a.filename.as_str()))
            .map(str::to_string)
            .chain(attachments.iter().filter_map(sanitize::readable_text));
        for text in texts {
            leak::check(&self.keys, &self.markers, &text)?;
        }
        let domain = self.domain.as_str();
        let message_id = compose::new_message_id(domain);
        let unsigned = compose::message(
            &compose::Headers {
                from: compose::mailbox(&self.pseudonym, draft.from_alias.as_str()),
                to: draft.to.as_str(),
                subject: &draft.subject,
                date: self.now,
                message_id: &message_id,
                in_reply_to: draft.in_reply_to.as_ref(),
                references: &draft.references,
            },
            &draft.body,
            &attachments,
        );
        let mut signed = self.dkim.sign(&unsigned)?.into_bytes();
        signed.extend_from_slice(&unsigned);
        let prepared = outbound::prepare(
            &self.keys,
            outbound::Outgoing {
                envelope_from: outbound::return_path(&self.keys, &self.id, domain),
                id: self.id.clone(),
                kind: draft.kind,
                worker_id: Some(self.worker_id.clone()),
                recipients: vec![draft.to.as_str().to_string()],
                message: &signed,
                summary: Some(&Summary {
                    recipient: draft.to.as_str().to_string(),
                    subject: draft.subject.clone(),
                    from_alias: draft.from_alias.to_string(),
                }),
            },
        )?;
        Ok((prepared, removed))
    }
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
    for attachment in attachments {
        let name = attachment.filename.clone();
        match sanitize::sanitise(attachment)? {
            Cleaned::Kept(attachment) => kept.push(attachment),
            Cleaned::Removed => removed.push(name),
        }
    }
    Ok((kept, removed))
}
