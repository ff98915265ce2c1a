//! The durable outbound queue and its sender. A queued message (envelope and bytes) is sealed to the
//! server key; it is claimed with a lease (claims run under the store's write lock, so two relay
//! instances never take the same message), sent through the configured smarthost over TLS that must
//! verify, and retried with backoff. Once sent, its content is dropped; a short summary (sealed) is
//! kept so that a bounce can be reported to the worker as "niet afgeleverd".

use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use tokio::sync::Notify;

use crate::clock::{Millis, SharedClock};
use crate::config::{Config, SmarthostTls};
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

/// What is sealed for the sender.
#[derive(Serialize, Deserialize)]
struct Payload {
    envelope_from: String,
    recipients: Vec<String>,
    message_b64: String,
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

/// A bounced message's worker and summary, marking it bounced. `None` when the id is unknown or the
/// message was not sent by us (then the bounce is dropped).
pub async fn mark_bounced(
    store: &Store,
    keys: &ServerKey,
    id: &str,
    now: Millis,
) -> Result<Option<(String, Summary)>> {
    let row = sqlx::query(
        "SELECT worker_id, summary_sealed FROM outbound_messages \
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
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "UPDATE outbound_messages SET state = 'bounced', sealed = NULL, finished_at = $1 WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(Some((worker_id, summary)))
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

struct Claimed {
    id: String,
    kind: String,
    worker_id: Option<String>,
    sealed: Vec<u8>,
    attempts: i64,
    created_at: Millis,
}

/// Claims due messages with a lease. Runs under the store's write lock: claims never overlap.
async fn claim(store: &Store, owner: &str, now: Millis) -> Result<Vec<Claimed>> {
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

async fn finish(store: &Store, id: &str, state: &str, error: &str, now: Millis) -> Result<()> {
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

async fn retry_later(
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

/// Sends through the smarthost; built once from the configuration.
pub struct Smarthost {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Smarthost {
    /// `None` when no smarthost is configured. TLS is always required and always verified.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let Some((host, port)) = config
            .smarthost()
            .map_err(|e| Error::invalid(e.to_string()))?
        else {
            return Ok(None);
        };
        let mut tls = TlsParameters::builder(host.clone());
        if !config.outbound.extra_ca.as_os_str().is_empty() {
            let pem = std::fs::read(&config.outbound.extra_ca)?;
            tls = tls.add_root_certificate(
                Certificate::from_pem(&pem).map_err(|e| Error::Tls(e.to_string()))?,
            );
        }
        let tls = tls.build_rustls().map_err(|e| Error::Tls(e.to_string()))?;
        let tls = match config.outbound.tls {
            SmarthostTls::Starttls => Tls::Required(tls),
            SmarthostTls::Tls => Tls::Wrapper(tls),
        };
        // The relay introduces itself with the relay domain, never the machine's host name.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .hello_name(ClientId::Domain(config.relay.domain.clone()))
            .timeout(Some(Duration::from_secs(60)))
            .build();
        Ok(Some(Self { transport }))
    }

    async fn send(&self, payload: &Payload) -> std::result::Result<(), (bool, String)> {
        let parse = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|_| (true, "bad address".to_string()))
        };
        let from = if payload.envelope_from.is_empty() {
            None
        } else {
            Some(parse(&payload.envelope_from)?)
        };
        let to = payload
            .recipients
            .iter()
            .map(|r| parse(r))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let envelope = lettre::address::Envelope::new(from, to)
            .map_err(|_| (true, "bad envelope".to_string()))?;
        let message = data_encoding::BASE64
            .decode(payload.message_b64.as_bytes())
            .map_err(|_| (true, "damaged payload".to_string()))?;
        match self.transport.send_raw(&envelope, &message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Only the SMTP status code or the kind of failure is kept: server texts can quote
                // addresses.
                let code = match e.status() {
                    Some(code) => code.to_string(),
                    None if e.is_tls() || caused_by_tls(&e) => "tls".to_string(),
                    None if e.is_timeout() => "timeout".to_string(),
                    None => "connection".to_string(),
                };
                Err((e.is_permanent(), code))
            }
        }
    }
}

/// Whether a TLS failure (a certificate that did not verify, a failed handshake) lies under `error`:
/// lettre reports a failed STARTTLS handshake as a connection error.
fn caused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        cause = current.source();
    }
    false
}

/// Reports a message that could not be delivered to its worker (a bounce notice in the mailbox).
pub type FailureHook = Arc<
    dyn Fn(String, String) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Runs the sender until `stop` fires: wakes on `wake` or every second, sends what is due.
#[allow(clippy::too_many_arguments)]
pub async fn run_sender(
    store: Store,
    keys: Arc<ServerKey>,
    smarthost: Arc<Smarthost>,
    clock: SharedClock,
    give_up_after: Duration,
    wake: Arc<Notify>,
    on_failure: FailureHook,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let owner = crate::crypto::random_id();
    loop {
        let claimed = match claim(&store, &owner, clock.now_millis()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(cause = %e, "outbound: claiming failed");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for message in claimed {
            send_one(
                &store,
                &keys,
                &smarthost,
                &clock,
                give_up_after,
                &on_failure,
                message,
            )
            .await;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn send_one(
    store: &Store,
    keys: &ServerKey,
    smarthost: &Smarthost,
    clock: &SharedClock,
    give_up_after: Duration,
    on_failure: &FailureHook,
    message: Claimed,
) {
    let payload: Option<Payload> = keys
        .open(&message.sealed)
        .ok()
        .and_then(|plain| serde_json::from_slice(&plain).ok());
    let outcome = match &payload {
        Some(payload) => smarthost.send(payload).await,
        None => Err((true, "unreadable".to_string())),
    };
    let now = clock.now_millis();
    let result = match outcome {
        Ok(()) => {
            tracing::info!(kind = %message.kind, attempts = message.attempts, "outbound: sent");
            finish(store, &message.id, "sent", "", now).await
        }
        Err((permanent, code)) => {
            let expired = now - message.created_at >= give_up_after.as_millis() as i64;
            if permanent || expired {
                tracing::warn!(kind = %message.kind, code, "outbound: given up");
                let result = finish(store, &message.id, "failed", &code, now).await;
                if let Some(worker_id) =
                    message.worker_id.filter(|_| message.kind != "notification")
                {
                    on_failure(worker_id, message.id.clone()).await;
                }
                result
            } else {
                tracing::info!(kind = %message.kind, code, attempts = message.attempts, "outbound: will retry");
                retry_later(store, &message.id, message.attempts, &code, now).await
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(cause = %e, "outbound: recording the outcome failed");
    }
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
