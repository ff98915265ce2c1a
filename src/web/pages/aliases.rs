//! The worker's aliases: the list with each alias's purpose note (sealed to the worker's own key),
//! a new alias per case, burning one after a confirmation step, and the contacts allowed on one alias.

use super::{Form, Query};
use axum::extract::Path;
use axum::response::Response;
use serde::Deserialize;

use super::views::{self, AliasRow, AliasesPage, BurnPage};
use super::{notice_text, see_other, Caller, NoticeQuery, OrPage, PageError, PageResult, State};
use crate::alias::{self, Address};
use crate::mail::EmailAddress;
use crate::partner::{self, Contact};
use crate::phone::voice::{self, CallOutError};
use crate::phone::{sms, PhoneNumber};
use crate::worker::{self, Handle, WorkerRef};

async fn me(pages: &super::Pages, caller: &Caller) -> PageResult<WorkerRef> {
    let handle = Handle::parse(&caller.handle).or_page(caller.lang)?;
    worker::find(&pages.api.core.store, &handle)
        .await
        .or_page(caller.lang)
}

/// One of the caller's own aliases; anything else (someone else's, malformed) is "not found".
async fn own_alias(
    pages: &super::Pages,
    caller: &Caller,
    me: &WorkerRef,
    text: &str,
) -> PageResult<Address> {
    let address = Address::parse(text).map_err(|_| PageError::NotFound(caller.lang))?;
    let mailbox = alias::mailbox_of(&pages.api.core.store, &address)
        .await
        .or_page(caller.lang)?;
    if mailbox != me.mailbox_id {
        return Err(PageError::NotFound(caller.lang));
    }
    Ok(address)
}

pub async fn list(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut view = list_view(&pages, &caller, None).await?;
    view.layout.notice = notice_text(caller.lang, query.ok.as_deref());
    Ok(views::html(&view))
}

/// The aliases page; `error` explains a refused text or call on the page itself (never in the URL).
async fn list_view(
    pages: &super::Pages,
    caller: &Caller,
    error: Option<String>,
) -> PageResult<AliasesPage> {
    let lang = caller.lang;
    let core = &pages.api.core;
    let me = me(pages, caller).await?;
    let infos = alias::list_for_mailbox(&core.store, &me.mailbox_id)
        .await
        .or_page(lang)?;
    let mut notes = alias::notes_for_mailbox(&core.store, &me.mailbox_id)
        .await
        .or_page(lang)?;
    let keyring = caller.keyring.clone();
    let mut rows = Vec::with_capacity(infos.len());
    // Newest first: a per-case alias just made is at the top.
    for info in infos.into_iter().rev() {
        let address = Address::parse(&info.address).or_page(lang)?;
        let contacts = partner::contact_count(&core.store, &address)
            .await
            .or_page(lang)?;
        let number = match core.phone {
            Some(_) if !info.burned => crate::phone::pool::number_of(&core.store, &address)
                .await
                .or_page(lang)?
                .map(|number| number.as_str().to_string()),
            _ => None,
        };
        let note = match (notes.remove(&info.address), &keyring) {
            (Some(sealed), Some(keyring)) => keyring
                .open(&sealed)
                .ok()
                .and_then(|plain| String::from_utf8(plain.to_vec()).ok())
                .unwrap_or_default(),
            _ => String::new(),
        };
        rows.push(AliasRow {
            address: info.address,
            created: views::local_time_of(&info.created_at),
            burned: info.burned,
            note,
            note_readable: keyring.is_some(),
            contacts,
            number,
        });
    }
    let t = lang.texts();
    Ok(AliasesPage {
        layout: pages.layout(caller, t.aliases_title, "aliases", "/aliassen"),
        aliases: rows,
        error,
    })
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn create(
    axum::extract::State(pages): State,
    caller: Caller,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let core = &pages.api.core;
    let me = me(&pages, &caller).await?;
    worker::add_alias(&core.store, &core.domain, core.now(), &caller.actor(), &me)
        .await
        .or_page(caller.lang)?;
    Ok(see_other("/aliassen?ok=alias"))
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    note: String,
}

pub async fn set_note(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<NoteForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let core = &pages.api.core;
    let me = me(&pages, &caller).await?;
    let address = own_alias(&pages, &caller, &me, &address).await?;
    let recipient = crate::crypto::parse_recipient(&me.recipient).or_page(lang)?;
    match alias::set_note(
        &core.store,
        core.now(),
        &caller.actor(),
        &me.mailbox_id,
        &address,
        &form.note,
        &recipient,
    )
    .await
    {
        Ok(()) => Ok(see_other("/aliassen?ok=notitie")),
        Err(crate::Error::Invalid(_)) => Err(PageError::BadRequest(lang)),
        Err(e) => Err(PageError::from_error(lang, e)),
    }
}

pub async fn burn_page(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
) -> PageResult<Response> {
    let me = me(&pages, &caller).await?;
    let address = own_alias(&pages, &caller, &me, &address).await?;
    let t = caller.lang.texts();
    let here = format!("/aliassen/{address}/verbranden");
    Ok(views::html(&BurnPage {
        layout: pages.layout(&caller, t.burn_title, "aliases", &here),
        address: address.to_string(),
    }))
}

/// Burns one of the worker's own aliases at once (after the confirmation page).
pub async fn burn(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let core = &pages.api.core;
    let me = me(&pages, &caller).await?;
    let address = own_alias(&pages, &caller, &me, &address).await?;
    alias::burn_audited(&core.store, core.now(), &caller.actor(), &address)
        .await
        .or_page(caller.lang)?;
    Ok(see_other("/aliassen?ok=verbrand"))
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    contact: String,
}

async fn contact_change(
    pages: &super::Pages,
    caller: &Caller,
    address: &str,
    form: ContactForm,
    allow: bool,
) -> PageResult<Response> {
    caller.check(pages, &form.csrf)?;
    let lang = caller.lang;
    let core = &pages.api.core;
    let me = me(pages, caller).await?;
    let address = own_alias(pages, caller, &me, address).await?;
    let contact = Contact::Email(
        EmailAddress::parse(form.contact.trim()).map_err(|_| PageError::BadRequest(lang))?,
    );
    let result = if allow {
        partner::allow_contact(
            &core.store,
            &core.server_key,
            core.now(),
            &caller.actor(),
            &address,
            &contact,
        )
        .await
    } else {
        partner::disallow_contact(
            &core.store,
            &core.server_key,
            core.now(),
            &caller.actor(),
            &address,
            &contact,
        )
        .await
    };
    match result {
        // Allowing twice, or removing one that was not there, leaves things as asked.
        Ok(()) | Err(crate::Error::Conflict(_)) | Err(crate::Error::NotFound(_)) => {
            Ok(see_other(if allow {
                "/aliassen?ok=contact"
            } else {
                "/aliassen?ok=contact-weg"
            }))
        }
        Err(e) => Err(PageError::from_error(lang, e)),
    }
}

pub async fn allow_contact(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<ContactForm>,
) -> PageResult<Response> {
    contact_change(&pages, &caller, &address, form, true).await
}

pub async fn remove_contact(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<ContactForm>,
) -> PageResult<Response> {
    contact_change(&pages, &caller, &address, form, false).await
}

#[derive(Deserialize)]
pub struct PhoneForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    body: String,
}

