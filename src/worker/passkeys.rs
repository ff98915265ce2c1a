//! Passkeys: WebAuthn credentials a worker registers in the web app. After the passphrase, an
//! assertion by any one of them replaces the TOTP code at login. The relay keeps the authenticator's
//! credential id, the public key and its signature counter; the private key never leaves the
//! authenticator. The ceremonies' checks are pure functions in `crate::webauthn`.

use serde::Serialize;

use super::{WorkerId, WorkerRef};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::error::{conflict_on_duplicate, Error, Result};
use crate::ids::PasskeyId;
use crate::store::{Store, WriteTx};
use crate::webauthn::NewCredential;

/// Passkeys per worker: a phone, a laptop and a spare or two; more is a sign of a stolen session.
pub const MAX_PASSKEYS: i64 = 10;
/// Longest name a worker gives a passkey ("telefoon", "laptop thuis").
pub const MAX_LABEL_CHARS: usize = 60;

/// A registered passkey as the worker sees it in the list.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct PasskeyInfo {
    pub id: PasskeyId,
    pub label: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

pub async fn list(store: &Store, worker_id: &WorkerId) -> Result<Vec<PasskeyInfo>> {
    Ok(sqlx::query_as(
        "SELECT id, label, created_at, last_used_at FROM worker_passkeys WHERE worker_id = $1 \
         ORDER BY created_at",
    )
    .bind(worker_id)
    .fetch_all(store.pool())
    .await?)
}

/// The credential ids already registered, so the browser does not register the same authenticator
/// twice (`excludeCredentials`).
pub async fn credential_ids(store: &Store, worker_id: &WorkerId) -> Result<Vec<Vec<u8>>> {
    Ok(sqlx::query_scalar(
        "SELECT credential_id FROM worker_passkeys WHERE worker_id = $1 ORDER BY created_at",
    )
    .bind(worker_id)
    .fetch_all(store.pool())
    .await?)
}

/// A name for a passkey: trimmed, 1–60 characters, no control characters.
pub fn valid_label(label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(Error::invalid(format!(
            "a passkey's name has 1 to {MAX_LABEL_CHARS} characters"
        )));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::invalid("a passkey's name has no control characters"));
    }
    Ok(label.to_string())
}

/// Stores a verified registration. The same authenticator twice, or more than `MAX_PASSKEYS`, is a
/// conflict.
pub async fn add(
    store: &Store,
    now: Millis,
    worker_id: &WorkerId,
    handle: &str,
    label: &str,
    credential: &NewCredential,
) -> Result<PasskeyId> {
    let label = valid_label(label)?;
    let id = PasskeyId::random();
    let mut wtx = store.begin_write().await?;
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM worker_passkeys WHERE worker_id = $1")
            .bind(worker_id)
            .fetch_one(wtx.conn())
            .await?;
    if count >= MAX_PASSKEYS {
        return Err(Error::Conflict(format!(
            "at most {MAX_PASSKEYS} passkeys; remove one first"
        )));
    }
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            Action::WorkerPasskeyAdded,
            handle,
        )
        .detail(&format!("passkey={id}")),
    )
    .await?;
    sqlx::query(
        "INSERT INTO worker_passkeys \
         (id, worker_id, credential_id, public_key, sign_count, label, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&id)
    .bind(worker_id)
    .bind(&credential.credential_id)
    .bind(credential.public_key.to_stored())
    .bind(i64::from(credential.sign_count))
    .bind(&label)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "this passkey is already registered"))?;
    wtx.commit().await?;
    Ok(id)
}

/// Removes one of the worker's passkeys (a lost phone); someone else's id is not found.
pub async fn remove(
    store: &Store,
    now: Millis,
    worker_id: &WorkerId,
    handle: &str,
    id: &PasskeyId,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            Action::WorkerPasskeyRemoved,
            handle,
        )
        .detail(&format!("passkey={id}")),
    )
    .await?;
    let deleted = sqlx::query("DELETE FROM worker_passkeys WHERE id = $1 AND worker_id = $2")
        .bind(id)
        .bind(worker_id)
        .execute(wtx.conn())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound("passkey"));
    }
    wtx.commit().await
}

/// Removes every passkey of a worker (the administrator, for a lost device); returns how many.
pub async fn remove_all(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker: &WorkerRef,
) -> Result<u64> {
    let mut wtx = store.begin_write().await?;
    let removed = sqlx::query("DELETE FROM worker_passkeys WHERE worker_id = $1")
        .bind(&worker.id)
        .execute(wtx.conn())
        .await?
        .rows_affected();
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::WorkerPasskeyRemoved, worker.handle.as_str())
            .detail(&format!("all count={removed}")),
    )
    .await?;
    wtx.commit().await?;
    Ok(removed)
}

/// What a login needs of a passkey.
#[derive(sqlx::FromRow)]
pub(super) struct StoredPasskey {
    pub id: PasskeyId,
    pub public_key: Vec<u8>,
    pub sign_count: i64,
}

/// The worker's passkey with this credential id (another worker's is not found).
pub(super) async fn for_login(
    store: &Store,
    worker_id: &WorkerId,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>> {
    Ok(sqlx::query_as(
        "SELECT id, public_key, sign_count FROM worker_passkeys \
         WHERE worker_id = $1 AND credential_id = $2",
    )
    .bind(worker_id)
    .bind(credential_id)
    .fetch_optional(store.pool())
    .await?)
}

/// Stores the counter and challenge a login's assertion carried, only if no other login used the
/// passkey since it was read (the counter is then unchanged) and this challenge is not the last one
/// that logged in with it: of two copies of one answer sent at once, the second finds its own
/// challenge here and fails, even when the authenticator never counts. Returns whether it was stored.
pub(super) async fn claim_use(
    wtx: &mut WriteTx,
    passkey: &StoredPasskey,
    new_count: u32,
    challenge: &[u8],
    now: Millis,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE worker_passkeys SET sign_count = $1, last_used_at = $2, last_challenge = $5 \
         WHERE id = $3 AND sign_count = $4 \
         AND (last_challenge IS NULL OR last_challenge <> $5)",
    )
    .bind(i64::from(new_count))
    .bind(now)
    .bind(&passkey.id)
    .bind(passkey.sign_count)
    .bind(challenge)
    .execute(wtx.conn())
    .await?;
    Ok(updated.rows_affected() == 1)
}
