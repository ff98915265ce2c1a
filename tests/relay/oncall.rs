//! The 24/7 on-call duty end to end: triggers, escalation against a moved clock, acknowledgement by
//! API, SMS reply and key press, restarts, two instances on one database, a provider outage, the
//! content-free texts, duty notices, audit and metrics.

use std::collections::BTreeMap;
use std::time::Duration;

use schuilnaam::audit::Actor;
use schuilnaam::clock::ManualClock;
use schuilnaam::oncall::alert::{self, SmsAck};
use schuilnaam::oncall::notify::{ChannelKind, Purpose};
use schuilnaam::oncall::rota::Rotation;
use schuilnaam::phone::PhoneNumber;
use schuilnaam::worker::Handle;
use serde_json::{json, Value};

use crate::helpers::{fresh_database_url, post_message, Backend, TestApp};
use crate::mail_outbound::smarthost;
use crate::on_both_backends;
use crate::oncall_support::*;

on_both_backends!(
    an_unanswered_primary_escalates_to_the_secondary_at_the_configured_delay,
    an_acknowledgement_by_api_stops_every_further_notification,
    an_sms_reply_from_someone_on_the_list_acknowledges,
    a_key_press_in_the_call_acknowledges,
    a_step_that_fell_due_while_the_relay_was_down_fires_once_after_the_restart,
    a_provider_outage_is_retried_while_email_delivers_and_the_escalation_goes_on,
    every_alert_kind_sends_the_same_content_free_text,
    which_messages_raise_alerts,
    handovers_are_announced_and_gaps_reported_daily,
);

fn urgent(to: &str) -> Value {
    json!({ "to": to, "subject": "Spoed: familie Jansen", "body": "Bel terug.", "urgent": true, "kind": "bericht" })
}

/// Posts a message on the partner API; it must be accepted.
async fn deliver(app: &TestApp, partner: &reqwest::Client, body: &Value) {
    let response = post_message(partner, &app.partner_url, body).await.unwrap();
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
}

