//! Inbound mail: a real SMTP client (swaks) over STARTTLS, sender authentication against a real DNS
//! server on loopback, enumeration-resistant refusals, bad input.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp};
use crate::mail_support::{data_reply, partner_message, swaks, DnsServer, PartnerKey, RawSmtp};
use crate::on_both_backends;

on_both_backends!(
    signed_partner_mail_is_delivered_over_starttls,
    who_may_write_matrix_against_real_dns,
);

/// DNS for the test partner domains:
/// - `jbwest.test`: DKIM key `sel`, DMARC p=reject, SPF allowing nobody (DKIM must carry it);
/// - `spfok.test`: SPF allows 127.0.0.1, DMARC p=reject, no DKIM;
/// - `nodmarc.test`: DKIM key `sel`, no DMARC record;
/// - `unreg.test`: DKIM and DMARC fine, but no organisation registered it;
/// - `family.test`: DKIM for an allowed contact, DMARC p=none.
pub struct MailWorld {
    pub dns: DnsServer,
    pub jbwest: PartnerKey,
    pub nodmarc: PartnerKey,
    pub unreg: PartnerKey,
    pub family: PartnerKey,
    pub stranger: PartnerKey,
}

impl MailWorld {
    pub fn new() -> Self {
        let jbwest = PartnerKey::generate();
        let nodmarc = PartnerKey::generate();
        let unreg = PartnerKey::generate();
        let family = PartnerKey::generate();
        let stranger = PartnerKey::generate();
        let records = [
            ("sel._domainkey.jbwest.test", jbwest.record()),
            ("_dmarc.jbwest.test", "v=DMARC1; p=reject".to_string()),
            ("jbwest.test", "v=spf1 -all".to_string()),
            ("spfok.test", "v=spf1 ip4:127.0.0.1 -all".to_string()),
            ("_dmarc.spfok.test", "v=DMARC1; p=reject".to_string()),
            ("sel._domainkey.nodmarc.test", nodmarc.record()),
            ("sel._domainkey.unreg.test", unreg.record()),
            ("_dmarc.unreg.test", "v=DMARC1; p=reject".to_string()),
            ("sel._domainkey.family.test", family.record()),
            ("_dmarc.family.test", "v=DMARC1; p=none".to_string()),
            // The relay's own domain vouches for its smarthost, which writes most delivery reports.
            ("relay.test", "v=spf1 ip4:127.0.0.1 -all".to_string()),
        ];
        let borrowed: Vec<(&str, &str)> = records.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Self {
            dns: DnsServer::start(&borrowed),
            jbwest,
            nodmarc,
            unreg,
            family,
            stranger,
        }
    }

    /// A relay taking plain SMTP (as behind a Postfix that did TLS), with `adjust` applied, and the
    /// SPF-authenticated partner `spfok.test` registered: for tests about the input, not the sender.
    pub async fn plain_app(&self, adjust: impl FnOnce(&mut schuilnaam::Config)) -> TestApp {
        let resolver = self.dns.address.to_string();
        let app = TestApp::spawn_with(Backend::Sqlite, move |c| {
            c.dns.resolver = resolver;
            c.smtp.require_tls = false;
            adjust(c);
        })
        .await;
        app.add_mail_partner("Politie SPF", "spfok.test").await;
        app
    }

    pub async fn app(&self, backend: Backend) -> TestApp {
        let resolver = self.dns.address.to_string();
        let app = TestApp::spawn_with(backend, move |c| c.dns.resolver = resolver).await;
        app.add_mail_partner("Jeugdbescherming West", "jbwest.test")
            .await;
        app.add_mail_partner("Politie SPF", "spfok.test").await;
        app.add_mail_partner("GI Zonder DMARC", "nodmarc.test")
            .await;
        app
    }
}

