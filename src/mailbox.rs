//! Mailboxes and their encrypted messages. A message is sealed with age to every member of the
//! mailbox before it is written; the database keeps only what routing and listing need (mailbox,
//! alias, sending organisation, kind, urgency, time). Ownership is checked in SQL: a worker sees a
//! message only through a `mailbox_members` row.

use std::sync::Arc;

use age::x25519;
use serde::{Deserialize, Serialize};

use crate::alias::Address;
use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{conflict_on_duplicate, Error, Result};
pub use crate::ids::{MailboxId, MessageId};
use crate::ids::{OrganisationId, WorkerId};
use crate::partner::Partner;
use crate::store::{Flag, Store, WriteTx};

crate::text_enum! {
    #[derive(Default)]
    pub enum MessageKind {
        /// An ordinary message.
        #[default]
        Bericht = "bericht",
        /// A referral of a case by a GI.
        Aanmelding = "aanmelding",
    }
}

crate::text_enum! {
    /// The channel a message arrived on.
    pub enum Channel {
        Api = "api",
        Mail = "mail",
        Sms = "sms",
        Voicemail = "voicemail",
    }
}

pub use crate::ids::MailboxKind;

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
    /// About how many bytes the letter takes as JSON (the raw mail dominates).
    fn approximate_size(&self) -> usize {
        self.body.len() + self.subject.len() + self.raw.as_ref().map_or(0, String::len) + 512
    }
}

