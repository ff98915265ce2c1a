//! The scheduler's side: claiming due alert steps and notifications due for another try (leased,
//! without waiting on other instances), and recording how each send ended.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row as _;

use super::placeholders;
use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::ids::{AlertId, MailboxId, NotificationId, WorkerId};
use crate::oncall::escalation::{self, AlertFacts, People};
use crate::oncall::notify::{AlertCode, ChannelKind, Purpose};
use crate::oncall::policy;
use crate::oncall::rota::{self, Member};
use crate::store::{Backend, Store, WriteTx};

/// The transaction a scheduler claims work in. On PostgreSQL a plain transaction: rows are locked
/// with `FOR UPDATE SKIP LOCKED`, so instances never wait on one lock. On SQLite the store's write
/// transaction (its process-wide writer lock).
enum JobTx {
    Sqlite(WriteTx),
    Postgres(crate::store::Tx),
}

impl JobTx {
    async fn begin(store: &Store) -> Result<Self> {
        Ok(match store.backend() {
            Backend::Sqlite => Self::Sqlite(store.begin_write().await?),
            Backend::Postgres => Self::Postgres(store.pool().begin().await?),
        })
    }

    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Self::Sqlite(wtx) => wtx.conn(),
            Self::Postgres(tx) => tx,
        }
    }

    async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(wtx) => wtx.commit().await,
            Self::Postgres(tx) => Ok(tx.commit().await?),
        }
    }

    /// The row-locking clause for a claim.
    fn skip_locked(&self, of: &str) -> String {
        match self {
            Self::Sqlite(_) => String::new(),
            Self::Postgres(_) => format!(" FOR UPDATE OF {of} SKIP LOCKED"),
        }
    }
}

/// A notification claimed (leased) for sending by this instance.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: NotificationId,
    pub purpose: Purpose,
    pub step: i64,
    pub worker_id: WorkerId,
    pub handle: String,
    pub channel: ChannelKind,
    /// This is the n-th attempt.
    pub attempts: i64,
    /// When the alert was raised (for the trigger-to-first-notification histogram).
    pub raised_at: Option<Millis>,
}

impl Claimed {
    pub fn alert_id(&self) -> Option<&AlertId> {
        match &self.purpose {
            Purpose::Alert { alert_id, .. } => Some(alert_id),
            _ => None,
        }
    }
}

/// Alerts claimed per transaction.
const STEP_BATCH: i64 = 32;
/// Retries claimed per transaction.
const RETRY_BATCH: i64 = 64;

/// Claims due alerts, decides their steps, queues the notifications (leased to `owner`) and moves
/// each alert to its next step, in one transaction. Returns the notifications to send now and
/// whether the batch was full (more may be due).
pub async fn step_due(core: &Core, owner: &str, now: Millis) -> Result<(Vec<Claimed>, bool)> {
    let mut tx = JobTx::begin(&core.store).await?;
    let sql = format!(
        "SELECT a.id, a.code, a.team_mailbox_id, a.addressee_id, a.raised_at, a.step, w.handle \
         FROM alerts a LEFT JOIN workers w ON w.id = a.addressee_id \
         WHERE a.state = 'open' AND a.next_due_at <= $1 ORDER BY a.next_due_at LIMIT $2{}",
        tx.skip_locked("a")
    );
    let rows = sqlx::query(&sql)
        .bind(now)
        .bind(STEP_BATCH)
        .fetch_all(tx.conn())
        .await?;
    let full = rows.len() as i64 == STEP_BATCH;
    let available = core.oncall.available();
    let lease_until = now + core.oncall.lease_millis();
    let mut claimed = Vec::new();
    let mut teams: BTreeMap<MailboxId, (rota::TeamDuty, policy::Policy)> = BTreeMap::new();
    for row in rows {
        let alert_id: AlertId = row.try_get("id")?;
        let team_id: MailboxId = row.try_get("team_mailbox_id")?;
        let raised_at: Millis = row.try_get("raised_at")?;
        let step: i64 = row.try_get("step")?;
        let code = AlertCode::parse(&row.try_get::<String, _>("code")?)?;
        let addressee = match row.try_get::<Option<WorkerId>, _>("addressee_id")? {
            Some(id) => Some(Member {
                id,
                handle: row
                    .try_get::<Option<String>, _>("handle")?
                    .unwrap_or_default(),
            }),
            None => None,
        };
        if !teams.contains_key(&team_id) {
            let duty = rota::load(tx.conn(), &team_id, now).await?;
            let policy = policy::team_policy(tx.conn(), &team_id)
                .await?
                .unwrap_or_else(|| core.oncall.default_policy().clone());
            teams.insert(team_id.clone(), (duty, policy));
        }
        let (duty, policy) = &teams[&team_id];
        let on_duty = duty.at(core.oncall.tz(), now);
        let people = People {
            primary: on_duty.primary,
            secondary: on_duty.secondary,
            members: duty.members.clone(),
        };
        let facts = AlertFacts {
            raised_at,
            next_step: step,
            open: true,
            addressee,
        };
        let decision = escalation::decide(policy, &facts, &people, &available, now);
        if let Some(fired) = decision.step {
            if step == 0 {
                crate::metrics::Metrics::inc(&core.metrics.oncall_alerts_total);
            }
            for (worker, channel) in decision.notify {
                let id = NotificationId::random();
                let inserted = sqlx::query(
                    "INSERT INTO oncall_notifications (id, alert_id, purpose, step, worker_id, channel, \
                     state, attempts, next_attempt_at, lease_until, lease_owner, created_at) \
                     VALUES ($1, $2, 'alert', $3, $4, $5, 'queued', 1, $6, $7, $8, $6) \
                     ON CONFLICT (alert_id, step, worker_id, channel) DO NOTHING",
                )
                .bind(&id)
                .bind(&alert_id)
                .bind(fired)
                .bind(&worker.id)
                .bind(channel.as_str())
                .bind(now)
                .bind(lease_until)
                .bind(owner)
                .execute(tx.conn())
                .await?
                .rows_affected();
                if inserted == 1 {
                    claimed.push(Claimed {
                        id,
                        purpose: Purpose::Alert {
                            alert_id: alert_id.clone(),
                            code: code.clone(),
                        },
                        step: fired,
                        worker_id: worker.id,
                        handle: worker.handle,
                        channel,
                        attempts: 1,
                        raised_at: Some(raised_at),
                    });
                }
            }
        }
        sqlx::query(
            "UPDATE alerts SET step = $1, next_due_at = $2 WHERE id = $3 AND step = $4 AND state = 'open'",
        )
        .bind(decision.next_step)
        .bind(decision.next_due_at)
        .bind(&alert_id)
        .bind(step)
        .execute(tx.conn())
        .await?;
    }
    tx.commit().await?;
    Ok((claimed, full))
}

