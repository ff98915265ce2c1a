//! The durable outbound queue. A queued message (envelope and bytes) is sealed to the server key; the
//! sender (`mail::sender`) claims it with a lease (claims run under the store's write lock, so two
//! relay instances never take the same message), sends it through the smarthost and records the
//! outcome here, with backoff for retries. Once sent, its content is dropped; a short summary (sealed)
//! is kept so that a bounce can be reported to the worker as "niet afgeleverd".

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::crypto::{KeyedHash, ServerKey};
use crate::error::{Error, Result};
pub use crate::ids::OutboundId;
use crate::ids::WorkerId;
use crate::store::{Store, WriteTx};

/// How long a claim holds before another sender may try the message again.
const LEASE: Duration = Duration::from_secs(300);
/// Delays between attempts; the last one repeats until `give_up_after_seconds`.
const BACKOFF_SECONDS: [i64; 6] = [60, 300, 900, 3600, 4 * 3600, 8 * 3600];
const BATCH: i64 = 16;

crate::text_enum! {
    /// What a queued message is.
    pub enum Kind {
        /// A worker's reply to a message.
        Reply = "reply",
        /// A new message from a worker.
        Mail = "mail",
        /// A content-free notice to a worker's real address.
        Notification = "notification",
    }
}

crate::text_enum! {
    /// Where a queued message is.
    pub enum State {
        /// Waiting to be sent (or sent again).
        Queued = "queued",
        /// Taken by the next server.
        Sent = "sent",
        /// Given up: refused for good, or not delivered within the give-up time.
        Failed = "failed",
        /// Reported back as not delivered.
        Bounced = "bounced",
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
    pub id: OutboundId,
    kind: Kind,
    worker_id: Option<WorkerId>,
    sealed: Vec<u8>,
    summary_sealed: Option<Vec<u8>>,
}

/// The return path of an outbound message: `bounce+ID.MAC@domain`. Bounces must carry it back.
pub fn return_path(keys: &ServerKey, id: &OutboundId, domain: &str) -> String {
    let mac = keys.keyed_hash(KeyedHash::ReturnPath, id.as_str().as_bytes());
    format!("bounce+{id}.{}@{domain}", &mac[..16])
}

/// The outbound id a bounce address names, when its MAC is right.
pub fn parse_return_path(keys: &ServerKey, local_part: &str) -> Option<OutboundId> {
    let rest = local_part.strip_prefix("bounce+")?;
    let (id, mac) = rest.split_once('.')?;
    let expected = keys.keyed_hash(KeyedHash::ReturnPath, id.as_bytes());
    if !crate::crypto::constant_time_eq(mac.as_bytes(), &expected.as_bytes()[..16]) {
        return None;
    }
    OutboundId::parse(id)
}

/// A message to queue, before sealing.
pub struct Outgoing<'a> {
    pub id: OutboundId,
    pub kind: Kind,
    pub worker_id: Option<WorkerId>,
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
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
    )
    .bind(&prepared.id)
    .bind(prepared.kind)
    .bind(prepared.worker_id)
    .bind(prepared.sealed)
    .bind(prepared.summary_sealed)
    .bind(State::Queued)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    Ok(())
}

/// Takes a message that is still waiting (not being sent right now) out of the queue, inside the
/// caller's transaction: an on-call notice whose alert was acknowledged meanwhile. Returns whether it
/// was withdrawn.
pub async fn withdraw(wtx: &mut WriteTx, id: &OutboundId, now: Millis) -> Result<bool> {
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
    pub worker_id: WorkerId,
    pub summary: Summary,
    /// When the worker sent it.
    pub sent_at: Millis,
}

/// Marks a message bounced; returns its worker and summary. `None` when the id is unknown or the
/// message is not a worker's mail that is queued or sent (then the bounce changes nothing).
pub async fn mark_bounced(
    store: &Store,
    keys: &ServerKey,
    id: &OutboundId,
    now: Millis,
) -> Result<Option<Bounced>> {
    let Some(bounced) = bounced_candidate(store, keys, id).await? else {
        return Ok(None);
    };
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "UPDATE outbound_messages SET state = $1, sealed = NULL, finished_at = $2 \
         WHERE id = $3 AND state IN ($4, $5)",
    )
    .bind(State::Bounced)
    .bind(now)
    .bind(id)
    .bind(State::Sent)
    .bind(State::Queued)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(Some(bounced))
}

#[derive(sqlx::FromRow)]
struct BounceRow {
    worker_id: Option<WorkerId>,
    summary_sealed: Option<Vec<u8>>,
    created_at: Millis,
}

/// The worker's message a return path names, when a bounce for it could still change its state.
pub async fn bounced_candidate(
    store: &Store,
    keys: &ServerKey,
    id: &OutboundId,
) -> Result<Option<Bounced>> {
    let row: Option<BounceRow> = sqlx::query_as(
        "SELECT worker_id, summary_sealed, created_at FROM outbound_messages \
         WHERE id = $1 AND state IN ($2, $3) AND kind <> $4",
    )
    .bind(id)
    .bind(State::Sent)
    .bind(State::Queued)
    .bind(Kind::Notification)
    .fetch_optional(store.pool())
    .await?;
    let Some(BounceRow {
        worker_id: Some(worker_id),
        summary_sealed: Some(summary),
        created_at,
    }) = row
    else {
        return Ok(None);
    };
    Ok(Some(Bounced {
        worker_id,
        summary: open_summary(keys, &summary)?,
        sent_at: created_at,
    }))
}

