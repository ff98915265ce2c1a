//! Aliases: the random, unlinkable addresses (`k7m2q9xd3abc@relay.example`) that stand between a
//! worker or team mailbox and the outside world. An alias can be burned at once; a burned alias refuses
//! everything exactly as an alias that never existed.

use std::fmt;

use rand::rngs::OsRng;
use rand::Rng;
use serde::Serialize;

use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{MailboxId, MailboxKind};
use crate::store::{Store, WriteTx};

/// Characters of a generated local part: lower-case letters and digits only, so an alias survives
/// case-folding mail systems and reads unambiguously over the phone.
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// 12 characters of 36 give 62 bits of CSPRNG output.
const GENERATED_LENGTH: usize = 12;

/// A mail domain, lower-cased and checked label by label.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    pub fn parse(text: &str) -> Result<Self> {
        let domain = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        let valid_label = |label: &&str| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(valid_label) {
            return Err(Error::invalid(
                "not a valid domain name (labels of letters, digits and hyphens, at least one dot)",
            ));
        }
        Ok(Self(domain))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An alias address on a relay domain: `local@domain`, lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let (local, domain) = text
            .rsplit_once('@')
            .ok_or_else(|| Error::invalid("an alias address has the form local@domain"))?;
        let local = LocalPart::parse(local)?;
        let domain = Domain::parse(domain)?;
        Ok(Self::from_parts(&local, &domain))
    }

    pub fn from_parts(local: &LocalPart, domain: &Domain) -> Self {
        Self(format!("{}@{}", local.0, domain.0))
    }

    /// A fresh random address on `domain`.
    pub fn generate(domain: &Domain) -> Self {
        let local: String = (0..GENERATED_LENGTH)
            .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
            .collect();
        Self::from_parts(&LocalPart(local), domain)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

crate::text_column!(Address, |a: &Address| a.0.as_str(), |t: String| {
    Address::parse(&t).ok()
});

/// The part before `@`: letters, digits and `. _ + -`, lower-cased, at most 64 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPart(String);

impl LocalPart {
    pub fn parse(text: &str) -> Result<Self> {
        let local = text.trim().to_ascii_lowercase();
        let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b);
        if local.is_empty()
            || local.len() > 64
            || !local.bytes().all(allowed)
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(Error::invalid(
                "not a valid local part (1-64 letters, digits or . _ + -)",
            ));
        }
        Ok(Self(local))
    }
}

/// What an incoming message to an address resolves to. `Burned` and `Unknown` are told apart for the
/// audit log only; every sender hears the same refusal for both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The address is live and delivers to this mailbox.
    Deliver {
        mailbox_id: MailboxId,
        /// Read with the alias, so that delivery knows without another query whether a message can
        /// raise an on-call alert.
        mailbox_kind: MailboxKind,
    },
    /// The address was burned.
    Burned,
    /// The address never existed (on this relay).
    Unknown,
}

/// Looks up the mailbox an address delivers to.
pub async fn resolve(store: &Store, address: &Address) -> Result<Resolution> {
    let row: Option<(MailboxId, Option<Millis>, MailboxKind)> = sqlx::query_as(
        "SELECT a.mailbox_id, a.burned_at, b.kind FROM aliases a \
         JOIN mailboxes b ON b.id = a.mailbox_id WHERE a.address = $1",
    )
    .bind(address)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        None => Resolution::Unknown,
        Some((_, Some(_burned_at), _)) => Resolution::Burned,
        Some((mailbox_id, None, mailbox_kind)) => Resolution::Deliver {
            mailbox_id,
            mailbox_kind,
        },
    })
}

/// Whether an address is live and delivers to `mailbox_id`, read inside a write transaction (which
/// holds the write lock, so a burn cannot slip in between this check and the commit).
pub async fn is_live_for(
    wtx: &mut WriteTx,
    address: &Address,
    mailbox_id: &MailboxId,
) -> Result<bool> {
    let live: Option<MailboxId> = sqlx::query_scalar(
        "SELECT mailbox_id FROM aliases WHERE address = $1 AND burned_at IS NULL",
    )
    .bind(address.as_str())
    .fetch_optional(wtx.conn())
    .await?;
    Ok(live.as_ref() == Some(mailbox_id))
}

/// Creates a random alias for a mailbox, drawing again on the (astronomically unlikely) collision.
pub async fn create_random(
    wtx: &mut WriteTx,
    mailbox_id: &MailboxId,
    domain: &Domain,
    now: Millis,
) -> Result<Address> {
    for _ in 0..8 {
        let address = Address::generate(domain);
        if insert(wtx, &address, mailbox_id, now).await? {
            return Ok(address);
        }
    }
    Err(Error::Conflict(
        "could not draw an unused alias; try again".into(),
    ))
}

/// Creates an alias with a chosen address (team aliases such as `aanmelding@`).
pub async fn create_named(
    wtx: &mut WriteTx,
    address: &Address,
    mailbox_id: &MailboxId,
    now: Millis,
) -> Result<()> {
    if insert(wtx, address, mailbox_id, now).await? {
        Ok(())
    } else {
        Err(Error::Conflict(format!("alias {address} already exists")))
    }
}

