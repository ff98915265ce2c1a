//! The pages' protections: cookies, CSRF tokens, and the response headers every page gets (its own
//! CSP, separate from the API's `default-src 'none'; sandbox`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::Pages;
use crate::metrics::Metrics;

/// The session cookie: the bearer token of one of the worker listener's `Sessions`.
pub const SESSION_COOKIE: &str = "__Host-schuilnaam";
/// Before login: a random value the login form's CSRF token is bound to.
pub const PRE_COOKIE: &str = "__Host-schuilnaam-pre";
/// The language switch's choice.
pub const LANG_COOKIE: &str = "__Host-schuilnaam-taal";

/// The CSP of every page without script: only this relay's own stylesheet, no script at all, no
/// frames, forms posting only here.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'none'; object-src 'none'; \
     img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The CSP of a page with script: scripts only with this response's nonce (and the tags carry
/// Subresource Integrity hashes); everything else as on other pages. `connect-src 'self'` lets the
/// script fetch the sealed file from this relay and nowhere else.
pub fn script_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}'; object-src 'none'; img-src 'self'; \
         style-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// A fresh nonce for one response.
pub fn nonce() -> String {
    data_encoding::BASE64.encode(&crate::crypto::random_bytes::<18>())
}

/// The cookies of a request, by name (the last one wins when a name repeats).
pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// A `Set-Cookie` value: `__Host-` (so Secure, Path=/, no Domain), HttpOnly, SameSite=Strict.
/// `max_age` None: a browser-session cookie; Some(0): delete.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age
        .map(|seconds| format!("; Max-Age={seconds}"))
        .unwrap_or_default();
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}"
    ))
    .expect("cookie values are tokens")
}

/// The key sessions are held under: SHA-256 of the token (as in `Sessions`).
pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The CSRF token of a session (or of a pre-login cookie): an HMAC of its token under this process's
/// random key. Nothing to store, and useless for any other session.
pub fn csrf_token(key: &[u8; 32], token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"schuilnaam csrf\0");
    mac.update(token.as_bytes());
    data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..20])
}

pub fn csrf_matches(key: &[u8; 32], token: &str, submitted: &str) -> bool {
    let expected = csrf_token(key, token);
    crate::crypto::constant_time_eq(expected.as_bytes(), submitted.trim().as_bytes())
}

/// Per page request: a span with the matched route (never the raw URI), the request's time bound,
/// the request metrics, and the pages' headers. A handler that set its own CSP (a script page) or
/// cache policy (a static asset) keeps it.
pub async fn observe_pages(
    axum::extract::State(pages): axum::extract::State<Arc<Pages>>,
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
    let mut response =
        match tokio::time::timeout(crate::web::REQUEST_TIMEOUT, next.run(request)).await {
            Ok(response) => response,
            Err(_) => {
                let mut response = Response::new(axum::body::Body::from("timeout"));
                *response.status_mut() = axum::http::StatusCode::REQUEST_TIMEOUT;
                response
            }
        };
    let core = &pages.api.core;
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
        "page"
    );
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_their_session_and_key() {
        let key = [7u8; 32];
        let token = csrf_token(&key, "session-a");
        assert!(csrf_matches(&key, "session-a", &token));
        assert!(!csrf_matches(&key, "session-b", &token));
        assert!(!csrf_matches(&[8u8; 32], "session-a", &token));
        assert!(!csrf_matches(&key, "session-a", ""));
    }

    #[test]
    fn cookies_are_parsed_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-schuilnaam=tok; b=2"),
        );
        let jar = cookies(&headers);
        assert_eq!(jar.get(SESSION_COOKIE).map(String::as_str), Some("tok"));
        assert_eq!(jar.get("b").map(String::as_str), Some("2"));
    }

    #[test]
    fn cookies_are_host_prefixed_secure_httponly_strict() {
        let value = set_cookie(SESSION_COOKIE, "t", None);
        let text = value.to_str().unwrap();
        assert!(text.starts_with("__Host-"));
        for part in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(text.contains(part), "{text}");
        }
        assert!(!text.contains("Domain"));
    }

    #[test]
    fn page_csp_has_no_unsafe_inline() {
        assert!(!PAGE_CSP.contains("unsafe"));
        assert!(!script_csp("abc").contains("unsafe"));
        assert!(PAGE_CSP.contains("frame-ancestors 'none'"));
    }
}
