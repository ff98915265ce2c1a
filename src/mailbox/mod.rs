//! Mailboxes and their encrypted messages. A message is sealed with age to every member of the
//! mailbox before it is written; the database keeps only what routing and listing need (mailbox,
//! alias, sending organisation, kind, urgency, time). Ownership is checked in SQL: a worker sees a
//! message only through a `mailbox_members` row.
//!
//! - `deliver`: the deliverer: seals incoming messages and commits them in grouped transactions;
//! - `read`: listing, opening, marking read, deleting, and the retention of messages;
//! - `members`: mailboxes, their members, and the recipients a message is sealed to.

mod deliver;
mod members;
mod read;

use serde::{Deserialize, Serialize};

use crate::alias::Address;
pub use crate::ids::{MailboxId, MessageId};
use crate::partner::Partner;

pub use deliver::Deliverer;
pub use members::{add_member, create, member_handles, recipients, remove_member, team, teams};
pub use read::{
    delete_for_worker, delete_older_than, list_for_worker, mark_read, open_letter, page_for_worker,
    record_access, sealed_for_worker, Listed, Summary,
};

crate::text_enum! {
    #[derive(Default)]
    pub enum MessageKind {
        /// An ordinary message.
        #[default]
        Bericht = "bericht",
        /// A referral of a case by a GI.
        Aanmelding = "aanmelding",
    }
}

crate::text_enum! {
    /// The channel a message arrived on.
    pub enum Channel {
        Api = "api",
        Mail = "mail",
        Sms = "sms",
        Voicemail = "voicemail",
    }
}

pub use crate::ids::MailboxKind;

/// The bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) that make
/// "factuur\u{202E}fdp.exe" read as "factuurexe.pdf". Text from outside is shown without them (the web
/// app) or with them marked (the `inbox` CLI); right-to-left scripts need none of them to read right
/// to left.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The plaintext inside every sealed message: readable with `age -d … | jq`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Letter {
    /// Format version of this document.
    pub schuilnaam_letter: u32,
    pub channel: Channel,
    pub from: String,
    pub to: String,
    pub received_at: String,
    pub kind: MessageKind,
    pub urgent: bool,
    pub subject: String,
    pub body: String,
    /// Mail only: the authenticated From address (where a reply goes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Mail only: the sender's Message-ID and References (for threading a reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::mail::inspect::AttachmentInfo>,
    /// Mail only: the original message, base64 (headers, every part, every attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

pub const LETTER_VERSION: u32 = 1;

impl Letter {
    /// About how many bytes the letter takes as JSON (the raw mail dominates).
    fn approximate_size(&self) -> usize {
        self.body.len() + self.subject.len() + self.raw.as_ref().map_or(0, String::len) + 512
    }
}

impl Letter {
    /// The contents of attachment `index` of the original mail (mail only).
    pub fn attachment(&self, index: u32) -> Option<Vec<u8>> {
        let raw = data_encoding::BASE64
            .decode(self.raw.as_deref()?.as_bytes())
            .ok()?;
        let message = crate::mail::parse_message(&raw)?;
        Some(message.attachment(index)?.contents().to_vec())
    }
}

/// Mail-only parts of an incoming message.
#[derive(Clone, Debug, Default)]
pub struct MailParts {
    pub reply_to: String,
    pub message_id: Option<String>,
    pub references: Vec<String>,
    pub attachments: Vec<crate::mail::inspect::AttachmentInfo>,
    pub raw: Vec<u8>,
}

/// A message on its way into a mailbox.
pub struct Incoming {
    pub mailbox_id: MailboxId,
    pub mailbox_kind: MailboxKind,
    pub alias: Address,
    /// The sending organisation.
    pub organisation: Option<Partner>,
    /// The pinned client certificate the organisation was recognised by (the partner API): checked
    /// again when the message commits, with the organisation.
    pub sender_certificate: Option<crate::partner::Fingerprint>,
    /// Shown as the sender when there is no organisation (an allowed contact, the relay itself).
    pub sender_label: String,
    pub channel: Channel,
    pub kind: MessageKind,
    pub urgent: bool,
    pub subject: String,
    pub body: String,
    pub mail: Option<MailParts>,
    /// Refuse at commit when the alias was burned meanwhile (not for the relay's own notices).
    pub require_live_alias: bool,
}
