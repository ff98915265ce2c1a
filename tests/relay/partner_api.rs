//! The partner API over real TLS with real client certificates: delivery, who is refused, bad input.

use schuilnaam::alias::{Address, Resolution};
use schuilnaam::audit::Actor;
use schuilnaam::error::Error;
use schuilnaam::mailbox::{Channel, Incoming, MessageKind};
use schuilnaam::partner::{self, Fingerprint, NewOrganisation, OrgName};
use serde_json::{json, Value};

use crate::helpers::{delivered, message, organisation, post_message, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(
    partner_delivers_and_worker_reads,
    refusals_are_byte_identical,
    bad_input_is_a_clear_4xx_and_stores_nothing,
    team_messages_are_sealed_to_every_member,
    revocations_win_over_messages_on_their_way,
    disabled_organisation_is_refused,
);

async fn partner_delivers_and_worker_reads(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Jeugdbescherming West").await;
    let mut worker = app.add_worker("w17").await;

    let response = post_message(
        &partner,
        &app.partner_url,
        &json!({
            "to": worker.alias,
            "subject": "Aanmelding gezin",
            "body": "Graag contact over de overname.",
            "urgent": true,
            "kind": "aanmelding"
        }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "128-bit hex id");

    let token = app.login(&mut worker).await;
    let list = app.messages(&token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], json!(id));
    assert_eq!(list[0]["kind"], json!("aanmelding"));
    assert_eq!(list[0]["urgent"], json!(true));
    assert_eq!(list[0]["from_organisation"], json!("Jeugdbescherming West"));
    assert_eq!(list[0]["to"], json!(worker.alias));
    assert_eq!(list[0]["mailbox"], json!("personal"));
    // The listing carries routing facts only.
    assert!(list[0].get("subject").is_none() && list[0].get("body").is_none());

    let opened: Value = app.open_message(&token, &id).await;
    assert_eq!(opened["subject"], json!("Aanmelding gezin"));
    assert_eq!(opened["body"], json!("Graag contact over de overname."));
    assert_eq!(opened["from"], json!("Jeugdbescherming West"));

    let age_file = app.get(&token, &format!("/v1/messages/{id}/age")).await;
    assert_eq!(age_file.status(), 200);
    assert_eq!(
        age_file.headers()["content-type"],
        "application/octet-stream"
    );
    let bytes = age_file.bytes().await.unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));

    let deleted = app.delete(&token, &format!("/v1/messages/{id}")).await;
    assert_eq!(deleted.status(), 204);
    assert!(app.messages(&token).await.is_empty());
    assert_eq!(app.stored_messages().await, 0);
    app.stop().await;
}

/// Status, content type and body of a refusal, for byte-for-byte comparison.
async fn refusal_shape(response: reqwest::Response) -> (u16, String, Vec<u8>) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn refusals_are_byte_identical(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Raad voor de Kinderbescherming").await;
    let worker = app.add_worker("w1").await;
    let burned = app.add_worker("w2").await;
    schuilnaam::alias::burn_audited(
        &app.core.store,
        app.now(),
        &schuilnaam::audit::Actor::System,
        &schuilnaam::alias::Address::parse(&burned.alias).unwrap(),
    )
    .await
    .unwrap();
    // A certificate from the right CA that no organisation has pinned.
    let issued = app.dev_ca().issue_client("Onbekende organisatie").unwrap();
    let unpinned = app.client_with_certificate(&issued.cert_pem, &issued.key_pem);

    let unknown = post_message(
        &partner,
        &app.partner_url,
        &message("doesnotexist@relay.localhost", "s", "b"),
    )
    .await
    .unwrap();
    let burned_reply = post_message(
        &partner,
        &app.partner_url,
        &message(&burned.alias, "s", "b"),
    )
    .await
    .unwrap();
    let unauthorised = post_message(
        &unpinned,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();

    let unknown = refusal_shape(unknown).await;
    assert_eq!(unknown.0, 403);
    assert_eq!(refusal_shape(burned_reply).await, unknown);
    assert_eq!(refusal_shape(unauthorised).await, unknown);
    assert_eq!(app.stored_messages().await, 0);

    // The same partner still reaches the live alias: the refusals were about the alias and sender.
    let ok = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 202);

    // Every refusal is in the audit log, with its reason (which the sender never hears).
    app.flush_audit().await;
    let refusals: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'message.refused' ORDER BY seq",
    )
    .fetch_all(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(
        refusals,
        vec![
            "channel=api reason=unknown-alias",
            "channel=api reason=burned-alias",
            "channel=api reason=unknown-sender",
        ]
    );
    app.stop().await;
}

