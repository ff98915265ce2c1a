//! The append-only, hash-chained audit log: every access and change, never content, real identities or
//! client addresses. Each row carries the SHA-256 of the previous row; `verify` names the first row that
//! was edited, deleted or moved. `audit_head` holds the last sequence number and hash, so a deleted
//! tail is noticed too; printing the head hash lets an operator anchor it outside the database.

use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::error::Result;
use crate::store::{Store, WriteTx};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did something. Names are pseudonymous handles, organisation names or the operator's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// An administrator at the command line (the operating-system account name).
    Cli(String),
    Worker(String),
    Partner(String),
    System,
    /// A login attempt for a handle that does not exist: the typed text is not recorded.
    Anonymous,
}

impl Actor {
    /// The administrator running this process.
    pub fn current_cli_user() -> Self {
        let name = ["USER", "LOGNAME"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
            .or_else(current_uid)
            .unwrap_or_else(|| "unknown".into());
        Self::Cli(name)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Cli(user) => write!(f, "cli:{user}"),
            Actor::Worker(handle) => write!(f, "worker:{handle}"),
            Actor::Partner(org) => write!(f, "org:{org}"),
            Actor::System => f.write_str("system"),
            Actor::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// `uid:N` from /proc when no user name is in the environment (services, containers).
fn current_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?;
    Some(format!("uid:{uid}"))
}

crate::text_enum! {
    /// What happened. Stored as the text shown here; the verifier reads rows as text, so a log written
    /// by a newer version with more actions still verifies.
    pub enum Action {
        /// Events that did not fit the audit queue, counted per action.
        AliasAdded = "alias.added",
        AliasBurned = "alias.burned",
        AliasContactAllowed = "alias.contact_allowed",
        AliasContactDisallowed = "alias.contact_disallowed",
        AliasNoteSet = "alias.note_set",
        AuditSummarised = "audit.summarised",
        CallNotRinging = "call.not_ringing",
        CallOther = "call.other",
        CallOut = "call.out",
        CallOutRefused = "call.out_refused",
        CallPlaced = "call.placed",
        CallRefused = "call.refused",
        CallRouted = "call.routed",
        CallState = "call.state",
        CallVoicemail = "call.voicemail",
        LoginFailure = "login.failure",
        LoginRateLimited = "login.rate_limited",
        LoginSuccess = "login.success",
        Logout = "logout",
        MailBounceUnverified = "mail.bounce_unverified",
        MailQueued = "mail.queued",
        MessageDeleted = "message.deleted",
        MessageDelivered = "message.delivered",
        MessageOpened = "message.opened",
        MessageRefused = "message.refused",
        OncallAckRefused = "oncall.ack_refused",
        OncallAlertAcknowledged = "oncall.alert_acknowledged",
        OncallAlertRaised = "oncall.alert_raised",
        OncallAlertResolved = "oncall.alert_resolved",
        OncallDutyNotice = "oncall.duty_notice",
        OncallNotificationFailed = "oncall.notification_failed",
        OncallNotificationSent = "oncall.notification_sent",
        OncallOverrideAdded = "oncall.override_added",
        OncallOverrideRemoved = "oncall.override_removed",
        OncallPolicyReset = "oncall.policy_reset",
        OncallPolicySet = "oncall.policy_set",
        OncallRotaSet = "oncall.rota_set",
        OrganisationAdded = "organisation.added",
        OrganisationCertificatePinned = "organisation.certificate_pinned",
        OrganisationCertificateUnpinned = "organisation.certificate_unpinned",
        OrganisationDisabled = "organisation.disabled",
        OrganisationEnabled = "organisation.enabled",
        PhoneAdded = "phone.added",
        PhoneAssigned = "phone.assigned",
        PhoneBurned = "phone.burned",
        PhoneHoursSet = "phone.hours_set",
        PhoneWebhookForbidden = "phone.webhook_forbidden",
        RetentionAlertsForgotten = "retention.alerts_forgotten",
        RetentionDeleted = "retention.deleted",
        RetentionOutboundForgotten = "retention.outbound_forgotten",
        SessionEnded = "session.ended",
        SmsRefused = "sms.refused",
        SmsSent = "sms.sent",
        SmsStatus = "sms.status",
        TeamAdded = "team.added",
        TeamMemberAdded = "team.member_added",
        TeamMemberRemoved = "team.member_removed",
        TokenCreated = "token.created",
        TokenRevoked = "token.revoked",
        VoicemailDeletedAtProvider = "voicemail.deleted_at_provider",
        VoicemailRecorded = "voicemail.recorded",
        WorkerAdded = "worker.added",
        WorkerApiTokensRevoked = "worker.api_tokens_revoked",
        WorkerConfirmationFailed = "worker.confirmation_failed",
        WorkerConfirmationRateLimited = "worker.confirmation_rate_limited",
        WorkerMarkersSet = "worker.markers_set",
        WorkerPassphraseChangeFailed = "worker.passphrase_change_failed",
        WorkerPassphraseChangeRateLimited = "worker.passphrase_change_rate_limited",
        WorkerPassphraseChanged = "worker.passphrase_changed",
        WorkerPasskeyAdded = "worker.passkey_added",
        WorkerPasskeyRemoved = "worker.passkey_removed",
        WorkerTotpReplaced = "worker.totp_replaced",
    }
}

/// One thing that happened, before it is chained.
#[derive(Clone, Debug)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub action: Action,
    pub subject: &'a str,
    pub detail: &'a str,
}

impl<'a> Event<'a> {
    pub fn new(actor: &'a Actor, action: Action, subject: &'a str) -> Self {
        Self {
            actor,
            action,
            subject,
            detail: "",
        }
    }

