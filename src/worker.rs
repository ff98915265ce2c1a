//! Workers (jeugdbeschermers): a pseudonymous handle, a pseudonym shown to the outside, their own
//! mailbox with a first random alias, and the credentials that unlock it. The real name is never
//! stored; the real phone and e-mail are sealed to the server key (for content-free notifications).

use std::fmt;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use rand::rngs::OsRng;
use rand::Rng;
use serde::Serialize;
use sqlx::Row as _;

use crate::alias::{self, Address, Domain};
use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::crypto::{self, Keyring, ServerKey};
use crate::error::{conflict_on_duplicate, Error, Result};
use crate::mail::EmailAddress;
use crate::phone::PhoneNumber;
use crate::store::Store;
use crate::totp::TotpSecret;

/// Shortest passphrase a worker may choose.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
const PASSPHRASE_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";

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

pub struct NewWorker {
    pub handle: Handle,
    pub pseudonym: Pseudonym,
    pub phone: PhoneNumber,
    pub email: EmailAddress,
    /// The worker's own age recipient when the key lives on their device; `None` to have the relay
    /// generate an identity wrapped under the worker's passphrase.
    pub recipient: Option<x25519::Recipient>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyCustody {
    /// The identity is stored wrapped under the passphrase; logging in unlocks it for the session.
    Server,
    /// The identity never reaches the relay.
    Device,
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

/// Real contact details, sealed to the server key.
#[derive(Serialize, serde::Deserialize)]
struct SealedContact {
    phone: String,
    email: String,
}

/// A worker's real contact details, for notifications and the leak guard only.
pub struct Contact {
    pub phone: PhoneNumber,
    pub email: EmailAddress,
}

/// Opens a worker's sealed contact details with the server key.
pub fn open_contact(keys: &ServerKey, sealed: &[u8]) -> Result<Contact> {
    let plain = keys.open(sealed)?;
    let contact: SealedContact = serde_json::from_slice(&plain)
        .map_err(|_| Error::Crypto("unreadable contact details".into()))?;
    Ok(Contact {
        phone: PhoneNumber::parse(&contact.phone)?,
        email: EmailAddress::parse(&contact.email)?,
    })
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

pub struct Crypto<'a> {
    pub server_key: &'a ServerKey,
    pub scrypt_work_factor: u8,
}

/// argon2id off the async threads (64 MiB, tens of milliseconds).
async fn hash_off_thread(passphrase: &SecretString, pepper: &[u8]) -> Result<String> {
    let (passphrase, pepper) = (passphrase.clone(), zeroize::Zeroizing::new(pepper.to_vec()));
    tokio::task::spawn_blocking(move || crypto::hash_passphrase(&passphrase, &pepper))
        .await
        .map_err(|_| Error::Crypto("passphrase hashing did not finish".into()))?
}

async fn verify_off_thread(passphrase: &SecretString, hash: String, pepper: &[u8]) -> Result<bool> {
    let (passphrase, pepper) = (passphrase.clone(), zeroize::Zeroizing::new(pepper.to_vec()));
    tokio::task::spawn_blocking(move || crypto::verify_passphrase(&passphrase, &hash, &pepper))
        .await
        .map_err(|_| Error::Crypto("passphrase check did not finish".into()))
}

/// age scrypt wrapping off the async threads (work factor 18: about a second, 256 MiB).
async fn wrap_off_thread(
    keyring: &Keyring,
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<Vec<u8>> {
    let (keyring, passphrase) = (keyring.clone(), passphrase.clone());
    tokio::task::spawn_blocking(move || crypto::wrap_keyring(&keyring, &passphrase, work_factor))
        .await
        .map_err(|_| Error::Crypto("identity wrapping did not finish".into()))?
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
    let contact = serde_json::to_vec(&SealedContact {
        phone: new.phone.as_str().to_string(),
        email: new.email.as_str().to_string(),
    })
    .expect("plain struct serialises");
    let contact_sealed = crypto_ctx.server_key.seal(&contact)?;

    let worker_id = crypto::random_id();
    let mailbox_id = crypto::random_id();
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "worker.added", new.handle.as_str()).detail(match custody {
            KeyCustody::Server => "key=server-wrapped",
            KeyCustody::Device => "key=device",
        }),
    )
    .await?;
    sqlx::query("INSERT INTO mailboxes (id, kind, name, created_at) VALUES ($1, 'worker', $2, $3)")
        .bind(&mailbox_id)
        .bind(new.handle.as_str())
        .bind(now)
        .execute(wtx.conn())
        .await
        .map_err(|e| conflict_on_duplicate(e, "a worker with that handle already exists"))?;
    sqlx::query(
        "INSERT INTO workers (id, handle, pseudonym, mailbox_id, recipient, wrapped_identity, \
         passphrase_hash, must_change_passphrase, totp_sealed, totp_last_step, contact_sealed, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, 0, $9, $10)",
    )
    .bind(&worker_id)
    .bind(new.handle.as_str())
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
    sqlx::query(
        "INSERT INTO mailbox_members (mailbox_id, worker_id, joined_at) VALUES ($1, $2, $3)",
    )
    .bind(&mailbox_id)
    .bind(&worker_id)
    .bind(now)
    .execute(wtx.conn())
    .await?;
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
        Event::new(actor, "alias.added", alias.as_str()).detail(new.handle.as_str()),
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

/// A worker's identifiers, as administration needs them.
#[derive(Clone, Debug)]
pub struct WorkerRef {
    pub id: String,
    pub handle: Handle,
    pub mailbox_id: String,
    pub recipient: String,
}

pub async fn find(store: &Store, handle: &Handle) -> Result<WorkerRef> {
    let row = sqlx::query("SELECT id, mailbox_id, recipient FROM workers WHERE handle = $1")
        .bind(handle.as_str())
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("worker"))?;
    Ok(WorkerRef {
        id: row.try_get("id")?,
        handle: handle.clone(),
        mailbox_id: row.try_get("mailbox_id")?,
        recipient: row.try_get("recipient")?,
    })
}

/// A worker's personal mailbox, by worker id.
pub async fn mailbox_of(store: &Store, worker_id: &str) -> Result<String> {
    sqlx::query_scalar("SELECT mailbox_id FROM workers WHERE id = $1")
        .bind(worker_id)
        .fetch_optional(store.pool())
        .await?
        .ok_or(Error::NotFound("worker"))
}

// ---- identity markers (for the leak guard) --------------------------------------------------------

use crate::mail::leak::{self, MarkerKind};

/// The worker's markers as (kind, keyed hash).
pub async fn markers(
    store: &Store,
    worker_id: &str,
) -> Result<std::collections::HashSet<(MarkerKind, String)>> {
    let rows = sqlx::query("SELECT kind, hmac FROM identity_markers WHERE worker_id = $1")
        .bind(worker_id)
        .fetch_all(store.pool())
        .await?;
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("kind")?;
            let kind =
                MarkerKind::parse(&kind).ok_or(Error::Crypto("unknown marker kind".into()))?;
            Ok((kind, row.try_get("hmac")?))
        })
        .collect()
}

