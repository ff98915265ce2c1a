//! Mail from the worker: a reply to a message, or a new message from one of their aliases.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{message_id, open_own_letter, Caller, State};
use crate::alias::Address;
use crate::mail::compose::Attachment;
use crate::mail::outbound::Kind;
use crate::mail::reply::{self, Draft, SendError, Sender};
use crate::mail::{EmailAddress, MsgId};
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttachmentIn {
    filename: String,
    content_type: String,
    /// Base64.
    data: String,
}

impl AttachmentIn {
    fn decode(self) -> ApiResult<Attachment> {
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
        Ok(Attachment {
            filename: self.filename,
            content_type: self.content_type.to_ascii_lowercase(),
            data,
        })
    }
}

fn decode_all(attachments: Vec<AttachmentIn>) -> ApiResult<Vec<Attachment>> {
    attachments.into_iter().map(AttachmentIn::decode).collect()
}

impl From<SendError> for ApiError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::NotConfigured => ApiError::Conflict(error.to_string()),
            SendError::NotYourAlias | SendError::RecipientNotAllowed => {
                ApiError::RecipientNotAllowed(error.to_string())
            }
            SendError::NotByMail => ApiError::Conflict(error.to_string()),
            SendError::Invalid(message) => ApiError::BadRequest(message),
            SendError::Leak(leak) => ApiError::IdentityLeak(leak.to_string()),
            SendError::Attachment(refused) => ApiError::AttachmentRefused(refused.to_string()),
            SendError::Internal(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplyRequest {
    body: String,
    #[serde(default)]
    attachments: Vec<AttachmentIn>,
}

/// Answers a mail message from the alias it was sent to, to the address that sent it.
pub(super) async fn reply(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(request): StrictJson<ReplyRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.session_token()?;
    let id = message_id(&id)?;
    let (_, letter) = open_own_letter(
        &api.core,
        &caller,
        &id,
        "your key is not on the server: open the message on your device and use POST /v1/mail",
    )
    .await?;
    let draft = Draft::answering(&letter, request.body, decode_all(request.attachments)?)?;
    let sender = Sender {
        worker_id: &caller.worker_id,
        handle: &caller.handle,
    };
    let queued = reply::send(&api.core, sender, draft).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!(queued))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MailRequest {
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
pub(super) async fn send(
    axum::extract::State(api): State,
    caller: Caller,
    StrictJson(request): StrictJson<MailRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.session_token()?;
    let kind = if request.in_reply_to.is_some() {
        Kind::Reply
    } else {
        Kind::Mail
    };
    let message_id = |text: &String| {
        MsgId::parse(text).map_err(|_| {
            ApiError::BadRequest(
                "in_reply_to and references are Message-IDs (local@domain, at most 250 characters)"
                    .into(),
            )
        })
    };
    let draft = Draft {
        from_alias: Address::parse(&request.from)
            .map_err(|e| ApiError::BadRequest(format!("field `from`: {e}")))?,
        to: EmailAddress::parse_recipient(&request.to)
            .map_err(|e| ApiError::BadRequest(format!("field `to`: {e}")))?,
        subject: request.subject,
        body: request.body,
        attachments: decode_all(request.attachments)?,
        in_reply_to: request.in_reply_to.as_ref().map(message_id).transpose()?,
        references: request
            .references
            .iter()
            .map(message_id)
            .collect::<ApiResult<_>>()?,
        kind,
    };
    let sender = Sender {
        worker_id: &caller.worker_id,
        handle: &caller.handle,
    };
    let queued = reply::send(&api.core, sender, draft).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!(queued))))
}
