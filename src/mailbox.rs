//! Mailboxes and their encrypted messages. A message is sealed with age to every member of the
//! mailbox before it is written; the database keeps only what routing and listing need (mailbox,
//! alias, sending organisation, kind, urgency, time). Ownership is checked in SQL: a worker sees a
//! message only through a `mailbox_members` row.

use std::sync::Arc;

use age::x25519;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::alias::Address;
use crate::audit::{self, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// An ordinary message.
    #[default]
    Bericht,
    /// A referral of a case by a GI.
    Aanmelding,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Bericht => "bericht",
            MessageKind::Aanmelding => "aanmelding",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Api,
    Mail,
    Sms,
    Voicemail,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Mail => "mail",
            Channel::Sms => "sms",
            Channel::Voicemail => "voicemail",
        }
    }
}

/// The plaintext inside every sealed message: readable with `age -d … | jq`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Letter {
    /// Format version of this document.
    pub schuilnaam_letter: u32,
    pub channel: Channel,
    pub from: String,
    pub to: String,
    pub received_at: String,
    pub kind: MessageKind,
    pub urgent: bool,
    pub subject: String,
    pub body: String,
    /// Mail only: the authenticated From address (where a reply goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Mail only: the sender's Message-ID and References (for threading a reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::mail::inspect::AttachmentInfo>,
    /// Mail only: the original message, base64 (headers, every part, every attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

pub const LETTER_VERSION: u32 = 1;

impl Letter {
    /// The contents of attachment `index` of the original mail (mail only).
    pub fn attachment(&self, index: u32) -> Option<Vec<u8>> {
        let raw = data_encoding::BASE64
            .decode(self.raw.as_deref()?.as_bytes())
            .ok()?;
        let message = mail_parser::MessageParser::default().parse(&raw)?;
        Some(message.attachment(index)?.contents().to_vec())
    }
}

/// Mail-only parts of an incoming message.
#[derive(Clone, Debug, Default)]
pub struct MailParts {
    pub reply_to: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub attachments: Vec<crate::mail::inspect::AttachmentInfo>,
    pub raw: Vec<u8>,
}

/// A message on its way into a mailbox.
pub struct Incoming {
    pub mailbox_id: String,
    pub alias: Address,
    /// (id, name) of the sending organisation.
    pub organisation: Option<(String, String)>,
    /// Shown as the sender when there is no organisation (an allowed contact, the relay itself).
    pub sender_label: String,
    pub channel: Channel,
    pub kind: MessageKind,
    pub urgent: bool,
    pub subject: String,
    pub body: String,
    pub mail: Option<MailParts>,
    /// Refuse at commit when the alias was burned meanwhile (not for the relay's own notices).
    pub require_live_alias: bool,
}

/// The recipients every message for a mailbox is sealed to: one per member.
pub async fn recipients(store: &Store, mailbox_id: &str) -> Result<Vec<x25519::Recipient>> {
    Ok(members(store, mailbox_id)
        .await?
        .iter()
        .map(|m| m.recipient.clone())
        .collect())
}

struct MemberRow {
    recipient: x25519::Recipient,
    notify: crate::notify::Member,
}

async fn members(store: &Store, mailbox_id: &str) -> Result<Vec<MemberRow>> {
    let rows = sqlx::query(
        "SELECT w.id, w.recipient, w.contact_sealed FROM mailbox_members m \
         JOIN workers w ON w.id = m.worker_id WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(MemberRow {
                recipient: crypto::parse_recipient(&row.try_get::<String, _>("recipient")?)?,
                notify: crate::notify::Member {
                    worker_id: row.try_get("id")?,
                    contact_sealed: row.try_get("contact_sealed")?,
                },
            })
        })
        .collect()
}

