//! The relay's identifiers, each its own type so that two cannot be swapped (a worker id where a
//! mailbox id belongs does not compile). They live in this one leaf module so that every module can
//! name them without importing the module that owns the table.

crate::id_type!(
    /// A stored message.
    MessageId
);

crate::id_type!(
    /// A mailbox: a worker's own, or a team's.
    MailboxId
);

crate::id_type!(
    /// A worker (jeugdbeschermer).
    WorkerId
);

crate::id_type!(
    /// A partner organisation.
    OrganisationId
);

crate::id_type!(
    /// A message in the outbound queue.
    OutboundId
);

crate::id_type!(
    /// An API token (its id, never the token).
    TokenId
);

crate::id_type!(
    /// A worker's registered passkey (our id, not the authenticator's credential id).
    PasskeyId
);

crate::id_type!(
    /// An on-call alert.
    AlertId
);

crate::id_type!(
    /// One notification of an alert step or a duty notice (an SMS, a call, an e-mail).
    NotificationId
);

crate::id_type!(
    /// An on-call override.
    OverrideId
);

crate::text_enum! {
    /// Whose mailbox it is. Here beside `MailboxId` because an alias is read with the kind of the
    /// mailbox it delivers to.
    pub enum MailboxKind {
        /// A worker's personal mailbox.
        Worker = "worker",
        /// A team's shared mailbox (`aanmelding@`, `info@`).
        Team = "team",
    }
}
