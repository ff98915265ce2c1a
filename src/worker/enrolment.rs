//! Enrolment: a new worker with a personal mailbox, a first random alias, a one-time passphrase, a
//! TOTP secret, and the real contact details sealed to the server key; later aliases, one per case.

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use rand::rngs::OsRng;
use rand::Rng;
use serde::Serialize;

use super::credentials::{hash_off_thread, wrap_off_thread};
use super::markers::{enrolment_markers, insert_markers};
use super::{contact, Crypto, Handle, KeyCustody, Pseudonym, WorkerId, WorkerRef};
use crate::alias::{self, Address, Domain};
use crate::audit::{self, Action, Actor, Event};
use crate::clock::Millis;
use crate::crypto::Keyring;
use crate::error::{conflict_on_duplicate, Result};
use crate::mail::EmailAddress;
use crate::mailbox::{self, MailboxKind};
use crate::phone::PhoneNumber;
use crate::store::Store;
use crate::totp::TotpSecret;

const PASSPHRASE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

pub struct NewWorker {
    pub handle: Handle,
    pub pseudonym: Pseudonym,
    pub phone: PhoneNumber,
    pub email: EmailAddress,
    /// The worker's own age recipient when the key lives on their device; `None` to have the relay
    /// generate an identity wrapped under the worker's passphrase.
    pub recipient: Option<x25519::Recipient>,
}

/// What `worker add` prints once: the passphrase and TOTP secret are never shown again.
#[derive(Serialize)]
pub struct CreatedWorker {
    pub handle: String,
    pub pseudonym: String,
    pub alias: String,
    pub recipient: String,
    pub key_custody: KeyCustody,
    #[serde(serialize_with = "expose")]
    pub passphrase: SecretString,
    pub totp_uri: String,
}

fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

/// A fresh one-time passphrase: five groups of five characters, 31 symbols each (>120 bits).
pub fn generate_passphrase() -> SecretString {
    let groups: Vec<String> = (0..5)
        .map(|_| {
            (0..5)
                .map(|_| {
                    char::from(PASSPHRASE_ALPHABET[OsRng.gen_range(0..PASSPHRASE_ALPHABET.len())])
                })
                .collect()
        })
        .collect();
    SecretString::from(groups.join("-"))
}

pub async fn create(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    domain: &Domain,
    now: Millis,
    actor: &Actor,
    new: NewWorker,
) -> Result<CreatedWorker> {
    let passphrase = generate_passphrase();
    let passphrase_hash =
        hash_off_thread(&passphrase, crypto_ctx.server_key.passphrase_pepper()).await?;
    let (recipient, wrapped_identity, custody) = match new.recipient {
        Some(recipient) => (recipient, None, KeyCustody::Device),
        None => {
            let keyring = Keyring::single(x25519::Identity::generate());
            let wrapped =
                wrap_off_thread(&keyring, &passphrase, crypto_ctx.scrypt_work_factor).await?;
            (
                keyring.current().to_public(),
                Some(wrapped),
                KeyCustody::Server,
            )
        }
    };
    let totp = TotpSecret::generate();
    let totp_sealed = crypto_ctx.server_key.seal(totp.as_bytes())?;
    let contact_sealed = contact::seal(crypto_ctx.server_key, &new.phone, &new.email)?;

    let worker_id = WorkerId::random();
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::WorkerAdded, new.handle.as_str()).detail(match custody {
            KeyCustody::Server => "key=server-wrapped",
            KeyCustody::Device => "key=device",
        }),
    )
    .await?;
    let mailbox_id =
        mailbox::create(&mut wtx, MailboxKind::Worker, new.handle.as_str(), now).await?;
    sqlx::query(
        "INSERT INTO workers (id, handle, pseudonym, mailbox_id, recipient, wrapped_identity, \
         passphrase_hash, must_change_passphrase, totp_sealed, totp_last_step, contact_sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, 0, $9, $10)",
    )
    .bind(&worker_id)
    .bind(&new.handle)
    .bind(new.pseudonym.as_str())
    .bind(&mailbox_id)
    .bind(recipient.to_string())
    .bind(wrapped_identity)
    .bind(&passphrase_hash)
    .bind(totp_sealed)
    .bind(contact_sealed)
    .bind(now)
    .execute(wtx.conn())
    .await
    .map_err(|e| conflict_on_duplicate(e, "a worker with that handle already exists"))?;
    mailbox::add_member(&mut wtx, &mailbox_id, &worker_id, now).await?;
    insert_markers(
        &mut wtx,
        &worker_id,
        &enrolment_markers(crypto_ctx.server_key, &new.phone, &new.email),
    )
    .await?;
    let alias = alias::create_random(&mut wtx, &mailbox_id, domain, now).await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::AliasAdded, alias.as_str()).detail(new.handle.as_str()),
    )
    .await?;
    wtx.commit().await?;
    Ok(CreatedWorker {
        handle: new.handle.as_str().to_string(),
        pseudonym: new.pseudonym.as_str().to_string(),
        alias: alias.to_string(),
        recipient: recipient.to_string(),
        key_custody: custody,
        passphrase,
        totp_uri: totp.provisioning_uri("schuilnaam", new.handle.as_str()),
    })
}

/// A new random alias for a worker's mailbox (one per case).
pub async fn add_alias(
    store: &Store,
    domain: &Domain,
    now: Millis,
    actor: &Actor,
    worker: &WorkerRef,
) -> Result<Address> {
    let mut wtx = store.begin_write().await?;
    let address = alias::create_random(&mut wtx, &worker.mailbox_id, domain, now).await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, Action::AliasAdded, address.as_str()).detail(worker.handle.as_str()),
    )
    .await?;
    wtx.commit().await?;
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::MIN_PASSPHRASE_CHARS;

    #[test]
    fn generated_passphrases_are_long_and_distinct() {
        let a = generate_passphrase();
        let b = generate_passphrase();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 29);
        assert!(a.expose_secret().len() >= MIN_PASSPHRASE_CHARS);
    }
}