async fn bad_input_is_a_clear_4xx_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Veilig Thuis").await;
    let worker = app.add_worker("w3").await;
    let url = format!("{}/v1/messages", app.partner_url);

    let send_raw = |content_type: &'static str, body: Vec<u8>| {
        let partner = partner.clone();
        let url = url.clone();
        async move {
            let response = partner
                .post(url)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("error bodies are JSON");
            (status, body)
        }
    };

    let too_big = json!({ "to": worker.alias, "subject": "s", "body": "x".repeat(1_100_000) });
    let cases: Vec<(&str, &'static str, Vec<u8>, u16, &str)> = vec![
        (
            "oversized body",
            "application/json",
            serde_json::to_vec(&too_big).unwrap(),
            413,
            "payload_too_large",
        ),
        (
            "malformed JSON",
            "application/json",
            b"{\"to\": ".to_vec(),
            400,
            "bad_request",
        ),
        (
            "wrong content type",
            "text/plain",
            serde_json::to_vec(&message(&worker.alias, "s", "b")).unwrap(),
            415,
            "unsupported_media_type",
        ),
        (
            "invalid alias syntax",
            "application/json",
            serde_json::to_vec(&message("not an alias", "s", "b")).unwrap(),
            400,
            "bad_request",
        ),
        (
            "unknown field",
            "application/json",
            serde_json::to_vec(
                &json!({"to": worker.alias, "subject": "s", "body": "b", "bcc": "x"}),
            )
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            "wrong type",
            "application/json",
            serde_json::to_vec(
                &json!({"to": worker.alias, "subject": "s", "body": "b", "urgent": "yes"}),
            )
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            "unknown kind",
            "application/json",
            serde_json::to_vec(
                &json!({"to": worker.alias, "subject": "s", "body": "b", "kind": "spam"}),
            )
            .unwrap(),
            400,
            "bad_request",
        ),
        (
            "missing body",
            "application/json",
            serde_json::to_vec(&json!({"to": worker.alias, "subject": "s"})).unwrap(),
            400,
            "bad_request",
        ),
        (
            "header injection in subject",
            "application/json",
            serde_json::to_vec(&message(&worker.alias, "s\r\nBcc: x@y.nl", "b")).unwrap(),
            400,
            "bad_request",
        ),
        (
            "Unicode line separator in subject",
            "application/json",
            serde_json::to_vec(&message(&worker.alias, "s\u{2028}Bcc: x@y.nl", "b")).unwrap(),
            400,
            "bad_request",
        ),
        (
            "empty message",
            "application/json",
            serde_json::to_vec(&message(&worker.alias, "", "  ")).unwrap(),
            400,
            "bad_request",
        ),
    ];
    for (what, content_type, body, status, code) in cases {
        let (got_status, got_body) = send_raw(content_type, body).await;
        assert_eq!(got_status, status, "{what}: {got_body}");
        assert_eq!(got_body["error"], json!(code), "{what}");
        assert!(
            got_body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what} explains itself"
        );
    }
    // Invalid UTF-8 inside a JSON string.
    let mut invalid_utf8 = br#"{"to": "x@relay.localhost", "subject": "s", "body": ""#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let (status, body) = send_raw("application/json", invalid_utf8).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], json!("bad_request"), "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    assert_eq!(app.stored_messages().await, 0, "nothing stored");
    // Nothing crashed: a good message still goes through on a fresh connection.
    let ok = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 202);
    app.stop().await;
}

