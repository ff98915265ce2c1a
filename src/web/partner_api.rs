//! The partner API, served only on the mutual-TLS listener: `POST /v1/messages` delivers a message to
//! an alias. The organisation is the one its client certificate is pinned to. Every refusal (unknown
//! alias, burned alias, unpinned or disabled organisation) is the same response, decided after the body
//! was read, so nobody can probe which aliases exist.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::json::StrictJson;
use super::{observe, ConnectionInfo};
use crate::alias::Address;
use crate::core::Core;
use crate::intake::{self, Claim, Rejected, Submission};
use crate::mailbox::{Channel, MessageKind};

/// Longest subject, in characters (the RFC 5322 line limit).
pub const MAX_SUBJECT_CHARS: usize = 998;

pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/v1/messages", post(post_message))
        .route("/v1/ping", get(ping))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(
            core.config.partner_api.max_body_bytes,
        ))
        .layer(from_fn_with_state(core.clone(), observe))
        .with_state(core)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    to: String,
    subject: String,
    body: String,
    #[serde(default)]
    urgent: bool,
    #[serde(default)]
    kind: MessageKind,
}

struct ValidMessage {
    to: Address,
    subject: String,
    body: String,
    urgent: bool,
    kind: MessageKind,
}

fn validate(message: PostMessage) -> ApiResult<ValidMessage> {
    let to = Address::parse(&message.to)
        .map_err(|e| ApiError::BadRequest(format!("field `to`: {e}")))?;
    if message.subject.chars().count() > MAX_SUBJECT_CHARS {
        return Err(ApiError::BadRequest(format!(
            "field `subject`: at most {MAX_SUBJECT_CHARS} characters"
        )));
    }
    // U+2028 and U+2029 are line breaks too, to the programs that show a subject.
    if message
        .subject
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
    {
        return Err(ApiError::BadRequest(
            "field `subject`: no line breaks or control characters".into(),
        ));
    }
    // Tabs and line breaks are text; every other control character (NUL, escape sequences) is not.
    if message
        .body
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ApiError::BadRequest(
            "field `body`: no control characters other than tab and line breaks".into(),
        ));
    }
    if message.subject.trim().is_empty() && message.body.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "a message needs a subject or a body".into(),
        ));
    }
    Ok(ValidMessage {
        to,
        subject: message.subject,
        body: message.body,
        urgent: message.urgent,
        kind: message.kind,
    })
}

async fn post_message(
    State(core): State<Arc<Core>>,
    Extension(connection): Extension<ConnectionInfo>,
    StrictJson(message): StrictJson<PostMessage>,
) -> ApiResult<impl IntoResponse> {
    let message = validate(message)?;
    let submission = Submission {
        to: message.to,
        claim: Claim {
            pinned_certificate: connection.client_certificate,
            ..Claim::default()
        },
        channel: Channel::Api,
        kind: message.kind,
        urgent: message.urgent,
        sender_label: String::new(),
        subject: message.subject,
        body: message.body,
        mail: None,
    };
    match intake::submit(&core, submission).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id })))),
        Err(Rejected::Refused(_)) => Err(ApiError::NotAccepted),
        Err(Rejected::Failed(e)) => Err(e.into()),
    }
}

/// Does no work: the baseline for the delivery benchmark and a liveness probe for partners.
async fn ping() -> &'static str {
    "pong"
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, subject: &str, body: &str) -> PostMessage {
        PostMessage {
            to: to.into(),
            subject: subject.into(),
            body: body.into(),
            urgent: false,
            kind: MessageKind::Bericht,
        }
    }

    #[test]
    fn validation_names_the_bad_field() {
        let ok = validate(message("abc@relay.example", "Onderwerp", "Tekst")).unwrap();
        assert_eq!(ok.to.as_str(), "abc@relay.example");
        let err = validate(message("not an alias", "s", "b")).err().unwrap();
        assert!(err.to_string().contains("`to`"), "{err}");
        let err = validate(message("a@relay.example", "a\r\nBcc: x", "b"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("`subject`"), "{err}");
        let long = "x".repeat(MAX_SUBJECT_CHARS + 1);
        assert!(validate(message("a@relay.example", &long, "b")).is_err());
        assert!(validate(message("a@relay.example", " ", "\n")).is_err());
        let err = validate(message("a@relay.example", "s", "nul\0byte"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("`body`"), "{err}");
        let err = validate(message("a@relay.example", "s", "esc\u{1b}[2J"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("`body`"), "{err}");
        assert!(validate(message("a@relay.example", "s", "regel 1\r\n\tregel 2")).is_ok());
    }
}
