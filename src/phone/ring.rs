//! Whom a call rings: the worker who owns a personal alias (within their hours), or a team's members
//! (whoever is on call first, when the team keeps an on-call rota).
//! Real numbers are opened from the sealed contact details here, only to be dialled.

use sqlx::Row as _;

use super::routing::Hours;
use super::PhoneNumber;
use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::crypto::ServerKey;
use crate::error::{Error, Result};
use crate::ids::WorkerId;
use crate::store::Store;

/// A member of the mailbox a call is for.
#[derive(Clone, sqlx::FromRow)]
pub struct Member {
    #[sqlx(rename = "id")]
    pub worker_id: crate::ids::WorkerId,
    pub handle: String,
    contact_sealed: Vec<u8>,
}

impl Member {
    /// The member's real phone, opened with the server key (to dial it or compare a caller with it).
    pub fn real_phone(&self, keys: &ServerKey) -> Result<PhoneNumber> {
        Ok(crate::worker::contact::open(keys, &self.contact_sealed)?.phone)
    }
}

pub use crate::mailbox::MailboxKind;

/// The kind of a mailbox and its members in order (by handle).
pub async fn mailbox(
    store: &Store,
    mailbox_id: &crate::ids::MailboxId,
) -> Result<(MailboxKind, Vec<Member>)> {
    let kind: MailboxKind = sqlx::query_scalar("SELECT kind FROM mailboxes WHERE id = $1")
        .bind(mailbox_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("mailbox"))?;
    let members: Vec<Member> = sqlx::query_as(
        "SELECT w.id, w.handle, w.contact_sealed FROM mailbox_members m \
         JOIN workers w ON w.id = m.worker_id WHERE m.mailbox_id = $1 ORDER BY w.handle",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    Ok((kind, members))
}

/// Who a call to a team's number rings, in order: first, then the next when nobody answers.
///
/// `on_call` is the on-call duty's order at the call's time (primary, secondary, then the rest:
/// `oncall::call_order`), `None` when the team keeps no rota: then the members in order. A member the
/// duty does not name still comes last; a name that is no member is skipped.
pub fn who_to_ring(members: &[Member], on_call: Option<&[WorkerId]>) -> Vec<Member> {
    let Some(order) = on_call else {
        return members.to_vec();
    };
    let mut ringing: Vec<Member> = order
        .iter()
        .filter_map(|id| members.iter().find(|m| &m.worker_id == id))
        .cloned()
        .collect();
    for member in members {
        if !ringing.iter().any(|m| m.worker_id == member.worker_id) {
            ringing.push(member.clone());
        }
    }
    ringing
}

/// A worker's hours, if they set any.
pub async fn hours_of(store: &Store, worker_id: &crate::ids::WorkerId) -> Result<Option<Hours>> {
    let row = sqlx::query(
        "SELECT from_minute, until_minute FROM phone_availability WHERE worker_id = $1",
    )
    .bind(worker_id)
    .fetch_optional(store.pool())
    .await?;
    row.map(|row| {
        let minute = |name: &str| -> Result<u16> {
            let value: i64 = row.try_get(name)?;
            u16::try_from(value).map_err(|_| Error::invalid("stored hours out of range"))
        };
        Ok(Hours {
            from_minute: minute("from_minute")?,
            until_minute: minute("until_minute")?,
        })
    })
    .transpose()
}

/// Sets (or with `None` clears) the hours a worker's phone rings.
pub async fn set_hours(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker_id: &crate::ids::WorkerId,
    handle: &str,
    hours: Option<Hours>,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    let detail = match hours {
        Some(h) => format!("from={} until={}", h.from_minute, h.until_minute),
        None => "always".to_string(),
    };
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, crate::audit::Action::PhoneHoursSet, handle).detail(&detail),
    )
    .await?;
    sqlx::query("DELETE FROM phone_availability WHERE worker_id = $1")
        .bind(worker_id)
        .execute(wtx.conn())
        .await?;
    if let Some(hours) = hours {
        sqlx::query(
            "INSERT INTO phone_availability (worker_id, from_minute, until_minute) VALUES ($1, $2, $3)",
        )
        .bind(worker_id)
        .bind(i64::from(hours.from_minute))
        .bind(i64::from(hours.until_minute))
        .execute(wtx.conn())
        .await?;
    }
    wtx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(handle: &str) -> Member {
        Member {
            worker_id: WorkerId::random(),
            handle: handle.to_string(),
            contact_sealed: Vec::new(),
        }
    }

    fn handles(ringing: &[Member]) -> Vec<&str> {
        ringing.iter().map(|m| m.handle.as_str()).collect()
    }

    #[test]
    fn without_a_rota_the_members_ring_in_order() {
        let members = [member("anna"), member("bram"), member("cor")];
        assert_eq!(
            handles(&who_to_ring(&members, None)),
            ["anna", "bram", "cor"]
        );
    }

    #[test]
    fn with_a_rota_the_duty_order_rings_and_nobody_is_lost() {
        let members = [member("anna"), member("bram"), member("cor")];
        let stranger = WorkerId::random();
        let order = [
            members[2].worker_id.clone(),
            stranger,
            members[0].worker_id.clone(),
        ];
        assert_eq!(
            handles(&who_to_ring(&members, Some(&order))),
            ["cor", "anna", "bram"]
        );
    }
}