fn open_summary(keys: &ServerKey, sealed: &[u8]) -> Result<Summary> {
    serde_json::from_slice(&keys.open(sealed)?)
        .map_err(|_| Error::Crypto("unreadable outbound summary".into()))
}

/// The sealed summary of an outbound message, for a notice.
pub async fn summary_of(
    store: &Store,
    keys: &ServerKey,
    id: &OutboundId,
) -> Result<Option<Summary>> {
    let sealed: Option<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT summary_sealed FROM outbound_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?;
    sealed
        .flatten()
        .map(|sealed| open_summary(keys, &sealed))
        .transpose()
}

/// Where a worker's outgoing mail stands, as the web app shows it.
#[derive(Clone, Debug)]
pub struct Sent {
    pub id: OutboundId,
    pub kind: Kind,
    pub state: State,
    pub created_at: Millis,
    /// Recipient, subject and alias (sealed to the server key while kept).
    pub summary: Option<Summary>,
}

#[derive(sqlx::FromRow)]
struct SentRow {
    id: OutboundId,
    kind: Kind,
    state: State,
    created_at: Millis,
    summary_sealed: Option<Vec<u8>>,
}

/// A worker's most recent replies and messages (not their notifications), newest first.
pub async fn list_for_worker(
    store: &Store,
    keys: &ServerKey,
    worker_id: &WorkerId,
    limit: u32,
) -> Result<Vec<Sent>> {
    let rows: Vec<SentRow> = sqlx::query_as(
        "SELECT id, kind, state, created_at, summary_sealed FROM outbound_messages \
         WHERE worker_id = $1 AND kind IN ($2, $3) ORDER BY created_at DESC, id LIMIT $4",
    )
    .bind(worker_id)
    .bind(Kind::Reply)
    .bind(Kind::Mail)
    .bind(i64::from(limit))
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Sent {
            id: row.id,
            kind: row.kind,
            state: row.state,
            created_at: row.created_at,
            summary: row
                .summary_sealed
                .and_then(|sealed| keys.open(&sealed).ok())
                .and_then(|plain| serde_json::from_slice(&plain).ok()),
        })
        .collect())
}

/// A message claimed for sending.
#[derive(sqlx::FromRow)]
pub struct Claimed {
    pub id: OutboundId,
    pub kind: Kind,
    pub worker_id: Option<WorkerId>,
    pub sealed: Option<Vec<u8>>,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: Millis,
}

impl Claimed {
    /// The envelope and message, opened with the server key; `None` when damaged.
    pub fn payload(&self, keys: &ServerKey) -> Option<Payload> {
        let plain = keys.open(self.sealed.as_deref()?).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Claims due messages with a lease. Runs under the store's write lock: claims never overlap.
pub async fn claim(store: &Store, owner: &str, now: Millis) -> Result<Vec<Claimed>> {
    let mut wtx = store.begin_write().await?;
    let mut claimed: Vec<Claimed> = sqlx::query_as(
        "SELECT id, kind, worker_id, sealed, attempts, created_at FROM outbound_messages \
         WHERE state = $1 AND next_attempt_at <= $2 AND (lease_until IS NULL OR lease_until < $2) \
         ORDER BY next_attempt_at LIMIT $3",
    )
    .bind(State::Queued)
    .bind(now)
    .bind(BATCH)
    .fetch_all(wtx.conn())
    .await?;
    let lease_until = now + LEASE.as_millis() as i64;
    for message in &mut claimed {
        sqlx::query(
            "UPDATE outbound_messages SET lease_until = $1, lease_owner = $2, attempts = attempts + 1 \
             WHERE id = $3",
        )
        .bind(lease_until)
        .bind(owner)
        .bind(&message.id)
        .execute(wtx.conn())
        .await?;
        message.attempts += 1;
    }
    wtx.commit().await?;
    Ok(claimed)
}

/// Records the end of a message's journey (sent or given up); its content is dropped.
pub async fn finish(
    store: &Store,
    id: &OutboundId,
    state: State,
    error: &str,
    now: Millis,
) -> Result<()> {
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

/// Puts a message back in the queue for a later attempt, after the backoff for its attempt count.
pub async fn retry_later(
    store: &Store,
    id: &OutboundId,
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
        "DELETE FROM outbound_messages WHERE state IN ($1, $2, $3) AND finished_at < $4",
    )
    .bind(State::Sent)
    .bind(State::Failed)
    .bind(State::Bounced)
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
                crate::audit::Action::RetentionOutboundForgotten,
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
        let id = OutboundId::random();
        let path = return_path(&keys, &id, "relay.example");
        let local = path.strip_suffix("@relay.example").unwrap();
        assert_eq!(parse_return_path(&keys, local), Some(id.clone()));
        let other = OutboundId::random();
        assert_eq!(
            parse_return_path(&keys, &format!("bounce+{other}.0000000000000000")),
            None
        );
        let forged = local.replace(id.as_str(), other.as_str());
        assert_eq!(parse_return_path(&keys, &forged), None);
        assert_eq!(parse_return_path(&keys, "someone"), None);
    }
}
