//! The worker's identity markers for the leak guard (stored as keyed hashes only).

use axum::Json;
use serde::Deserialize;

use super::{Caller, State};
use crate::mail::leak::MarkerKind;
use crate::web::error::{ApiError, ApiResult};
use crate::web::json::StrictJson;
use crate::worker;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MarkersRequest {
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

/// Most markers a worker may register.
const MAX_MARKERS: usize = 100;

fn counts_json(counts: &[(MarkerKind, usize)]) -> serde_json::Value {
    serde_json::Value::Object(
        counts
            .iter()
            .map(|(kind, count)| (kind.as_str().to_string(), serde_json::json!(count)))
            .collect(),
    )
}

/// Replaces the worker's identity markers.
pub(super) async fn set(
    axum::extract::State(api): State,
    caller: Caller,
    StrictJson(request): StrictJson<MarkersRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    caller.session_token()?;
    let core = &api.core;
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
    if entries.len() > MAX_MARKERS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_MARKERS} markers"
        )));
    }
    let counts = worker::set_markers(
        &core.store,
        &core.server_key,
        core.now(),
        &caller.worker_id,
        &caller.handle,
        &entries,
    )
    .await?;
    Ok(Json(counts_json(&counts)))
}

/// How many markers of each kind are registered (the markers themselves are not kept).
pub(super) async fn counts(
    axum::extract::State(api): State,
    caller: Caller,
) -> ApiResult<Json<serde_json::Value>> {
    let counts = worker::marker_counts(&api.core.store, &caller.worker_id).await?;
    Ok(Json(counts_json(&counts)))
}
