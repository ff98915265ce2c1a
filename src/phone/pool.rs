//! The number pool: numbers the organisation rents, each free, assigned to one alias (a worker's or a
//! team's), or quarantined after a burn. A burned number is treated at once like a number the relay
//! does not serve, and returns to the pool only after `[phone] quarantine_days`, so that a number a
//! family knows never reaches a new worker soon.

use serde::Serialize;
use sqlx::Row as _;

use super::PhoneNumber;
use crate::alias::Address;
use crate::audit::{self, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::error::{conflict_on_duplicate, Error, Result};
use crate::store::{Store, WriteTx};

const DAY_MILLIS: i64 = 86_400_000;

/// What a call or text to a number reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumberState {
    /// Assigned to this alias.
    Served { alias: Address },
    /// Burned and in quarantine.
    Burned,
    /// Not in the pool, or free.
    Unserved,
}

/// Looks up what a number reaches now.
pub async fn state_of(store: &Store, number: &PhoneNumber, now: Millis) -> Result<NumberState> {
    let row = sqlx::query("SELECT alias, quarantined_until FROM phone_numbers WHERE number = $1")
        .bind(number.as_str())
        .fetch_optional(store.pool())
        .await?;
    let Some(row) = row else {
        return Ok(NumberState::Unserved);
    };
    let alias: Option<String> = row.try_get("alias")?;
    let quarantined_until: Option<Millis> = row.try_get("quarantined_until")?;
    Ok(match alias {
        Some(alias) => NumberState::Served {
            alias: Address::parse(&alias)?,
        },
        None if quarantined_until.is_some_and(|until| until > now) => NumberState::Burned,
        None => NumberState::Unserved,
    })
}

/// The number assigned to an alias, if any.
pub async fn number_of(store: &Store, alias: &Address) -> Result<Option<PhoneNumber>> {
    let number: Option<String> =
        sqlx::query_scalar("SELECT number FROM phone_numbers WHERE alias = $1")
            .bind(alias.as_str())
            .fetch_optional(store.pool())
            .await?;
    number.map(|n| PhoneNumber::parse(&n)).transpose()
}

/// Adds numbers to the pool (free). A number already in the pool is a conflict.
pub async fn add(store: &Store, now: Millis, actor: &Actor, numbers: &[PhoneNumber]) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    for number in numbers {
        audit::append(
            &mut wtx,
            now,
            Event::new(actor, crate::audit::Action::PhoneAdded, number.as_str()),
        )
        .await?;
        sqlx::query("INSERT INTO phone_numbers (number, created_at) VALUES ($1, $2)")
            .bind(number.as_str())
            .bind(now)
            .execute(wtx.conn())
            .await
            .map_err(|e| conflict_on_duplicate(e, &format!("{number} is already in the pool")))?;
    }
    wtx.commit().await
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolState {
    Free,
    Assigned,
    Quarantined,
}

#[derive(Clone, Debug, Serialize)]
pub struct PoolEntry {
    pub number: String,
    pub state: PoolState,
    /// The alias it is assigned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The worker's handle or the team's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantined_until: Option<String>,
}

pub async fn list(store: &Store, now: Millis) -> Result<Vec<PoolEntry>> {
    let rows = sqlx::query(
        "SELECT p.number, p.alias, p.quarantined_until, b.name AS owner FROM phone_numbers p \
         LEFT JOIN aliases a ON a.address = p.alias \
         LEFT JOIN mailboxes b ON b.id = a.mailbox_id ORDER BY p.number",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let alias: Option<String> = row.try_get("alias")?;
            let until: Option<Millis> = row.try_get("quarantined_until")?;
            let (state, quarantined_until) = match (&alias, until) {
                (Some(_), _) => (PoolState::Assigned, None),
                (None, Some(until)) if until > now => {
                    (PoolState::Quarantined, Some(rfc3339(until)))
                }
                (None, _) => (PoolState::Free, None),
            };
            Ok(PoolEntry {
                number: row.try_get("number")?,
                state,
                alias,
                owner: row.try_get("owner")?,
                quarantined_until,
            })
        })
        .collect()
}

/// Assigns a number to an alias: the given one (it must be free), or the first free one.
pub async fn assign(
    store: &Store,
    now: Millis,
    actor: &Actor,
    alias: &Address,
    number: Option<&PhoneNumber>,
) -> Result<PhoneNumber> {
    let mut wtx = store.begin_write().await?;
    let assigned = assign_in(&mut wtx, now, actor, alias, number).await?;
    let Some(assigned) = assigned else {
        return Err(Error::Conflict(match number {
            Some(number) => {
                format!("{number} is not free (assigned, quarantined or not in the pool)")
            }
            None => "the pool has no free number; add one with `phone pool add`".into(),
        }));
    };
    wtx.commit().await?;
    Ok(assigned)
}

