//! Closing alerts: acknowledging and resolving (by the API, the web app, the command line, an SMS
//! reply or a key press in an alert call), and forgetting closed alerts after the retention period.

use serde::Serialize;
use sqlx::Row as _;

use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::ids::{AlertId, MailboxId, NotificationId, OutboundId, WorkerId};
use crate::oncall::notify::AlertCode;
use crate::phone::PhoneNumber;
use crate::store::{Store, WriteTx};

/// How an acknowledgement or resolution arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Api,
    /// The web app's buttons.
    Web,
    Sms,
    Call,
    Cli,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Api => "api",
            Via::Web => "web",
            Via::Sms => "sms",
            Via::Call => "call",
            Via::Cli => "cli",
        }
    }
}

/// Who acts on an alert: a worker (who must be on its list: the addressee or a member of its team),
/// or an administrator at the command line.
#[derive(Clone, Debug)]
pub enum Closer<'a> {
    Worker { id: &'a WorkerId, handle: &'a str },
    Admin(&'a Actor),
}

impl Closer<'_> {
    fn actor(&self) -> Actor {
        match self {
            Closer::Worker { handle, .. } => Actor::Worker(handle.to_string()),
            Closer::Admin(actor) => (*actor).clone(),
        }
    }
}

/// What an acknowledgement or resolution did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Closed {
    /// It changed the alert.
    Done,
    /// The alert was already in that state (or further).
    AlreadyClosed,
}

/// The alert's team, when `closer` may act on it; `NotFound` otherwise (also for a worker not on
/// its list).
async fn alert_for(wtx: &mut WriteTx, alert_id: &AlertId, closer: &Closer<'_>) -> Result<String> {
    let state: Option<String> = match closer {
        Closer::Admin(_) => {
            sqlx::query_scalar("SELECT state FROM alerts WHERE id = $1")
                .bind(alert_id)
                .fetch_optional(wtx.conn())
                .await?
        }
        Closer::Worker { id, .. } => {
            sqlx::query_scalar(
                "SELECT a.state FROM alerts a WHERE a.id = $1 AND (a.addressee_id = $2 OR EXISTS \
                 (SELECT 1 FROM mailbox_members m WHERE m.mailbox_id = a.team_mailbox_id AND m.worker_id = $2))",
            )
            .bind(alert_id)
            .bind(*id)
            .fetch_optional(wtx.conn())
            .await?
        }
    };
    state.ok_or(Error::NotFound("alert"))
}

/// Acknowledges an alert: no further notification of it goes out, from any instance.
pub async fn acknowledge(
    store: &Store,
    now: Millis,
    alert_id: &AlertId,
    closer: Closer<'_>,
    via: Via,
) -> Result<Closed> {
    close(store, now, alert_id, closer, via, false).await
}

/// Resolves an alert (acknowledged or not): it is over, and its code is free again.
pub async fn resolve(
    store: &Store,
    now: Millis,
    alert_id: &AlertId,
    closer: Closer<'_>,
    via: Via,
) -> Result<Closed> {
    close(store, now, alert_id, closer, via, true).await
}

