//! Bounces and give-ups: mail the relay sent that could not be delivered comes back to its signed
//! return path (`bounce+ID.MAC@domain`) and becomes a "niet afgeleverd" notice in the worker's
//! mailbox. A bounce for no message we sent (a forged or stale return path) is refused at SMTP time,
//! so the relay never sends backscatter.

use crate::audit::Actor;
use crate::mail::outbound::{self, Summary};
use crate::mail::smtp::REFUSED;
use crate::mailbox::{Channel, Incoming, MessageKind};
use crate::web::AppState;

/// Handles a message to a `bounce+…` address; returns the SMTP reply.
pub async fn receive(state: &AppState, local_part: &str, raw: &[u8]) -> String {
    let Some(id) = outbound::parse_return_path(&state.server_key, local_part) else {
        return REFUSED.to_string();
    };
    let bounced =
        match outbound::mark_bounced(&state.store, &state.server_key, &id, state.now()).await {
            Ok(Some(bounced)) => bounced,
            Ok(None) => return REFUSED.to_string(),
            Err(e) => {
                tracing::error!(cause = %e, "bounce: lookup failed");
                return "451 4.3.0 Temporary failure, please try again later".to_string();
            }
        };
    let (worker_id, summary) = bounced;
    let report = mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| {
            m.body_text(0)
                .map(|t| t.chars().take(2000).collect::<String>())
        })
        .unwrap_or_default();
    match notify_worker(state, &worker_id, &summary, &report).await {
        Ok(()) => "250 2.0.0 Message accepted".to_string(),
        Err(e) => {
            tracing::error!(cause = %e, "bounce: notice could not be stored");
            "451 4.3.0 Temporary failure, please try again later".to_string()
        }
    }
}

/// Puts a "niet afgeleverd" notice in the worker's personal mailbox.
pub async fn notify_worker(
    state: &AppState,
    worker_id: &str,
    summary: &Summary,
    report: &str,
) -> crate::Result<()> {
    let mailbox_id = crate::worker::mailbox_of(&state.store, worker_id).await?;
    let alias = crate::alias::Address::parse(&summary.from_alias)?;
    let mut body = format!(
        "Je bericht aan {} kon niet worden afgeleverd.\n",
        summary.recipient
    );
    if !report.trim().is_empty() {
        body.push_str("\nMelding van de ontvangende server:\n\n");
        body.push_str(report);
    }
    state
        .deliverer
        .deliver(
            state.now(),
            &Actor::System,
            Incoming {
                mailbox_id,
                alias,
                organisation: None,
                sender_label: "schuilnaam".to_string(),
                channel: Channel::Mail,
                kind: MessageKind::Bericht,
                urgent: false,
                subject: format!("Niet afgeleverd: {}", summary.subject),
                body,
                mail: None,
                require_live_alias: false,
            },
        )
        .await?;
    Ok(())
}

/// The outbound sender gave up on a message: tell the worker.
pub async fn gave_up(state: &AppState, worker_id: &str, outbound_id: &str) {
    let summary = match outbound::summary_of(&state.store, &state.server_key, outbound_id).await {
        Ok(Some(summary)) => summary,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(cause = %e, "outbound: reading a failed message's summary failed");
            return;
        }
    };
    if let Err(e) = notify_worker(
        state,
        worker_id,
        &summary,
        "De relay kreeg het bericht niet bij de ontvangende server afgeleverd.",
    )
    .await
    {
        tracing::error!(cause = %e, "outbound: failure notice could not be stored");
    }
}