async fn only_alert(app: &TestApp) -> String {
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM alerts")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}

async fn an_unanswered_primary_escalates_to_the_secondary_at_the_configured_delay(
    backend: Backend,
) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    let team = team_with_rota(&app, "let-jb", &["h1", "h2", "h3"]).await;
    let (h1, h2, h3) = (team.id_of("h1"), team.id_of("h2"), team.id_of("h3"));
    let partner = app.add_partner("Jeugdbescherming West").await;
    deliver(&app, &partner, &urgent(&team.alias)).await;
    let alert_id = only_alert(&app).await;

    // At once: the primary, by SMS and call (the policy's e-mail is not set up here: skipped).
    let pages = pager.wait_for(2).await;
    assert_eq!(
        shape(&pages),
        vec![
            (h1.clone(), ChannelKind::Sms, 0),
            (h1.clone(), ChannelKind::Call, 0)
        ]
    );
    assert_eq!(
        alert_row(&app, &alert_id).await,
        ("open".into(), 1, Some(180_000))
    );

    // Nothing more until the next step's delay.
    advance(&app, Duration::from_secs(179)).await;
    assert_eq!(pager.pages().len(), 2);
    advance(&app, Duration::from_secs(1)).await;
    let pages = pager.wait_for(4).await;
    assert_eq!(
        shape(&pages[2..]),
        vec![
            (h1.clone(), ChannelKind::Sms, 1),
            (h1.clone(), ChannelKind::Call, 1)
        ]
    );

    // The primary does not answer: the secondary at 6 minutes, not a moment earlier.
    advance(&app, Duration::from_secs(179)).await;
    assert_eq!(pager.pages().len(), 4);
    advance(&app, Duration::from_secs(1)).await;
    let pages = pager.wait_for(6).await;
    assert_eq!(
        shape(&pages[4..]),
        vec![
            (h2.clone(), ChannelKind::Sms, 2),
            (h2.clone(), ChannelKind::Call, 2)
        ]
    );
    let created: Vec<i64> = sqlx::query_scalar(
        "SELECT n.created_at - a.raised_at FROM oncall_notifications n JOIN alerts a ON a.id = n.alert_id \
         WHERE n.step = 2",
    )
    .fetch_all(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(created, vec![360_000, 360_000]);

    // Every member at 10 minutes, then again every 10 minutes: it never gives up by itself.
    advance(&app, 4 * MINUTE).await;
    let pages = pager.wait_for(12).await;
    let mut everyone = vec![h1.clone(), h2.clone(), h3.clone()];
    everyone.sort();
    let paged: std::collections::BTreeSet<String> =
        pages[6..].iter().map(|p| p.worker_id.clone()).collect();
    assert_eq!(paged.into_iter().collect::<Vec<_>>(), everyone);
    for round in 1..=3 {
        advance(&app, 10 * MINUTE).await;
        pager.wait_for(12 + 6 * round).await;
    }
    assert_eq!(pager.pages().len(), 30);
    assert_eq!(
        alert_row(&app, &alert_id).await,
        ("open".into(), 7, Some(50 * 60_000))
    );
    // Each step went out once: notification ids never repeat.
    let ids: std::collections::BTreeSet<schuilnaam::ids::NotificationId> = pager
        .pages()
        .into_iter()
        .map(|p| p.notification_id)
        .collect();
    assert_eq!(ids.len(), 30);
}

async fn an_acknowledgement_by_api_stops_every_further_notification(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    let mut team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let token = app.login(&mut team.members[0]).await;
    let page = app
        .post(&token, "/v1/alerts", &json!({ "team": "let-jb" }))
        .await;
    assert_eq!(page.status(), 201);
    let raised: Value = page.json().await.unwrap();
    let alert_id = raised["id"].as_str().unwrap().to_string();
    let pages = pager.wait_for(2).await;
    assert_eq!(pages[0].code(), raised["code"].as_str());

    // Listed as open, with its code.
    let listed: Vec<Value> = app.get(&token, "/v1/alerts").await.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["state"], "open");
    assert_eq!(listed[0]["kind"], "page");
    assert_eq!(listed[0]["team"], "let-jb");

    // Someone outside the team can neither see nor acknowledge it.
    let mut stranger = app.add_worker("h9").await;
    let stranger_token = app.login(&mut stranger).await;
    let refused = app
        .post(
            &stranger_token,
            &format!("/v1/alerts/{alert_id}/ack"),
            &json!({}),
        )
        .await;
    assert_eq!(refused.status(), 404);
    let theirs: Vec<Value> = app
        .get(&stranger_token, "/v1/alerts")
        .await
        .json()
        .await
        .unwrap();
    assert!(theirs.is_empty());
    assert_eq!(
        app.post(&stranger_token, "/v1/alerts", &json!({ "team": "let-jb" }))
            .await
            .status(),
        404
    );
    assert_eq!(alert_row(&app, &alert_id).await.0, "open");
    let acked = app
        .post(&token, &format!("/v1/alerts/{alert_id}/ack"), &json!({}))
        .await;
    assert_eq!(acked.status(), 200);
    let acked: Value = acked.json().await.unwrap();
    assert_eq!(acked["result"], "done");
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "worker:h1");
    assert_eq!(
        alert_row(&app, &alert_id).await,
        ("acknowledged".into(), 1, None)
    );

    // An hour passes: nothing more from this alert.
    for _ in 0..6 {
        advance(&app, 10 * MINUTE).await;
    }
    // (The login session did not survive the hour.)
    let token = app.login(&mut team.members[0]).await;
    assert_eq!(pager.pages().len(), 2);
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM oncall_notifications WHERE state = 'queued'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    assert_eq!(queued, 0);

    // Again: already done. Then resolved, and gone from the default list.
    let again: Value = app
        .post(&token, &format!("/v1/alerts/{alert_id}/ack"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["result"], "already_closed", "{again}");
    let resolved: Value = app
        .post(
            &token,
            &format!("/v1/alerts/{alert_id}/resolve"),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["resolved_by"], "worker:h1");
    let listed: Vec<Value> = app.get(&token, "/v1/alerts").await.json().await.unwrap();
    assert!(listed.is_empty());
    let all: Vec<Value> = app
        .get(&token, "/v1/alerts?state=all")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(app.get(&token, "/v1/alerts?x=1").await.status(), 400);

    // Who is on call, now and next.
    let duty: Vec<Value> = app.get(&token, "/v1/oncall").await.json().await.unwrap();
    assert_eq!(duty.len(), 1);
    assert_eq!(duty[0]["team"], "let-jb");
    assert_eq!(duty[0]["primary"], "h1");
    assert_eq!(duty[0]["secondary"], "h2");
    assert_eq!(duty[0]["next"]["primary"], "h2");

    let audit = oncall_audit(&app).await;
    assert!(audit
        .iter()
        .any(|(actor, action, subject, detail)| actor == "worker:h1"
            && action == "oncall.alert_acknowledged"
            && subject == alert_id.as_str()
            && detail == "via=api"));
    assert!(audit
        .iter()
        .any(|(actor, action, _, _)| actor == "worker:h1" && action == "oncall.alert_resolved"));
}