async fn signed_partner_mail_is_delivered_over_starttls(backend: Backend) {
    let world = MailWorld::new();
    let app = world.app(backend).await;
    let mut worker = app.add_worker("w200").await;
    let message = world.jbwest.sign(
        &partner_message(
            "Team West <team@jbwest.test>",
            &worker.alias,
            "SPOED: aanmelding",
            "Graag vandaag contact.",
        ),
        "jbwest.test",
        "sel",
    );
    let (ok, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        &worker.alias,
        &message,
        &["--tls"],
    );
    assert_eq!(
        data_reply(&transcript),
        "250 2.0.0 Message accepted",
        "{:?}",
        refusals(&app).await
    );
    assert!(ok, "{transcript}");
    assert!(transcript.contains("STARTTLS"), "{transcript}");

    let token = app.login(&mut worker).await;
    let list = app.messages(&token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["channel"], json!("mail"));
    assert_eq!(list[0]["urgent"], json!(true));
    assert_eq!(list[0]["from_organisation"], json!("Jeugdbescherming West"));
    let id = list[0]["id"].as_str().unwrap();
    let opened: Value = app.open_message(&token, id).await;
    assert_eq!(opened["subject"], json!("SPOED: aanmelding"));
    assert_eq!(
        opened["body"].as_str().unwrap().trim(),
        "Graag vandaag contact."
    );
    app.stop().await;
}

/// The audit details of every refusal so far (for assertion messages).
/// The audited refusals (their details), once the queued audit rows are written.
pub async fn refusals(app: &TestApp) -> Vec<String> {
    app.flush_audit().await;
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'message.refused' ORDER BY seq")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap()
}

/// One row of the matrix: what is sent, and whether it must be accepted.
struct Case {
    what: &'static str,
    mail_from: String,
    rcpt: String,
    message: String,
    accepted: bool,
}

