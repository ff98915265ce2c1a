//! One entry for every channel. An adapter (the partner API, SMTP, and later SMS and voicemail)
//! authenticates the sender in its own way and calls `submit`; intake resolves the alias, decides who
//! may write (a pure function), seals and delivers, and audits. The answer is the message id or one
//! `Rejected`, which each adapter turns into its wire answer (202/403, 250/550, …).
//!
//! Whether an alias exists is never revealed: an unknown alias, a burned alias, an unknown sender and a
//! mailbox without members are all the same `Rejected::Refused` to the sender; the reason goes to the
//! audit log only.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::alias::{self, Address, Resolution};
use crate::audit::{Action, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::Error;
use crate::mailbox::{
    Channel, Incoming, MailParts, MailboxId, MailboxKind, MessageId, MessageKind,
};
use crate::metrics::Metrics;
use crate::partner::{self, Contact, Fingerprint, Partner};

/// What the channel established about the sender.
#[derive(Clone, Debug, Default)]
pub struct Claim {
    /// The enabled organisation the channel authenticated (a pinned client certificate, a mail domain
    /// that passed DMARC, a registered phone number).
    pub organisation: Option<Partner>,
    /// An authenticated sender address to look up among the alias's allowed contacts (only asked when
    /// there is no organisation).
    pub contact: Option<Contact>,
    /// A client certificate (the partner API): intake reads the organisation it is pinned to in the
    /// same statement as the alias, so that a request costs one round trip whether it is refused or not.
    pub pinned_certificate: Option<Fingerprint>,
}

/// A message as the channel received it.
pub struct Submission {
    pub to: Address,
    pub claim: Claim,
    pub channel: Channel,
    pub kind: MessageKind,
    pub urgent: bool,
    /// Shown as the sender when no organisation sent it (an allowed contact's address).
    pub sender_label: String,
    pub subject: String,
    pub body: String,
    pub mail: Option<MailParts>,
}

/// Why a delivery was refused; for the audit log only, the sender hears the same thing every time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Neither an enabled organisation nor an allowed contact of this alias.
    UnknownSender,
    /// The alias does not exist.
    UnknownAlias,
    /// The alias was burned (also when it was burned while the message was on its way).
    BurnedAlias,
    /// The alias is live but its mailbox has nobody to seal to (a team without members).
    EmptyMailbox,
    /// The organisation was disabled, or the certificate unpinned, while the message was on its way.
    SenderRevoked,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownSender => "unknown-sender",
            Refusal::UnknownAlias => "unknown-alias",
            Refusal::BurnedAlias => "burned-alias",
            Refusal::EmptyMailbox => "mailbox-without-members",
            Refusal::SenderRevoked => "sender-revoked",
        }
    }
}

/// The facts the decision is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderFacts {
    pub organisation: Option<Partner>,
    /// The sender is an allowed contact of the alias written to.
    pub allowed_contact: bool,
}

/// Who wrote, once accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptedSender {
    Organisation(Partner),
    AllowedContact,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub mailbox_id: MailboxId,
    pub mailbox_kind: MailboxKind,
    pub sender: AcceptedSender,
}

/// Who may write to this alias: an enabled organisation, or an allowed contact of this alias, to a live
/// alias. Pure, so the rule is tested without servers.
pub fn decide(sender: SenderFacts, resolution: Resolution) -> Result<Accepted, Refusal> {
    let sender = match (sender.organisation, sender.allowed_contact) {
        (Some(organisation), _) => AcceptedSender::Organisation(organisation),
        (None, true) => AcceptedSender::AllowedContact,
        (None, false) => return Err(Refusal::UnknownSender),
    };
    match resolution {
        Resolution::Unknown => Err(Refusal::UnknownAlias),
        Resolution::Burned => Err(Refusal::BurnedAlias),
        Resolution::Deliver {
            mailbox_id,
            mailbox_kind,
        } => Ok(Accepted {
            mailbox_id,
            mailbox_kind,
            sender,
        }),
    }
}

/// Why `submit` did not store a message.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// The one neutral refusal.
    #[error("refused: {}", .0.as_str())]
    Refused(Refusal),
    /// The relay could not store it now (the sender should try again); the cause is logged.
    #[error("could not be stored: {0}")]
    Failed(#[from] Error),
}

