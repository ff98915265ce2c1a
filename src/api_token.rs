//! Long-lived API tokens a worker creates for the CLI reader. They list and fetch sealed messages and
//! delete them; they never unlock an identity, change the passphrase or make more tokens. Only the
//! SHA-256 of a token is stored.

use serde::{Deserialize, Serialize};

use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::crypto;
use crate::error::{Error, Result};
pub use crate::ids::TokenId;
use crate::ids::WorkerId;
use crate::store::Store;

/// Tokens carry a prefix so that the server (and a secret scanner) can tell them from session tokens.
const PREFIX: &str = "snt_";
const MAX_DAYS: u32 = 365;

pub fn looks_like(token: &str) -> bool {
    token.starts_with(PREFIX)
}

#[derive(Serialize, Deserialize)]
pub struct Created {
    pub id: TokenId,
    /// Shown once.
    pub token: String,
    pub expires_at: String,
}

#[derive(Serialize, Deserialize)]
pub struct Info {
    pub id: TokenId,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(sqlx::FromRow)]
pub struct Holder {
    pub worker_id: WorkerId,
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
    worker_id: &WorkerId,
    label: &str,
    expires_in_days: u32,
) -> Result<Created> {
    let label = validate_label(label)?;
    if !(1..=MAX_DAYS).contains(&expires_in_days) {
        return Err(Error::invalid(format!(
            "expires_in_days must be between 1 and {MAX_DAYS}"
        )));
    }
    let id = TokenId::random();
    let token = format!("{PREFIX}{}", crypto::random_token(32));
    let expires_at = now + i64::from(expires_in_days) * 86_400_000;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::TokenCreated, id.as_str()),
    )
    .await?;
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
    Ok(sqlx::query_as(
        "SELECT t.worker_id, w.handle FROM api_tokens t JOIN workers w ON w.id = t.worker_id \
         WHERE t.token_hash = $1 AND t.expires_at > $2",
    )
    .bind(crypto::sha256_hex(token.as_bytes()))
    .bind(now)
    .fetch_optional(store.pool())
    .await?)
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: TokenId,
    label: String,
    created_at: Millis,
    expires_at: Millis,
}

pub async fn list(store: &Store, worker_id: &WorkerId) -> Result<Vec<Info>> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT id, label, created_at, expires_at FROM api_tokens WHERE worker_id = $1 \
         ORDER BY created_at",
    )
    .bind(worker_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Info {
            id: row.id,
            label: row.label,
            created_at: rfc3339(row.created_at),
            expires_at: rfc3339(row.expires_at),
        })
        .collect())
}

pub async fn revoke(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &WorkerId,
    id: &TokenId,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::TokenRevoked, id.as_str()),
    )
    .await?;
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
