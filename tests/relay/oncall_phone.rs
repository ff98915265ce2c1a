//! The on-call duty over the phone provider, against the fake provider over real TLS: an alert's SMS
//! and call leave through the provider's REST API from the team's number; a signed key press and an
//! "OK 4821" text acknowledge (a forged key press changes nothing, and an acknowledgement is not kept
//! as a message); a call to the team's number rings whoever is on call first.

use std::collections::BTreeMap;
use std::time::Duration;

use schuilnaam::audit::Actor;
use schuilnaam::oncall::alert::{self, Raised};
use schuilnaam::oncall::notify::keypress_twiml;
use schuilnaam::oncall::rota::Rotation;
use schuilnaam::partner::NewOrganisation;
use schuilnaam::phone::{pool, twiml};
use schuilnaam::worker::Handle;

use crate::fake_provider::{FakeProvider, PUBLIC_BASE};
use crate::helpers::{organisation, Backend, TestApp};
use crate::on_both_backends;
use crate::oncall_support::{
    advance, alert_row, oncall_audit, set_rota, settle, today, wait_until, MINUTE,
};
use crate::phone::{
    add_worker_with_phone, call, number, sid, PARTNER_PHONE, STRANGER_PHONE, TEAM_NUMBER,
};

on_both_backends!(
    an_alert_leaves_through_the_provider_from_the_team_number,
    a_signed_key_press_acknowledges_and_a_forged_one_changes_nothing,
    an_ok_text_acknowledges_and_is_not_kept,
    the_team_number_rings_whoever_is_on_call_first,
);

/// The number a team without its own leaves from (`[oncall] sender_number`).
const FALLBACK_NUMBER: &str = "+3197010000099";
const KANNEL_SECRET: &str = "kannel-secret-0123456789";
/// The members' real phones.
const PHONES: [(&str, &str); 3] = [
    ("anna", "+31622222222"),
    ("bram", "+31633333333"),
    ("cor", "+31644444444"),
];

fn phone_of(handle: &str) -> &'static str {
    PHONES.iter().find(|(h, _)| *h == handle).unwrap().1
}

struct World {
    fake: FakeProvider,
    app: TestApp,
}

/// A relay with the phone provider on (and no channel but its own), a partner registered for
/// `PARTNER_PHONE`, team `let-jb` (anna, bram, cor) with `TEAM_NUMBER` and a weekly rota in the order
/// `rota` that started today (the first is primary all week, the second secondary), and team `nacht`
/// (cor) without a number or a rota.
async fn world(backend: Backend, rota: &[&str]) -> World {
    let fake = FakeProvider::start().await;
    let app = TestApp::spawn_with(backend, |config| {
        fake.configure(&mut config.phone);
        config.phone.kannel_secret = KANNEL_SECRET.into();
        config.phone.allow_from = vec!["127.0.0.1".parse().unwrap()];
        config.oncall.poll_interval_ms = 20;
        config.oncall.sender_number = FALLBACK_NUMBER.into();
    })
    .await;
    fake.relay_at(app.phone_addr.expect("phone listener"), &app.ca_pem);
    let store = &app.core.store;
    app.add_organisation(NewOrganisation {
        phones: vec![number(PARTNER_PHONE)],
        ..organisation("Jeugdbescherming West")
    })
    .await;
    for (handle, phone) in PHONES {
        add_worker_with_phone(&app, handle, phone).await;
    }
    let team_alias = add_team(&app, "let-jb", "dienst", &["anna", "bram", "cor"]).await;
    add_team(&app, "nacht", "nacht", &["cor"]).await;
    pool::add(store, app.now(), &Actor::System, &[number(TEAM_NUMBER)])
        .await
        .unwrap();
    pool::assign(
        store,
        app.now(),
        &Actor::System,
        &team_alias,
        Some(&number(TEAM_NUMBER)),
    )
    .await
    .unwrap();
    set_rota(&app, "let-jb", rota, Rotation::Weekly, "00:00", today(&app)).await;
    World { fake, app }
}

async fn add_team(
    app: &TestApp,
    name: &str,
    local: &str,
    members: &[&str],
) -> schuilnaam::alias::Address {
    let store = &app.core.store;
    let team = Handle::parse(name).unwrap();
    let alias = schuilnaam::team::add(
        store,
        &app.core.domain,
        app.now(),
        &Actor::System,
        &team,
        &schuilnaam::alias::LocalPart::parse(local).unwrap(),
    )
    .await
    .unwrap();
    for member in members {
        schuilnaam::team::add_member(
            store,
            app.now(),
            &Actor::System,
            &team,
            &Handle::parse(member).unwrap(),
        )
        .await
        .unwrap();
    }
    alias
}