impl Letter {
    /// The contents of attachment `index` of the original mail (mail only).
    pub fn attachment(&self, index: u32) -> Option<Vec<u8>> {
        let raw = data_encoding::BASE64
            .decode(self.raw.as_deref()?.as_bytes())
            .ok()?;
        let message = crate::mail::parse_message(&raw)?;
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
    pub mailbox_id: MailboxId,
    pub mailbox_kind: MailboxKind,
    pub alias: Address,
    /// The sending organisation.
    pub organisation: Option<Partner>,
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
pub async fn recipients(store: &Store, mailbox_id: &MailboxId) -> Result<Vec<x25519::Recipient>> {
    members(store, mailbox_id)
        .await?
        .iter()
        .map(|m| crypto::parse_recipient(&m.recipient))
        .collect()
}

/// A member of a mailbox, as sealing and notifying need them.
#[derive(sqlx::FromRow)]
struct MemberRow {
    id: WorkerId,
    recipient: String,
    contact_sealed: Vec<u8>,
}

async fn members(store: &Store, mailbox_id: &MailboxId) -> Result<Vec<MemberRow>> {
    Ok(sqlx::query_as(
        "SELECT w.id, w.recipient, w.contact_sealed FROM mailbox_members m \
         JOIN workers w ON w.id = m.worker_id WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?)
}

/// A sealed message waiting for its transaction.
struct Pending {
    id: MessageId,
    now: Millis,
    actor: Actor,
    mailbox_id: MailboxId,
    alias: Address,
    organisation_id: Option<OrganisationId>,
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

/// A message as listed: routing facts only, never content.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub id: MessageId,
    pub received_at: String,
    pub kind: MessageKind,
    pub urgent: bool,
    pub channel: Channel,
    /// The sending organisation's name, when a partner sent it.
    pub from_organisation: Option<String>,
    /// The alias it was sent to.
    pub to: String,
    /// `personal`, or the team's name.
    pub mailbox: String,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: MessageId,
    received_at: Millis,
    kind: MessageKind,
    urgent: Flag,
    channel: Channel,
    alias: String,
    organisation: Option<String>,
    mailbox_kind: MailboxKind,
    mailbox_name: String,
}

impl From<SummaryRow> for Summary {
    fn from(row: SummaryRow) -> Self {
        Summary {
            id: row.id,
            received_at: rfc3339(row.received_at),
            kind: row.kind,
            urgent: row.urgent.into(),
            channel: row.channel,
            from_organisation: row.organisation,
            to: row.alias,
            mailbox: match row.mailbox_kind {
                MailboxKind::Team => row.mailbox_name,
                MailboxKind::Worker => "personal".to_string(),
            },
        }
    }
}

const SUMMARY_COLUMNS: &str = "m.id, m.received_at, m.kind, m.urgent, m.channel, m.alias, \
     o.name AS organisation, b.kind AS mailbox_kind, b.name AS mailbox_name";

/// Messages visible to a worker (`$1`). Ownership lives in this join.
const VISIBLE_TO_WORKER: &str = "FROM messages m \
     JOIN mailbox_members mm ON mm.mailbox_id = m.mailbox_id \
     JOIN mailboxes b ON b.id = m.mailbox_id \
     LEFT JOIN organisations o ON o.id = m.organisation_id \
     WHERE mm.worker_id = $1 AND m.received_at >= mm.joined_at";

/// Every message in the mailboxes the worker belongs to, newest first.
pub async fn list_for_worker(store: &Store, worker_id: &WorkerId) -> Result<Vec<Summary>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("SELECT {SUMMARY_COLUMNS} {VISIBLE_TO_WORKER} ORDER BY m.received_at DESC, m.id")
    });
    let rows: Vec<SummaryRow> = sqlx::query_as(sql.as_str())
        .bind(worker_id)
        .fetch_all(store.pool())
        .await?;
    Ok(rows.into_iter().map(Summary::from).collect())
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    sealed: Vec<u8>,
}

#[derive(sqlx::FromRow)]
struct ListedRow {
    #[sqlx(flatten)]
    summary: SummaryRow,
    read_at: Option<Millis>,
}

/// A message as the web app lists it: the summary and whether this worker has opened it.
#[derive(Clone, Debug)]
pub struct Listed {
    pub summary: Summary,
    pub unread: bool,
}

/// One page of the messages visible to a worker, newest first, with the total count.
pub async fn page_for_worker(
    store: &Store,
    worker_id: &WorkerId,
    offset: u32,
    limit: u32,
) -> Result<(Vec<Listed>, i64)> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SUMMARY_COLUMNS}, r.read_at {VISIBLE_TO_WORKER_READS} \
             ORDER BY m.received_at DESC, m.id LIMIT $2 OFFSET $3"
        )
    });
    let rows: Vec<ListedRow> = sqlx::query_as(sql.as_str())
        .bind(worker_id)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(store.pool())
        .await?;
    let listed = rows
        .into_iter()
        .map(|row| Listed {
            summary: Summary::from(row.summary),
            unread: row.read_at.is_none(),
        })
        .collect();
    static COUNT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let count = COUNT.get_or_init(|| format!("SELECT COUNT(*) {VISIBLE_TO_WORKER}"));
    let total: i64 = sqlx::query_scalar(count.as_str())
        .bind(worker_id)
        .fetch_one(store.pool())
        .await?;
    Ok((listed, total))
}

/// Like `VISIBLE_TO_WORKER`, with the worker's read mark joined in (`r.read_at`).
const VISIBLE_TO_WORKER_READS: &str = "FROM messages m \
     JOIN mailbox_members mm ON mm.mailbox_id = m.mailbox_id \
     JOIN mailboxes b ON b.id = m.mailbox_id \
     LEFT JOIN organisations o ON o.id = m.organisation_id \
     LEFT JOIN message_reads r ON r.message_id = m.id AND r.worker_id = mm.worker_id \
     WHERE mm.worker_id = $1 AND m.received_at >= mm.joined_at";

/// Marks a message the worker opened as read (for the web app's unread marks).
pub async fn mark_read(
    store: &Store,
    now: Millis,
    worker_id: &WorkerId,
    message_id: &MessageId,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "INSERT INTO message_reads (worker_id, message_id, read_at) VALUES ($1, $2, $3) \
         ON CONFLICT (worker_id, message_id) DO NOTHING",
    )
    .bind(worker_id)
    .bind(message_id)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await
}