/// Replaces the markers the worker registered; the real phone and e-mail given at enrolment are
/// always markers too. Returns how many hashes are stored per kind.
pub async fn set_markers(
    store: &Store,
    keys: &ServerKey,
    now: Millis,
    worker_id: &str,
    handle: &str,
    entries: &[(MarkerKind, String)],
) -> Result<Vec<(MarkerKind, usize)>> {
    let contact_sealed: Vec<u8> =
        sqlx::query_scalar("SELECT contact_sealed FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_one(store.pool())
            .await?;
    let contact = open_contact(keys, &contact_sealed)?;
    let mut hashes = std::collections::BTreeSet::new();
    let enrolled = [
        (MarkerKind::Phone, contact.phone.as_str().to_string()),
        (MarkerKind::Email, contact.email.as_str().to_string()),
    ];
    for (kind, text) in entries.iter().chain(enrolled.iter()) {
        let forms = leak::normalise(*kind, text)
            .map_err(|e| Error::invalid(format!("{} marker: {e}", kind.as_str())))?;
        for form in forms {
            hashes.insert((kind.as_str(), leak::marker_hash(keys, *kind, &form)));
        }
    }
    let mut wtx = store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            "worker.markers_set",
            handle,
        )
        .detail(&format!("count={}", hashes.len())),
    )
    .await?;
    sqlx::query("DELETE FROM identity_markers WHERE worker_id = $1")
        .bind(worker_id)
        .execute(wtx.conn())
        .await?;
    insert_markers(&mut wtx, worker_id, &hashes).await?;
    wtx.commit().await?;
    Ok(count_by_kind(&hashes))
}

