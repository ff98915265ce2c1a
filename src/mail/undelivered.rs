//! "Niet afgeleverd": the notice a worker finds in their own mailbox when mail they sent could not be
//! delivered. Every word of it is the relay's: which message (recipient, subject, alias), when it was
//! sent, and at most a standard status code from the report (`5.1.1`). Never text or links from a
//! report, which anyone who saw the return path could have written.

use crate::audit::Actor;
use crate::clock::Millis;
use crate::error::Result;
use crate::ids::WorkerId;
use crate::mail::outbound::Summary;
use crate::mailbox::{Channel, Deliverer, Incoming, MessageKind};
use crate::store::Store;

/// An enhanced status code (RFC 3463): class 2, 4 or 5, then two numbers of at most three digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCode(String);

impl StatusCode {
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        let number = |p: &str| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        let valid = matches!(class, "2" | "4" | "5")
            && number(subject)
            && number(detail)
            && parts.next().is_none();
        valid.then(|| Self(text.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why the message did not arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The receiving side reported a failure (a verified delivery report).
    Bounced { status: Option<StatusCode> },
    /// The relay tried for the configured time (or got a permanent refusal) and gave up.
    GaveUp,
}

pub struct Notice<'a> {
    pub worker_id: &'a WorkerId,
    pub summary: &'a Summary,
    pub sent_at: Millis,
    pub reason: Reason,
}

/// The notice's subject and body; pure.
pub fn text(notice: &Notice<'_>) -> (String, String) {
    let sent = jiff::Timestamp::from_millisecond(notice.sent_at)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    let summary = notice.summary;
    let mut body = format!(
        "Je bericht aan {} met onderwerp \"{}\", verstuurd op {sent} vanaf {}, is niet afgeleverd.\n",
        summary.recipient, summary.subject, summary.from_alias
    );
    match &notice.reason {
        Reason::Bounced {
            status: Some(status),
        } => body.push_str(&format!(
            "De ontvangende server meldde statuscode {}.\n",
            status.as_str()
        )),
        Reason::Bounced { status: None } => {
            body.push_str("De ontvangende server meldde dat het bericht niet is afgeleverd.\n")
        }
        Reason::GaveUp => {
            body.push_str("De relay kreeg het bericht niet bij de ontvangende server afgeleverd.\n")
        }
    }
    (format!("Niet afgeleverd: {}", summary.subject), body)
}

/// Puts the notice in the worker's personal mailbox.
pub async fn deliver(
    store: &Store,
    deliverer: &Deliverer,
    now: Millis,
    notice: Notice<'_>,
) -> Result<()> {
    let mailbox_id = crate::worker::mailbox_of(store, notice.worker_id).await?;
    let alias = crate::alias::Address::parse(&notice.summary.from_alias)?;
    let (subject, body) = text(&notice);
    deliverer
        .deliver(
            now,
            &Actor::System,
            Incoming {
                mailbox_id,
                mailbox_kind: crate::mailbox::MailboxKind::Worker,
                alias,
                organisation: None,
                sender_certificate: None,
                sender_label: "schuilnaam".to_string(),
                channel: Channel::Mail,
                kind: MessageKind::Bericht,
                urgent: false,
                subject,
                body,
                mail: None,
                require_live_alias: false,
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_status_codes_are_kept() {
        assert_eq!(StatusCode::parse(" 5.1.1 ").unwrap().as_str(), "5.1.1");
        assert!(StatusCode::parse("4.7.26").is_some());
        for bad in [
            "",
            "5.1",
            "6.1.1",
            "5.1.1.1",
            "5.1.1 bel direct 0900-1234",
            "5.1234.1",
            "x.1.1",
        ] {
            assert_eq!(StatusCode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_notice_is_written_by_the_relay_alone() {
        let summary = Summary {
            recipient: "team@jbwest.example".into(),
            subject: "Re: Aanmelding".into(),
            from_alias: "k7m2q9xd3abc@relay.example".into(),
        };
        let worker = WorkerId::random();
        let notice = Notice {
            worker_id: &worker,
            summary: &summary,
            sent_at: 1_764_500_000_000,
            reason: Reason::Bounced {
                status: StatusCode::parse("5.1.1"),
            },
        };
        let (subject, body) = text(&notice);
        assert_eq!(subject, "Niet afgeleverd: Re: Aanmelding");
        assert!(body.contains("team@jbwest.example"), "{body}");
        assert!(body.contains("5.1.1"), "{body}");
        assert!(body.contains("2025-11-30"), "{body}");
        assert!(!body.contains("http"), "{body}");
    }
}
