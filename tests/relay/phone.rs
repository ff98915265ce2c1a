//! Phone aliases on the hosted path, against the fake provider over real TLS: calls, texts and
//! voicemail in, texts and calls out, signatures, replays and bad input.

use std::time::Duration;

use age::secrecy::ExposeSecret;
use schuilnaam::audit::Actor;
use schuilnaam::partner::{self, Contact, NewOrganisation};
use schuilnaam::phone::{pool, twiml, PhoneNumber};
use schuilnaam::worker::{self, Handle, NewWorker, Pseudonym};
use serde_json::{json, Value};

use crate::fake_provider::{self, FakeProvider, PUBLIC_BASE};
use crate::helpers::{organisation, totp_from_uri, Backend, TestApp, TestWorker};
use crate::on_both_backends;

pub const PARTNER_PHONE: &str = "+31201234567";
pub const CONTACT_PHONE: &str = "+31687654321";
pub const STRANGER_PHONE: &str = "+31699999999";
pub const ALIAS_NUMBER: &str = "+3197010000001";
pub const SPARE_NUMBER: &str = "+3197010000002";
pub const TEAM_NUMBER: &str = "+3197010000003";
pub const UNSERVED_NUMBER: &str = "+3197010009999";
/// The worker's real phone (TestApp's workers all have it).
pub const REAL_PHONE: &str = "+31612345678";

pub struct PhoneWorld {
    pub fake: FakeProvider,
    pub app: TestApp,
    pub worker: TestWorker,
}

/// A relay with the phone listener on, the fake provider, a partner organisation registered for
/// `PARTNER_PHONE`, a worker whose first alias has `ALIAS_NUMBER`, and `SPARE_NUMBER` free.
pub async fn world(backend: Backend) -> PhoneWorld {
    world_with(backend, |_| {}).await
}

/// `world`, with `[phone]` adjusted after the fake provider configured it.
pub async fn world_with(
    backend: Backend,
    adjust: impl FnOnce(&mut schuilnaam::config::PhoneConfig),
) -> PhoneWorld {
    let fake = FakeProvider::start().await;
    let app = TestApp::spawn_with(backend, |config| {
        fake.configure(&mut config.phone);
        adjust(&mut config.phone);
    })
    .await;
    fake.relay_at(app.phone_addr.expect("phone listener"), &app.ca_pem);
    app.add_organisation(NewOrganisation {
        phones: vec![PhoneNumber::parse(PARTNER_PHONE).unwrap()],
        ..organisation("Jeugdbescherming West")
    })
    .await;
    let worker = app.add_worker("w1").await;
    pool::add(
        &app.core.store,
        app.now(),
        &Actor::System,
        &[number(ALIAS_NUMBER), number(SPARE_NUMBER)],
    )
    .await
    .unwrap();
    let alias = schuilnaam::alias::Address::parse(&worker.alias).unwrap();
    let assigned = pool::assign(&app.core.store, app.now(), &Actor::System, &alias, None)
        .await
        .unwrap();
    assert_eq!(assigned.as_str(), ALIAS_NUMBER);
    PhoneWorld { fake, app, worker }
}

pub fn number(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

/// A provider-style sid: two letters and 32 hex digits.
pub fn sid(prefix: &str) -> String {
    format!("{prefix}{}", schuilnaam::crypto::random_id())
}

/// Posts `/phone/voice` for a call from `from` (or a withheld number) to `to`.
pub async fn call(
    fake: &FakeProvider,
    call_sid: &str,
    from: Option<&str>,
    to: &str,
) -> (u16, String) {
    let mut params = vec![
        ("CallSid", call_sid),
        ("AccountSid", fake_provider::ACCOUNT_SID),
        ("To", to),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("ApiVersion", "2010-04-01"),
    ];
    if let Some(from) = from {
        params.push(("From", from));
        params.push(("Caller", from));
    }
    fake.webhook("/phone/voice", &params).await
}

fn dial_twiml(caller_id: &str, target: &str, step: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Dial callerId=\"{caller_id}\" timeout=\"20\" answerOnBridge=\"true\" action=\"{PUBLIC_BASE}/phone/voice/dial?step={step}\" method=\"POST\"><Number>{target}</Number></Dial></Response>"
    )
}

