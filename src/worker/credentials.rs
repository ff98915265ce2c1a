//! Credentials: logging in (passphrase, TOTP, unlocking a server-held identity), recording failed
//! attempts, changing the passphrase (which rotates a server-held key), revoking API tokens. The
//! expensive key derivations run off the async threads.

use super::{passkeys, Crypto, Handle, WorkerId, WorkerRef};
use crate::audit::{self, Action, Actor, AuditQueue, Event};
use crate::clock::Millis;
use crate::crypto::{self, Keyring};
use crate::error::{Error, Result};
use crate::store::{Flag, Store, WriteTx};
use crate::totp::TotpSecret;
use crate::webauthn::{self, Assertion, Challenge, PublicKey, RelyingParty};
use age::secrecy::{ExposeSecret, SecretString};

/// Shortest passphrase a worker may choose.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// argon2id off the async threads (64 MiB, tens of milliseconds).
pub(super) async fn hash_off_thread(passphrase: &SecretString, pepper: &[u8]) -> Result<String> {
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
pub(super) async fn wrap_off_thread(
    keyring: &Keyring,
    passphrase: &SecretString,
    work_factor: u8,
) -> Result<Vec<u8>> {
    let (keyring, passphrase) = (keyring.clone(), passphrase.clone());
    tokio::task::spawn_blocking(move || crypto::wrap_keyring(&keyring, &passphrase, work_factor))
        .await
        .map_err(|_| Error::Crypto("identity wrapping did not finish".into()))?
}

/// What a successful login yields.
pub struct LoggedIn {
    pub worker_id: WorkerId,
    pub handle: Handle,
    pub keyring: Option<Keyring>,
    pub must_change_passphrase: bool,
}

/// What the store knows about a worker's login; fetched first, so that the rate limiter knows whether
/// the handle exists before any expensive work.
#[derive(sqlx::FromRow)]
pub struct Credentials {
    id: WorkerId,
    passphrase_hash: String,
    wrapped_identity: Option<Vec<u8>>,
    totp_sealed: Vec<u8>,
    totp_last_step: i64,
    must_change_passphrase: Flag,
}

pub async fn credentials(store: &Store, handle: &Handle) -> Result<Option<Credentials>> {
    Ok(sqlx::query_as(
        "SELECT id, passphrase_hash, wrapped_identity, totp_sealed, totp_last_step, \
         must_change_passphrase FROM workers WHERE handle = $1",
    )
    .bind(handle)
    .fetch_optional(store.pool())
    .await?)
}

/// Why a login failed, for the audit log only: the client always hears the same thing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginFailure {
    UnknownHandle,
    Passphrase,
    Totp,
    Passkey,
}

impl LoginFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            LoginFailure::UnknownHandle => "unknown-handle",
            LoginFailure::Passphrase => "passphrase",
            LoginFailure::Totp => "totp",
            LoginFailure::Passkey => "passkey",
        }
    }
}

/// The second factor a login brings after the passphrase.
pub enum SecondFactor {
    /// A code from the authenticator app.
    Totp(String),
    /// A passkey's answer to the challenge the login page issued.
    Passkey(PasskeyProof),
}

/// A passkey assertion with what it must be checked against.
pub struct PasskeyProof {
    pub relying_party: RelyingParty,
    /// The challenge this login's page issued (a random one when the submitted challenge was not
    /// ours, so that the check fails the same way).
    pub challenge: Challenge,
    pub credential_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    pub authenticator_data: Vec<u8>,
    pub signature: Vec<u8>,
}

impl PasskeyProof {
    fn assertion(&self) -> Assertion<'_> {
        Assertion {
            client_data_json: &self.client_data_json,
            authenticator_data: &self.authenticator_data,
            signature: &self.signature,
        }
    }
}

