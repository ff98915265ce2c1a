//! Texts and calls from the worker's alias numbers: `POST /v1/sms` (sent from the alias number through
//! the leak guard) and `POST /v1/calls` (click-to-call: the relay rings the worker's own phone from the
//! alias number, then bridges to the destination with the alias as caller ID). Only to a partner's
//! registered number or a contact allowed on that alias.

use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{Caller, State};
use crate::phone::provider::ProviderError;
use crate::phone::sms::{self, SendError};
use crate::phone::voice::{self, CallOutError};
use crate::phone::{Phone, PhoneNumber};
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;

impl From<CallOutError> for ApiError {
    fn from(error: CallOutError) -> Self {
        match error {
            CallOutError::NotYourAlias | CallOutError::NotAllowed => {
                ApiError::RecipientNotAllowed(error.to_string())
            }
            CallOutError::NoNumber => ApiError::Conflict(error.to_string()),
            CallOutError::Provider(e) => e.into(),
            CallOutError::Internal(e) => e.into(),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Unavailable(_) => ApiError::Busy,
            other => ApiError::Conflict(other.to_string()),
        }
    }
}

impl From<SendError> for ApiError {
    fn from(error: SendError) -> Self {
        match error {
            SendError::Route(e) => e.into(),
            SendError::Invalid => ApiError::BadRequest(error.to_string()),
            SendError::Leak(leak) => ApiError::IdentityLeak(leak.to_string()),
            SendError::Provider(e) => e.into(),
            SendError::Internal(e) => e.into(),
        }
    }
}

fn phone_of(core: &crate::core::Core) -> ApiResult<&Phone> {
    core.phone
        .as_deref()
        .ok_or_else(|| ApiError::Conflict("phone aliases are not enabled on this relay".into()))
}

fn destination(to: &str) -> ApiResult<PhoneNumber> {
    PhoneNumber::parse(to).map_err(|_| {
        ApiError::BadRequest("field `to`: not a phone number (use +31612345678)".into())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SmsRequest {
    /// The alias (its address or its number).
    from_alias: String,
    to: String,
    body: String,
}

pub(super) async fn send_sms(
    axum::extract::State(api): State,
    caller: Caller,
    StrictJson(request): StrictJson<SmsRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.session_token()?;
    let core = &api.core;
    let phone = phone_of(core)?;
    let to = destination(&request.to)?;
    let sid = sms::send(
        core,
        phone,
        &caller.worker_id,
        &caller.handle,
        &request.from_alias,
        &to,
        &request.body,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "sid": sid })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallRequest {
    from_alias: String,
    to: String,
}

pub(super) async fn call(
    axum::extract::State(api): State,
    caller: Caller,
    StrictJson(request): StrictJson<CallRequest>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.session_token()?;
    let core = &api.core;
    let phone = phone_of(core)?;
    let to = destination(&request.to)?;
    let sid = voice::click_to_call(
        core,
        phone,
        &caller.worker_id,
        &caller.handle,
        &request.from_alias,
        &to,
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "sid": sid })),
    ))
}
