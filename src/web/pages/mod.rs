//! The worker web app: server-rendered pages on the worker listener at `/`, Dutch first. Every page is
//! an HTML form over the same domain functions the worker API calls (mailbox, mail::reply, alias,
//! partner contacts, worker markers, api_token, the one `Sessions`); nothing here decides anything.
//!
//! Security per page: a `__Host-` session cookie (Secure, HttpOnly, SameSite=Strict) holding a token
//! of the API's own `Sessions`; a CSRF token (an HMAC of the session token) in every form; a CSP of
//! `default-src 'self'` without inline script or style (scripts are allowed only on the device-key
//! page, by nonce, from this relay, with Subresource Integrity); `Cache-Control: no-store`.

mod aliases;
mod assets;
mod auth;
mod compose;
mod duty;
mod html_mail;
mod i18n;
mod inbox;
mod passkeys;
mod security;
mod settings;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

pub use i18n::Lang;

use super::worker_api::WorkerApi;
use crate::audit::Actor;
use crate::clock::Millis;
use crate::crypto::Keyring;
use crate::session::SessionView;
use crate::totp::TotpSecret;

/// Largest form the pages read (logins, notes, markers).
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest message form (text and attachments), like the API's mail limit.
const MAX_MAIL_FORM_BYTES: usize = 16 * 1024 * 1024;
/// How long a TOTP secret shown for enrolment waits for its confirming code.
const PENDING_TOTP_MILLIS: Millis = 15 * 60 * 1000;

/// The pages' state: the worker listener's (core, sessions, limiter) plus the CSRF key and the TOTP
/// secrets shown for enrolment and not yet confirmed. All in memory, like the sessions.
pub struct Pages {
    pub api: Arc<WorkerApi>,
    csrf_key: [u8; 32],
    pending_totp: Mutex<HashMap<[u8; 32], (TotpSecret, Millis)>>,
    /// Passkey login challenges that already logged someone in, until they expire anyway: an
    /// assertion cannot be replayed even by an authenticator that never counts. Only successful
    /// logins add to it, so anonymous traffic cannot grow it.
    spent_challenges: Mutex<HashMap<[u8; 32], Millis>>,
}

type State = axum::extract::State<Arc<Pages>>;

pub fn router(api: Arc<WorkerApi>) -> Router {
    let pages = Arc::new(Pages {
        api,
        csrf_key: crate::crypto::random_bytes::<32>(),
        pending_totp: Mutex::new(HashMap::new()),
        spent_challenges: Mutex::new(HashMap::new()),
    });
    let mail_form = || DefaultBodyLimit::max(MAX_MAIL_FORM_BYTES);
    Router::new()
        .route("/", get(inbox::inbox))
        .route("/inloggen", get(auth::login_page).post(auth::login))
        .route("/uitloggen", post(auth::logout))
        .route(
            "/wachtwoordzin",
            get(auth::passphrase_page_get).post(auth::change_passphrase),
        )
        .route("/tweestaps", get(auth::totp_page).post(auth::confirm_totp))
        .route("/taal", post(auth::switch_language))
        .route("/berichten/{id}", get(inbox::message))
        .route("/berichten/{id}/verwijderen", post(inbox::delete))
        .route("/berichten/{id}/bijlagen/{index}", get(inbox::attachment))
        .route("/berichten/{id}/age", get(inbox::age_file))
        .route("/berichten/{id}/apparaat", get(inbox::device_page))
        .route(
            "/berichten/{id}/antwoord",
            post(compose::reply).layer(mail_form()),
        )
        .route(
            "/schrijven",
            get(compose::write_page)
                .post(compose::send)
                .layer(mail_form()),
        )
        .route("/verzonden", get(compose::sent))
        .route("/aliassen", get(aliases::list).post(aliases::create))
        .route("/aliassen/{address}/notitie", post(aliases::set_note))
        .route(
            "/aliassen/{address}/verbranden",
            get(aliases::burn_page).post(aliases::burn),
        )
        .route(
            "/aliassen/{address}/contacten",
            post(aliases::allow_contact),
        )
        .route(
            "/aliassen/{address}/contacten/verwijderen",
            post(aliases::remove_contact),
        )
        .route("/aliassen/{address}/sms", post(aliases::send_sms))
        .route("/aliassen/{address}/bellen", post(aliases::call))
        .route(
            "/kenmerken",
            get(settings::markers_page).post(settings::set_markers),
        )
        .route("/dienst", get(duty::page))
        .route("/dienst/oproepen", post(duty::page_the_duty))
        .route("/dienst/meldingen/{id}/bevestigen", post(duty::acknowledge))
        .route("/dienst/meldingen/{id}/afhandelen", post(duty::resolve))
        .route(
            "/sleutels",
            get(passkeys::passkeys_page).post(passkeys::add),
        )
        .route("/sleutels/{id}/verwijderen", post(passkeys::remove))
        .route("/sessies", get(settings::sessions_page))
        .route("/sessies/{id}/beeindigen", post(settings::end_session))
        .route("/tokens", post(settings::create_token))
        .route("/tokens/{id}/intrekken", post(settings::revoke_token))
        .route("/static/{version}/{file}", get(assets::serve))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(from_fn_with_state(pages.clone(), security::observe_pages))
        .with_state(pages)
}

