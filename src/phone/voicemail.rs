//! Voicemail: when the provider reports a finished recording, a job is stored (durably, before the
//! webhook is acknowledged). The job fetches the recording over verified TLS, seals it into the
//! mailbox like mail (channel `voicemail`: the letter carries the audio as an attachment of a small
//! MIME message, so readers that know mail attachments play it unchanged), and then deletes it at the
//! provider. Each step is retried with backoff until it succeeds: a recording is never left behind
//! silently (the pending count is a metric; a job failing for long is logged).

use std::sync::Arc;
use std::time::Duration;

use sqlx::Row as _;
use tokio::sync::watch;

use super::provider::{ProviderError, Sid};
use super::{voice, Phone, PhoneNumber};
use crate::alias::Address;
use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::intake::{self, Claim, Rejected, Submission};
use crate::mail::compose;
use crate::mailbox::{Channel, MailParts, MessageKind};
use crate::partner::{self, Contact};

const LEASE_MILLIS: i64 = 5 * 60 * 1000;
/// Delays between attempts; the last one repeats, without end.
const BACKOFF_SECONDS: [i64; 6] = [10, 60, 300, 900, 3600, 4 * 3600];
/// After this many failed attempts each further failure is logged as an error.
const LOUD_AFTER: i64 = 5;

/// The provider reported a recording (`recordingStatusCallback`). Stores the job; `false` when the
/// call is not one the relay let through (nothing is kept, the recording is deleted).
pub async fn recorded(
    core: &Core,
    call_sid: &Sid,
    recording_sid: &Sid,
    duration_seconds: i64,
    replay_window_seconds: u64,
) -> Result<bool> {
    let now = core.now();
    let routed = voice::routed_call(core, call_sid).await?;
    let (alias, caller_sealed) = match &routed {
        Some((alias, caller)) => (
            alias.as_str().to_string(),
            Some(core.server_key.seal(caller.as_str().as_bytes())?),
        ),
        None => (String::new(), None),
    };
    // A recording of a call the relay did not let through is only deleted.
    let state = if caller_sealed.is_some() {
        "fetch"
    } else {
        "delete"
    };
    let mut wtx = core.store.begin_write().await?;
    // The job row goes once the recording is handled; the replay key stays for the whole window, so
    // the same report again (a replay) fetches and stores nothing.
    let key = format!("recording:{}", recording_sid.as_str());
    if !voice::mark_seen(&mut wtx, &key, now, replay_window_seconds).await? {
        return Ok(routed.is_some());
    }
    let inserted = sqlx::query(
        "INSERT INTO phone_recordings (recording_sid, state, alias, caller_sealed, duration, \
         attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6) \
         ON CONFLICT (recording_sid) DO NOTHING",
    )
    .bind(recording_sid.as_str())
    .bind(state)
    .bind(&alias)
    .bind(caller_sealed)
    .bind(duration_seconds.clamp(0, 86_400))
    .bind(now)
    .execute(wtx.conn())
    .await?;
    if inserted.rows_affected() == 1 && routed.is_some() {
        audit::append(
            &mut wtx,
            now,
            Event::new(
                &Actor::System,
                crate::audit::Action::VoicemailRecorded,
                &alias,
            )
            .detail(&format!("seconds={duration_seconds}")),
        )
        .await?;
    }
    wtx.commit().await?;
    Ok(routed.is_some())
}

/// Recordings waiting to be fetched or deleted.
pub async fn pending(core: &Core) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM phone_recordings")
        .fetch_one(core.store.pool())
        .await?)
}

struct Job {
    sid: Sid,
    state: String,
    alias: String,
    caller_sealed: Option<Vec<u8>>,
    duration: i64,
    attempts: i64,
}