async fn team_messages_are_sealed_to_every_member(backend: Backend) {
    use schuilnaam::team;
    use schuilnaam::worker::Handle;
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Politie Eenheid Rotterdam").await;
    let mut a = app.add_worker("lid-a").await;
    let mut b = app.add_worker("lid-b").await;
    let mut outsider = app.add_worker("buiten").await;
    let actor = schuilnaam::audit::Actor::System;
    let team_name = Handle::parse("let-jb").unwrap();
    let address = team::add(
        &app.core.store,
        &app.core.domain,
        app.now(),
        &actor,
        &team_name,
        &schuilnaam::alias::LocalPart::parse("aanmelding").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(address.as_str(), "aanmelding@relay.localhost");

    // No members yet: nobody to seal to, refused like an unknown alias.
    let refused = post_message(
        &partner,
        &app.partner_url,
        &message(address.as_str(), "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);

    for member in ["lid-a", "lid-b"] {
        team::add_member(
            &app.core.store,
            app.now(),
            &actor,
            &team_name,
            &Handle::parse(member).unwrap(),
        )
        .await
        .unwrap();
    }
    app.clock.advance(std::time::Duration::from_millis(5));
    let id = delivered(
        &partner,
        &app.partner_url,
        &message(address.as_str(), "Spoed: aanmelding", "Bel terug"),
    )
    .await;

    for member in [&mut a, &mut b] {
        let token = app.login(member).await;
        let list = app.messages(&token).await;
        assert_eq!(list.len(), 1, "{} sees the team message", member.handle);
        assert_eq!(list[0]["mailbox"], json!("let-jb"));
        let opened: Value = app.open_message(&token, &id).await;
        assert_eq!(opened["body"], json!("Bel terug"));
    }
    let outsider_token = app.login(&mut outsider).await;
    assert!(app.messages(&outsider_token).await.is_empty());
    assert_eq!(
        app.get(&outsider_token, &format!("/v1/messages/{id}"))
            .await
            .status(),
        404
    );

    // A member who joins later does not see (and could not open) what came before.
    team::add_member(
        &app.core.store,
        app.now(),
        &actor,
        &team_name,
        &Handle::parse("buiten").unwrap(),
    )
    .await
    .unwrap();
    assert!(app.messages(&outsider_token).await.is_empty());
    app.stop().await;
}

async fn disabled_organisation_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Openbaar Ministerie").await;
    let worker = app.add_worker("w4").await;
    let ok = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 202);
    app.disable_organisation("Openbaar Ministerie").await;
    // The same client, even on its kept-alive connection, is refused from now on.
    let refused = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    // Byte for byte what an unknown alias gets: a disabled organisation learns nothing either.
    let unknown = post_message(
        &app.add_partner("Veilig Thuis").await,
        &app.partner_url,
        &message("nietbestaand@relay.localhost", "s", "b"),
    )
    .await
    .unwrap();
    let refused = refusal_shape(refused).await;
    assert_eq!(refused.0, 403);
    assert_eq!(refused, refusal_shape(unknown).await);
    let body: Value = serde_json::from_slice(&refused.2).unwrap();
    assert_eq!(body["error"], json!("not_accepted"));
    assert_eq!(app.stored_messages().await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_refuses_missing_and_foreign_certificates() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("Intervence").await;
    let worker = app.add_worker("w5").await;
    // The listener works for a pinned certificate …
    let ok = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 202);

    // … refuses a client without a certificate at the handshake …
    let no_cert = raw_tls_exchange(&app, None, GET_NOTHING).await;
    assert!(no_cert.contains("CertificateRequired"), "{no_cert}");
    // (and so does an HTTP client, whatever its error text)
    assert!(post_message(
        &app.client(),
        &app.partner_url,
        &message(&worker.alias, "s", "b")
    )
    .await
    .is_err());

    // … a certificate from a rogue CA that copies the development CA's name (bad signature) …
    let rogue_dir = tempfile::tempdir().unwrap();
    let rogue_ca = schuilnaam::tls::DevCa::load_or_create(rogue_dir.path()).unwrap();
    let rogue = rogue_ca.issue_client("Intervence").unwrap();
    let text = raw_tls_exchange(&app, Some((&rogue.cert_pem, &rogue.key_pem)), GET_NOTHING).await;
    assert!(text.contains("DecryptError"), "{text}");

    // … and one from an unrelated CA.
    let (cert_pem, key_pem) = certificate_from_unrelated_ca("Intervence");
    let text = raw_tls_exchange(&app, Some((&cert_pem, &key_pem)), GET_NOTHING).await;
    assert!(text.contains("UnknownCA"), "{text}");

    // The pinned certificate passes the same exchange (the check above is not vacuous).
    let issued = app.dev_ca().issue_client("Intervence").unwrap();
    let pinned = Some((issued.cert_pem.as_str(), issued.key_pem.as_str()));
    let text = raw_tls_exchange(&app, pinned, GET_NOTHING).await;
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
    // A wrong method is a JSON error like every other.
    let text = raw_tls_exchange(
        &app,
        pinned,
        b"DELETE /v1/messages HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 405"), "{text}");
    assert!(text.contains(r#""error":"method_not_allowed""#), "{text}");
    assert_eq!(app.stored_messages().await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_listener_is_not_the_partner_api() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let worker = app.add_worker("w6").await;
    // Posting a message to the worker listener finds no such method there (it lists messages).
    let response = post_message(
        &app.client(),
        &app.worker_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], json!("method_not_allowed"));
    assert_eq!(app.stored_messages().await, 0);
    app.stop().await;
}

const GET_NOTHING: &[u8] = b"GET /nothing HTTP/1.1\r\nhost: relay\r\nconnection: close\r\n\r\n";

/// Connects to the partner listener with rustls, optionally presenting a certificate, sends a request
/// and reads the answer. Returns the answer's first bytes, or the error text (e.g. the server's
/// alert). Reading the answer makes the outcome deterministic under TLS 1.3, where the client
/// finishes its half of the handshake before the server has judged the client certificate.
async fn raw_tls_exchange(app: &TestApp, identity: Option<(&str, &str)>, request: &[u8]) -> String {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut app.ca_pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(schuilnaam::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert_pem, key_pem)) => {
            let chain = rustls_pemfile::certs(&mut cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let addr = app.partner_url.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let server_name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = match connector.connect(server_name, tcp).await {
        Ok(stream) => stream,
        Err(e) => return e.to_string(),
    };
    // A refused certificate is answered with an alert right after the handshake, before any request.
    let mut first = [0u8; 1];
    let waited =
        tokio::time::timeout(std::time::Duration::from_secs(2), stream.read(&mut first)).await;
    match waited {
        Ok(Err(e)) => return e.to_string(),
        Ok(Ok(n)) => return format!("unexpected {n} bytes before any request"),
        Err(_) => {} // silence: the server waits for a request
    }
    if let Err(e) = stream.write_all(request).await {
        return e.to_string();
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer).await {
        Ok(_) => String::from_utf8_lossy(&answer).into_owned(),
        Err(e) => e.to_string(),
    }
}

/// A client certificate (PEM) and key issued by a freshly made CA with its own name.
fn certificate_from_unrelated_ca(organisation: &str) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Some Other CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, organisation);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// One host holding idle connections cannot take the listener from everyone else: past its cap
/// its further connections are closed before the handshake, while another address still delivers,
/// and the host gets its connections back once it lets go of the idle ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_connection() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.partner_api.max_connections_per_address = 3
    })
    .await;
    let worker = app.add_worker("w95").await;
    let hogging = app.add_partner("GI Hamster").await;
    let other = app
        .add_partner_from("GI Buurman", Some("127.0.0.2".parse().unwrap()))
        .await;
    let listener = app.partner_url.trim_start_matches("https://").to_string();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&listener).await.unwrap());
    }
    let body = message(&worker.alias, "s", "b");

    assert!(
        post_message(&hogging, &app.partner_url, &body)
            .await
            .is_err(),
        "a fourth connection from the same address is closed"
    );
    assert_eq!(app.metric("https_connections_refused_total").await, 1);
    delivered(&other, &app.partner_url, &body).await;

    drop(idle);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match post_message(&hogging, &app.partner_url, &body).await {
            Ok(response) => {
                assert_eq!(response.status(), 202);
                break;
            }
            Err(e) => assert!(
                std::time::Instant::now() < deadline,
                "the address never got its connections back: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.stop().await;
}

/// `org unpin` and `org disable` win over a message that was accepted before them and is still on its
/// way to the database: the deliverer checks the organisation and the certificate again in the
/// transaction that would store it, so nothing from the organisation is stored after the command.
async fn revocations_win_over_messages_on_their_way(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let worker = app.add_worker("w96").await;
    let name = OrgName::parse("GI Ingetrokken").unwrap();
    let issued = app.dev_ca().issue_client(name.as_str()).unwrap();
    let fingerprint = Fingerprint::of_pem(issued.cert_pem.as_bytes()).unwrap();
    let store = &app.core.store;
    app.add_organisation(NewOrganisation {
        certificates: vec![fingerprint.clone()],
        ..organisation(name.as_str())
    })
    .await;
    let to = Address::parse(&worker.alias).unwrap();
    // What intake has established about a message when it hands it to the deliverer.
    let accepted = || async {
        let (partner, resolution) = partner::by_certificate_resolving(store, &fingerprint, &to)
            .await
            .unwrap();
        let Resolution::Deliver {
            mailbox_id,
            mailbox_kind,
        } = resolution
        else {
            panic!("the alias resolves: {resolution:?}");
        };
        Incoming {
            mailbox_id,
            mailbox_kind,
            alias: to.clone(),
            organisation: Some(partner.expect("the certificate is pinned")),
            sender_certificate: Some(fingerprint.clone()),
            sender_label: String::new(),
            channel: Channel::Api,
            kind: MessageKind::Bericht,
            urgent: false,
            subject: "onderweg".into(),
            body: "b".into(),
            mail: None,
            require_live_alias: true,
        }
    };
    let deliver = |incoming| {
        app.core
            .deliverer
            .deliver(app.now(), &Actor::System, incoming)
    };

    let on_its_way = accepted().await;
    partner::unpin_certificate(store, app.now(), &Actor::System, &name, &fingerprint)
        .await
        .unwrap();
    assert!(matches!(
        deliver(on_its_way).await,
        Err(Error::SenderRevoked)
    ));

    partner::pin_certificate(store, app.now(), &Actor::System, &name, &fingerprint)
        .await
        .unwrap();
    let on_its_way = accepted().await;
    app.disable_organisation(name.as_str()).await;
    assert!(matches!(
        deliver(on_its_way).await,
        Err(Error::SenderRevoked)
    ));
    assert_eq!(app.stored_messages().await, 0);

    // The same message, with the organisation enabled and pinned, is stored.
    partner::set_enabled(store, app.now(), &Actor::System, &name, true)
        .await
        .unwrap();
    let delivered = deliver(accepted().await).await;
    assert!(delivered.is_ok(), "{delivered:?}");
    assert_eq!(app.stored_messages().await, 1);
    app.stop().await;
}
