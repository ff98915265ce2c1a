//! The worker API: log in (passphrase + TOTP; a server-held identity is unlocked into the session),
//! list, open, fetch (as the stored age file) and delete messages, change the passphrase, manage API
//! tokens for the CLI and the worker's own aliases. Every query carries the worker's id: ownership is
//! enforced in SQL, and someone else's message is simply "not found".

use std::sync::Arc;

use crate::crypto::Keyring;
use age::secrecy::SecretString;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::json::StrictJson;
use super::{observe, ConnectionInfo, SharedState};
use crate::alias::{self, Address};
use crate::api_token;
use crate::audit::{self, Actor, Event};
use crate::mailbox::{self, Summary};
use crate::metrics::Metrics;
use crate::worker::{self, Handle, LoginFailure};

/// Largest request body the worker API reads (logins, passphrase changes, token labels).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest outgoing mail request (text and base64 attachments).
const MAX_MAIL_BODY_BYTES: usize = 16 * 1024 * 1024;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/v1/login", post(login))
        .route("/v1/logout", post(logout))
        .route("/v1/passphrase", post(change_passphrase))
        .route("/v1/messages", get(list_messages))
        .route(
            "/v1/messages/{id}",
            get(open_message).delete(delete_message),
        )
        .route("/v1/messages/{id}/age", get(message_age_file))
        .route(
            "/v1/messages/{id}/attachments/{index}",
            get(message_attachment),
        )
        .route("/v1/tokens", post(create_token).get(list_tokens))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/aliases", get(list_aliases).post(add_alias))
        .route("/v1/aliases/{address}/burn", post(burn_alias))
        .route(
            "/v1/messages/{id}/reply",
            post(reply).layer(axum::extract::DefaultBodyLimit::max(MAX_MAIL_BODY_BYTES)),
        )
        .route(
            "/v1/mail",
            post(send_mail).layer(axum::extract::DefaultBodyLimit::max(MAX_MAIL_BODY_BYTES)),
        )
        .route("/v1/markers", get(marker_counts).put(set_markers))
        .fallback(|| async { ApiError::NotFound })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
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

/// An authenticated worker. Extracting it refuses requests without a valid bearer token, and requests
/// from a session that must first change its one-time passphrase.
struct Authenticated {
    worker_id: String,
    handle: String,
    keyring: Option<Arc<Keyring>>,
    credential: Credential,
}

impl Authenticated {
    fn actor(&self) -> Actor {
        Actor::Worker(self.handle.clone())
    }

    fn session_token(&self) -> ApiResult<&str> {
        match &self.credential {
            Credential::Session(token) => Ok(token),
            Credential::ApiToken => Err(ApiError::LoginSessionRequired),
        }
    }
}

/// Like `Authenticated`, but also admitted while the one-time passphrase is still unchanged.
struct AuthenticatedMayChangePassphrase(Authenticated);

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn authenticate(parts: &Parts, state: &SharedState) -> ApiResult<(Authenticated, bool)> {
    let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
    let now = state.now();
    if api_token::looks_like(token) {
        let found = api_token::verify(&state.store, token, now)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        return Ok((
            Authenticated {
                worker_id: found.worker_id,
                handle: found.handle,
                keyring: None,
                credential: Credential::ApiToken,
            },
            false,
        ));
    }
    let session = state
        .sessions
        .touch(token, now)
        .ok_or(ApiError::Unauthenticated)?;
    Ok((
        Authenticated {
            worker_id: session.worker_id,
            handle: session.handle,
            keyring: session.keyring,
            credential: Credential::Session(token.to_string()),
        },
        session.must_change_passphrase,
    ))
}

impl FromRequestParts<SharedState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        let (authenticated, must_change) = authenticate(parts, state).await?;
        if must_change {
            return Err(ApiError::PassphraseChangeRequired);
        }
        Ok(authenticated)
    }
}

