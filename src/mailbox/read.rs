//! Reading messages: listing them for a worker, opening, marking read, deleting, and deleting old
//! ones (retention).

use serde::{Deserialize, Serialize};

use super::{Channel, Letter, MailboxKind, MessageId, MessageKind};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{Error, Result};
use crate::ids::WorkerId;
use crate::store::{Flag, Store};

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
