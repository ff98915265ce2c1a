//! The worker's aliases: the list with each alias's purpose note (sealed to the worker's own key),
//! a new alias per case, burning one after a confirmation step, and the contacts allowed on one alias.

use axum::extract::{Form, Path, Query};
use axum::response::Response;
use serde::Deserialize;

use super::views::{self, AliasRow, AliasesPage, BurnPage};
use super::{notice_text, see_other, Caller, NoticeQuery, OrPage, PageError, PageResult, State};
use crate::alias::{self, Address};
use crate::mail::EmailAddress;
use crate::partner::{self, Contact};
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
    let lang = caller.lang;
    let core = &pages.api.core;
    let me = me(&pages, &caller).await?;
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
        });
    }
    let t = lang.texts();
    let mut layout = pages.layout(&caller, t.aliases_title, "aliases", "/aliassen");
    layout.notice = notice_text(lang, query.ok.as_deref());
    Ok(views::html(&AliasesPage {
        layout,
        aliases: rows,
        error: None,
    }))
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
