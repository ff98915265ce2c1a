//! The worker's identity markers (for the leak guard), sessions and API tokens.

use super::{Form, Query};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::views::{self, MarkerCount, MarkersPage, SessionRow, SessionsPage, TokenRow};
use super::{notice_text, see_other, Caller, NoticeQuery, OrPage, PageError, PageResult, State};
use crate::api_token;
use crate::mail::leak::MarkerKind;
use crate::worker;

/// Most markers a worker may register (as the API).
const MAX_MARKERS: usize = 100;

const KINDS: [(MarkerKind, &str); 5] = [
    (MarkerKind::Name, "names"),
    (MarkerKind::Phone, "phones"),
    (MarkerKind::Email, "emails"),
    (MarkerKind::Town, "towns"),
    (MarkerKind::Plate, "plates"),
];

async fn markers_view(
    pages: &super::Pages,
    caller: &Caller,
    error: Option<String>,
) -> PageResult<MarkersPage> {
    let lang = caller.lang;
    let t = lang.texts();
    let counts = worker::marker_counts(&pages.api.core.store, &caller.worker_id)
        .await
        .or_page(lang)?;
    let count_of = |kind: MarkerKind| {
        counts
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    };
    let label = |kind: MarkerKind| match kind {
        MarkerKind::Name => t.markers_names,
        MarkerKind::Phone => t.markers_phones,
        MarkerKind::Email => t.markers_emails,
        MarkerKind::Town => t.markers_towns,
        MarkerKind::Plate => t.markers_plates,
    };
    Ok(MarkersPage {
        layout: pages.layout(caller, t.markers_title, "markers", "/kenmerken"),
        counts: KINDS
            .iter()
            .map(|(kind, field)| MarkerCount {
                field,
                label: label(*kind),
                count: count_of(*kind),
            })
            .collect(),
        error,
    })
}

pub async fn markers_page(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut view = markers_view(&pages, &caller, None).await?;
    view.layout.notice = notice_text(caller.lang, query.ok.as_deref());
    Ok(views::html(&view))
}

#[derive(Deserialize)]
pub struct MarkersForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    names: String,
    #[serde(default)]
    phones: String,
    #[serde(default)]
    emails: String,
    #[serde(default)]
    towns: String,
    #[serde(default)]
    plates: String,
}

/// Replaces the worker's markers. The texts go to the domain function, which keeps keyed hashes only;
/// they are never logged or echoed back.
pub async fn set_markers(
    axum::extract::State(pages): State,
    caller: Caller,
    Form(form): Form<MarkersForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let entries: Vec<(MarkerKind, String)> = [
        (MarkerKind::Name, lines(&form.names)),
        (MarkerKind::Phone, lines(&form.phones)),
        (MarkerKind::Email, lines(&form.emails)),
        (MarkerKind::Town, lines(&form.towns)),
        (MarkerKind::Plate, lines(&form.plates)),
    ]
    .into_iter()
    .flat_map(|(kind, texts)| texts.into_iter().map(move |t| (kind, t)))
    .collect();
    let refuse = |text: String| async {
        let view = markers_view(&pages, &caller, Some(text)).await?;
        Ok::<_, PageError>((StatusCode::UNPROCESSABLE_ENTITY, views::html(&view)).into_response())
    };
    if entries.len() > MAX_MARKERS {
        return refuse(lang.texts().invalid_input.to_string()).await;
    }
    let core = &pages.api.core;
    match worker::set_markers(
        &core.store,
        &core.server_key,
        core.now(),
        &caller.worker_id,
        &caller.handle,
        &entries,
    )
    .await
    {
        Ok(_) => Ok(see_other("/kenmerken?ok=kenmerken")),
        // The domain's sentence says which kind could not be read (never the marker itself).
        Err(crate::Error::Invalid(message)) => {
            refuse(format!("{} ({message})", lang.texts().invalid_input)).await
        }
        Err(e) => Err(PageError::from_error(lang, e)),
    }
}

async fn sessions_view(
    pages: &super::Pages,
    caller: &Caller,
    new_token: Option<String>,
) -> PageResult<SessionsPage> {
    let lang = caller.lang;
    let t = lang.texts();
    let sessions = pages
        .api
        .sessions
        .list_for(&caller.worker_id, &caller.token, pages.now())
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            started: views::local_time(s.created_at),
            last_seen: views::local_time(s.last_seen),
            current: s.current,
            unlocked: s.unlocked,
        })
        .collect();
    let tokens = api_token::list(&pages.api.core.store, &caller.worker_id)
        .await
        .or_page(lang)?
        .into_iter()
        .map(|info| TokenRow {
            id: info.id.to_string(),
            label: info.label,
            expires: views::local_time_of(&info.expires_at),
        })
        .collect();
    Ok(SessionsPage {
        layout: pages.layout(caller, t.sessions_title, "sessions", "/sessies"),
        sessions,
        tokens,
        new_token,
        error: None,
    })
}

pub async fn sessions_page(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let mut view = sessions_view(&pages, &caller, None).await?;
    view.layout.notice = notice_text(caller.lang, query.ok.as_deref());
    Ok(views::html(&view))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// Ends one of the worker's sessions (its unlocked identity goes with it). Ending this one logs out.
pub async fn end_session(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    if !pages.api.sessions.end_by_id(&caller.worker_id, &id) {
        return Err(PageError::NotFound(caller.lang));
    }
    crate::audit::record(
        &pages.api.core.store,
        pages.now(),
        crate::audit::Event::new(
            &caller.actor(),
            crate::audit::Action::SessionEnded,
            &caller.handle,
        ),
    )
    .await
    .or_page(caller.lang)?;
    Ok(see_other("/sessies?ok=sessie"))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    passphrase: String,
}

/// Token lifetime when made from the web app (as the API's default).
const TOKEN_DAYS: u32 = 30;

pub async fn create_token(
    axum::extract::State(pages): State,
    axum::Extension(connection): axum::Extension<crate::web::ConnectionInfo>,
    caller: Caller,
    Form(form): Form<TokenForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    if let Err(refused) =
        super::auth::confirm_passphrase(&pages, connection.peer, &caller, form.passphrase).await?
    {
        let mut view = sessions_view(&pages, &caller, None).await?;
        view.error = Some(refused.text);
        return Ok(refused.answer(views::html(&view)));
    }
    let core = &pages.api.core;
    let created = match api_token::create(
        &core.store,
        core.now(),
        &caller.actor(),
        &caller.worker_id,
        &form.label,
        TOKEN_DAYS,
    )
    .await
    {
        Ok(created) => created,
        Err(crate::Error::Invalid(_)) => return Err(PageError::BadRequest(lang)),
        Err(e) => return Err(PageError::from_error(lang, e)),
    };
    // Shown once, in this response only (never in a URL).
    let view = sessions_view(&pages, &caller, Some(created.token)).await?;
    Ok(views::html(&view))
}

pub async fn revoke_token(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let id = crate::ids::TokenId::parse(&id).ok_or(PageError::NotFound(caller.lang))?;
    let core = &pages.api.core;
    api_token::revoke(
        &core.store,
        core.now(),
        &caller.actor(),
        &caller.worker_id,
        &id,
    )
    .await
    .or_page(caller.lang)?;
    Ok(see_other("/sessies?ok=token-weg"))
}
