//! Long-lived API tokens a worker creates for the CLI reader. They list and fetch sealed messages and
//! delete them; they never unlock an identity, change the passphrase or make more tokens. Only the
//! SHA-256 of a token is stored.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::audit::{self, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{Error, Result};
use crate::store::Store;

/// Tokens carry a prefix so that the server (and a secret scanner) can tell them from session tokens.
const PREFIX: &str = "snt_";
const MAX_DAYS: u32 = 365;

pub fn looks_like(token: &str) -> bool {
    token.starts_with(PREFIX)
}

#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: String,
    /// Shown once.
    pub token: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
pub struct Info {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
}

pub struct Holder {
    pub worker_id: String,
    pub handle: String,
}

fn validate_label(label: &str) -> Result<&str> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(Error::invalid(
            "a token label has 1 to 64 printable characters",
        ));
    }
    Ok(label)
}

pub async fn create(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &str,
    label: &str,
    expires_in_days: u32,
) -> Result<Created> {
    let label = validate_label(label)?;
    if !(1..=MAX_DAYS).contains(&expires_in_days) {
        return Err(Error::invalid(format!(
            "expires_in_days must be between 1 and {MAX_DAYS}"
        )));
    }
    let id = crypto::random_id();
    let token = format!("{PREFIX}{}", crypto::random_token(32));
    let expires_at = now + i64::from(expires_in_days) * 86_400_000;
    let mut wtx = store.begin_write().await?;
    audit::append(&mut wtx, now, Event::new(actor, "token.created", &id)).await?;
    sqlx::query(
        "INSERT INTO api_tokens (id, worker_id, token_hash, label, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(worker_id)
    .bind(crypto::sha256_hex(token.as_bytes()))
    .bind(label)
    .bind(now)
    .bind(expires_at)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(Created {
        id,
        token,
        expires_at: rfc3339(expires_at),
    })
}

/// The worker a live token belongs to.
pub async fn verify(store: &Store, token: &str, now: Millis) -> Result<Option<Holder>> {
    let row = sqlx::query(
        "SELECT t.worker_id, w.handle FROM api_tokens t JOIN workers w ON w.id = t.worker_id \
         WHERE t.token_hash = $1 AND t.expires_at > $2",
    )
    .bind(crypto::sha256_hex(token.as_bytes()))
    .bind(now)
    .fetch_optional(store.pool())
    .await?;
    row.map(|row| {
        Ok(Holder {
            worker_id: row.try_get("worker_id")?,
            handle: row.try_get("handle")?,
        })
    })
    .transpose()
}

pub async fn list(store: &Store, worker_id: &str) -> Result<Vec<Info>> {
    let rows = sqlx::query(
        "SELECT id, label, created_at, expires_at FROM api_tokens WHERE worker_id = $1 \
         ORDER BY created_at",
    )
    .bind(worker_id)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Info {
                id: row.try_get("id")?,
                label: row.try_get("label")?,
                created_at: rfc3339(row.try_get("created_at")?),
                expires_at: rfc3339(row.try_get("expires_at")?),
            })
        })
        .collect()
}

pub async fn revoke(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &str,
    id: &str,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(&mut wtx, now, Event::new(actor, "token.revoked", id)).await?;
    let deleted = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND worker_id = $2")
        .bind(id)
        .bind(worker_id)
        .execute(wtx.conn())
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound("token"));
    }
    wtx.commit().await
}
