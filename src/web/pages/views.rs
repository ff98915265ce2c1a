//! The pages' views: one askama template (templates/*.html, checked at compile time) per page, and
//! the layout every page shares. Values are escaped by the templates; the only unescaped output is the
//! server's own QR code SVG and HTML mail after the sanitiser (html_mail.rs).

use askama::Template;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::assets;
use super::i18n::{Lang, Texts};
use crate::clock::Millis;

/// Text from outside (a sender's name, a subject, a body, a file name) as a page shows it: without the
/// bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) that make
/// "factuur\u{202E}fdp.exe" read as "factuurexe.pdf". Right-to-left scripts still read right to
/// left: the browser's bidirectional algorithm needs no control characters for them.
pub fn shown(text: &str) -> String {
    text.chars()
        .filter(|c| !crate::mailbox::is_bidi_control(*c))
        .collect()
}

/// Renders a page as an HTML response.
pub fn html<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => {
            tracing::error!(cause = %e, "a page did not render");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            )
                .into_response()
        }
    }
}

/// A script tag's source, integrity hash and nonce.
pub struct Script {
    pub url: String,
    pub integrity: String,
}

/// The logged-in worker, as the layout shows them.
pub struct User {
    pub handle: String,
    pub csrf: String,
}

/// What every page shares: language and texts, title, stylesheet, menu, notices, and the idle warning.
pub struct Layout {
    pub lang: &'static str,
    pub other_lang: &'static str,
    pub t: &'static Texts,
    pub title: String,
    pub css_url: String,
    pub css_integrity: String,
    pub user: Option<User>,
    /// Which menu entry is this page ("" for none).
    pub nav: &'static str,
    pub notice: Option<&'static str>,
    /// Seconds until the browser shows the idle warning (0: no warning, not logged in).
    pub idle_warn_seconds: u64,
    /// Where the language switch returns to (a path on this site).
    pub here: String,
    /// The CSRF token for the language switch (the session's, or the pre-login one).
    pub switch_csrf: Option<String>,
    pub scripts: Vec<Script>,
    pub nonce: String,
}

impl Layout {
    pub fn anonymous(lang: Lang, title: &str) -> Self {
        Self {
            lang: lang.code(),
            other_lang: lang.other().code(),
            t: lang.texts(),
            title: title.to_string(),
            css_url: assets::CSS.url(),
            css_integrity: assets::CSS.integrity.clone(),
            user: None,
            nav: "",
            notice: None,
            idle_warn_seconds: 0,
            here: "/".into(),
            switch_csrf: None,
            scripts: Vec::new(),
            nonce: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "problem.html")]
pub struct Problem {
    pub layout: Layout,
    pub text: &'static str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    pub csrf: String,
    pub handle: String,
    pub error: Option<&'static str>,
    /// The passkey login's challenge and relying party (used by the script; hidden without it).
    pub passkey: PasskeyCeremony,
}

/// What the passkey script needs for a ceremony, carried in `data-` attributes (base64url).
pub struct PasskeyCeremony {
    pub challenge: String,
    pub rp_id: String,
    /// Registration only: the WebAuthn user handle, the name shown by the authenticator, and the
    /// credential ids already registered (comma-separated).
    pub user_id: String,
    pub user_name: String,
    pub exclude: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage {
    pub layout: Layout,
    pub passkeys: Vec<PasskeyRow>,
    pub ceremony: PasskeyCeremony,
    pub label: String,
    pub error: Option<&'static str>,
}

pub struct PasskeyRow {
    pub id: String,
    pub label: String,
    pub added: String,
    pub last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "passphrase.html")]
pub struct PassphrasePage {
    pub layout: Layout,
    pub first: bool,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "totp.html")]
pub struct TotpPage {
    pub layout: Layout,
    pub svg: String,
    pub secret: String,
    pub error: Option<&'static str>,
}

pub struct InboxRow {
    pub id: String,
    pub unread: bool,
    pub urgent: bool,
    pub referral: bool,
    pub from: String,
    pub received: String,
    pub mailbox: String,
    pub channel: &'static str,
    pub to: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    pub layout: Layout,
    pub rows: Vec<InboxRow>,
    pub page: u32,
    pub pages: u32,
    pub newer: Option<String>,
    pub older: Option<String>,
}

