//! Durable alerts and their notifications.
//!
//! An alert is raised in the same transaction as the message that triggers it (or on its own for a
//! manual page or a call), so an acknowledged message never loses its alert. The alert row holds its
//! next step and when it falls due. A scheduler claims due alerts — on PostgreSQL with `FOR UPDATE
//! SKIP LOCKED`, so instances neither wait for each other nor take the same alert; on SQLite under
//! the store's write lock — asks the pure escalation what to send, and in the same transaction
//! queues those notifications (leased to itself) and moves the alert to its next step. A
//! notification row is unique per alert, step, worker and channel: a step is never sent twice. A
//! notification whose send failed is retried with backoff; one whose sender died is taken over when
//! its lease ends. An acknowledgement closes the alert and cancels whatever is still queued.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use sqlx::Row as _;

use super::escalation::{self, AlertFacts, People};
use super::notify::{AlertCode, ChannelKind, Purpose};
use super::rota::{self, Member};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::{rfc3339, Millis};
use crate::core::Core;
use crate::error::{Error, Result};
use crate::ids::{AlertId, MailboxId, MessageId, NotificationId, OutboundId, WorkerId};
use crate::mailbox::{MailboxKind, MessageKind};
use crate::phone::PhoneNumber;
use crate::store::{Backend, Store, WriteTx};
use crate::worker::Handle;

/// What raised an alert. The texts sent are the same for every kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A message to the team's mailbox.
    Message,
    /// An urgent message.
    Urgent,
    /// A referral.
    Aanmelding,
    /// Paged by hand (a worker or an administrator).
    Page,
    /// A call or SMS to the team's number.
    Call,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::Message,
        AlertKind::Urgent,
        AlertKind::Aanmelding,
        AlertKind::Page,
        AlertKind::Call,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Message => "message",
            AlertKind::Urgent => "urgent",
            AlertKind::Aanmelding => "aanmelding",
            AlertKind::Page => "page",
            AlertKind::Call => "call",
        }
    }

    /// Alerts raised by messages join an alert still open for the same people: twenty referrals at
    /// 03:00 page the duty once. A page or a call is always its own alert.
    fn coalesces(self) -> bool {
        matches!(
            self,
            AlertKind::Message | AlertKind::Urgent | AlertKind::Aanmelding
        )
    }
}

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

// ---- the scheduler's side --------------------------------------------------------------------------

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
    let mut teams: BTreeMap<MailboxId, (rota::TeamDuty, super::policy::Policy)> = BTreeMap::new();
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
            let policy = super::policy::team_policy(tx.conn(), &team_id)
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

/// `$start, $start+1, …` for an `IN` list of `n` values.
pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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

// ---- acknowledging and resolving --------------------------------------------------------------------

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

// ---- listing -----------------------------------------------------------------------------------------

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

    #[test]
    fn in_lists_are_numbered_from_the_start() {
        assert_eq!(placeholders(3, 2), "$3, $4");
        assert_eq!(placeholders(1, 1), "$1");
    }
}
