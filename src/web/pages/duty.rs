//! The on-call duty in the web app: who is on call now and next in each of the worker's teams, the
//! worker's open alerts with acknowledge and resolve buttons, and paging the duty by hand. The same
//! domain functions as `/v1/oncall` and `/v1/alerts`: a worker sees only their teams' alerts and those
//! addressed to them; any other id is the same 404 as a missing one.

use super::{Form, Query};
use axum::extract::Path;
use axum::response::Response;
use serde::Deserialize;

use super::views::{self, AlertRow, DutyPage, DutyRow};
use super::{
    notice_text, see_other, Caller, Lang, NoticeQuery, OrPage, PageError, PageResult, State,
};
use crate::ids::AlertId;
use crate::oncall::alert::{self, AlertView, Closer, Via};
use crate::oncall::NowAndNext;
use crate::worker::Handle;

pub async fn page(
    axum::extract::State(pages): State,
    caller: Caller,
    Query(query): Query<NoticeQuery>,
) -> PageResult<Response> {
    let lang = caller.lang;
    let core = &pages.api.core;
    let now = core.now();
    let mut duties = Vec::new();
    for team_id in crate::oncall::teams_of(&core.store, &caller.worker_id)
        .await
        .or_page(lang)?
    {
        let duty = crate::oncall::now_and_next(&core.store, core.oncall.tz(), &team_id, now, now)
            .await
            .or_page(lang)?;
        duties.push(duty);
    }
    let alerts = alert::list_for_worker(&core.store, &caller.worker_id, false)
        .await
        .or_page(lang)?;
    let t = lang.texts();
    let mut layout = pages.layout(&caller, t.duty_title, "duty", "/dienst");
    layout.notice = notice_text(lang, query.ok.as_deref());
    let view = DutyPage {
        layout,
        teams: duties.iter().map(|d| d.team.clone()).collect(),
        duties: duties.into_iter().map(|d| duty_row(lang, d)).collect(),
        alerts: alerts.into_iter().map(|a| alert_row(lang, a)).collect(),
    };
    Ok(views::html(&view))
}

/// "primary (achterwacht: secondary)", or that nobody is on call.
fn who(lang: Lang, primary: Option<String>, secondary: Option<String>, gap: bool) -> String {
    let t = lang.texts();
    match (primary, secondary) {
        _ if gap => t.duty_gap.to_string(),
        (Some(primary), Some(secondary)) => format!(
            "{primary} ({}), {secondary} ({})",
            t.duty_primary, t.duty_secondary
        ),
        (Some(primary), None) => format!("{primary} ({})", t.duty_primary),
        (None, Some(secondary)) => format!("{secondary} ({})", t.duty_secondary),
        (None, None) => t.duty_gap.to_string(),
    }
}

fn duty_row(lang: Lang, duty: NowAndNext) -> DutyRow {
    DutyRow {
        now: who(lang, duty.primary, duty.secondary, duty.gap),
        next: duty.next.map(|next| {
            (
                views::local_time_of(&next.at),
                who(lang, next.primary, next.secondary, next.gap),
            )
        }),
        team: duty.team,
    }
}

fn alert_row(lang: Lang, alert: AlertView) -> AlertRow {
    let t = lang.texts();
    let (state, open) = match alert.state.as_str() {
        "open" => (t.alert_state_open, true),
        "acknowledged" => (t.alert_state_acknowledged, false),
        _ => (t.alert_state_resolved, false),
    };
    AlertRow {
        id: alert.id.to_string(),
        code: alert.code,
        team: alert.team,
        state,
        raised: views::local_time_of(&alert.raised_at),
        open,
    }
}

#[derive(Deserialize)]
pub struct PageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    team: String,
}

/// Pages a team's duty by hand (the worker must be a member; another team is the same 404).
pub async fn page_the_duty(
    axum::extract::State(pages): State,
    caller: Caller,
    Form(form): Form<PageForm>,
) -> PageResult<Response> {
    caller.check(&pages, &form.csrf)?;
    let lang = caller.lang;
    let team = Handle::parse(&form.team).map_err(|_| PageError::NotFound(lang))?;
    let core = &pages.api.core;
    alert::page(
        &core.store,
        core.now(),
        &team,
        &caller.actor(),
        Some(&caller.worker_id),
    )
    .await
    .or_page(lang)?;
    core.oncall.wake();
    Ok(see_other("/dienst?ok=opgeroepen"))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn acknowledge(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    close(&pages, &caller, &id, &form.csrf, false).await
}

pub async fn resolve(
    axum::extract::State(pages): State,
    caller: Caller,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> PageResult<Response> {
    close(&pages, &caller, &id, &form.csrf, true).await
}

async fn close(
    pages: &super::Pages,
    caller: &Caller,
    id: &str,
    csrf: &str,
    resolving: bool,
) -> PageResult<Response> {
    caller.check(pages, csrf)?;
    let lang = caller.lang;
    let id = AlertId::parse(id).ok_or(PageError::NotFound(lang))?;
    let core = &pages.api.core;
    let closer = Closer::Worker {
        id: &caller.worker_id,
        handle: &caller.handle,
    };
    if resolving {
        alert::resolve(&core.store, core.now(), &id, closer, Via::Web)
            .await
            .or_page(lang)?;
        Ok(see_other("/dienst?ok=afgehandeld"))
    } else {
        alert::acknowledge(&core.store, core.now(), &id, closer, Via::Web)
            .await
            .or_page(lang)?;
        Ok(see_other("/dienst?ok=bevestigd"))
    }
}