async fn page(app: &TestApp, team: &str) -> Raised {
    let raised = alert::page(
        &app.core.store,
        app.now(),
        &Handle::parse(team).unwrap(),
        &Actor::System,
        None,
    )
    .await
    .unwrap();
    app.core.oncall.wake();
    raised
}

/// Waits until the fake provider holds at least this many texts and calls, and the scheduler has
/// recorded every send; returns (texts, calls).
async fn sent(
    w: &World,
    texts: usize,
    calls: usize,
) -> (
    Vec<crate::fake_provider::Form>,
    Vec<crate::fake_provider::Form>,
) {
    wait_until(
        || w.fake.messages().len() >= texts && w.fake.calls().len() >= calls,
        || {
            format!(
                "{} of {texts} texts, {} of {calls} calls",
                w.fake.messages().len(),
                w.fake.calls().len()
            )
        },
    )
    .await;
    settle(&w.app).await;
    (w.fake.messages(), w.fake.calls())
}

fn alert_text(raised: &Raised) -> String {
    format!("Schuilnaam: nieuwe melding voor LET. Code {}.", raised.code)
}

/// The path and query of the key-press callback in a call's TwiML.
fn keypress_path(call: &crate::fake_provider::Form) -> String {
    let twiml = &call["Twiml"];
    let start = twiml.find("action=\"").expect("an action") + "action=\"".len();
    let url = &twiml[start..start + twiml[start..].find('"').unwrap()];
    url.replace("&amp;", "&")
        .strip_prefix(PUBLIC_BASE)
        .unwrap_or_else(|| panic!("not under the public base: {url}"))
        .to_string()
}

async fn an_alert_leaves_through_the_provider_from_the_team_number(backend: Backend) {
    let w = world(backend, &["cor", "anna", "bram"]).await;
    let raised = page(&w.app, "let-jb").await;
    let (texts, calls) = sent(&w, 1, 1).await;
    assert_eq!((texts.len(), calls.len()), (1, 1), "{texts:?} {calls:?}");
    let text = &texts[0];
    assert_eq!(text["From"], TEAM_NUMBER);
    assert_eq!(text["To"], phone_of("cor"));
    assert_eq!(text["Body"], alert_text(&raised));
    let call = &calls[0];
    assert_eq!(call["From"], TEAM_NUMBER);
    assert_eq!(call["To"], phone_of("cor"));
    let twiml = &call["Twiml"];
    assert!(twiml.contains("<Gather numDigits=\"1\""), "{twiml}");
    assert!(
        twiml.contains(&format!("{} Druk 1", spoken_code(&raised))),
        "{twiml}"
    );
    assert!(keypress_path(call).starts_with("/phone/oncall/keypress?notification="));
    for leaked in ["let-jb", "dienst", "anna", "bram", "Jeugdbescherming"] {
        assert!(
            !text["Body"].contains(leaked) && !twiml.contains(leaked),
            "{leaked}"
        );
    }

    // A team without a number of its own: from `[oncall] sender_number`.
    let night = page(&w.app, "nacht").await;
    let (texts, _) = sent(&w, 2, 2).await;
    let text = texts
        .iter()
        .find(|t| t["Body"] == alert_text(&night))
        .expect("the night team's text");
    assert_eq!(text["From"], FALLBACK_NUMBER);
    assert_eq!(text["To"], phone_of("cor"));

    // Audited by channel and step, never with a number.
    let audit = oncall_audit(&w.app).await;
    let sent_rows: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.notification_sent")
        .collect();
    assert!(sent_rows
        .iter()
        .any(|(_, _, subject, detail)| subject == raised.id.as_str()
            && detail.contains("channel=sms")));
    assert!(sent_rows
        .iter()
        .any(|(_, _, subject, detail)| subject == raised.id.as_str()
            && detail.contains("channel=call")));
    let everything = format!("{audit:?}");
    for number in PHONES
        .iter()
        .map(|(_, p)| p)
        .chain([&TEAM_NUMBER, &FALLBACK_NUMBER])
    {
        assert!(!everything.contains(&number[3..]), "{everything}");
    }
}

