//! Logging in and out, the first-login passphrase change, TOTP enrolment, and the language switch.
//! Logins go through the same function as the API's (`worker_api::attempt_login`): the same rate
//! limits and lockout, the same audit rows, the same answer whichever factor was wrong.

use super::{Form, Query};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use super::passkeys::{self, Purpose};
use super::security::{self, LANG_COOKIE, PRE_COOKIE, SESSION_COOKIE};
use super::views::{self, Layout, LoginPage, PasskeyCeremony, PassphrasePage, TotpPage};
use super::{
    notice_text, see_other, AnyCaller, Caller, Lang, OrPage, PageError, PageResult, State, Visitor,
};
use crate::audit::{self, Event};
use crate::totp::TotpSecret;
use crate::web::error::ApiError;
use crate::web::worker_api::{attempt_login, change_passphrase_of, SessionCaller};
use crate::web::ConnectionInfo;
use crate::webauthn::Challenge;
use crate::worker::{PasskeyProof, SecondFactor};

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    #[serde(default)]
    verlopen: Option<String>,
    #[serde(default)]
    ok: Option<String>,
}

fn login_page_response(
    pages: &super::Pages,
    visitor: &Visitor,
    status: StatusCode,
    handle: &str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> Response {
    let lang = visitor.lang;
    // The login form's CSRF token is bound to a random cookie set here (there is no session yet).
    let (pre, fresh) = match &visitor.pre_token {
        Some(pre) if pre.len() == 64 && pre.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (pre.clone(), false)
        }
        _ => (crate::crypto::random_token(32), true),
    };
    let csrf = security::csrf_token(&pages.csrf_key, &pre);
    let mut layout = Layout::anonymous(lang, lang.texts().login_title);
    layout.here = "/inloggen".into();
    layout.switch_csrf = Some(csrf.clone());
    layout.notice = notice;
    let nonce = passkeys::with_passkey_script(&mut layout);
    let challenge = passkeys::challenge_for(&pages.csrf_key, Purpose::Login, &pre, pages.now());
    let page = LoginPage {
        layout,
        csrf,
        handle: handle.to_string(),
        error,
        passkey: PasskeyCeremony {
            challenge: challenge.to_base64url(),
            rp_id: pages.api.relying_party.id.clone(),
            user_id: String::new(),
            user_name: String::new(),
            exclude: String::new(),
        },
    };
    let mut response = passkeys::script_page((status, views::html(&page)).into_response(), &nonce);
    if fresh {
        response.headers_mut().append(
            header::SET_COOKIE,
            security::set_cookie(PRE_COOKIE, &pre, None),
        );
    }
    response
}

pub async fn login_page(
    axum::extract::State(pages): State,
    visitor: Visitor,
    Query(query): Query<LoginQuery>,
) -> Response {
    let lang = visitor.lang;
    if let Some(token) = &visitor.session_token {
        if pages.api.sessions.touch(token, pages.now()).is_some() {
            return Redirect::to("/").into_response();
        }
    }
    let notice = if query.verlopen.is_some() {
        Some(lang.texts().session_expired)
    } else {
        notice_text(lang, query.ok.as_deref())
    };
    login_page_response(&pages, &visitor, StatusCode::OK, "", None, notice)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    totp: String,
    /// A passkey's answer instead of the code (base64url, filled by the passkey script).
    #[serde(default)]
    passkey_id: String,
    #[serde(default)]
    passkey_client_data: String,
    #[serde(default)]
    passkey_authenticator_data: String,
    #[serde(default)]
    passkey_signature: String,
}

impl LoginForm {
    /// The second factor the form brings: a passkey's answer when the script filled one in, else the
    /// code. A passkey answer whose challenge is not this visitor's, is too old or was already used
    /// is checked against a random challenge instead, so it fails like any wrong factor (audited,
    /// counted by the same limiter).
    fn second_factor(&self, pages: &super::Pages, pre: &str) -> SecondFactor {
        if self.passkey_client_data.is_empty() {
            return SecondFactor::Totp(self.totp.clone());
        }
        let bytes = |text: &str, max| passkeys::field_bytes(text, max).unwrap_or_default();
        let client_data_json = bytes(&self.passkey_client_data, 4096);
        let challenge = passkeys::accepted_challenge(
            &pages.csrf_key,
            Purpose::Login,
            pre,
            &client_data_json,
            pages.now(),
        )
        .filter(|challenge| !pages.challenge_spent(challenge))
        .unwrap_or_else(Challenge::random);
        SecondFactor::Passkey(PasskeyProof {
            relying_party: pages.api.relying_party.clone(),
            challenge,
            credential_id: bytes(&self.passkey_id, 1023),
            client_data_json,
            authenticator_data: bytes(&self.passkey_authenticator_data, 4096),
            signature: bytes(&self.passkey_signature, 128),
        })
    }
}

