//! The inbox: every mailbox of the worker, newest first, with unread marks and badges; one message
//! (plain text escaped, HTML mail sanitised), its attachments as downloads, delete; and for a worker
//! whose key stays on their device, the page that opens the sealed file in the browser.

use super::{Form, Query};
use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::assets;
use super::auth::CsrfOnly;
use super::html_mail;
use super::security;
use super::views::{self, AttachmentRow, DevicePage, InboxPage, InboxRow, MessagePage, Script};
use super::{notice_text, see_other, Caller, Lang, OrPage, PageError, PageResult, Pages, State};
use crate::ids::MessageId;
use crate::mailbox::{self, Channel, Letter, MessageKind, Summary};

/// Messages per inbox page.
pub const PAGE_SIZE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct InboxQuery {
    #[serde(default)]
    pagina: Option<u32>,
    #[serde(default)]
    ok: Option<String>,
}

pub(super) fn channel_label(lang: Lang, channel: Channel) -> &'static str {
    let t = lang.texts();
    match channel {
        Channel::Mail => t.channel_mail,
        Channel::Sms => t.channel_sms,
        Channel::Voicemail => t.channel_voicemail,
        Channel::Api => t.channel_api,
    }
}

/// A message id from the address bar: one of another shape is the same 404 as a message that is
/// not the caller's.
pub(super) fn message_id(lang: Lang, text: &str) -> PageResult<MessageId> {
    MessageId::parse(text).ok_or(PageError::NotFound(lang))
}

fn mailbox_label(lang: Lang, summary: &Summary) -> String {
    if summary.mailbox == "personal" {
        lang.texts().personal.to_string()
    } else {
        format!("{} {}", lang.texts().team, summary.mailbox)
    }
}

fn sender_label(lang: Lang, summary: &Summary) -> String {
    summary
        .from_organisation
        .clone()
        .unwrap_or_else(|| lang.texts().no_organisation.to_string())
}

pub async fn inbox(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<InboxQuery>,
) -> PageResult<Response> {
    let lang = caller.lang;
    let page = query.pagina.unwrap_or(1).max(1);
    let (listed, total) = mailbox::page_for_worker(
        &pages.api.core.store,
        &caller.worker_id,
        (page - 1).saturating_mul(PAGE_SIZE),
        PAGE_SIZE,
    )
    .await
    .or_page(lang)?;
    let pages_total = u32::try_from(total.max(1))
        .unwrap_or(u32::MAX)
        .div_ceil(PAGE_SIZE);
    let rows = listed
        .into_iter()
        .map(|item| InboxRow {
            from: views::shown(&sender_label(lang, &item.summary)),
            received: views::local_time_of(&item.summary.received_at),
            mailbox: mailbox_label(lang, &item.summary),
            channel: channel_label(lang, item.summary.channel),
            urgent: item.summary.urgent,
            referral: item.summary.kind == MessageKind::Aanmelding,
            unread: item.unread,
            to: item.summary.to,
            id: item.summary.id.to_string(),
        })
        .collect();
    let t = lang.texts();
    let mut layout = pages.layout(&caller, t.inbox_title, "inbox", "/");
    layout.notice = notice_text(lang, query.ok.as_deref());
    let view = InboxPage {
        layout,
        rows,
        page,
        pages: pages_total,
        newer: (page > 1).then(|| format!("/?pagina={}", page - 1)),
        older: (page < pages_total).then(|| format!("/?pagina={}", page + 1)),
    };
    Ok(views::html(&view))
}

/// Opens one of the caller's messages with the session's identity, off the async threads.
/// `Ok(None)`: the message is the caller's but their key lives on their device.
async fn open_own(
    pages: &Pages,
    caller: &Caller,
    id: &MessageId,
) -> PageResult<(Summary, Option<Letter>)> {
    let core = &pages.api.core;
    let (summary, sealed) = mailbox::sealed_for_worker(&core.store, &caller.worker_id, id)
        .await
        .or_page(caller.lang)?;
    let Some(keyring) = caller.keyring.clone() else {
        return Ok((summary, None));
    };
    let letter = core
        .cpu
        .run(move || mailbox::open_letter(&keyring, &sealed))
        .await
        .or_page(caller.lang)?
        // Sealed before this worker's key existed: like a message that is not theirs.
        .map_err(|_| PageError::NotFound(caller.lang))?;
    Ok((summary, Some(letter)))
}

pub async fn message(
    axum::extract::State(pages): State,
    method: axum::http::Method,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let lang = caller.lang;
    let id = message_id(lang, &id)?;
    let (summary, letter) = open_own(&pages, &caller, &id).await?;
    let Some(letter) = letter else {
        return Ok(see_other(&format!("/berichten/{}/apparaat", summary.id)));
    };
    let core = &pages.api.core;
    mailbox::record_access(&core.store, core.now(), &caller.actor(), &id, "web")
        .await
        .or_page(lang)?;
    // A HEAD (a link checker, a prefetch) shows nobody the message: it stays unread.
    if method == axum::http::Method::GET {
        mailbox::mark_read(&core.store, core.now(), &caller.worker_id, &id)
            .await
            .or_page(lang)?;
    }
    let view = message_view(&pages, &caller, summary, letter, String::new(), None).await?;
    Ok(views::html(&view))
}

