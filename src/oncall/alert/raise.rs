//! Raising alerts: what a delivered message raises, and raising one in the message's transaction,
//! by a page or for a call.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::Row as _;

use super::AlertKind;
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::ids::{AlertId, MailboxId, MessageId, WorkerId};
use crate::mailbox::{MailboxKind, MessageKind};
use crate::oncall::notify::AlertCode;
use crate::oncall::rota;
use crate::store::{Store, WriteTx};
use crate::worker::Handle;

/// What a message raises, decided before its transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub team_id: MailboxId,
    pub team: String,
    /// The worker it was addressed to (paged first).
    pub addressee: Option<WorkerId>,
    pub kind: AlertKind,
}

/// The alert a delivered message raises, if any: every message to a team mailbox whose team keeps
/// an on-call rota; an urgent message or a referral to a worker of such a team (that worker first).
pub async fn trigger_for_message(
    store: &Store,
    mailbox_id: &MailboxId,
    mailbox_kind: MailboxKind,
    kind: MessageKind,
    urgent: bool,
) -> Result<Option<Trigger>> {
    let alert_kind = alert_kind_of(kind, urgent);
    if !may_raise(mailbox_kind, alert_kind) {
        return Ok(None);
    }
    if mailbox_kind == MailboxKind::Team {
        let row = sqlx::query(
            "SELECT b.name FROM mailboxes b \
             JOIN oncall_rotas r ON r.team_mailbox_id = b.id WHERE b.id = $1",
        )
        .bind(mailbox_id)
        .fetch_optional(store.pool())
        .await?;
        return row
            .map(|row| {
                Ok(Trigger {
                    team_id: mailbox_id.clone(),
                    team: row.try_get("name")?,
                    addressee: None,
                    kind: alert_kind,
                })
            })
            .transpose();
    }
    let team = sqlx::query(
        "SELECT w.id AS worker_id, b.id AS team_id, b.name FROM workers w \
         JOIN mailbox_members m ON m.worker_id = w.id \
         JOIN oncall_rotas r ON r.team_mailbox_id = m.mailbox_id \
         JOIN mailboxes b ON b.id = m.mailbox_id \
         WHERE w.mailbox_id = $1 ORDER BY b.name LIMIT 1",
    )
    .bind(mailbox_id)
    .fetch_optional(store.pool())
    .await?;
    team.map(|row| {
        Ok(Trigger {
            team_id: row.try_get("team_id")?,
            team: row.try_get("name")?,
            addressee: Some(row.try_get("worker_id")?),
            kind: alert_kind,
        })
    })
    .transpose()
}

fn alert_kind_of(kind: MessageKind, urgent: bool) -> AlertKind {
    match (kind, urgent) {
        (MessageKind::Aanmelding, _) => AlertKind::Aanmelding,
        (_, true) => AlertKind::Urgent,
        _ => AlertKind::Message,
    }
}

/// Whether a message of this kind to this mailbox can raise an alert at all: the common case, an
/// ordinary message to a worker, is decided without asking the database.
fn may_raise(mailbox_kind: MailboxKind, alert_kind: AlertKind) -> bool {
    mailbox_kind == MailboxKind::Team || alert_kind != AlertKind::Message
}

/// A raised alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Raised {
    pub id: AlertId,
    pub code: AlertCode,
}

/// Random codes tried before looking for a free one.
const CODE_TRIES: usize = 24;

/// Raises an alert inside the caller's write transaction (the message's own, for a message). `None`
/// when it joined an alert still open for the same people, or when every code is taken (ten
/// thousand live alerts: logged; the message is still stored).
pub async fn raise_in(
    wtx: &mut WriteTx,
    trigger: &Trigger,
    message_id: Option<&MessageId>,
    now: Millis,
    actor: &Actor,
) -> Result<Option<Raised>> {
    if trigger.kind.coalesces() {
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM alerts WHERE team_mailbox_id = $1 AND state = 'open' \
             AND COALESCE(addressee_id, '') = $2 AND kind IN ('message', 'urgent', 'aanmelding') \
             LIMIT 1",
        )
        .bind(&trigger.team_id)
        .bind(
            trigger
                .addressee
                .as_ref()
                .map(WorkerId::as_str)
                .unwrap_or(""),
        )
        .fetch_optional(wtx.conn())
        .await?;
        if open.is_some() {
            return Ok(None);
        }
    }
    let id = AlertId::random();
    let mut code = None;
    for attempt in 0..=CODE_TRIES {
        let candidate = if attempt < CODE_TRIES {
            AlertCode::random()
        } else {
            match free_code(wtx).await? {
                Some(code) => code,
                None => break,
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO alerts (id, code, team_mailbox_id, addressee_id, kind, message_id, state, \
             raised_at, step, next_due_at) VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, 0, $7) \
             ON CONFLICT (code) WHERE resolved_at IS NULL DO NOTHING",
        )
        .bind(&id)
        .bind(candidate.as_str())
        .bind(&trigger.team_id)
        .bind(trigger.addressee.as_ref())
        .bind(trigger.kind.as_str())
        .bind(message_id)
        .bind(now)
        .execute(wtx.conn())
        .await?
        .rows_affected();
        if inserted == 1 {
            code = Some(candidate);
            break;
        }
    }
    let Some(code) = code else {
        tracing::error!("on-call: every alert code is in use; resolve old alerts");
        return Ok(None);
    };
    let detail = format!(
        "team={} kind={} code={code}{}",
        trigger.team,
        trigger.kind.as_str(),
        if trigger.addressee.is_some() {
            " addressee=yes"
        } else {
            ""
        }
    );
    audit::append(
        wtx,
        now,
        Event::new(actor, Action::OncallAlertRaised, id.as_str()).detail(&detail),
    )
    .await?;
    Ok(Some(Raised { id, code }))
}