/// A sealed message waiting for its transaction.
struct Pending {
    id: String,
    now: Millis,
    actor: Actor,
    mailbox_id: String,
    alias: Address,
    organisation_id: Option<String>,
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
    pub async fn deliver(&self, now: Millis, actor: &Actor, incoming: Incoming) -> Result<String> {
        let members = members(&self.store, &incoming.mailbox_id).await?;
        if members.is_empty() {
            return Err(Error::EmptyMailbox);
        }
        let recipients: Vec<x25519::Recipient> =
            members.iter().map(|m| m.recipient.clone()).collect();
        let id = crypto::random_id();
        let letter = letter_for(&incoming, now);
        let plaintext =
            zeroize::Zeroizing::new(serde_json::to_vec(&letter).expect("letter serialises"));
        drop(letter);
        // Sealing a small message takes tens of microseconds (one X25519 agreement per recipient):
        // cheaper inline than a hop to the blocking pool. Large ones go off the async threads.
        let sealed = if plaintext.len() <= INLINE_SEAL_BYTES {
            crypto::seal(&recipients, &plaintext)?
        } else {
            tokio::task::spawn_blocking(move || crypto::seal(&recipients, &plaintext))
                .await
                .map_err(|_| Error::Crypto("sealing did not finish".into()))??
        };
        let notices = match &self.notifier {
            Some(notifier) => {
                let members: Vec<crate::notify::Member> =
                    members.into_iter().map(|m| m.notify).collect();
                notifier.prepare(&self.store, &members, now).await?
            }
            None => Vec::new(),
        };
        let queued_notices = !notices.is_empty();
        let alert = crate::oncall::alert::trigger_for_message(
            &self.store,
            &incoming.mailbox_id,
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
            organisation_id: incoming.organisation.map(|(org_id, _)| org_id),
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
            Outcome::Failed => Err(Error::CommitFailed),
        }
    }
}

fn letter_for(incoming: &Incoming, now: Millis) -> Letter {
    let from = incoming
        .organisation
        .as_ref()
        .map(|(_, name)| name.clone())
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
        reply_to: mail.map(|m| m.reply_to.clone()),
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

/// Writes a batch in one transaction: per message the alias check; then the audit rows and the message
/// rows of those still deliverable, each in one multi-row statement; their notices; one commit.
async fn commit_batch(
    store: &Store,
    notifier: Option<&crate::notify::Notifier>,
    batch: Vec<Pending>,
) -> Result<Vec<Outcome>> {
    let mut wtx = store.begin_write().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut deliverable = Vec::with_capacity(batch.len());
    for pending in batch {
        if pending.require_live_alias
            && !crate::alias::is_live_for(&mut wtx, &pending.alias, &pending.mailbox_id).await?
        {
            outcomes.push(Outcome::AliasGone);
        } else {
            outcomes.push(Outcome::Committed);
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
                Event::new(&p.actor, "message.delivered", &p.id).detail(detail),
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
            .bind(m.id.as_str())
            .bind(m.mailbox_id.as_str())
            .bind(m.alias.as_str())
            .bind(m.organisation_id.as_deref())
            .bind(m.channel.as_str())
            .bind(m.kind.as_str())
            .bind(i64::from(m.urgent))
            .bind(m.now)
            .bind(m.sealed.as_slice());
    }
    insert.execute(wtx.conn()).await?;
    Ok(())
}

/// A message as listed: routing facts only, never content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub id: String,
    pub received_at: String,
    pub kind: String,
    pub urgent: bool,
    pub channel: String,
    /// The sending organisation's name, when a partner sent it.
    pub from_organisation: Option<String>,
    /// The alias it was sent to.
    pub to: String,
    /// `personal`, or the team's name.
    pub mailbox: String,
}

const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.kind, m.urgent, m.channel, m.alias, \
     o.name AS organisation, b.kind AS mailbox_kind, b.name AS mailbox_name";

/// Messages visible to a worker (`$1`). Ownership lives in this join.
const VISIBLE_TO_WORKER: &str = "FROM messages m \
     JOIN mailbox_members mm ON mm.mailbox_id = m.mailbox_id \
     JOIN mailboxes b ON b.id = m.mailbox_id \
     LEFT JOIN organisations o ON o.id = m.organisation_id \
     WHERE mm.worker_id = $1 AND m.received_at >= mm.joined_at";

fn summary(row: &crate::store::Row) -> Result<Summary> {
    let mailbox_kind: String = row.try_get("mailbox_kind")?;
    Ok(Summary {
        id: row.try_get("id")?,
        received_at: rfc3339(row.try_get("received_at")?),
        kind: row.try_get("kind")?,
        urgent: crate::store::flag(row.try_get("urgent")?),
        channel: row.try_get("channel")?,
        from_organisation: row.try_get("organisation")?,
        to: row.try_get("alias")?,
        mailbox: if mailbox_kind == "team" {
            row.try_get("mailbox_name")?
        } else {
            "personal".to_string()
        },
    })
}

/// Every message in the mailboxes the worker belongs to, newest first.
pub async fn list_for_worker(store: &Store, worker_id: &str) -> Result<Vec<Summary>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("SELECT {SUMMARY_COLUMNS} {VISIBLE_TO_WORKER} ORDER BY m.received_at DESC, m.id")
    });
    let rows = sqlx::query(sql.as_str())
        .bind(worker_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter().map(summary).collect()
}