async fn insert_markers(
    wtx: &mut crate::store::WriteTx,
    worker_id: &str,
    hashes: &std::collections::BTreeSet<(&'static str, String)>,
) -> Result<()> {
    for (kind, hash) in hashes {
        sqlx::query("INSERT INTO identity_markers (worker_id, kind, hmac) VALUES ($1, $2, $3)")
            .bind(worker_id)
            .bind(*kind)
            .bind(hash)
            .execute(wtx.conn())
            .await?;
    }
    Ok(())
}

fn count_by_kind(
    hashes: &std::collections::BTreeSet<(&'static str, String)>,
) -> Vec<(MarkerKind, usize)> {
    [
        MarkerKind::Name,
        MarkerKind::Phone,
        MarkerKind::Email,
        MarkerKind::Town,
        MarkerKind::Plate,
    ]
    .into_iter()
    .map(|kind| {
        (
            kind,
            hashes.iter().filter(|(k, _)| *k == kind.as_str()).count(),
        )
    })
    .collect()
}

/// The marker hashes of the enrolment contact details (real phone and e-mail).
fn enrolment_markers(
    keys: &ServerKey,
    phone: &PhoneNumber,
    email: &EmailAddress,
) -> std::collections::BTreeSet<(&'static str, String)> {
    [
        (MarkerKind::Phone, phone.as_str().to_string()),
        (MarkerKind::Email, email.canonical()),
    ]
    .into_iter()
    .map(|(kind, form)| (kind.as_str(), leak::marker_hash(keys, kind, &form)))
    .collect()
}

#[derive(Serialize)]
pub struct WorkerInfo {
    pub handle: String,
    pub pseudonym: String,
    pub key_custody: KeyCustody,
    pub created_at: String,
}

pub async fn list(store: &Store) -> Result<Vec<WorkerInfo>> {
    let rows = sqlx::query(
        "SELECT handle, pseudonym, CASE WHEN wrapped_identity IS NULL THEN 1 ELSE 0 END AS device, created_at FROM workers ORDER BY handle",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(WorkerInfo {
                handle: row.try_get("handle")?,
                pseudonym: row.try_get("pseudonym")?,
                key_custody: if row.try_get::<i64, _>("device")? != 0 {
                    KeyCustody::Device
                } else {
                    KeyCustody::Server
                },
                created_at: crate::clock::rfc3339(row.try_get("created_at")?),
            })
        })
        .collect()
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
        Event::new(actor, "alias.added", address.as_str()).detail(worker.handle.as_str()),
    )
    .await?;
    wtx.commit().await?;
    Ok(address)
}

/// What a successful login yields.
pub struct Authenticated {
    pub worker_id: String,
    pub handle: Handle,
    pub keyring: Option<Keyring>,
    pub must_change_passphrase: bool,
}

/// What the store knows about a worker's login; fetched first, so that the rate limiter knows whether
/// the handle exists before any expensive work.
pub struct Credentials {
    id: String,
    passphrase_hash: String,
    wrapped_identity: Option<Vec<u8>>,
    totp_sealed: Vec<u8>,
    totp_last_step: i64,
    must_change: bool,
}

pub async fn credentials(store: &Store, handle: &Handle) -> Result<Option<Credentials>> {
    let row = sqlx::query(
        "SELECT id, passphrase_hash, wrapped_identity, totp_sealed, totp_last_step, \
         must_change_passphrase FROM workers WHERE handle = $1",
    )
    .bind(handle.as_str())
    .fetch_optional(store.pool())
    .await?;
    row.map(|row| {
        Ok(Credentials {
            id: row.try_get("id")?,
            passphrase_hash: row.try_get("passphrase_hash")?,
            wrapped_identity: row.try_get("wrapped_identity")?,
            totp_sealed: row.try_get("totp_sealed")?,
            totp_last_step: row.try_get("totp_last_step")?,
            must_change: crate::store::flag(row.try_get("must_change_passphrase")?),
        })
    })
    .transpose()
}

