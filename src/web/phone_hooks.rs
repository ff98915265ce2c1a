//! The phone listener (`[phone] listen`, HTTPS): the provider's webhooks, form-encoded and signed
//! (`POST /phone/voice`, `/phone/sms`, the callbacks the relay names in its TwiML, and the key press
//! of an on-call alert call, `/phone/oncall/keypress`), and on the self-hosted path Kannel's texts
//! (`/phone/kannel/*`) and Kamailio's route queries (`/phone/sip/route`).
//!
//! Every signed webhook is checked before anything else: a missing or wrong `X-Twilio-Signature` gets
//! 403 and nothing happens. Bodies over `[phone] max_body_bytes` get 413. Bad input gets a plain 4xx
//! that names the parameter, never a number. Refused calls all get the same TwiML, refused routes the
//! same JSON.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::{observe, ConnectionInfo};
use crate::audit::{Actor, Event};
use crate::core::Core;
use crate::ids::NotificationId;
use crate::metrics::Metrics;
use crate::oncall::alert;
use crate::oncall::notify::keypress_twiml;
use crate::oncall::phone_channel::KEYPRESS_PATH;
use crate::phone::provider::Sid;
use crate::phone::sms;
use crate::phone::{kannel, signature, twiml, voice, voicemail, Phone, PhoneNumber, WebhookCheck};

pub struct PhoneHooks {
    core: Arc<Core>,
    phone: Arc<Phone>,
}

type Hooks = State<Arc<PhoneHooks>>;

pub fn router(core: Arc<Core>, phone: Arc<Phone>) -> Router {
    let limit = phone.config.max_body_bytes;
    let hooks = Arc::new(PhoneHooks {
        core: core.clone(),
        phone,
    });
    Router::new()
        .route("/phone/voice", post(voice_incoming))
        .route("/phone/voice/dial", post(voice_dial))
        .route("/phone/voice/recorded", post(voice_recorded))
        .route("/phone/voice/recording", post(voice_recording))
        .route("/phone/voice/outbound", post(voice_outbound))
        .route("/phone/voice/bridge", post(voice_bridge))
        .route(KEYPRESS_PATH, post(oncall_keypress))
        .route("/phone/sms", post(sms_incoming))
        .route("/phone/sms/status", post(sms_status))
        .route("/phone/kannel/sms", post(kannel_sms))
        .route("/phone/kannel/dlr", get(kannel_dlr))
        .route("/phone/sip/route", get(sip_route))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(core, observe))
        .with_state(hooks)
}

/// Bad input, answered without echoing it.
enum HookError {
    Forbidden,
    TooLarge,
    Missing(&'static str),
    Invalid(&'static str),
    /// The relay could not handle it now; the provider should retry (cause logged).
    Unavailable(crate::Error),
}

impl IntoResponse for HookError {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            HookError::Forbidden => (StatusCode::FORBIDDEN, "forbidden\n".to_string()),
            HookError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large\n".to_string(),
            ),
            HookError::Missing(name) => (
                StatusCode::BAD_REQUEST,
                format!("missing parameter {name}\n"),
            ),
            HookError::Invalid(name) => (
                StatusCode::BAD_REQUEST,
                format!("invalid parameter {name}\n"),
            ),
            HookError::Unavailable(cause) => {
                tracing::error!(cause = %crate::error::error_chain(&cause), "phone webhook failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "try again later\n".to_string(),
                )
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response()
    }
}

impl From<crate::Error> for HookError {
    fn from(error: crate::Error) -> Self {
        HookError::Unavailable(error)
    }
}

type HookResult = Result<Response, HookError>;

/// The decoded parameters of a webhook whose signature was checked.
struct Signed {
    params: Vec<(String, String)>,
    query: Vec<(String, String)>,
}

impl Signed {
    fn get(&self, name: &'static str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, HookError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or(HookError::Missing(name))
    }

    fn sid(&self, name: &'static str) -> Result<Sid, HookError> {
        Sid::parse(self.require(name)?).ok_or(HookError::Invalid(name))
    }

