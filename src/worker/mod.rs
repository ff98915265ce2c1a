//! Workers (jeugdbeschermers): a pseudonymous handle, a pseudonym shown to the outside, their own
//! mailbox with a first random alias, and the credentials that unlock it. The real name is never
//! stored; the real phone and e-mail are sealed to the server key (for content-free notifications).

use std::fmt;

pub mod contact;
mod credentials;
mod enrolment;
mod markers;
pub mod passkeys;
mod second_factor;

use serde::Serialize;

pub use credentials::{
    authenticate, change_passphrase, confirm_passphrase, credentials, record_login_failure,
    revoke_api_tokens, Credentials, LoggedIn, LoginFailure, PasskeyProof, SecondFactor,
    MIN_PASSPHRASE_CHARS,
};
pub use enrolment::{add_alias, create, generate_passphrase, CreatedWorker, NewWorker};
pub use markers::{marker_counts, markers, set_markers};
pub use second_factor::replace_totp;

pub use crate::ids::WorkerId;

use crate::clock::Millis;
use crate::crypto::ServerKey;
use crate::error::{Error, Result};
use crate::ids::MailboxId;
use crate::store::{Flag, Store};

/// A worker's login handle: 2–32 of `a-z 0-9 -`, starting with a letter or digit. It is a pseudonymous
/// account name (`w17`), never a real name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Handle(String);

impl Handle {
    pub fn parse(text: &str) -> Result<Self> {
        let handle = text.trim().to_ascii_lowercase();
        let valid = (2..=32).contains(&handle.len())
            && handle
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !handle.starts_with('-');
        if !valid {
            return Err(Error::invalid(
                "a handle has 2 to 32 characters: a-z, 0-9 and -, not starting with -",
            ));
        }
        Ok(Self(handle))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name the outside world sees ("LET-medewerker 17"): 1–64 printable characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Pseudonym(String);

impl Pseudonym {
    pub fn parse(text: &str) -> Result<Self> {
        let pseudonym = text.trim();
        if pseudonym.is_empty()
            || pseudonym.chars().count() > 64
            || pseudonym.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "a pseudonym has 1 to 64 printable characters",
            ));
        }
        Ok(Self(pseudonym.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyCustody {
    /// The identity is stored wrapped under the passphrase; logging in unlocks it for the session.
    Server,
    /// The identity never reaches the relay.
    Device,
}

pub struct Crypto<'a> {
    pub server_key: &'a ServerKey,
    pub scrypt_work_factor: u8,
}

crate::text_column!(Handle, |h: &Handle| h.0.as_str(), |t: String| {
    Handle::parse(&t).ok()
});

/// A worker's identifiers, as administration needs them.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct WorkerRef {
    pub id: WorkerId,
    pub handle: Handle,
    pub mailbox_id: MailboxId,
    pub recipient: String,
}

pub async fn find(store: &Store, handle: &Handle) -> Result<WorkerRef> {
    sqlx::query_as("SELECT id, handle, mailbox_id, recipient FROM workers WHERE handle = $1")
        .bind(handle)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("worker"))
}

/// The pseudonym to send under from `alias`, when the alias is live and belongs to a mailbox the worker
/// is a member of (their own, or a team's); `None` otherwise.
pub async fn pseudonym_sending_from(
    store: &Store,
    worker_id: &WorkerId,
    alias: &crate::alias::Address,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT w.pseudonym FROM aliases a \
         JOIN mailbox_members m ON m.mailbox_id = a.mailbox_id \
         JOIN workers w ON w.id = m.worker_id \
         WHERE a.address = $1 AND a.burned_at IS NULL AND m.worker_id = $2",
    )
    .bind(alias.as_str())
    .bind(worker_id)
    .fetch_optional(store.pool())
    .await?)
}

/// A worker's personal mailbox, by worker id.
pub async fn mailbox_of(store: &Store, worker_id: &WorkerId) -> Result<MailboxId> {
    sqlx::query_scalar("SELECT mailbox_id FROM workers WHERE id = $1")
        .bind(worker_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("worker"))
}

#[derive(Serialize)]
pub struct WorkerInfo {
    pub handle: String,
    pub pseudonym: String,
    pub key_custody: KeyCustody,
    pub created_at: String,
}

#[derive(sqlx::FromRow)]
struct WorkerRow {
    handle: String,
    pseudonym: String,
    device: Flag,
    created_at: Millis,
}

pub async fn list(store: &Store) -> Result<Vec<WorkerInfo>> {
    let rows: Vec<WorkerRow> = sqlx::query_as(
        "SELECT handle, pseudonym, CASE WHEN wrapped_identity IS NULL THEN 1 ELSE 0 END AS device, \
         created_at FROM workers ORDER BY handle",
    )
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| WorkerInfo {
            handle: row.handle,
            pseudonym: row.pseudonym,
            key_custody: if row.device.into() {
                KeyCustody::Device
            } else {
                KeyCustody::Server
            },
            created_at: crate::clock::rfc3339(row.created_at),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_pseudonymous_account_names() {
        assert_eq!(Handle::parse(" W17 ").unwrap().as_str(), "w17");
        for bad in [
            "",
            "a",
            "-w17",
            "w 17",
            "w_17",
            "jan.jansen",
            &"x".repeat(33),
        ] {
            assert!(Handle::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pseudonyms_are_bounded() {
        assert!(Pseudonym::parse("LET-medewerker 17").is_ok());
        assert!(Pseudonym::parse(" ").is_err());
        assert!(Pseudonym::parse(&"x".repeat(65)).is_err());
    }
}
