//! Teams: a shared mailbox (`aanmelding@`, `info@`) whose messages are sealed to every member. A member
//! added later reads only what arrives after joining; a member removed reads nothing more.

use serde::Serialize;

use crate::alias::{self, Address, Domain, LocalPart};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::mailbox::{self, MailboxKind};
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
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::TeamAdded, name.as_str()).detail(address.as_str()),
    )
    .await?;
    let mailbox_id = mailbox::create(&mut wtx, MailboxKind::Team, name.as_str(), now).await?;
    alias::create_named(&mut wtx, &address, &mailbox_id, now).await?;
    wtx.commit().await?;
    Ok(address)
}

pub async fn add_member(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &TeamName,
    handle: &Handle,
) -> Result<()> {
    let mailbox_id = mailbox::team(store, name.as_str()).await?;
    let member = worker::find(store, handle).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::TeamMemberAdded, name.as_str()).detail(handle.as_str()),
    )
    .await?;
    mailbox::add_member(&mut wtx, &mailbox_id, &member.id, now).await?;
    wtx.commit().await
}

pub async fn remove_member(
    store: &Store,
    now: Millis,
    actor: &Actor,
    name: &TeamName,
    handle: &Handle,
) -> Result<()> {
    let mailbox_id = mailbox::team(store, name.as_str()).await?;
    let member = worker::find(store, handle).await?;
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::TeamMemberRemoved, name.as_str()).detail(handle.as_str()),
    )
    .await?;
    if !mailbox::remove_member(&mut wtx, &mailbox_id, &member.id).await? {
        // Dropping the transaction rolls the audit row back: nothing happened.
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
    let mut infos = Vec::new();
    for (id, name) in mailbox::teams(store).await? {
        infos.push(TeamInfo {
            name,
            aliases: alias::list_for_mailbox(store, &id).await?,
            members: mailbox::member_handles(store, &id).await?,
        });
    }
    Ok(infos)
}
