//! Security property 10: a message acknowledged with 202 survives `kill -9` at any moment.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::helpers::{
    cli_json, client_for, fresh_database_url, message, post_message, write_config_file, Backend,
    RelayProcess,
};
use crate::on_both_backends;

on_both_backends!(
    acknowledged_messages_survive_kill_9,
    mail_acknowledged_with_250_survives_kill_9,
);

async fn acknowledged_messages_survive_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let config = write_config_file(dir.path(), &url);
    cli_json(
        &config,
        &["org", "add", "--name", "GI Duurzaam", "--kind", "gi"],
    );
    cli_json(
        &config,
        &[
            "dev-ca",
            "issue",
            "--org",
            "GI Duurzaam",
            "--out",
            dir.path().join("p").to_str().unwrap(),
        ],
    );
    let created = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w95",
            "--pseudonym",
            "P",
            "--phone",
            "0611111111",
            "--email",
            "a@example.nl",
        ],
    );
    let alias = created["alias"].as_str().unwrap().to_string();
    let log = dir.path().join("relay.log");
    let mut relay = RelayProcess::start(&config, &log, "info");
    let partner = client_for(
        &dir.path().join("dev-ca/ca.pem"),
        Some((
            &dir.path().join("p/client.pem"),
            &dir.path().join("p/client-key.pem"),
        )),
    );

    // Eight senders post as fast as they can; the relay is killed while they are mid-request.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for sender in 0..8 {
        let partner = partner.clone();
        let url = relay.partner_url.clone();
        let alias = alias.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..10_000 {
                let body = message(&alias, &format!("s{sender}-{i}"), "b");
                match post_message(&partner, &url, &body).await {
                    Ok(response) if response.status() == 202 => {
                        let id = response.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        acknowledged.lock().unwrap().push(id);
                    }
                    // The relay is gone: stop sending.
                    _ => return,
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "deliveries too slow");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    relay.kill_hard();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200);

    // Restart on the same data and count what is there.
    let mut relay = RelayProcess::start(&config, &log, "info");
    let health = reqwest::get(format!("{}/healthz", relay.admin_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "restarted relay is healthy");
    let store = schuilnaam::store::Store::open(&url, 2).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_all(store.pool())
        .await
        .unwrap();
    store.close().await;
    let missing: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost",
        missing.len()
    );
    // The audit chain is intact after the crash.
    let verified = cli_json(&config, &["audit", "verify"]);
    assert!(verified["rows"].as_i64().unwrap() >= acknowledged.len() as i64);
    relay.stop();
}

async fn mail_acknowledged_with_250_survives_kill_9(backend: Backend) {
    use crate::mail_support::RawSmtp;
    let world = crate::smtp_inbound::MailWorld::new();
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(backend, dir.path()).await;
    let config = write_config_file(dir.path(), &url);
    cli_json(
        &config,
        &[
            "org",
            "add",
            "--name",
            "Politie SPF",
            "--kind",
            "ketenpartner",
            "--domain",
            "spfok.test",
        ],
    );
    let created = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w96",
            "--pseudonym",
            "P",
            "--phone",
            "0622222222",
            "--email",
            "b@example.nl",
        ],
    );
    let alias = created["alias"].as_str().unwrap().to_string();
    let passphrase = created["passphrase"].as_str().unwrap().to_string();
    let log = dir.path().join("relay.log");
    let resolver = world.dns.address.to_string();
    // Plain SMTP here (as behind a local Postfix): the point is the acknowledgement, not TLS.
    let env = [
        ("SCHUILNAAM_SMTP__REQUIRE_TLS", "false"),
        ("SCHUILNAAM_DNS__RESOLVER", resolver.as_str()),
        (
            "SCHUILNAAM_SMTP__MAX_MESSAGES_PER_MINUTE_PER_ADDRESS",
            "1000000",
        ),
        (
            "SCHUILNAAM_SMTP__MAX_MESSAGES_PER_MINUTE_PER_DOMAIN",
            "1000000",
        ),
    ];
    let mut relay = RelayProcess::start_with_env(&config, &log, "info", &env);
    let smtp: std::net::SocketAddr = relay.smtp_addr.parse().unwrap();

    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let alias = alias.clone();
        let acknowledged = acknowledged.clone();
        senders.push(tokio::spawn(async move {
            let mut client = RawSmtp::connect(smtp).await;
            if !client.command("EHLO sender.spfok.test").await.starts_with("250") {
                return;
            }
            for i in 0..10_000 {
                let message_id = format!("{sender}-{i}-{}@spfok.test", schuilnaam::crypto::random_id());
                let message = format!(
                    "From: team@spfok.test\r\nTo: {alias}\r\nSubject: s\r\nMessage-ID: <{message_id}>\r\n\r\nb\r\n"
                );
                let mail = client.command("MAIL FROM:<team@spfok.test>").await;
                let rcpt = client.command(&format!("RCPT TO:<{alias}>")).await;
                if !mail.starts_with("250") || !rcpt.starts_with("250") {
                    return;
                }
                let reply = client.data_or_closed(message.as_bytes()).await;
                if reply == "250 2.0.0 Message accepted" {
                    acknowledged.lock().unwrap().push(message_id);
                } else {
                    // Killed (or refused): stop.
                    return;
                }
            }
        }));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < 200 {
        assert!(std::time::Instant::now() < deadline, "mail ingest too slow");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    relay.kill_hard();
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let mut relay = RelayProcess::start_with_env(&config, &log, "info", &env);
    // Open every stored message with the worker's identity and collect the Message-IDs.
    let store = schuilnaam::store::Store::open(&url, 2).await.unwrap();
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w96'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let keyring = schuilnaam::crypto::unwrap_keyring(
        &wrapped,
        &age::secrecy::SecretString::from(passphrase),
        12,
    )
    .unwrap();
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM messages")
        .fetch_all(store.pool())
        .await
        .unwrap();
    store.close().await;
    let stored: std::collections::HashSet<String> = sealed
        .iter()
        .map(|s| schuilnaam::mailbox::open_letter(&keyring, s).unwrap())
        .filter_map(|letter| letter.message_id)
        .collect();
    let missing = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} acknowledged mails lost",
        acknowledged.len()
    );
    cli_json(&config, &["audit", "verify"]);
    relay.stop();
}
