//! The worker's own aliases: list, add one per case, burn one.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::Json;

use super::{Caller, State};
use crate::alias::{self, Address};
use crate::core::Core;
use crate::web::error::{ApiError, ApiResult};
use crate::worker::{self, Handle, WorkerRef};

async fn me(core: &Core, caller: &Caller) -> ApiResult<WorkerRef> {
    let handle = Handle::parse(&caller.handle)?;
    Ok(worker::find(&core.store, &handle).await?)
}

pub(super) async fn list(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<Json<Vec<alias::AliasInfo>>> {
    let me = me(&api.core, &caller).await?;
    Ok(Json(
        alias::list_for_mailbox(&api.core.store, &me.mailbox_id).await?,
    ))
}

pub(super) async fn add(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    caller.session_token()?;
    let core = &api.core;
    let me = me(core, &caller).await?;
    let address =
        worker::add_alias(&core.store, &core.domain, core.now(), &caller.actor(), &me).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "address": address })),
    ))
}

/// Burns one of the worker's own personal aliases at once. Someone else's alias is "not found".
pub(super) async fn burn(
    axum::extract::State(api): State,
    caller: Caller,
    Path(address): Path<String>,
) -> ApiResult<StatusCode> {
    caller.session_token()?;
    let core = &api.core;
    let address = Address::parse(&address).map_err(|_| ApiError::NotFound)?;
    let me = me(core, &caller).await?;
    if alias::mailbox_of(&core.store, &address).await? != me.mailbox_id {
        return Err(ApiError::NotFound);
    }
    alias::burn_audited(&core.store, core.now(), &caller.actor(), &address).await?;
    Ok(StatusCode::NO_CONTENT)
}
