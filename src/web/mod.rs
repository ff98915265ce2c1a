//! HTTP glue only: routers for the partner API (mutual TLS listener), the worker API, and the loopback
//! admin listener; request spans and response headers. Decisions live in the domain modules.

pub mod admin;
pub mod error;
pub mod json;
pub mod partner;
pub mod serve;
pub mod worker;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::alias::Domain;
use crate::clock::{Millis, SharedClock};
use crate::config::Config;
use crate::crypto::ServerKey;
use crate::metrics::Metrics;
use crate::partner::Fingerprint;
use crate::session::{LoginLimiter, Sessions};
use crate::store::Store;

/// Everything a handler may use.
pub struct AppState {
    pub store: Store,
    pub server_key: std::sync::Arc<ServerKey>,
    pub deliverer: crate::mailbox::Deliverer,
    pub dkim: std::sync::Arc<crate::mail::dkim::DkimKey>,
    /// `None` when no smarthost is configured (outbound mail off).
    pub smarthost: Option<std::sync::Arc<crate::mail::outbound::Smarthost>>,
    pub outbound_wake: std::sync::Arc<tokio::sync::Notify>,
    pub authenticator: crate::mail::auth::Authenticator,
    pub smtp_limits: crate::mail::smtp::SmtpLimits,
    /// Memory all SMTP sessions together may hold in message bytes while receiving DATA.
    pub smtp_budget: crate::mail::smtp::DataBudget,
    pub config: Config,
    pub domain: Domain,
    pub clock: SharedClock,
    pub sessions: Sessions,
    pub limiter: LoginLimiter,
    pub metrics: Metrics,
    /// Bounds how many argon2/scrypt computations (64-256 MiB each) run at once.
    pub kdf_slots: tokio::sync::Semaphore,
}

/// Parallel passphrase computations allowed; more wait, and past `KDF_WAIT` are told to retry.
pub const KDF_SLOTS: usize = 4;
const KDF_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Waits for a passphrase-computation slot; `Busy` when the relay is saturated.
    pub async fn kdf_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, error::ApiError> {
        match tokio::time::timeout(KDF_WAIT, self.kdf_slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(error::ApiError::Busy),
        }
    }

    pub fn worker_crypto(&self) -> crate::worker::Crypto<'_> {
        crate::worker::Crypto {
            server_key: &self.server_key,
            scrypt_work_factor: self.config.crypto.scrypt_work_factor,
        }
    }
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
    state: axum::extract::State<SharedState>,
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
    Metrics::inc(&state.metrics.http_requests_total);
    if status.is_server_error() {
        Metrics::inc(&state.metrics.http_server_errors_total);
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
