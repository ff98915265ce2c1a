//! Calls: an incoming call to an alias number (hosted path: answered in TwiML; self-hosted: the same
//! decision answered to Kamailio), its callbacks (no answer → the next member or voicemail), calls out
//! from the alias (a worker dialling in from their own phone, and click-to-call).
//!
//! The facts are gathered here, the decision is `routing::decide_call`, the effects (audit, the call's
//! row for its callbacks) follow. A caller's number is sealed before it is stored; real numbers of
//! workers are opened only when a call is let through, to dial them.

use sqlx::Row as _;

use super::pool::{self, NumberState};
use super::provider::{CallScript, OutgoingCall, Sid};
use super::ring::{self, MailboxKind};
use super::routing::{self, CallFacts, CallRoute, Refused};
use super::{twiml, Phone, PhoneNumber};
use crate::alias::{self, Address, Resolution};
use crate::audit::{self, Actor, Event};
use crate::clock::Millis;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::intake::{self, AcceptedSender, SenderFacts};
use crate::metrics::Metrics;
use crate::partner::{self, Contact, Partner};

/// How long a routed call's row (for its callbacks) and a click-to-call bridge are kept.
const CALL_ROW_MILLIS: i64 = 6 * 3600 * 1000;
const BRIDGE_MILLIS: i64 = 10 * 60 * 1000;

/// Numbers providers put in `From` when the caller withheld theirs (the keypad spellings of
/// ANONYMOUS, RESTRICTED, UNAVAILABLE, BLOCKED), and the texts some send instead.
const WITHHELD: [&str; 4] = ["+266696687", "+7378742833", "+86282452253", "+2562533"];

/// The caller's number from a webhook's `From`, or `None` when it is withheld or not a number.
pub fn caller_number(from: Option<&str>) -> Option<PhoneNumber> {
    let from = from?.trim();
    if WITHHELD.contains(&from) {
        return None;
    }
    PhoneNumber::parse(from).ok()
}

/// Gathers what the decision needs. Real numbers are opened only when the caller may get through.
pub async fn gather(
    core: &Core,
    caller: Option<&PhoneNumber>,
    number: &PhoneNumber,
) -> Result<CallFacts> {
    let now = core.now();
    let state = pool::state_of(&core.store, number, now).await?;
    let mut facts = CallFacts {
        caller: caller.cloned(),
        number: state.clone(),
        sender: SenderFacts {
            organisation: None,
            allowed_contact: false,
        },
        resolution: Resolution::Unknown,
        caller_is_member: false,
        ring: Vec::new(),
        available: true,
    };
    let (NumberState::Served { alias }, Some(caller)) = (&state, caller) else {
        return Ok(facts);
    };
    facts.resolution = alias::resolve(&core.store, alias).await?;
    let Resolution::Deliver { mailbox_id, .. } = facts.resolution.clone() else {
        return Ok(facts);
    };
    let (kind, members) = ring::mailbox(&core.store, &mailbox_id).await?;
    // The member's registered phone (the one they were enrolled with), not any phone among their
    // identity markers: a worker may list a home or office number there, and a caller ID matching
    // one must not get the member's dial-out prompt. Every member is looked at, whoever matches.
    facts.caller_is_member = members.iter().fold(false, |found, member| {
        found
            | member
                .real_phone(&core.server_key)
                .is_ok_and(|phone| phone == *caller)
    });
    if facts.caller_is_member {
        return Ok(facts);
    }
    let organisation = partner::by_phone(&core.store, caller).await?;
    let allowed_contact = organisation.is_none()
        && partner::contact_allowed(
            &core.store,
            &core.server_key,
            alias,
            &Contact::Phone(caller.clone()),
        )
        .await?;
    facts.sender = SenderFacts {
        organisation,
        allowed_contact,
    };
    if intake::decide(facts.sender.clone(), facts.resolution.clone()).is_err() {
        return Ok(facts);
    }
    let ringing = match kind {
        MailboxKind::Worker => {
            let Some(owner) = members.first() else {
                return Ok(facts);
            };
            if let Some(hours) = ring::hours_of(&core.store, &owner.worker_id).await? {
                facts.available = routing::local_minute(now).is_none_or(|m| hours.within(m));
            }
            vec![owner.clone()]
        }
        MailboxKind::Team => {
            let tz = core.oncall.tz();
            let on_call = crate::oncall::call_order(&core.store, tz, &mailbox_id, now).await?;
            ring::who_to_ring(&members, on_call.as_deref())
        }
    };
    if facts.available {
        for member in &ringing {
            facts.ring.push(member.real_phone(&core.server_key)?);
        }
    }
    Ok(facts)
}

