//! The outbound sender: claims due messages from the queue, sends them through the smarthost, records
//! the outcome, and tells the worker "niet afgeleverd" when their mail is given up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::core::Core;
use crate::mail::outbound::{self, Claimed, Kind, State};
use crate::mail::smarthost::Smarthost;
use crate::mail::undelivered::{self, Reason};

/// Runs until `stop` fires: wakes when something was queued or every second, sends what is due.
pub async fn run(core: Arc<Core>, smarthost: Arc<Smarthost>, mut stop: watch::Receiver<bool>) {
    let owner = crate::crypto::random_id();
    loop {
        let claimed = match outbound::claim(&core.store, &owner, core.now()).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::error!(cause = %e, "outbound: claiming failed");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for message in claimed {
            send_one(&core, &smarthost, message).await;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = core.outbound_wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn send_one(core: &Core, smarthost: &Smarthost, message: Claimed) {
    let outcome = match message.payload(&core.server_key) {
        Some(payload) => smarthost.send(&payload).await,
        None => Err((true, "unreadable".to_string())),
    };
    let now = core.now();
    let give_up_after = core
        .config
        .outbound
        .give_up_after_seconds
        .saturating_mul(1000);
    let result = match outcome {
        Ok(()) => {
            tracing::info!(
                kind = message.kind.as_str(),
                attempts = message.attempts,
                "outbound: sent"
            );
            outbound::finish(&core.store, &message.id, State::Sent, "", now).await
        }
        Err((permanent, code)) => {
            let expired =
                now - message.created_at >= i64::try_from(give_up_after).unwrap_or(i64::MAX);
            if permanent || expired {
                tracing::warn!(kind = %message.kind, code, "outbound: given up");
                let result =
                    outbound::finish(&core.store, &message.id, State::Failed, &code, now).await;
                if message.kind != Kind::Notification {
                    tell_worker(core, &message).await;
                }
                result
            } else {
                tracing::info!(kind = %message.kind, code, attempts = message.attempts, "outbound: will retry");
                outbound::retry_later(&core.store, &message.id, message.attempts, &code, now).await
            }
        }
    };
    if let Err(e) = result {
        tracing::error!(cause = %e, "outbound: recording the outcome failed");
    }
}

/// Puts a "niet afgeleverd" notice in the sending worker's mailbox.
async fn tell_worker(core: &Core, message: &Claimed) {
    let Some(worker_id) = &message.worker_id else {
        return;
    };
    let summary = match outbound::summary_of(&core.store, &core.server_key, &message.id).await {
        Ok(Some(summary)) => summary,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(cause = %e, "outbound: reading a failed message's summary failed");
            return;
        }
    };
    let notice = undelivered::Notice {
        worker_id,
        summary: &summary,
        sent_at: message.created_at,
        reason: Reason::GaveUp,
    };
    if let Err(e) = undelivered::deliver(&core.store, &core.deliverer, core.now(), notice).await {
        tracing::error!(cause = %e, "outbound: failure notice could not be stored");
    }
}
