//! The deliverer: seals each incoming message to every member of its mailbox and commits messages
//! in grouped transactions, each acknowledged only after its commit.

use std::sync::Arc;

use age::x25519;

use super::members::members;
use super::{Channel, Incoming, Letter, MailboxId, MessageId, MessageKind, LETTER_VERSION};
use crate::alias::Address;
use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{Error, Result};
use crate::ids::OrganisationId;
use crate::partner::Fingerprint;
use crate::store::{Flag, Store};

/// A sealed message waiting for its transaction.
struct Pending {
    id: MessageId,
    now: Millis,
    actor: Actor,
    mailbox_id: MailboxId,
    alias: Address,
    organisation_id: Option<OrganisationId>,
    sender_certificate: Option<Fingerprint>,
    channel: Channel,
    kind: MessageKind,
    urgent: bool,
    require_live_alias: bool,
    sealed: Vec<u8>,
    notices: Vec<crate::notify::PreparedNotice>,
    /// The on-call alert this message raises, in its own transaction.
    alert: Option<crate::oncall::alert::Trigger>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    AliasGone,
    SenderRevoked,
    Failed,
}

struct Job {
    pending: Pending,
    reply: tokio::sync::oneshot::Sender<Outcome>,
}

/// Letters up to this size are sealed on the async thread that received them.
const INLINE_SEAL_BYTES: usize = 256 * 1024;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 64;

/// Seals incoming messages and commits them. Commits are grouped: while one transaction is being
/// written, the messages that arrive meanwhile wait and go into the next one together, so that one
/// `fsync` acknowledges many messages. Each message is still acknowledged only after its commit.
pub struct Deliverer {
    store: Store,
    jobs: tokio::sync::mpsc::Sender<Job>,
    notifier: Option<Arc<crate::notify::Notifier>>,
    /// Woken after a commit that queued notifications.
    outbound_wake: Arc<tokio::sync::Notify>,
    /// Woken after a commit that raised an on-call alert (the on-call scheduler waits on it).
    alert_wake: Arc<tokio::sync::Notify>,
}

impl Deliverer {
    /// Starts the committer task (it ends when the last `Deliverer` handle is dropped).
    pub fn start(
        store: Store,
        notifier: Option<Arc<crate::notify::Notifier>>,
        outbound_wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        let (jobs, receiver) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(run_committer(store.clone(), notifier.clone(), receiver));
        Self {
            store,
            jobs,
            notifier,
            outbound_wake,
            alert_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Notified after every commit that raised an on-call alert.
    pub fn alert_wake(&self) -> Arc<tokio::sync::Notify> {
        self.alert_wake.clone()
    }

    /// Seals and stores a message; returns its id once the transaction has committed.
    pub async fn deliver(
        &self,
        now: Millis,
        actor: &Actor,
        incoming: Incoming,
    ) -> Result<MessageId> {
        let members = members(&self.store, &incoming.mailbox_id).await?;
        if members.is_empty() {
            return Err(Error::EmptyMailbox);
        }
        let recipients = members
            .iter()
            .map(|m| crypto::parse_recipient(&m.recipient))
            .collect::<Result<Vec<_>>>()?;
        let id = MessageId::random();
        let letter = letter_for(&incoming, now);
        // Writing and sealing a small letter takes tens of microseconds (one X25519 agreement per
        // recipient): cheaper inline than a hop to the blocking pool. Large ones (mail with its
        // attachments) go off the async threads.
        let sealed = if letter.approximate_size() <= INLINE_SEAL_BYTES {
            seal_letter(&recipients, &letter)?
        } else {
            tokio::task::spawn_blocking(move || seal_letter(&recipients, &letter))
                .await
                .map_err(|_| Error::Crypto("sealing did not finish".into()))??
        };
        let notices = match &self.notifier {
            Some(notifier) => {
                let members: Vec<crate::notify::Member> = members
                    .into_iter()
                    .map(|m| crate::notify::Member {
                        worker_id: m.id,
                        contact_sealed: m.contact_sealed,
                    })
                    .collect();
                notifier.prepare(&self.store, &members, now).await?
            }
            None => Vec::new(),
        };
        let queued_notices = !notices.is_empty();
        let alert = crate::oncall::alert::trigger_for_message(
            &self.store,
            &incoming.mailbox_id,
            incoming.mailbox_kind,
            incoming.kind,
            incoming.urgent,
        )
        .await?;
        let raises_alert = alert.is_some();
        let pending = Pending {
            id: id.clone(),
            now,
            actor: actor.clone(),
            mailbox_id: incoming.mailbox_id,
            alias: incoming.alias,
            organisation_id: incoming.organisation.map(|partner| partner.id),
            sender_certificate: incoming.sender_certificate,
            channel: incoming.channel,
            kind: incoming.kind,
            urgent: incoming.urgent,
            require_live_alias: incoming.require_live_alias,
            sealed,
            notices,
            alert,
        };
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { pending, reply })
            .await
            .map_err(|_| Error::CommitFailed)?;
        match outcome.await.map_err(|_| Error::CommitFailed)? {
            Outcome::Committed => {
                if queued_notices {
                    self.outbound_wake.notify_one();
                }
                if raises_alert {
                    self.alert_wake.notify_one();
                }
                Ok(id)
            }
            Outcome::AliasGone => Err(Error::AliasGone),
            Outcome::SenderRevoked => Err(Error::SenderRevoked),
            Outcome::Failed => Err(Error::CommitFailed),
        }
    }
}

/// The letter as JSON, sealed to every recipient; the plaintext is wiped when done.
fn seal_letter(recipients: &[x25519::Recipient], letter: &Letter) -> Result<Vec<u8>> {
    let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(letter).expect("letter serialises"));
    crypto::seal(recipients, &plaintext)
}