/// Why a login failed, for the audit log only: the client always hears the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownHandle,
    Passphrase,
    Totp,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownHandle => "unknown-handle",
            LoginFailure::Passphrase => "passphrase",
            LoginFailure::Totp => "totp",
        }
    }
}

/// Checks passphrase and TOTP against the credentials (`None`: the handle does not exist); unlocks the
/// identity on success. The work (argon2, scrypt) runs off the async threads; an unknown handle costs
/// an argon2 verification like a known one.
pub async fn authenticate(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    handle: &Handle,
    creds: Option<Credentials>,
    passphrase: SecretString,
    totp_code: &str,
    now: Millis,
) -> Result<std::result::Result<Authenticated, LoginFailure>> {
    let hash = creds
        .as_ref()
        .map(|c| c.passphrase_hash.clone())
        .unwrap_or_else(|| crypto::decoy_passphrase_hash().to_string());
    let passphrase_ok =
        verify_off_thread(&passphrase, hash, crypto_ctx.server_key.passphrase_pepper()).await?;
    let Some(creds) = creds else {
        return Ok(Err(LoginFailure::UnknownHandle));
    };
    if !passphrase_ok {
        return Ok(Err(LoginFailure::Passphrase));
    }
    let totp = TotpSecret::from_bytes(&crypto_ctx.server_key.open(&creds.totp_sealed)?);
    let Some(step) = totp.verify(totp_code, now, creds.totp_last_step) else {
        return Ok(Err(LoginFailure::Totp));
    };
    // Claim the step; a concurrent login with the same code loses here.
    let claimed = {
        let mut wtx = store.begin_write().await?;
        audit::append(
            &mut wtx,
            now,
            Event::new(
                &Actor::Worker(handle.to_string()),
                "login.success",
                handle.as_str(),
            ),
        )
        .await?;
        let updated = sqlx::query(
            "UPDATE workers SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(&creds.id)
        .execute(wtx.conn())
        .await?;
        if updated.rows_affected() == 1 {
            wtx.commit().await?;
            true
        } else {
            false
        }
    };
    if !claimed {
        return Ok(Err(LoginFailure::Totp));
    }
    let keyring = match creds.wrapped_identity {
        Some(wrapped) => {
            let max_work_factor = crypto_ctx.scrypt_work_factor.saturating_add(2);
            let unwrapped = tokio::task::spawn_blocking(move || {
                crypto::unwrap_keyring(&wrapped, &passphrase, max_work_factor)
            })
            .await
            .map_err(|_| Error::Crypto("identity unwrap did not finish".into()))??;
            Some(unwrapped)
        }
        None => None,
    };
    Ok(Ok(Authenticated {
        worker_id: creds.id,
        handle: handle.clone(),
        keyring,
        must_change_passphrase: creds.must_change,
    }))
}

/// Records a failed login (every attempt is audited; the typed handle only when it exists).
pub async fn record_login_failure(
    store: &Store,
    now: Millis,
    handle: Option<&Handle>,
    failure: LoginFailure,
) -> Result<()> {
    let (actor, subject) = match (failure, handle) {
        (LoginFailure::UnknownHandle, _) | (_, None) => {
            (Actor::Anonymous, "unknown-handle".to_string())
        }
        (_, Some(handle)) => (Actor::Worker(handle.to_string()), handle.to_string()),
    };
    audit::record(
        store,
        now,
        Event::new(&actor, "login.failure", &subject).detail(failure.as_str()),
    )
    .await
}

/// Changes the passphrase after checking the current one. A server-held keyring is rotated: a fresh
/// identity becomes current (new messages are sealed to it) and the ring, wrapped under the new
/// passphrase, keeps the old ones for older messages. So whoever knew the old passphrase (the
/// administrator who handed out the one-time passphrase, or a thief) and holds a copy of the database
/// can open at most what arrived before the change. Returns the new keyring for the session.
pub async fn change_passphrase(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    now: Millis,
    worker_id: &str,
    current: SecretString,
    new: SecretString,
    unlocked: Option<&Keyring>,
) -> Result<Option<Keyring>> {
    if new.expose_secret().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::invalid(format!(
            "the new passphrase needs at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    if new.expose_secret() == current.expose_secret() {
        return Err(Error::invalid(
            "the new passphrase must differ from the current one",
        ));
    }
    let row = sqlx::query(
        "SELECT handle, passphrase_hash, CASE WHEN wrapped_identity IS NULL THEN 0 ELSE 1 END AS wrapped FROM workers WHERE id = $1",
    )
    .bind(worker_id)
    .fetch_one(store.pool())
    .await?;
    let handle: String = row.try_get("handle")?;
    let hash: String = row.try_get("passphrase_hash")?;
    let has_wrapped = row.try_get::<i64, _>("wrapped")? != 0;
    let pepper = crypto_ctx.server_key.passphrase_pepper();
    let actor = Actor::Worker(handle.clone());
    if !verify_off_thread(&current, hash, pepper).await? {
        audit::record(
            store,
            now,
            Event::new(&actor, "worker.passphrase_change_failed", &handle)
                .detail("current passphrase"),
        )
        .await?;
        return Err(Error::invalid("the current passphrase is not correct"));
    }
    let rotated = match (has_wrapped, unlocked) {
        (false, _) => None,
        (true, Some(keyring)) => {
            let rotated = keyring.rotated();
            let wrapped = wrap_off_thread(&rotated, &new, crypto_ctx.scrypt_work_factor).await?;
            Some((rotated, wrapped))
        }
        (true, None) => {
            return Err(Error::Conflict(
                "log in with your passphrase (not an API token) to change it".into(),
            ))
        }
    };
    let new_hash = hash_off_thread(&new, pepper).await?;
    let mut wtx = store.begin_write().await?;
    // API tokens minted under the old passphrase end with it.
    let revoked = sqlx::query("DELETE FROM api_tokens WHERE worker_id = $1")
        .bind(worker_id)
        .execute(wtx.conn())
        .await?
        .rows_affected();
    audit::append(
        &mut wtx,
        now,
        Event::new(&actor, "worker.passphrase_changed", &handle).detail(&format!(
            "api_tokens_revoked={revoked} key_rotated={}",
            rotated.is_some()
        )),
    )
    .await?;
    let (new_recipient, new_wrapped) = match &rotated {
        Some((keyring, wrapped)) => (
            Some(keyring.current().to_public().to_string()),
            Some(wrapped.clone()),
        ),
        None => (None, None),
    };
    sqlx::query(
        "UPDATE workers SET passphrase_hash = $1, wrapped_identity = COALESCE($2, wrapped_identity), \
         recipient = COALESCE($3, recipient), must_change_passphrase = 0 WHERE id = $4",
    )
    .bind(new_hash)
    .bind(new_wrapped)
    .bind(new_recipient)
    .bind(worker_id)
    .execute(wtx.conn())
    .await?;
    wtx.commit().await?;
    Ok(rotated.map(|(keyring, _)| keyring))
}

/// Revokes every API token of a worker (a lost laptop); returns how many.
pub async fn revoke_api_tokens(
    store: &Store,
    now: Millis,
    actor: &Actor,
    worker: &WorkerRef,
) -> Result<u64> {
    let mut wtx = store.begin_write().await?;
    let revoked = sqlx::query("DELETE FROM api_tokens WHERE worker_id = $1")
        .bind(&worker.id)
        .execute(wtx.conn())
        .await?
        .rows_affected();
    audit::append(
        &mut wtx,
        now,
        Event::new(actor, "worker.api_tokens_revoked", worker.handle.as_str())
            .detail(&format!("count={revoked}")),
    )
    .await?;
    wtx.commit().await?;
    Ok(revoked)
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
    fn generated_passphrases_are_long_and_distinct() {
        let a = generate_passphrase();
        let b = generate_passphrase();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(a.expose_secret().len(), 29);
        assert!(a.expose_secret().len() >= MIN_PASSPHRASE_CHARS);
    }

    #[test]
    fn pseudonyms_are_bounded() {
        assert!(Pseudonym::parse("LET-medewerker 17").is_ok());
        assert!(Pseudonym::parse(" ").is_err());
        assert!(Pseudonym::parse(&"x".repeat(65)).is_err());
    }
}
