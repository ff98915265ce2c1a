//! Mailboxes and their members: creating a mailbox, joining and leaving it, the teams, and the
//! recipients every message for a mailbox is sealed to.

use age::x25519;

use super::{MailboxId, MailboxKind};
use crate::clock::Millis;
use crate::crypto;
use crate::error::{conflict_on_duplicate, Error, Result};
use crate::ids::WorkerId;
use crate::store::{Store, WriteTx};

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
pub(super) struct MemberRow {
    pub(super) id: WorkerId,
    pub(super) recipient: String,
    pub(super) contact_sealed: Vec<u8>,
}

pub(super) async fn members(store: &Store, mailbox_id: &MailboxId) -> Result<Vec<MemberRow>> {
    Ok(sqlx::query_as(
        "SELECT w.id, w.recipient, w.contact_sealed FROM mailbox_members m \
         JOIN workers w ON w.id = m.worker_id WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?)
}
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
