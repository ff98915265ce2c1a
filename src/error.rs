//! The library's error: what went wrong in a domain operation. The HTTP boundary maps it to responses
//! in `web::error`, the CLI prints it. Messages never carry message content, real identities or secrets.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that does not have the required shape; the text says which rule it broke.
    #[error("{0}")]
    Invalid(String),
    /// The named thing does not exist (or the caller may not see it: the two are not told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The operation clashes with existing state (a handle already taken, …).
    #[error("{0}")]
    Conflict(String),
    /// A mailbox with nobody to seal its messages to (a team without members).
    #[error("the mailbox has no members to seal to")]
    EmptyMailbox,
    /// The alias was burned while a message to it was being sealed.
    #[error("the alias is no longer live")]
    AliasGone,
    /// The sending organisation was disabled, or its certificate unpinned, while a message from it was
    /// being sealed.
    #[error("the sender is no longer accepted")]
    SenderRevoked,
    /// The transaction that would have stored a message did not commit (the cause is logged).
    #[error("the message could not be stored")]
    CommitFailed,
    #[error("database error")]
    Store(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Too much expensive work at once (passphrase computations, the CPU pool): try again shortly.
    #[error("the relay is busy; try again in a moment")]
    Busy,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

/// An error and its sources on one line, for the log and the command line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// True when a database error is a unique-constraint violation, on either backend.
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db| db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Turns a unique violation into a `Conflict` with the given explanation; other errors pass through.
pub fn conflict_on_duplicate(error: sqlx::Error, explanation: &str) -> Error {
    if is_unique_violation(&error) {
        Error::Conflict(explanation.to_string())
    } else {
        Error::Store(error)
    }
}
