//! API tokens the worker creates for the CLI reader.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;

use super::{Caller, State};
use crate::api_token::{self, TokenId};
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;
use crate::web::ConnectionInfo;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    label: String,
    /// The worker's current passphrase: a session alone does not mint a token that outlives it.
    #[serde(default)]
    passphrase: String,
    #[serde(default = "default_token_days")]
    expires_in_days: u32,
}

fn default_token_days() -> u32 {
    30
}

pub(super) async fn create(
    axum::extract::State(api): State,
    Extension(connection): Extension<ConnectionInfo>,
    caller: Caller,
    StrictJson(request): StrictJson<NewToken>,
) -> ApiResult<(StatusCode, Json<api_token::Created>)> {
    caller.session_token()?;
    super::auth::confirm_passphrase_of(
        &api,
        connection.peer,
        &caller.worker_id,
        &caller.handle,
        request.passphrase,
    )
    .await?;
    let created = api_token::create(
        &api.core.store,
        api.core.now(),
        &caller.actor(),
        &caller.worker_id,
        &request.label,
        request.expires_in_days,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

pub(super) async fn list(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<Json<Vec<api_token::Info>>> {
    caller.session_token()?;
    Ok(Json(
        api_token::list(&api.core.store, &caller.worker_id).await?,
    ))
}

pub(super) async fn revoke(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.session_token()?;
    let id = TokenId::parse(&id).ok_or(ApiError::NotFound)?;
    api_token::revoke(
        &api.core.store,
        api.core.now(),
        &caller.actor(),
        &caller.worker_id,
        &id,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
