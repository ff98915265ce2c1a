//! The self-hosted path against the real programs on loopback: texts in through the fake SMSC →
//! bearerbox → smsbox → the relay, texts out through smsbox's sendsms to the fake SMSC, and calls
//! through Kamailio asking the relay's routing answer, with SIPp as caller and callee.

use std::time::Duration;

use schuilnaam::audit::Actor;
use schuilnaam::config::PhoneProviderKind;
use schuilnaam::partner::{NewOrganisation, OrgKind};
use schuilnaam::phone::{pool, sip};
use serde_json::json;

use crate::helpers::{organisation, Backend, TestApp};
use crate::on_both_backends;
use crate::phone::{eventually, number, ALIAS_NUMBER, PARTNER_PHONE};
use crate::telephony_support::{free_port, sipp, Kamailio, Kannel, KannelPorts};

const KANNEL_SECRET: &str = "kannel-secret-5f0c2a9e";
const SIP_SECRET: &str = "sip-secret-93be11d4c7";
const REAL_DIGITS: &str = "31612345678";

async fn texts_through_kannel_and_calls_through_kamailio(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let phone_port = free_port();
    let callee_port = free_port();
    let kannel_ports = KannelPorts::free();
    let sendsms = kannel_ports.sendsms;
    let app = TestApp::spawn_with(backend, |config| {
        let phone = &mut config.phone;
        phone.enabled = true;
        phone.provider = PhoneProviderKind::KannelSip;
        phone.listen = format!("127.0.0.1:{phone_port}").parse().unwrap();
        phone.public_base_url = format!("https://127.0.0.1:{phone_port}");
        phone.kannel_sendsms_url = format!("http://127.0.0.1:{sendsms}/cgi-bin/sendsms");
        phone.kannel_username = "relay".into();
        phone.kannel_password = "sendsms-password".into();
        phone.kannel_secret = KANNEL_SECRET.into();
        phone.sip_secret = SIP_SECRET.into();
        phone.sip_target = format!("sip:{{number}}@127.0.0.1:{callee_port}");
    })
    .await;
    app.add_organisation(NewOrganisation {
        kind: OrgKind::Ketenpartner,
        phones: vec![number(PARTNER_PHONE)],
        ..organisation("Veilig Thuis")
    })
    .await;
    let mut worker = app.add_worker("w1").await;
    pool::add(
        &app.core.store,
        app.now(),
        &Actor::System,
        &[number(ALIAS_NUMBER)],
    )
    .await
    .unwrap();
    let alias = schuilnaam::alias::Address::parse(&worker.alias).unwrap();
    pool::assign(&app.core.store, app.now(), &Actor::System, &alias, None)
        .await
        .unwrap();

    // In: fake SMSC → bearerbox → smsbox → POST /phone/kannel/sms.
    let kannel = Kannel::start(
        dir.path(),
        kannel_ports,
        &format!("https://127.0.0.1:{phone_port}/phone/kannel/sms?secret={KANNEL_SECRET}"),
        "relay",
        "sendsms-password",
        "31201234567 3197010000001 text Noodgeval bij client X",
    )
    .await;
    let stored = &app;
    eventually("the text from the fake SMSC is stored", || async {
        stored.stored_messages().await == 1
    })
    .await;
    let token = app.login(&mut worker).await;
    let messages = app.messages(&token).await;
    assert_eq!(messages[0]["channel"], "sms");
    assert_eq!(messages[0]["from_organisation"], "Veilig Thuis");
    let opened = app
        .open_message(&token, messages[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(opened["body"], "Noodgeval bij client X");

    // Out: POST /v1/sms → sendsms → bearerbox → fake SMSC, from the alias number.
    let sent = app
        .post(&token, "/v1/sms", &json!({ "from_alias": worker.alias, "to": PARTNER_PHONE, "body": "Ik bel u zo terug" }))
        .await;
    assert_eq!(sent.status(), 202);
    let fakesmsc = &kannel.fakesmsc;
    eventually("the fake SMSC receives the text", || async {
        fakesmsc
            .output()
            .contains("3197010000001 31201234567 text Ik bel u zo terug")
    })
    .await;
    assert!(!fakesmsc.output().contains(REAL_DIGITS));

    // Kannel's paths need the secret and an allowed address.
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&app.ca_pem).unwrap())
        .build()
        .unwrap();
    let forged = client
        .post(format!(
            "https://127.0.0.1:{phone_port}/phone/kannel/sms?secret=wrong"
        ))
        .header("X-Kannel-From", "31201234567")
        .header("X-Kannel-To", "3197010000001")
        .body("vervalst")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(app.stored_messages().await, 1);

    // The routing answer: the same bytes for every refusal.
    let route = |from: &'static str, to: &'static str, secret: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("https://127.0.0.1:{phone_port}/phone/sip/route"))
                .query(&[("from", from), ("to", to), ("secret", secret)])
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(route("31201234567", "3197010000001", "wrong").await.0, 403);
    let forward = route("31201234567", "3197010000001", SIP_SECRET).await;
    assert_eq!(
        forward.1,
        format!(
            r#"{{"action":"forward","target":"sip:{REAL_DIGITS}@127.0.0.1:{callee_port}","caller_id":"{ALIAS_NUMBER}"}}"#
        )
    );
    for (from, to) in [
        ("31699999999", "3197010000001"),
        ("", "3197010000001"),
        ("anonymous", "3197010000001"),
        ("31201234567", "3197010009999"),
    ] {
        assert_eq!(
            route(from, to, SIP_SECRET).await,
            (200, sip::REJECT.to_string()),
            "{from} → {to}"
        );
    }

    // A call from the partner through Kamailio reaches the callee with the alias as From and
    // P-Asserted-Identity; nothing the caller receives names the worker's number.
    let kamailio =
        Kamailio::start(dir.path(), &format!("127.0.0.1:{phone_port}"), SIP_SECRET).await;
    let proxy = format!("127.0.0.1:{}", kamailio.port);
    let callee_port_text = callee_port.to_string();
    let (callee, callee_messages) = sipp(
        dir.path(),
        "callee",
        "callee.xml",
        &["-p", &callee_port_text],
    );
    let caller_port = free_port().to_string();
    let (caller, caller_messages) = sipp(
        dir.path(),
        "caller",
        "caller.xml",
        &[
            "-key",
            "caller",
            "31201234567",
            "-s",
            "3197010000001",
            "-p",
            &caller_port,
            "-timeout",
            "20s",
            &proxy,
        ],
    );
    let caller_log = caller.log.clone();
    assert!(
        caller.wait(Duration::from_secs(30)),
        "the call did not complete:\n{}\n{}",
        std::fs::read_to_string(&caller_log).unwrap_or_default(),
        kamailio.daemon.output()
    );
    assert!(
        callee.wait(Duration::from_secs(10)),
        "callee did not finish"
    );
    let at_callee = std::fs::read_to_string(&callee_messages).unwrap();
    assert!(
        at_callee.contains(&format!("INVITE sip:{REAL_DIGITS}@127.0.0.1:{callee_port}")),
        "{at_callee}"
    );
    assert!(
        at_callee.contains(&format!("From: <sip:{ALIAS_NUMBER}@127.0.0.1>")),
        "{at_callee}"
    );
    assert!(
        at_callee.contains(&format!(
            "P-Asserted-Identity: <sip:{ALIAS_NUMBER}@127.0.0.1>"
        )),
        "{at_callee}"
    );
    let at_caller = std::fs::read_to_string(&caller_messages).unwrap();
    assert!(at_caller.contains("SIP/2.0 200 OK"), "{at_caller}");
    assert!(
        !at_caller.contains(REAL_DIGITS),
        "the worker's number reached the caller:\n{at_caller}"
    );

    // An unknown caller gets 403 from the proxy, and learns nothing either.
    let stranger_port = free_port().to_string();
    let (stranger, stranger_messages) = sipp(
        dir.path(),
        "stranger",
        "refused.xml",
        &[
            "-key",
            "caller",
            "31699999999",
            "-s",
            "3197010000001",
            "-p",
            &stranger_port,
            "-timeout",
            "15s",
            &proxy,
        ],
    );
    assert!(
        stranger.wait(Duration::from_secs(20)),
        "the unknown caller did not get 403"
    );
    let at_stranger = std::fs::read_to_string(&stranger_messages).unwrap();
    assert!(at_stranger.contains("SIP/2.0 403"), "{at_stranger}");
    assert!(!at_stranger.contains(REAL_DIGITS));
    drop(kamailio);
    drop(kannel);
}

on_both_backends!(texts_through_kannel_and_calls_through_kamailio);