/// Runs the jobs until `stop`: woken by `wake` (a new recording) or every second.
pub async fn run(
    core: Arc<Core>,
    phone: Arc<Phone>,
    wake: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match run_due(&core, &phone).await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(e) => tracing::error!(cause = %e, "voicemail: claiming jobs failed"),
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Claims and runs the due jobs once; how many ran.
pub async fn run_due(core: &Core, phone: &Phone) -> Result<usize> {
    let jobs = claim(core).await?;
    let count = jobs.len();
    for job in jobs {
        if let Err(e) = step(core, phone, job).await {
            tracing::error!(cause = %e, "voicemail: recording the outcome failed");
        }
    }
    Ok(count)
}

async fn claim(core: &Core) -> Result<Vec<Job>> {
    let now = core.now();
    let mut wtx = core.store.begin_write().await?;
    let rows = sqlx::query(
        "SELECT recording_sid, state, alias, caller_sealed, duration, attempts FROM phone_recordings \
         WHERE next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) \
         ORDER BY next_attempt_at LIMIT 8",
    )
    .bind(now)
    .fetch_all(wtx.conn())
    .await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let sid: String = row.try_get("recording_sid")?;
        sqlx::query(
            "UPDATE phone_recordings SET lease_until = $1, attempts = attempts + 1 WHERE recording_sid = $2",
        )
        .bind(now + LEASE_MILLIS)
        .bind(&sid)
        .execute(wtx.conn())
        .await?;
        jobs.push(Job {
            sid: Sid::parse(&sid).ok_or_else(|| Error::invalid("stored recording sid"))?,
            state: row.try_get("state")?,
            alias: row.try_get("alias")?,
            caller_sealed: row.try_get("caller_sealed")?,
            duration: row.try_get("duration")?,
            attempts: row.try_get::<i64, _>("attempts")? + 1,
        });
    }
    wtx.commit().await?;
    Ok(jobs)
}

async fn step(core: &Core, phone: &Phone, job: Job) -> Result<()> {
    if job.state == "fetch" {
        match fetch_and_deliver(core, phone, &job).await {
            Ok(()) => to_delete(core, &job.sid).await,
            Err(FetchError::Provider(e)) => retry_later(core, &job, &e.to_string()).await,
            Err(FetchError::Store(e)) => retry_later(core, &job, &e.to_string()).await,
        }
    } else {
        match phone.provider.delete_recording(&job.sid).await {
            Ok(()) => finished(core, &job).await,
            Err(e) => retry_later(core, &job, &e.to_string()).await,
        }
    }
}

enum FetchError {
    Provider(ProviderError),
    Store(Error),
}

impl From<Error> for FetchError {
    fn from(error: Error) -> Self {
        FetchError::Store(error)
    }
}

async fn fetch_and_deliver(core: &Core, phone: &Phone, job: &Job) -> Result<(), FetchError> {
    let sealed = job
        .caller_sealed
        .as_deref()
        .ok_or_else(|| Error::invalid("voicemail job without a caller"))?;
    let caller = core.server_key.open(sealed)?;
    let caller = std::str::from_utf8(&caller)
        .map_err(|_| Error::Crypto("unreadable caller".into()))
        .and_then(PhoneNumber::parse)?;
    let alias = Address::parse(&job.alias)?;
    let recording = phone
        .provider
        .fetch_recording(&job.sid)
        .await
        .map_err(FetchError::Provider)?;
    let organisation = partner::by_phone(&core.store, &caller).await?;
    let body = format!(
        "Voicemail van {caller}, {} seconden. De opname staat als bijlage bij dit bericht.",
        job.duration
    );
    let extension = if recording.content_type.contains("mpeg") {
        "mp3"
    } else {
        "wav"
    };
    let attachment = compose::Attachment {
        filename: format!("voicemail.{extension}"),
        content_type: recording.content_type.clone(),
        data: recording.data,
    };
    let info = crate::mail::inspect::AttachmentInfo {
        filename: attachment.filename.clone(),
        content_type: attachment.content_type.clone(),
        size: attachment.data.len(),
    };
    let subject = format!("Voicemail van {caller}");
    let raw = voicemail_message(core, &alias, &subject, &body, attachment);
    let submission = Submission {
        to: alias.clone(),
        claim: Claim {
            organisation,
            contact: Some(Contact::Phone(caller.clone())),
            pinned_certificate: None,
        },
        channel: Channel::Voicemail,
        kind: MessageKind::Bericht,
        urgent: false,
        sender_label: caller.as_str().to_string(),
        subject,
        body,
        mail: Some(MailParts {
            reply_to: String::new(),
            message_id: None,
            references: Vec::new(),
            attachments: vec![info],
            raw,
        }),
    };
    match intake::submit(core, submission).await {
        // Refused now (the caller's organisation was disabled, the alias burned): nothing is kept,
        // and the recording is deleted all the same.
        Ok(_) | Err(Rejected::Refused(_)) => Ok(()),
        Err(Rejected::Failed(e)) => Err(FetchError::Store(e)),
    }
}