/// One message of the worker's, sealed. `NotFound` when it does not exist or is not theirs.
pub async fn sealed_for_worker(
    store: &Store,
    worker_id: &str,
    message_id: &str,
) -> Result<(Summary, Vec<u8>)> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("SELECT {SUMMARY_COLUMNS}, m.sealed {VISIBLE_TO_WORKER} AND m.id = $2")
    });
    let row = sqlx::query(sql.as_str())
        .bind(worker_id)
        .bind(message_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("message"))?;
    Ok((summary(&row)?, row.try_get("sealed")?))
}

/// Records that a worker opened or fetched a message.
pub async fn record_access(
    store: &Store,
    now: Millis,
    actor: &Actor,
    message_id: &str,
    how: &str,
) -> Result<()> {
    audit::record(
        store,
        now,
        Event::new(actor, "message.opened", message_id).detail(how),
    )
    .await
}

/// Deletes a message the worker can see. `NotFound` otherwise.
pub async fn delete_for_worker(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &str,
    message_id: &str,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "message.deleted", message_id),
    )
    .await?;
    let deleted = sqlx::query(
        "DELETE FROM messages WHERE id = $1 AND EXISTS \
         (SELECT 1 FROM mailbox_members mm WHERE mm.mailbox_id = messages.mailbox_id \
          AND mm.worker_id = $2 AND messages.received_at >= mm.joined_at)",
    )
    .bind(message_id)
    .bind(worker_id)
    .execute(wtx.conn())
    .await?;
    if deleted.rows_affected() == 0 {
        // Dropping the transaction rolls back the audit row too: nothing happened.
        return Err(Error::NotFound("message"));
    }
    wtx.commit().await
}

/// Deletes every message received before `cutoff`; returns how many.
pub async fn delete_older_than(store: &Store, now: Millis, cutoff: Millis) -> Result<u64> {
    let mut wtx = store.begin_write().await?;
    let deleted = sqlx::query("DELETE FROM messages WHERE received_at < $1")
        .bind(cutoff)
        .execute(wtx.conn())
        .await?
        .rows_affected();
    if deleted > 0 {
        audit::append(
            &mut wtx,
            now,
            Event::new(&Actor::System, "retention.deleted", &deleted.to_string())
                .detail(&format!("received_before={}", rfc3339(cutoff))),
        )
        .await?;
    }
    wtx.commit().await?;
    Ok(deleted)
}

/// Opens a sealed message with the worker's keyring.
pub fn open_letter(keyring: &crypto::Keyring, sealed: &[u8]) -> Result<Letter> {
    let plaintext = keyring.open(sealed)?;
    serde_json::from_slice(&plaintext).map_err(|_| Error::Crypto("unreadable letter".into()))
}