/// A worker with a real phone of their own (for teams, whose members must be told apart).
pub async fn add_worker_with_phone(app: &TestApp, handle: &str, phone: &str) -> TestWorker {
    let created = worker::create(
        &app.core.store,
        &app.core.worker_crypto(),
        &app.core.domain,
        app.now(),
        &Actor::System,
        NewWorker {
            handle: Handle::parse(handle).unwrap(),
            pseudonym: Pseudonym::parse(&format!("LET-medewerker {handle}")).unwrap(),
            phone: number(phone),
            email: schuilnaam::mail::EmailAddress::parse("medewerker@example.nl").unwrap(),
            recipient: None,
        },
    )
    .await
    .unwrap();
    TestWorker {
        handle: created.handle.clone(),
        alias: created.alias.clone(),
        passphrase: created.passphrase.expose_secret().to_string(),
        totp: totp_from_uri(&created.totp_uri),
        recipient: created.recipient.clone(),
    }
}

/// Waits for background work (the voicemail jobs run on their own task) to reach a state.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1000 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

async fn partner_call_rings_the_worker_with_the_alias_as_caller_id(backend: Backend) {
    let w = world(backend).await;
    let (status, body) = call(&w.fake, &sid("CA"), Some(PARTNER_PHONE), ALIAS_NUMBER).await;
    assert_eq!(status, 200);
    assert_eq!(body, dial_twiml(ALIAS_NUMBER, REAL_PHONE, 0));
    w.app.flush_audit().await;
    let routed: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'call.routed' AND subject = $1",
    )
    .bind(&w.worker.alias)
    .fetch_one(w.app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(routed, "org=Jeugdbescherming West");
}

async fn every_refused_call_hears_the_same_bytes(backend: Backend) {
    let w = world(backend).await;
    // A second alias with the spare number, which is then burned.
    let me = worker::find(&w.app.core.store, &Handle::parse("w1").unwrap())
        .await
        .unwrap();
    let second = worker::add_alias(
        &w.app.core.store,
        &w.app.core.domain,
        w.app.now(),
        &Actor::System,
        &me,
    )
    .await
    .unwrap();
    pool::assign(
        &w.app.core.store,
        w.app.now(),
        &Actor::System,
        &second,
        Some(&number(SPARE_NUMBER)),
    )
    .await
    .unwrap();
    let (_, before_burn) = call(&w.fake, &sid("CA"), Some(PARTNER_PHONE), SPARE_NUMBER).await;
    assert!(before_burn.contains("<Dial"), "{before_burn}");
    pool::burn(
        &w.app.core.store,
        w.app.now(),
        &Actor::System,
        &number(SPARE_NUMBER),
        180,
    )
    .await
    .unwrap();

    let unknown = call(&w.fake, &sid("CA"), Some(STRANGER_PHONE), ALIAS_NUMBER).await;
    let withheld = call(&w.fake, &sid("CA"), Some("+266696687"), ALIAS_NUMBER).await;
    let anonymous = call(&w.fake, &sid("CA"), Some("anonymous"), ALIAS_NUMBER).await;
    let no_from = call(&w.fake, &sid("CA"), None, ALIAS_NUMBER).await;
    let not_e164 = call(&w.fake, &sid("CA"), Some("06-abc"), ALIAS_NUMBER).await;
    let burned = call(&w.fake, &sid("CA"), Some(PARTNER_PHONE), SPARE_NUMBER).await;
    let unserved = call(&w.fake, &sid("CA"), Some(PARTNER_PHONE), UNSERVED_NUMBER).await;
    for (what, answer) in [
        ("unknown caller", &unknown),
        ("withheld number", &withheld),
        ("anonymous", &anonymous),
        ("no From", &no_from),
        ("From not a number", &not_e164),
        ("burned number", &burned),
        ("unserved number", &unserved),
    ] {
        assert_eq!(answer.0, 200, "{what}");
        assert_eq!(answer.1.as_bytes(), twiml::REFUSAL.as_bytes(), "{what}");
    }
    // The audit log says why, with the alias and never the caller's number.
    w.app.flush_audit().await;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT subject, detail FROM audit_log WHERE action = 'call.refused' ORDER BY seq",
    )
    .fetch_all(w.app.core.store.pool())
    .await
    .unwrap();
    let reasons: Vec<&str> = rows.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "reason=unknown-sender",
            "reason=withheld-number",
            "reason=withheld-number",
            "reason=withheld-number",
            "reason=withheld-number",
            "reason=burned-number",
            "reason=unserved-number"
        ]
    );
    assert_eq!(rows[0].0, w.worker.alias);
    let everything = format!("{rows:?}");
    assert!(!everything.contains(&STRANGER_PHONE[1..]), "{everything}");
}

