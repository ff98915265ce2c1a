//! Logging in and out, and changing the passphrase.

use age::secrecy::SecretString;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use super::{CallerMayChangePassphrase, State, WorkerApi};
use crate::audit::{self, Action, Actor, Event};
use crate::crypto::Keyring;
use crate::metrics::Metrics;
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;
use crate::web::ConnectionInfo;
use crate::worker::{self, Handle, LoginFailure, SecondFactor};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    handle: String,
    passphrase: String,
    totp: String,
}

#[derive(Serialize, Deserialize)]
pub struct LoginResponse {
    pub token: String,
    pub must_change_passphrase: bool,
    /// Whether the session holds the worker's identity (messages open on the server) or the key lives
    /// on the worker's device (fetch `/age` and decrypt there).
    pub identity_unlocked: bool,
    pub idle_timeout_seconds: u64,
    pub absolute_timeout_seconds: u64,
}

/// A session a successful login started.
pub(crate) struct Started {
    pub token: String,
    pub must_change_passphrase: bool,
    pub identity_unlocked: bool,
}

/// One login attempt, as the API and the web pages both make it: the rate limiter first (per handle
/// and per client network), then passphrase and second factor (TOTP, or a passkey on the pages); every failure is audited and answered alike.
pub(crate) async fn attempt_login(
    api: &WorkerApi,
    peer: IpAddr,
    handle_text: &str,
    passphrase: String,
    factor: &SecondFactor,
) -> ApiResult<Started> {
    let core = &api.core;
    let now = core.now();
    let handle = Handle::parse(handle_text).ok();
    let creds = match &handle {
        Some(handle) => worker::credentials(&core.store, handle).await?,
        None => None,
    };
    let admitted = api.limiter.admit(
        handle.as_ref().map(Handle::as_str),
        creds.is_some(),
        peer,
        now,
    );
    if let Err(retry_after_seconds) = admitted {
        Metrics::inc(&core.metrics.logins_rate_limited_total);
        core.audit_queue.push(
            now,
            Event::new(&Actor::Anonymous, Action::LoginRateLimited, "").detail("too many attempts"),
        );
        return Err(ApiError::TooManyRequests {
            retry_after_seconds,
        });
    }
    let _slot = core.kdf_slot().await?;
    let passphrase = SecretString::from(passphrase);
    let outcome = match handle {
        Some(handle) => worker::authenticate(
            &core.store,
            &core.worker_crypto(),
            &handle,
            creds,
            passphrase,
            factor,
            now,
        )
        .await?
        .map_err(|failure| (Some(handle), failure)),
        None => Err((None, LoginFailure::UnknownHandle)),
    };
    match outcome {
        Ok(logged_in) => {
            api.limiter.succeeded(logged_in.handle.as_str(), peer);
            Metrics::inc(&core.metrics.logins_succeeded_total);
            let identity_unlocked = logged_in.keyring.is_some();
            let must_change_passphrase = logged_in.must_change_passphrase;
            let token = api.sessions.start(
                logged_in.worker_id,
                logged_in.handle.to_string(),
                logged_in.keyring,
                must_change_passphrase,
                now,
            );
            Ok(Started {
                token,
                must_change_passphrase,
                identity_unlocked,
            })
        }
        Err((handle, failure)) => {
            Metrics::inc(&core.metrics.logins_failed_total);
            worker::record_login_failure(&core.audit_queue, now, handle.as_ref(), failure);
            Err(ApiError::LoginFailed)
        }
    }
}

pub(super) async fn login(
    axum::extract::State(api): State,
    Extension(connection): Extension<ConnectionInfo>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let started = attempt_login(
        &api,
        connection.peer,
        &request.handle,
        request.passphrase,
        &SecondFactor::Totp(request.totp),
    )
    .await?;
    Ok(Json(LoginResponse {
        token: started.token,
        must_change_passphrase: started.must_change_passphrase,
        identity_unlocked: started.identity_unlocked,
        idle_timeout_seconds: api.core.config.session.idle_timeout_seconds,
        absolute_timeout_seconds: api.core.config.session.absolute_timeout_seconds,
    }))
}

