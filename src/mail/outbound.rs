//! The durable outbound queue. A queued message (envelope and bytes) is sealed to the server key; the
//! sender (`mail::sender`) claims it with a lease (claims run under the store's write lock, so two
//! relay instances never take the same message), sends it through the smarthost and records the
//! outcome here, with backoff for retries. Once sent, its content is dropped; a short summary (sealed)
//! is kept so that a bounce can be reported to the worker as "niet afgeleverd".

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::clock::Millis;
use crate::crypto::{KeyedHash, ServerKey};
use crate::error::{Error, Result};
use crate::store::{Store, WriteTx};

/// How long a claim holds before another sender may try the message again.
const LEASE: Duration = Duration::from_secs(300);
/// Delays between attempts; the last one repeats until `give_up_after_seconds`.
const BACKOFF_SECONDS: [i64; 6] = [60, 300, 900, 3600, 4 * 3600, 8 * 3600];
const BATCH: i64 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A worker's reply to a message.
    Reply,
    /// A new message from a worker.
    Mail,
    /// A content-free notice to a worker's real address.
    Notification,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reply => "reply",
            Kind::Mail => "mail",
            Kind::Notification => "notification",
        }
    }
}

/// What is sealed for the sender: the envelope and the message.
#[derive(Serialize, Deserialize)]
pub struct Payload {
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub message_b64: String,
}

/// What is kept (sealed) after sending, for a bounce notice.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub recipient: String,
    pub subject: String,
    pub from_alias: String,
}

/// A message ready to be queued (sealed outside any transaction).
pub struct Prepared {
    pub id: String,
    kind: Kind,
    worker_id: Option<String>,
    sealed: Vec<u8>,
    summary_sealed: Option<Vec<u8>>,
}

/// The return path of an outbound message: `bounce+ID.MAC@domain`. Bounces must carry it back.
pub fn return_path(keys: &ServerKey, id: &str, domain: &str) -> String {
    let mac = keys.keyed_hash(KeyedHash::ReturnPath, id.as_bytes());
    format!("bounce+{id}.{}@{domain}", &mac[..16])
}

/// The outbound id a bounce address names, when its MAC is right.
pub fn parse_return_path(keys: &ServerKey, local_part: &str) -> Option<String> {
    let rest = local_part.strip_prefix("bounce+")?;
    let (id, mac) = rest.split_once('.')?;
    let expected = keys.keyed_hash(KeyedHash::ReturnPath, id.as_bytes());
    crate::crypto::constant_time_eq(mac.as_bytes(), &expected.as_bytes()[..16])
        .then(|| id.to_string())
}

/// A message to queue, before sealing.
pub struct Outgoing<'a> {
    pub id: String,
    pub kind: Kind,
    pub worker_id: Option<String>,
    /// Normally `return_path(…)` for the same id.
    pub envelope_from: String,
    pub recipients: Vec<String>,
    pub message: &'a [u8],
    /// Kept (sealed) after sending, for a "niet afgeleverd" notice.
    pub summary: Option<&'a Summary>,
}

/// Seals a message for the queue.
pub fn prepare(keys: &ServerKey, outgoing: Outgoing<'_>) -> Result<Prepared> {
    let payload = Payload {
        envelope_from: outgoing.envelope_from,
        recipients: outgoing.recipients,
        message_b64: data_encoding::BASE64.encode(outgoing.message),
    };
    let plaintext = zeroize::Zeroizing::new(serde_json::to_vec(&payload).expect("serialises"));
    let sealed = keys.seal(&plaintext)?;
    let summary_sealed = outgoing
        .summary
        .map(|s| keys.seal(&serde_json::to_vec(s).expect("serialises")))
        .transpose()?;
    Ok(Prepared {
        id: outgoing.id,
        kind: outgoing.kind,
        worker_id: outgoing.worker_id,
        sealed,
        summary_sealed,
    })
}

/// Queues a prepared message inside the caller's write transaction.
pub async fn enqueue(wtx: &mut WriteTx, prepared: Prepared, now: Millis) -> Result<()> {
    sqlx::query(
        "INSERT INTO outbound_messages (id, kind, worker_id, sealed, summary_sealed, state, attempts, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $6)",
    )
    .bind(&prepared.id)
    .bind(prepared.kind.as_str())
    .bind(prepared.worker_id)
    .bind(prepared.sealed)
    .bind(prepared.summary_sealed)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    Ok(())
}

/// Takes a message that is still waiting (not being sent right now) out of the queue, inside the
/// caller's transaction: an on-call notice whose alert was acknowledged meanwhile. Returns whether it
/// was withdrawn.
pub async fn withdraw(wtx: &mut WriteTx, id: &str, now: Millis) -> Result<bool> {
    let withdrawn = sqlx::query(
        "UPDATE outbound_messages SET state = 'failed', sealed = NULL, last_error = 'withdrawn', \
         finished_at = $1 WHERE id = $2 AND state = 'queued' AND (lease_until IS NULL OR lease_until < $1)",
    )
    .bind(now)
    .bind(id)
    .execute(wtx.conn())
    .await?
    .rows_affected();
    Ok(withdrawn == 1)
}

/// A worker's message that came back as not delivered.
pub struct Bounced {
    pub worker_id: String,
    pub summary: Summary,
    /// When the worker sent it.
    pub sent_at: Millis,
}

/// Marks a message bounced; returns its worker and summary. `None` when the id is unknown or the
/// message is not a worker's mail that is queued or sent (then the bounce changes nothing).
pub async fn mark_bounced(
    store: &Store,
    keys: &ServerKey,
    id: &str,
    now: Millis,
) -> Result<Option<Bounced>> {
    let Some(bounced) = bounced_candidate(store, keys, id).await? else {
        return Ok(None);
    };
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "UPDATE outbound_messages SET state = 'bounced', sealed = NULL, finished_at = $1 \
         WHERE id = $2 AND state IN ('sent', 'queued')",
    )
    .bind(now)
    .bind(id)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(Some(bounced))
}

