//! The loopback admin listener (plain HTTP): `/healthz` and Prometheus `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::core::Core;

/// A gauge another adapter exposes: name, help text, and how to read it now.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub read: Box<dyn Fn() -> u64 + Send + Sync>,
}

pub struct AdminState {
    pub core: Arc<Core>,
    pub gauges: Vec<Gauge>,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    match state.core.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(cause = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let cpu_jobs = state.core.cpu.running() as u64;
    let mut gauges: Vec<(&str, &str, u64)> = state
        .gauges
        .iter()
        .map(|gauge| (gauge.name, gauge.help, (gauge.read)()))
        .collect();
    gauges.push((
        "cpu_jobs_running",
        "CPU-heavy jobs (composing, cleaning, sealing, parsing) running off the async threads.",
        cpu_jobs,
    ));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.core.metrics.render(&gauges),
    )
}