pub(super) async fn logout(
    axum::extract::State(api): State,
    CallerMayChangePassphrase(caller): CallerMayChangePassphrase,
) -> ApiResult<StatusCode> {
    let token = caller.session_token()?;
    api.sessions.end(token);
    audit::record(
        &api.core.store,
        api.core.now(),
        Event::new(&caller.actor(), Action::Logout, &caller.handle),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PassphraseChange {
    current: String,
    new: String,
}

pub(super) async fn change_passphrase(
    axum::extract::State(api): State,
    Extension(connection): Extension<ConnectionInfo>,
    CallerMayChangePassphrase(caller): CallerMayChangePassphrase,
    StrictJson(change): StrictJson<PassphraseChange>,
) -> ApiResult<StatusCode> {
    let token = caller.session_token()?.to_string();
    change_passphrase_of(
        &api,
        connection.peer,
        &SessionCaller {
            worker_id: &caller.worker_id,
            handle: &caller.handle,
            keyring: caller.keyring.as_deref(),
            token: &token,
        },
        change.current,
        change.new,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Counts a guess of the session's passphrase like a failed login; past the limit, audits `limited`
/// (queued: it may be a flood) and answers 429.
fn admit_passphrase_guess(
    api: &WorkerApi,
    handle: &str,
    peer: IpAddr,
    limited: Action,
) -> ApiResult<()> {
    let core = &api.core;
    if let Err(retry_after_seconds) = api.limiter.admit(Some(handle), true, peer, core.now()) {
        core.audit_queue.push(
            core.now(),
            Event::new(&Actor::Worker(handle.to_string()), limited, handle),
        );
        return Err(ApiError::TooManyRequests {
            retry_after_seconds,
        });
    }
    Ok(())
}

/// Asks a login session for its worker's current passphrase again before what a session alone must
/// not do: replacing the second factor, minting a long-lived API token. A phone left unlocked with a
/// session open is then not enough to lock the worker out or to keep access after logout. Guesses
/// count like failed logins.
pub(crate) async fn confirm_passphrase_of(
    api: &WorkerApi,
    peer: IpAddr,
    worker_id: &crate::ids::WorkerId,
    handle: &str,
    passphrase: String,
) -> ApiResult<()> {
    let core = &api.core;
    admit_passphrase_guess(api, handle, peer, Action::WorkerConfirmationRateLimited)?;
    let _slot = core.kdf_slot().await?;
    let confirmed = worker::confirm_passphrase(
        &core.store,
        &core.worker_crypto(),
        core.now(),
        worker_id,
        SecretString::from(passphrase),
    )
    .await?;
    if !confirmed {
        return Err(ApiError::PassphraseNotConfirmed);
    }
    api.limiter.succeeded(handle, peer);
    Ok(())
}

/// The login session asking for a change, as the API and the web pages both know it.
pub(crate) struct SessionCaller<'a> {
    pub worker_id: &'a crate::ids::WorkerId,
    pub handle: &'a str,
    pub keyring: Option<&'a Keyring>,
    pub token: &'a str,
}

/// Changes the passphrase of a login session's worker: rate-limited like logins (guessing the
/// current passphrase through a stolen session counts like failed logins), rotates a server-held
/// key, and ends the worker's other sessions.
pub(crate) async fn change_passphrase_of(
    api: &WorkerApi,
    peer: IpAddr,
    caller: &SessionCaller<'_>,
    current: String,
    new: String,
) -> ApiResult<()> {
    let core = &api.core;
    admit_passphrase_guess(
        api,
        caller.handle,
        peer,
        Action::WorkerPassphraseChangeRateLimited,
    )?;
    let _slot = core.kdf_slot().await?;
    let rotated = worker::change_passphrase(
        &core.store,
        &core.worker_crypto(),
        core.now(),
        caller.worker_id,
        SecretString::from(current),
        SecretString::from(new),
        caller.keyring,
    )
    .await?;
    api.limiter.succeeded(caller.handle, peer);
    api.sessions.passphrase_changed(caller.token, rotated);
    api.sessions.end_others(caller.worker_id, caller.token);
    Ok(())
}