impl FromRequestParts<SharedState> for AuthenticatedMayChangePassphrase {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> ApiResult<Self> {
        Ok(Self(authenticate(parts, state).await?.0))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
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

async fn login(
    State(state): State<SharedState>,
    Extension(connection): Extension<ConnectionInfo>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let now = state.now();
    let handle = Handle::parse(&request.handle).ok();
    let creds = match &handle {
        Some(handle) => worker::credentials(&state.store, handle).await?,
        None => None,
    };
    let admitted = state.limiter.admit(
        handle.as_ref().map(Handle::as_str),
        creds.is_some(),
        connection.peer,
        now,
    );
    if let Err(retry_after_seconds) = admitted {
        Metrics::inc(&state.metrics.logins_rate_limited_total);
        audit::record(
            &state.store,
            now,
            Event::new(&Actor::Anonymous, "login.rate_limited", "").detail("too many attempts"),
        )
        .await?;
        return Err(ApiError::TooManyRequests {
            retry_after_seconds,
        });
    }
    let _slot = state.kdf_slot().await?;
    let passphrase = SecretString::from(request.passphrase);
    let outcome = match handle {
        Some(handle) => worker::authenticate(
            &state.store,
            &state.worker_crypto(),
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
        Ok(authenticated) => {
            state
                .limiter
                .succeeded(authenticated.handle.as_str(), connection.peer);
            Metrics::inc(&state.metrics.logins_succeeded_total);
            let identity_unlocked = authenticated.keyring.is_some();
            let must_change_passphrase = authenticated.must_change_passphrase;
            let token = state.sessions.start(
                authenticated.worker_id,
                authenticated.handle.to_string(),
                authenticated.keyring,
                must_change_passphrase,
                now,
            );
            Ok(Json(LoginResponse {
                token,
                must_change_passphrase,
                identity_unlocked,
                idle_timeout_seconds: state.config.session.idle_timeout_seconds,
                absolute_timeout_seconds: state.config.session.absolute_timeout_seconds,
            }))
        }
        Err((handle, failure)) => {
            Metrics::inc(&state.metrics.logins_failed_total);
            worker::record_login_failure(&state.store, now, handle.as_ref(), failure).await?;
            Err(ApiError::LoginFailed)
        }
    }
}

async fn logout(
    State(state): State<SharedState>,
    AuthenticatedMayChangePassphrase(auth): AuthenticatedMayChangePassphrase,
) -> ApiResult<StatusCode> {
    let token = auth.session_token()?;
    state.sessions.end(token);
    audit::record(
        &state.store,
        state.now(),
        Event::new(&auth.actor(), "logout", &auth.handle),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PassphraseChange {
    current: String,
    new: String,
}

async fn change_passphrase(
    State(state): State<SharedState>,
    Extension(connection): Extension<ConnectionInfo>,
    AuthenticatedMayChangePassphrase(auth): AuthenticatedMayChangePassphrase,
    StrictJson(change): StrictJson<PassphraseChange>,
) -> ApiResult<StatusCode> {
    let token = auth.session_token()?.to_string();
    // Guessing the current passphrase through a stolen session counts like failed logins.
    if let Err(retry_after_seconds) =
        state
            .limiter
            .admit(Some(&auth.handle), true, connection.peer, state.now())
    {
        audit::record(
            &state.store,
            state.now(),
            Event::new(
                &auth.actor(),
                "worker.passphrase_change_rate_limited",
                &auth.handle,
            ),
        )
        .await?;
        return Err(ApiError::TooManyRequests {
            retry_after_seconds,
        });
    }
    let _slot = state.kdf_slot().await?;
    let rotated = worker::change_passphrase(
        &state.store,
        &state.worker_crypto(),
        state.now(),
        &auth.worker_id,
        SecretString::from(change.current),
        SecretString::from(change.new),
        auth.keyring.as_deref(),
    )
    .await?;
    state.limiter.succeeded(&auth.handle, connection.peer);
    state.sessions.passphrase_changed(&token, rotated);
    state.sessions.end_others(&auth.worker_id, &token);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_messages(
    State(state): State<SharedState>,
    auth: Authenticated,
) -> ApiResult<Json<Vec<Summary>>> {
    Ok(Json(
        mailbox::list_for_worker(&state.store, &auth.worker_id).await?,
    ))
}

#[derive(Serialize, Deserialize)]
pub struct OpenedMessage {
    #[serde(flatten)]
    pub summary: Summary,
    pub from: String,
    pub subject: String,
    pub body: String,
    /// Mail only: the address a reply goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<crate::mail::inspect::AttachmentInfo>,
}

async fn open_message(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Json<OpenedMessage>> {
    let (summary, sealed) = mailbox::sealed_for_worker(&state.store, &auth.worker_id, &id).await?;
    let keyring = auth.keyring.clone().ok_or_else(|| {
        ApiError::Conflict(
            "your key is not on the server: fetch /v1/messages/{id}/age and open it on your device"
                .into(),
        )
    })?;
    let letter = tokio::task::spawn_blocking(move || mailbox::open_letter(&keyring, &sealed))
        .await
        .map_err(|_| ApiError::Internal(crate::Error::Crypto("open did not finish".into())))?
        .map_err(|_| ApiError::Conflict("this message was not sealed to your key".into()))?;
    mailbox::record_access(&state.store, state.now(), &auth.actor(), &id, "opened").await?;
    Ok(Json(OpenedMessage {
        summary,
        from: letter.from,
        subject: letter.subject,
        body: letter.body,
        reply_to: letter.reply_to,
        attachments: letter.attachments,
    }))
}

async fn message_age_file(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (_, sealed) = mailbox::sealed_for_worker(&state.store, &auth.worker_id, &id).await?;
    mailbox::record_access(&state.store, state.now(), &auth.actor(), &id, "age-file").await?;
    let mut response = sealed.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // Ids are 32 hex digits (checked by the lookup), so the header value is well-formed.
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.age\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// One attachment of a mail message, opened with the session's identity. Always served as a
/// download, never rendered.
async fn message_attachment(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path((id, index)): Path<(String, String)>,
) -> ApiResult<Response> {
    // Parsed here, not by the extractor, so that a bad index gets this API's JSON error.
    let index: u32 = index
        .parse()
        .map_err(|_| ApiError::BadRequest("the attachment index is a number: 0, 1, …".into()))?;
    let (_, sealed) = mailbox::sealed_for_worker(&state.store, &auth.worker_id, &id).await?;
    let keyring = auth.keyring.clone().ok_or_else(|| {
        ApiError::Conflict("your key is not on the server: fetch the age file instead".into())
    })?;
    let letter = tokio::task::spawn_blocking(move || mailbox::open_letter(&keyring, &sealed))
        .await
        .map_err(|_| ApiError::Internal(crate::Error::Crypto("open did not finish".into())))?
        .map_err(|_| ApiError::Conflict("this message was not sealed to your key".into()))?;
    let raw = letter
        .raw
        .as_deref()
        .and_then(|b64| data_encoding::BASE64.decode(b64.as_bytes()).ok())
        .ok_or(ApiError::NotFound)?;
    let message = mail_parser::MessageParser::default()
        .parse(&raw)
        .ok_or(ApiError::NotFound)?;
    let part = message.attachment(index).ok_or(ApiError::NotFound)?;
    let data = part.contents().to_vec();
    mailbox::record_access(&state.store, state.now(), &auth.actor(), &id, "attachment").await?;
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"bijlage-{index}\""))
            .expect("ASCII header"),
    );
    Ok(response)
}

async fn delete_message(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    mailbox::delete_for_worker(
        &state.store,
        state.now(),
        &auth.actor(),
        &auth.worker_id,
        &id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    label: String,
    #[serde(default = "default_token_days")]
    expires_in_days: u32,
}

fn default_token_days() -> u32 {
    30
}

async fn create_token(
    State(state): State<SharedState>,
    auth: Authenticated,
    StrictJson(request): StrictJson<NewToken>,
) -> ApiResult<(StatusCode, Json<api_token::Created>)> {
    auth.session_token()?;
    let created = api_token::create(
        &state.store,
        state.now(),
        &auth.actor(),
        &auth.worker_id,
        &request.label,
        request.expires_in_days,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list_tokens(
    State(state): State<SharedState>,
    auth: Authenticated,
) -> ApiResult<Json<Vec<api_token::Info>>> {
    auth.session_token()?;
    Ok(Json(api_token::list(&state.store, &auth.worker_id).await?))
}

async fn revoke_token(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    auth.session_token()?;
    api_token::revoke(
        &state.store,
        state.now(),
        &auth.actor(),
        &auth.worker_id,
        &id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn personal_mailbox(
    state: &SharedState,
    auth: &Authenticated,
) -> ApiResult<worker::WorkerRef> {
    let handle = Handle::parse(&auth.handle)?;
    Ok(worker::find(&state.store, &handle).await?)
}

async fn list_aliases(
    State(state): State<SharedState>,
    auth: Authenticated,
) -> ApiResult<Json<Vec<alias::AliasInfo>>> {
    let me = personal_mailbox(&state, &auth).await?;
    Ok(Json(
        alias::list_for_mailbox(&state.store, &me.mailbox_id).await?,
    ))
}

async fn add_alias(
    State(state): State<SharedState>,
    auth: Authenticated,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    auth.session_token()?;
    let me = personal_mailbox(&state, &auth).await?;
    let address =
        worker::add_alias(&state.store, &state.domain, state.now(), &auth.actor(), &me).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "address": address })),
    ))
}

/// Burns one of the worker's own personal aliases at once. Someone else's alias is "not found".
async fn burn_alias(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    auth.session_token()?;
    let address = Address::parse(&address).map_err(|_| ApiError::NotFound)?;
    let me = personal_mailbox(&state, &auth).await?;
    if alias::mailbox_of(&state.store, &address).await? != me.mailbox_id {
        return Err(ApiError::NotFound);
    }
    crate::alias::burn_audited(&state.store, state.now(), &auth.actor(), &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- mail from the worker ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentIn {
    filename: String,
    content_type: String,
    /// Base64.
    data: String,
}

impl AttachmentIn {
    fn decode(self) -> ApiResult<crate::mail::compose::Attachment> {
        let name_ok = !self.filename.trim().is_empty()
            && self.filename.chars().count() <= 200
            && !self
                .filename
                .chars()
                .any(|c| c.is_control() || c == '/' || c == '\\');
        if !name_ok {
            return Err(ApiError::BadRequest(
                "an attachment's filename has 1 to 200 characters, without / or \\".into(),
            ));
        }
        let content_type_ok = self.content_type.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && self.content_type.chars().all(|c| c.is_ascii_graphic())
        });
        if !content_type_ok {
            return Err(ApiError::BadRequest(format!(
                "attachment {}: content_type must look like type/subtype",
                self.filename
            )));
        }
        let compact: String = self.data.chars().filter(|c| !c.is_whitespace()).collect();
        let data = data_encoding::BASE64
            .decode(compact.as_bytes())
            .map_err(|_| {
                ApiError::BadRequest(format!("attachment {}: data is not base64", self.filename))
            })?;
        Ok(crate::mail::compose::Attachment {
            filename: self.filename,
            content_type: self.content_type.to_ascii_lowercase(),
            data,
        })
    }
}

fn decode_all(attachments: Vec<AttachmentIn>) -> ApiResult<Vec<crate::mail::compose::Attachment>> {
    attachments.into_iter().map(AttachmentIn::decode).collect()
}

impl From<crate::mail::reply::SendError> for ApiError {
    fn from(error: crate::mail::reply::SendError) -> Self {
        use crate::mail::reply::SendError;
        match error {
            SendError::NotConfigured => ApiError::Conflict(error.to_string()),
            SendError::NotYourAlias | SendError::RecipientNotAllowed => {
                ApiError::RecipientNotAllowed(error.to_string())
            }
            SendError::Invalid(message) => ApiError::BadRequest(message),
            SendError::Leak(leak) => ApiError::IdentityLeak(leak.to_string()),
            SendError::Attachment(refused) => ApiError::AttachmentRefused(refused.to_string()),
            SendError::Internal(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyRequest {
    body: String,
    #[serde(default)]
    attachments: Vec<AttachmentIn>,
}

/// Answers a mail message from the alias it was sent to, to the address that sent it.
async fn reply(
    State(state): State<SharedState>,
    auth: Authenticated,
    Path(id): Path<String>,
    StrictJson(request): StrictJson<ReplyRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    auth.session_token()?;
    let (_, sealed) = mailbox::sealed_for_worker(&state.store, &auth.worker_id, &id).await?;
    let keyring = auth.keyring.clone().ok_or_else(|| {
        ApiError::Conflict(
            "your key is not on the server: open the message on your device and use POST /v1/mail"
                .into(),
        )
    })?;
    let letter = tokio::task::spawn_blocking(move || mailbox::open_letter(&keyring, &sealed))
        .await
        .map_err(|_| ApiError::Internal(crate::Error::Crypto("open did not finish".into())))?
        .map_err(|_| ApiError::Conflict("this message was not sealed to your key".into()))?;
    let Some(reply_to) = letter.reply_to.as_deref() else {
        return Err(ApiError::Conflict(
            "this message did not come by e-mail; there is no address to answer".into(),
        ));
    };
    let subject = if letter.subject.to_ascii_lowercase().starts_with("re:") {
        letter.subject.clone()
    } else {
        format!("Re: {}", letter.subject)
    };
    let mut references = letter.references.clone();
    references.extend(letter.message_id.clone());
    let draft = crate::mail::reply::Draft {
        from_alias: Address::parse(&letter.to)?,
        to: crate::mail::EmailAddress::parse(reply_to)?,
        subject,
        body: request.body,
        attachments: decode_all(request.attachments)?,
        in_reply_to: letter.message_id.clone(),
        references,
        kind: crate::mail::outbound::Kind::Reply,
    };
    let sender = crate::mail::reply::Sender {
        worker_id: &auth.worker_id,
        handle: &auth.handle,
    };
    let queued = crate::mail::reply::send(&state, sender, draft).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!(queued))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailRequest {
    from: String,
    to: String,
    subject: String,
    body: String,
    #[serde(default)]
    attachments: Vec<AttachmentIn>,
    #[serde(default)]
    in_reply_to: Option<String>,
    #[serde(default)]
    references: Vec<String>,
}

/// A new message from one of the worker's aliases (also: a reply composed on the worker's device).
async fn send_mail(
    State(state): State<SharedState>,
    auth: Authenticated,
    StrictJson(request): StrictJson<MailRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    auth.session_token()?;
    let kind = if request.in_reply_to.is_some() {
        crate::mail::outbound::Kind::Reply
    } else {
        crate::mail::outbound::Kind::Mail
    };
    let message_id_ok =
        |id: &String| id.len() <= 250 && !id.chars().any(|c| c.is_control() || c.is_whitespace());
    if !request
        .in_reply_to
        .iter()
        .chain(&request.references)
        .all(message_id_ok)
    {
        return Err(ApiError::BadRequest(
            "in_reply_to and references are Message-IDs (no spaces, at most 250 characters)".into(),
        ));
    }
    let draft = crate::mail::reply::Draft {
        from_alias: Address::parse(&request.from)
            .map_err(|e| ApiError::BadRequest(format!("field `from`: {e}")))?,
        to: crate::mail::EmailAddress::parse(&request.to)
            .map_err(|e| ApiError::BadRequest(format!("field `to`: {e}")))?,
        subject: request.subject,
        body: request.body,
        attachments: decode_all(request.attachments)?,
        in_reply_to: request.in_reply_to,
        references: request.references,
        kind,
    };
    let sender = crate::mail::reply::Sender {
        worker_id: &auth.worker_id,
        handle: &auth.handle,
    };
    let queued = crate::mail::reply::send(&state, sender, draft).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!(queued))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkersRequest {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    phones: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    towns: Vec<String>,
    #[serde(default)]
    plates: Vec<String>,
}

fn counts_json(counts: &[(crate::mail::leak::MarkerKind, usize)]) -> serde_json::Value {
    serde_json::Value::Object(
        counts
            .iter()
            .map(|(kind, count)| (kind.as_str().to_string(), serde_json::json!(count)))
            .collect(),
    )
}

/// Replaces the worker's identity markers (stored as keyed hashes only).
async fn set_markers(
    State(state): State<SharedState>,
    auth: Authenticated,
    StrictJson(request): StrictJson<MarkersRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    use crate::mail::leak::MarkerKind;
    auth.session_token()?;
    let entries: Vec<(MarkerKind, String)> = [
        (MarkerKind::Name, request.names),
        (MarkerKind::Phone, request.phones),
        (MarkerKind::Email, request.emails),
        (MarkerKind::Town, request.towns),
        (MarkerKind::Plate, request.plates),
    ]
    .into_iter()
    .flat_map(|(kind, texts)| texts.into_iter().map(move |t| (kind, t)))
    .collect();
    if entries.len() > 100 {
        return Err(ApiError::BadRequest("at most 100 markers".into()));
    }
    let counts = worker::set_markers(
        &state.store,
        &state.server_key,
        state.now(),
        &auth.worker_id,
        &auth.handle,
        &entries,
    )
    .await?;
    Ok(Json(counts_json(&counts)))
}

/// How many markers of each kind are registered (the markers themselves are not kept).
async fn marker_counts(
    State(state): State<SharedState>,
    auth: Authenticated,
) -> ApiResult<Json<serde_json::Value>> {
    use crate::mail::leak::MarkerKind;
    let markers = worker::markers(&state.store, &auth.worker_id).await?;
    let counts: Vec<(MarkerKind, usize)> = [
        MarkerKind::Name,
        MarkerKind::Phone,
        MarkerKind::Email,
        MarkerKind::Town,
        MarkerKind::Plate,
    ]
    .into_iter()
    .map(|kind| (kind, markers.iter().filter(|(k, _)| *k == kind).count()))
    .collect();
    Ok(Json(counts_json(&counts)))
}