    fn number(&self, name: &'static str) -> Result<PhoneNumber, HookError> {
        PhoneNumber::parse(self.require(name)?).map_err(|_| HookError::Invalid(name))
    }

    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Reads the body within the limit, and checks the provider's signature over the public URL and the
/// parameters (form) or the body's hash (JSON). Nothing else happens before this.
async fn signed(hooks: &PhoneHooks, request: Request) -> Result<Signed, HookError> {
    let (parts, body) = request.into_parts();
    let uri: &Uri = &parts.uri;
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let bytes = axum::body::to_bytes(body, hooks.phone.config.max_body_bytes)
        .await
        .map_err(|_| HookError::TooLarge)?;
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let query = form(uri.query().unwrap_or_default().as_bytes());
    let json = header(header::CONTENT_TYPE.as_str())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let params = match hooks.phone.webhook_check() {
        WebhookCheck::Ed25519(public_key) => {
            let (Some(timestamp), Some(signature)) = (
                header("telnyx-timestamp"),
                header("telnyx-signature-ed25519"),
            ) else {
                return Err(forbidden(hooks, uri.path()));
            };
            let now_seconds = hooks.core.now().div_euclid(1000);
            if !signature::verify_ed25519(public_key, timestamp, &bytes, signature, now_seconds) {
                return Err(forbidden(hooks, uri.path()));
            }
            if json {
                json_params(&bytes).ok_or(HookError::Invalid("body"))?
            } else {
                std::str::from_utf8(&bytes)
                    .map(|text| form(text.as_bytes()))
                    .map_err(|_| HookError::Invalid("body"))?
            }
        }
        WebhookCheck::Hmac(key) => {
            let Some(signature) = header("x-twilio-signature") else {
                return Err(forbidden(hooks, uri.path()));
            };
            let url = hooks.phone.url(&path_and_query);
            if json {
                if !signature::verify_json(key, &url, &bytes, signature) {
                    return Err(forbidden(hooks, uri.path()));
                }
                json_params(&bytes).ok_or(HookError::Invalid("body"))?
            } else {
                // Checked on the bytes as received: a body that is not UTF-8 cannot carry a valid
                // signature of what we would read.
                let params = std::str::from_utf8(&bytes)
                    .map(|text| form(text.as_bytes()))
                    .map_err(|_| forbidden(hooks, uri.path()))?;
                if !signature::verify_form(key, &url, &params, signature) {
                    return Err(forbidden(hooks, uri.path()));
                }
                params
            }
        }
        WebhookCheck::Refuse => return Err(forbidden(hooks, uri.path())),
    };
    Ok(Signed { params, query })
}

fn form(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The top-level string fields of a JSON webhook body.
fn json_params(bytes: &Bytes) -> Option<Vec<(String, String)>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some(
        value
            .as_object()?
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect(),
    )
}

/// Counts and audits (in the batch queue) a webhook that failed its signature: the route only.
fn forbidden(hooks: &PhoneHooks, path: &str) -> HookError {
    let core = &hooks.core;
    Metrics::inc(&core.metrics.phone_webhooks_forbidden_total);
    core.audit_queue.push(
        core.now(),
        Event::new(
            &Actor::Anonymous,
            crate::audit::Action::PhoneWebhookForbidden,
            path,
        ),
    );
    HookError::Forbidden
}

fn xml(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

async fn voice_incoming(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let call_sid = signed.sid("CallSid")?;
    let to = signed.number("To")?;
    let answer = voice::incoming(
        &hooks.core,
        &hooks.phone,
        &call_sid,
        signed.get("From"),
        &to,
    )
    .await?;
    Ok(xml(answer))
}

async fn voice_dial(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let call_sid = signed.sid("CallSid")?;
    let step: usize = signed
        .query("step")
        .ok_or(HookError::Missing("step"))?
        .parse()
        .ok()
        .filter(|step| *step < 64)
        .ok_or(HookError::Invalid("step"))?;
    let status = signed.get("DialCallStatus").unwrap_or("no-answer");
    let answer = voice::dial_ended(&hooks.core, &hooks.phone, &call_sid, step, status).await?;
    Ok(xml(answer))
}

async fn voice_recorded(State(hooks): Hooks, request: Request) -> HookResult {
    signed(&hooks, request).await?;
    Ok(xml(twiml::hangup()))
}

async fn voice_recording(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let call_sid = signed.sid("CallSid")?;
    let recording_sid = signed.sid("RecordingSid")?;
    let status = signed.get("RecordingStatus").unwrap_or("completed");
    if status == "completed" {
        let duration = signed
            .get("RecordingDuration")
            .and_then(|d| d.parse::<i64>().ok())
            .unwrap_or(0);
        voicemail::recorded(
            &hooks.core,
            &call_sid,
            &recording_sid,
            duration,
            hooks.phone.config.replay_window_seconds,
        )
        .await?;
        hooks.phone.voicemail_wake.notify_one();
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn voice_outbound(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let call_sid = signed.sid("CallSid")?;
    let to = signed.number("To")?;
    let digits = signed.get("Digits").unwrap_or_default();
    let answer = voice::outbound_digits(
        &hooks.core,
        &hooks.phone,
        &call_sid,
        signed.get("From"),
        &to,
        digits,
    )
    .await?;
    Ok(xml(answer))
}

async fn voice_bridge(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let id = signed.query("id").ok_or(HookError::Missing("id"))?;
    let answer = voice::bridge(&hooks.core, &hooks.phone, id).await?;
    Ok(xml(answer))
}

/// A key pressed in an on-call alert call (the `<Gather>` action): `1` acknowledges the alert for
/// the worker who was called, when they are on its list; anything else changes nothing.
async fn oncall_keypress(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let id = signed
        .query("notification")
        .and_then(NotificationId::parse)
        .ok_or(HookError::Invalid("notification"))?;
    let digits = signed.get("Digits").unwrap_or_default();
    let acknowledged = match alert::acknowledge_by_keypress(&hooks.core, &id, digits).await {
        Ok(acknowledged) => acknowledged,
        Err(crate::Error::NotFound(_)) => false,
        Err(e) => return Err(e.into()),
    };
    Ok(xml(keypress_twiml(acknowledged)))
}

async fn sms_incoming(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let sid = match signed.get("MessageSid").or(signed.get("SmsSid")) {
        Some(sid) => Sid::parse(sid).ok_or(HookError::Invalid("MessageSid"))?,
        None => return Err(HookError::Missing("MessageSid")),
    };
    let to = signed.number("To")?;
    let from = voice::caller_number(signed.get("From"));
    let body = signed.get("Body").unwrap_or_default();
    sms::receive(
        &hooks.core,
        hooks.phone.config.replay_window_seconds,
        Some(&format!("sms:{}", sid.as_str())),
        from,
        &to,
        body,
    )
    .await?;
    // Stored, refused or a replay: the provider hears the same.
    Ok(xml(twiml::EMPTY.to_string()))
}

async fn sms_status(State(hooks): Hooks, request: Request) -> HookResult {
    let signed = signed(&hooks, request).await?;
    let sid = signed.sid("MessageSid")?;
    let status = signed.get("MessageStatus").unwrap_or("unknown");
    let status: String = status
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == '-')
        .take(32)
        .collect();
    let core = &hooks.core;
    core.audit_queue.push(
        core.now(),
        Event::new(
            &Actor::System,
            crate::audit::Action::SmsStatus,
            sid.as_str(),
        )
        .detail(&status),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The shared secret of the self-hosted paths, from the query or the `X-Schuilnaam-Secret` header.
fn given_secret<'a>(query: &'a [(String, String)], headers: &'a HeaderMap) -> Option<&'a str> {
    headers
        .get("x-schuilnaam-secret")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "secret")
                .map(|(_, v)| v.as_str())
        })
}

async fn kannel_sms(
    State(hooks): Hooks,
    Extension(connection): Extension<ConnectionInfo>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> HookResult {
    let query = form(uri.query().unwrap_or_default().as_bytes());
    let config = &hooks.phone.config;
    if !kannel::admitted(
        config,
        &config.kannel_secret,
        connection.peer,
        given_secret(&query, &headers),
    ) {
        return Err(forbidden(&hooks, uri.path()));
    }
    if body.len() > kannel::MAX_TEXT_BYTES {
        return Err(HookError::TooLarge);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let to = header("x-kannel-to")
        .and_then(|to| PhoneNumber::from_network(to).ok())
        .ok_or(HookError::Invalid("X-Kannel-To"))?;
    let from = header("x-kannel-from").and_then(|from| PhoneNumber::from_network(from).ok());
    let text = String::from_utf8_lossy(&body);
    sms::receive(
        &hooks.core,
        config.replay_window_seconds,
        None,
        from,
        &to,
        &text,
    )
    .await?;
    // An empty answer: Kannel sends nothing back.
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "",
    )
        .into_response())
}

async fn kannel_dlr(
    State(hooks): Hooks,
    Extension(connection): Extension<ConnectionInfo>,
    headers: HeaderMap,
    uri: Uri,
) -> HookResult {
    let query = form(uri.query().unwrap_or_default().as_bytes());
    let config = &hooks.phone.config;
    if !kannel::admitted(
        config,
        &config.kannel_secret,
        connection.peer,
        given_secret(&query, &headers),
    ) {
        return Err(forbidden(&hooks, uri.path()));
    }
    let status = query
        .iter()
        .find(|(k, _)| k == "status")
        .map(|(_, v)| kannel::delivery_status(v))
        .unwrap_or("unknown");
    let core = &hooks.core;
    core.audit_queue.push(
        core.now(),
        Event::new(&Actor::System, crate::audit::Action::SmsStatus, "kannel").detail(status),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sip_route(
    State(hooks): Hooks,
    Extension(connection): Extension<ConnectionInfo>,
    headers: HeaderMap,
    uri: Uri,
) -> HookResult {
    let query = form(uri.query().unwrap_or_default().as_bytes());
    let config = &hooks.phone.config;
    if !kannel::admitted(
        config,
        &config.sip_secret,
        connection.peer,
        given_secret(&query, &headers),
    ) {
        return Err(forbidden(&hooks, uri.path()));
    }
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let to = param("to").ok_or(HookError::Missing("to"))?;
    let from = param("from").unwrap_or_default();
    let answer = voice::sip_route(&hooks.core, &hooks.phone, from, to).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_json(),
    )
        .into_response())
}
