//! On-call alerts and duty: page a team by hand, list my alerts, acknowledge and resolve one, and
//! who is on call now and next for each of my teams. A worker sees the alerts of their teams and
//! those addressed to them; any other alert is "not found".

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{Caller, State};
use crate::ids::AlertId;
use crate::oncall::alert::{self, AlertView, Closed, Closer, Raised, Via};
use crate::oncall::NowAndNext;
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;
use crate::worker::Handle;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageRequest {
    team: String,
}

/// `POST /v1/alerts {"team": "let-jb"}`: pages the team's duty by hand (the caller must be a
/// member).
pub(super) async fn page(
    axum::extract::State(api): State,
    caller: Caller,
    StrictJson(request): StrictJson<PageRequest>,
) -> ApiResult<(StatusCode, Json<Raised>)> {
    let team = Handle::parse(&request.team).map_err(|_| ApiError::NotFound)?;
    let core = &api.core;
    let raised = alert::page(
        &core.store,
        core.now(),
        &team,
        &caller.actor(),
        Some(&caller.worker_id),
    )
    .await?;
    core.oncall.wake();
    Ok((StatusCode::CREATED, Json(raised)))
}

/// `GET /v1/alerts` (open and acknowledged), `GET /v1/alerts?state=all` (resolved ones too).
pub(super) async fn list(
    axum::extract::State(api): State,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<AlertView>>> {
    let all = match query.as_deref() {
        None | Some("") => false,
        Some("state=all") => true,
        Some(_) => return Err(ApiError::BadRequest("the only query is ?state=all".into())),
    };
    Ok(Json(
        alert::list_for_worker(&api.core.store, &caller.worker_id, all).await?,
    ))
}

pub(super) async fn get(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertView>> {
    let id = AlertId::parse(&id).ok_or(ApiError::NotFound)?;
    Ok(Json(
        alert::get_for_worker(&api.core.store, &caller.worker_id, &id).await?,
    ))
}

#[derive(Serialize)]
pub(super) struct ClosedResponse {
    #[serde(flatten)]
    alert: AlertView,
    result: Closed,
}

/// `POST /v1/alerts/{id}/ack`: no further notification of the alert goes out.
pub(super) async fn acknowledge(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClosedResponse>> {
    let id = AlertId::parse(&id).ok_or(ApiError::NotFound)?;
    close(&api, &caller, &id, false).await
}

/// `POST /v1/alerts/{id}/resolve`.
pub(super) async fn resolve(
    axum::extract::State(api): State,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ClosedResponse>> {
    let id = AlertId::parse(&id).ok_or(ApiError::NotFound)?;
    close(&api, &caller, &id, true).await
}

async fn close(
    api: &super::WorkerApi,
    caller: &Caller,
    id: &AlertId,
    resolving: bool,
) -> ApiResult<Json<ClosedResponse>> {
    let core = &api.core;
    let closer = Closer::Worker {
        id: &caller.worker_id,
        handle: &caller.handle,
    };
    let result = if resolving {
        alert::resolve(&core.store, core.now(), id, closer, Via::Api).await?
    } else {
        alert::acknowledge(&core.store, core.now(), id, closer, Via::Api).await?
    };
    let alert = alert::get_for_worker(&core.store, &caller.worker_id, id).await?;
    Ok(Json(ClosedResponse { alert, result }))
}

/// `GET /v1/oncall`: for each of the caller's teams with a rota, who is on call now and next.
pub(super) async fn duty(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<Json<Vec<NowAndNext>>> {
    let core = &api.core;
    let now = core.now();
    let mut teams = Vec::new();
    for team_id in crate::oncall::teams_of(&core.store, &caller.worker_id).await? {
        teams.push(
            crate::oncall::now_and_next(&core.store, core.oncall.tz(), &team_id, now, now).await?,
        );
    }
    Ok(Json(teams))
}