/// A code no live alert holds, chosen at random among the free ones.
async fn free_code(wtx: &mut WriteTx) -> Result<Option<AlertCode>> {
    use rand::seq::IteratorRandom as _;
    let used: BTreeSet<String> =
        sqlx::query_scalar("SELECT code FROM alerts WHERE resolved_at IS NULL")
            .fetch_all(wtx.conn())
            .await?
            .into_iter()
            .collect();
    Ok((0..10_000u32)
        .map(|n| format!("{n:04}"))
        .filter(|c| !used.contains(c))
        .choose(&mut rand::rngs::OsRng)
        .map(|c| AlertCode::parse(&c).expect("four digits")))
}

/// Pages a team by hand. A worker must be a member of the team. (The caller wakes the scheduler:
/// `core.oncall.wake()`; from the command line, the relay finds the alert at its next poll.)
pub async fn page(
    store: &Store,
    now: Millis,
    team: &Handle,
    actor: &Actor,
    worker_id: Option<&WorkerId>,
) -> Result<Raised> {
    let team_id = rota::team_id(store, team).await?;
    if let Some(worker_id) = worker_id {
        let member: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM mailbox_members WHERE mailbox_id = $1 AND worker_id = $2",
        )
        .bind(&team_id)
        .bind(worker_id)
        .fetch_optional(store.pool())
        .await?;
        if member.is_none() {
            return Err(Error::NotFound("team"));
        }
    }
    raise_alone(store, now, &team_id, team.as_str(), AlertKind::Page, actor).await
}

/// Raises an alert for a call or SMS to the team's number (the phone capability calls this).
pub async fn raise_for_call(core: &Core, team_id: &MailboxId) -> Result<Raised> {
    let team: String =
        sqlx::query_scalar("SELECT name FROM mailboxes WHERE id = $1 AND kind = 'team'")
            .bind(team_id)
            .fetch_optional(core.store.pool())
            .await?
            .ok_or(Error::NotFound("team"))?;
    let raised = raise_alone(
        &core.store,
        core.now(),
        team_id,
        &team,
        AlertKind::Call,
        &Actor::System,
    )
    .await?;
    core.oncall.wake();
    Ok(raised)
}

async fn raise_alone(
    store: &Store,
    now: Millis,
    team_id: &MailboxId,
    team: &str,
    kind: AlertKind,
    actor: &Actor,
) -> Result<Raised> {
    let trigger = Trigger {
        team_id: team_id.clone(),
        team: team.to_string(),
        addressee: None,
        kind,
    };
    let mut wtx = store.begin_write().await?;
    let raised = raise_in(&mut wtx, &trigger, None, now, actor)
        .await?
        .ok_or_else(|| Error::Conflict("every alert code is in use".into()))?;
    wtx.commit().await?;
    Ok(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ordinary_messages_to_a_worker_skip_the_rota() {
        use MessageKind::*;
        for (mailbox, kind, urgent, raises) in [
            (MailboxKind::Worker, Bericht, false, false),
            (MailboxKind::Worker, Bericht, true, true),
            (MailboxKind::Worker, Aanmelding, false, true),
            (MailboxKind::Team, Bericht, false, true),
            (MailboxKind::Team, Aanmelding, true, true),
        ] {
            assert_eq!(
                may_raise(mailbox, alert_kind_of(kind, urgent)),
                raises,
                "{mailbox:?} {kind:?} urgent={urgent}"
            );
        }
    }
}
