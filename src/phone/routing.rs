//! The routing decision for a call or a text to an alias number: pure functions over facts gathered
//! elsewhere, so the rule is tested without servers. Who may call is who may write: the same
//! `intake::decide` judges a call, a text and a mail. Every refusal, whatever its reason, is answered
//! alike by the adapters (one TwiML, one SIP answer); the reason goes to the audit log only.

use super::pool::NumberState;
use super::PhoneNumber;
use crate::alias::{Address, Resolution};
use crate::intake::{self, Accepted, Refusal, SenderFacts};

/// Why a call or text was refused (for the audit log only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No caller number (withheld, anonymous, or not a number).
    Withheld,
    /// The number is not in the pool, or free.
    UnservedNumber,
    /// The number was burned.
    BurnedNumber,
    /// The one rule said no.
    Intake(Refusal),
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Withheld => "withheld-number",
            Refused::UnservedNumber => "unserved-number",
            Refused::BurnedNumber => "burned-number",
            Refused::Intake(refusal) => refusal.as_str(),
        }
    }
}

/// Everything the call decision needs.
#[derive(Clone, Debug)]
pub struct CallFacts {
    /// `None`: withheld or not a number.
    pub caller: Option<PhoneNumber>,
    pub number: NumberState,
    /// What the caller is, as `intake::decide` takes it.
    pub sender: SenderFacts,
    /// The alias behind the number.
    pub resolution: Resolution,
    /// The caller is the registered real phone of a member of the alias's mailbox.
    pub caller_is_member: bool,
    /// Whom to ring, in order (already opened; empty when nobody can be rung now).
    pub ring: Vec<PhoneNumber>,
    /// The mailbox's owner is within their hours (always true for a team).
    pub available: bool,
}

/// What a call gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallRoute {
    Refuse(Refused),
    /// Ring these numbers in turn, with the alias number as caller ID; voicemail after the last.
    Ring {
        alias: Address,
        caller_id: PhoneNumber,
        targets: Vec<PhoneNumber>,
        accepted: Accepted,
    },
    /// Nobody to ring now (outside hours): straight to voicemail.
    Voicemail {
        alias: Address,
        accepted: Accepted,
    },
    /// A member calling their own alias: ask which number to call out to.
    AskDestination {
        alias: Address,
    },
}

/// Decides a call to `alias_number`.
pub fn decide_call(alias_number: &PhoneNumber, facts: CallFacts) -> CallRoute {
    let alias = match checked_number(facts.number, facts.caller.as_ref()) {
        Ok(alias) => alias,
        Err(refused) => return CallRoute::Refuse(refused),
    };
    let live = matches!(facts.resolution, Resolution::Deliver { .. });
    if facts.caller_is_member && live {
        return CallRoute::AskDestination { alias };
    }
    let accepted = match intake::decide(facts.sender, facts.resolution) {
        Ok(accepted) => accepted,
        Err(refusal) => return CallRoute::Refuse(Refused::Intake(refusal)),
    };
    if !facts.available || facts.ring.is_empty() {
        return CallRoute::Voicemail { alias, accepted };
    }
    CallRoute::Ring {
        alias,
        caller_id: alias_number.clone(),
        targets: facts.ring,
        accepted,
    }
}

/// The alias a text or call to this number goes to, when the number is served and the caller known;
/// who may write is then `intake`'s decision.
pub fn checked_number(
    number: NumberState,
    caller: Option<&PhoneNumber>,
) -> Result<Address, Refused> {
    let alias = match number {
        NumberState::Served { alias } => alias,
        NumberState::Burned => return Err(Refused::BurnedNumber),
        NumberState::Unserved => return Err(Refused::UnservedNumber),
    };
    if caller.is_none() {
        return Err(Refused::Withheld);
    }
    Ok(alias)
}

/// Which of the ring targets to try at `step` (0 first); `None` once every one was tried.
pub fn target_at(targets: &[PhoneNumber], step: usize) -> Option<&PhoneNumber> {
    targets.get(step)
}

/// A worker's hours: the phone rings from `from` until `until` (minutes after local midnight); when
/// `until` is before `from` the window runs past midnight. Equal: always.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hours {
    pub from_minute: u16,
    pub until_minute: u16,
}

impl Hours {
    /// `HH:MM` into minutes after midnight.
    pub fn parse_time(text: &str) -> Option<u16> {
        let (h, m) = text.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.trim().len() == 5).then_some(h * 60 + m)
    }

    pub fn within(self, minute_of_day: u16) -> bool {
        let (from, until) = (self.from_minute, self.until_minute);
        if from == until {
            true
        } else if from < until {
            (from..until).contains(&minute_of_day)
        } else {
            minute_of_day >= from || minute_of_day < until
        }
    }
}

