//! Logging in and out, and changing the passphrase.

use age::secrecy::SecretString;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::{CallerMayChangePassphrase, State};
use crate::audit::{self, Action, Actor, Event};
use crate::metrics::Metrics;
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;
use crate::web::ConnectionInfo;
use crate::worker::{self, Handle, LoginFailure};

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

pub(super) async fn login(
    axum::extract::State(api): State,
    Extension(connection): Extension<ConnectionInfo>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let core = &api.core;
    let now = core.now();
    let handle = Handle::parse(&request.handle).ok();
    let creds = match &handle {
        Some(handle) => worker::credentials(&core.store, handle).await?,
        None => None,
    };
    let admitted = api.limiter.admit(
        handle.as_ref().map(Handle::as_str),
        creds.is_some(),
        connection.peer,
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
    let passphrase = SecretString::from(request.passphrase);
    let outcome = match handle {
        Some(handle) => worker::authenticate(
            &core.store,
            &core.worker_crypto(),
            &handle,
            creds,
            passphrase,
            &request.totp,
            now,
        )
        .await?
        .map_err(|failure| (Some(handle), failure)),
        None => Err((None, LoginFailure::UnknownHandle)),
    };
    match outcome {
        Ok(logged_in) => {
            api.limiter
                .succeeded(logged_in.handle.as_str(), connection.peer);
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
            Ok(Json(LoginResponse {
                token,
                must_change_passphrase,
                identity_unlocked,
                idle_timeout_seconds: core.config.session.idle_timeout_seconds,
                absolute_timeout_seconds: core.config.session.absolute_timeout_seconds,
            }))
        }
        Err((handle, failure)) => {
            Metrics::inc(&core.metrics.logins_failed_total);
            worker::record_login_failure(&core.audit_queue, now, handle.as_ref(), failure);
            Err(ApiError::LoginFailed)
        }
    }
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
    let core = &api.core;
    let token = caller.session_token()?.to_string();
    // Guessing the current passphrase through a stolen session counts like failed logins.
    if let Err(retry_after_seconds) =
        api.limiter
            .admit(Some(&caller.handle), true, connection.peer, core.now())
    {
        core.audit_queue.push(
            core.now(),
            Event::new(
                &caller.actor(),
                Action::WorkerPassphraseChangeRateLimited,
                &caller.handle,
            ),
        );
        return Err(ApiError::TooManyRequests {
            retry_after_seconds,
        });
    }
    let _slot = core.kdf_slot().await?;
    let rotated = worker::change_passphrase(
        &core.store,
        &core.worker_crypto(),
        core.now(),
        &caller.worker_id,
        SecretString::from(change.current),
        SecretString::from(change.new),
        caller.keyring.as_deref(),
    )
    .await?;
    api.limiter.succeeded(&caller.handle, connection.peer);
    api.sessions.passphrase_changed(&token, rotated);
    api.sessions.end_others(&caller.worker_id, &token);
    Ok(StatusCode::NO_CONTENT)
}