async fn an_sms_reply_from_someone_on_the_list_acknowledges(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    outsider(&app, "h9", "+31687654321").await;
    let raised = alert::page(
        &app.core.store,
        app.now(),
        &Handle::parse("let-jb").unwrap(),
        &Actor::System,
        None,
    )
    .await
    .unwrap();
    app.core.oncall.wake();
    let pages = pager.wait_for(2).await;
    let code = pages[0].code().unwrap().to_string();
    assert!(pages[0].text.ends_with(&format!("Code {code}.")));
    let member_phone = PhoneNumber::parse(&pages[0].phone).unwrap();
    let outsider_phone = PhoneNumber::parse("+31687654321").unwrap();
    let other_code = format!("{:04}", (code.parse::<u32>().unwrap() + 1) % 10_000);

    // Not an acknowledgement, a stranger, a wrong code: nothing changes.
    for (from, body, expected) in [
        (
            &member_phone,
            "Ik bel zo terug".to_string(),
            SmsAck::NotAnAck,
        ),
        (&outsider_phone, format!("OK {code}"), SmsAck::Refused),
        (&member_phone, format!("OK {other_code}"), SmsAck::Refused),
    ] {
        assert_eq!(
            alert::acknowledge_by_sms(&app.core, from, &body)
                .await
                .unwrap(),
            expected,
            "{body}"
        );
        assert_eq!(alert_row(&app, &raised.id).await.0, "open");
    }
    assert_eq!(
        alert::acknowledge_by_sms(&app.core, &member_phone, &format!("ok {code}"))
            .await
            .unwrap(),
        SmsAck::Acknowledged
    );
    assert_eq!(alert_row(&app, &raised.id).await.0, "acknowledged");
    for _ in 0..3 {
        advance(&app, 10 * MINUTE).await;
    }
    assert_eq!(pager.pages().len(), 2);
    let audit = oncall_audit(&app).await;
    assert!(audit.iter().any(
        |(_, action, subject, detail)| action == "oncall.alert_acknowledged"
            && subject == raised.id.as_str()
            && detail == "via=sms"
    ));
    let refused: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.ack_refused")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
}