fn letter_for(incoming: &Incoming, now: Millis) -> Letter {
    let from = incoming
        .organisation
        .as_ref()
        .map(|partner| partner.name.clone())
        .unwrap_or_else(|| incoming.sender_label.clone());
    let mail = incoming.mail.as_ref();
    Letter {
        schuilnaam_letter: LETTER_VERSION,
        channel: incoming.channel,
        from,
        to: incoming.alias.to_string(),
        received_at: rfc3339(now),
        kind: incoming.kind,
        urgent: incoming.urgent,
        subject: incoming.subject.clone(),
        body: incoming.body.clone(),
        reply_to: mail
            .map(|m| m.reply_to.clone())
            .filter(|reply_to| !reply_to.is_empty()),
        message_id: mail.and_then(|m| m.message_id.clone()),
        references: mail.map(|m| m.references.clone()).unwrap_or_default(),
        attachments: mail.map(|m| m.attachments.clone()).unwrap_or_default(),
        raw: mail.map(|m| data_encoding::BASE64.encode(&m.raw)),
    }
}

async fn run_committer(
    store: Store,
    notifier: Option<Arc<crate::notify::Notifier>>,
    mut receiver: tokio::sync::mpsc::Receiver<Job>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (pendings, replies): (Vec<Pending>, Vec<_>) = batch
            .into_iter()
            .map(|job| (job.pending, job.reply))
            .unzip();
        let outcomes = match commit_batch(&store, notifier.as_deref(), pendings).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::error!(cause = %e, messages = replies.len(), "committing messages failed");
                vec![Outcome::Failed; replies.len()]
            }
        };
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(outcome);
        }
    }
}

/// Writes a batch in one transaction: per message the checks that a revocation may have changed since
/// the message was accepted (alias, sender); then the audit rows and the message rows of those still
/// deliverable, each in one multi-row statement; their notices; one commit.
async fn commit_batch(
    store: &Store,
    notifier: Option<&crate::notify::Notifier>,
    batch: Vec<Pending>,
) -> Result<Vec<Outcome>> {
    let mut wtx = store.begin_write().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut deliverable = Vec::with_capacity(batch.len());
    for pending in batch {
        let outcome = still_deliverable(&mut wtx, &pending).await?;
        outcomes.push(outcome);
        if outcome == Outcome::Committed {
            deliverable.push(pending);
        }
    }
    let details: Vec<String> = deliverable
        .iter()
        .map(|p| format!("channel={} alias={}", p.channel.as_str(), p.alias))
        .collect();
    let events: Vec<(Millis, Event<'_>)> = deliverable
        .iter()
        .zip(&details)
        .map(|(p, detail)| {
            (
                p.now,
                Event::new(&p.actor, Action::MessageDelivered, p.id.as_str()).detail(detail),
            )
        })
        .collect();
    audit::append_all(&mut wtx, &events).await?;
    drop(events);
    insert_messages(&mut wtx, &deliverable).await?;
    // An acknowledged message never loses its alert: both commit together.
    for pending in &deliverable {
        if let Some(trigger) = &pending.alert {
            crate::oncall::alert::raise_in(
                &mut wtx,
                trigger,
                Some(&pending.id),
                pending.now,
                &pending.actor,
            )
            .await?;
        }
    }
    if let Some(notifier) = notifier {
        for pending in deliverable {
            for notice in pending.notices {
                notifier.queue(&mut wtx, notice, pending.now).await?;
            }
        }
    }
    wtx.commit().await?;
    Ok(outcomes)
}

/// Whether a message may still be stored, read inside the write transaction: a burn, `org disable` or
/// `org unpin` that committed before it wins, so nothing is accepted after the revocation returned.
async fn still_deliverable(wtx: &mut crate::store::WriteTx, pending: &Pending) -> Result<Outcome> {
    if pending.require_live_alias
        && !crate::alias::is_live_for(wtx, &pending.alias, &pending.mailbox_id).await?
    {
        return Ok(Outcome::AliasGone);
    }
    if let Some(organisation) = &pending.organisation_id {
        let accepted =
            crate::partner::still_accepted(wtx, organisation, pending.sender_certificate.as_ref())
                .await?;
        if !accepted {
            return Ok(Outcome::SenderRevoked);
        }
    }
    Ok(Outcome::Committed)
}

/// One multi-row insert of sealed messages.
async fn insert_messages(wtx: &mut crate::store::WriteTx, messages: &[Pending]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO messages (id, mailbox_id, alias, organisation_id, channel, kind, urgent, \
         received_at, sealed) VALUES {}",
        crate::store::values_placeholders(messages.len(), 9)
    );
    let mut insert = sqlx::query(&sql);
    for m in messages {
        insert = insert
            .bind(&m.id)
            .bind(&m.mailbox_id)
            .bind(m.alias.as_str())
            .bind(&m.organisation_id)
            .bind(m.channel)
            .bind(m.kind)
            .bind(Flag(m.urgent))
            .bind(m.now)
            .bind(m.sealed.as_slice());
    }
    insert.execute(wtx.conn()).await?;
    Ok(())
}
