//! Mail leaving the relay: replies from the alias (rebuilt, sanitised, leak-guarded, DKIM-signed),
//! delivered only over verified TLS; content-free notifications; bounces.

use std::time::Duration;

use mail_parser::MimeHeaders;

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestWorker};
use crate::mail_support::{data_reply, partner_message, swaks, RawSmtp, Smarthost};
use crate::on_both_backends;
use crate::smtp_inbound::MailWorld;

on_both_backends!(replies_reach_the_partner_and_bounces_come_back);

/// A smarthost with a certificate from its own CA, and that CA's certificate in a file.
pub struct TrustedSmarthost {
    pub smarthost: Smarthost,
    pub ca_file: tempfile::NamedTempFile,
}

pub async fn smarthost(trusted: bool) -> TrustedSmarthost {
    let dir = tempfile::tempdir().unwrap();
    let ca = schuilnaam::tls::DevCa::load_or_create(dir.path()).unwrap();
    let issued = ca
        .issue_server(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    let smarthost = Smarthost::start(&issued.cert_pem, &issued.key_pem).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    if trusted {
        std::fs::write(ca_file.path(), ca.cert_pem()).unwrap();
    } else {
        // Some other CA: the smarthost's certificate does not chain to it.
        let other = tempfile::tempdir().unwrap();
        let other_ca = schuilnaam::tls::DevCa::load_or_create(other.path()).unwrap();
        std::fs::write(ca_file.path(), other_ca.cert_pem()).unwrap();
    }
    TrustedSmarthost { smarthost, ca_file }
}

async fn app_with_outbound(
    world: &MailWorld,
    backend: Backend,
    host: &TrustedSmarthost,
) -> TestApp {
    app_with_outbound_on(world, backend, host, "relay.localhost").await
}

/// Like `app_with_outbound`, with the relay on `domain`. (DNS resolvers answer names under
/// `.localhost` themselves, RFC 6761: a test that looks the relay's own records up needs another.)
pub async fn app_with_outbound_on(
    world: &MailWorld,
    backend: Backend,
    host: &TrustedSmarthost,
    domain: &str,
) -> TestApp {
    app_with_outbound_adjusted(world, backend, host, domain, |_| {}).await
}

/// Like `app_with_outbound_on`, with the configuration adjusted further.
async fn app_with_outbound_adjusted(
    world: &MailWorld,
    backend: Backend,
    host: &TrustedSmarthost,
    domain: &str,
    adjust: impl FnOnce(&mut schuilnaam::Config) + Send + 'static,
) -> TestApp {
    let resolver = world.dns.address.to_string();
    let smarthost = host.smarthost.address.to_string();
    let ca = host.ca_file.path().to_path_buf();
    let domain = domain.to_string();
    let app = TestApp::spawn_with(backend, move |c| {
        c.dns.resolver = resolver;
        c.outbound.smarthost = smarthost;
        c.outbound.extra_ca = ca;
        c.smtp.hostname = domain.clone();
        c.relay.domain = domain;
        adjust(c);
    })
    .await;
    app.add_mail_partner("Jeugdbescherming West", "jbwest.test")
        .await;
    app
}

/// A signed partner message to the worker's alias, over swaks; returns its Message-ID.
fn partner_mails(world: &MailWorld, app: &TestApp, worker: &TestWorker, subject: &str) -> String {
    let message = partner_message(
        "Team West <team@jbwest.test>",
        &worker.alias,
        subject,
        "Graag reactie.",
    );
    let message_id = message
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();
    let signed = world.jbwest.sign(&message, "jbwest.test", "sel");
    let (_, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        &worker.alias,
        &signed,
        &["--tls"],
    );
    assert_eq!(
        data_reply(&transcript),
        "250 2.0.0 Message accepted",
        "{transcript}"
    );
    message_id
}

/// A new worker whom the partner has mailed once, logged in: (worker, token, id of that message).
pub async fn mailed_worker(
    world: &MailWorld,
    app: &TestApp,
    handle: &str,
    subject: &str,
) -> (TestWorker, String, String) {
    let mut worker = app.add_worker(handle).await;
    partner_mails(world, app, &worker, subject);
    let token = app.login(&mut worker).await;
    let inbound_id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (worker, token, inbound_id)
}

fn b64(data: &[u8]) -> String {
    data_encoding::BASE64.encode(data)
}

/// Outbound messages to `recipient` only (notifications go to the worker's real address).
pub fn to(
    received: &[crate::mail_support::Received],
    recipient: &str,
) -> Vec<crate::mail_support::Received> {
    received
        .iter()
        .filter(|r| r.rcpt_to.iter().any(|t| t.contains(recipient)))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_replies_with_attachments_carry_nothing_of_the_worker() {
    use schuilnaam::mail::sanitize::fixtures::{jpeg_with_gps, pdf_with_author};
    let world = MailWorld::new();
    let host = smarthost(true).await;
    let app = app_with_outbound_on(&world, Backend::Sqlite, &host, "relay.test").await;
    let mut worker = app.add_worker("w300").await;
    let original_id = partner_mails(&world, &app, &worker, "Aanmelding gezin");
    let token = app.login(&mut worker).await;
    let markers = app
        .client()
        .put(format!("{}/v1/markers", app.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "names": ["Jan Jansen"], "towns": ["Alphen aan den Rijn"], "plates": ["12-ABC-3"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(markers.status(), 200);
    let counts: Value = markers.json().await.unwrap();
    assert_eq!(counts["name"], json!(2));
    assert_eq!(
        counts["phone"],
        json!(1),
        "the enrolment phone is always a marker"
    );
    let inbound_id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let attachments = json!([
        { "filename": "foto.jpg", "content_type": "image/jpeg", "data": b64(&jpeg_with_gps("Jan Jansen")) },
        { "filename": "verslag.pdf", "content_type": "application/pdf", "data": b64(&pdf_with_author("Jan Jansen")) },
        { "filename": "sleutel.asc", "content_type": "application/pgp-keys", "data": b64(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nJan Jansen <jan@prive.example>\n") },
    ]);
    for i in 0..50 {
        let response = app
            .post(
                &token,
                &format!("/v1/messages/{inbound_id}/reply"),
                &json!({ "body": format!("Dank voor uw bericht. Reactie {i}."), "attachments": attachments }),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "reply {i}: {body}");
        // The worker is told which attachment did not go along.
        assert_eq!(
            body["removed_attachments"],
            json!(["sleutel.asc"]),
            "{body}"
        );
    }
    let received = host.smarthost.wait_for(51).await;
    let replies = to(&received, "team@jbwest.test");
    assert_eq!(replies.len(), 50);

    let machine = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let machine = machine.trim();
    let forbidden: Vec<String> = [
        "Jan Jansen",
        "jansen",
        "JANSEN",
        "medewerker@example.nl",
        "+31612345678",
        "0612345678",
        "06-12",
        "Exif",
        "GPSLatitude",
        "Microsoft",
        "BEGIN PGP",
        "Received:",
        "X-Mailer",
        "User-Agent",
        "Authentication-Results",
        "X-Originating",
        &inbound_id,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for reply in &replies {
        let raw = String::from_utf8_lossy(&reply.data);
        for needle in &forbidden {
            assert!(
                !raw.contains(needle.as_str()),
                "{needle:?} in a reply:\n{raw}"
            );
        }
        // The decoded parts too (base64 would hide a leak from the check above).
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.data)
            .unwrap();
        // The machine's name, as a word, in any header (signature values aside) or the text.
        if !machine.is_empty() && machine != "localhost" {
            let visible: Vec<String> = parsed
                .headers_raw()
                .filter(|(name, _)| !name.eq_ignore_ascii_case("DKIM-Signature"))
                .map(|(name, value)| format!("{name}: {value}"))
                .chain(parsed.body_text(0).map(|t| t.into_owned()))
                .chain([reply.ehlo.clone(), reply.mail_from.clone()])
                .collect();
            for text in visible {
                assert!(
                    !text
                        .split(|c: char| !c.is_alphanumeric() && c != '-')
                        .any(|word| word.eq_ignore_ascii_case(machine)),
                    "the host name {machine:?} in {text:?}"
                );
            }
        }
        assert_eq!(parsed.attachment_count(), 2, "the PGP key was removed");
        for part in parsed.attachments() {
            let contents = part.contents();
            for needle in ["Jan Jansen", "Exif", "GPS", "Microsoft"] {
                assert!(
                    !contents
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes()),
                    "{needle} in attachment {:?}",
                    part.attachment_name()
                );
            }
        }
        let from = parsed.from().unwrap().first().unwrap();
        assert_eq!(from.name(), Some("LET-medewerker w300"));
        assert_eq!(from.address(), Some(worker.alias.as_str()));
        assert!(parsed.message_id().unwrap().ends_with("@relay.test"));
        assert_eq!(
            parsed.in_reply_to().as_text(),
            Some(original_id.trim_matches(['<', '>']))
        );
        // Two signatures, RSA first (tests/relay/dkim.rs verifies each on its own).
        assert!(
            raw.starts_with("DKIM-Signature: v=1; a=rsa-sha256; s=schuilnaam-rsa; d=relay.test;")
                && raw.contains(
                    "\r\nDKIM-Signature: v=1; a=ed25519-sha256; s=schuilnaam; d=relay.test;"
                ),
            "{raw}"
        );
        // Envelope: the signed return path on the relay domain; EHLO with the relay domain.
        assert!(
            reply.mail_from.starts_with("<bounce+") && reply.mail_from.ends_with("@relay.test>")
        );
        assert_eq!(reply.ehlo, "relay.test");
    }

    // Every reply carries a DKIM signature that verifies against the record `mail dkim-record`
    // publishes, served by a real DNS server: a receiving server's DMARC check passes.
    let records = app.core.dkim.dns_records().records;
    let published: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.name.as_str(), r.value.as_str()))
        .collect();
    let relay_dns = crate::mail_support::DnsServer::start(&published);
    let verifier =
        schuilnaam::mail::auth::Authenticator::new(Some(relay_dns.address), "mx.partner.test")
            .unwrap();
    for reply in &replies {
        let client = schuilnaam::mail::auth::Client {
            ip: None,
            helo: reply.ehlo.clone(),
            mail_from: reply.mail_from.trim_matches(['<', '>']).to_string(),
        };
        assert_eq!(
            verifier.verify(&reply.data, "relay.test", &client).await,
            schuilnaam::mail::auth::Verdict::Pass,
            "the relay's DKIM signature must verify"
        );
        // Altered in transit, it no longer does.
        let mut tampered = reply.data.clone();
        let at = tampered
            .windows(9)
            .position(|w| w == b"Reactie 1")
            .unwrap_or(tampered.len() - 10);
        tampered[at] = b'X';
        assert_eq!(
            verifier.verify(&tampered, "relay.test", &client).await,
            schuilnaam::mail::auth::Verdict::Fail
        );
    }
    app.stop().await;
}

/// POSTs a draft; returns the status and the JSON answer.
async fn post_draft(app: &TestApp, token: &str, path: &str, draft: Value) -> (u16, Value) {
    let response = app.post(token, path, &draft).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A reply draft with one attachment.
fn with_attachment(body: &str, filename: &str, content_type: &str, data: &[u8]) -> Value {
    json!({ "body": body, "attachments": [
        { "filename": filename, "content_type": content_type, "data": b64(data) }
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leak_guard_and_the_recipient_rules_refuse_with_a_reason() {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    let app = app_with_outbound(&world, Backend::Sqlite, &host).await;
    let (worker, token, inbound_id) = mailed_worker(&world, &app, "w310", "Vraag").await;
    let reply_path = format!("/v1/messages/{inbound_id}/reply");

    let page = b"BT /F1 12 Tf (Bereikbaar op 06 12345678) Tj ET";
    let pdf = format!(
        "%PDF-1.4\n1 0 obj\n<< /Length {} >>\nstream\n{}\nendstream\nendobj\n%%EOF\n",
        page.len(),
        String::from_utf8_lossy(page)
    );
    let mut docx = std::io::Cursor::new(Vec::new());
    {
        use std::io::Write as _;
        let mut zip = zip::ZipWriter::new(&mut docx);
        zip.start_file(
            "word/document.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(b"<w:p><w:r><w:t>Groet, Jan </w:t></w:r><w:r><w:t>Jansen</w:t></w:r></w:p>")
            .unwrap();
        zip.finish().unwrap();
    }
    let markers = app
        .client()
        .put(format!("{}/v1/markers", app.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "names": ["Jan Jansen"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(markers.status(), 200);
    let docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    // (what, draft, status, error code, a word the explanation must contain)
    let cases = [
        (
            "the enrolment phone (+31612345678) in a Dutch notation",
            json!({ "body": "Bel me op 06-12 34 56 78." }),
            422,
            "identity_leak",
            "phone number",
        ),
        (
            "the private e-mail address in a text attachment",
            with_attachment(
                "zie bijlage",
                "notitie.txt",
                "text/plain",
                b"mail: Medewerker@Example.nl",
            ),
            422,
            "identity_leak",
            "e-mail address",
        ),
        (
            "the phone number in a PDF's page text",
            with_attachment(
                "zie bijlage",
                "brief.pdf",
                "application/pdf",
                pdf.as_bytes(),
            ),
            422,
            "identity_leak",
            "phone number",
        ),
        (
            "the name in a Word document",
            with_attachment("zie bijlage", "brief.docx", docx_type, docx.get_ref()),
            422,
            "identity_leak",
            "name",
        ),
        (
            "empty once the PGP key is removed",
            with_attachment(
                " ",
                "sleutel.asc",
                "application/pgp-keys",
                b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
            ),
            400,
            "bad_request",
            "empty",
        ),
        (
            "a file type that cannot be cleaned",
            with_attachment(
                "zie bijlage",
                "film.mov",
                "video/quicktime",
                b"\0\0\0\x14ftypqt  ",
            ),
            422,
            "attachment_refused",
            "film.mov",
        ),
    ];
    for (what, draft, status, error, explained) in cases {
        let (got, body) = post_draft(&app, &token, &reply_path, draft).await;
        assert_eq!(
            (got, &body["error"]),
            (status, &json!(error)),
            "{what}: {body}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(explained),
            "{what}: {body}"
        );
    }

    // Only partners and allowed contacts can be written to.
    let new_mail =
        |to: &str| json!({ "from": worker.alias, "to": to, "subject": "Hallo", "body": "Tekst" });
    let refused = app
        .post(&token, "/v1/mail", &new_mail("iemand@elders.test"))
        .await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        json!("recipient_not_allowed")
    );
    // Not from someone else's alias either.
    let other = app.add_worker("w311").await;
    let foreign =
        json!({ "from": other.alias, "to": "team@jbwest.test", "subject": "x", "body": "y" });
    assert_eq!(app.post(&token, "/v1/mail", &foreign).await.status(), 403);
    // An allowed contact can be written to, from that alias.
    schuilnaam::partner::allow_contact(
        &app.core.store,
        &app.core.server_key,
        app.now(),
        &schuilnaam::audit::Actor::System,
        &schuilnaam::alias::Address::parse(&worker.alias).unwrap(),
        &schuilnaam::partner::Contact::Email(
            schuilnaam::mail::EmailAddress::parse("advocaat@kantoor.test").unwrap(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        app.post(&token, "/v1/mail", &new_mail("advocaat@kantoor.test"))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post(&token, "/v1/mail", &new_mail("team@jbwest.test"))
            .await
            .status(),
        202
    );

    let received = host.smarthost.wait_for(3).await;
    assert_eq!(to(&received, "advocaat@kantoor.test").len(), 1);
    assert_eq!(to(&received, "team@jbwest.test").len(), 1);
    // Nothing of the refused drafts was sent.
    assert!(received
        .iter()
        .all(|r| !String::from_utf8_lossy(&r.data).contains("06-12")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smarthost_with_an_untrusted_certificate_gets_nothing() {
    let world = MailWorld::new();
    let host = smarthost(false).await;
    let app = app_with_outbound(&world, Backend::Sqlite, &host).await;
    let (_, token, inbound_id) = mailed_worker(&world, &app, "w320", "Vraag").await;
    let queued = app
        .post(
            &token,
            &format!("/v1/messages/{inbound_id}/reply"),
            &json!({ "body": "Antwoord" }),
        )
        .await;
    assert_eq!(queued.status(), 202);
    // The sender tries (the notification and the reply), fails the TLS check (not the connection:
    // the smarthost listens), and keeps them queued.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let tried: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbound_messages WHERE attempts >= 1 AND state = 'queued' AND last_error = 'tls'",
        )
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
        if tried == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sender did not try"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        host.smarthost.messages().is_empty(),
        "nothing crossed an unverified connection"
    );
    app.stop().await;
}

/// The queue row of the reply to `recipient`-bound mail: (state, attempts, last_error), polled until
/// `done` holds for it (bounded).
async fn wait_for_outbound(
    app: &TestApp,
    kind: &str,
    done: impl Fn(&str, i64, &str) -> bool,
) -> (String, i64, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT state, attempts, COALESCE(last_error, '') FROM outbound_messages \
             WHERE kind = $1 ORDER BY created_at DESC",
        )
        .bind(kind)
        .fetch_all(app.core.store.pool())
        .await
        .unwrap();
        if let Some(row) = rows.into_iter().next() {
            if done(&row.0, row.1, &row.2) {
                return row;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the {kind} never reached the expected state"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_are_retried_and_given_up_with_a_notice() {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    host.smarthost.set_busy(true);
    let app = app_with_outbound(&world, Backend::Sqlite, &host).await;
    let (mut worker, token, inbound_id) = mailed_worker(&world, &app, "w350", "Vraag").await;
    let reply = |body: &str| json!({ "body": body });
    let path = format!("/v1/messages/{inbound_id}/reply");
    assert_eq!(
        app.post(&token, &path, &reply("Eerste")).await.status(),
        202
    );

    // The smarthost says "later": the reply stays queued with the status code, not the server text.
    let (state, attempts, error) = wait_for_outbound(&app, "reply", |_, attempts, error| {
        attempts >= 1 && !error.is_empty()
    })
    .await;
    assert_eq!(
        (state.as_str(), attempts, error.as_str()),
        ("queued", 1, "451")
    );
    // Before its backoff (60 s) has passed nothing is tried again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, attempts, _) = wait_for_outbound(&app, "reply", |_, _, _| true).await;
    assert_eq!(attempts, 1);
    // After it, the next attempt goes through.
    host.smarthost.set_busy(false);
    app.clock.advance(Duration::from_secs(61));
    let (state, attempts, _) =
        wait_for_outbound(&app, "reply", |state, _, _| state == "sent").await;
    assert_eq!((state.as_str(), attempts), ("sent", 2));
    assert_eq!(
        to(&host.smarthost.wait_for(1).await, "team@jbwest.test").len(),
        1
    );

    // A reply the smarthost keeps deferring for longer than give_up_after_seconds is given up, and
    // the worker finds "niet afgeleverd" in the mailbox.
    host.smarthost.set_busy(true);
    assert_eq!(
        app.post(&token, &path, &reply("Tweede")).await.status(),
        202
    );
    wait_for_outbound(&app, "reply", |state, attempts, error| {
        state == "queued" && attempts >= 1 && !error.is_empty()
    })
    .await;
    app.clock.advance(Duration::from_secs(3 * 86_400 + 1));
    let (state, _, error) = wait_for_outbound(&app, "reply", |state, _, _| state == "failed").await;
    assert_eq!((state.as_str(), error.as_str()), ("failed", "451"));
    // Three days on, the session has long expired.
    let token = app.login(&mut worker).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let notice = loop {
        let list = app.messages(&token).await;
        if let Some(notice) = list.iter().find(|m| m["id"] != json!(inbound_id)) {
            break notice["id"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "no notice");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let opened: Value = app.open_message(&token, &notice).await;
    assert_eq!(opened["subject"], json!("Niet afgeleverd: Re: Vraag"));
    assert_eq!(to(&host.smarthost.messages(), "team@jbwest.test").len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_content_free_constant_and_rate_limited() {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    let app = app_with_outbound(&world, Backend::Sqlite, &host).await;
    let worker = app.add_worker("w330").await;
    partner_mails(&world, &app, &worker, "GEHEIM-ONDERWERP-1");
    partner_mails(&world, &app, &worker, "GEHEIM-ONDERWERP-2");
    let first = host.smarthost.wait_for(1).await;
    // The second message came within the interval: still one notification.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(host.smarthost.messages().len(), 1);
    // After the interval a new message notifies again.
    app.clock.advance(Duration::from_secs(301));
    partner_mails(&world, &app, &worker, "GEHEIM-ONDERWERP-3");
    let both = host.smarthost.wait_for(2).await;
    let notices: Vec<_> = both
        .iter()
        .map(|r| String::from_utf8_lossy(&r.data).into_owned())
        .collect();
    for (notice, received) in notices.iter().zip(&both) {
        assert_eq!(
            received.rcpt_to,
            vec!["<medewerker@example.nl>".to_string()]
        );
        assert!(notice.contains("Subject: Nieuw bericht in je postvak\r\n"));
        for secret in [
            "GEHEIM",
            "jbwest",
            "Team West",
            worker.alias.as_str(),
            "Graag reactie",
        ] {
            assert!(!notice.contains(secret), "{secret} in notice:\n{notice}");
        }
    }
    assert_eq!(notices[0].len(), notices[1].len(), "same length every time");
    assert_eq!(first.len(), 1);
    app.stop().await;
}

async fn replies_reach_the_partner_and_bounces_come_back(backend: Backend) {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    // On the relay domain `relay.test`, whose SPF record vouches for the smarthost's address: the
    // host that writes the delivery report below.
    let app = app_with_outbound_on(&world, backend, &host, "relay.test").await;
    let (_, token, inbound_id) = mailed_worker(&world, &app, "w340", "Overdracht").await;
    let queued = app
        .post(
            &token,
            &format!("/v1/messages/{inbound_id}/reply"),
            &json!({ "body": "Antwoord" }),
        )
        .await;
    assert_eq!(queued.status(), 202);
    let received = host.smarthost.wait_for(2).await;
    let reply = to(&received, "team@jbwest.test").pop().unwrap();
    let return_path = reply.mail_from.trim_matches(['<', '>']).to_string();

    // An out-of-office reply and a person writing back to the return path are taken and dropped:
    // neither is a failure, neither tells the worker anything.
    let vacation = format!(
        "From: team@jbwest.test\r\nTo: {return_path}\r\nAuto-Submitted: auto-replied\r\n\
         Subject: Afwezig\r\n\r\nIk ben tot maandag afwezig.\r\n"
    );
    let (_, transcript) = swaks(app.smtp_addr, "<>", &return_path, &vacation, &["--tls"]);
    assert_eq!(data_reply(&transcript), "250 2.0.0 Message accepted");
    let person = format!(
        "From: team@jbwest.test\r\nTo: {return_path}\r\nSubject: Re: Overdracht\r\n\r\nDank!\r\n"
    );
    let (_, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        &return_path,
        &person,
        &["--tls"],
    );
    assert_eq!(data_reply(&transcript), "250 2.0.0 Message accepted");
    assert_eq!(app.messages(&token).await.len(), 1, "no notice for either");

    // The partner's server bounces it to the return path, from the null sender.
    let bounce = format!(
        "From: MAILER-DAEMON@jbwest.test\r\nTo: {return_path}\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\n\
         The mailbox team@jbwest.test does not exist.\r\n"
    );
    let (_, transcript) = swaks(app.smtp_addr, "<>", &return_path, &bounce, &["--tls"]);
    assert_eq!(
        data_reply(&transcript),
        "250 2.0.0 Message accepted",
        "{transcript}"
    );
    let list = app.messages(&token).await;
    assert_eq!(list.len(), 2);
    let notice_id = list.iter().find(|m| m["id"] != json!(inbound_id)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let notice: Value = app.open_message(&token, &notice_id).await;
    assert_eq!(notice["subject"], json!("Niet afgeleverd: Re: Overdracht"));
    assert!(notice["body"]
        .as_str()
        .unwrap()
        .contains("team@jbwest.test"));

    // A forged or replayed return path is refused like any unknown address: no backscatter.
    let forged = return_path.replacen("bounce+", "bounce+0", 1);
    let (_, transcript) = swaks(app.smtp_addr, "<>", &forged, &bounce, &["--tls"]);
    assert_eq!(data_reply(&transcript), "550 5.7.1 Message refused");
    let (_, transcript) = swaks(app.smtp_addr, "<>", &return_path, &bounce, &["--tls"]);
    assert_eq!(
        data_reply(&transcript),
        "550 5.7.1 Message refused",
        "a second bounce for the same message"
    );
    assert_eq!(app.messages(&token).await.len(), 2);
    app.stop().await;
}

/// A failure report to a worker's return path from a host that neither the recipient's domain nor the
/// relay's own vouches for by SPF (here: an address handed over by a trusted proxy with XFORWARD)
/// changes nothing: no notice, the message not marked, counted and audited. A vouched-for report
/// changes the state, and the worker's notice is written by the relay: the status code, never the
/// report's text or links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_vouched_for_reports_mark_a_reply_and_the_notice_quotes_nothing_of_them() {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    let app = app_with_outbound_adjusted(&world, Backend::Sqlite, &host, "relay.test", |c| {
        c.smtp.require_tls = false;
        c.smtp.xforward_from = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let (_, token, inbound_id) = mailed_worker(&world, &app, "w341", "Zitting").await;
    let queued = app
        .post(
            &token,
            &format!("/v1/messages/{inbound_id}/reply"),
            &json!({ "body": "Antwoord" }),
        )
        .await;
    assert_eq!(queued.status(), 202);
    let received = host.smarthost.wait_for(2).await;
    let reply = to(&received, "team@jbwest.test").pop().unwrap();
    let return_path = reply.mail_from.trim_matches(['<', '>']).to_string();
    let phishing = "Bel direct 0900-1234 of log in op https://schuilnaam-login.evil.example";
    let report = format!(
        "From: MAILER-DAEMON@jbwest.test\r\nTo: {return_path}\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\n{phishing}\r\n\
         --b\r\nContent-Type: message/delivery-status\r\n\r\n\
         Reporting-MTA: dns; evil.example\r\n\r\n\
         Final-Recipient: rfc822; team@jbwest.test\r\nAction: failed\r\n\
         Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 {phishing}\r\n\r\n--b--\r\n"
    );
    let send_report = |xforward: Option<&'static str>| {
        let report = report.clone();
        let return_path = return_path.clone();
        let address = app.smtp_addr;
        async move {
            let mut client = RawSmtp::connect(address).await;
            assert!(client.command("EHLO mx.test").await.starts_with("250"));
            if let Some(attributes) = xforward {
                let answer = client.command(&format!("XFORWARD {attributes}")).await;
                assert!(answer.starts_with("250"), "{answer}");
            }
            assert!(client.command("MAIL FROM:<>").await.starts_with("250"));
            let rcpt = client.command(&format!("RCPT TO:<{return_path}>")).await;
            assert!(rcpt.starts_with("250"), "{rcpt}");
            client.data(report.as_bytes()).await
        }
    };

    // From a host no SPF record vouches for: taken (no backscatter), but nothing changes.
    let unvouched = send_report(Some("ADDR=198.51.100.7 HELO=mx.evil.example")).await;
    assert_eq!(unvouched, "250 2.0.0 Message accepted");
    assert_eq!(app.messages(&token).await.len(), 1, "no notice");
    assert_eq!(app.metric("bounces_unverified_total").await, 1);
    assert_eq!(app.metric("bounces_total").await, 0);
    app.flush_audit().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'mail.bounce_unverified'",
    )
    .fetch_one(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let state: String =
        sqlx::query_scalar("SELECT state FROM outbound_messages WHERE kind = 'reply'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    assert_eq!(
        state, "sent",
        "the reply is not marked by an unvouched report"
    );

    // Through the trusted proxy without the client's address: SPF cannot be judged, nothing changes.
    assert_eq!(send_report(None).await, "250 2.0.0 Message accepted");
    assert_eq!(app.metric("bounces_unverified_total").await, 2);
    assert_eq!(app.messages(&token).await.len(), 1, "no notice");

    // From 127.0.0.1, which the relay domain's SPF record names: the reply is marked, and the notice
    // says what the relay knows, in its own words.
    let vouched = send_report(Some("ADDR=127.0.0.1 HELO=mx.jbwest.test")).await;
    assert_eq!(vouched, "250 2.0.0 Message accepted");
    assert_eq!(app.metric("bounces_total").await, 1);
    let list = app.messages(&token).await;
    assert_eq!(list.len(), 2);
    let notice_id = list.iter().find(|m| m["id"] != json!(inbound_id)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let notice = app.open_message(&token, &notice_id).await;
    let shown = notice.to_string();
    assert!(shown.contains("5.1.1"), "the status code is shown: {shown}");
    for quoted in ["evil.example", "0900-1234", "Bel direct", "log in op"] {
        assert!(
            !shown.contains(quoted),
            "{quoted:?} from the report reached the worker: {shown}"
        );
    }
    app.stop().await;
}
