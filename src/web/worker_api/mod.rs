//! The worker API: log in (passphrase + TOTP; a server-held identity is unlocked into the session),
//! messages (list, open, fetch as the stored age file, attachments, delete), mail from an alias, API
//! tokens for the CLI, the worker's own aliases and identity markers. Every query carries the worker's
//! id: ownership is enforced in SQL, and someone else's message is simply "not found".

mod alerts;
mod aliases;
mod auth;
mod mail;
mod markers;
mod messages;
mod phone;
mod tokens;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};
use axum::Router;

pub use auth::LoginResponse;
pub(crate) use auth::{attempt_login, change_passphrase_of, confirm_passphrase_of, SessionCaller};
pub use messages::OpenedMessage;

use super::error::{ApiError, ApiResult};
use super::observe;
use crate::api_token;
use crate::audit::Actor;
use crate::core::Core;
use crate::crypto::Keyring;
use crate::ids::{MessageId, WorkerId};
use crate::mailbox::{self, Letter};
use crate::session::{LoginLimiter, Sessions};

/// Largest request body the worker API reads (logins, passphrase changes, token labels).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest outgoing mail request (text and base64 attachments).
const MAX_MAIL_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The worker listener's state: the core, the login sessions (with their unlocked identities) and the
/// login rate limiter.
pub struct WorkerApi {
    pub core: Arc<Core>,
    pub sessions: Arc<Sessions>,
    pub limiter: LoginLimiter,
    /// Who the relay is to passkeys (the web app's origin and its host).
    pub relying_party: crate::webauthn::RelyingParty,
}

type State = axum::extract::State<Arc<WorkerApi>>;

pub fn router(api: Arc<WorkerApi>) -> Router {
    let mail_body = || DefaultBodyLimit::max(MAX_MAIL_BODY_BYTES);
    Router::new()
        .route("/v1/login", post(auth::login))
        .route("/v1/logout", post(auth::logout))
        .route("/v1/passphrase", post(auth::change_passphrase))
        .route("/v1/messages", get(messages::list))
        .route(
            "/v1/messages/{id}",
            get(messages::open).delete(messages::delete),
        )
        .route("/v1/messages/{id}/age", get(messages::age_file))
        .route(
            "/v1/messages/{id}/attachments/{index}",
            get(messages::attachment),
        )
        .route(
            "/v1/messages/{id}/reply",
            post(mail::reply).layer(mail_body()),
        )
        .route("/v1/mail", post(mail::send).layer(mail_body()))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", delete(tokens::revoke))
        .route("/v1/aliases", get(aliases::list).post(aliases::add))
        .route("/v1/aliases/{address}/burn", post(aliases::burn))
        .route("/v1/markers", get(markers::counts).put(markers::set))
        .route("/v1/sms", post(phone::send_sms))
        .route("/v1/calls", post(phone::call))
        .route("/v1/alerts", get(alerts::list).post(alerts::page))
        .route("/v1/alerts/{id}", get(alerts::get))
        .route("/v1/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/v1/alerts/{id}/resolve", post(alerts::resolve))
        .route("/v1/oncall", get(alerts::duty))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(api.core.clone(), observe))
        .with_state(api)
}

/// How the request authenticated.
#[derive(Clone)]
enum Credential {
    /// A login session; the token is kept to end it.
    Session(String),
    /// A long-lived API token: lists, fetches and deletes messages; no unlocked identity, no passphrase,
    /// token or alias management.
    ApiToken,
}

/// The worker making this request. Extracting it refuses requests without a valid bearer token, and
/// requests from a session that must first change its one-time passphrase.
struct Caller {
    worker_id: WorkerId,
    handle: String,
    keyring: Option<Arc<Keyring>>,
    credential: Credential,
}

impl Caller {
    fn actor(&self) -> Actor {
        Actor::Worker(self.handle.clone())
    }

    /// The session token, for what only a login session (not an API token) may do.
    fn session_token(&self) -> ApiResult<&str> {
        match &self.credential {
            Credential::Session(token) => Ok(token),
            Credential::ApiToken => Err(ApiError::LoginSessionRequired),
        }
    }

    /// The unlocked identity; `not_here` explains what to do when the key lives on the device.
    fn keyring(&self, not_here: &str) -> ApiResult<Arc<Keyring>> {
        self.keyring
            .clone()
            .ok_or_else(|| ApiError::Conflict(not_here.to_string()))
    }
}

/// Like `Caller`, but also admitted while the one-time passphrase is still unchanged.
struct CallerMayChangePassphrase(Caller);

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn authenticate(parts: &Parts, api: &WorkerApi) -> ApiResult<(Caller, bool)> {
    let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
    let now = api.core.now();
    if api_token::looks_like(token) {
        let found = api_token::verify(&api.core.store, token, now)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        return Ok((
            Caller {
                worker_id: found.worker_id,
                handle: found.handle,
                keyring: None,
                credential: Credential::ApiToken,
            },
            false,
        ));
    }
    let session = api
        .sessions
        .touch(token, now)
        .ok_or(ApiError::Unauthenticated)?;
    Ok((
        Caller {
            worker_id: session.worker_id,
            handle: session.handle,
            keyring: session.keyring,
            credential: Credential::Session(token.to_string()),
        },
        session.must_change_passphrase,
    ))
}

impl FromRequestParts<Arc<WorkerApi>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<WorkerApi>) -> ApiResult<Self> {
        let (caller, must_change) = authenticate(parts, api).await?;
        if must_change {
            return Err(ApiError::PassphraseChangeRequired);
        }
        Ok(caller)
    }
}

impl FromRequestParts<Arc<WorkerApi>> for CallerMayChangePassphrase {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<WorkerApi>) -> ApiResult<Self> {
        Ok(Self(authenticate(parts, api).await?.0))
    }
}

/// A message id from a URL; anything malformed is "not found", like someone else's message.
fn message_id(text: &str) -> ApiResult<MessageId> {
    MessageId::parse(text).ok_or(ApiError::NotFound)
}

/// Opens one of the caller's messages with the session's identity (off the async threads).
/// `not_here` is the advice when the key lives on the worker's device.
async fn open_own_letter(
    core: &Core,
    caller: &Caller,
    message_id: &MessageId,
    not_here: &str,
) -> ApiResult<(mailbox::Summary, Letter)> {
    let (summary, sealed) =
        mailbox::sealed_for_worker(&core.store, &caller.worker_id, message_id).await?;
    let keyring = caller.keyring(not_here)?;
    let letter = core
        .cpu
        .run(move || mailbox::open_letter(&keyring, &sealed))
        .await?
        .map_err(|_| ApiError::Conflict("this message was not sealed to your key".into()))?;
    Ok((summary, letter))
}
