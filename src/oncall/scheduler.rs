//! The on-call scheduler: a background task per relay instance. It claims due alert steps and due
//! retries, sends their notifications (concurrently, off its own loop), records the outcomes, gives
//! the duty notices, and forgets old alerts. It wakes when an alert is raised, and at least every
//! `poll_interval_ms`; after a restart its first round fires every step that fell due meanwhile.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::alert::{self, Claimed, Outcome};
use super::duty;
use super::notify::{self, Delivery, SendError};
use crate::clock::Millis;
use crate::core::Core;

/// Duty notices are looked for this often (clock time).
const DUTY_CHECK_MILLIS: Millis = 60_000;
/// Old alerts are forgotten this often (clock time).
const RETENTION_MILLIS: Millis = 3_600_000;
/// At shutdown, sends in flight get this long to finish and be recorded.
const DRAIN: Duration = Duration::from_secs(20);

/// Runs until `stop` fires.
pub async fn run(core: Arc<Core>, mut stop: watch::Receiver<bool>) {
    let owner = crate::crypto::random_id();
    let wake = core.oncall.wake_handle();
    let poll = Duration::from_millis(core.oncall.config().poll_interval_ms);
    let mut sending: JoinSet<()> = JoinSet::new();
    let mut last_duty: Option<Millis> = None;
    let mut last_retention: Option<Millis> = None;
    loop {
        while sending.try_join_next().is_some() {}
        let now = core.now();
        let mut more = false;
        match alert::step_due(&core, &owner, now).await {
            Ok((claimed, full)) => {
                more |= full;
                dispatch(&core, &mut sending, claimed);
            }
            Err(e) => tracing::error!(cause = %e, "on-call: stepping due alerts failed"),
        }
        match alert::claim_retries(&core, &owner, now).await {
            Ok((claimed, full)) => {
                more |= full;
                dispatch(&core, &mut sending, claimed);
            }
            Err(e) => tracing::error!(cause = %e, "on-call: claiming retries failed"),
        }
        if last_duty.is_none_or(|t| now - t >= DUTY_CHECK_MILLIS || now < t) {
            last_duty = Some(now);
            match duty::check(&core, &owner, now).await {
                Ok(claimed) => dispatch(&core, &mut sending, claimed),
                Err(e) => tracing::error!(cause = %e, "on-call: duty notices failed"),
            }
        }
        if last_retention.is_none_or(|t| now - t >= RETENTION_MILLIS || now < t) {
            last_retention = Some(now);
            let cutoff = now - i64::from(core.config.retention.messages_days) * 86_400_000;
            if let Err(e) = alert::forget_closed_before(&core.store, now, cutoff).await {
                tracing::error!(cause = %e, "on-call: forgetting old alerts failed");
            }
        }
        core.oncall.finish_round();
        if more {
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => break,
        }
    }
    // Sends already on their way finish and are recorded; what does not is retried after its lease.
    let _ = tokio::time::timeout(DRAIN, async {
        while sending.join_next().await.is_some() {}
    })
    .await;
}

fn dispatch(core: &Arc<Core>, sending: &mut JoinSet<()>, claimed: Vec<Claimed>) {
    if !claimed.is_empty() {
        sending.spawn(send_batch(core.clone(), claimed));
    }
}