pub async fn login(
    axum::extract::State(pages): State,
    Extension(connection): Extension<ConnectionInfo>,
    visitor: Visitor,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let lang = visitor.lang;
    let csrf_ok = visitor
        .pre_token
        .as_deref()
        .is_some_and(|pre| security::csrf_matches(&pages.csrf_key, pre, &form.csrf));
    if !csrf_ok {
        return Err(PageError::Forbidden(lang));
    }
    let handle = form.handle.trim().to_string();
    let pre = visitor.pre_token.clone().unwrap_or_default();
    let factor = form.second_factor(&pages, &pre);
    match attempt_login(
        &pages.api,
        connection.peer,
        &handle,
        form.passphrase,
        &factor,
    )
    .await
    {
        Ok(started) => {
            if let SecondFactor::Passkey(proof) = &factor {
                pages.spend_challenge(&proof.challenge);
            }
            let next = if started.must_change_passphrase {
                "/wachtwoordzin"
            } else {
                "/"
            };
            let mut response = see_other(next);
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                security::set_cookie(SESSION_COOKIE, &started.token, None),
            );
            headers.append(
                header::SET_COOKIE,
                security::set_cookie(PRE_COOKIE, "", Some(0)),
            );
            Ok(response)
        }
        Err(ApiError::LoginFailed) => Ok(login_page_response(
            &pages,
            &visitor,
            StatusCode::UNAUTHORIZED,
            &handle,
            Some(lang.texts().login_failed),
            None,
        )),
        Err(ApiError::TooManyRequests {
            retry_after_seconds,
        }) => {
            let mut response = login_page_response(
                &pages,
                &visitor,
                StatusCode::TOO_MANY_REQUESTS,
                &handle,
                Some(lang.texts().too_many_attempts),
                None,
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_seconds.max(1)),
            );
            Ok(response)
        }
        Err(other) => Err(api_error(lang, other)),
    }
}