async fn team_number_rings_the_members_in_turn_then_voicemail(backend: Backend) {
    let w = world(backend).await;
    let store = &w.app.core.store;
    let team = Handle::parse("bereikbaarheid").unwrap();
    let team_alias = schuilnaam::team::add(
        store,
        &w.app.core.domain,
        w.app.now(),
        &Actor::System,
        &team,
        &schuilnaam::alias::LocalPart::parse("dienst").unwrap(),
    )
    .await
    .unwrap();
    add_worker_with_phone(&w.app, "w2", "+31622222222").await;
    add_worker_with_phone(&w.app, "w3", "+31633333333").await;
    for member in ["w2", "w3"] {
        schuilnaam::team::add_member(
            store,
            w.app.now(),
            &Actor::System,
            &team,
            &Handle::parse(member).unwrap(),
        )
        .await
        .unwrap();
    }
    pool::add(store, w.app.now(), &Actor::System, &[number(TEAM_NUMBER)])
        .await
        .unwrap();
    pool::assign(
        store,
        w.app.now(),
        &Actor::System,
        &team_alias,
        Some(&number(TEAM_NUMBER)),
    )
    .await
    .unwrap();
    let call_sid = sid("CA");
    let (_, first) = call(&w.fake, &call_sid, Some(PARTNER_PHONE), TEAM_NUMBER).await;
    assert_eq!(first, dial_twiml(TEAM_NUMBER, "+31622222222", 0));
    let no_answer = |step: usize| {
        let call_sid = call_sid.clone();
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
        }
    };
    let (status, second) = no_answer(0).await;
    assert_eq!(status, 200);
    assert_eq!(second, dial_twiml(TEAM_NUMBER, "+31633333333", 1));
    // The same callback again is handled once.
    let (_, replayed) = no_answer(0).await;
    assert!(!replayed.contains("<Dial"), "{replayed}");
    let (_, last) = no_answer(1).await;
    assert!(last.contains("<Record "), "{last}");
    assert!(last.contains(&format!(
        "recordingStatusCallback=\"{PUBLIC_BASE}/phone/voice/recording\""
    )));
    // Answered: the call ends when it ends.
    let answered_sid = sid("CA");
    call(&w.fake, &answered_sid, Some(PARTNER_PHONE), TEAM_NUMBER).await;
    let (_, done) = w
        .fake
        .webhook(
            "/phone/voice/dial?step=0",
            &[
                ("CallSid", answered_sid.as_str()),
                ("DialCallStatus", "completed"),
            ],
        )
        .await;
    assert_eq!(done, twiml::hangup());
}

async fn voicemail_is_sealed_readable_and_deleted_at_the_provider(backend: Backend) {
    let mut w = world(backend).await;
    let call_sid = sid("CA");
    call(&w.fake, &call_sid, Some(PARTNER_PHONE), ALIAS_NUMBER).await;
    let (_, voicemail) = w
        .fake
        .webhook(
            "/phone/voice/dial?step=0",
            &[
                ("CallSid", call_sid.as_str()),
                ("DialCallStatus", "no-answer"),
            ],
        )
        .await;
    assert!(voicemail.contains("<Record "), "{voicemail}");
    let recording_sid = sid("RE");
    let audio: Vec<u8> = b"RIFF\x24\x00\x00\x00WAVEfmt "
        .iter()
        .copied()
        .chain((0..4000u32).map(|i| (i % 251) as u8))
        .collect();
    w.fake.add_recording(&recording_sid, &audio);
    // The first deletion fails: the job must come back to it.
    w.fake.fail_deletes(1);
    let callback = [
        ("CallSid", call_sid.as_str()),
        ("RecordingSid", recording_sid.as_str()),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "7"),
        ("RecordingUrl", "https://elsewhere.example/never-fetched"),
        ("AccountSid", fake_provider::ACCOUNT_SID),
    ];
    let (status, _) = w.fake.webhook("/phone/voice/recording", &callback).await;
    assert_eq!(status, 204);
    // A replayed callback changes nothing.
    let (status, _) = w.fake.webhook("/phone/voice/recording", &callback).await;
    assert_eq!(status, 204);
    let app = &w.app;
    eventually("the voicemail is stored", || async {
        app.stored_messages().await == 1
    })
    .await;
    eventually("a deletion was attempted", || async {
        let attempts: Option<i64> = sqlx::query_scalar(
            "SELECT attempts FROM phone_recordings WHERE state = 'delete' AND last_error <> ''",
        )
        .fetch_optional(app.core.store.pool())
        .await
        .unwrap();
        attempts.is_some()
    })
    .await;
    assert!(
        w.fake.has_recording(&recording_sid),
        "still there after the failed attempt"
    );
    app.clock.advance(Duration::from_secs(11));
    let fake = &w.fake;
    eventually("the recording is deleted at the provider", || async {
        !fake.has_recording(&recording_sid)
    })
    .await;
    eventually("the job is done", || async {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phone_recordings")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
        left == 0
    })
    .await;
    assert_eq!(w.fake.deleted(), vec![recording_sid.clone()]);
    assert_eq!(w.fake.fetched(), vec![recording_sid.clone()]);
    assert_eq!(app.stored_messages().await, 1, "fetched and stored once");
    // The same report once the job is gone (a replay): no new job, so nothing is fetched again.
    let (status, _) = w.fake.webhook("/phone/voice/recording", &callback).await;
    assert_eq!(status, 204);
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phone_recordings")
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0, "a replayed recording report starts no job");

    let token = app.login(&mut w.worker).await;
    let messages = app.messages(&token).await;
    assert_eq!(messages[0]["channel"], "voicemail");
    assert_eq!(messages[0]["from_organisation"], "Jeugdbescherming West");
    let id = messages[0]["id"].as_str().unwrap();
    let opened = app.open_message(&token, id).await;
    assert!(
        opened["body"].as_str().unwrap().contains("7 seconden"),
        "{opened}"
    );
    assert_eq!(opened["attachments"][0]["filename"], "voicemail.wav");
    let downloaded = app
        .get(&token, &format!("/v1/messages/{id}/attachments/0"))
        .await;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), audio.as_slice());
    app.flush_audit().await;
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE subject = $1 AND action LIKE 'voicemail.%' ORDER BY seq",
    )
    .bind(&w.worker.alias)
    .fetch_all(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(
        actions,
        ["voicemail.recorded", "voicemail.deleted_at_provider"]
    );
}

