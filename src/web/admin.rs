//! The loopback admin listener (plain HTTP): `/healthz` and Prometheus `/metrics`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::SharedState;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<SharedState>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(state.store.pool()).await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(cause = %e, "health check: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let gauges = [
        (
            "sessions",
            "Live worker sessions.",
            state.sessions.len() as u64,
        ),
        (
            "unlocked_identities",
            "Sessions holding an unlocked identity in memory.",
            state.sessions.unlocked_identities() as u64,
        ),
        (
            "smtp_data_memory_bytes",
            "Message bytes SMTP sessions hold in memory right now (in 64 KiB steps).",
            state.smtp_budget.held_bytes() as u64,
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&gauges),
    )
}
