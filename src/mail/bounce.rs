//! Bounces and give-ups: mail the relay sent that could not be delivered comes back to its signed
//! return path (`bounce+ID.MAC@domain`) and becomes a "niet afgeleverd" notice in the worker's
//! mailbox. A bounce for no message we sent (a forged or stale return path) is refused at SMTP time,
//! so the relay never sends backscatter. Only a real failure report counts: an out-of-office reply or a
//! "delayed" notice that reaches the return path is accepted and dropped, so it never tells the worker
//! that a delivered reply failed.

use mail_parser::MimeHeaders as _;

use crate::audit::Actor;
use crate::mail::outbound::{self, Summary};
use crate::mail::smtp::REFUSED;
use crate::mailbox::{Channel, Incoming, MessageKind};
use crate::web::AppState;

/// What came back to a return path.
#[derive(Debug, PartialEq, Eq)]
pub enum Returned {
    /// A report that the message could not be delivered.
    Failed,
    /// Anything else: an automatic reply, a delay or success notice, a person writing back.
    NotAFailure,
}

/// Decides what a message to a return path is. Delivery reports come with a null envelope sender
/// (RFC 5321 §4.5.5); a standard report (RFC 3464) says per recipient whether it `failed`; a report
/// without that structure (older servers write plain text) counts as a failure unless it says it is
/// an automatic reply (RFC 3834).
pub fn classify(mail_from: &str, raw: &[u8]) -> Returned {
    if !mail_from.is_empty() {
        return Returned::NotAFailure;
    }
    let Some(message) = crate::mail::parse_message(raw) else {
        return Returned::Failed;
    };
    let auto_replied = message.header_raw("Auto-Submitted").is_some_and(|value| {
        value
            .trim()
            .to_ascii_lowercase()
            .starts_with("auto-replied")
    });
    if auto_replied {
        return Returned::NotAFailure;
    }
    let is_report = message.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
    });
    if !is_report {
        return Returned::Failed;
    }
    let mut actions = message
        .parts
        .iter()
        .filter(|part| {
            part.content_type().is_some_and(|ct| {
                ct.ctype().eq_ignore_ascii_case("message")
                    && ct.subtype().is_some_and(|s| {
                        s.eq_ignore_ascii_case("delivery-status")
                            || s.eq_ignore_ascii_case("global-delivery-status")
                    })
            })
        })
        .flat_map(|part| report_actions(part.contents()))
        .peekable();
    if actions.peek().is_none() {
        return Returned::Failed;
    }
    if actions.any(|action| action == "failed") {
        Returned::Failed
    } else {
        Returned::NotAFailure
    }
}

/// The `Action:` values of a delivery-status body, lower case.
fn report_actions(status: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(status)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("action")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .collect()
}

/// Handles a message to a `bounce+…` address; returns the SMTP reply.
pub async fn receive(state: &AppState, local_part: &str, mail_from: &str, raw: &[u8]) -> String {
    let Some(id) = outbound::parse_return_path(&state.server_key, local_part) else {
        return REFUSED.to_string();
    };
    if classify(mail_from, raw) == Returned::NotAFailure {
        // Accepted and dropped: refusing would make the sender's server bounce it again.
        return "250 2.0.0 Message accepted".to_string();
    }
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
    let report = crate::mail::parse_message(raw)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(action: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@mx.partner.example\r\nTo: bounce+x@relay.example\r\n\
             Subject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\n\
             Reporting-MTA: dns; mx.partner.example\r\n\r\n\
             Final-Recipient: rfc822; someone@partner.example\r\nAction: {action}\r\n\
             Status: 5.1.1\r\n\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn only_failure_reports_from_the_null_sender_are_failures() {
        assert_eq!(classify("", &report("failed")), Returned::Failed);
        assert_eq!(classify("", &report("Failed")), Returned::Failed);
        assert_eq!(classify("", &report("delayed")), Returned::NotAFailure);
        assert_eq!(classify("", &report("delivered")), Returned::NotAFailure);
        // A report sent with a sender address is not a delivery report.
        assert_eq!(
            classify("postmaster@partner.example", &report("failed")),
            Returned::NotAFailure
        );
        // An out-of-office reply.
        let vacation = b"From: team@partner.example\r\nAuto-Submitted: auto-replied\r\n\
            Subject: Afwezig\r\n\r\nIk ben tot maandag afwezig.\r\n";
        assert_eq!(classify("", vacation), Returned::NotAFailure);
        // A plain-text bounce of an older server.
        let legacy = b"From: MAILER-DAEMON@old.example\r\nSubject: failure notice\r\n\r\n\
            Sorry, I couldn't deliver your message.\r\n";
        assert_eq!(classify("", legacy), Returned::Failed);
    }
}
