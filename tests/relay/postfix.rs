//! Deployment behind Postfix, end to end: a real Postfix on loopback configured with the text the
//! README documents (`config/postfix/*.snippet`, quoted verbatim there), the relay configured with
//! the documented `[smtp]` section, swaks as the sending server, dnsmasq for SPF and DMARC.
//!
//! The documented set-up is a before-queue proxy: the relay's `550` reaches the sending server in its
//! own session and Postfix queues nothing, so no refusal ever becomes a non-delivery report to a
//! (forged) sender. The after-queue variant is tested too, to show the backscatter the README warns of.
//!
//! The sending servers connect from other loopback addresses than Postfix's own hop to the relay
//! (`127.0.0.1`): the partner from `127.0.0.2`, which its SPF record lists, the stranger from
//! `127.0.0.3`, which it does not. A partner message is therefore accepted only when the relay judges
//! SPF on the client Postfix passed on with XFORWARD.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{Backend, TestApp};
use crate::mail_support::{partner_message, swaks, DnsServer, Received, Smarthost};
use crate::on_both_backends;
use crate::postfix_support::{self, Postfix};
use crate::smtp_inbound::refusals;

on_both_backends!(refusals_reach_the_sender_in_session_and_nothing_is_queued);

const PARTNER_CLIENT: &str = "127.0.0.2";
const STRANGER_CLIENT: &str = "127.0.0.3";
const REFUSED: &str = "550 5.7.1 Message refused";
const ACCEPTED: &str = "250 2.0.0 Message accepted";

fn config_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/postfix")
        .join(name)
}

/// A configuration text as the repository (and the README) documents it.
fn documented(name: &str) -> String {
    std::fs::read_to_string(config_path(name))
        .unwrap_or_else(|e| panic!("config/postfix/{name}: {e}"))
}

/// The relay's documented configuration behind Postfix, laid over the embedded default as
/// `--config` would.
fn documented_relay() -> schuilnaam::Config {
    schuilnaam::Config::load(&config_path("schuilnaam.toml.snippet"), true)
        .expect("config/postfix/schuilnaam.toml.snippet loads")
}

/// Postfix text with the relay's documented address (`127.0.0.1:2525` or, as a next hop,
/// `[127.0.0.1]:2525`) replaced by where the test's relay listens.
fn pointed_at(text: &str, relay: SocketAddr) -> String {
    let documented = documented_relay().smtp.listen;
    let next_hop = |a: SocketAddr| format!("[{}]:{}", a.ip(), a.port());
    assert!(
        text.contains(&documented.to_string()) || text.contains(&next_hop(documented)),
        "the Postfix text does not name the relay's documented address {documented}:\n{text}"
    );
    text.replace(&next_hop(documented), &next_hop(relay))
        .replace(&documented.to_string(), &relay.to_string())
}

/// DNS for the partner domain `gi.test`: SPF lists the partner's mail server only, DMARC p=reject.
fn partner_dns() -> DnsServer {
    DnsServer::start(&[
        ("gi.test", &format!("v=spf1 ip4:{PARTNER_CLIENT} -all")),
        ("_dmarc.gi.test", "v=DMARC1; p=reject"),
    ])
}

/// The relay with the documented `[relay]` domain and `[smtp]` section (on a free port), and the
/// partner organisation that writes from `gi.test`.
async fn documented_app(backend: Backend, dns: &DnsServer) -> TestApp {
    let documented = documented_relay();
    let resolver = dns.address.to_string();
    let app = TestApp::spawn_with(backend, move |c| {
        c.relay.domain = documented.relay.domain.clone();
        c.smtp = schuilnaam::config::SmtpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..documented.smtp
        };
        c.dns.resolver = resolver;
    })
    .await;
    app.add_mail_partner("Jeugdbescherming West", "gi.test")
        .await;
    app
}

/// A listener for everything Postfix sends: a bounce would arrive here.
async fn outside_world(app: &TestApp) -> Smarthost {
    let issued = app
        .dev_ca()
        .issue_server(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap();
    Smarthost::start(&issued.cert_pem, &issued.key_pem).await
}

/// One SMTP session with Postfix from `client`; returns swaks's transcript.
fn through_postfix(
    postfix: &Postfix,
    client: &str,
    mail_from: &str,
    rcpt: &str,
    message: &str,
) -> String {
    swaks(
        postfix.smtp,
        mail_from,
        rcpt,
        message,
        &["--local-interface", client],
    )
    .1
}

/// The server's replies in a swaks transcript, in order (multi-line replies line by line).
fn replies(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            line.strip_prefix("<**")
                .or_else(|| line.strip_prefix("<-"))
                .map(|reply| reply.trim().to_string())
        })
        .collect()
}