async fn a_key_press_in_the_call_acknowledges(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    let team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let raised = alert::page(
        &app.core.store,
        app.now(),
        &Handle::parse("let-jb").unwrap(),
        &Actor::System,
        None,
    )
    .await
    .unwrap();
    app.core.oncall.wake();
    let pages = pager.wait_for(2).await;
    let call = pages
        .iter()
        .find(|p| p.channel == ChannelKind::Call)
        .unwrap()
        .clone();
    let sms = pages
        .iter()
        .find(|p| p.channel == ChannelKind::Sms)
        .unwrap()
        .clone();
    // Another key, or a notification that is not a call: nothing.
    assert!(
        !alert::acknowledge_by_keypress(&app.core, &call.notification_id, "2")
            .await
            .unwrap()
    );
    assert!(
        alert::acknowledge_by_keypress(&app.core, &sms.notification_id, "1")
            .await
            .is_err()
    );
    assert_eq!(alert_row(&app, &raised.id).await.0, "open");
    assert!(
        alert::acknowledge_by_keypress(&app.core, &call.notification_id, "1")
            .await
            .unwrap()
    );
    assert_eq!(alert_row(&app, &raised.id).await.0, "acknowledged");
    for _ in 0..3 {
        advance(&app, 10 * MINUTE).await;
    }
    assert_eq!(pager.pages().len(), 2);
    let by: Option<String> = sqlx::query_scalar("SELECT acknowledged_by FROM alerts WHERE id = $1")
        .bind(raised.id.as_str())
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(by.as_deref(), Some("worker:h1"));
    assert_eq!(call.worker_id, team.id_of("h1"));
}

async fn a_step_that_fell_due_while_the_relay_was_down_fires_once_after_the_restart(
    backend: Backend,
) {
    let shared = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, shared.path()).await;
    let clock = ManualClock::starting_now();
    let pager = Pager::default();
    let keep = |c: &mut schuilnaam::config::Config| {
        c.relay.data_dir = shared.path().to_path_buf();
        c.database.url = url.clone();
        c.crypto.server_key = shared.path().join("server-key.txt");
    };
    let first = relay_with(backend, &pager, "first", &PHONE, clock.clone(), keep).await;
    let team = team_with_rota(&first, "let-jb", &["h1", "h2"]).await;
    let raised = alert::page(
        &first.core.store,
        first.now(),
        &Handle::parse("let-jb").unwrap(),
        &Actor::System,
        None,
    )
    .await
    .unwrap();
    first.core.oncall.wake();
    pager.wait_for(2).await;
    settle(&first).await;
    first.stop().await;

    // Down over the 3-minute step.
    clock.advance(4 * MINUTE);
    let second = relay_with(backend, &pager, "second", &PHONE, clock.clone(), keep).await;
    let pages = pager.wait_for(4).await;
    for _ in 0..3 {
        settle(&second).await;
    }
    let pages_after = pager.pages();
    assert_eq!(pages_after.len(), 4, "the missed step fired once");
    assert_eq!(
        shape(&pages[2..]),
        vec![
            (team.id_of("h1"), ChannelKind::Sms, 1),
            (team.id_of("h1"), ChannelKind::Call, 1)
        ]
    );
    assert!(pages[2..].iter().all(|p| p.instance == "second"));
    // And the escalation is on time after it: the secondary at 6 minutes.
    assert_eq!(
        alert_row(&second, &raised.id).await,
        ("open".into(), 2, Some(360_000))
    );
    advance(&second, 2 * MINUTE).await;
    let pages = pager.wait_for(6).await;
    assert!(pages[4..].iter().all(|p| p.worker_id == team.id_of("h2")));
}