impl Pages {
    fn now(&self) -> Millis {
        self.api.core.now()
    }

    /// Keeps a TOTP secret shown to this session until it is confirmed (or replaced, or stale).
    fn hold_totp(&self, token: &str, secret: TotpSecret) {
        let now = self.now();
        let mut pending = lock(&self.pending_totp);
        pending.retain(|_, (_, at)| now - *at < PENDING_TOTP_MILLIS);
        pending.insert(security::token_key(token), (secret, now));
    }

    /// The TOTP secret this session was shown, while still fresh.
    fn held_totp(&self, token: &str) -> Option<TotpSecret> {
        let now = self.now();
        let pending = lock(&self.pending_totp);
        pending
            .get(&security::token_key(token))
            .filter(|(_, at)| now - *at < PENDING_TOTP_MILLIS)
            .map(|(secret, _)| TotpSecret::from_bytes(secret.as_bytes()))
    }

    fn drop_totp(&self, token: &str) {
        lock(&self.pending_totp).remove(&security::token_key(token));
    }

    fn challenge_spent(&self, challenge: &crate::webauthn::Challenge) -> bool {
        lock(&self.spent_challenges).contains_key(challenge.as_bytes())
    }

    fn spend_challenge(&self, challenge: &crate::webauthn::Challenge) {
        let now = self.now();
        let mut spent = lock(&self.spent_challenges);
        spent.retain(|_, at| now - *at < passkeys::CHALLENGE_LIFETIME_MS);
        spent.insert(*challenge.as_bytes(), now);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What every page knows about its request: the language and, when logged in, who asks.
#[derive(Clone)]
pub struct Visitor {
    pub lang: Lang,
    /// The pre-login CSRF cookie's value, when the browser sent one.
    pub pre_token: Option<String>,
    pub session_token: Option<String>,
}

impl Visitor {
    fn of(headers: &HeaderMap) -> Self {
        let cookies = security::cookies(headers);
        Visitor {
            lang: Lang::of_request(
                headers,
                cookies.get(security::LANG_COOKIE).map(String::as_str),
            ),
            pre_token: cookies.get(security::PRE_COOKIE).cloned(),
            session_token: cookies.get(security::SESSION_COOKIE).cloned(),
        }
    }
}

impl FromRequestParts<Arc<Pages>> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _pages: &Arc<Pages>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Visitor::of(&parts.headers))
    }
}

/// A logged-in worker whose one-time passphrase has been changed. Without a live session the
/// request is sent to the login page; with a passphrase still to change, to that page.
pub struct Caller {
    pub lang: Lang,
    pub token: String,
    pub csrf: String,
    pub worker_id: crate::ids::WorkerId,
    pub handle: String,
    pub keyring: Option<Arc<Keyring>>,
}

impl Caller {
    fn actor(&self) -> Actor {
        Actor::Worker(self.handle.clone())
    }

    /// Refuses a form whose CSRF token is missing or wrong: 403, and nothing is changed.
    fn check(&self, pages: &Pages, submitted: &str) -> Result<(), PageError> {
        if security::csrf_matches(&pages.csrf_key, &self.token, submitted) {
            Ok(())
        } else {
            Err(PageError::Forbidden(self.lang))
        }
    }
}

/// A form body. One that cannot be read (a wrong type, too large, not a form) is the pages' own `400`
/// page in the visitor's language, never the framework's text, which names fields and parse errors.
pub struct Form<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Form<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, PageError> {
        let lang = Visitor::of(request.headers()).lang;
        axum::extract::Form::<T>::from_request(request, state)
            .await
            .map(|axum::extract::Form(value)| Form(value))
            .map_err(|_| PageError::BadRequest(lang))
    }
}

/// A query string, refused like `Form` when it cannot be read (`?pagina=abc`).
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        let lang = Visitor::of(&parts.headers).lang;
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|_| PageError::BadRequest(lang))
    }
}

/// Like `Caller`, also while the one-time passphrase is still to be changed.
pub struct AnyCaller(pub Caller, pub bool);

async fn caller_of(parts: &Parts, pages: &Pages) -> Result<(Caller, bool), Response> {
    let visitor = Visitor::of(&parts.headers);
    let lang = visitor.lang;
    let expired = || Redirect::to("/inloggen?verlopen=1").into_response();
    let token = visitor
        .session_token
        .filter(|t| !crate::api_token::looks_like(t))
        .ok_or_else(|| Redirect::to("/inloggen").into_response())?;
    let SessionView {
        worker_id,
        handle,
        keyring,
        must_change_passphrase,
    } = pages
        .api
        .sessions
        .touch(&token, pages.now())
        .ok_or_else(expired)?;
    Ok((
        Caller {
            lang,
            csrf: security::csrf_token(&pages.csrf_key, &token),
            token,
            worker_id,
            handle,
            keyring,
        },
        must_change_passphrase,
    ))
}