/// Sends a batch concurrently and records every outcome in one transaction.
pub async fn send_batch(core: Arc<Core>, batch: Vec<Claimed>) {
    let alert_ids: Vec<&crate::ids::AlertId> = batch.iter().filter_map(Claimed::alert_id).collect();
    let closed = match alert::closed_among(&core.store, &alert_ids).await {
        Ok(closed) => closed,
        Err(e) => {
            tracing::error!(cause = %e, "on-call: checking alerts before sending failed");
            Default::default()
        }
    };
    let worker_ids: Vec<&crate::ids::WorkerId> = batch.iter().map(|c| &c.worker_id).collect();
    let contacts = match alert::sealed_contacts(&core.store, &worker_ids).await {
        Ok(contacts) => contacts,
        Err(e) => {
            tracing::error!(cause = %e, "on-call: reading contact details failed");
            Default::default()
        }
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut sends = JoinSet::new();
    for claimed in batch {
        if claimed.alert_id().is_some_and(|id| closed.contains(id)) {
            outcomes.push((claimed, Outcome::Cancelled));
            continue;
        }
        let sealed = contacts.get(&claimed.worker_id).cloned();
        let core = core.clone();
        sends.spawn(async move {
            let outcome = send_one(&core, &claimed, sealed).await;
            (claimed, outcome)
        });
    }
    while let Some(joined) = sends.join_next().await {
        match joined {
            Ok(result) => outcomes.push(result),
            Err(e) => tracing::error!(cause = %e, "on-call: a send task failed"),
        }
    }
    for (claimed, outcome) in &outcomes {
        core.metrics.oncall_notifications_total.inc(&[
            ("channel", claimed.channel.as_str()),
            ("outcome", outcome.label()),
        ]);
        match outcome {
            Outcome::Sent { .. } => tracing::info!(
                channel = %claimed.channel, step = claimed.step, purpose = claimed.purpose.as_str(),
                "on-call: notification sent"
            ),
            Outcome::Retry { error, .. } | Outcome::Failed { error } => tracing::warn!(
                channel = %claimed.channel, step = claimed.step, attempt = claimed.attempts,
                error = %error, given_up = matches!(outcome, Outcome::Failed { .. }),
                "on-call: notification failed"
            ),
            Outcome::Cancelled => {}
        }
    }
    match alert::record(&core, &outcomes, core.now()).await {
        Ok(latencies) => {
            for millis in latencies {
                core.metrics
                    .oncall_first_notification_seconds
                    .observe_millis(millis);
            }
        }
        Err(e) => tracing::error!(cause = %e, "on-call: recording notification outcomes failed"),
    }
    if outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Retry { .. }))
    {
        // Not needed for correctness (the poll finds them), but it keeps the scheduler's timing
        // independent of the poll interval.
        core.oncall.wake();
    }
}

async fn send_one(core: &Core, claimed: &Claimed, sealed: Option<Vec<u8>>) -> Outcome {
    let now = || core.now();
    let failed = |error: &str| Outcome::Failed {
        error: error.to_string(),
    };
    let Some(channel) = core.oncall.channel(claimed.channel) else {
        return failed("no-channel");
    };
    let Some(sealed) = sealed else {
        return failed("no-worker");
    };
    let Ok(contact) = crate::worker::contact::open(&core.server_key, &sealed) else {
        return failed("contact");
    };
    let delivery = Delivery {
        notification_id: claimed.id.clone(),
        text: notify::text(core.oncall.label(), &claimed.purpose),
        purpose: claimed.purpose.clone(),
        step: claimed.step,
        worker_id: claimed.worker_id.clone(),
        phone: contact.phone,
        email: contact.email,
    };
    let sends = core.oncall.sends();
    let Ok(_permit) = sends.acquire().await else {
        return Outcome::Retry {
            error: "busy".into(),
            at: now(),
        };
    };
    // A send must end well within the lease, or another instance could send it again.
    let limit = Duration::from_millis((core.oncall.lease_millis() / 2).max(1000) as u64);
    let result = match tokio::time::timeout(limit, channel.send(core, &delivery)).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Temporary("timeout".into())),
    };
    match result {
        Ok(sent) => Outcome::Sent {
            reference: sent.reference,
        },
        Err(SendError::Permanent(code)) => Outcome::Failed { error: code },
        Err(SendError::Temporary(code)) => match core.oncall.retry_at(claimed.attempts, now()) {
            Some(at) => Outcome::Retry { error: code, at },
            None => Outcome::Failed { error: code },
        },
    }
}