pub struct AttachmentRow {
    pub url: String,
    pub filename: String,
    pub content_type: String,
    pub size: String,
    /// A voicemail recording: played in the page as well as offered for download.
    pub audio: bool,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub layout: Layout,
    pub id: String,
    pub from: String,
    pub to: String,
    pub received: String,
    pub mailbox: String,
    pub channel: &'static str,
    pub urgent: bool,
    pub referral: bool,
    pub subject: String,
    pub text: String,
    /// Sanitised HTML, when the mail had an HTML part.
    pub html: Option<String>,
    pub attachments: Vec<AttachmentRow>,
    pub can_reply: bool,
    pub reply_body: String,
    pub error: Option<String>,
    pub phone_channel: bool,
}

#[derive(Template)]
#[template(path = "device.html")]
pub struct DevicePage {
    pub layout: Layout,
    pub id: String,
    pub age_url: String,
}

#[derive(Template)]
#[template(path = "write.html")]
pub struct WritePage {
    pub layout: Layout,
    pub aliases: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub error: Option<String>,
}

pub struct SentRow {
    pub when: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub state_class: &'static str,
    pub to: String,
    pub subject: String,
    pub from_alias: String,
}

#[derive(Template)]
#[template(path = "sent.html")]
pub struct SentPage {
    pub layout: Layout,
    pub rows: Vec<SentRow>,
    pub removed: Vec<String>,
}

pub struct AliasRow {
    pub address: String,
    pub created: String,
    pub burned: bool,
    pub note: String,
    /// False for a device-held key: the note cannot be opened here.
    pub note_readable: bool,
    pub contacts: i64,
    /// The alias's phone number, when it has one and phone aliases are on.
    pub number: Option<String>,
}

#[derive(Template)]
#[template(path = "aliases.html")]
pub struct AliasesPage {
    pub layout: Layout,
    pub aliases: Vec<AliasRow>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "burn.html")]
pub struct BurnPage {
    pub layout: Layout,
    pub address: String,
}

pub struct MarkerCount {
    pub field: &'static str,
    pub label: &'static str,
    pub count: usize,
}

#[derive(Template)]
#[template(path = "markers.html")]
pub struct MarkersPage {
    pub layout: Layout,
    pub counts: Vec<MarkerCount>,
    pub error: Option<String>,
}

pub struct SessionRow {
    pub id: String,
    pub started: String,
    pub last_seen: String,
    pub current: bool,
    pub unlocked: bool,
}

pub struct TokenRow {
    pub id: String,
    pub label: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage {
    pub layout: Layout,
    pub sessions: Vec<SessionRow>,
    pub tokens: Vec<TokenRow>,
    pub new_token: Option<String>,
    pub error: Option<&'static str>,
}

/// Who is on call in one team, now and from the next change.
pub struct DutyRow {
    pub team: String,
    pub now: String,
    pub next: Option<(String, String)>,
}

/// One of the worker's open or acknowledged alerts.
pub struct AlertRow {
    pub id: String,
    pub code: String,
    pub team: String,
    pub state: &'static str,
    pub raised: String,
    pub open: bool,
}

#[derive(Template)]
#[template(path = "duty.html")]
pub struct DutyPage {
    pub layout: Layout,
    pub duties: Vec<DutyRow>,
    pub alerts: Vec<AlertRow>,
    /// The teams the worker may page (members of a team with a rota).
    pub teams: Vec<String>,
}

/// A time as the worker reads it: Dutch local time, to the minute.
pub fn local_time(millis: Millis) -> String {
    let Ok(timestamp) = jiff::Timestamp::from_millisecond(millis) else {
        return String::new();
    };
    let zone = jiff::tz::TimeZone::get("Europe/Amsterdam").unwrap_or(jiff::tz::TimeZone::UTC);
    timestamp
        .to_zoned(zone)
        .strftime("%Y-%m-%d %H:%M")
        .to_string()
}

/// An RFC 3339 time (as summaries carry it) in local time.
pub fn local_time_of(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| local_time(t.as_millisecond()))
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// A size in bytes as people read it.
pub fn size(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{} kB", bytes.div_ceil(1024)),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidirectional_overrides_are_not_shown() {
        assert_eq!(shown("factuur\u{202E}fdp.exe"), "factuurfdp.exe");
        assert_eq!(shown("a\u{2066}b\u{2069}c\u{202A}d\u{202C}"), "abcd");
        // Hebrew and Arabic stay as they are, and so do the plain marks.
        assert_eq!(shown("שלום مرحبا\u{200F}"), "שלום مرحبا\u{200F}");
    }
}