async fn a_signed_key_press_acknowledges_and_a_forged_one_changes_nothing(backend: Backend) {
    let w = world(backend, &["cor", "anna", "bram"]).await;
    let raised = page(&w.app, "let-jb").await;
    let (_, calls) = sent(&w, 1, 1).await;
    let path = keypress_path(&calls[0]);
    let call_sid = sid("CA");
    let press = |digits: &'static str| {
        vec![
            ("CallSid", call_sid.clone()),
            ("Digits", digits.to_string()),
            ("From", TEAM_NUMBER.to_string()),
            ("To", phone_of("cor").to_string()),
        ]
    };
    let one = press("1");

    // Forged (a wrong signature, or none; a signature over another URL): 403, nothing changes.
    let forged = crate::fake_provider::sign(
        crate::fake_provider::AUTH_TOKEN,
        &format!("{PUBLIC_BASE}/phone/oncall/keypress"),
        &as_refs(&one),
    );
    for signature in [Some("bm90IGEgc2lnbmF0dXJl"), None, Some(forged.as_str())] {
        let (status, _) = w.fake.post_raw(&path, &as_refs(&one), signature).await;
        assert_eq!(status, 403);
    }
    assert_eq!(alert_row(&w.app, &raised.id).await.0, "open");

    // Another key: answered, nothing changes.
    let (status, body) = w.fake.webhook(&path, &as_refs(&press("2"))).await;
    assert_eq!((status, body), (200, keypress_twiml(false)));
    assert_eq!(alert_row(&w.app, &raised.id).await.0, "open");

    // Unacknowledged, the escalation goes on: the primary again at 3 minutes.
    advance(&w.app, 3 * MINUTE).await;
    let (texts, calls) = sent(&w, 2, 2).await;
    assert_eq!((texts.len(), calls.len()), (2, 2));

    // The signed "1": acknowledged by the worker who was called; nothing more goes out.
    let (status, body) = w.fake.webhook(&path, &as_refs(&one)).await;
    assert_eq!((status, body), (200, keypress_twiml(true)));
    assert_eq!(alert_row(&w.app, &raised.id).await.0, "acknowledged");
    let by: Option<String> = sqlx::query_scalar("SELECT acknowledged_by FROM alerts WHERE id = $1")
        .bind(raised.id.as_str())
        .fetch_one(w.app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(by.as_deref(), Some("worker:cor"));
    for _ in 0..3 {
        advance(&w.app, 10 * MINUTE).await;
    }
    assert_eq!((w.fake.messages().len(), w.fake.calls().len()), (2, 2));
    let audit = oncall_audit(&w.app).await;
    assert!(audit
        .iter()
        .any(|(actor, action, subject, detail)| actor == "worker:cor"
            && action == "oncall.alert_acknowledged"
            && subject == raised.id.as_str()
            && detail == "via=call"));
    let forbidden: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'phone.webhook_forbidden' \
         AND subject = '/phone/oncall/keypress'",
    )
    .fetch_one(w.app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(forbidden, 3);

    // Someone no longer on the alert's list: their "1" changes nothing.
    let night = page(&w.app, "nacht").await;
    let (_, calls) = sent(&w, 3, 3).await;
    let night_call = calls.last().unwrap();
    assert!(night_call["Twiml"].contains(&spoken_code(&night)));
    schuilnaam::team::remove_member(
        &w.app.core.store,
        w.app.now(),
        &Actor::System,
        &Handle::parse("nacht").unwrap(),
        &Handle::parse("cor").unwrap(),
    )
    .await
    .unwrap();
    let (status, body) = w
        .fake
        .webhook(&keypress_path(night_call), &as_refs(&one))
        .await;
    assert_eq!((status, body), (200, keypress_twiml(false)));
    assert_eq!(alert_row(&w.app, &night.id).await.0, "open");
}

/// The code as the call says it: "Code 4 8 2 1.".
fn spoken_code(raised: &Raised) -> String {
    let digits: Vec<String> = raised.code.as_str().chars().map(String::from).collect();
    format!("Code {}.", digits.join(" "))
}

fn as_refs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Messages stored in a mailbox by name.
async fn kept_in(app: &TestApp, mailbox: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = $1",
    )
    .bind(mailbox)
    .fetch_one(app.core.store.pool())
    .await
    .unwrap()
}

async fn text_in(w: &World, from: &str, body: &str) {
    let message_sid = sid("SM");
    let (status, answer) = w
        .fake
        .webhook(
            "/phone/sms",
            &[
                ("MessageSid", message_sid.as_str()),
                ("From", from),
                ("To", TEAM_NUMBER),
                ("Body", body),
            ],
        )
        .await;
    assert_eq!((status, answer.as_str()), (200, twiml::EMPTY));
}