fn actor_of(organisation: Option<&Partner>) -> Actor {
    match organisation {
        Some(organisation) => Actor::Partner(organisation.name.clone()),
        None => Actor::Anonymous,
    }
}

fn sender_detail(sender: &AcceptedSender) -> String {
    match sender {
        AcceptedSender::Organisation(organisation) => format!("org={}", organisation.name),
        AcceptedSender::AllowedContact => "contact".to_string(),
    }
}

/// Queues the audit row of a refused call or text (anonymous traffic: written in batches). The
/// caller's number is never recorded; the subject is the alias when the number is served.
pub fn audit_refusal(
    core: &Core,
    action: crate::audit::Action,
    facts_number: &NumberState,
    organisation: Option<&Partner>,
    refused: Refused,
) {
    let subject = match facts_number {
        NumberState::Served { alias } => alias.as_str().to_string(),
        NumberState::Burned => "burned-number".to_string(),
        NumberState::Unserved => "unserved-number".to_string(),
    };
    core.audit_queue.push(
        core.now(),
        Event::new(&actor_of(organisation), action, &subject)
            .detail(&format!("reason={}", refused.as_str())),
    );
}

/// Records a webhook as handled; `false` when it was handled before (a replay).
pub async fn first_time(core: &Core, key: &str, window_seconds: u64) -> Result<bool> {
    let mut wtx = core.store.begin_write().await?;
    let fresh = mark_seen(&mut wtx, key, core.now(), window_seconds).await?;
    if fresh {
        wtx.commit().await?;
    }
    Ok(fresh)
}

