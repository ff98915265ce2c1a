//! Replacing a worker's TOTP secret from a logged-in session: the web app's enrolment after the first
//! login. The administrator who issued the one-time credentials saw the first secret; the new one is
//! shown only to the worker, and it takes effect only once the worker proves with a code that their
//! authenticator app holds it.

use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::crypto::ServerKey;
use crate::error::Result;
use crate::ids::WorkerId;
use crate::store::Store;
use crate::totp::TotpSecret;

/// Replaces the worker's TOTP secret with `secret` when `code` is valid for it now. Returns whether it
/// was replaced. The matched step is claimed as used, so the same code cannot also log in.
pub async fn replace_totp(
    store: &Store,
    server_key: &ServerKey,
    now: Millis,
    worker_id: &WorkerId,
    handle: &str,
    secret: &TotpSecret,
    code: &str,
) -> Result<bool> {
    let Some(step) = secret.verify(code, now, 0) else {
        return Ok(false);
    };
    let sealed = server_key.seal(secret.as_bytes())?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            audit::Action::WorkerTotpReplaced,
            handle,
        ),
    )
    .await?;
    let updated = sqlx::query(
        "UPDATE workers SET totp_sealed = $1, \
         totp_last_step = CASE WHEN totp_last_step > $2 THEN totp_last_step ELSE $2 END \
         WHERE id = $3",
    )
    .bind(sealed)
    .bind(step)
    .bind(worker_id)
    .execute(wtx.conn())
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    wtx.commit().await?;
    Ok(true)
}