async fn sms_in_is_sealed_once_and_every_answer_is_the_same(backend: Backend) {
    let mut w = world(backend).await;
    let text = "Graag terugbellen over casus 12 <b>&</b>";
    let message_sid = sid("SM");
    let sms = |sid: String, from: &'static str| {
        let fake = &w.fake;
        async move {
            fake.webhook(
                "/phone/sms",
                &[
                    ("MessageSid", sid.as_str()),
                    ("SmsSid", sid.as_str()),
                    ("AccountSid", fake_provider::ACCOUNT_SID),
                    ("From", from),
                    ("To", ALIAS_NUMBER),
                    ("Body", text),
                    ("NumMedia", "0"),
                    ("FromCountry", "NL"),
                ],
            )
            .await
        }
    };
    let accepted = sms(message_sid.clone(), PARTNER_PHONE).await;
    let replayed = sms(message_sid.clone(), PARTNER_PHONE).await;
    let refused = sms(sid("SM"), STRANGER_PHONE).await;
    for answer in [&accepted, &replayed, &refused] {
        assert_eq!(answer.0, 200);
        assert_eq!(answer.1, twiml::EMPTY);
    }
    assert_eq!(w.app.stored_messages().await, 1);
    // An allowed contact's text is let in too.
    partner::allow_contact(
        &w.app.core.store,
        &w.app.core.server_key,
        w.app.now(),
        &Actor::System,
        &schuilnaam::alias::Address::parse(&w.worker.alias).unwrap(),
        &Contact::Phone(number(CONTACT_PHONE)),
    )
    .await
    .unwrap();
    sms(sid("SM"), CONTACT_PHONE).await;
    assert_eq!(w.app.stored_messages().await, 2);

    let token = w.app.login(&mut w.worker).await;
    let messages = w.app.messages(&token).await;
    let from_partner = messages
        .iter()
        .find(|m| m["from_organisation"] == "Jeugdbescherming West")
        .unwrap();
    assert_eq!(from_partner["channel"], "sms");
    let opened = w
        .app
        .open_message(&token, from_partner["id"].as_str().unwrap())
        .await;
    assert_eq!(opened["body"], text);
    assert_eq!(opened["to"], w.worker.alias);
}

