//! The worker's messages: list, open, fetch the sealed age file, download an attachment, delete.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{message_id, open_own_letter, Caller, State};
use crate::mailbox::{self, Summary};
use crate::web::error::{ApiError, ApiResult};

pub(super) async fn list(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<Json<Vec<Summary>>> {
    Ok(Json(
        mailbox::list_for_worker(&api.core.store, &caller.worker_id).await?,
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

pub(super) async fn open(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<OpenedMessage>> {
    let id = message_id(&id)?;
    let (summary, letter) = open_own_letter(
        &api.core,
        &caller,
        &id,
        "your key is not on the server: fetch /v1/messages/{id}/age and open it on your device",
    )
    .await?;
    mailbox::record_access(
        &api.core.store,
        api.core.now(),
        &caller.actor(),
        &id,
        "opened",
    )
    .await?;
    Ok(Json(OpenedMessage {
        summary,
        from: letter.from,
        subject: letter.subject,
        body: letter.body,
        reply_to: letter.reply_to,
        attachments: letter.attachments,
    }))
}

pub(super) async fn age_file(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let core = &api.core;
    let id = message_id(&id)?;
    let (_, sealed) = mailbox::sealed_for_worker(&core.store, &caller.worker_id, &id).await?;
    mailbox::record_access(&core.store, core.now(), &caller.actor(), &id, "age-file").await?;
    // Ids are 32 hex digits (checked by the lookup), so the file name is well-formed.
    Ok(download(sealed, &format!("{id}.age")))
}

/// One attachment of a mail message, opened with the session's identity. Always served as a
/// download, never rendered.
pub(super) async fn attachment(
    axum::extract::State(api): State,
    caller: Caller,
    Path((id, index)): Path<(String, String)>,
) -> ApiResult<Response> {
    let core = &api.core;
    // Parsed here, not by the extractor, so that a bad index gets this API's JSON error.
    let index: u32 = index
        .parse()
        .map_err(|_| ApiError::BadRequest("the attachment index is a number: 0, 1, …".into()))?;
    let id = message_id(&id)?;
    let (_, letter) = open_own_letter(
        core,
        &caller,
        &id,
        "your key is not on the server: fetch the age file instead",
    )
    .await?;
    let data = core
        .cpu
        .run(move || letter.attachment(index))
        .await?
        .ok_or(ApiError::NotFound)?;
    mailbox::record_access(&core.store, core.now(), &caller.actor(), &id, "attachment").await?;
    Ok(download(data, &format!("bijlage-{index}")))
}

/// Bytes served as a file to save, never to render.
fn download(data: Vec<u8>, filename: &str) -> Response {
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

pub(super) async fn delete(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = message_id(&id)?;
    mailbox::delete_for_worker(
        &api.core.store,
        api.core.now(),
        &caller.actor(),
        &caller.worker_id,
        &id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
