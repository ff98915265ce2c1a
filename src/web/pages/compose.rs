//! Answering: a reply to a message, a new message from one of the worker's aliases, and where sent
//! mail stands. Both go through `mail::reply::send`, the API's own path: sanitising, the leak guard,
//! the durable queue. A refusal by the leak guard is explained on the page itself (never in the URL,
//! never in a log line), with the draft kept in the form.

use super::Query;
use axum::extract::{Multipart, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::inbox::message_view;
use super::views::{self, SentPage, SentRow, WritePage};
use super::{
    notice_text, see_other, Caller, Lang, NoticeQuery, OrPage, PageError, PageResult, State,
};
use crate::alias::{self, Address};
use crate::mail::compose::Attachment;
use crate::mail::leak::MarkerKind;
use crate::mail::outbound::{self, Kind};
use crate::mail::reply::{self, Draft, SendError, Sender};
use crate::mail::EmailAddress;
use crate::mailbox;

/// Most sent messages listed.
const SENT_LISTED: u32 = 100;

/// A message form: its text fields and attached files.
#[derive(Default)]
struct MessageForm {
    csrf: String,
    from: String,
    to: String,
    subject: String,
    body: String,
    attachments: Vec<Attachment>,
}

/// Reads a multipart message form. Bad input is a 400 page; the CSRF token is checked by the caller
/// before anything happens.
async fn read_form(lang: Lang, mut multipart: Multipart) -> PageResult<MessageForm> {
    let bad = |_| PageError::BadRequest(lang);
    let mut form = MessageForm::default();
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "attachment" {
            let filename = field.file_name().unwrap_or_default().trim().to_string();
            let content_type = field
                .content_type()
                .unwrap_or("application/octet-stream")
                .to_ascii_lowercase();
            let data = field.bytes().await.map_err(bad)?;
            if filename.is_empty() && data.is_empty() {
                continue; // an empty file input
            }
            let name_ok = !filename.is_empty()
                && filename.chars().count() <= 200
                && !filename
                    .chars()
                    .any(|c| c.is_control() || c == '/' || c == '\\');
            if !name_ok {
                return Err(PageError::BadRequest(lang));
            }
            form.attachments.push(Attachment {
                filename,
                content_type,
                data: data.to_vec(),
            });
            continue;
        }
        let text = field.text().await.map_err(bad)?;
        match name.as_str() {
            "csrf" => form.csrf = text,
            "from" => form.from = text,
            "to" => form.to = text,
            "subject" => form.subject = text,
            "body" => form.body = text,
            _ => {}
        }
    }
    Ok(form)
}

/// The leak guard's finding: the kind of marker and the fragment of the worker's own draft it
/// matched, shown on the page that was sent (never in a URL or a log line).
pub(super) fn leak_text(lang: Lang, leak: &crate::mail::leak::Leak) -> String {
    let t = lang.texts();
    let kind = match leak.kind {
        MarkerKind::Name => t.leak_kind_name,
        MarkerKind::Phone => t.leak_kind_phone,
        MarkerKind::Email => t.leak_kind_email,
        MarkerKind::Town => t.leak_kind_town,
        MarkerKind::Plate => t.leak_kind_plate,
    };
    format!(
        "{} {kind} (\u{201c}{}\u{201d}).",
        t.leak_refused, leak.fragment
    )
}

/// What the worker is told when sending was refused. The leak guard's finding names the kind of
/// marker and the fragment of the worker's own draft it matched: shown on this page only.
fn refusal_text(lang: Lang, error: &SendError) -> Option<String> {
    let t = lang.texts();
    Some(match error {
        SendError::Leak(leak) => leak_text(lang, leak),
        SendError::NotYourAlias | SendError::RecipientNotAllowed => t.recipient_refused.into(),
        SendError::NotConfigured => t.not_configured.into(),
        SendError::Attachment(_) => t.attachment_refused.into(),
        SendError::Invalid(_) | SendError::NotByMail => t.invalid_input.into(),
        SendError::Internal(_) => return None,
    })
}

pub async fn reply(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    multipart: Multipart,
) -> PageResult<Response> {
    let lang = caller.lang;
    let id = super::inbox::message_id(lang, &id)?;
    let form = read_form(lang, multipart).await?;
    caller.check(&pages, &form.csrf)?;
    let core = &pages.api.core;
    let (summary, sealed) = mailbox::sealed_for_worker(&core.store, &caller.worker_id, &id)
        .await
        .or_page(lang)?;
    let keyring = caller.keyring.clone().ok_or(PageError::NotFound(lang))?;
    let letter = core
        .cpu
        .run(move || mailbox::open_letter(&keyring, &sealed))
        .await
        .or_page(lang)?
        .map_err(|_| PageError::NotFound(lang))?;
    let body = form.body.clone();
    let outcome = match Draft::answering(&letter, form.body, form.attachments) {
        Ok(draft) => {
            let sender = Sender {
                worker_id: &caller.worker_id,
                handle: &caller.handle,
            };
            reply::send(core, sender, draft).await
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(queued) => sent_page_or_redirect(&pages, &caller, queued.removed_attachments).await,
        Err(SendError::Internal(e)) => Err(PageError::Internal(lang, e)),
        Err(refused) => {
            let view = message_view(
                &pages,
                &caller,
                summary,
                letter,
                body,
                refusal_text(lang, &refused),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, views::html(&view)).into_response())
        }
    }
}