    pub fn detail(mut self, detail: &'a str) -> Self {
        self.detail = detail;
        self
    }
}

/// Appends an event inside the caller's transaction, so it commits (or not) with the change it records.
/// The transaction already holds the `audit_head` row (see `Store::begin_write`), so appends are
/// serialised across connections and relay instances.
pub async fn append(wtx: &mut WriteTx, now: Millis, event: Event<'_>) -> Result<()> {
    append_all(wtx, &[(now, event)]).await
}

/// Appends several events in order, inside the caller's transaction, with one read and one write of
/// the head and one multi-row insert (a batch of deliveries costs a few statements, not a few per
/// message).
pub async fn append_all(wtx: &mut WriteTx, events: &[(Millis, Event<'_>)]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let count = i64::try_from(events.len()).expect("a batch is small");
    let (last_seq, mut prev_hash): (i64, String) =
        sqlx::query_as("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(count)
            .fetch_one(wtx.conn())
            .await?;
    let sql = format!(
        "INSERT INTO audit_log (seq, at, actor, action, subject, detail, prev_hash, hash) VALUES {}",
        crate::store::values_placeholders(events.len(), 8)
    );
    let mut insert = sqlx::query(&sql);
    for (seq, (now, event)) in (last_seq - count + 1..).zip(events) {
        let actor = event.actor.to_string();
        let hash = row_hash(
            &prev_hash,
            seq,
            *now,
            &actor,
            event.action.as_str(),
            event.subject,
            event.detail,
        );
        insert = insert
            .bind(seq)
            .bind(*now)
            .bind(actor)
            .bind(event.action)
            .bind(event.subject)
            .bind(event.detail)
            .bind(std::mem::replace(&mut prev_hash, hash.clone()))
            .bind(hash);
    }
    insert.execute(wtx.conn()).await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev_hash)
        .execute(wtx.conn())
        .await?;
    Ok(())
}

/// Appends one event in a transaction of its own (for events that change nothing else).
pub async fn record(store: &Store, now: Millis, event: Event<'_>) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    append(&mut wtx, now, event).await?;
    wtx.commit().await
}

/// Audit rows of anonymous traffic (refused deliveries, failed and rate-limited logins), kept in
/// memory and appended in batches: a flood of such requests costs one short write transaction per
/// batch instead of one per request, so it cannot hold the write lock that accepted deliveries need.
/// `flush` runs every `AUDIT_FLUSH_INTERVAL` and when the relay stops, so nothing is lost on a clean
/// stop. Past `MAX_QUEUED` waiting rows, further events are only counted per action, and the counts
/// are appended as one summary row per action at the next flush.
pub struct AuditQueue {
    store: Store,
    state: std::sync::Mutex<QueueState>,
    /// One flush at a time, so rows keep their order.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct QueueState {
    events: Vec<QueuedEvent>,
    /// Events not kept individually because the queue was full: action → count.
    summarised: std::collections::BTreeMap<&'static str, u64>,
}

struct QueuedEvent {
    at: Millis,
    actor: Actor,
    action: Action,
    subject: String,
    detail: String,
}

/// Waiting rows kept individually.
pub const MAX_QUEUED: usize = 50_000;
/// Rows per write transaction when flushing. Small, because each transaction holds the write lock that
/// deliveries and calls commit under, and they queue behind it: after a burst of 5,000 refusals, chunks
/// of 500 put 70–85 ms into the p99 of routed calls at 300/s (`cargo bench --bench phone_voice`), chunks
/// of 100 keep it under 20 ms. Waiting writers take the lock between two chunks (the lock is fair).
const FLUSH_CHUNK: usize = 100;
pub const AUDIT_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

impl AuditQueue {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            state: Default::default(),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an event for the next flush.
    pub fn push(&self, at: Millis, event: Event<'_>) {
        let mut state = self.lock();
        if state.events.len() >= MAX_QUEUED {
            *state.summarised.entry(event.action.as_str()).or_insert(0) += 1;
            return;
        }
        state.events.push(QueuedEvent {
            at,
            actor: event.actor.clone(),
            action: event.action,
            subject: event.subject.to_string(),
            detail: event.detail.to_string(),
        });
    }

    /// Rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.lock().events.len()
    }

    /// Appends everything queued so far; returns how many rows were written. Rows that could not be
    /// written are put back in front of the queue for the next attempt.
    pub async fn flush(&self, now: Millis) -> Result<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let (mut events, summarised) = {
            let mut state = self.lock();
            (
                std::mem::take(&mut state.events),
                std::mem::take(&mut state.summarised),
            )
        };
        for (action, count) in &summarised {
            events.push(QueuedEvent {
                at: now,
                actor: Actor::Anonymous,
                action: Action::AuditSummarised,
                subject: action.to_string(),
                detail: format!("count={count} reason=audit queue full"),
            });
        }
        let mut written = 0;
        while written < events.len() {
            let end = (written + FLUSH_CHUNK).min(events.len());
            if let Err(e) = self.write(&events[written..end]).await {
                let mut state = self.lock();
                let unwritten: Vec<QueuedEvent> = events.drain(written..).collect();
                let newer = std::mem::replace(&mut state.events, unwritten);
                state.events.extend(newer);
                return Err(e);
            }
            written = end;
        }
        Ok(written)
    }

    async fn write(&self, chunk: &[QueuedEvent]) -> Result<()> {
        let events: Vec<(Millis, Event<'_>)> = chunk
            .iter()
            .map(|e| {
                (
                    e.at,
                    Event::new(&e.actor, e.action, &e.subject).detail(&e.detail),
                )
            })
            .collect();
        let mut wtx = self.store.begin_write().await?;
        append_all(&mut wtx, &events).await?;
        wtx.commit().await
    }
}

/// SHA-256 over the previous hash and the row's fields, each length-prefixed so that no two different
/// rows serialise alike.
pub fn row_hash(
    prev_hash: &str,
    seq: i64,
    at: Millis,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut hasher = Sha256::new();
    for field in [
        prev_hash,
        &seq.to_string(),
        &at.to_string(),
        actor,
        action,
        subject,
        detail,
    ] {
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq, sqlx::FromRow)]
pub struct Record {
    pub seq: i64,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Verified {
    pub rows: i64,
    pub head_hash: String,
}

/// Where the chain breaks: the first bad row and what is wrong with it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, thiserror::Error)]
#[error("audit log broken at row {seq}: {reason}")]
pub struct Broken {
    pub seq: i64,
    pub reason: String,
}

/// Checks the chain row by row, against the head. Pure, so it is tested without a database.
pub fn check_chain(rows: &[Record], head_seq: i64, head_hash: &str) -> Result<Verified, Broken> {
    let mut expected_seq = 1;
    let mut expected_prev = GENESIS_HASH.to_string();
    for row in rows {
        if row.seq != expected_seq {
            return Err(Broken {
                seq: expected_seq,
                reason: format!("row is missing (the next row present is {})", row.seq),
            });
        }
        if row.prev_hash != expected_prev {
            return Err(Broken {
                seq: row.seq,
                reason:
                    "does not follow the row before it (a row was moved, or the one before changed)"
                        .into(),
            });
        }
        let computed = row_hash(
            &row.prev_hash,
            row.seq,
            row.at,
            &row.actor,
            &row.action,
            &row.subject,
            &row.detail,
        );
        if computed != row.hash {
            return Err(Broken {
                seq: row.seq,
                reason: "contents do not match its hash (the row was edited)".into(),
            });
        }
        expected_prev = row.hash.clone();
        expected_seq += 1;
    }
    let last = expected_seq - 1;
    if head_seq != last {
        return Err(Broken {
            seq: last + 1,
            reason: format!("row is missing (the log should end at row {head_seq})"),
        });
    }
    if head_hash != expected_prev {
        return Err(Broken {
            seq: last,
            reason: "the last row does not match the recorded head hash".into(),
        });
    }
    Ok(Verified {
        rows: last,
        head_hash: expected_prev,
    })
}

pub async fn verify(store: &Store) -> Result<Result<Verified, Broken>> {
    let (head_seq, head_hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(store.pool())
            .await?;
    let rows = load(store, ALL_ROWS, None).await?;
    Ok(check_chain(&rows, head_seq, &head_hash))
}

/// The last `limit` rows, oldest first.
pub async fn tail(store: &Store, limit: i64) -> Result<Vec<Record>> {
    let mut rows = load(store, LAST_ROWS, Some(limit)).await?;
    rows.reverse();
    Ok(rows)
}

const ALL_ROWS: &str =
    "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq";
const LAST_ROWS: &str = "SELECT seq, at, actor, action, subject, detail, prev_hash, hash \
     FROM audit_log ORDER BY seq DESC LIMIT $1";

async fn load(store: &Store, sql: &'static str, limit: Option<i64>) -> Result<Vec<Record>> {
    let mut query = sqlx::query_as(sql);
    if let Some(limit) = limit {
        query = query.bind(limit);
    }
    Ok(query.fetch_all(store.pool()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Record> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let hash = row_hash(&prev, seq, seq * 1000, "system", "test", "s", "d");
                let record = Record {
                    seq,
                    at: seq * 1000,
                    actor: "system".into(),
                    action: "test".into(),
                    subject: "s".into(),
                    detail: "d".into(),
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                record
            })
            .collect()
    }

    fn head(rows: &[Record]) -> (i64, String) {
        rows.last()
            .map(|r| (r.seq, r.hash.clone()))
            .unwrap_or((0, GENESIS_HASH.into()))
    }

    #[test]
    fn clean_chain_verifies() {
        let rows = chain(5);
        let (seq, hash) = head(&rows);
        assert_eq!(check_chain(&rows, seq, &hash).unwrap().rows, 5);
        assert_eq!(check_chain(&[], 0, GENESIS_HASH).unwrap().rows, 0);
    }

    #[test]
    fn edited_row_is_named() {
        let mut rows = chain(5);
        let (seq, hash) = head(&rows);
        rows[2].detail = "changed".into();
        assert_eq!(check_chain(&rows, seq, &hash).unwrap_err().seq, 3);
    }

    #[test]
    fn edited_row_with_recomputed_hash_breaks_the_next_link() {
        let mut rows = chain(5);
        let (seq, hash) = head(&rows);
        rows[2].detail = "changed".into();
        rows[2].hash = row_hash(
            &rows[2].prev_hash,
            3,
            rows[2].at,
            "system",
            "test",
            "s",
            "changed",
        );
        assert_eq!(check_chain(&rows, seq, &hash).unwrap_err().seq, 4);
    }

    #[test]
    fn deleted_rows_are_named() {
        let rows = chain(5);
        let (seq, hash) = head(&rows);
        let mut middle = rows.clone();
        middle.remove(1);
        assert_eq!(check_chain(&middle, seq, &hash).unwrap_err().seq, 2);
        let mut tail = rows.clone();
        tail.pop();
        assert_eq!(check_chain(&tail, seq, &hash).unwrap_err().seq, 5);
    }

    #[test]
    fn swapped_rows_are_named() {
        let mut rows = chain(5);
        let (seq, hash) = head(&rows);
        // Swap the contents of rows 2 and 3 but keep their sequence numbers in place.
        let (a, b) = (rows[1].clone(), rows[2].clone());
        rows[1] = Record { seq: 2, ..b };
        rows[2] = Record { seq: 3, ..a };
        assert_eq!(check_chain(&rows, seq, &hash).unwrap_err().seq, 2);
    }

    #[test]
    fn fields_cannot_be_shifted_between_columns() {
        assert_ne!(
            row_hash(GENESIS_HASH, 1, 1, "ab", "c", "", ""),
            row_hash(GENESIS_HASH, 1, 1, "a", "bc", "", "")
        );
    }
}