/// An API error from a shared function, as a page error.
pub(super) fn api_error(lang: Lang, error: ApiError) -> PageError {
    match error {
        ApiError::NotFound => PageError::NotFound(lang),
        ApiError::Busy => PageError::Busy(lang),
        ApiError::Internal(cause) => PageError::Internal(lang, cause),
        other => PageError::Internal(lang, crate::Error::invalid(other.to_string())),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

/// Ends the session: its unlocked identity is dropped (and wiped) with it.
pub async fn logout(
    axum::extract::State(pages): State,
    AnyCaller(caller, _): AnyCaller,
    Form(form): Form<CsrfOnly>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    pages.api.sessions.end(&caller.token);
    pages.drop_totp(&caller.token);
    audit::record(
        &pages.api.core.store,
        pages.now(),
        Event::new(
            &caller.actor(),
            crate::audit::Action::Logout,
            &caller.handle,
        ),
    )
    .await
    .or_page(caller.lang)?;
    let mut response = see_other("/inloggen?ok=uitgelogd");
    response.headers_mut().append(
        header::SET_COOKIE,
        security::set_cookie(SESSION_COOKIE, "", Some(0)),
    );
    Ok(response)
}

fn passphrase_page(
    pages: &super::Pages,
    caller: &Caller,
    first: bool,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let t = caller.lang.texts();
    let mut layout = pages.layout(caller, t.passphrase_title, "", "/wachtwoordzin");
    if first {
        layout.nav = "";
    }
    (
        status,
        views::html(&PassphrasePage {
            layout,
            first,
            error,
        }),
    )
        .into_response()
}

pub async fn passphrase_page_get(
    axum::extract::State(pages): State,
    AnyCaller(caller, first): AnyCaller,
) -> Response {
    passphrase_page(&pages, &caller, first, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct PassphraseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    repeat: String,
}

pub async fn change_passphrase(
    axum::extract::State(pages): State,
    Extension(connection): Extension<ConnectionInfo>,
    AnyCaller(caller, first): AnyCaller,
    Form(form): Form<PassphraseForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let t = caller.lang.texts();
    if form.new != form.repeat {
        return Ok(passphrase_page(
            &pages,
            &caller,
            first,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(t.passphrases_differ.to_string()),
        ));
    }
    let result = change_passphrase_of(
        &pages.api,
        connection.peer,
        &SessionCaller {
            worker_id: &caller.worker_id,
            handle: &caller.handle,
            keyring: caller.keyring.as_deref(),
            token: &caller.token,
        },
        form.current,
        form.new,
    )
    .await;
    match result {
        Ok(()) if first => Ok(see_other("/tweestaps")),
        Ok(()) => Ok(see_other("/?ok=wachtwoordzin")),
        Err(ApiError::TooManyRequests {
            retry_after_seconds,
        }) => {
            let mut page = passphrase_page(
                &pages,
                &caller,
                first,
                StatusCode::TOO_MANY_REQUESTS,
                Some(t.too_many_attempts.to_string()),
            );
            page.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_seconds),
            );
            Ok(page)
        }
        Err(ApiError::BadRequest(_)) | Err(ApiError::Conflict(_)) => Ok(passphrase_page(
            &pages,
            &caller,
            first,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(match caller.lang {
                Lang::Nl => "Niet gewijzigd: controleer je huidige wachtwoordzin. De nieuwe heeft minstens 12 tekens en is anders dan de huidige.".to_string(),
                Lang::En => "Not changed: check your current passphrase. The new one has at least 12 characters and differs from the current one.".to_string(),
            }),
        )),
        Err(other) => Err(api_error(caller.lang, other)),
    }
}

/// The QR code of an `otpauth://` URI as SVG, drawn here (nothing is fetched from anywhere).
fn qr_svg(uri: &str) -> String {
    use qrcode::render::svg;
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<svg::Color<'_>>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build();
            // Drop the XML declaration and namespace: the SVG is inlined into an HTML page.
            let svg = match svg.find("<svg") {
                Some(start) => svg[start..].to_string(),
                None => svg,
            };
            svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
        }
        Err(_) => String::new(),
    }
}

/// The secret as an authenticator app asks to type it: base32 in groups of four.
fn grouped_secret(secret: &TotpSecret) -> String {
    let text = data_encoding::BASE32_NOPAD.encode(secret.as_bytes());
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn totp_page_response(
    pages: &super::Pages,
    caller: &Caller,
    secret: &TotpSecret,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let t = caller.lang.texts();
    let uri = secret.provisioning_uri("Schuilnaam", &caller.handle);
    let page = TotpPage {
        layout: pages.layout(caller, t.totp_title, "sessions", "/tweestaps"),
        svg: qr_svg(&uri),
        secret: grouped_secret(secret),
        error,
    };
    (status, views::html(&page)).into_response()
}

/// Shows a fresh TOTP secret (QR code and text) for this session to confirm.
pub async fn totp_page(axum::extract::State(pages): State, caller: Caller) -> Response {
    let secret = TotpSecret::generate();
    let response = totp_page_response(&pages, &caller, &secret, StatusCode::OK, None);
    pages.hold_totp(&caller.token, secret);
    response
}

#[derive(Deserialize)]
pub struct TotpForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    passphrase: String,
}

/// Why the current passphrase was not confirmed, as a page shows it.
pub(super) struct NotConfirmed {
    pub status: StatusCode,
    pub text: &'static str,
    pub retry_after_seconds: Option<u64>,
}