/// One message of the worker's, sealed. `NotFound` when it does not exist or is not theirs.
pub async fn sealed_for_worker(
    store: &Store,
    worker_id: &WorkerId,
    message_id: &MessageId,
) -> Result<(Summary, Vec<u8>)> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!("SELECT {SUMMARY_COLUMNS}, m.sealed {VISIBLE_TO_WORKER} AND m.id = $2")
    });
    let row: SealedRow = sqlx::query_as(sql.as_str())
        .bind(worker_id)
        .bind(message_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("message"))?;
    Ok((row.summary.into(), row.sealed))
}

/// Records that a worker opened or fetched a message.
pub async fn record_access(
    store: &Store,
    now: Millis,
    actor: &Actor,
    message_id: &MessageId,
    how: &str,
) -> Result<()> {
    audit::record(
        store,
        now,
        Event::new(actor, Action::MessageOpened, message_id.as_str()).detail(how),
    )
    .await
}

/// Deletes a message the worker can see. `NotFound` otherwise.
pub async fn delete_for_worker(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &WorkerId,
    message_id: &MessageId,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::MessageDeleted, message_id.as_str()),
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
    sqlx::query("DELETE FROM message_reads WHERE message_id = $1")
        .bind(message_id)
        .execute(wtx.conn())
        .await?;
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
        sqlx::query(
            "DELETE FROM message_reads WHERE NOT EXISTS \
             (SELECT 1 FROM messages m WHERE m.id = message_reads.message_id)",
        )
        .execute(wtx.conn())
        .await?;
        audit::append(
            &mut wtx,
            now,
            Event::new(
                &Actor::System,
                Action::RetentionDeleted,
                &deleted.to_string(),
            )
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

// ---- mailboxes and their members -----------------------------------------------------------------

/// Creates a mailbox inside the caller's transaction.
pub async fn create(
    wtx: &mut WriteTx,
    kind: MailboxKind,
    name: &str,
    now: Millis,
) -> Result<MailboxId> {
    let id = MailboxId::random();
    sqlx::query("INSERT INTO mailboxes (id, kind, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(kind)
        .bind(name)
        .bind(now)
        .execute(wtx.conn())
        .await
        .map_err(|e| {
            conflict_on_duplicate(
                e,
                match kind {
                    MailboxKind::Worker => "a worker with that handle already exists",
                    MailboxKind::Team => "a team with that name already exists",
                },
            )
        })?;
    Ok(id)
}

/// Makes a worker a member from `now` on: messages arriving from then are sealed to them too.
pub async fn add_member(
    wtx: &mut WriteTx,
    mailbox_id: &MailboxId,
    worker_id: &WorkerId,
    now: Millis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO mailbox_members (mailbox_id, worker_id, joined_at) VALUES ($1, $2, $3)",
    )
    .bind(mailbox_id)
    .bind(worker_id)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "that worker is already a member"))?;
    Ok(())
}

/// Ends a membership; `false` when there was none.
pub async fn remove_member(
    wtx: &mut WriteTx,
    mailbox_id: &MailboxId,
    worker_id: &WorkerId,
) -> Result<bool> {
    let removed =
        sqlx::query("DELETE FROM mailbox_members WHERE mailbox_id = $1 AND worker_id = $2")
            .bind(mailbox_id)
            .bind(worker_id)
            .execute(wtx.conn())
            .await?;
    Ok(removed.rows_affected() > 0)
}

/// A team's mailbox by the team's name.
pub async fn team(store: &Store, name: &str) -> Result<MailboxId> {
    sqlx::query_scalar("SELECT id FROM mailboxes WHERE kind = $1 AND name = $2")
        .bind(MailboxKind::Team)
        .bind(name)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("team"))
}

/// Every team mailbox as (id, name), by name.
pub async fn teams(store: &Store) -> Result<Vec<(MailboxId, String)>> {
    Ok(
        sqlx::query_as("SELECT id, name FROM mailboxes WHERE kind = $1 ORDER BY name")
            .bind(MailboxKind::Team)
            .fetch_all(store.pool())
            .await?,
    )
}

/// The handles of a mailbox's members, in order.
pub async fn member_handles(store: &Store, mailbox_id: &MailboxId) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT w.handle FROM mailbox_members m JOIN workers w ON w.id = m.worker_id \
         WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?)
}