/// After sending: the sent list, with the attachments that were removed on the way when there were.
async fn sent_page_or_redirect(
    pages: &super::Pages,
    caller: &Caller,
    removed: Vec<String>,
) -> PageResult<Response> {
    if removed.is_empty() {
        return Ok(see_other("/verzonden?ok=verstuurd"));
    }
    let mut view = sent_view(pages, caller).await?;
    view.removed = removed;
    view.layout.notice = Some(caller.lang.texts().sent_ok);
    Ok(views::html(&view))
}

/// The worker's live aliases to send from: their own, then their teams'.
async fn sending_aliases(pages: &super::Pages, caller: &Caller) -> PageResult<Vec<String>> {
    let core = &pages.api.core;
    let mailbox_id = crate::worker::mailbox_of(&core.store, &caller.worker_id)
        .await
        .or_page(caller.lang)?;
    Ok(alias::list_for_mailbox(&core.store, &mailbox_id)
        .await
        .or_page(caller.lang)?
        .into_iter()
        .filter(|a| !a.burned)
        .map(|a| a.address)
        .collect())
}

fn write_view(
    pages: &super::Pages,
    caller: &Caller,
    aliases: Vec<String>,
    form: &MessageForm,
    error: Option<String>,
) -> WritePage {
    let t = caller.lang.texts();
    WritePage {
        layout: pages.layout(caller, t.write_title, "write", "/schrijven"),
        from: if form.from.is_empty() {
            aliases.first().cloned().unwrap_or_default()
        } else {
            form.from.clone()
        },
        aliases,
        to: form.to.clone(),
        subject: form.subject.clone(),
        body: form.body.clone(),
        error,
    }
}

pub async fn write_page(
    axum::extract::State(pages): State,
    caller: Caller,
) -> PageResult<Response> {
    let aliases = sending_aliases(&pages, &caller).await?;
    Ok(views::html(&write_view(
        &pages,
        &caller,
        aliases,
        &MessageForm::default(),
        None,
    )))
}

pub async fn send(
    axum::extract::State(pages): State,
    caller: Caller,
    multipart: Multipart,
) -> PageResult<Response> {
    let lang = caller.lang;
    let mut form = read_form(lang, multipart).await?;
    caller.check(&pages, &form.csrf)?;
    let refuse = |form: &MessageForm, aliases: Vec<String>, text: String| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            views::html(&write_view(&pages, &caller, aliases, form, Some(text))),
        )
            .into_response()
    };
    let aliases = sending_aliases(&pages, &caller).await?;
    let from = Address::parse(&form.from);
    let to = EmailAddress::parse_recipient(form.to.trim());
    let (Ok(from_alias), Ok(to)) = (from, to) else {
        return Ok(refuse(&form, aliases, lang.texts().invalid_input.into()));
    };
    let draft = Draft {
        from_alias,
        to,
        subject: form.subject.clone(),
        body: form.body.clone(),
        attachments: std::mem::take(&mut form.attachments),
        in_reply_to: None,
        references: Vec::new(),
        kind: Kind::Mail,
    };
    let sender = Sender {
        worker_id: &caller.worker_id,
        handle: &caller.handle,
    };
    match reply::send(&pages.api.core, sender, draft).await {
        Ok(queued) => sent_page_or_redirect(&pages, &caller, queued.removed_attachments).await,
        Err(SendError::Internal(e)) => Err(PageError::Internal(lang, e)),
        Err(refused) => {
            let text = refusal_text(lang, &refused).unwrap_or_default();
            Ok(refuse(&form, aliases, text))
        }
    }
}

async fn sent_view(pages: &super::Pages, caller: &Caller) -> PageResult<SentPage> {
    let lang = caller.lang;
    let t = lang.texts();
    let core = &pages.api.core;
    let sent = outbound::list_for_worker(
        &core.store,
        &core.server_key,
        &caller.worker_id,
        SENT_LISTED,
    )
    .await
    .or_page(lang)?;
    let rows = sent
        .into_iter()
        .map(|item| {
            let (state, state_class) = match item.state {
                outbound::State::Queued => (t.state_queued, "queued"),
                outbound::State::Sent => (t.state_sent, "sent"),
                outbound::State::Failed | outbound::State::Bounced => (t.state_failed, "failed"),
            };
            let summary = item.summary.unwrap_or_else(|| outbound::Summary {
                recipient: String::new(),
                subject: String::new(),
                from_alias: String::new(),
            });
            SentRow {
                when: views::local_time(item.created_at),
                kind: if item.kind == outbound::Kind::Reply {
                    t.kind_reply
                } else {
                    t.kind_mail
                },
                state,
                state_class,
                to: summary.recipient,
                subject: summary.subject,
                from_alias: summary.from_alias,
            }
        })
        .collect();
    Ok(SentPage {
        layout: pages.layout(caller, t.sent_title, "sent", "/verzonden"),
        rows,
        removed: Vec::new(),
    })
}

pub async fn sent(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut view = sent_view(&pages, &caller).await?;
    view.layout.notice = notice_text(caller.lang, query.ok.as_deref());
    Ok(views::html(&view))
}