impl FromRequestParts<Arc<Pages>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, pages: &Arc<Pages>) -> Result<Self, Response> {
        let (caller, must_change) = caller_of(parts, pages).await?;
        if must_change {
            return Err(Redirect::to("/wachtwoordzin").into_response());
        }
        Ok(caller)
    }
}

impl FromRequestParts<Arc<Pages>> for AnyCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, pages: &Arc<Pages>) -> Result<Self, Response> {
        let (caller, must_change) = caller_of(parts, pages).await?;
        Ok(AnyCaller(caller, must_change))
    }
}

/// What can go wrong on a page, each shown as a page of its own (never JSON, never a cause).
#[derive(Debug)]
pub enum PageError {
    /// A form without the right CSRF token: nothing was changed.
    Forbidden(Lang),
    /// Missing, or someone else's: the same answer.
    NotFound(Lang),
    /// A form that could not be read.
    BadRequest(Lang),
    Busy(Lang),
    Internal(Lang, crate::Error),
}

pub type PageResult<T> = Result<T, PageError>;

impl PageError {
    fn from_error(lang: Lang, error: crate::Error) -> Self {
        match error {
            crate::Error::NotFound(_) => PageError::NotFound(lang),
            crate::Error::Busy => PageError::Busy(lang),
            other => PageError::Internal(lang, other),
        }
    }
}

/// Turns a domain result into a page result in the caller's language.
trait OrPage<T> {
    fn or_page(self, lang: Lang) -> PageResult<T>;
}

impl<T> OrPage<T> for crate::Result<T> {
    fn or_page(self, lang: Lang) -> PageResult<T> {
        self.map_err(|e| PageError::from_error(lang, e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, lang, title, text) = match &self {
            PageError::Forbidden(lang) => (
                StatusCode::FORBIDDEN,
                *lang,
                lang.texts().forbidden_title,
                lang.texts().forbidden,
            ),
            PageError::NotFound(lang) => (
                StatusCode::NOT_FOUND,
                *lang,
                lang.texts().not_found_title,
                lang.texts().not_found,
            ),
            PageError::BadRequest(lang) => (
                StatusCode::BAD_REQUEST,
                *lang,
                lang.texts().error_title,
                lang.texts().invalid_input,
            ),
            PageError::Busy(lang) => (
                StatusCode::SERVICE_UNAVAILABLE,
                *lang,
                lang.texts().error_title,
                lang.texts().busy,
            ),
            PageError::Internal(lang, cause) => {
                tracing::error!(cause = %crate::error::error_chain(cause), "page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    *lang,
                    lang.texts().error_title,
                    lang.texts().error_text,
                )
            }
        };
        let page = views::Problem {
            layout: views::Layout::anonymous(lang, title),
            text,
        };
        (status, views::html(&page)).into_response()
    }
}

/// A redirect after a successful POST (post-redirect-get). `notice` is a fixed code naming what
/// happened (never user input), shown by the page it leads to.
fn see_other(path: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The notice codes a redirect may carry in `?ok=`, and their texts.
fn notice_text(lang: Lang, code: Option<&str>) -> Option<&'static str> {
    let t = lang.texts();
    Some(match code? {
        "verwijderd" => t.message_deleted,
        "verstuurd" => t.sent_ok,
        "wachtwoordzin" => t.passphrase_changed,
        "tweestaps" => t.totp_done,
        "alias" => t.alias_created,
        "notitie" => t.alias_note_saved,
        "verbrand" => t.alias_burned,
        "contact" => t.alias_contact_allowed,
        "contact-weg" => t.alias_contact_removed,
        "kenmerken" => t.markers_saved,
        "sessie" => t.session_ended,
        "token-weg" => t.token_revoked,
        "bevestigd" => t.alert_acknowledged,
        "afgehandeld" => t.alert_resolved,
        "opgeroepen" => t.paged,
        "sms" => t.sms_sent,
        "bellen" => t.call_placed,
        "uitgelogd" => t.logged_out,
        "passkey" => t.passkey_added,
        "passkey-weg" => t.passkey_removed,
        _ => return None,
    })
}

#[derive(serde::Deserialize, Default)]
pub struct NoticeQuery {
    #[serde(default)]
    ok: Option<String>,
}

/// Seconds before the idle timeout at which the page shows its warning.
const IDLE_WARNING_LEAD_SECONDS: u64 = 120;

impl Pages {
    /// The layout of a logged-in page.
    fn layout(&self, caller: &Caller, title: &str, nav: &'static str, here: &str) -> views::Layout {
        let idle = self.api.core.config.session.idle_timeout_seconds;
        let mut layout = views::Layout::anonymous(caller.lang, title);
        layout.user = Some(views::User {
            handle: caller.handle.clone(),
            csrf: caller.csrf.clone(),
        });
        layout.nav = nav;
        layout.here = here.to_string();
        layout.switch_csrf = Some(caller.csrf.clone());
        layout.idle_warn_seconds = idle.saturating_sub(IDLE_WARNING_LEAD_SECONDS).max(1);
        layout
    }
}