/// A refused text or call: the aliases page again, with the reason on it (`None`: an internal
/// error, the generic problem page).
async fn phone_refused(
    pages: &super::Pages,
    caller: &Caller,
    reason: Option<String>,
) -> PageResult<Response> {
    match reason {
        Some(reason) => {
            let mut response = views::html(&list_view(pages, caller, Some(reason)).await?);
            *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        None => Err(PageError::Internal(
            caller.lang,
            crate::Error::invalid("the phone provider could not be used"),
        )),
    }
}

fn call_out_text(lang: super::Lang, error: &CallOutError) -> Option<String> {
    let t = lang.texts();
    Some(match error {
        CallOutError::NotYourAlias | CallOutError::NoNumber | CallOutError::NotAllowed => {
            t.recipient_refused.into()
        }
        CallOutError::Provider(_) => t.phone_unavailable.into(),
        CallOutError::Internal(_) => return None,
    })
}

/// The phone service and the destination, or the page saying what is wrong.
fn phone_and_destination<'a>(
    pages: &'a super::Pages,
    lang: super::Lang,
    to: &str,
) -> Result<(&'a crate::phone::Phone, PhoneNumber), String> {
    let t = lang.texts();
    let phone = pages
        .api
        .core
        .phone
        .as_deref()
        .ok_or_else(|| t.not_configured.to_string())?;
    let to = PhoneNumber::parse(to.trim()).map_err(|_| t.phone_refused_number.to_string())?;
    Ok((phone, to))
}

/// "Sms sturen": a text from the alias's number, through the leak guard, to a partner's number or
/// a contact allowed on this alias.
pub async fn send_sms(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<PhoneForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let (phone, to) = match phone_and_destination(&pages, lang, &form.to) {
        Ok(found) => found,
        Err(reason) => return phone_refused(&pages, &caller, Some(reason)).await,
    };
    let sent = sms::send(
        &pages.api.core,
        phone,
        &caller.worker_id,
        &caller.handle,
        &address,
        &to,
        &form.body,
    )
    .await;
    match sent.map_err(|error| sms_refused_text(lang, error)) {
        Ok(_) => Ok(see_other("/aliassen?ok=sms")),
        Err(Ok(text)) => phone_refused(&pages, &caller, text).await,
        Err(Err(e)) => Err(PageError::from_error(lang, e)),
    }
}

/// What the aliases page says when a text was not sent (as `call_out_text` for a call); an internal
/// error is not said there but becomes the error page.
fn sms_refused_text(
    lang: super::Lang,
    error: sms::SendError,
) -> Result<Option<String>, crate::Error> {
    let t = lang.texts();
    Ok(match error {
        sms::SendError::Leak(leak) => Some(super::compose::leak_text(lang, &leak)),
        sms::SendError::Invalid => Some(t.invalid_input.into()),
        sms::SendError::Route(error) => call_out_text(lang, &error),
        sms::SendError::Provider(_) => Some(t.phone_unavailable.into()),
        sms::SendError::Internal(e) => return Err(e),
    })
}

/// "Bellen via mijn alias": the relay rings the worker's own phone, then connects them to the
/// destination with the alias's number as caller ID.
pub async fn call(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(address): Path<String>,
    Form(form): Form<PhoneForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let (phone, to) = match phone_and_destination(&pages, lang, &form.to) {
        Ok(found) => found,
        Err(reason) => return phone_refused(&pages, &caller, Some(reason)).await,
    };
    let placed = voice::click_to_call(
        &pages.api.core,
        phone,
        &caller.worker_id,
        &caller.handle,
        &address,
        &to,
    )
    .await;
    match placed {
        Ok(_) => Ok(see_other("/aliassen?ok=bellen")),
        Err(error) => phone_refused(&pages, &caller, call_out_text(lang, &error)).await,
    }
}