async fn close(
    store: &Store,
    now: Millis,
    alert_id: &AlertId,
    closer: Closer<'_>,
    via: Via,
    resolving: bool,
) -> Result<Closed> {
    let actor = closer.actor();
    let mut wtx = store.begin_write().await?;
    alert_for(&mut wtx, alert_id, &closer).await?;
    let (sql, action) = if resolving {
        (
            "UPDATE alerts SET state = 'resolved', resolved_at = $1, resolved_by = $2, next_due_at = NULL \
             WHERE id = $3 AND state <> 'resolved'",
            Action::OncallAlertResolved,
        )
    } else {
        (
            "UPDATE alerts SET state = 'acknowledged', acknowledged_at = $1, acknowledged_by = $2, \
             next_due_at = NULL WHERE id = $3 AND state = 'open'",
            Action::OncallAlertAcknowledged,
        )
    };
    let changed = sqlx::query(sql)
        .bind(now)
        .bind(actor.to_string())
        .bind(alert_id)
        .execute(wtx.conn())
        .await?
        .rows_affected();
    if changed == 0 {
        return Ok(Closed::AlreadyClosed);
    }
    sqlx::query(
        "UPDATE oncall_notifications SET state = 'cancelled', finished_at = $1, lease_until = NULL \
         WHERE alert_id = $2 AND state = 'queued'",
    )
    .bind(now)
    .bind(alert_id)
    .execute(wtx.conn())
    .await?;
    // E-mails of this alert still waiting in the outbound queue stay there.
    let queued_mail: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT provider_ref FROM oncall_notifications WHERE alert_id = $1 AND channel = 'email' \
         AND state = 'sent'",
    )
    .bind(alert_id)
    .fetch_all(wtx.conn())
    .await?;
    for outbound_id in queued_mail
        .iter()
        .flatten()
        .filter_map(|r| OutboundId::parse(r))
    {
        crate::mail::outbound::withdraw(&mut wtx, &outbound_id, now).await?;
    }
    audit::append(
        &mut wtx,
        now,
        Event::new(&actor, action, alert_id.as_str()).detail(&format!("via={}", via.as_str())),
    )
    .await?;
    wtx.commit().await?;
    Ok(Closed::Done)
}

/// What an SMS reply did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmsAck {
    Acknowledged,
    AlreadyClosed,
    /// "OK" and a code, but no live alert has that code, or the sender is not on its list: nothing
    /// changed.
    Refused,
    /// Not an acknowledgement ("OK 1234") at all.
    NotAnAck,
}

/// The code in an SMS reply "OK 4821" (any case, spaces and punctuation ignored).
pub fn parse_sms_ack(body: &str) -> Option<AlertCode> {
    let compact: String = body
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_uppercase();
    AlertCode::parse(compact.strip_prefix("OK")?).ok()
}

/// An SMS reply from `from` (the provider's signed webhook was checked by the caller): acknowledges
/// the live alert with the code when `from` is the registered phone of someone on its list.
pub async fn acknowledge_by_sms(core: &Core, from: &PhoneNumber, body: &str) -> Result<SmsAck> {
    let Some(code) = parse_sms_ack(body) else {
        return Ok(SmsAck::NotAnAck);
    };
    let alert: Option<(AlertId, MailboxId, Option<WorkerId>)> = sqlx::query(
        "SELECT id, team_mailbox_id, addressee_id FROM alerts WHERE code = $1 AND resolved_at IS NULL",
    )
    .bind(code.as_str())
    .fetch_optional(core.store.pool())
    .await?
    .map(|row| -> Result<_> {
        Ok((
            row.try_get("id")?,
            row.try_get("team_mailbox_id")?,
            row.try_get("addressee_id")?,
        ))
    })
    .transpose()?;
    let refused = |subject: &str| {
        core.audit_queue.push(
            core.now(),
            Event::new(&Actor::Anonymous, Action::OncallAckRefused, subject).detail("via=sms"),
        );
        Ok(SmsAck::Refused)
    };
    let Some((alert_id, team_id, addressee)) = alert else {
        return refused("unknown-code");
    };
    let candidates = sqlx::query(
        "SELECT w.id, w.handle, w.contact_sealed FROM workers w WHERE w.id = $2 OR EXISTS \
         (SELECT 1 FROM mailbox_members m WHERE m.mailbox_id = $1 AND m.worker_id = w.id)",
    )
    .bind(&team_id)
    .bind(addressee.as_ref().map(WorkerId::as_str).unwrap_or(""))
    .fetch_all(core.store.pool())
    .await?;
    for row in candidates {
        let sealed: Vec<u8> = row.try_get("contact_sealed")?;
        let Ok(contact) = crate::worker::contact::open(&core.server_key, &sealed) else {
            continue;
        };
        if contact.phone == *from {
            let id: WorkerId = row.try_get("id")?;
            let handle: String = row.try_get("handle")?;
            return Ok(
                match acknowledge(
                    &core.store,
                    core.now(),
                    &alert_id,
                    Closer::Worker {
                        id: &id,
                        handle: &handle,
                    },
                    Via::Sms,
                )
                .await?
                {
                    Closed::Done => SmsAck::Acknowledged,
                    Closed::AlreadyClosed => SmsAck::AlreadyClosed,
                },
            );
        }
    }
    refused(alert_id.as_str())
}