/// Checks passphrase and second factor against the credentials (`None`: the handle does not exist);
/// unlocks the identity on success. The work (argon2, scrypt) runs off the async threads; an unknown
/// handle costs an argon2 verification like a known one.
pub async fn authenticate(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    handle: &Handle,
    creds: Option<Credentials>,
    passphrase: SecretString,
    factor: &SecondFactor,
    now: Millis,
) -> Result<std::result::Result<LoggedIn, LoginFailure>> {
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
    let claimed = match factor {
        SecondFactor::Totp(code) => {
            claim_totp(store, crypto_ctx, handle, &creds, code, now).await?
        }
        SecondFactor::Passkey(proof) => claim_passkey(store, handle, &creds, proof, now).await?,
    };
    if let Err(failure) = claimed {
        return Ok(Err(failure));
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
    Ok(Ok(LoggedIn {
        worker_id: creds.id,
        handle: handle.clone(),
        keyring,
        must_change_passphrase: creds.must_change_passphrase.into(),
    }))
}

/// Checks a TOTP code and claims its step in the same transaction as the login's audit row; a
/// concurrent login with the same code loses here.
async fn claim_totp(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    handle: &Handle,
    creds: &Credentials,
    code: &str,
    now: Millis,
) -> Result<std::result::Result<(), LoginFailure>> {
    let totp = TotpSecret::from_bytes(&crypto_ctx.server_key.open(&creds.totp_sealed)?);
    let Some(step) = totp.verify(code, now, creds.totp_last_step) else {
        return Ok(Err(LoginFailure::Totp));
    };
    let mut wtx = store.begin_write().await?;
    append_login_success(&mut wtx, handle, "totp", now).await?;
    let updated =
        sqlx::query("UPDATE workers SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1")
            .bind(step)
            .bind(&creds.id)
            .execute(wtx.conn())
            .await?;
    if updated.rows_affected() != 1 {
        return Ok(Err(LoginFailure::Totp));
    }
    wtx.commit().await?;
    Ok(Ok(()))
}

/// Checks a passkey assertion against the worker's registered key with that credential id, and
/// stores its counter in the same transaction as the login's audit row.
async fn claim_passkey(
    store: &Store,
    handle: &Handle,
    creds: &Credentials,
    proof: &PasskeyProof,
    now: Millis,
) -> Result<std::result::Result<(), LoginFailure>> {
    let Some(stored) = passkeys::for_login(store, &creds.id, &proof.credential_id).await? else {
        return Ok(Err(LoginFailure::Passkey));
    };
    let Ok(key) = PublicKey::from_stored(&stored.public_key) else {
        return Ok(Err(LoginFailure::Passkey));
    };
    let stored_count = u32::try_from(stored.sign_count).unwrap_or(u32::MAX);
    let verified = webauthn::verify_assertion(
        &proof.relying_party,
        &proof.challenge,
        &key,
        stored_count,
        &proof.assertion(),
    );
    let Ok(new_count) = verified else {
        return Ok(Err(LoginFailure::Passkey));
    };
    let mut wtx = store.begin_write().await?;
    append_login_success(&mut wtx, handle, "passkey", now).await?;
    let challenge = proof.challenge.as_bytes();
    if !passkeys::claim_use(&mut wtx, &stored, new_count, challenge, now).await? {
        return Ok(Err(LoginFailure::Passkey));
    }
    wtx.commit().await?;
    Ok(Ok(()))
}

async fn append_login_success(
    wtx: &mut WriteTx,
    handle: &Handle,
    second_factor: &str,
    now: Millis,
) -> Result<()> {
    audit::append(
        wtx,
        now,
        Event::new(
            &Actor::Worker(handle.to_string()),
            Action::LoginSuccess,
            handle.as_str(),
        )
        .detail(&format!("second_factor={second_factor}")),
    )
    .await
}

/// Records a failed login (every attempt is audited; the typed handle only when it exists). Queued:
/// failed logins are anonymous traffic, written in batches.
pub fn record_login_failure(
    queue: &AuditQueue,
    now: Millis,
    handle: Option<&Handle>,
    failure: LoginFailure,
) {
    let (actor, subject) = match (failure, handle) {
        (LoginFailure::UnknownHandle, _) | (_, None) => {
            (Actor::Anonymous, "unknown-handle".to_string())
        }
        (_, Some(handle)) => (Actor::Worker(handle.to_string()), handle.to_string()),
    };
    queue.push(
        now,
        Event::new(&actor, Action::LoginFailure, &subject).detail(failure.as_str()),
    );
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
    worker_id: &WorkerId,
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
    let (handle, hash, wrapped): (String, String, Flag) = sqlx::query_as(
        "SELECT handle, passphrase_hash, \
         CASE WHEN wrapped_identity IS NULL THEN 0 ELSE 1 END AS wrapped FROM workers WHERE id = $1",
    )
    .bind(worker_id)
    .fetch_one(store.pool())
    .await?;
    let has_wrapped = bool::from(wrapped);
    let pepper = crypto_ctx.server_key.passphrase_pepper();
    let actor = Actor::Worker(handle.clone());
    if !verify_off_thread(&current, hash, pepper).await? {
        audit::record(
            store,
            now,
            Event::new(&actor, Action::WorkerPassphraseChangeFailed, &handle)
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
        Event::new(&actor, Action::WorkerPassphraseChanged, &handle).detail(&format!(
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

/// Whether `passphrase` is the worker's current passphrase: asked again before what a session alone
/// must not do (replacing the second factor, minting a long-lived token), so that a session left
/// open on an unlocked phone is not enough. A failure is audited.
pub async fn confirm_passphrase(
    store: &Store,
    crypto_ctx: &Crypto<'_>,
    now: Millis,
    worker_id: &WorkerId,
    passphrase: SecretString,
) -> Result<bool> {
    let (handle, hash): (String, String) =
        sqlx::query_as("SELECT handle, passphrase_hash FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_one(store.pool())
            .await?;
    let pepper = crypto_ctx.server_key.passphrase_pepper();
    if verify_off_thread(&passphrase, hash, pepper).await? {
        return Ok(true);
    }
    audit::record(
        store,
        now,
        Event::new(
            &Actor::Worker(handle.clone()),
            Action::WorkerConfirmationFailed,
            &handle,
        ),
    )
    .await?;
    Ok(false)
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
        Event::new(
            actor,
            Action::WorkerApiTokensRevoked,
            worker.handle.as_str(),
        )
        .detail(&format!("count={revoked}")),
    )
    .await?;
    wtx.commit().await?;
    Ok(revoked)
}