/// The worker's message a return path names, when a bounce for it could still change its state.
pub async fn bounced_candidate(
    store: &Store,
    keys: &ServerKey,
    id: &str,
) -> Result<Option<Bounced>> {
    let row = sqlx::query(
        "SELECT worker_id, summary_sealed, created_at FROM outbound_messages \
         WHERE id = $1 AND state IN ('sent', 'queued') AND kind <> 'notification'",
    )
    .bind(id)
    .fetch_optional(store.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let worker_id: Option<String> = row.try_get("worker_id")?;
    let summary: Option<Vec<u8>> = row.try_get("summary_sealed")?;
    let (Some(worker_id), Some(summary)) = (worker_id, summary) else {
        return Ok(None);
    };
    let summary: Summary = serde_json::from_slice(&keys.open(&summary)?)
        .map_err(|_| Error::Crypto("unreadable outbound summary".into()))?;
    Ok(Some(Bounced {
        worker_id,
        summary,
        sent_at: row.try_get("created_at")?,
    }))
}

/// The sealed summary of an outbound message, for a notice.
pub async fn summary_of(store: &Store, keys: &ServerKey, id: &str) -> Result<Option<Summary>> {
    let sealed: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT summary_sealed FROM outbound_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
    let Some(Some(sealed)) = sealed else {
        return Ok(None);
    };
    serde_json::from_slice(&keys.open(&sealed)?)
        .map(Some)
        .map_err(|_| Error::Crypto("unreadable outbound summary".into()))
}

/// A message claimed for sending.
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub worker_id: Option<String>,
    pub sealed: Vec<u8>,
    pub attempts: i64,
    pub created_at: Millis,
}

impl Claimed {
    /// The envelope and message, opened with the server key; `None` when damaged.
    pub fn payload(&self, keys: &ServerKey) -> Option<Payload> {
        let plain = keys.open(&self.sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Claims due messages with a lease. Runs under the store's write lock: claims never overlap.
pub async fn claim(store: &Store, owner: &str, now: Millis) -> Result<Vec<Claimed>> {
    let mut wtx = store.begin_write().await?;
    let rows = sqlx::query(
        "SELECT id, kind, worker_id, sealed, attempts, created_at FROM outbound_messages \
         WHERE state = 'queued' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
         ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(wtx.conn())
    .await?;
    let lease_until = now + LEASE.as_millis() as i64;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.try_get("id")?;
        sqlx::query(
            "UPDATE outbound_messages SET lease_until = $1, lease_owner = $2, attempts = attempts + 1 \
             WHERE id = $3",
        )
        .bind(lease_until)
        .bind(owner)
        .bind(&id)
        .execute(wtx.conn())
        .await?;
        claimed.push(Claimed {
            id,
            kind: row.try_get("kind")?,
            worker_id: row.try_get("worker_id")?,
            sealed: row
                .try_get::<Option<Vec<u8>>, _>("sealed")?
                .unwrap_or_default(),
            attempts: row.try_get::<i64, _>("attempts")? + 1,
            created_at: row.try_get("created_at")?,
        });
    }
    wtx.commit().await?;
    Ok(claimed)
}

pub async fn finish(store: &Store, id: &str, state: &str, error: &str, now: Millis) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "UPDATE outbound_messages SET state = $1, sealed = NULL, last_error = $2, finished_at = $3, \
         lease_until = NULL WHERE id = $4",
    )
    .bind(state)
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await
}

pub async fn retry_later(
    store: &Store,
    id: &str,
    attempts: i64,
    error: &str,
    now: Millis,
) -> Result<()> {
    let index = usize::try_from(attempts - 1)
        .unwrap_or(0)
        .min(BACKOFF_SECONDS.len() - 1);
    let next = now + BACKOFF_SECONDS[index] * 1000;
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "UPDATE outbound_messages SET next_attempt_at = $1, last_error = $2, lease_until = NULL \
         WHERE id = $3",
    )
    .bind(next)
    .bind(error)
    .bind(id)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await
}

/// Deletes the rows (with their sealed summaries) of mail sent or given up before `cutoff`: after the
/// retention period no bounce is expected any more. Returns how many.
pub async fn forget_finished_before(store: &Store, now: Millis, cutoff: Millis) -> Result<u64> {
    let mut wtx = store.begin_write().await?;
    let deleted = sqlx::query(
        "DELETE FROM outbound_messages WHERE state IN ('sent', 'failed', 'bounced') AND finished_at < $1",
    )
    .bind(cutoff)
    .execute(wtx.conn())
    .await?
    .rows_affected();
    if deleted > 0 {
        crate::audit::append(
            &mut wtx,
            now,
            crate::audit::Event::new(
                &crate::audit::Actor::System,
                "retention.outbound_forgotten",
                &deleted.to_string(),
            ),
        )
        .await?;
    }
    wtx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_are_authenticated() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ServerKey::load_or_create(&dir.path().join("k")).unwrap();
        let path = return_path(&keys, "abc123", "relay.example");
        let local = path.strip_suffix("@relay.example").unwrap();
        assert_eq!(parse_return_path(&keys, local).as_deref(), Some("abc123"));
        assert_eq!(
            parse_return_path(&keys, "bounce+abc124.0000000000000000"),
            None
        );
        let forged = local.replace("abc123", "abc124");
        assert_eq!(parse_return_path(&keys, &forged), None);
        assert_eq!(parse_return_path(&keys, "someone"), None);
    }
}