/// Resolves, decides, seals and delivers; returns the message id once it is committed.
pub async fn submit(core: &Core, submission: Submission) -> Result<MessageId, Rejected> {
    let mut claim = submission.claim;
    let resolution = match &claim.pinned_certificate {
        Some(fingerprint) => {
            let (holder, resolution) =
                partner::by_certificate_resolving(&core.store, fingerprint, &submission.to).await?;
            claim.organisation = claim.organisation.or(holder);
            resolution
        }
        None => alias::resolve(&core.store, &submission.to).await?,
    };
    let allowed_contact = match (&claim.organisation, &claim.contact) {
        (None, Some(contact)) => {
            partner::contact_allowed(&core.store, &core.server_key, &submission.to, contact).await?
        }
        _ => false,
    };
    let facts = SenderFacts {
        organisation: claim.organisation,
        allowed_contact,
    };
    let actor = match &facts.organisation {
        Some(organisation) => Actor::Partner(organisation.name.clone()),
        None => Actor::Anonymous,
    };
    let channel = submission.channel;
    let refused = RefusalContext {
        core,
        actor: &actor,
        channel,
        to: &submission.to,
        resolution: &resolution,
    };
    let accepted = match decide(facts, resolution.clone()) {
        Ok(accepted) => accepted,
        Err(refusal) => return Err(refused.refuse(refusal)),
    };
    let (organisation, sender_certificate) = match accepted.sender {
        AcceptedSender::Organisation(partner) => (Some(partner), claim.pinned_certificate),
        AcceptedSender::AllowedContact => (None, None),
    };
    let incoming = Incoming {
        mailbox_id: accepted.mailbox_id,
        mailbox_kind: accepted.mailbox_kind,
        alias: submission.to.clone(),
        organisation,
        sender_certificate,
        sender_label: submission.sender_label,
        channel,
        kind: submission.kind,
        urgent: submission.urgent,
        subject: submission.subject,
        body: submission.body,
        mail: submission.mail,
        require_live_alias: true,
    };
    match core.deliverer.deliver(core.now(), &actor, incoming).await {
        Ok(id) => {
            Metrics::inc(&core.metrics.messages_delivered_total);
            Ok(id)
        }
        // Nobody to seal to (a team without members): refused like an unknown alias; the log tells the
        // operator to add members.
        Err(Error::EmptyMailbox) => {
            if first_in_a_minute(&LAST_EMPTY_MAILBOX_WARNING, core.now()) {
                tracing::warn!("delivery refused: a mailbox has no members (said once a minute)");
            }
            Err(refused.refuse(Refusal::EmptyMailbox))
        }
        Err(Error::AliasGone) => Err(refused.refuse(Refusal::BurnedAlias)),
        Err(Error::SenderRevoked) => Err(refused.refuse(Refusal::SenderRevoked)),
        Err(e) => Err(Rejected::Failed(e)),
    }
}

/// When the empty-mailbox warning was last logged: a partner writing to such a team in a loop must
/// not fill the log (every refusal is still counted and audited).
static LAST_EMPTY_MAILBOX_WARNING: AtomicI64 = AtomicI64::new(i64::MIN);

/// Whether `now` is a minute or more after the time in `last`; if so, `now` becomes that time.
fn first_in_a_minute(last: &AtomicI64, now: Millis) -> bool {
    let previous = last.load(Ordering::Relaxed);
    now.saturating_sub(previous) >= 60_000
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// What the audit row of a refusal says about the message besides the reason.
struct RefusalContext<'a> {
    core: &'a Core,
    actor: &'a Actor,
    channel: Channel,
    to: &'a Address,
    resolution: &'a Resolution,
}

impl RefusalContext<'_> {
    /// Counts and queues the audit row of a refusal. The typed address is recorded only when it is
    /// one of the relay's aliases: anything else could be a person's real address.
    fn refuse(&self, refusal: Refusal) -> Rejected {
        Metrics::inc(&self.core.metrics.messages_refused_total);
        let subject = match self.resolution {
            Resolution::Unknown => "unknown-alias",
            _ => self.to.as_str(),
        };
        // Nothing about the sender: a refused sender's address or domain may be a family's own.
        let detail = format!(
            "channel={} reason={}",
            self.channel.as_str(),
            refusal.as_str()
        );
        self.core.audit_queue.push(
            self.core.now(),
            Event::new(self.actor, Action::MessageRefused, subject).detail(&detail),
        );
        Rejected::Refused(refusal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner() -> Partner {
        Partner {
            id: crate::partner::OrganisationId::parse(&"1".repeat(32)).unwrap(),
            name: "GI".into(),
        }
    }

    fn mailbox() -> MailboxId {
        MailboxId::parse(&"2".repeat(32)).unwrap()
    }

    fn live() -> Resolution {
        Resolution::Deliver {
            mailbox_id: mailbox(),
            mailbox_kind: MailboxKind::Worker,
        }
    }

    fn facts(organisation: Option<Partner>, allowed_contact: bool) -> SenderFacts {
        SenderFacts {
            organisation,
            allowed_contact,
        }
    }

    #[test]
    fn who_may_write_to_which_alias() {
        let accepted = |sender| {
            Ok(Accepted {
                mailbox_id: mailbox(),
                mailbox_kind: MailboxKind::Worker,
                sender,
            })
        };
        let cases = [
            (
                facts(Some(partner()), false),
                live(),
                accepted(AcceptedSender::Organisation(partner())),
            ),
            (
                facts(Some(partner()), true),
                live(),
                accepted(AcceptedSender::Organisation(partner())),
            ),
            (
                facts(None, true),
                live(),
                accepted(AcceptedSender::AllowedContact),
            ),
            (facts(None, false), live(), Err(Refusal::UnknownSender)),
            (
                facts(None, false),
                Resolution::Unknown,
                Err(Refusal::UnknownSender),
            ),
            (
                facts(None, false),
                Resolution::Burned,
                Err(Refusal::UnknownSender),
            ),
            (
                facts(Some(partner()), false),
                Resolution::Unknown,
                Err(Refusal::UnknownAlias),
            ),
            (
                facts(Some(partner()), false),
                Resolution::Burned,
                Err(Refusal::BurnedAlias),
            ),
            (
                facts(None, true),
                Resolution::Burned,
                Err(Refusal::BurnedAlias),
            ),
        ];
        for (sender, resolution, expected) in cases {
            let shown = format!("{sender:?} {resolution:?}");
            assert_eq!(decide(sender, resolution), expected, "{shown}");
        }
    }

    #[test]
    fn the_empty_mailbox_warning_is_logged_once_a_minute() {
        let last = AtomicI64::new(i64::MIN);
        assert!(first_in_a_minute(&last, 1_000_000));
        assert!(!first_in_a_minute(&last, 1_000_000));
        assert!(!first_in_a_minute(&last, 1_059_999));
        assert!(first_in_a_minute(&last, 1_060_000));
        assert!(!first_in_a_minute(&last, 1_060_001));
    }
}