async fn who_may_write_matrix_against_real_dns(backend: Backend) {
    let world = MailWorld::new();
    let app = world.app(backend).await;
    let worker = app.add_worker("w210").await;
    let other = app.add_worker("w211").await;
    let burned = app.add_worker("w212").await;
    schuilnaam::alias::burn_audited(
        &app.core.store,
        app.now(),
        &schuilnaam::audit::Actor::System,
        &schuilnaam::alias::Address::parse(&burned.alias).unwrap(),
    )
    .await
    .unwrap();
    // A mother may write to this one alias of the worker's.
    schuilnaam::partner::allow_contact(
        &app.core.store,
        &app.core.server_key,
        app.now(),
        &schuilnaam::audit::Actor::System,
        &schuilnaam::alias::Address::parse(&worker.alias).unwrap(),
        &schuilnaam::partner::Contact::Email(
            schuilnaam::mail::EmailAddress::parse("moeder@family.test").unwrap(),
        ),
    )
    .await
    .unwrap();

    let signed = |key: &PartnerKey, from: &str, to: &str, d: &str| {
        key.sign(&partner_message(from, to, "Bericht", "Tekst"), d, "sel")
    };
    let plain = |from: &str, to: &str| partner_message(from, to, "Bericht", "Tekst");
    let case = |what, mail_from: &str, rcpt: &str, message: String, accepted| Case {
        what,
        mail_from: mail_from.to_string(),
        rcpt: rcpt.to_string(),
        message,
        accepted,
    };
    let w = worker.alias.as_str();
    let cases = vec![
        case(
            "partner, aligned DKIM",
            "team@jbwest.test",
            w,
            signed(&world.jbwest, "team@jbwest.test", w, "jbwest.test"),
            true,
        ),
        case(
            "partner, aligned SPF",
            "team@spfok.test",
            w,
            plain("team@spfok.test", w),
            true,
        ),
        case(
            "partner without DMARC record, DKIM on the same domain",
            "x@nodmarc.test",
            w,
            signed(&world.nodmarc, "x@nodmarc.test", w, "nodmarc.test"),
            true,
        ),
        case(
            "allowed contact, on that alias",
            "moeder@family.test",
            w,
            signed(&world.family, "moeder@family.test", w, "family.test"),
            true,
        ),
        case(
            "no signature, SPF fails, DMARC p=reject",
            "team@jbwest.test",
            w,
            plain("team@jbwest.test", w),
            false,
        ),
        case(
            "signed with the wrong key",
            "team@jbwest.test",
            w,
            signed(&world.stranger, "team@jbwest.test", w, "jbwest.test"),
            false,
        ),
        case(
            "signature of another domain (unaligned)",
            "team@jbwest.test",
            w,
            signed(&world.unreg, "team@jbwest.test", w, "unreg.test"),
            false,
        ),
        case(
            "unregistered domain, everything valid",
            "x@unreg.test",
            w,
            signed(&world.unreg, "x@unreg.test", w, "unreg.test"),
            false,
        ),
        case(
            "allowed contact, other alias",
            "moeder@family.test",
            &other.alias,
            signed(
                &world.family,
                "moeder@family.test",
                &other.alias,
                "family.test",
            ),
            false,
        ),
        case(
            "allowed contact's address, unauthenticated",
            "moeder@family.test",
            w,
            plain("moeder@family.test", w),
            false,
        ),
        case(
            "partner, unknown alias",
            "team@jbwest.test",
            "nietbestaand@relay.localhost",
            signed(
                &world.jbwest,
                "team@jbwest.test",
                "nietbestaand@relay.localhost",
                "jbwest.test",
            ),
            false,
        ),
        case(
            "partner, burned alias",
            "team@jbwest.test",
            &burned.alias,
            signed(
                &world.jbwest,
                "team@jbwest.test",
                &burned.alias,
                "jbwest.test",
            ),
            false,
        ),
    ];
    let mut refusal_transcripts = Vec::new();
    for case in &cases {
        let (_, transcript) = swaks(
            app.smtp_addr,
            &case.mail_from,
            &case.rcpt,
            &case.message,
            &["--tls"],
        );
        let reply = data_reply(&transcript);
        if case.accepted {
            assert_eq!(
                reply,
                "250 2.0.0 Message accepted",
                "{}: {:?}",
                case.what,
                refusals(&app).await
            );
        } else {
            assert_eq!(reply, "550 5.7.1 Message refused", "{}", case.what);
            // Refused at the same stage: the recipient was accepted like any other.
            assert!(
                transcript.contains("<~  250 2.1.5 OK"),
                "{}: {transcript}",
                case.what
            );
            refusal_transcripts.push(reply);
        }
    }
    assert!(refusal_transcripts.windows(2).all(|w| w[0] == w[1]));
    let stored = app.stored_messages().await;
    assert_eq!(stored as usize, cases.iter().filter(|c| c.accepted).count());
    // Every refusal is audited; the reasons tell the cases apart for the operator only.
    let reasons = refusals(&app).await;
    assert_eq!(reasons.len(), refusal_transcripts.len());
    assert!(reasons.iter().any(|r| r.contains("reason=unknown-sender")));
    assert!(reasons.iter().any(|r| r.contains("reason=unknown-alias")));
    assert!(reasons.iter().any(|r| r.contains("reason=burned-alias")));
    // Nothing about the sender: a refused sender's domain may be a family's own.
    assert!(reasons.iter().all(|r| !r.contains(".test")), "{reasons:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_required_and_only_relay_domains_are_accepted() {
    let world = MailWorld::new();
    let app = world.app(Backend::Sqlite).await;
    let worker = app.add_worker("w220").await;
    let message = world.jbwest.sign(
        &partner_message("team@jbwest.test", &worker.alias, "s", "b"),
        "jbwest.test",
        "sel",
    );
    // Without STARTTLS the relay will not take MAIL.
    let (ok, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        &worker.alias,
        &message,
        &[],
    );
    assert!(!ok);
    assert!(
        transcript.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{transcript}"
    );
    // Another domain is not relayed.
    let (ok, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        "someone@elsewhere.test",
        &message,
        &["--tls"],
    );
    assert!(!ok);
    assert!(
        transcript.contains("550 5.7.1 Relaying denied"),
        "{transcript}"
    );
    assert_eq!(app.stored_messages().await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_replies_and_nothing_is_stored() {
    let world = MailWorld::new();
    let app = world
        .plain_app(|c| {
            c.smtp.max_message_bytes = 200 * 1024;
            c.smtp.data_timeout_seconds = 2;
        })
        .await;
    let worker = app.add_worker("w230").await;
    let to = worker.alias.clone();

    let good = partner_message("team@spfok.test", &worker.alias, "Goed", "In orde");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| ((i * 7919) % 251) as u8 | 0x80)
        .collect();
    let long_header = format!(
        "From: team@spfok.test\r\nTo: {to}\r\nSubject: {}\r\n\r\nx\r\n",
        "x".repeat(100 * 1024),
        to = worker.alias
    );
    let too_big = partner_message(
        "team@spfok.test",
        &worker.alias,
        "Groot",
        &"y".repeat(250 * 1024),
    );
    let mut nested = String::from("binnenste\r\n");
    for level in (0..100).rev() {
        nested = format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n--b{level}\r\n{nested}\r\n--b{level}--\r\n"
        );
    }
    let nested = format!(
        "From: team@spfok.test\r\nTo: {}\r\nSubject: diep\r\nMIME-Version: 1.0\r\n{nested}",
        worker.alias
    );
    let bad_base64 = format!(
        "From: team@spfok.test\r\nTo: {}\r\nSubject: b64\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhoi\r\n\
         --x\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!niet base64***\r\n--x--\r\n",
        worker.alias
    );
    let with_nul = "From: team@spfok.test\r\nSubject: nul\r\n\r\nvoor\0na\r\n".to_string();
    let two_from = format!(
        "From: team@spfok.test\r\nFrom: moeder@family.test\r\nTo: {}\r\nSubject: twee\r\n\r\nx\r\n",
        worker.alias
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "8-bit garbage",
            garbage,
            "554 5.6.0 Message refused: the message does not start with a header section",
        ),
        (
            "100 KB header line",
            long_header.into_bytes(),
            "554 5.6.0 Message refused: a header line is longer than 998 characters",
        ),
        (
            "over the size limit",
            too_big.into_bytes(),
            "552 5.3.4 Message too big",
        ),
        (
            "MIME nested 100 deep",
            nested.into_bytes(),
            "554 5.6.0 Message refused: MIME parts are nested more than 20 levels deep",
        ),
        (
            "invalid base64",
            bad_base64.into_bytes(),
            "554 5.6.0 Message refused: a base64-encoded part is not valid base64",
        ),
        (
            "NUL bytes",
            with_nul.into_bytes(),
            "554 5.6.0 Message refused: the message contains NUL bytes",
        ),
        (
            "two From fields",
            two_from.into_bytes(),
            "554 5.6.0 Message refused: the message has more than one From address",
        ),
    ];
    let mut client = RawSmtp::connect(app.smtp_addr).await;
    for (what, message, expected) in cases {
        start_transaction(&mut client, &to).await;
        assert_eq!(client.data(&message).await, expected, "{what}");
    }
    assert_eq!(app.stored_messages().await, 0, "nothing stored");

    // 10,000 recipients, pipelined: the first is taken, every other one is told to come back.
    assert!(client
        .command("MAIL FROM:<team@spfok.test>")
        .await
        .starts_with("250"));
    let mut flood = format!("RCPT TO:<{}>\r\n", worker.alias);
    for i in 1..10_000 {
        flood.push_str(&format!("RCPT TO:<extra{i}@relay.localhost>\r\n"));
    }
    client.send(flood.as_bytes()).await;
    assert_eq!(client.reply().await, "250 2.1.5 OK");
    for _ in 1..10_000 {
        assert_eq!(
            client.reply().await,
            "452 4.5.3 One recipient per message, please send the others separately"
        );
    }
    assert_eq!(
        client.data(good.as_bytes()).await,
        "250 2.0.0 Message accepted"
    );
    assert_eq!(app.stored_messages().await, 1);

    // A DATA phase that never ends is cut off (data_timeout_seconds = 2 here) although the client
    // never falls silent: the limit is on the whole DATA phase, not on idle time.
    let mut trickler = RawSmtp::connect(app.smtp_addr).await;
    start_transaction(&mut trickler, &to).await;
    assert!(trickler.command("DATA").await.starts_with("354"));
    let (reply, chunks) = trickler
        .trickle_until_reply(b"nog een regel\r\n", Duration::from_millis(100), 300)
        .await;
    assert_eq!(
        reply,
        "421 4.4.2 Timeout while receiving data, closing connection"
    );
    assert!(chunks > 5, "the client kept sending ({chunks} chunks)");
    assert_eq!(app.stored_messages().await, 1);

    // Commands that make no sense get clear replies; too many of them end the session.
    let mut confused = RawSmtp::connect(app.smtp_addr).await;
    assert_eq!(
        confused.command("MAIL FROM:<a@b.test>").await,
        "503 5.5.1 Send EHLO first"
    );
    assert_eq!(confused.command("EHLO x").await, "250 STARTTLS");
    assert_eq!(
        confused.command("RCPT TO:<x@relay.localhost>").await,
        "503 5.5.1 Send MAIL first"
    );
    assert_eq!(
        confused.command("DATA").await,
        "503 5.5.1 Send MAIL and RCPT first"
    );
    assert_eq!(
        confused.command("VRFY w230").await,
        "252 2.5.2 Cannot VRFY user, but will accept message"
    );
    for _ in 0..7 {
        assert_eq!(
            confused.command("HOKUSPOKUS").await,
            "500 5.5.2 Command not recognised"
        );
    }
    // Ten errors: the next command, whatever it is, ends the session.
    assert_eq!(
        confused.command("NOOP").await,
        "421 4.7.0 Too many errors, closing connection"
    );
    assert_eq!(confused.reply().await, "", "the connection is closed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_deferred_by_sessions_rate_and_memory_limits() {
    let world = MailWorld::new();
    let app = world
        .plain_app(|c| {
            c.smtp.max_sessions_per_address = 2;
            c.smtp.max_messages_per_minute_per_address = 5;
            c.smtp.max_message_bytes = 128 * 1024;
            c.smtp.max_data_memory_bytes = 128 * 1024;
        })
        .await;
    let worker = app.add_worker("w240").await;
    let to = worker.alias.clone();

    // Two sessions from one address are served; a third is told to come back.
    let mut first = RawSmtp::connect(app.smtp_addr).await;
    let mut second = RawSmtp::connect(app.smtp_addr).await;
    let mut third =
        tokio::io::BufReader::new(tokio::net::TcpStream::connect(app.smtp_addr).await.unwrap());
    let mut greeting = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut third, &mut greeting)
        .await
        .unwrap();
    assert_eq!(
        greeting.trim_end(),
        "421 4.7.0 Too many connections from your address"
    );

    // The memory budget (two 64 KiB steps) is shared: while the first session holds 100 KB of an
    // unfinished DATA, the second's 70 KB message does not fit and is deferred (452), not lost or
    // half-stored.
    start_transaction(&mut first, &to).await;
    assert!(first.command("DATA").await.starts_with("354"));
    let held = partner_message("team@spfok.test", &to, "Eerste", &lines('a', 100));
    first.send(held.as_bytes()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while app.smtp_budget_held_bytes().await < 128 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never read the first DATA"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second_message = partner_message("team@spfok.test", &to, "Tweede", &lines('b', 70));
    start_transaction(&mut second, &to).await;
    assert_eq!(
        second.data(second_message.as_bytes()).await,
        "452 4.3.1 Insufficient system storage, please try again later"
    );
    first.send(b"\r\n.\r\n").await;
    assert_eq!(first.reply().await, "250 2.0.0 Message accepted");
    // The budget is given back once the message is stored: the retry goes through.
    assert!(second
        .command("MAIL FROM:<team@spfok.test>")
        .await
        .starts_with("250"));
    assert!(second
        .command(&format!("RCPT TO:<{to}>"))
        .await
        .starts_with("250"));
    assert_eq!(
        second.data(second_message.as_bytes()).await,
        "250 2.0.0 Message accepted"
    );
    assert_eq!(app.smtp_budget_held_bytes().await, 0);
    assert_eq!(app.stored_messages().await, 2);

    // Five messages a minute from one address (three MAILs so far); the sixth waits.
    for _ in 0..2 {
        assert_eq!(
            first.command("MAIL FROM:<team@spfok.test>").await,
            "250 2.1.0 OK"
        );
        assert!(first.command("RSET").await.starts_with("250"));
    }
    assert_eq!(
        first.command("MAIL FROM:<team@spfok.test>").await,
        "451 4.7.1 Too many messages, please try again later"
    );
    // A minute later the window is fresh.
    app.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        first.command("MAIL FROM:<team@spfok.test>").await,
        "250 2.1.0 OK"
    );

    // A session that ends makes room for a new one.
    assert!(second.command("QUIT").await.starts_with("221"));
    let mut admitted = None;
    for _ in 0..100 {
        let mut next =
            tokio::io::BufReader::new(tokio::net::TcpStream::connect(app.smtp_addr).await.unwrap());
        let mut greeting = String::new();
        tokio::io::AsyncBufReadExt::read_line(&mut next, &mut greeting)
            .await
            .unwrap();
        if greeting.starts_with("220") {
            admitted = Some(greeting);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted.is_some(), "a freed session slot is reused");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("schuilnaam_smtp_sessions_refused_total "),
        "{metrics}"
    );
    assert!(!metrics.contains("schuilnaam_smtp_sessions_refused_total 0\n"));
    assert!(
        metrics.contains("schuilnaam_smtp_data_deferred_total 1\n"),
        "{metrics}"
    );
    app.stop().await;
}