/// A key press in an alert call (the provider's signed webhook was checked by the caller): `1` by
/// the worker the call went to acknowledges the alert. Returns whether the alert is now
/// acknowledged by this press (or already was).
pub async fn acknowledge_by_keypress(
    core: &Core,
    notification_id: &NotificationId,
    digits: &str,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT n.alert_id, w.id, w.handle FROM oncall_notifications n JOIN workers w ON w.id = n.worker_id \
         WHERE n.id = $1 AND n.channel = 'call' AND n.purpose = 'alert'",
    )
    .bind(notification_id)
    .fetch_optional(core.store.pool())
    .await?
    .ok_or(Error::NotFound("call"))?;
    if digits.trim() != "1" {
        return Ok(false);
    }
    let alert_id: Option<AlertId> = row.try_get("alert_id")?;
    let alert_id = alert_id.ok_or(Error::NotFound("call"))?;
    let (id, handle): (WorkerId, String) = (row.try_get("id")?, row.try_get("handle")?);
    let closed = acknowledge(
        &core.store,
        core.now(),
        &alert_id,
        Closer::Worker {
            id: &id,
            handle: &handle,
        },
        Via::Call,
    )
    .await;
    match closed {
        Ok(_) => Ok(true),
        // The worker left the team since the call went out: not on the list any more.
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Forgets alerts closed before `cutoff`, with their notifications, and old duty notices.
pub async fn forget_closed_before(store: &Store, now: Millis, cutoff: Millis) -> Result<u64> {
    let mut wtx = store.begin_write().await?;
    sqlx::query(
        "DELETE FROM oncall_notifications WHERE alert_id IN (SELECT id FROM alerts WHERE \
         state <> 'open' AND COALESCE(resolved_at, acknowledged_at) < $1)",
    )
    .bind(cutoff)
    .execute(wtx.conn())
    .await?;
    let deleted = sqlx::query(
        "DELETE FROM alerts WHERE state <> 'open' AND COALESCE(resolved_at, acknowledged_at) < $1",
    )
    .bind(cutoff)
    .execute(wtx.conn())
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM oncall_notifications WHERE alert_id IS NULL AND state <> 'queued' AND created_at < $1",
    )
    .bind(cutoff)
    .execute(wtx.conn())
    .await?;
    sqlx::query("DELETE FROM oncall_duty_notices WHERE created_at < $1")
        .bind(cutoff)
        .execute(wtx.conn())
        .await?;
    if deleted > 0 {
        audit::append(
            &mut wtx,
            now,
            Event::new(
                &Actor::System,
                Action::RetentionAlertsForgotten,
                &deleted.to_string(),
            ),
        )
        .await?;
    }
    wtx.commit().await?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_replies_name_a_code() {
        for (body, code) in [
            ("OK 4821", Some("4821")),
            ("ok 4821", Some("4821")),
            (" Ok, 4821! ", Some("4821")),
            ("OK4821", Some("4821")),
            ("4821", None),
            ("OK", None),
            ("OK 482", None),
            ("OK 48210", None),
            ("Niet OK 4821", None),
        ] {
            assert_eq!(
                parse_sms_ack(body).as_ref().map(AlertCode::as_str),
                code,
                "{body:?}"
            );
        }
    }
}
