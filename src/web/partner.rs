//! The partner API, served only on the mutual-TLS listener: `POST /v1/messages` delivers a message to
//! an alias. The organisation is the one its client certificate is pinned to. Every refusal (unknown
//! alias, burned alias, unpinned or disabled organisation) is the same response, decided after the body
//! was read, so nobody can probe which aliases exist.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::json::StrictJson;
use super::{observe, ConnectionInfo, SharedState};
use crate::alias::{self, Address};
use crate::audit::{self, Actor, Event};
use crate::mailbox::{Channel, Incoming, MessageKind};
use crate::metrics::Metrics;
use crate::partner::{self, Refusal};

/// Longest subject, in characters (the RFC 5322 line limit).
pub const MAX_SUBJECT_CHARS: usize = 998;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/v1/messages", post(post_message))
        .route("/v1/ping", get(ping))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(
            state.config.partner_api.max_body_bytes,
        ))
        .layer(from_fn_with_state(state.clone(), observe))
        .with_state(state)
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
    if message.subject.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "field `subject`: no line breaks or control characters".into(),
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
    State(state): State<SharedState>,
    Extension(connection): Extension<ConnectionInfo>,
    StrictJson(message): StrictJson<PostMessage>,
) -> ApiResult<impl IntoResponse> {
    let message = validate(message)?;
    let sender = match &connection.client_certificate {
        Some(fingerprint) => partner::by_certificate(&state.store, fingerprint).await?,
        None => None,
    };
    let resolution = alias::resolve(&state.store, &message.to).await?;
    let actor = sender
        .as_ref()
        .map(|partner| Actor::Partner(partner.name.clone()))
        .unwrap_or(Actor::Anonymous);
    let mailbox_id = match partner::decide(sender.as_ref(), resolution) {
        Ok(mailbox_id) => mailbox_id,
        Err(refusal) => return Err(refuse(&state, &actor, &message.to, refusal).await),
    };
    let sender = sender.expect("decide accepts only identified senders");
    let delivered = state
        .deliverer
        .deliver(
            state.now(),
            &actor,
            Incoming {
                mailbox_id,
                alias: message.to.clone(),
                organisation: Some((sender.id, sender.name)),
                sender_label: String::new(),
                channel: Channel::Api,
                kind: message.kind,
                urgent: message.urgent,
                subject: message.subject,
                body: message.body,
                mail: None,
                require_live_alias: true,
            },
        )
        .await;
    match delivered {
        Ok(id) => {
            Metrics::inc(&state.metrics.messages_delivered_total);
            Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "id": id }))))
        }
        // Nobody to seal to (a team without members): refuse like an unknown alias; the log tells the
        // operator to add members.
        Err(crate::Error::EmptyMailbox) => {
            tracing::warn!("delivery refused: the mailbox has no members");
            Err(refuse(&state, &actor, &message.to, Refusal::EmptyMailbox).await)
        }
        Err(crate::Error::AliasGone) => {
            Err(refuse(&state, &actor, &message.to, Refusal::BurnedAlias).await)
        }
        Err(e) => Err(e.into()),
    }
}

/// Audits a refusal and returns the one neutral answer. The typed address is recorded only when it is
/// one of the relay's aliases: anything else could be a person's real address.
async fn refuse(state: &SharedState, actor: &Actor, to: &Address, refusal: Refusal) -> ApiError {
    Metrics::inc(&state.metrics.messages_refused_total);
    let detail = format!("channel=api reason={}", refusal.as_str());
    let subject = match alias::resolve(&state.store, to).await {
        Ok(alias::Resolution::Unknown) | Err(_) => "unknown-alias",
        Ok(_) => to.as_str(),
    };
    if let Err(e) = audit::record(
        &state.store,
        state.now(),
        Event::new(actor, "message.refused", subject).detail(&detail),
    )
    .await
    {
        return e.into();
    }
    ApiError::NotAccepted
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
    }
}