async fn sms_out_leaves_from_the_alias_number_and_never_carries_the_real_number(backend: Backend) {
    let mut w = world(backend).await;
    let token = w.app.login(&mut w.worker).await;
    let send = |body: Value| {
        let app = &w.app;
        let token = token.clone();
        async move { app.post(&token, "/v1/sms", &body).await }
    };
    let sent = send(json!({ "from_alias": w.worker.alias, "to": "020-1234567", "body": "Ik bel u morgen terug." })).await;
    assert_eq!(sent.status(), 202);
    let sid = sent.json::<Value>().await.unwrap()["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(sid.starts_with("SM"));
    // The number names the alias just as well.
    let by_number =
        send(json!({ "from_alias": ALIAS_NUMBER, "to": PARTNER_PHONE, "body": "Tweede bericht." }))
            .await;
    assert_eq!(by_number.status(), 202);
    let messages = w.fake.messages();
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert_eq!(message["From"], ALIAS_NUMBER);
        assert_eq!(message["To"], PARTNER_PHONE);
        assert_eq!(
            message["StatusCallback"],
            format!("{PUBLIC_BASE}/phone/sms/status")
        );
        for value in message.values() {
            assert!(!value.contains("612345678"), "real number in {message:?}");
        }
    }
    // The leak guard: the worker's own number in any notation.
    for leaking in ["Bel me op 06-12345678", "mijn nummer: +31 6 1234 5678"] {
        let refused =
            send(json!({ "from_alias": w.worker.alias, "to": PARTNER_PHONE, "body": leaking }))
                .await;
        assert_eq!(refused.status(), 422, "{leaking}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "identity_leak");
    }
    // Only to a partner or an allowed contact; only from one's own alias with a number.
    let stranger =
        send(json!({ "from_alias": w.worker.alias, "to": STRANGER_PHONE, "body": "Hallo" })).await;
    assert_eq!(stranger.status(), 403);
    let other = w.app.add_worker("w9").await;
    let not_mine =
        send(json!({ "from_alias": other.alias, "to": PARTNER_PHONE, "body": "Hallo" })).await;
    assert_eq!(not_mine.status(), 403);
    let bad_to =
        send(json!({ "from_alias": w.worker.alias, "to": "geen nummer", "body": "Hallo" })).await;
    assert_eq!(bad_to.status(), 400);
    let unknown_field = send(json!({ "from_alias": w.worker.alias, "to": PARTNER_PHONE, "body": "Hallo", "from": REAL_PHONE })).await;
    assert_eq!(unknown_field.status(), 400);
    assert_eq!(w.fake.messages().len(), 2, "nothing else was sent");
    assert_eq!(w.fake.unauthorised(), 0);
}

async fn click_to_call_bridges_with_the_alias_as_caller_id(backend: Backend) {
    let mut w = world(backend).await;
    let token = w.app.login(&mut w.worker).await;
    let placed = w
        .app
        .post(
            &token,
            "/v1/calls",
            &json!({ "from_alias": w.worker.alias, "to": PARTNER_PHONE }),
        )
        .await;
    assert_eq!(placed.status(), 202);
    let calls = w.fake.calls();
    assert_eq!(calls.len(), 1);
    // The worker's own phone rings first, from the alias number.
    assert_eq!(calls[0]["From"], ALIAS_NUMBER);
    assert_eq!(calls[0]["To"], REAL_PHONE);
    let url = &calls[0]["Url"];
    assert!(
        url.starts_with(&format!("{PUBLIC_BASE}/phone/voice/bridge?id=")),
        "{url}"
    );
    let answered = [
        ("CallSid", "CA0000000000000000000000000000000a"),
        ("From", ALIAS_NUMBER),
        ("To", REAL_PHONE),
    ];
    let (status, bridge) = w.fake.follow(url, &answered).await;
    assert_eq!(status, 200);
    assert_eq!(
        bridge,
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Dial callerId=\"{ALIAS_NUMBER}\" timeout=\"20\" answerOnBridge=\"true\"><Number>{PARTNER_PHONE}</Number></Dial></Response>")
    );
    // One use.
    let (_, again) = w.fake.follow(url, &answered).await;
    assert_eq!(again, twiml::REFUSAL);
    let stranger = w
        .app
        .post(
            &token,
            "/v1/calls",
            &json!({ "from_alias": w.worker.alias, "to": STRANGER_PHONE }),
        )
        .await;
    assert_eq!(stranger.status(), 403);
    assert_eq!(w.fake.calls().len(), 1);
}

async fn a_worker_calling_their_own_alias_dials_out_from_it(backend: Backend) {
    let w = world(backend).await;
    let call_sid = sid("CA");
    let (_, prompt) = call(&w.fake, &call_sid, Some(REAL_PHONE), ALIAS_NUMBER).await;
    assert!(prompt.contains("<Gather"), "{prompt}");
    assert!(prompt.contains(&format!("action=\"{PUBLIC_BASE}/phone/voice/outbound\"")));
    let (_, bridged) = w
        .fake
        .webhook(
            "/phone/voice/outbound",
            &[
                ("CallSid", call_sid.as_str()),
                ("From", REAL_PHONE),
                ("To", ALIAS_NUMBER),
                ("Digits", "0201234567"),
            ],
        )
        .await;
    assert!(
        bridged.contains(&format!("callerId=\"{ALIAS_NUMBER}\"")),
        "{bridged}"
    );
    assert!(
        bridged.contains(&format!("<Number>{PARTNER_PHONE}</Number>")),
        "{bridged}"
    );
    // A number that is neither a partner's nor an allowed contact's is not dialled.
    let other = sid("CA");
    call(&w.fake, &other, Some(REAL_PHONE), ALIAS_NUMBER).await;
    let (_, refused) = w
        .fake
        .webhook(
            "/phone/voice/outbound",
            &[
                ("CallSid", other.as_str()),
                ("From", REAL_PHONE),
                ("To", ALIAS_NUMBER),
                ("Digits", "0699999999"),
            ],
        )
        .await;
    assert!(!refused.contains("<Dial"), "{refused}");
    // Someone else entering digits on that path gets the refusal.
    let (_, stranger) = w
        .fake
        .webhook(
            "/phone/voice/outbound",
            &[
                ("CallSid", sid("CA").as_str()),
                ("From", STRANGER_PHONE),
                ("To", ALIAS_NUMBER),
                ("Digits", "0201234567"),
            ],
        )
        .await;
    assert_eq!(stranger, twiml::REFUSAL);
}

