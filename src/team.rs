//! Teams: a shared mailbox (`aanmelding@`, `info@`) whose messages are sealed to every member. A member
//! added later reads only what arrives after joining; a member removed reads nothing more.

use serde::Serialize;
use sqlx::Row as _;

use crate::alias::{self, Address, Domain, LocalPart};
use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::error::{conflict_on_duplicate, Error, Result};
use crate::store::Store;
use crate::worker::{self, Handle};

/// Team names follow the handle rules (`let-jb`, `bereikbaarheid`).
pub type TeamName = Handle;

pub async fn add(
    store: &Store,
    domain: &Domain,
    now: Millis,
    actor: &Actor,
    name: &TeamName,
    local: &LocalPart,
) -> Result<Address> {
    let address = Address::from_parts(local, domain);
    let mailbox_id = crate::crypto::random_id();
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "team.added", name.as_str()).detail(address.as_str()),
    )
    .await?;
    sqlx::query("INSERT INTO mailboxes (id, kind, name, created_at) VALUES ($1, 'team', $2, $3)")
        .bind(&mailbox_id)
        .bind(name.as_str())
        .bind(now)
        .execute(wtx.conn())
        .await
        .map_err(|e| conflict_on_duplicate(e, "a team with that name already exists"))?;
    alias::create_named(&mut wtx, &address, &mailbox_id, now).await?;
    wtx.commit().await?;
    Ok(address)
}

async fn mailbox_of(store: &Store, name: &TeamName) -> Result<String> {
    sqlx::query_scalar("SELECT id FROM mailboxes WHERE kind = 'team' AND name = $1")
        .bind(name.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("team"))
}

pub async fn add_member(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &TeamName,
    handle: &Handle,
) -> Result<()> {
    let mailbox_id = mailbox_of(store, name).await?;
    let member = worker::find(store, handle).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "team.member_added", name.as_str()).detail(handle.as_str()),
    )
    .await?;
    sqlx::query(
        "INSERT INTO mailbox_members (mailbox_id, worker_id, joined_at) VALUES ($1, $2, $3)",
    )
    .bind(&mailbox_id)
    .bind(&member.id)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "that worker is already a member"))?;
    wtx.commit().await
}

pub async fn remove_member(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &TeamName,
    handle: &Handle,
) -> Result<()> {
    let mailbox_id = mailbox_of(store, name).await?;
    let member = worker::find(store, handle).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "team.member_removed", name.as_str()).detail(handle.as_str()),
    )
    .await?;
    let removed =
        sqlx::query("DELETE FROM mailbox_members WHERE mailbox_id = $1 AND worker_id = $2")
            .bind(&mailbox_id)
            .bind(&member.id)
            .execute(wtx.conn())
            .await?;
    if removed.rows_affected() == 0 {
        return Err(Error::NotFound("team membership"));
    }
    wtx.commit().await
}

#[derive(Serialize)]
pub struct TeamInfo {
    pub name: String,
    pub aliases: Vec<alias::AliasInfo>,
    pub members: Vec<String>,
}

pub async fn list(store: &Store) -> Result<Vec<TeamInfo>> {
    let teams = sqlx::query("SELECT id, name FROM mailboxes WHERE kind = 'team' ORDER BY name")
        .fetch_all(store.pool())
        .await?;
    let mut infos = Vec::with_capacity(teams.len());
    for team in teams {
        let id: String = team.try_get("id")?;
        let members = sqlx::query_scalar(
            "SELECT w.handle FROM mailbox_members m JOIN workers w ON w.id = m.worker_id \
             WHERE m.mailbox_id = $1 ORDER BY w.handle",
        )
        .bind(&id)
        .fetch_all(store.pool())
        .await?;
        infos.push(TeamInfo {
            name: team.try_get("name")?,
            aliases: alias::list_for_mailbox(store, &id).await?,
            members,
        });
    }
    Ok(infos)
}