/// Two relay instances on one PostgreSQL database, 100 alerts: every step is sent exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_send_every_step_exactly_once() {
    let shared = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Postgres, shared.path()).await;
    let clock = ManualClock::starting_now();
    let pager = Pager::default();
    let keep = |c: &mut schuilnaam::config::Config| {
        c.database.url = url.clone();
        c.crypto.server_key = shared.path().join("server-key.txt");
    };
    let a = relay_with(Backend::Postgres, &pager, "a", &PHONE, clock.clone(), keep).await;
    let b = relay_with(Backend::Postgres, &pager, "b", &PHONE, clock.clone(), keep).await;
    team_with_rota(&a, "let-jb", &["h1", "h2", "h3"]).await;
    let team = Handle::parse("let-jb").unwrap();
    for _ in 0..100 {
        alert::page(&a.core.store, a.now(), &team, &Actor::System, None)
            .await
            .unwrap();
    }
    let wake_both = || {
        a.core.oncall.wake();
        b.core.oncall.wake();
    };
    wake_both();
    pager.wait_for(200).await;
    for (minutes, expected) in [(3, 400), (3, 600)] {
        // Every send recorded before time moves (a lease outlived by a jump of the clock would
        // rightly be taken over).
        settle(&a).await;
        settle(&b).await;
        clock.advance(minutes * MINUTE);
        wake_both();
        pager.wait_for(expected).await;
    }
    for _ in 0..3 {
        settle(&a).await;
        settle(&b).await;
    }
    let pages = pager.pages();
    assert_eq!(pages.len(), 600);
    let mut sent: BTreeMap<(String, i64, String, ChannelKind), usize> = BTreeMap::new();
    for page in &pages {
        *sent
            .entry((
                page.alert_id().unwrap().to_string(),
                page.step,
                page.worker_id.clone(),
                page.channel,
            ))
            .or_default() += 1;
    }
    assert_eq!(sent.len(), 600, "a step was sent twice");
    assert!(sent.values().all(|&n| n == 1));
    let by_a = pages.iter().filter(|p| p.instance == "a").count();
    assert!(by_a > 0 && by_a < 600, "both instances sent: a sent {by_a}");
    let stepped: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alerts WHERE step = 3")
        .fetch_one(a.core.store.pool())
        .await
        .unwrap();
    assert_eq!(stepped, 100);
}

