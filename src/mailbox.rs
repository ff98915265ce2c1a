//! Mailboxes and their encrypted messages. A message is sealed with age to every member of the
//! mailbox before it is written; the database keeps only what routing and listing need (mailbox,
//! alias, sending organisation, kind, urgency, time). Ownership is checked in SQL: a worker sees a
//! message only through a `mailbox_members` row.

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
}

pub const LETTER_VERSION: u32 = 1;

/// A message on its way into a mailbox.
pub struct Incoming {
    pub mailbox_id: String,
    pub alias: Address,
    pub organisation: Option<(String, String)>,
    pub channel: Channel,
    pub kind: MessageKind,
    pub urgent: bool,
    pub subject: String,
    pub body: String,
}

/// The recipients every message for a mailbox is sealed to: one per member.
pub async fn recipients(store: &Store, mailbox_id: &str) -> Result<Vec<x25519::Recipient>> {
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT w.recipient FROM mailbox_members m JOIN workers w ON w.id = m.worker_id \
         WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    keys.iter().map(|k| crypto::parse_recipient(k)).collect()
}

/// Seals and stores a message; returns its id once the transaction has committed.
pub async fn deliver(
    store: &Store,
    now: Millis,
    actor: &Actor,
    incoming: Incoming,
) -> Result<String> {
    let recipients = recipients(store, &incoming.mailbox_id).await?;
    if recipients.is_empty() {
        return Err(Error::EmptyMailbox);
    }
    let id = crypto::random_id();
    let letter = Letter {
        schuilnaam_letter: LETTER_VERSION,
        channel: incoming.channel,
        from: incoming
            .organisation
            .as_ref()
            .map(|(_, name)| name.clone())
            .unwrap_or_default(),
        to: incoming.alias.to_string(),
        received_at: rfc3339(now),
        kind: incoming.kind,
        urgent: incoming.urgent,
        subject: incoming.subject,
        body: incoming.body,
    };
    let plaintext =
        zeroize::Zeroizing::new(serde_json::to_vec(&letter).expect("letter serialises"));
    drop(letter);
    let sealed = tokio::task::spawn_blocking(move || crypto::seal(&recipients, &plaintext))
        .await
        .map_err(|_| Error::Crypto("sealing did not finish".into()))??;

    let mut wtx = store.begin_write().await?;
    if !crate::alias::is_live_for(&mut wtx, &incoming.alias, &incoming.mailbox_id).await? {
        return Err(Error::AliasGone);
    }
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "message.delivered", &id).detail(&format!(
            "channel={} alias={}",
            incoming.channel.as_str(),
            incoming.alias
        )),
    )
    .await?;
    sqlx::query(
        "INSERT INTO messages (id, mailbox_id, alias, organisation_id, channel, kind, urgent, received_at, sealed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(&incoming.mailbox_id)
    .bind(incoming.alias.as_str())
    .bind(incoming.organisation.map(|(org_id, _)| org_id))
    .bind(incoming.channel.as_str())
    .bind(incoming.kind.as_str())
    .bind(i64::from(incoming.urgent))
    .bind(now)
    .bind(sealed)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(id)
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

/// Opens a sealed message with the worker's identity.
pub fn open_letter(identity: &x25519::Identity, sealed: &[u8]) -> Result<Letter> {
    let plaintext = crypto::open(identity, sealed)?;
    serde_json::from_slice(&plaintext).map_err(|_| Error::Crypto("unreadable letter".into()))
}
