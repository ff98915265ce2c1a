//! Passkeys in the web app: the page that lists, adds and removes them, and the challenges of both
//! ceremonies. A challenge is stateless: 8 bytes of issue time and 24 bytes of HMAC over its purpose,
//! the cookie it is bound to (the pre-login cookie, or the session token) and that time, under the
//! pages' key. So an anonymous visitor's login page costs the relay no memory, and a challenge is good
//! only with its own cookie, for its own ceremony, for five minutes.

use super::{Form, Query};
use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::views::{self, Layout, PasskeyCeremony, PasskeyRow, PasskeysPage, Script};
use super::{assets, notice_text, security, see_other, Caller, NoticeQuery, OrPage, PageResult};
use super::{PageError, State};
use crate::clock::Millis;
use crate::ids::PasskeyId;
use crate::web::ConnectionInfo;
use crate::webauthn::{self, Challenge};
use crate::worker::passkeys;

/// How long a ceremony may take, from the page to the form's return.
pub const CHALLENGE_LIFETIME_MS: Millis = 5 * 60 * 1000;

/// Which ceremony a challenge is for: a login challenge cannot register, nor the reverse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Login,
    Register,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Login => b"schuilnaam passkey login\0",
            Purpose::Register => b"schuilnaam passkey register\0",
        }
    }
}

fn challenge_mac(key: &[u8; 32], purpose: Purpose, binding: &str, issued_at: Millis) -> [u8; 24] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(purpose.label());
    mac.update(&(binding.len() as u64).to_be_bytes());
    mac.update(binding.as_bytes());
    mac.update(&issued_at.to_be_bytes());
    let mut out = [0u8; 24];
    out.copy_from_slice(&mac.finalize().into_bytes()[..24]);
    out
}

/// The challenge for a ceremony bound to `binding` (a cookie's value), issued at `now`.
pub fn challenge_for(key: &[u8; 32], purpose: Purpose, binding: &str, now: Millis) -> Challenge {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&now.to_be_bytes());
    bytes[8..].copy_from_slice(&challenge_mac(key, purpose, binding, now));
    Challenge::from_bytes(bytes)
}

/// The challenge a browser's clientDataJSON carries, when it is one this relay issued for this
/// purpose and binding less than `CHALLENGE_LIFETIME_MS` ago. Pure, so the rule is tested alone.
pub fn accepted_challenge(
    key: &[u8; 32],
    purpose: Purpose,
    binding: &str,
    client_data_json: &[u8],
    now: Millis,
) -> Option<Challenge> {
    let presented = presented_challenge(client_data_json)?;
    let issued_at = Millis::from_be_bytes(presented[..8].try_into().ok()?);
    let age = now.checked_sub(issued_at)?;
    if !(0..CHALLENGE_LIFETIME_MS).contains(&age) {
        return None;
    }
    let expected = challenge_mac(key, purpose, binding, issued_at);
    crate::crypto::constant_time_eq(&expected, &presented[8..])
        .then(|| Challenge::from_bytes(presented))
}

/// The `challenge` member of clientDataJSON, decoded (the full checks are `webauthn`'s).
fn presented_challenge(client_data_json: &[u8]) -> Option<[u8; 32]> {
    if client_data_json.len() > 4096 {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(client_data_json).ok()?;
    let text = value.get("challenge")?.as_str()?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(text.as_bytes())
        .ok()?;
    bytes.try_into().ok()
}

/// A form field the script filled with base64url; empty or malformed is `None`.
pub fn field_bytes(text: &str, max_bytes: usize) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.is_empty() || text.len() > max_bytes.div_ceil(3) * 4 {
        return None;
    }
    data_encoding::BASE64URL_NOPAD.decode(text.as_bytes()).ok()
}

/// The page's script tag and its CSP: a page with a passkey ceremony is one of the two places with
/// script (with a nonce and Subresource Integrity).
pub fn with_passkey_script(layout: &mut Layout) -> String {
    let nonce = security::nonce();
    layout.scripts = vec![Script {
        url: assets::PASSKEY_JS.url(),
        integrity: assets::PASSKEY_JS.integrity.clone(),
    }];
    layout.nonce = nonce.clone();
    nonce
}

