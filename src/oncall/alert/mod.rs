//! Durable alerts and their notifications.
//!
//! An alert is raised in the same transaction as the message that triggers it (or on its own for a
//! manual page or a call), so an acknowledged message never loses its alert. The alert row holds its
//! next step and when it falls due. A scheduler claims due alerts — on PostgreSQL with `FOR UPDATE
//! SKIP LOCKED`, so instances neither wait for each other nor take the same alert; on SQLite under
//! the store's write lock — asks the pure escalation what to send, and in the same transaction
//! queues those notifications (leased to itself) and moves the alert to its next step. A
//! notification row is unique per alert, step, worker and channel: a step is never sent twice. A
//! notification whose send failed is retried with backoff; one whose sender died is taken over when
//! its lease ends. An acknowledgement closes the alert and cancels whatever is still queued.
//!
//! - `raise`: what a message raises, raising an alert (in the message's transaction, by a page, for a
//!   call);
//! - `claims`: the scheduler's side: claiming due steps and retries, and recording how sends ended;
//! - `close`: acknowledging and resolving (by the API, the web app, the command line, SMS or a key
//!   press), and forgetting closed alerts;
//! - `view`: alerts as workers and the administrator list them.

mod claims;
mod close;
mod raise;
mod view;

use serde::Serialize;

pub use claims::{
    claim_retries, closed_among, record, sealed_contacts, step_due, Claimed, Outcome,
};
pub use close::{
    acknowledge, acknowledge_by_keypress, acknowledge_by_sms, forget_closed_before, parse_sms_ack,
    resolve, Closed, Closer, SmsAck, Via,
};
pub use raise::{page, raise_for_call, raise_in, trigger_for_message, Raised, Trigger};
pub use view::{find, get_for_worker, list_all, list_for_worker, AlertView};

/// What raised an alert. The texts sent are the same for every kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// A message to the team's mailbox.
    Message,
    /// An urgent message.
    Urgent,
    /// A referral.
    Aanmelding,
    /// Paged by hand (a worker or an administrator).
    Page,
    /// A call or SMS to the team's number.
    Call,
}

impl AlertKind {
    pub const ALL: [AlertKind; 5] = [
        AlertKind::Message,
        AlertKind::Urgent,
        AlertKind::Aanmelding,
        AlertKind::Page,
        AlertKind::Call,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Message => "message",
            AlertKind::Urgent => "urgent",
            AlertKind::Aanmelding => "aanmelding",
            AlertKind::Page => "page",
            AlertKind::Call => "call",
        }
    }

    /// Alerts raised by messages join an alert still open for the same people: twenty referrals at
    /// 03:00 page the duty once. A page or a call is always its own alert.
    fn coalesces(self) -> bool {
        matches!(
            self,
            AlertKind::Message | AlertKind::Urgent | AlertKind::Aanmelding
        )
    }
}

/// `$start, $start+1, …` for an `IN` list of `n` values.
pub(super) fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_are_numbered_from_the_start() {
        assert_eq!(placeholders(3, 2), "$3, $4");
        assert_eq!(placeholders(1, 1), "$1");
    }
}