/// Minutes after midnight in Europe/Amsterdam at `now` (Unix milliseconds).
pub fn local_minute(now: crate::clock::Millis) -> Option<u16> {
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").ok()?;
    let zoned = jiff::Timestamp::from_millisecond(now).ok()?.to_zoned(zone);
    Some(u16::from(zoned.hour() as u8) * 60 + u16::from(zoned.minute() as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::AcceptedSender;
    use crate::partner::Partner;

    fn n(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    fn alias() -> Address {
        Address::parse("k7m2q9xd3abc@relay.example").unwrap()
    }

    fn partner() -> Partner {
        Partner {
            id: crate::ids::OrganisationId::parse(&"a1".repeat(16)).unwrap(),
            name: "GI".into(),
        }
    }

    fn live() -> Resolution {
        Resolution::Deliver {
            mailbox_id: crate::ids::MailboxId::parse(&"b1".repeat(16)).unwrap(),
            mailbox_kind: crate::ids::MailboxKind::Worker,
        }
    }

    fn served() -> NumberState {
        NumberState::Served { alias: alias() }
    }

    fn facts(
        caller: Option<&str>,
        number: NumberState,
        organisation: bool,
        contact: bool,
    ) -> CallFacts {
        CallFacts {
            caller: caller.map(n),
            number,
            sender: SenderFacts {
                organisation: organisation.then(partner),
                allowed_contact: contact,
            },
            resolution: live(),
            caller_is_member: false,
            ring: vec![n("+31612345678")],
            available: true,
        }
    }

    #[test]
    fn who_gets_through_to_which_number() {
        let number = n("+3197010000001");
        let ring = |sender| CallRoute::Ring {
            alias: alias(),
            caller_id: number.clone(),
            targets: vec![n("+31612345678")],
            accepted: Accepted {
                mailbox_id: crate::ids::MailboxId::parse(&"b1".repeat(16)).unwrap(),
                mailbox_kind: crate::ids::MailboxKind::Worker,
                sender,
            },
        };
        let partner_call = facts(Some("+31201234567"), served(), true, false);
        let contact_call = facts(Some("+31687654321"), served(), false, true);
        let mut burned_alias = facts(Some("+31201234567"), served(), true, false);
        burned_alias.resolution = Resolution::Burned;
        let mut unknown_alias = facts(Some("+31201234567"), served(), true, false);
        unknown_alias.resolution = Resolution::Unknown;
        let cases = [
            (partner_call, ring(AcceptedSender::Organisation(partner()))),
            (contact_call, ring(AcceptedSender::AllowedContact)),
            (
                facts(Some("+31699999999"), served(), false, false),
                CallRoute::Refuse(Refused::Intake(Refusal::UnknownSender)),
            ),
            (
                facts(None, served(), false, false),
                CallRoute::Refuse(Refused::Withheld),
            ),
            // A partner's own number does not get through a burned or unserved number either.
            (
                facts(Some("+31201234567"), NumberState::Burned, true, false),
                CallRoute::Refuse(Refused::BurnedNumber),
            ),
            (
                facts(Some("+31201234567"), NumberState::Unserved, true, false),
                CallRoute::Refuse(Refused::UnservedNumber),
            ),
            (
                facts(None, NumberState::Unserved, false, false),
                CallRoute::Refuse(Refused::UnservedNumber),
            ),
            (
                burned_alias,
                CallRoute::Refuse(Refused::Intake(Refusal::BurnedAlias)),
            ),
            (
                unknown_alias,
                CallRoute::Refuse(Refused::Intake(Refusal::UnknownAlias)),
            ),
        ];
        for (facts, expected) in cases {
            let shown = format!("{facts:?}");
            assert_eq!(decide_call(&number, facts), expected, "{shown}");
        }
    }

    #[test]
    fn outside_hours_or_nobody_to_ring_goes_to_voicemail() {
        let number = n("+3197010000001");
        let mut outside = facts(Some("+31201234567"), served(), true, false);
        outside.available = false;
        let mut nobody = facts(Some("+31201234567"), served(), true, false);
        nobody.ring.clear();
        for facts in [outside, nobody] {
            assert!(matches!(
                decide_call(&number, facts),
                CallRoute::Voicemail { .. }
            ));
        }
        // …but a stranger outside hours is still refused, not recorded.
        let mut stranger = facts(Some("+31699999999"), served(), false, false);
        stranger.available = false;
        assert_eq!(
            decide_call(&number, stranger),
            CallRoute::Refuse(Refused::Intake(Refusal::UnknownSender))
        );
    }

    #[test]
    fn a_member_calling_their_own_alias_is_asked_where_to() {
        let number = n("+3197010000001");
        let mut own = facts(Some("+31612345678"), served(), false, false);
        own.caller_is_member = true;
        assert_eq!(
            decide_call(&number, own.clone()),
            CallRoute::AskDestination { alias: alias() }
        );
        // A burned alias lets nobody through, its own worker included.
        own.resolution = Resolution::Burned;
        assert!(matches!(
            decide_call(&number, own),
            CallRoute::Refuse(Refused::Intake(_))
        ));
    }

    #[test]
    fn hours_wrap_past_midnight() {
        let day = Hours {
            from_minute: Hours::parse_time("08:00").unwrap(),
            until_minute: Hours::parse_time("18:00").unwrap(),
        };
        assert!(day.within(8 * 60));
        assert!(day.within(17 * 60 + 59));
        assert!(!day.within(18 * 60));
        assert!(!day.within(3 * 60));
        let night = Hours {
            from_minute: 22 * 60,
            until_minute: 6 * 60,
        };
        assert!(night.within(23 * 60));
        assert!(night.within(60));
        assert!(!night.within(12 * 60));
        let always = Hours {
            from_minute: 0,
            until_minute: 0,
        };
        assert!(always.within(12 * 60));
        for bad in ["24:00", "8:00", "08:60", "0800", "aa:bb"] {
            assert_eq!(Hours::parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_time_follows_amsterdam_across_dst() {
        // 2026-07-01 10:00 UTC is 12:00 in summer; 2026-01-01 10:00 UTC is 11:00 in winter.
        assert_eq!(local_minute(1_782_900_000_000), Some(12 * 60));
        assert_eq!(local_minute(1_767_261_600_000), Some(11 * 60));
    }
}