/// `count` lines of 1,000 bytes (998 characters, the longest line SMTP allows, and CRLF).
fn lines(letter: char, count: usize) -> String {
    format!("{}\r\n", letter.to_string().repeat(998)).repeat(count)
}

/// A fresh transaction from an authorised sender (SPF-aligned), so that only the input is at fault.
async fn start_transaction(client: &mut RawSmtp, to: &str) {
    assert!(client.command("EHLO client.test").await.starts_with("250"));
    assert!(client
        .command("MAIL FROM:<team@spfok.test>")
        .await
        .starts_with("250"));
    assert!(client
        .command(&format!("RCPT TO:<{to}>"))
        .await
        .starts_with("250"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisations_own_their_domains_and_subdomains() {
    use schuilnaam::partner::by_mail_domain;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_mail_partner("Jeugdbescherming West", "jbwest.test")
        .await;
    app.add_mail_partner("JBW Regio Zuid", "zuid.jbwest.test")
        .await;
    let store = &app.core.store;
    let owner = |found: Option<schuilnaam::partner::Partner>| found.map(|p| p.name);
    let cases = [
        ("jbwest.test", Some("Jeugdbescherming West")),
        ("JBWest.Test", Some("Jeugdbescherming West")),
        ("mail.jbwest.test", Some("Jeugdbescherming West")),
        // The most specific registration wins.
        ("zuid.jbwest.test", Some("JBW Regio Zuid")),
        ("a.b.zuid.jbwest.test", Some("JBW Regio Zuid")),
        // Look-alikes are nobody's.
        ("jbwest.test.evil.test", None),
        ("notjbwest.test", None),
        ("test", None),
    ];
    for (domain, expected) in cases {
        assert_eq!(
            owner(by_mail_domain(store, domain).await.unwrap()).as_deref(),
            expected,
            "{domain}"
        );
    }
    // A disabled organisation owns nothing; its parent domain's owner takes over.
    app.disable_organisation("JBW Regio Zuid").await;
    assert_eq!(
        owner(by_mail_domain(store, "zuid.jbwest.test").await.unwrap()).as_deref(),
        Some("Jeugdbescherming West")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_message_in_progress_then_closes() {
    let world = MailWorld::new();
    let app = world.plain_app(|_| {}).await;
    let worker = app.add_worker("w250").await;
    let smtp_addr = app.smtp_addr;
    // Counted through a connection of our own: the relay closes its pool once it has stopped, which
    // may be before this test looks.
    let observer = schuilnaam::store::Store::open(&app.config.database.url, 1)
        .await
        .unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM messages")
            .fetch_one(observer.pool())
            .await
            .unwrap()
    };
    assert_eq!(stored().await, 0);

    // A message is half sent when the relay is told to stop.
    let mut client = RawSmtp::connect(smtp_addr).await;
    start_transaction(&mut client, &worker.alias).await;
    assert!(client.command("DATA").await.starts_with("354"));
    let message = partner_message("team@spfok.test", &worker.alias, "Laatste", "Net op tijd.");
    let (first_half, second_half) = message.as_bytes().split_at(message.len() / 2);
    client.send(first_half).await;
    let stopping = tokio::spawn(app.stop());
    // No new sessions from now on.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(smtp_addr).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the listener stays open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The message in progress is still taken, sealed and committed: nothing acknowledged is lost.
    client.send(second_half).await;
    client.send(b".\r\n").await;
    assert_eq!(client.reply().await, "250 2.0.0 Message accepted");
    assert_eq!(stored().await, 1);
    // Then the session is told to go.
    assert_eq!(
        client.command("NOOP").await,
        "421 4.3.2 Service shutting down"
    );
    stopping.await.unwrap();
    observer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_listed_and_downloaded_never_rendered() {
    let world = MailWorld::new();
    let app = world.app(Backend::Sqlite).await;
    let mut worker = app.add_worker("w260").await;
    let mut other = app.add_worker("w261").await;
    let report = b"%PDF-1.4\n% rapport\n%%EOF\n";
    let message = format!(
        "From: team@jbwest.test\r\nTo: {to}\r\nSubject: Rapport\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\n\
         Message-ID: <rapport@jbwest.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n\
         --b\r\nContent-Type: application/pdf; name=\"rapport.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"rapport.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {pdf}\r\n--b--\r\n",
        to = worker.alias,
        pdf = data_encoding::BASE64.encode(report)
    );
    let signed = world.jbwest.sign(&message, "jbwest.test", "sel");
    let (_, transcript) = swaks(
        app.smtp_addr,
        "team@jbwest.test",
        &worker.alias,
        &signed,
        &["--tls"],
    );
    assert_eq!(data_reply(&transcript), "250 2.0.0 Message accepted");
    let token = app.login(&mut worker).await;
    let id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let opened: Value = app.open_message(&token, &id).await;
    assert_eq!(
        opened["attachments"],
        json!([{ "filename": "rapport.pdf", "content_type": "application/pdf", "size": report.len() }])
    );
    let download = app
        .get(&token, &format!("/v1/messages/{id}/attachments/0"))
        .await;
    assert_eq!(download.status(), 200);
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert_eq!(download.bytes().await.unwrap().as_ref(), report);
    // No such attachment; not a number; not this worker's message.
    let missing = app
        .get(&token, &format!("/v1/messages/{id}/attachments/7"))
        .await;
    assert_eq!(missing.status(), 404);
    let not_a_number = app
        .get(&token, &format!("/v1/messages/{id}/attachments/eerste"))
        .await;
    assert_eq!(not_a_number.status(), 400);
    assert_eq!(
        not_a_number.json::<Value>().await.unwrap()["error"],
        json!("bad_request")
    );
    let other_token = app.login(&mut other).await;
    let foreign = app
        .get(&other_token, &format!("/v1/messages/{id}/attachments/0"))
        .await;
    assert_eq!(foreign.status(), 404);
    app.stop().await;
}

/// SMTP smuggling: a second message hidden behind a terminator that is not `<CRLF>.<CRLF>` (bare LF or
/// bare CR around the dot) is never read as commands. Every variant, sent in one write, split into
/// tiny writes, and pipelined with DATA, gets `554 5.6.11` and the connection closed; nothing of either
/// message is stored. The same message with a proper terminator is delivered, so the test can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggled_messages_are_refused_whatever_the_terminator_or_the_writes() {
    let world = MailWorld::new();
    let app = world.plain_app(|_| {}).await;
    let worker = app.add_worker("w231").await;
    let to = worker.alias.clone();
    let first = format!("From: team@spfok.test\r\nTo: {to}\r\nSubject: Eerste\r\n\r\nhallo");
    let hidden = format!(
        "MAIL FROM:<team@spfok.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n\
         From: team@spfok.test\r\nTo: {to}\r\nSubject: Verstopt\r\n\r\nbel direct\r\n"
    );
    let terminators: [(&str, &[u8]); 6] = [
        ("<LF>.<LF>", b"\n.\n"),
        ("<CRLF>.<LF>", b"\r\n.\n"),
        ("<LF>.<CRLF>", b"\n.\r\n"),
        ("<CR>.<CR>", b"\r.\r"),
        ("<CRLF>.<CR>", b"\r\n.\r"),
        ("<CR>.<CRLF>", b"\r.\r\n"),
    ];
    let refused = "554 5.6.11 Message refused: bare LF or CR in the message; only CRLF ends a line";
    for (name, terminator) in terminators {
        let mut data = first.clone().into_bytes();
        data.extend_from_slice(terminator);
        data.extend_from_slice(hidden.as_bytes());
        data.extend_from_slice(b"\r\n.\r\n");
        for how in ["one write", "split writes", "pipelined"] {
            let mut client = RawSmtp::connect(app.smtp_addr).await;
            start_transaction(&mut client, &to).await;
            let reply = match how {
                "one write" => {
                    assert!(client.command("DATA").await.starts_with("354"));
                    client.send(&data).await;
                    client.reply().await
                }
                "split writes" => {
                    assert!(client.command("DATA").await.starts_with("354"));
                    for chunk in data.chunks(3) {
                        client.send(chunk).await;
                    }
                    client.reply().await
                }
                _ => {
                    let mut pipelined = b"DATA\r\n".to_vec();
                    pipelined.extend_from_slice(&data);
                    client.send(&pipelined).await;
                    assert!(client.reply().await.starts_with("354"));
                    client.reply().await
                }
            };
            assert_eq!(reply, refused, "{name}, {how}");
            assert_eq!(
                client.reply().await,
                "",
                "{name}, {how}: the connection is closed, the hidden commands never read"
            );
        }
    }
    assert_eq!(app.stored_messages().await, 0, "neither message is stored");
    // A bare LF in a command line closes the session too, before anything is read as a command.
    let mut client = RawSmtp::connect(app.smtp_addr).await;
    client.send(b"EHLO client.test\n").await;
    assert_eq!(
        client.reply().await,
        "521 5.5.2 Bare LF or CR received; only CRLF ends a line"
    );
    assert_eq!(client.reply().await, "");
    // The same first message, properly ended, is delivered: only the framing was at fault.
    let mut client = RawSmtp::connect(app.smtp_addr).await;
    start_transaction(&mut client, &to).await;
    assert_eq!(
        client.data(first.as_bytes()).await,
        "250 2.0.0 Message accepted"
    );
    assert_eq!(app.stored_messages().await, 1);
    app.stop().await;
}