/// The message page's view (also re-shown with an error when a reply was refused).
pub(super) async fn message_view(
    pages: &Pages,
    caller: &Caller,
    summary: Summary,
    letter: Letter,
    reply_body: String,
    error: Option<String>,
) -> PageResult<MessagePage> {
    let lang = caller.lang;
    let raw = letter.raw.clone();
    let html = match raw {
        Some(raw) => pages
            .api
            .core
            .cpu
            .run(move || html_mail::sanitised_html_of(&raw))
            .await
            .or_page(lang)?,
        None => None,
    };
    let id = summary.id.to_string();
    let voicemail = summary.channel == Channel::Voicemail;
    let attachments = letter
        .attachments
        .iter()
        .enumerate()
        .map(|(index, a)| AttachmentRow {
            url: format!("/berichten/{id}/bijlagen/{index}"),
            filename: views::shown(&a.filename),
            content_type: a.content_type.clone(),
            size: views::size(a.size),
            audio: voicemail && a.content_type.starts_with("audio/"),
        })
        .collect();
    let t = lang.texts();
    let here = format!("/berichten/{id}");
    Ok(MessagePage {
        layout: pages.layout(caller, t.message_title, "inbox", &here),
        from: views::shown(&letter.from),
        to: views::shown(&letter.to),
        received: views::local_time_of(&summary.received_at),
        mailbox: mailbox_label(lang, &summary),
        channel: channel_label(lang, summary.channel),
        urgent: summary.urgent,
        referral: summary.kind == MessageKind::Aanmelding,
        subject: views::shown(&letter.subject),
        text: views::shown(&letter.body),
        html,
        attachments,
        can_reply: letter.reply_to.is_some(),
        reply_body,
        error,
        phone_channel: matches!(summary.channel, Channel::Sms | Channel::Voicemail),
        id,
    })
}

pub async fn delete(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfOnly>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let id = message_id(caller.lang, &id)?;
    let core = &pages.api.core;
    mailbox::delete_for_worker(
        &core.store,
        core.now(),
        &caller.actor(),
        &caller.worker_id,
        &id,
    )
    .await
    .or_page(caller.lang)?;
    Ok(see_other("/?ok=verwijderd"))
}

/// Bytes served as a file to save, never to render.
fn download(data: Vec<u8>, filename: &str) -> Response {
    let mut response = data.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

pub async fn attachment(
    axum::extract::State(pages): State,
    caller: Caller,
    Path((id, index)): Path<(String, String)>,
) -> PageResult<Response> {
    let lang = caller.lang;
    let id = message_id(lang, &id)?;
    let index: u32 = index.parse().map_err(|_| PageError::NotFound(lang))?;
    let (_, letter) = open_own(&pages, &caller, &id).await?;
    let letter = letter.ok_or(PageError::NotFound(lang))?;
    let core = &pages.api.core;
    let data = core
        .cpu
        .run(move || letter.attachment(index))
        .await
        .or_page(lang)?
        .ok_or(PageError::NotFound(lang))?;
    mailbox::record_access(&core.store, core.now(), &caller.actor(), &id, "attachment")
        .await
        .or_page(lang)?;
    Ok(download(data, &format!("bijlage-{index}")))
}

/// The sealed age file, for the device-key page's script (same origin, session cookie).
pub async fn age_file(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let id = message_id(caller.lang, &id)?;
    let core = &pages.api.core;
    let (_, sealed) = mailbox::sealed_for_worker(&core.store, &caller.worker_id, &id)
        .await
        .or_page(caller.lang)?;
    mailbox::record_access(&core.store, core.now(), &caller.actor(), &id, "age-file")
        .await
        .or_page(caller.lang)?;
    mailbox::mark_read(&core.store, core.now(), &caller.worker_id, &id)
        .await
        .or_page(caller.lang)?;
    Ok(download(sealed, &format!("{id}.age")))
}

/// The one page with script: it fetches the sealed file and opens it with the identity file the
/// worker picks, in the browser. The identity is read by the script and never sent anywhere.
pub async fn device_page(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
) -> PageResult<Response> {
    let id = message_id(caller.lang, &id)?;
    let core = &pages.api.core;
    // Ownership first: someone else's id is "not found" here too.
    let (summary, _) = mailbox::sealed_for_worker(&core.store, &caller.worker_id, &id)
        .await
        .or_page(caller.lang)?;
    let t = caller.lang.texts();
    let here = format!("/berichten/{}/apparaat", summary.id);
    let nonce = security::nonce();
    let mut layout = pages.layout(&caller, t.device_key_title, "inbox", &here);
    layout.scripts = vec![
        Script {
            url: assets::AGE_JS.url(),
            integrity: assets::AGE_JS.integrity.clone(),
        },
        Script {
            url: assets::DEVICE_JS.url(),
            integrity: assets::DEVICE_JS.integrity.clone(),
        },
    ];
    layout.nonce = nonce.clone();
    let view = DevicePage {
        layout,
        age_url: format!("/berichten/{}/age", summary.id),
        id: summary.id.to_string(),
    };
    let mut response = views::html(&view);
    if let Ok(csp) = HeaderValue::from_str(&security::script_csp(&nonce)) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    Ok(response)
}