pub(crate) async fn mark_seen(
    wtx: &mut crate::store::WriteTx,
    key: &str,
    now: Millis,
    window_seconds: u64,
) -> Result<bool> {
    let expires = now + i64::try_from(window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    let inserted = sqlx::query(
        "INSERT INTO phone_webhooks_seen (key, expires_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(expires)
    .execute(wtx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Forgets handled webhooks, calls and bridges past their time.
pub async fn sweep(core: &Core) -> Result<()> {
    let now = core.now();
    let mut wtx = core.store.begin_write().await?;
    for sql in [
        "DELETE FROM phone_webhooks_seen WHERE expires_at < $1",
        "DELETE FROM phone_calls WHERE expires_at < $1",
        "DELETE FROM phone_bridges WHERE expires_at < $1",
    ] {
        sqlx::query(sql).bind(now).execute(wtx.conn()).await?;
    }
    wtx.commit().await
}

/// A let-through call to a team's number is also an on-call alert (one of the duty's triggers),
/// besides ringing whoever is on call: someone acknowledges it even when the call itself is missed.
/// A call to a worker's own alias raises nothing. Failing to raise never fails the call.
async fn page_team_for_call(core: &Core, alias: &Address) {
    let mailbox_id = match crate::alias::mailbox_of(&core.store, alias).await {
        Ok(mailbox_id) => mailbox_id,
        Err(e) => {
            tracing::warn!(cause = %e, "call: the alias's mailbox could not be read");
            return;
        }
    };
    match crate::oncall::alert::raise_for_call(core, &mailbox_id).await {
        Ok(_) | Err(Error::NotFound(_)) => {}
        Err(e) => tracing::warn!(cause = %e, "call: the team's alert could not be raised"),
    }
}

/// An incoming call on the hosted path: the TwiML to answer.
pub async fn incoming(
    core: &Core,
    phone: &Phone,
    call_sid: &Sid,
    from: Option<&str>,
    to: &PhoneNumber,
) -> Result<String> {
    let caller = caller_number(from);
    let facts = gather(core, caller.as_ref(), to).await?;
    let number_state = facts.number.clone();
    let organisation = facts.sender.organisation.clone();
    let route = routing::decide_call(to, facts);
    let window = phone.config.replay_window_seconds;
    match route {
        CallRoute::Refuse(refused) => {
            Metrics::inc(&core.metrics.phone_calls_refused_total);
            audit_refusal(
                core,
                crate::audit::Action::CallRefused,
                &number_state,
                organisation.as_ref(),
                refused,
            );
            Ok(twiml::REFUSAL.to_string())
        }
        CallRoute::AskDestination { .. } => {
            if !first_time(core, &format!("voice:{}", call_sid.as_str()), window).await? {
                return Ok(twiml::REFUSAL.to_string());
            }
            Ok(twiml::ask_destination(&phone.url("/phone/voice/outbound")))
        }
        CallRoute::Ring {
            alias,
            caller_id,
            targets,
            accepted,
        } => {
            let caller = caller.as_ref().expect("a let-through call has a caller");
            let remembered = remember_call(
                core,
                call_sid,
                &alias,
                caller,
                &accepted.sender,
                crate::audit::Action::CallRouted,
                window,
            )
            .await?;
            if !remembered {
                return Ok(twiml::REFUSAL.to_string());
            }
            Metrics::inc(&core.metrics.phone_calls_routed_total);
            page_team_for_call(core, &alias).await;
            let first = &targets[0];
            Ok(twiml::dial(
                &caller_id,
                first,
                phone.config.ring_seconds,
                &phone.url("/phone/voice/dial?step=0"),
            ))
        }
        CallRoute::Voicemail { alias, accepted } => {
            let caller = caller.as_ref().expect("a let-through call has a caller");
            let remembered = remember_call(
                core,
                call_sid,
                &alias,
                caller,
                &accepted.sender,
                crate::audit::Action::CallVoicemail,
                window,
            )
            .await?;
            if !remembered {
                return Ok(twiml::REFUSAL.to_string());
            }
            Metrics::inc(&core.metrics.phone_calls_routed_total);
            page_team_for_call(core, &alias).await;
            Ok(voicemail_twiml(phone))
        }
    }
}

fn voicemail_twiml(phone: &Phone) -> String {
    twiml::voicemail(
        phone.config.voicemail_max_seconds,
        &phone.url("/phone/voice/recorded"),
        &phone.url("/phone/voice/recording"),
    )
}

/// Stores the call's row (for its callbacks) with the webhook's replay key and the audit row, in one
/// transaction. `false` when this call was handled before.
async fn remember_call(
    core: &Core,
    call_sid: &Sid,
    alias: &Address,
    caller: &PhoneNumber,
    sender: &AcceptedSender,
    action: crate::audit::Action,
    window_seconds: u64,
) -> Result<bool> {
    let now = core.now();
    let caller_sealed = core.server_key.seal(caller.as_str().as_bytes())?;
    let actor = match sender {
        AcceptedSender::Organisation(organisation) => Actor::Partner(organisation.name.clone()),
        AcceptedSender::AllowedContact => Actor::Anonymous,
    };
    let detail = sender_detail(sender);
    let mut wtx = core.store.begin_write().await?;
    if !mark_seen(
        &mut wtx,
        &format!("voice:{}", call_sid.as_str()),
        now,
        window_seconds,
    )
    .await?
    {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO phone_calls (call_sid, alias, caller_sealed, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (call_sid) DO NOTHING",
    )
    .bind(call_sid.as_str())
    .bind(alias.as_str())
    .bind(caller_sealed)
    .bind(now + CALL_ROW_MILLIS)
    .execute(wtx.conn())
    .await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(&actor, action, alias.as_str()).detail(&detail),
    )
    .await?;
    wtx.commit().await?;
    Ok(true)
}

/// A routed call's alias and caller, from its row.
pub async fn routed_call(core: &Core, call_sid: &Sid) -> Result<Option<(Address, PhoneNumber)>> {
    let row = sqlx::query("SELECT alias, caller_sealed FROM phone_calls WHERE call_sid = $1")
        .bind(call_sid.as_str())
        .fetch_optional(core.store.pool())
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let alias = Address::parse(&row.try_get::<String, _>("alias")?)?;
    let sealed: Vec<u8> = row.try_get("caller_sealed")?;
    let caller = core.server_key.open(&sealed)?;
    let caller = std::str::from_utf8(&caller)
        .map_err(|_| Error::Crypto("unreadable caller".into()))
        .and_then(PhoneNumber::parse)?;
    Ok(Some((alias, caller)))
}

/// The `<Dial>` ended (`action`): answered → hang up; otherwise the next one to ring, or voicemail.
pub async fn dial_ended(
    core: &Core,
    phone: &Phone,
    call_sid: &Sid,
    step: usize,
    dial_status: &str,
) -> Result<String> {
    let key = format!("dial:{}:{step}", call_sid.as_str());
    if !first_time(core, &key, phone.config.replay_window_seconds).await? {
        return Ok(twiml::hangup());
    }
    if dial_status == "completed" || dial_status == "answered" {
        return Ok(twiml::hangup());
    }
    let Some((alias, caller)) = routed_call(core, call_sid).await? else {
        return Ok(twiml::hangup());
    };
    let Some(number) = pool::number_of(&core.store, &alias).await? else {
        return Ok(twiml::hangup());
    };
    // The same decision again: a number burned or a partner disabled meanwhile ends the call.
    let facts = gather(core, Some(&caller), &number).await?;
    match routing::decide_call(&number, facts) {
        CallRoute::Ring {
            caller_id, targets, ..
        } => match routing::target_at(&targets, step + 1) {
            Some(next) => Ok(twiml::dial(
                &caller_id,
                next,
                phone.config.ring_seconds,
                &phone.url(&format!("/phone/voice/dial?step={}", step + 1)),
            )),
            None => Ok(voicemail_twiml(phone)),
        },
        CallRoute::Voicemail { .. } => Ok(voicemail_twiml(phone)),
        _ => Ok(twiml::hangup()),
    }
}

/// Whether a member may call `destination` from `alias`: a partner's registered number or a contact
/// allowed on that alias. The organisation, when it is one.
pub async fn destination_allowed(
    core: &Core,
    alias: &Address,
    destination: &PhoneNumber,
) -> Result<Option<AcceptedSender>> {
    if let Some(organisation) = partner::by_phone(&core.store, destination).await? {
        return Ok(Some(AcceptedSender::Organisation(organisation)));
    }
    let contact = Contact::Phone(destination.clone());
    Ok(
        partner::contact_allowed(&core.store, &core.server_key, alias, &contact)
            .await?
            .then_some(AcceptedSender::AllowedContact),
    )
}

/// A worker who called their own alias entered a number (`<Gather>` action).
pub async fn outbound_digits(
    core: &Core,
    phone: &Phone,
    call_sid: &Sid,
    from: Option<&str>,
    to: &PhoneNumber,
    digits: &str,
) -> Result<String> {
    let refused =
        || twiml::say_and_hang_up("Dit nummer kan niet via deze schuilnaam gebeld worden.");
    let key = format!("outbound:{}", call_sid.as_str());
    if !first_time(core, &key, phone.config.replay_window_seconds).await? {
        return Ok(twiml::hangup());
    }
    let caller = caller_number(from);
    let facts = gather(core, caller.as_ref(), to).await?;
    let CallRoute::AskDestination { alias } = routing::decide_call(to, facts) else {
        return Ok(twiml::REFUSAL.to_string());
    };
    let Ok(destination) = PhoneNumber::parse(digits.trim_end_matches('#')) else {
        return Ok(refused());
    };
    let Some(sender) = destination_allowed(core, &alias, &destination).await? else {
        audit::record(
            &core.store,
            core.now(),
            Event::new(
                &Actor::System,
                crate::audit::Action::CallOutRefused,
                alias.as_str(),
            ),
        )
        .await?;
        return Ok(refused());
    };
    audit::record(
        &core.store,
        core.now(),
        Event::new(
            &Actor::System,
            crate::audit::Action::CallOut,
            alias.as_str(),
        )
        .detail(&sender_detail(&sender)),
    )
    .await?;
    Ok(twiml::bridge(to, &destination, phone.config.ring_seconds))
}

/// Why a call out could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum CallOutError {
    #[error("you can only call from a live alias of a mailbox you belong to")]
    NotYourAlias,
    #[error("this alias has no phone number; ask the administrator to assign one")]
    NoNumber,
    #[error(
        "you can only call a partner organisation's number or a contact allowed on this alias"
    )]
    NotAllowed,
    #[error(transparent)]
    Provider(#[from] super::provider::ProviderError),
    #[error(transparent)]
    Internal(#[from] Error),
}

/// The alias a worker sends or calls from, named by its address or its number, when it is live, of a
/// mailbox the worker belongs to, and has a number. Returns the alias and its number.
pub async fn own_alias_with_number(
    core: &Core,
    worker_id: &crate::ids::WorkerId,
    from_alias: &str,
) -> Result<std::result::Result<(Address, PhoneNumber), CallOutError>> {
    let alias = match PhoneNumber::parse(from_alias) {
        Ok(number) => match pool::state_of(&core.store, &number, core.now()).await? {
            NumberState::Served { alias } => alias,
            _ => return Ok(Err(CallOutError::NotYourAlias)),
        },
        Err(_) => match Address::parse(from_alias) {
            Ok(alias) => alias,
            Err(_) => return Ok(Err(CallOutError::NotYourAlias)),
        },
    };
    if crate::worker::pseudonym_sending_from(&core.store, worker_id, &alias)
        .await?
        .is_none()
    {
        return Ok(Err(CallOutError::NotYourAlias));
    }
    match pool::number_of(&core.store, &alias).await? {
        Some(number) => Ok(Ok((alias, number))),
        None => Ok(Err(CallOutError::NoNumber)),
    }
}

/// Click-to-call: the relay calls the worker's real phone from the alias number; when they answer,
/// the bridge connects them to `destination` with the alias as caller ID. Returns the provider's sid.
pub async fn click_to_call(
    core: &Core,
    phone: &Phone,
    worker_id: &crate::ids::WorkerId,
    handle: &str,
    from_alias: &str,
    destination: &PhoneNumber,
) -> std::result::Result<String, CallOutError> {
    let (alias, number) = own_alias_with_number(core, worker_id, from_alias).await??;
    let sender = destination_allowed(core, &alias, destination)
        .await?
        .ok_or(CallOutError::NotAllowed)?;
    let sealed_contact: Vec<u8> =
        sqlx::query_scalar("SELECT contact_sealed FROM workers WHERE id = $1")
            .bind(worker_id)
            .fetch_one(core.store.pool())
            .await
            .map_err(Error::from)?;
    let real = crate::worker::contact::open(&core.server_key, &sealed_contact)?.phone;
    let now = core.now();
    let id = crate::crypto::random_id();
    let target_sealed = core.server_key.seal(destination.as_str().as_bytes())?;
    let actor = Actor::Worker(handle.to_string());
    let mut wtx = core.store.begin_write().await?;
    audit::append(
        &mut wtx,
        now,
        Event::new(&actor, crate::audit::Action::CallPlaced, alias.as_str())
            .detail(&sender_detail(&sender)),
    )
    .await?;
    sqlx::query(
        "INSERT INTO phone_bridges (id, number, target_sealed, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(number.as_str())
    .bind(target_sealed)
    .bind(now + BRIDGE_MILLIS)
    .execute(wtx.conn())
    .await
    .map_err(Error::from)?;
    wtx.commit().await?;
    let call = OutgoingCall {
        from: number,
        to: real,
        script: CallScript::Url(phone.url(&format!("/phone/voice/bridge?id={id}"))),
        timeout_seconds: phone.config.ring_seconds,
        status_callback: None,
    };
    let accepted = phone.provider.place_call(&call).await?;
    Ok(accepted.sid)
}

/// The worker answered a click-to-call: connect them to the destination (once).
pub async fn bridge(core: &Core, phone: &Phone, id: &str) -> Result<String> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(twiml::REFUSAL.to_string());
    }
    let mut wtx = core.store.begin_write().await?;
    let row = sqlx::query(
        "DELETE FROM phone_bridges WHERE id = $1 AND expires_at >= $2 RETURNING number, target_sealed",
    )
    .bind(id)
    .bind(core.now())
    .fetch_optional(wtx.conn())
    .await?;
    wtx.commit().await?;
    let Some(row) = row else {
        return Ok(twiml::REFUSAL.to_string());
    };
    let number = PhoneNumber::parse(&row.try_get::<String, _>("number")?)?;
    let sealed: Vec<u8> = row.try_get("target_sealed")?;
    let target = core.server_key.open(&sealed)?;
    let target = std::str::from_utf8(&target)
        .map_err(|_| Error::Crypto("unreadable destination".into()))
        .and_then(PhoneNumber::parse)?;
    Ok(twiml::bridge(&number, &target, phone.config.ring_seconds))
}

/// The `{"action": …}` answer for Kamailio (`GET /phone/sip/route`): the same decision as a hosted
/// call. Only a call that would ring is forwarded (no voicemail or prompts over SIP).
pub async fn sip_route(
    core: &Core,
    phone: &Phone,
    from: &str,
    to: &str,
) -> Result<super::sip::Answer> {
    let caller = PhoneNumber::from_network(from).ok();
    let Ok(number) = PhoneNumber::from_network(to) else {
        return Ok(super::sip::Answer::Reject);
    };
    let facts = gather(core, caller.as_ref(), &number).await?;
    let number_state = facts.number.clone();
    let organisation = facts.sender.organisation.clone();
    match routing::decide_call(&number, facts) {
        CallRoute::Ring {
            alias,
            caller_id,
            targets,
            accepted,
        } => {
            Metrics::inc(&core.metrics.phone_calls_routed_total);
            core.audit_queue.push(
                core.now(),
                Event::new(
                    &actor_of(organisation.as_ref()),
                    crate::audit::Action::CallRouted,
                    alias.as_str(),
                )
                .detail(&format!("{} path=sip", sender_detail(&accepted.sender))),
            );
            page_team_for_call(core, &alias).await;
            Ok(super::sip::Answer::Forward {
                target: super::sip::target(&phone.config.sip_target, &targets[0]),
                caller_id,
            })
        }
        CallRoute::Refuse(refused) => {
            Metrics::inc(&core.metrics.phone_calls_refused_total);
            audit_refusal(
                core,
                crate::audit::Action::CallRefused,
                &number_state,
                organisation.as_ref(),
                refused,
            );
            Ok(super::sip::Answer::Reject)
        }
        CallRoute::Voicemail { alias, .. } | CallRoute::AskDestination { alias } => {
            core.audit_queue.push(
                core.now(),
                Event::new(
                    &actor_of(organisation.as_ref()),
                    crate::audit::Action::CallNotRinging,
                    alias.as_str(),
                )
                .detail("path=sip"),
            );
            Ok(super::sip::Answer::Reject)
        }
    }
}