async fn signatures_are_checked_before_anything_else(backend: Backend) {
    let w = world(backend).await;
    let call_sid = sid("CA");
    let params = [
        ("CallSid", call_sid.as_str()),
        ("From", PARTNER_PHONE),
        ("To", ALIAS_NUMBER),
    ];
    let good = fake_provider::sign(
        fake_provider::AUTH_TOKEN,
        &format!("{PUBLIC_BASE}/phone/voice"),
        &params,
    );
    // Tampered parameter, other URL, other token, no header: 403 and nothing happens.
    let tampered = [
        ("CallSid", call_sid.as_str()),
        ("From", PARTNER_PHONE),
        ("To", SPARE_NUMBER),
    ];
    assert_eq!(
        w.fake
            .post_raw("/phone/voice", &tampered, Some(&good))
            .await
            .0,
        403
    );
    let other_url = fake_provider::sign(
        fake_provider::AUTH_TOKEN,
        &format!("{PUBLIC_BASE}/phone/sms"),
        &params,
    );
    assert_eq!(
        w.fake
            .post_raw("/phone/voice", &params, Some(&other_url))
            .await
            .0,
        403
    );
    let other_token = fake_provider::sign(
        "not-the-token",
        &format!("{PUBLIC_BASE}/phone/voice"),
        &params,
    );
    assert_eq!(
        w.fake
            .post_raw("/phone/voice", &params, Some(&other_token))
            .await
            .0,
        403
    );
    let (status, body) = w.fake.post_raw("/phone/voice", &params, None).await;
    assert_eq!((status, body.as_str()), (403, "forbidden\n"));
    let routed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phone_calls")
        .fetch_one(w.app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(routed, 0, "nothing happened");
    assert_eq!(w.app.metric("phone_webhooks_forbidden_total").await, 4);
    // The URL with the default port signs too.
    let with_port = fake_provider::sign(
        fake_provider::AUTH_TOKEN,
        "https://telefoon.relay.test:443/phone/voice",
        &params,
    );
    let (status, body) = w
        .fake
        .post_raw("/phone/voice", &params, Some(&with_port))
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("<Dial"), "{body}");
    // A JSON body signed through bodySHA256.
    let json_body = serde_json::to_vec(&json!({
        "MessageSid": sid("SM"), "From": PARTNER_PHONE, "To": ALIAS_NUMBER, "Body": "Via JSON"
    }))
    .unwrap();
    let hash = schuilnaam::crypto::sha256_hex(&json_body);
    let path = format!("/phone/sms?bodySHA256={hash}");
    let signature = fake_provider::sign(
        fake_provider::AUTH_TOKEN,
        &format!("{PUBLIC_BASE}{path}"),
        &[],
    );
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&w.app.ca_pem).unwrap())
        .build()
        .unwrap();
    let url = format!("https://{}{path}", w.app.phone_addr.unwrap());
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Twilio-Signature", &signature)
            .body(body)
            .send()
    };
    assert_eq!(post(json_body.clone()).await.unwrap().status(), 200);
    assert_eq!(w.app.stored_messages().await, 1);
    let mut changed = json_body.clone();
    let at = changed.len() - 3;
    changed[at] = b'X';
    assert_eq!(post(changed).await.unwrap().status(), 403);
}

