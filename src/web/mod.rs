//! HTTP glue only: routers for the partner API (mutual TLS listener), the worker API and web app, and
//! the loopback admin listener; request spans and response headers. Decisions live in the domain
//! modules.

pub mod admin;
pub mod error;
pub mod json;
pub mod pages;
pub mod partner_api;
pub mod phone_hooks;
pub mod serve;
pub mod worker_api;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::core::Core;
use crate::metrics::Metrics;
use crate::partner::Fingerprint;

/// The worker listener's router: the web app's pages (at `/`) and the JSON API (under `/v1`), each
/// with its own response headers; an unknown path gets the API's JSON "not found".
pub fn worker_router(api: Arc<worker_api::WorkerApi>) -> axum::Router {
    pages::router(api.clone()).merge(worker_api::router(api))
}

/// Facts about the connection a request arrived on, attached by the TLS listener. The client address
/// is used for rate limiting only and is never logged.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: IpAddr,
    /// SHA-256 of the client certificate (partner listener only).
    pub client_certificate: Option<Fingerprint>,
}

/// The longest a request may take, body upload included; a client trickling bytes is cut off.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One span per request with the matched route (never the raw URI, which could hold an id worth
/// hiding), the status and the duration. Also bounds the request's time, counts requests and sets
/// protective headers.
pub async fn observe(
    core: axum::extract::State<Arc<Core>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().clone();
    let started = Instant::now();
    let mut response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::Timeout),
    };
    let status = response.status();
    Metrics::inc(&core.metrics.http_requests_total);
    if status.is_server_error() {
        Metrics::inc(&core.metrics.http_server_errors_total);
    }
    tracing::info!(
        %method,
        route,
        status = status.as_u16(),
        millis = started.elapsed().as_millis() as u64,
        "request"
    );
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    // The API serves data, never pages: a browser must not run, frame or load anything from it.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; sandbox"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