async fn an_ok_text_acknowledges_and_is_not_kept(backend: Backend) {
    let w = world(backend, &["cor", "anna", "bram"]).await;
    let first = page(&w.app, "let-jb").await;
    let second = page(&w.app, "let-jb").await;
    sent(&w, 2, 2).await;

    // From a number nobody on the list has: refused as any stranger's text, the alert stays open.
    text_in(&w, STRANGER_PHONE, &format!("OK {}", first.code)).await;
    assert_eq!(alert_row(&w.app, &first.id).await.0, "open");

    // From the primary's registered phone, through the provider's signed webhook.
    text_in(&w, phone_of("cor"), &format!("ok {}", first.code)).await;
    assert_eq!(alert_row(&w.app, &first.id).await.0, "acknowledged");
    assert_eq!(alert_row(&w.app, &second.id).await.0, "open");

    // From another member's phone, through Kannel.
    let (addr, client) = w.fake.relay_client();
    let response = client
        .post(format!(
            "https://{addr}/phone/kannel/sms?secret={KANNEL_SECRET}"
        ))
        .header("X-Kannel-From", &phone_of("anna")[1..])
        .header("X-Kannel-To", &TEAM_NUMBER[1..])
        .body(format!("OK {}", second.code))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(alert_row(&w.app, &second.id).await.0, "acknowledged");

    // Neither acknowledgement was kept as a message; any other text still is.
    assert_eq!(kept_in(&w.app, "let-jb").await, 0);
    text_in(&w, PARTNER_PHONE, "Graag terugbellen over de aanmelding.").await;
    assert_eq!(kept_in(&w.app, "let-jb").await, 1);

    let audit = oncall_audit(&w.app).await;
    let acknowledged: BTreeMap<&str, &str> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.alert_acknowledged")
        .map(|(actor, _, subject, detail)| {
            assert_eq!(detail, "via=sms");
            (subject.as_str(), actor.as_str())
        })
        .collect();
    assert_eq!(
        acknowledged,
        BTreeMap::from([
            (first.id.as_str(), "worker:cor"),
            (second.id.as_str(), "worker:anna")
        ])
    );
}

async fn the_team_number_rings_whoever_is_on_call_first(backend: Backend) {
    // Handles in order would ring anna, bram, cor; the rota puts cor first, then anna.
    let w = world(backend, &["cor", "anna", "bram"]).await;
    let ringing = |answer: &str| {
        PHONES
            .iter()
            .find(|(_, p)| answer.contains(&format!("<Number>{p}</Number>")))
            .map(|(h, _)| h.to_string())
    };
    let no_answer = |call_sid: String, step: usize| {
        let fake = &w.fake;
        async move {
            fake.webhook(
                &format!("/phone/voice/dial?step={step}"),
                &[
                    ("CallSid", call_sid.as_str()),
                    ("DialCallStatus", "no-answer"),
                    ("From", PARTNER_PHONE),
                    ("To", TEAM_NUMBER),
                ],
            )
            .await
            .1
        }
    };
    let call_sid = sid("CA");
    let (status, first) = call(&w.fake, &call_sid, Some(PARTNER_PHONE), TEAM_NUMBER).await;
    assert_eq!(status, 200);
    assert!(
        first.contains(&format!("callerId=\"{TEAM_NUMBER}\"")),
        "{first}"
    );
    let mut order = vec![ringing(&first)];
    for step in 0..2 {
        order.push(ringing(&no_answer(call_sid.clone(), step).await));
    }
    assert_eq!(
        order,
        [Some("cor".into()), Some("anna".into()), Some("bram".into())]
    );
    assert!(no_answer(call_sid.clone(), 2).await.contains("<Record "));
    // The call is also an on-call alert of its own kind, so that a missed call is still paged.
    let alerts: Vec<String> = sqlx::query_scalar("SELECT kind FROM alerts")
        .fetch_all(w.app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(alerts, ["call"]);

    // A week on, the rota has turned: anna is primary, bram secondary.
    w.app.clock.advance(Duration::from_secs(7 * 86_400));
    let call_sid = sid("CA");
    let (_, first) = call(&w.fake, &call_sid, Some(PARTNER_PHONE), TEAM_NUMBER).await;
    let second = no_answer(call_sid, 0).await;
    assert_eq!(
        (ringing(&first), ringing(&second)),
        (Some("anna".into()), Some("bram".into()))
    );
}