/// Claims notifications due for another try (a failed send, or a sender that died holding the
/// lease). Returns them and whether the batch was full.
pub async fn claim_retries(core: &Core, owner: &str, now: Millis) -> Result<(Vec<Claimed>, bool)> {
    let mut tx = JobTx::begin(&core.store).await?;
    let sql = format!(
        "SELECT n.id FROM oncall_notifications n WHERE n.state = 'queued' AND n.next_attempt_at <= $1 \
         AND (n.lease_until IS NULL OR n.lease_until < $1) ORDER BY n.next_attempt_at LIMIT $2{}",
        tx.skip_locked("n")
    );
    let ids: Vec<NotificationId> = sqlx::query_scalar(&sql)
        .bind(now)
        .bind(RETRY_BATCH)
        .fetch_all(tx.conn())
        .await?;
    let full = ids.len() as i64 == RETRY_BATCH;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok((Vec::new(), false));
    }
    let lease_until = now + core.oncall.lease_millis();
    let list = placeholders(3, ids.len());
    let update = format!(
        "UPDATE oncall_notifications SET lease_until = $1, lease_owner = $2, attempts = attempts + 1 \
         WHERE id IN ({list})"
    );
    let mut query = sqlx::query(&update).bind(lease_until).bind(owner);
    for id in &ids {
        query = query.bind(id);
    }
    query.execute(tx.conn()).await?;
    let select = format!(
        "SELECT n.id, n.alert_id, n.purpose, n.step, n.worker_id, n.channel, n.attempts, w.handle, \
         a.code, a.raised_at FROM oncall_notifications n JOIN workers w ON w.id = n.worker_id \
         LEFT JOIN alerts a ON a.id = n.alert_id WHERE n.id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(&select);
    for id in &ids {
        query = query.bind(id);
    }
    let rows = query.fetch_all(tx.conn()).await?;
    tx.commit().await?;
    let claimed = rows
        .iter()
        .map(|row| {
            let purpose = match row.try_get::<String, _>("purpose")?.as_str() {
                "alert" => Purpose::Alert {
                    alert_id: row
                        .try_get::<Option<AlertId>, _>("alert_id")?
                        .ok_or(Error::NotFound("alert"))?,
                    code: AlertCode::parse(
                        &row.try_get::<Option<String>, _>("code")?
                            .unwrap_or_default(),
                    )?,
                },
                "handover" => Purpose::Handover,
                _ => Purpose::Gap,
            };
            Ok(Claimed {
                id: row.try_get("id")?,
                purpose,
                step: row.try_get("step")?,
                worker_id: row.try_get("worker_id")?,
                handle: row.try_get("handle")?,
                channel: ChannelKind::parse(&row.try_get::<String, _>("channel")?)?,
                attempts: row.try_get("attempts")?,
                raised_at: row.try_get("raised_at")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((claimed, full))
}

/// The alerts among `ids` that are no longer open (their notifications are not sent any more).
pub async fn closed_among(store: &Store, ids: &[&AlertId]) -> Result<BTreeSet<AlertId>> {
    if ids.is_empty() {
        return Ok(BTreeSet::new());
    }
    let sql = format!(
        "SELECT id FROM alerts WHERE state <> 'open' AND id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query_scalar(&sql);
    for id in ids {
        query = query.bind(id.as_str());
    }
    Ok(query.fetch_all(store.pool()).await?.into_iter().collect())
}

/// The sealed contact details of these workers.
pub async fn sealed_contacts(
    store: &Store,
    worker_ids: &[&WorkerId],
) -> Result<BTreeMap<WorkerId, Vec<u8>>> {
    if worker_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let sql = format!(
        "SELECT id, contact_sealed FROM workers WHERE id IN ({})",
        placeholders(1, worker_ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in worker_ids {
        query = query.bind(id.as_str());
    }
    query
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("contact_sealed")?)))
        .collect()
}

/// How one send ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        reference: Option<String>,
    },
    /// Another try later (at the given time).
    Retry {
        error: String,
        at: Millis,
    },
    Failed {
        error: String,
    },
    /// The alert was closed before this went out.
    Cancelled,
}

impl Outcome {
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Sent { .. } => "sent",
            Outcome::Retry { .. } => "retried",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Records the outcomes of a batch of sends, with their audit rows, in one transaction. Returns the
/// alerts whose first notification this was, with the time from trigger to it.
pub async fn record(
    core: &Core,
    outcomes: &[(Claimed, Outcome)],
    now: Millis,
) -> Result<Vec<Millis>> {
    if outcomes.is_empty() {
        return Ok(Vec::new());
    }
    let mut wtx = core.store.begin_write().await?;
    let mut first_latencies = Vec::new();
    let mut details = Vec::with_capacity(outcomes.len());
    for (n, outcome) in outcomes {
        let result = match outcome {
            Outcome::Sent { reference } => {
                sqlx::query(
                    "UPDATE oncall_notifications SET state = 'sent', provider_ref = $1, finished_at = $2, \
                     lease_until = NULL, last_error = '' WHERE id = $3",
                )
                .bind(reference.as_deref())
                .bind(now)
                .bind(&n.id)
                .execute(wtx.conn())
                .await?;
                if let (Some(alert_id), Some(raised_at)) = (n.alert_id(), n.raised_at) {
                    let first = sqlx::query(
                        "UPDATE alerts SET first_notified_at = $1 WHERE id = $2 AND first_notified_at IS NULL",
                    )
                    .bind(now)
                    .bind(alert_id)
                    .execute(wtx.conn())
                    .await?
                    .rows_affected();
                    if first == 1 {
                        first_latencies.push(now - raised_at);
                    }
                }
                (Action::OncallNotificationSent, String::new())
            }
            Outcome::Retry { error, at } => {
                sqlx::query(
                    "UPDATE oncall_notifications SET next_attempt_at = $1, last_error = $2, lease_until = NULL \
                     WHERE id = $3 AND state = 'queued'",
                )
                .bind(at)
                .bind(error)
                .bind(&n.id)
                .execute(wtx.conn())
                .await?;
                (
                    Action::OncallNotificationFailed,
                    format!(" error={error} retry={}", rfc3339(*at)),
                )
            }
            Outcome::Failed { error } => {
                sqlx::query(
                    "UPDATE oncall_notifications SET state = 'failed', last_error = $1, finished_at = $2, \
                     lease_until = NULL WHERE id = $3",
                )
                .bind(error)
                .bind(now)
                .bind(&n.id)
                .execute(wtx.conn())
                .await?;
                (
                    Action::OncallNotificationFailed,
                    format!(" error={error} retry=no"),
                )
            }
            Outcome::Cancelled => {
                sqlx::query(
                    "UPDATE oncall_notifications SET state = 'cancelled', finished_at = $1, lease_until = NULL \
                     WHERE id = $2",
                )
                .bind(now)
                .bind(&n.id)
                .execute(wtx.conn())
                .await?;
                continue;
            }
        };
        let subject = n
            .alert_id()
            .map(AlertId::to_string)
            .unwrap_or_else(|| n.purpose.as_str().to_string());
        details.push((
            result.0,
            subject,
            format!(
                "purpose={} channel={} step={} worker={} attempt={}{}",
                n.purpose.as_str(),
                n.channel,
                n.step,
                n.handle,
                n.attempts,
                result.1
            ),
        ));
    }
    let events: Vec<(Millis, Event<'_>)> = details
        .iter()
        .map(|(action, subject, detail)| {
            (
                now,
                Event::new(&Actor::System, *action, subject).detail(detail),
            )
        })
        .collect();
    audit::append_all(&mut wtx, &events).await?;
    wtx.commit().await?;
    Ok(first_latencies)
}
