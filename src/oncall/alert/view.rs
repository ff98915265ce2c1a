//! Alerts as they are listed: for a worker (their teams' and those addressed to them) and for the
//! administrator.

use std::fmt;

use serde::Serialize;
use sqlx::Row as _;

use crate::clock::{rfc3339, Millis};
use crate::error::{Error, Result};
use crate::ids::{AlertId, MessageId, WorkerId};
use crate::store::Store;
use crate::worker::Handle;

/// An alert as listed: routing facts only.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AlertView {
    pub id: AlertId,
    pub code: String,
    pub team: String,
    pub kind: String,
    pub state: String,
    pub raised_at: String,
    /// The worker it was addressed to (paged first), by handle.
    pub addressee: Option<String>,
    pub message_id: Option<MessageId>,
    /// The next escalation step and when it falls due (open alerts).
    pub next_step: i64,
    pub next_due_at: Option<String>,
    pub first_notified_at: Option<String>,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<String>,
    pub resolved_by: Option<String>,
}

impl fmt::Display for AlertView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}\tcode {}\t{}\t{}\t{}\traised {}",
            self.id, self.code, self.team, self.kind, self.state, self.raised_at
        )?;
        if let Some(by) = &self.acknowledged_by {
            write!(f, "\tacknowledged by {by}")?;
        }
        Ok(())
    }
}

const VIEW_COLUMNS: &str = "a.id, a.code, b.name AS team, a.kind, a.state, a.raised_at, \
     w.handle AS addressee, a.message_id, a.step, a.next_due_at, a.first_notified_at, \
     a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by \
     FROM alerts a JOIN mailboxes b ON b.id = a.team_mailbox_id \
     LEFT JOIN workers w ON w.id = a.addressee_id";

fn view(row: &crate::store::Row) -> Result<AlertView> {
    let time = |column: &str| -> Result<Option<String>> {
        Ok(row.try_get::<Option<Millis>, _>(column)?.map(rfc3339))
    };
    Ok(AlertView {
        id: row.try_get("id")?,
        code: row.try_get("code")?,
        team: row.try_get("team")?,
        kind: row.try_get("kind")?,
        state: row.try_get("state")?,
        raised_at: rfc3339(row.try_get("raised_at")?),
        addressee: row.try_get("addressee")?,
        message_id: row.try_get("message_id")?,
        next_step: row.try_get("step")?,
        next_due_at: time("next_due_at")?,
        first_notified_at: time("first_notified_at")?,
        acknowledged_at: time("acknowledged_at")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        resolved_at: time("resolved_at")?,
        resolved_by: row.try_get("resolved_by")?,
    })
}

/// Most alerts listed at once.
const LIST_LIMIT: i64 = 200;

/// The alerts a worker may see and act on (their teams', and those addressed to them), newest
/// first; resolved ones only with `include_resolved`.
pub async fn list_for_worker(
    store: &Store,
    worker_id: &WorkerId,
    include_resolved: bool,
) -> Result<Vec<AlertView>> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} WHERE (a.addressee_id = $1 OR EXISTS (SELECT 1 FROM mailbox_members m \
         WHERE m.mailbox_id = a.team_mailbox_id AND m.worker_id = $1)){} \
         ORDER BY a.raised_at DESC, a.id LIMIT $2",
        if include_resolved {
            ""
        } else {
            " AND a.state <> 'resolved'"
        }
    );
    sqlx::query(&sql)
        .bind(worker_id)
        .bind(LIST_LIMIT)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(view)
        .collect()
}

/// Every alert (of one team), newest first, for the administrator.
pub async fn list_all(
    store: &Store,
    team: Option<&Handle>,
    include_resolved: bool,
) -> Result<Vec<AlertView>> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} WHERE ($1 = '' OR b.name = $1){} ORDER BY a.raised_at DESC, a.id LIMIT $2",
        if include_resolved {
            ""
        } else {
            " AND a.state <> 'resolved'"
        }
    );
    sqlx::query(&sql)
        .bind(team.map(Handle::as_str).unwrap_or(""))
        .bind(LIST_LIMIT)
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(view)
        .collect()
}

/// One alert, when the worker may see it.
pub async fn get_for_worker(
    store: &Store,
    worker_id: &WorkerId,
    alert_id: &AlertId,
) -> Result<AlertView> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} WHERE a.id = $2 AND (a.addressee_id = $1 OR EXISTS (SELECT 1 FROM \
         mailbox_members m WHERE m.mailbox_id = a.team_mailbox_id AND m.worker_id = $1))"
    );
    let row = sqlx::query(&sql)
        .bind(worker_id)
        .bind(alert_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("alert"))?;
    view(&row)
}

/// An alert by id, or by the code of a live alert, for the administrator.
pub async fn find(store: &Store, id_or_code: &str) -> Result<AlertView> {
    let sql = format!(
        "SELECT {VIEW_COLUMNS} WHERE a.id = $1 OR (a.code = $1 AND a.resolved_at IS NULL) \
         ORDER BY a.raised_at DESC LIMIT 1"
    );
    let row = sqlx::query(&sql)
        .bind(id_or_code)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("alert"))?;
    view(&row)
}