/// The recording wrapped as a one-attachment MIME message (what `Letter::attachment` reads).
fn voicemail_message(
    core: &Core,
    alias: &Address,
    subject: &str,
    body: &str,
    attachment: compose::Attachment,
) -> Vec<u8> {
    let domain = core.domain.as_str();
    let message_id = compose::new_message_id(domain);
    compose::message(
        &compose::Headers {
            from: compose::mailbox("voicemail", &format!("voicemail@{domain}")),
            to: alias.as_str(),
            subject,
            date: core.now(),
            message_id: &message_id,
            in_reply_to: None,
            references: &[],
        },
        body,
        &[attachment],
    )
}

async fn to_delete(core: &Core, sid: &Sid) -> Result<()> {
    let mut wtx = core.store.begin_write().await?;
    sqlx::query(
        "UPDATE phone_recordings SET state = 'delete', caller_sealed = NULL, attempts = 0, \
         next_attempt_at = $1, lease_until = NULL, last_error = '' WHERE recording_sid = $2",
    )
    .bind(core.now())
    .bind(sid.as_str())
    .execute(wtx.conn())
    .await?;
    wtx.commit().await
}

async fn finished(core: &Core, job: &Job) -> Result<()> {
    let mut wtx = core.store.begin_write().await?;
    audit::append(
        &mut wtx,
        core.now(),
        Event::new(
            &Actor::System,
            crate::audit::Action::VoicemailDeletedAtProvider,
            &job.alias,
        )
        .detail(&format!("attempts={}", job.attempts)),
    )
    .await?;
    sqlx::query("DELETE FROM phone_recordings WHERE recording_sid = $1")
        .bind(job.sid.as_str())
        .execute(wtx.conn())
        .await?;
    wtx.commit().await?;
    crate::metrics::Metrics::inc(&core.metrics.phone_recordings_deleted_total);
    Ok(())
}

async fn retry_later(core: &Core, job: &Job, error: &str) -> Result<()> {
    let index = usize::try_from(job.attempts - 1)
        .unwrap_or(0)
        .min(BACKOFF_SECONDS.len() - 1);
    let next: Millis = core.now() + BACKOFF_SECONDS[index] * 1000;
    if job.attempts >= LOUD_AFTER {
        tracing::error!(step = %job.state, attempts = job.attempts, cause = error, "voicemail: still failing; will keep retrying");
    } else {
        tracing::warn!(step = %job.state, attempts = job.attempts, cause = error, "voicemail: will retry");
    }
    let mut wtx = core.store.begin_write().await?;
    sqlx::query(
        "UPDATE phone_recordings SET next_attempt_at = $1, lease_until = NULL, last_error = $2 \
         WHERE recording_sid = $3",
    )
    .bind(next)
    .bind(error)
    .bind(job.sid.as_str())
    .execute(wtx.conn())
    .await?;
    wtx.commit().await
}