/// Sets the script page's CSP on a rendered page.
pub fn script_page(mut response: Response, nonce: &str) -> Response {
    if let Ok(csp) = HeaderValue::from_str(&security::script_csp(nonce)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

async fn page(
    pages: &super::Pages,
    caller: &Caller,
    label: &str,
    error: Option<&'static str>,
    notice: Option<&'static str>,
) -> PageResult<Response> {
    let lang = caller.lang;
    let t = lang.texts();
    let store = &pages.api.core.store;
    let rows = passkeys::list(store, &caller.worker_id)
        .await
        .or_page(lang)?
        .into_iter()
        .map(|info| PasskeyRow {
            id: info.id.to_string(),
            label: info.label,
            added: views::local_time(info.created_at),
            last_used: info.last_used_at.map(views::local_time),
        })
        .collect();
    let exclude = passkeys::credential_ids(store, &caller.worker_id)
        .await
        .or_page(lang)?
        .iter()
        .map(|id| data_encoding::BASE64URL_NOPAD.encode(id))
        .collect::<Vec<_>>()
        .join(",");
    let challenge = challenge_for(
        &pages.csrf_key,
        Purpose::Register,
        &caller.token,
        pages.now(),
    );
    let mut layout = pages.layout(caller, t.passkeys_title, "sessions", "/sleutels");
    layout.notice = notice;
    let nonce = with_passkey_script(&mut layout);
    let view = PasskeysPage {
        layout,
        passkeys: rows,
        ceremony: PasskeyCeremony {
            challenge: challenge.to_base64url(),
            rp_id: pages.api.relying_party.id.clone(),
            user_id: data_encoding::BASE64URL_NOPAD.encode(caller.worker_id.as_str().as_bytes()),
            user_name: caller.handle.clone(),
            exclude,
        },
        label: label.to_string(),
        error,
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(script_page(
        (status, views::html(&view)).into_response(),
        &nonce,
    ))
}

pub async fn passkeys_page(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let notice = notice_text(caller.lang, query.ok.as_deref());
    page(&pages, &caller, "", None, notice).await
}

#[derive(Deserialize)]
pub struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    client_data: String,
    #[serde(default)]
    attestation: String,
}

/// Adds a passkey: like replacing the authenticator app, it asks for the current passphrase again, so
/// a session left open is not enough to give someone a second factor of their own.
pub async fn add(
    axum::extract::State(pages): State,
    Extension(connection): Extension<ConnectionInfo>,
    caller: Caller,
    Form(form): Form<AddForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let t = lang.texts();
    let label = form.label.trim().to_string();
    if let Err(refused) =
        super::auth::confirm_passphrase(&pages, connection.peer, &caller, form.passphrase).await?
    {
        let response = page(&pages, &caller, &label, Some(refused.text), None).await?;
        return Ok(refused.answer(response));
    }
    let (Some(client_data), Some(attestation)) = (
        field_bytes(&form.client_data, 4096),
        field_bytes(&form.attestation, 16 * 1024),
    ) else {
        return page(&pages, &caller, &label, Some(t.passkey_needs_script), None).await;
    };
    let now = pages.now();
    let verified = accepted_challenge(
        &pages.csrf_key,
        Purpose::Register,
        &caller.token,
        &client_data,
        now,
    )
    .and_then(|challenge| {
        webauthn::verify_registration(
            &pages.api.relying_party,
            &challenge,
            &client_data,
            &attestation,
        )
        .ok()
    });
    let Some(credential) = verified else {
        return page(&pages, &caller, &label, Some(t.passkey_not_verified), None).await;
    };
    let core = &pages.api.core;
    let added = passkeys::add(
        &core.store,
        now,
        &caller.worker_id,
        &caller.handle,
        &label,
        &credential,
    )
    .await;
    match added {
        Ok(_) => Ok(see_other("/sleutels?ok=passkey")),
        Err(crate::Error::Invalid(_)) => {
            page(&pages, &caller, &label, Some(t.invalid_input), None).await
        }
        Err(crate::Error::Conflict(message)) => {
            // A credential id registered to someone else is answered like an answer that does not
            // verify: the page must not tell a worker who else holds a key.
            let own = passkeys::credential_ids(&core.store, &caller.worker_id)
                .await
                .or_page(lang)?;
            let text = if message.starts_with("at most") {
                t.passkey_limit
            } else if own.contains(&credential.credential_id) {
                t.passkey_duplicate
            } else {
                t.passkey_not_verified
            };
            page(&pages, &caller, &label, Some(text), None).await
        }
        Err(e) => Err(PageError::from_error(lang, e)),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Removes one of the worker's passkeys; another worker's id is the same "not found" as a missing one.
pub async fn remove(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let id = PasskeyId::parse(&id).ok_or(PageError::NotFound(lang))?;
    passkeys::remove(
        &pages.api.core.store,
        pages.now(),
        &caller.worker_id,
        &caller.handle,
        &id,
    )
    .await
    .or_page(lang)?;
    Ok(see_other("/sleutels?ok=passkey-weg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_data(challenge: &Challenge) -> Vec<u8> {
        format!(
            r#"{{"type":"webauthn.get","challenge":"{}","origin":"https://localhost:8443"}}"#,
            challenge.to_base64url()
        )
        .into_bytes()
    }

    #[test]
    fn a_challenge_is_good_for_its_cookie_and_purpose_for_five_minutes() {
        let key = [7u8; 32];
        let issued = 1_700_000_000_000;
        let challenge = challenge_for(&key, Purpose::Login, "pre-cookie", issued);
        let data = client_data(&challenge);
        let accept = |purpose, binding, now| accepted_challenge(&key, purpose, binding, &data, now);
        assert!(accept(Purpose::Login, "pre-cookie", issued) == Some(challenge.clone()));
        assert!(accept(
            Purpose::Login,
            "pre-cookie",
            issued + CHALLENGE_LIFETIME_MS - 1
        )
        .is_some());
        assert!(accept(Purpose::Login, "pre-cookie", issued + CHALLENGE_LIFETIME_MS).is_none());
        // Not before it was issued (a clock moved back, or a forged time).
        assert!(accept(Purpose::Login, "pre-cookie", issued - 1).is_none());
        assert!(accept(Purpose::Login, "other-cookie", issued).is_none());
        assert!(accept(Purpose::Register, "pre-cookie", issued).is_none());
        let other_key = accepted_challenge(&[8u8; 32], Purpose::Login, "pre-cookie", &data, issued);
        assert!(other_key.is_none());
    }

    #[test]
    fn a_forged_or_malformed_challenge_is_not_accepted() {
        let key = [7u8; 32];
        let issued = 1_700_000_000_000;
        let real = challenge_for(&key, Purpose::Login, "c", issued);
        // A later issue time with the old MAC.
        let mut bytes = *real.as_bytes();
        bytes[..8].copy_from_slice(&(issued + 1000).to_be_bytes());
        let forged = client_data(&Challenge::from_bytes(bytes));
        assert!(accepted_challenge(&key, Purpose::Login, "c", &forged, issued + 1000).is_none());
        for bad in [
            &b"not json"[..],
            br#"{"type":"webauthn.get"}"#,
            br#"{"challenge":42}"#,
            br#"{"challenge":"AAAA"}"#,
            br#"{"challenge":"!!!!"}"#,
        ] {
            assert!(accepted_challenge(&key, Purpose::Login, "c", bad, issued).is_none());
        }
        let huge = vec![b' '; 5000];
        assert!(accepted_challenge(&key, Purpose::Login, "c", &huge, issued).is_none());
    }

    #[test]
    fn form_fields_are_base64url_within_bounds() {
        assert_eq!(field_bytes("AQID", 16), Some(vec![1, 2, 3]));
        assert_eq!(field_bytes("", 16), None);
        assert_eq!(field_bytes("AQ+D", 16), None);
        assert_eq!(field_bytes(&"A".repeat(40), 16), None);
    }
}