/// Assigns the first free number to an alias when the pool has one (`worker add`); `None` otherwise.
pub async fn assign_if_free(
    store: &Store,
    now: Millis,
    actor: &Actor,
    alias: &Address,
) -> Result<Option<PhoneNumber>> {
    let mut wtx = store.begin_write().await?;
    let assigned = assign_in(&mut wtx, now, actor, alias, None).await?;
    if assigned.is_some() {
        wtx.commit().await?;
    }
    Ok(assigned)
}

async fn assign_in(
    wtx: &mut WriteTx,
    now: Millis,
    actor: &Actor,
    alias: &Address,
    number: Option<&PhoneNumber>,
) -> Result<Option<PhoneNumber>> {
    let live: Option<String> =
        sqlx::query_scalar("SELECT address FROM aliases WHERE address = $1 AND burned_at IS NULL")
            .bind(alias.as_str())
            .fetch_optional(wtx.conn())
            .await?;
    if live.is_none() {
        return Err(Error::NotFound("live alias"));
    }
    let has: Option<String> =
        sqlx::query_scalar("SELECT number FROM phone_numbers WHERE alias = $1")
            .bind(alias.as_str())
            .fetch_optional(wtx.conn())
            .await?;
    if has.is_some() {
        return Err(Error::Conflict(format!(
            "alias {alias} already has a number"
        )));
    }
    const FREE: &str = "alias IS NULL AND (quarantined_until IS NULL OR quarantined_until <= $1)";
    let candidate: Option<String> = match number {
        Some(number) => {
            sqlx::query_scalar(&format!(
                "SELECT number FROM phone_numbers WHERE number = $2 AND {FREE}"
            ))
            .bind(now)
            .bind(number.as_str())
            .fetch_optional(wtx.conn())
            .await?
        }
        None => {
            sqlx::query_scalar(&format!(
                "SELECT number FROM phone_numbers WHERE {FREE} ORDER BY number LIMIT 1"
            ))
            .bind(now)
            .fetch_optional(wtx.conn())
            .await?
        }
    };
    let Some(candidate) = candidate else {
        return Ok(None);
    };
    sqlx::query(
        "UPDATE phone_numbers SET alias = $1, assigned_at = $2, burned_at = NULL, \
         quarantined_until = NULL WHERE number = $3",
    )
    .bind(alias.as_str())
    .bind(now)
    .bind(&candidate)
    .execute(wtx.conn())
    .await?;
    audit::append(
        wtx,
        now,
        Event::new(actor, crate::audit::Action::PhoneAssigned, &candidate)
            .detail(&format!("alias={alias}")),
    )
    .await?;
    Ok(Some(PhoneNumber::parse(&candidate)?))
}

/// Burns an assigned number: from now on it is a number the relay does not serve, and it stays out of
/// the pool for `quarantine_days`. Returns the end of the quarantine.
pub async fn burn(
    store: &Store,
    now: Millis,
    actor: &Actor,
    number: &PhoneNumber,
    quarantine_days: u32,
) -> Result<Millis> {
    let until = now + i64::from(quarantine_days) * DAY_MILLIS;
    let mut wtx = store.begin_write().await?;
    let alias: Option<Option<String>> =
        sqlx::query_scalar("SELECT alias FROM phone_numbers WHERE number = $1")
            .bind(number.as_str())
            .fetch_optional(wtx.conn())
            .await?;
    let Some(Some(alias)) = alias else {
        return Err(Error::NotFound("assigned number"));
    };
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, crate::audit::Action::PhoneBurned, number.as_str()).detail(&format!(
            "alias={alias} quarantined_until={}",
            rfc3339(until)
        )),
    )
    .await?;
    sqlx::query(
        "UPDATE phone_numbers SET alias = NULL, burned_at = $1, quarantined_until = $2 \
         WHERE number = $3",
    )
    .bind(now)
    .bind(until)
    .bind(number.as_str())
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(until)
}

/// The oldest live alias of a mailbox (the one a number is assigned to by default).
pub async fn first_live_alias(
    store: &Store,
    mailbox_id: &crate::ids::MailboxId,
) -> Result<Address> {
    let address: Option<String> = sqlx::query_scalar(
        "SELECT address FROM aliases WHERE mailbox_id = $1 AND burned_at IS NULL \
         ORDER BY created_at, address LIMIT 1",
    )
    .bind(mailbox_id)
    .fetch_optional(store.pool())
    .await?;
    Address::parse(&address.ok_or(Error::NotFound("live alias"))?)
}

/// The team mailbox by name.
pub async fn team_mailbox(store: &Store, name: &str) -> Result<crate::ids::MailboxId> {
    sqlx::query_scalar("SELECT id FROM mailboxes WHERE kind = $1 AND name = $2")
        .bind(crate::mailbox::MailboxKind::Team)
        .bind(name)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("team"))
}