/// The reply to the end of DATA (the one after `354`).
fn end_of_data_reply(transcript: &str) -> String {
    let all = replies(transcript);
    let go = all
        .iter()
        .position(|r| r.starts_with("354"))
        .unwrap_or_else(|| panic!("no DATA in the session:\n{transcript}"));
    all.get(go + 1)
        .cloned()
        .unwrap_or_else(|| panic!("no reply to the end of DATA:\n{transcript}"))
}

/// Puts a message into Postfix's queue for an outside address (through the test's injection
/// service) and waits until it reached the listener and the queue is empty again. Anything queued
/// before it (a bounce) has then been sent to the listener, which saw it.
async fn drain_through_the_queue(postfix: &Postfix, listener: &Smarthost) -> Vec<Received> {
    let (ok, transcript) = swaks(
        postfix.inject,
        "harness@postfix.host.test",
        "sentinel@elsewhere.test",
        "Subject: sentinel\r\n\r\nsentinel\r\n",
        &[],
    );
    assert!(ok, "the sentinel is queued:\n{transcript}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !listener
        .messages()
        .iter()
        .any(|m| m.rcpt_to == ["<sentinel@elsewhere.test>"])
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sentinel did not arrive; maillog:\n{}",
            postfix.maillog()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    postfix.wait_until_queue_is_empty().await;
    listener.messages()
}

async fn refusals_reach_the_sender_in_session_and_nothing_is_queued(backend: Backend) {
    postfix_support::preflight();
    let dns = partner_dns();
    let app = documented_app(backend, &dns).await;
    let mut worker = app.add_worker("w300").await;
    let colleague = app.add_worker("w301").await;
    let listener = outside_world(&app).await;
    let postfix = Postfix::start(
        &documented("main.cf.snippet"),
        &pointed_at(&documented("master.cf.snippet"), app.smtp_addr),
        listener.address,
    );

    // The partner's mail: accepted by the relay (its own words, not Postfix's "queued as"), because
    // the relay judged SPF on 127.0.0.2, the client Postfix passed on.
    let message = partner_message(
        "Team West <team@gi.test>",
        &worker.alias,
        "Aanmelding via Postfix",
        "Graag contact over de overdracht.",
    );
    let transcript = through_postfix(
        &postfix,
        PARTNER_CLIENT,
        "team@gi.test",
        &worker.alias,
        &message,
    );
    assert!(
        replies(&transcript)[0].contains("ESMTP Postfix"),
        "{transcript}"
    );
    assert_eq!(
        end_of_data_reply(&transcript),
        ACCEPTED,
        "{transcript}\nrefusals: {:?}\nmaillog:\n{}",
        refusals(&app).await,
        postfix.maillog()
    );

    // Two recipients: the relay takes one per message; the second is deferred at RCPT, in the
    // session, and the sending server sends it again later. The first is stored.
    let both = format!("{},{}", colleague.alias, worker.alias);
    let message = partner_message(
        "Team West <team@gi.test>",
        &colleague.alias,
        "Twee",
        "Tekst",
    );
    let transcript = through_postfix(&postfix, PARTNER_CLIENT, "team@gi.test", &both, &message);
    let all = replies(&transcript);
    assert!(
        all.iter().any(|r| r.starts_with("452 4.5.3")),
        "{transcript}"
    );
    assert_eq!(end_of_data_reply(&transcript), ACCEPTED, "{transcript}");

    // A stalker forging the partner's address, and a stranger under their own name: the relay's
    // refusal reaches them from Postfix at the end of DATA, in the same session.
    let forged = partner_message("Team West <team@gi.test>", &worker.alias, "Nep", "Tekst");
    let transcript = through_postfix(
        &postfix,
        STRANGER_CLIENT,
        "team@gi.test",
        &worker.alias,
        &forged,
    );
    assert_eq!(end_of_data_reply(&transcript), REFUSED, "{transcript}");
    let own = partner_message(
        "Een ouder <ouder@familie.test>",
        &worker.alias,
        "Hallo",
        "Tekst",
    );
    let transcript = through_postfix(
        &postfix,
        STRANGER_CLIENT,
        "ouder@familie.test",
        &worker.alias,
        &own,
    );
    assert_eq!(end_of_data_reply(&transcript), REFUSED, "{transcript}");
    // Both for the sender (the forged one because SPF does not list 127.0.0.3), not the alias.
    let reasons = refusals(&app).await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("reason=unknown-sender")),
        "{reasons:?}"
    );
    assert_eq!(app.stored_messages().await, 2);

    // Postfix queued none of the four messages; the route to the outside world works (the sentinel
    // arrives), and nothing else went out: no non-delivery report to team@gi.test or ouder@familie.test.
    assert_eq!(postfix.queued_files(), Vec::<String>::new());
    let sent = drain_through_the_queue(&postfix, &listener).await;
    let recipients: Vec<&[String]> = sent.iter().map(|m| m.rcpt_to.as_slice()).collect();
    assert_eq!(
        recipients,
        [["<sentinel@elsewhere.test>".to_string()].as_slice()],
        "maillog:\n{}",
        postfix.maillog()
    );

    // The partner's message is sealed into the worker's mailbox.
    let token = app.login(&mut worker).await;
    let list = app.messages(&token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["from_organisation"], json!("Jeugdbescherming West"));
    let opened = app
        .open_message(&token, list[0]["id"].as_str().unwrap())
        .await;
    assert_eq!(opened["subject"], json!("Aanmelding via Postfix"));
    assert_eq!(
        opened["body"].as_str().unwrap().trim(),
        "Graag contact over de overdracht."
    );
    drop(postfix);
    app.stop().await;
}