/// Inserts unless the address is taken (burned addresses stay taken: they are never reissued).
async fn insert(
    wtx: &mut WriteTx,
    address: &Address,
    mailbox_id: &MailboxId,
    now: Millis,
) -> Result<bool> {
    let result = sqlx::query(
        "INSERT INTO aliases (address, mailbox_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (address) DO NOTHING",
    )
    .bind(address.as_str())
    .bind(mailbox_id)
    .bind(now)
    .execute(wtx.conn())
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Burns a live alias. Returns the mailbox it belonged to.
pub async fn burn(wtx: &mut WriteTx, address: &Address, now: Millis) -> Result<MailboxId> {
    let mailbox: Option<MailboxId> = sqlx::query_scalar(
        "UPDATE aliases SET burned_at = $1 WHERE address = $2 AND burned_at IS NULL \
         RETURNING mailbox_id",
    )
    .bind(now)
    .bind(address.as_str())
    .fetch_optional(wtx.conn())
    .await?;
    mailbox.ok_or(Error::NotFound("live alias"))
}

/// Burns an alias and records who did it, in one transaction.
pub async fn burn_audited(
    store: &Store,
    now: Millis,
    actor: &crate::audit::Actor,
    address: &Address,
) -> Result<()> {
    let mut wtx = store.begin_write().await?;
    crate::audit::append(
        &mut wtx,
        now,
        crate::audit::Event::new(actor, crate::audit::Action::AliasBurned, address.as_str()),
    )
    .await?;
    burn(&mut wtx, address, now).await?;
    wtx.commit().await
}

#[derive(Clone, Debug, Serialize)]
pub struct AliasInfo {
    pub address: String,
    pub created_at: String,
    pub burned: bool,
}

#[derive(sqlx::FromRow)]
struct AliasRow {
    address: String,
    created_at: Millis,
    burned_at: Option<Millis>,
}

pub async fn list_for_mailbox(store: &Store, mailbox_id: &MailboxId) -> Result<Vec<AliasInfo>> {
    let rows: Vec<AliasRow> = sqlx::query_as(
        "SELECT address, created_at, burned_at FROM aliases WHERE mailbox_id = $1 \
         ORDER BY created_at, address",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AliasInfo {
            address: row.address,
            created_at: crate::clock::rfc3339(row.created_at),
            burned: row.burned_at.is_some(),
        })
        .collect())
}

/// Longest purpose note on an alias, in characters.
pub const MAX_NOTE_CHARS: usize = 500;

/// Sets (or, when empty, removes) the purpose note of an alias of `mailbox_id`, sealed to the
/// worker's own recipient: only their identity opens it. `NotFound` for an alias of another mailbox.
pub async fn set_note(
    store: &Store,
    now: Millis,
    actor: &crate::audit::Actor,
    mailbox_id: &MailboxId,
    address: &Address,
    note: &str,
    recipient: &age::x25519::Recipient,
) -> Result<()> {
    let note = note.trim();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(Error::invalid(format!(
            "a note has at most {MAX_NOTE_CHARS} characters"
        )));
    }
    if &mailbox_of(store, address).await? != mailbox_id {
        return Err(Error::NotFound("alias"));
    }
    let sealed = if note.is_empty() {
        None
    } else {
        Some(crate::crypto::seal(
            std::slice::from_ref(recipient),
            note.as_bytes(),
        )?)
    };
    let mut wtx = store.begin_write().await?;
    crate::audit::append(
        &mut wtx,
        now,
        crate::audit::Event::new(actor, crate::audit::Action::AliasNoteSet, address.as_str()),
    )
    .await?;
    sqlx::query("DELETE FROM alias_notes WHERE alias = $1")
        .bind(address.as_str())
        .execute(wtx.conn())
        .await?;
    if let Some(sealed) = sealed {
        sqlx::query("INSERT INTO alias_notes (alias, sealed, updated_at) VALUES ($1, $2, $3)")
            .bind(address.as_str())
            .bind(sealed)
            .bind(now)
            .execute(wtx.conn())
            .await?;
    }
    wtx.commit().await
}

/// The sealed purpose notes of a mailbox's aliases, by address.
pub async fn notes_for_mailbox(
    store: &Store,
    mailbox_id: &MailboxId,
) -> Result<std::collections::HashMap<String, Vec<u8>>> {
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT n.alias, n.sealed FROM alias_notes n JOIN aliases a ON a.address = n.alias \
         WHERE a.mailbox_id = $1",
    )
    .bind(mailbox_id)
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().collect())
}

/// The mailbox an alias belongs to, burned or not (for administration, never for delivery).
pub async fn mailbox_of(store: &Store, address: &Address) -> Result<MailboxId> {
    sqlx::query_scalar("SELECT mailbox_id FROM aliases WHERE address = $1")
        .bind(address.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("alias"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_addresses_are_random_lowercase_and_long_enough() {
        let domain = Domain::parse("relay.example").unwrap();
        let a = Address::generate(&domain);
        let b = Address::generate(&domain);
        assert_ne!(a, b);
        let (local, host) = a.as_str().split_once('@').unwrap();
        assert_eq!(host, "relay.example");
        assert_eq!(local.len(), GENERATED_LENGTH);
        assert!(local
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        // 36^12 > 2^60
        assert!((GENERATED_LENGTH as f64) * 36f64.log2() >= 60.0);
        assert_eq!(Address::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn addresses_are_normalised_and_validated() {
        assert_eq!(
            Address::parse(" Aanmelding@Relay.Example. ")
                .unwrap()
                .as_str(),
            "aanmelding@relay.example"
        );
        for bad in [
            "",
            "noatsign",
            "@relay.example",
            "a@",
            "a@localhost",
            "a b@relay.example",
            ".a@relay.example",
            "a..b@relay.example",
            "a@-relay.example",
            "a@relay..example",
            "a@re_lay.example",
            "<script>@relay.example",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@relay.example", "a".repeat(65));
        assert!(Address::parse(&long).is_err());
    }
}