/// Telnyx TeXML: with the account's public key configured, a webhook counts only with its Ed25519
/// signature over `timestamp|body`, fresh by the relay's clock; the auth token's HMAC no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnyx_webhooks_are_checked_with_ed25519() {
    use ring::signature::KeyPair as _;
    let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[42; 32]).unwrap();
    let public = data_encoding::BASE64.encode(key.public_key().as_ref());
    let w = world_with(Backend::Sqlite, |phone| phone.webhook_public_key = public).await;
    let (addr, client) = w.fake.relay_client();
    let post = |body: String, headers: Vec<(&'static str, String)>| {
        let mut request = client
            .post(format!("https://{addr}/phone/voice"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    let telnyx = |timestamp: i64, body: &str| {
        let timestamp = timestamp.to_string();
        let signed = [timestamp.as_bytes(), b"|", body.as_bytes()].concat();
        vec![
            ("telnyx-timestamp", timestamp),
            (
                "telnyx-signature-ed25519",
                data_encoding::BASE64.encode(key.sign(&signed).as_ref()),
            ),
        ]
    };
    let call_body = |call_sid: &str| {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("CallSid", call_sid)
            .append_pair("From", PARTNER_PHONE)
            .append_pair("To", ALIAS_NUMBER)
            .finish()
    };
    let now = w.app.now() / 1000;

    // Signed by the auth token as Twilio would: refused, the public key decides.
    let call_sid = sid("CA");
    let body = call_body(&call_sid);
    let hmac = fake_provider::sign(
        fake_provider::AUTH_TOKEN,
        &format!("{PUBLIC_BASE}/phone/voice"),
        &[
            ("CallSid", call_sid.as_str()),
            ("From", PARTNER_PHONE),
            ("To", ALIAS_NUMBER),
        ],
    );
    let (status, _) = post(body.clone(), vec![("X-Twilio-Signature", hmac)]).await;
    assert_eq!(status, 403);
    // Stale by more than five minutes, from the future, tampered, or another key: refused.
    let (status, _) = post(body.clone(), telnyx(now - 301, &body)).await;
    assert_eq!(status, 403, "stale");
    let (status, _) = post(body.clone(), telnyx(now + 301, &body)).await;
    assert_eq!(status, 403, "from the future");
    let tampered = body.replace(&PARTNER_PHONE[1..], "31699999999");
    let (status, _) = post(tampered, telnyx(now, &body)).await;
    assert_eq!(status, 403, "tampered");
    let mut forged = telnyx(now, &body);
    forged.truncate(1);
    let (status, body_text) = post(body.clone(), forged).await;
    assert_eq!(
        (status, body_text.as_str()),
        (403, "forbidden\n"),
        "unsigned"
    );
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phone_calls")
        .fetch_one(w.app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(calls, 0, "nothing happened");
    assert_eq!(w.app.metric("phone_webhooks_forbidden_total").await, 5);

    // Fresh and signed (four minutes old by the relay's clock): the call rings the worker.
    let (status, twiml) = post(body.clone(), telnyx(now - 240, &body)).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert!(twiml.contains(REAL_PHONE), "{twiml}");
    // The relay's clock moves on: the same signed request is now stale.
    w.app.clock.advance(std::time::Duration::from_secs(61));
    let (status, _) = post(body.clone(), telnyx(now - 240, &body)).await;
    assert_eq!(status, 403);
}

/// What someone who captured one signed webhook can do with it: nothing. Folding the next parameter
/// into the CallSid keeps the signature but makes no valid id; the same bytes a day later (after the
/// sweep) are still a replay; a caller ID that is only among the worker's identity markers is not the
/// worker's registered phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_webhooks_give_nothing_away() {
    let w = world(Backend::Sqlite).await;
    let call_sid = sid("CA");
    let url = format!("{PUBLIC_BASE}/phone/voice");
    let params = [
        ("CallSid", call_sid.as_str()),
        ("CallStatus", "ringing"),
        ("From", PARTNER_PHONE),
        ("To", ALIAS_NUMBER),
    ];
    let signature = fake_provider::sign(fake_provider::AUTH_TOKEN, &url, &params);
    let (status, answer) = w
        .fake
        .post_raw("/phone/voice", &params, Some(&signature))
        .await;
    assert_eq!(status, 200);
    assert!(
        answer.contains(REAL_PHONE),
        "the real call rings the worker"
    );

    let folded_sid = format!("{call_sid}CallStatusringing");
    let folded = [
        ("CallSid", folded_sid.as_str()),
        ("From", PARTNER_PHONE),
        ("To", ALIAS_NUMBER),
    ];
    assert_eq!(
        fake_provider::sign(fake_provider::AUTH_TOKEN, &url, &folded),
        signature,
        "the fold keeps the signature"
    );
    let (status, answer) = w
        .fake
        .post_raw("/phone/voice", &folded, Some(&signature))
        .await;
    assert_eq!(
        (status, answer.as_str()),
        (400, "invalid parameter CallSid\n")
    );

    w.app
        .clock
        .advance(std::time::Duration::from_secs(2 * 86_400));
    schuilnaam::phone::voice::sweep(&w.app.core).await.unwrap();
    let (status, answer) = w
        .fake
        .post_raw("/phone/voice", &params, Some(&signature))
        .await;
    assert_eq!((status, answer.as_str()), (200, twiml::REFUSAL));

    let mut worker = w.worker;
    let token = w.app.login(&mut worker).await;
    let markers = w
        .app
        .client()
        .put(format!("{}/v1/markers", w.app.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "phones": ["06-22222222"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(markers.status(), 200);
    let (_, answer) = call(&w.fake, &sid("CA"), Some("+31622222222"), ALIAS_NUMBER).await;
    assert_eq!(
        answer,
        twiml::REFUSAL,
        "a marker is not the registered phone"
    );
    let (_, prompt) = call(&w.fake, &sid("CA"), Some(REAL_PHONE), ALIAS_NUMBER).await;
    assert!(prompt.contains("<Gather"), "{prompt}");
}

async fn bad_input_gets_a_plain_4xx(backend: Backend) {
    let w = world(backend).await;
    let (status, body) = w
        .fake
        .webhook(
            "/phone/voice",
            &[("CallSid", &sid("CA")), ("From", PARTNER_PHONE)],
        )
        .await;
    assert_eq!((status, body.as_str()), (400, "missing parameter To\n"));
    let (status, body) = w
        .fake
        .webhook(
            "/phone/voice",
            &[
                ("CallSid", &sid("CA")),
                ("From", PARTNER_PHONE),
                ("To", "sip:someone@example"),
            ],
        )
        .await;
    assert_eq!((status, body.as_str()), (400, "invalid parameter To\n"));
    let (status, _) = w
        .fake
        .webhook(
            "/phone/voice",
            &[("From", PARTNER_PHONE), ("To", ALIAS_NUMBER)],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = w
        .fake
        .webhook(
            "/phone/voice",
            &[
                ("CallSid", "CA/../x"),
                ("From", PARTNER_PHONE),
                ("To", ALIAS_NUMBER),
            ],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = w
        .fake
        .webhook(
            "/phone/sms",
            &[("From", PARTNER_PHONE), ("To", ALIAS_NUMBER), ("Body", "x")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = w
        .fake
        .webhook("/phone/voice/dial?step=x", &[("CallSid", &sid("CA"))])
        .await;
    assert_eq!(status, 400);
    // Parameters the relay does not know are signed and ignored.
    let (status, body) = w
        .fake
        .webhook(
            "/phone/voice",
            &[
                ("CallSid", &sid("CA")),
                ("From", PARTNER_PHONE),
                ("To", ALIAS_NUMBER),
                ("StirVerstat", "TN-Validation-Passed-A"),
                ("Onbekend", "ja"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("<Dial"));
    // A body over `max_body_bytes` (64 KiB) is refused before it is read to the end. Just over the
    // limit, so that the whole request fits in the sockets' buffers and the client reads the 413
    // instead of finding the connection closed while it still writes. (Signature checks come after
    // the size: this one is unsigned on purpose.)
    let (addr, client) = w.fake.relay_client();
    let huge = "x".repeat(70_000);
    let response = client
        .post(format!("https://{addr}/phone/sms"))
        .form(&[
            ("MessageSid", sid("SM").as_str()),
            ("From", PARTNER_PHONE),
            ("To", ALIAS_NUMBER),
            ("Body", huge.as_str()),
        ])
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status(), 413),
        // Refused so early that the connection closed under the client's last write: the relay
        // read no further, which is the point; it still answers below.
        Err(e) => assert!(e.is_request(), "{e}"),
    }
    assert_eq!(w.app.stored_messages().await, 0);
    // A replayed call is let through once.
    let call_sid = sid("CA");
    let (_, first) = call(&w.fake, &call_sid, Some(PARTNER_PHONE), ALIAS_NUMBER).await;
    let (_, second) = call(&w.fake, &call_sid, Some(PARTNER_PHONE), ALIAS_NUMBER).await;
    assert!(first.contains("<Dial"));
    assert_eq!(second, twiml::REFUSAL);
    w.app.flush_audit().await;
    let routed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'call.routed'")
            .fetch_one(w.app.core.store.pool())
            .await
            .unwrap();
    assert_eq!(
        routed, 2,
        "the unknown-parameter call and the first of the replayed pair"
    );
}

on_both_backends!(
    partner_call_rings_the_worker_with_the_alias_as_caller_id,
    every_refused_call_hears_the_same_bytes,
    team_number_rings_the_members_in_turn_then_voicemail,
    voicemail_is_sealed_readable_and_deleted_at_the_provider,
    sms_in_is_sealed_once_and_every_answer_is_the_same,
    sms_out_leaves_from_the_alias_number_and_never_carries_the_real_number,
    click_to_call_bridges_with_the_alias_as_caller_id,
    a_worker_calling_their_own_alias_dials_out_from_it,
    signatures_are_checked_before_anything_else,
    bad_input_gets_a_plain_4xx,
);
