//! The HTTP boundary's one error type and its mapping to responses. Clients get a stable code and a
//! plain sentence; internal causes go to the log (without content or identities), never to the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{error_chain, Error};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the request body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than this endpoint accepts")]
    PayloadTooLarge,
    #[error("log in first: the session has ended or the token is not valid")]
    Unauthenticated,
    #[error("login failed: handle, passphrase or code is not correct")]
    LoginFailed,
    /// The one answer to every refused delivery: unknown alias, burned alias, unauthorised sender.
    #[error("the message was not accepted: the address is unknown or you may not write to it")]
    NotAccepted,
    #[error("change your one-time passphrase first (POST /v1/passphrase)")]
    PassphraseChangeRequired,
    #[error("this needs a login with your passphrase, not an API token")]
    LoginSessionRequired,
    #[error("confirm with your current passphrase (field `passphrase`)")]
    PassphraseNotConfirmed,
    #[error("not found")]
    NotFound,
    #[error("this method is not allowed here")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("too many attempts; try again later")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("{0}")]
    RecipientNotAllowed(String),
    #[error("{0}")]
    IdentityLeak(String),
    #[error("{0}")]
    AttachmentRefused(String),
    #[error("the relay is busy; try again in a moment")]
    Busy,
    #[error("the request took too long")]
    Timeout,
    #[error("internal error")]
    Internal(#[source] Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::LoginFailed => (StatusCode::UNAUTHORIZED, "login_failed"),
            ApiError::NotAccepted => (StatusCode::FORBIDDEN, "not_accepted"),
            ApiError::PassphraseChangeRequired => {
                (StatusCode::FORBIDDEN, "passphrase_change_required")
            }
            ApiError::LoginSessionRequired => (StatusCode::FORBIDDEN, "login_session_required"),
            ApiError::PassphraseNotConfirmed => (StatusCode::FORBIDDEN, "passphrase_not_confirmed"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::RecipientNotAllowed(_) => (StatusCode::FORBIDDEN, "recipient_not_allowed"),
            ApiError::IdentityLeak(_) => (StatusCode::UNPROCESSABLE_ENTITY, "identity_leak"),
            ApiError::AttachmentRefused(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "attachment_refused")
            }
            ApiError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            ApiError::Timeout => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Invalid(message) => ApiError::BadRequest(message),
            Error::NotFound(_) => ApiError::NotFound,
            Error::Conflict(message) => ApiError::Conflict(message),
            Error::Busy => ApiError::Busy,
            other => ApiError::Internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %error_chain(cause), "request failed");
        }
        let body = Body {
            error: code,
            message: self.to_string(),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::TooManyRequests {
            retry_after_seconds,
        } = self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds.max(1)),
            );
        }
        response
    }
}