/// The after-queue variant the README warns against: Postfix accepts the stalker's message with its
/// own `250`, the relay refuses it afterwards, and Postfix sends a non-delivery report to the forged
/// sender — the partner. It also shows that the listener above would have caught a bounce. One
/// backend: the refusal happens before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_queue_delivery_bounces_refusals_to_the_forged_sender() {
    postfix_support::preflight();
    let dns = partner_dns();
    let app = documented_app(Backend::Sqlite, &dns).await;
    let worker = app.add_worker("w310").await;
    let listener = outside_world(&app).await;
    // The after-queue variant leaves Postfix's port-25 service as installed.
    let postfix = Postfix::start(
        &pointed_at(&documented("after-queue.main.cf.snippet"), app.smtp_addr),
        "smtp      inet  n       -       -       -       -       smtpd\n",
        listener.address,
    );
    let forged = partner_message("Team West <team@gi.test>", &worker.alias, "Nep", "Tekst");
    let transcript = through_postfix(
        &postfix,
        STRANGER_CLIENT,
        "team@gi.test",
        &worker.alias,
        &forged,
    );
    let reply = end_of_data_reply(&transcript);
    assert!(
        reply.starts_with("250 2.0.0 Ok: queued as "),
        "{transcript}"
    );

    let sent = drain_through_the_queue(&postfix, &listener).await;
    let bounce = sent
        .iter()
        .find(|m| m.rcpt_to == ["<team@gi.test>"])
        .unwrap_or_else(|| {
            panic!(
                "no bounce to the forged sender; maillog:\n{}",
                postfix.maillog()
            )
        });
    // The null sender of a non-delivery report (then Postfix's SIZE and BODY parameters).
    assert_eq!(
        bounce.mail_from.split_whitespace().next(),
        Some("<>"),
        "{}",
        bounce.mail_from
    );
    assert!(
        String::from_utf8_lossy(&bounce.data).contains(REFUSED),
        "{}",
        String::from_utf8_lossy(&bounce.data)
    );
    assert_eq!(refusals(&app).await.len(), 1);
    assert_eq!(app.stored_messages().await, 0);
    drop(postfix);
    app.stop().await;
}

/// The README quotes the files the tests read, verbatim, and they agree with each other.
#[test]
fn the_readme_quotes_the_tested_postfix_configuration() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for name in [
        "main.cf.snippet",
        "master.cf.snippet",
        "schuilnaam.toml.snippet",
        "after-queue.main.cf.snippet",
    ] {
        assert!(
            readme.contains(&documented(name)),
            "README.md does not quote config/postfix/{name} verbatim"
        );
    }
    let relay = documented_relay();
    let listen = relay.smtp.listen.to_string();
    assert!(documented("master.cf.snippet").contains(&format!("smtpd_proxy_filter={listen}")));
    assert!(documented("after-queue.main.cf.snippet").contains(&format!(
        "smtp:[{}]:{}",
        relay.smtp.listen.ip(),
        relay.smtp.listen.port()
    )));
    assert!(relay
        .smtp
        .xforward_from
        .contains(&"127.0.0.1".parse().unwrap()));
    assert!(!relay.smtp.require_tls);
    // Every session from Postfix comes from 127.0.0.1: the relay must take as many as Postfix's
    // smtp service runs processes, or Postfix's clients get a temporary error.
    let master = documented("master.cf.snippet");
    let service = master
        .lines()
        .find(|l| l.split_whitespace().take(2).eq(["smtp", "inet"]))
        .expect("the smtp inet service");
    let maxproc: usize = service.split_whitespace().nth(6).unwrap().parse().unwrap();
    assert!(relay.smtp.max_sessions_per_address >= maxproc);
}