async fn a_provider_outage_is_retried_while_email_delivers_and_the_escalation_goes_on(
    backend: Backend,
) {
    let host = smarthost(true).await;
    let pager = Pager::default();
    pager.set_down(true);
    let (smarthost_addr, ca) = (
        host.smarthost.address.to_string(),
        host.ca_file.path().to_path_buf(),
    );
    let app = relay_with(
        backend,
        &pager,
        "relay",
        &PHONE,
        ManualClock::starting_now(),
        move |c| {
            c.outbound.smarthost = smarthost_addr;
            c.outbound.extra_ca = ca;
        },
    )
    .await;
    let team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let raised = alert::page(
        &app.core.store,
        app.now(),
        &Handle::parse("let-jb").unwrap(),
        &Actor::System,
        None,
    )
    .await
    .unwrap();
    app.core.oncall.wake();
    // The provider refuses the SMS and the call; the e-mail reaches the smarthost meanwhile.
    pager.wait_for_failures(2).await;
    let mail = host.smarthost.wait_for(1).await;
    assert_eq!(mail[0].rcpt_to, vec!["<medewerker@example.nl>".to_string()]);
    let (subject, body) = mail_text(&mail[0].data);
    assert_eq!(subject, "Schuilnaam: nieuwe melding");
    assert!(body.starts_with(&format!(
        "Schuilnaam: nieuwe melding voor LET. Code {}.",
        raised.code
    )));

    // Retried with backoff: 5 s, then 15 s later.
    settle(&app).await;
    assert_eq!(pager.failures().len(), 2);
    advance(&app, Duration::from_secs(5)).await;
    assert_eq!(pager.failures().len(), 4);
    advance(&app, Duration::from_secs(10)).await;
    assert_eq!(pager.failures().len(), 4, "not before the backoff");
    advance(&app, Duration::from_secs(5)).await;
    assert_eq!(pager.failures().len(), 6);

    // The escalation does not wait for the provider: step 1 at 3 minutes (its retries too).
    advance(&app, Duration::from_secs(160)).await;
    let failures = pager.failures();
    assert!(failures.iter().any(|(_, step)| *step == 1), "{failures:?}");
    assert_eq!(alert_row(&app, &raised.id).await.1, 2);

    // The provider is back: the waiting notifications go out at their next try.
    pager.set_down(false);
    advance(&app, MINUTE).await;
    let pages = pager.wait_for(4).await;
    let mut steps: Vec<(ChannelKind, i64)> = pages.iter().map(|p| (p.channel, p.step)).collect();
    steps.sort();
    assert_eq!(
        steps,
        vec![
            (ChannelKind::Sms, 0),
            (ChannelKind::Sms, 1),
            (ChannelKind::Call, 0),
            (ChannelKind::Call, 1)
        ]
    );
    // The secondary at 6 minutes, by every channel.
    advance(&app, 2 * MINUTE).await;
    let pages = pager.wait_for(6).await;
    assert!(pages[4..].iter().all(|p| p.worker_id == team.id_of("h2")));
    host.smarthost.wait_for(2).await;

    let audit = oncall_audit(&app).await;
    let failed: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.notification_failed")
        .collect();
    assert!(failed.len() >= 6, "{failed:?}");
    assert!(failed
        .iter()
        .all(|(_, _, subject, detail)| subject == raised.id.as_str()
            && detail.contains("error=http-503")));
    assert!(failed[0].3.contains("channel=") && failed[0].3.contains("step=0"));
    let sent: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.notification_sent")
        .collect();
    assert!(sent.iter().any(|(_, _, _, d)| d.contains("channel=email")));
    for (_, _, _, detail) in &audit {
        assert!(
            !detail.contains("612345678") && !detail.contains("medewerker@"),
            "{detail}"
        );
    }
    let metrics = app.metrics().await;
    for line in [
        "schuilnaam_oncall_notifications_total{channel=\"sms\",outcome=\"retried\"}",
        "schuilnaam_oncall_notifications_total{channel=\"sms\",outcome=\"sent\"} 3",
        "schuilnaam_oncall_notifications_total{channel=\"email\",outcome=\"sent\"} 2",
        "schuilnaam_oncall_alerts_total 1",
        "schuilnaam_oncall_first_notification_seconds_count 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

async fn every_alert_kind_sends_the_same_content_free_text(backend: Backend) {
    let host = smarthost(true).await;
    let pager = Pager::default();
    let (smarthost_addr, ca) = (
        host.smarthost.address.to_string(),
        host.ca_file.path().to_path_buf(),
    );
    let app = relay_with(
        backend,
        &pager,
        "relay",
        &[ChannelKind::Sms],
        ManualClock::starting_now(),
        move |c| {
            c.outbound.smarthost = smarthost_addr;
            c.outbound.extra_ca = ca;
        },
    )
    .await;
    let mut team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let partner = app.add_partner("Jeugdbescherming West").await;
    let token = app.login(&mut team.members[0]).await;
    let h2_alias = team.members[1].alias.clone();
    let team_id: schuilnaam::ids::MailboxId =
        sqlx::query_scalar("SELECT id FROM mailboxes WHERE name = 'let-jb'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    let mut seen = 0;
    for kind in alert::AlertKind::ALL {
        match kind {
            alert::AlertKind::Message => {
                deliver(
                    &app,
                    &partner,
                    &json!({ "to": team.alias, "subject": "Familie Jansen",
                    "body": "Adres: Dorpsstraat 1", "urgent": false, "kind": "bericht" }),
                )
                .await
            }
            alert::AlertKind::Urgent => deliver(&app, &partner, &urgent(&team.alias)).await,
            alert::AlertKind::Aanmelding => {
                deliver(
                    &app,
                    &partner,
                    &json!({ "to": h2_alias, "subject": "Aanmelding Jansen",
                    "body": "OTS", "urgent": false, "kind": "aanmelding" }),
                )
                .await
            }
            alert::AlertKind::Page => {
                let page = app
                    .post(&token, "/v1/alerts", &json!({ "team": "let-jb" }))
                    .await;
                assert_eq!(page.status(), 201);
            }
            alert::AlertKind::Call => {
                alert::raise_for_call(&app.core, &team_id).await.unwrap();
            }
        }
        app.core.oncall.wake();
        seen += 1;
        let pages = pager.wait_for(seen).await;
        let latest = pages.last().unwrap();
        // The alert's e-mail left before the acknowledgement (which would withdraw it).
        wait_until(
            || alert_mails(&host.smarthost.messages()).len() >= seen,
            || format!("{seen} alert e-mails"),
        )
        .await;
        let kind_stored: String = sqlx::query_scalar("SELECT kind FROM alerts WHERE id = $1")
            .bind(latest.alert_id().unwrap())
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
        assert_eq!(kind_stored, kind.as_str());
        // Acknowledged at once, so the next message raises its own alert.
        let ack = app
            .post(
                &token,
                &format!("/v1/alerts/{}/ack", latest.alert_id().unwrap()),
                &json!({}),
            )
            .await;
        assert_eq!(ack.status(), 200);
    }
    let pages = pager.pages();
    assert_eq!(pages.len(), 5);
    let lengths: std::collections::BTreeSet<usize> =
        pages.iter().map(|p| p.text.chars().count()).collect();
    assert_eq!(lengths.len(), 1, "{pages:#?}");
    for page in &pages {
        let code = page.code().unwrap();
        assert_eq!(
            page.text,
            format!("Schuilnaam: nieuwe melding voor LET. Code {code}.")
        );
    }
    // The e-mails too: one subject, one body length, nothing of the message.
    let alerts = alert_mails(&host.smarthost.messages());
    assert_eq!(alerts.len(), 5);
    let bodies: std::collections::BTreeSet<usize> = alerts.iter().map(|m| m.len()).collect();
    assert_eq!(bodies.len(), 1, "{alerts:#?}");
    for text in pages
        .iter()
        .map(|p| p.text.clone())
        .chain(alerts.iter().cloned())
    {
        for secret in [
            "Jansen",
            "Dorpsstraat",
            "Jeugdbescherming",
            "let-jb",
            team.alias.as_str(),
            h2_alias.as_str(),
            "LET-medewerker",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

/// Subject and decoded text of a mail the smarthost received.
fn mail_text(raw: &[u8]) -> (String, String) {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    (
        message.subject().unwrap_or_default().to_string(),
        message.body_text(0).unwrap_or_default().to_string(),
    )
}

/// The decoded texts of the alert e-mails among what the smarthost received.
fn alert_mails(mails: &[crate::mail_support::Received]) -> Vec<String> {
    mails
        .iter()
        .map(|m| mail_text(&m.data))
        .filter(|(subject, _)| subject == "Schuilnaam: nieuwe melding")
        .map(|(_, body)| body)
        .collect()
}

async fn which_messages_raise_alerts(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    let team = team_with_rota(&app, "let-jb", &["h1", "h2"]).await;
    let info = team_without_rota(&app, "info", &["h5"]).await;
    let loner = app.add_worker("h9").await;
    let partner = app.add_partner("Jeugdbescherming West").await;
    let alerts = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM alerts")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap()
    };
    let plain = |to: &str| json!({ "to": to, "subject": "s", "body": "b", "urgent": false, "kind": "bericht" });

    // No alert: an ordinary message to a worker; anything to a worker without a team, or to a team
    // without a rota.
    deliver(&app, &partner, &plain(&team.members[1].alias)).await;
    deliver(&app, &partner, &urgent(&loner.alias)).await;
    deliver(&app, &partner, &urgent(&info.alias)).await;
    settle(&app).await;
    assert_eq!(alerts().await, 0);
    assert!(pager.pages().is_empty());

    // Any message to a team with a rota.
    deliver(&app, &partner, &plain(&team.alias)).await;
    pager.wait_for(2).await;
    assert_eq!(alerts().await, 1);
    // A second one while the first is open joins it: the duty is paged once.
    deliver(&app, &partner, &plain(&team.alias)).await;
    settle(&app).await;
    assert_eq!(alerts().await, 1);
    assert_eq!(pager.pages().len(), 2);

    // A referral to h2's own alias: h2 first, the team's primary (h1) 3 minutes later.
    deliver(
        &app,
        &partner,
        &json!({ "to": team.members[1].alias, "subject": "Aanmelding", "body": "b",
                 "urgent": false, "kind": "aanmelding" }),
    )
    .await;
    let pages = pager.wait_for(4).await;
    assert_eq!(alerts().await, 2);
    assert!(pages[2..].iter().all(|p| p.worker_id == team.id_of("h2")));
    let addressee: Option<String> =
        sqlx::query_scalar("SELECT addressee_id FROM alerts WHERE kind = 'aanmelding'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    assert_eq!(addressee, Some(team.id_of("h2")));
    advance(&app, 3 * MINUTE).await;
    let pages = pager.wait_for(8).await;
    let h1_at_three: Vec<_> = to_worker(&pages[4..], &team.id_of("h1"));
    // The team alert's step 1 and the referral's first team step both page the primary.
    assert_eq!(h1_at_three.len(), 4, "{pages:#?}");

    let audit = oncall_audit(&app).await;
    let raised: Vec<_> = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.alert_raised")
        .collect();
    assert_eq!(raised.len(), 2);
    assert!(raised
        .iter()
        .all(|(actor, _, _, _)| actor == "org:Jeugdbescherming West"));
    assert!(raised[1].3.contains("kind=aanmelding") && raised[1].3.contains("addressee=yes"));
}

async fn handovers_are_announced_and_gaps_reported_daily(backend: Backend) {
    let pager = Pager::default();
    let app = relay(backend, &pager, &PHONE).await;
    advance_to_local(&app, 8, 50).await;
    team_without_rota(&app, "let-jb", &["h1", "h2", "h3"]).await;
    let today = today(&app);
    set_rota(
        &app,
        "let-jb",
        &["h1", "h2", "h3"],
        Rotation::Daily,
        "09:00",
        today,
    )
    .await;
    // h3 leaves the team: every third day nobody is on call.
    schuilnaam::team::remove_member(
        &app.core.store,
        app.now(),
        &Actor::System,
        &Handle::parse("let-jb").unwrap(),
        &Handle::parse("h3").unwrap(),
    )
    .await
    .unwrap();
    advance(&app, MINUTE).await;
    assert!(
        pager.pages().is_empty(),
        "no gap report before the handover time"
    );

    advance_to_local(&app, 9, 1).await;
    let pages = pager.wait_for(2).await;
    settle(&app).await;
    let pages_now = pager.pages();
    assert_eq!(pages_now.len(), 3, "{pages_now:#?}");
    let handover: Vec<_> = pages_now
        .iter()
        .filter(|p| p.purpose == Purpose::Handover)
        .collect();
    assert_eq!(handover.len(), 1);
    assert_eq!(
        handover[0].text,
        "Schuilnaam: je dienst voor LET begint nu."
    );
    let gap: Vec<_> = pages_now
        .iter()
        .filter(|p| p.purpose == Purpose::Gap)
        .collect();
    assert_eq!(gap.len(), 2);
    assert_eq!(
        gap[0].text,
        "Schuilnaam: het rooster van LET heeft een gat."
    );
    drop(pages);

    // Once only, even as the scheduler keeps checking.
    advance(&app, 2 * MINUTE).await;
    advance(&app, 30 * MINUTE).await;
    assert_eq!(pager.pages().len(), 3);
    // The next day: h2's shift begins, and the gap (still unfilled) is reported again.
    advance_to_local(&app, 9, 2).await;
    pager.wait_for(6).await;
    settle(&app).await;
    assert_eq!(pager.pages().len(), 6);
    let audit = oncall_audit(&app).await;
    let notices = audit
        .iter()
        .filter(|(_, action, _, _)| action == "oncall.duty_notice")
        .count();
    assert_eq!(notices, 4);
}