impl NotConfirmed {
    /// `page`, with this status and, when limited, `Retry-After`.
    pub fn answer(&self, mut page: Response) -> Response {
        *page.status_mut() = self.status;
        if let Some(seconds) = self.retry_after_seconds {
            page.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        page
    }
}

/// Asks the session's worker for the current passphrase again before replacing the second factor or
/// minting a token (`confirm_passphrase_of`: rate-limited like logins).
pub(super) async fn confirm_passphrase(
    pages: &super::Pages,
    peer: std::net::IpAddr,
    caller: &Caller,
    passphrase: String,
) -> PageResult<Result<(), NotConfirmed>> {
    let t = caller.lang.texts();
    match crate::web::worker_api::confirm_passphrase_of(
        &pages.api,
        peer,
        &caller.worker_id,
        &caller.handle,
        passphrase,
    )
    .await
    {
        Ok(()) => Ok(Ok(())),
        Err(ApiError::PassphraseNotConfirmed) => Ok(Err(NotConfirmed {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            text: t.passphrase_not_confirmed,
            retry_after_seconds: None,
        })),
        Err(ApiError::TooManyRequests {
            retry_after_seconds,
        }) => Ok(Err(NotConfirmed {
            status: StatusCode::TOO_MANY_REQUESTS,
            text: t.too_many_attempts,
            retry_after_seconds: Some(retry_after_seconds),
        })),
        Err(other) => Err(api_error(caller.lang, other)),
    }
}

pub async fn confirm_totp(
    axum::extract::State(pages): State,
    Extension(connection): Extension<ConnectionInfo>,
    caller: Caller,
    Form(form): Form<TotpForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let Some(secret) = pages.held_totp(&caller.token) else {
        return Ok(see_other("/tweestaps"));
    };
    if let Err(refused) =
        confirm_passphrase(&pages, connection.peer, &caller, form.passphrase).await?
    {
        let page = totp_page_response(&pages, &caller, &secret, StatusCode::OK, Some(refused.text));
        return Ok(refused.answer(page));
    }
    let core = &pages.api.core;
    let replaced = crate::worker::replace_totp(
        &core.store,
        &core.server_key,
        core.now(),
        &caller.worker_id,
        &caller.handle,
        &secret,
        &form.code,
    )
    .await
    .or_page(caller.lang)?;
    if !replaced {
        return Ok(totp_page_response(
            &pages,
            &caller,
            &secret,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(caller.lang.texts().totp_wrong),
        ));
    }
    pages.drop_totp(&caller.token);
    // Whoever else was logged in as this worker logs in again, with the new second factor.
    pages
        .api
        .sessions
        .end_others(&caller.worker_id, &caller.token);
    Ok(see_other("/?ok=tweestaps"))
}

#[derive(Deserialize)]
pub struct LangForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    lang: String,
    #[serde(default)]
    back: String,
}

/// A path on this site to return to: `/…`, never `//host` or a backslash trick.
fn safe_back(back: &str) -> &str {
    let ok = back.starts_with('/')
        && !back.starts_with("//")
        && !back.contains('\\')
        && !back.chars().any(char::is_control)
        && back.len() <= 300;
    if ok {
        back
    } else {
        "/"
    }
}

pub async fn switch_language(
    axum::extract::State(pages): State,
    visitor: Visitor,
    Form(form): Form<LangForm>,
) -> PageResult<Response> {
    let bound_to = visitor
        .session_token
        .as_deref()
        .filter(|t| pages.api.sessions.touch(t, pages.now()).is_some())
        .or(visitor.pre_token.as_deref());
    let csrf_ok =
        bound_to.is_some_and(|token| security::csrf_matches(&pages.csrf_key, token, &form.csrf));
    if !csrf_ok {
        return Err(PageError::Forbidden(visitor.lang));
    }
    let lang = Lang::parse(&form.lang).unwrap_or(visitor.lang);
    let mut response = see_other(safe_back(&form.back));
    response.headers_mut().append(
        header::SET_COOKIE,
        security::set_cookie(LANG_COOKIE, lang.code(), Some(365 * 86_400)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_switch_returns_only_to_this_site() {
        assert_eq!(safe_back("/aliassen"), "/aliassen");
        assert_eq!(safe_back("//evil.example/x"), "/");
        assert_eq!(safe_back("https://evil.example"), "/");
        assert_eq!(safe_back("/\\evil.example"), "/");
        assert_eq!(safe_back(""), "/");
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_without_xml_declaration() {
        let svg = qr_svg("otpauth://totp/Schuilnaam:w17?secret=ABC");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(!svg.contains("<?xml"));
        assert!(!svg.contains("style="));
        assert!(!svg.contains("href"));
        assert!(!svg.contains("http"), "{svg}");
    }
}
