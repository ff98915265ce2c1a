//! Bounces: mail the relay sent that could not be delivered comes back to its signed return path
//! (`bounce+ID.MAC@domain`) and becomes a "niet afgeleverd" notice in the worker's mailbox. A bounce for
//! no message we sent (a forged or stale return path) is refused at SMTP time, so the relay never
//! sends backscatter. Only a real failure report counts: an out-of-office reply or a "delayed" notice
//! that reaches the return path is accepted and dropped. And only a report from a host that the
//! recipient's domain (or the relay's own, for its smarthost) vouches for by SPF changes the message's
//! state: the return path travels with the mail, so the family may hold it.

use mail_parser::{MessagePart, MimeHeaders as _};

use crate::audit::{Action, Actor, Event};
use crate::core::Core;
use crate::mail::auth::{Authenticator, Client};
use crate::mail::outbound;
use crate::mail::undelivered::{self, Notice, Reason, StatusCode};
use crate::metrics::Metrics;

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
        .filter(|part| is_delivery_status(part))
        .flat_map(|part| report_fields(part.contents(), "action"))
        .map(|action| action.to_ascii_lowercase())
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

fn is_delivery_status(part: &MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("message")
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("delivery-status")
                    || s.eq_ignore_ascii_case("global-delivery-status")
            })
    })
}

/// The values of the named field (`Action:`, `Status:`) in a delivery-status body.
fn report_fields(status: &[u8], field: &str) -> Vec<String> {
    String::from_utf8_lossy(status)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case(field)
                .then(|| value.trim().to_string())
        })
        .collect()
}

/// What the SMTP listener answers a message to a return path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Taken (and acted on, or dropped): refusing it would make the sender's server bounce it again.
    Accepted,
    /// A return path we never issued, or for mail that can no longer bounce: refused like an unknown
    /// address, so no backscatter.
    Refused,
    /// The relay could not act on it now.
    TryLater,
}

/// Handles a message to a `bounce+…` address. Only a verified failure report changes anything: the
/// state of the one outbound message it names, and a "niet afgeleverd" notice written by the relay.
pub async fn receive(
    core: &Core,
    authenticator: &Authenticator,
    local_part: &str,
    client: &Client,
    raw: &[u8],
) -> Outcome {
    let Some(id) = outbound::parse_return_path(&core.server_key, local_part) else {
        return Outcome::Refused;
    };
    if classify(&client.mail_from, raw) == Returned::NotAFailure {
        return Outcome::Accepted;
    }
    let candidate = match outbound::bounced_candidate(&core.store, &core.server_key, &id).await {
        Ok(Some(candidate)) => candidate,
        Ok(None) => return Outcome::Refused,
        Err(e) => {
            tracing::error!(cause = %e, "bounce: lookup failed");
            return Outcome::TryLater;
        }
    };
    let recipient_domain = candidate
        .summary
        .recipient
        .rsplit_once('@')
        .map(|(_, domain)| domain.to_string())
        .unwrap_or_default();
    let vouched = match client.ip {
        Some(ip) => {
            authenticator
                .host_sends_for(ip, &client.helo, &[&recipient_domain, core.domain.as_str()])
                .await
        }
        None => false,
    };
    if !vouched {
        // Anyone who saw the return path can send a report: one from a host that neither the
        // recipient's domain nor our own vouches for changes nothing. It is counted and audited.
        Metrics::inc(&core.metrics.bounces_unverified_total);
        core.audit_queue.push(
            core.now(),
            Event::new(&Actor::Anonymous, Action::MailBounceUnverified, id.as_str()),
        );
        return Outcome::Accepted;
    }
    let bounced = match outbound::mark_bounced(&core.store, &core.server_key, &id, core.now()).await
    {
        Ok(Some(bounced)) => bounced,
        Ok(None) => return Outcome::Refused,
        Err(e) => {
            tracing::error!(cause = %e, "bounce: marking failed");
            return Outcome::TryLater;
        }
    };
    Metrics::inc(&core.metrics.bounces_total);
    let notice = Notice {
        worker_id: &bounced.worker_id,
        summary: &bounced.summary,
        sent_at: bounced.sent_at,
        reason: Reason::Bounced {
            status: failure_status(raw),
        },
    };
    match undelivered::deliver(&core.store, &core.deliverer, core.now(), notice).await {
        Ok(()) => Outcome::Accepted,
        Err(e) => {
            tracing::error!(cause = %e, "bounce: notice could not be stored");
            Outcome::TryLater
        }
    }
}

/// The enhanced status code of a failed recipient in a standard report, when it is one.
pub fn failure_status(raw: &[u8]) -> Option<StatusCode> {
    let message = crate::mail::parse_message(raw)?;
    message
        .parts
        .iter()
        .filter(|part| is_delivery_status(part))
        .flat_map(|part| report_fields(part.contents(), "status"))
        .find_map(|status| StatusCode::parse(&status))
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
