//! Security property 1: after traffic carrying marker strings, no marker is in the database file, the
//! WAL, the data directory or the logs (at trace level, `RUST_LOG=trace`). Runs the real binary in its
//! own process.

use std::path::Path;

use serde_json::{json, Value};

use crate::helpers::{
    cli_json, client_for, fresh_database_url, totp_from_uri, totp_now, write_config_file, Backend,
    RelayProcess,
};

const SUBJECT_MARKER: &str = "ONDERWERP-MARKER-4b1e";
const BODY_MARKER: &str = "INHOUD-MARKER-77d0";
const REFUSED_MARKER: &str = "GEWEIGERD-MARKER-0a9f";
const ATTACHMENT_MARKER: &str = "BIJLAGE-MARKER-5c21";
const REAL_PHONE: &str = "+31611112222";
const REAL_PHONE_NATIONAL: &str = "0611112222";
const REAL_EMAIL: &str = "echte.naam.marker@prive.example";
const NEW_PASSPHRASE: &str = "WACHTWOORD-MARKER-lang-genoeg";
const NAME_MARKER: &str = "Naammarker";
const TOWN_MARKER: &str = "Dorpmarkerveen";
const PLATE_MARKER: &str = "99-ZZQ-9";
/// The family's domain (served by the tests' DNS server with a DKIM key and a DMARC record).
const FAMILY_DOMAIN: &str = "family.test";

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn assert_absent(what: &str, haystack: &[u8], markers: &[String]) {
    for marker in markers {
        assert!(
            !haystack
                .windows(marker.len())
                .any(|window| window == marker.as_bytes()),
            "marker {marker:?} found in {what}"
        );
    }
}

/// Drives traffic with markers through a relay process; returns the markers that must not persist.
async fn traffic_with_markers(
    dir: &Path,
    database_url: &str,
    world: &crate::smtp_inbound::MailWorld,
) -> (Vec<String>, RelayProcess) {
    let config = write_config_file(dir, database_url);
    cli_json(
        &config,
        &[
            "org",
            "add",
            "--name",
            "GI Markerstad",
            "--kind",
            "gi",
            "--domain",
            "jbwest.test",
        ],
    );
    cli_json(
        &config,
        &[
            "dev-ca",
            "issue",
            "--org",
            "GI Markerstad",
            "--out",
            dir.join("partner").to_str().unwrap(),
        ],
    );
    let created = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w80",
            "--pseudonym",
            "LET-medewerker 80",
            "--phone",
            REAL_PHONE,
            "--email",
            REAL_EMAIL,
        ],
    );
    let one_time = created["passphrase"].as_str().unwrap().to_string();
    let totp = totp_from_uri(created["totp_uri"].as_str().unwrap());
    let alias = created["alias"].as_str().unwrap().to_string();

    let log = dir.join("relay.log");
    let resolver = world.dns.address.to_string();
    let relay = RelayProcess::start_with_env(
        &config,
        &log,
        // Everything at its most verbose: no setting may make a dependency log names or bytes.
        "trace",
        &[("SCHUILNAAM_DNS__RESOLVER", resolver.as_str())],
    );
    let ca = dir.join("dev-ca/ca.pem");
    let partner = client_for(
        &ca,
        Some((
            &dir.join("partner/client.pem"),
            &dir.join("partner/client-key.pem"),
        )),
    );
    let worker = client_for(&ca, None);

    for i in 0..20 {
        let response = partner
            .post(format!("{}/v1/messages", relay.partner_url))
            .json(&json!({
                "to": alias,
                "subject": format!("{SUBJECT_MARKER} {i}"),
                "body": format!("{BODY_MARKER} {}", "x".repeat(i * 500)),
                "urgent": i % 2 == 0,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let refused = partner
        .post(format!("{}/v1/messages", relay.partner_url))
        .json(&json!({ "to": "onbekend@relay.localhost", "subject": REFUSED_MARKER, "body": REFUSED_MARKER }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let malformed = partner
        .post(format!("{}/v1/messages", relay.partner_url))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"to\": \"{REFUSED_MARKER}\", \"subject\": \"{REFUSED_MARKER}\""
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    // Mail over SMTP with markers in subject, body and an attachment; and a refused one.
    for i in 0..5 {
        let message = format!(
            "From: team@jbwest.test\r\nTo: {alias}\r\nSubject: {SUBJECT_MARKER} mail {i}\r\n\
             Message-ID: <m{i}.{}@jbwest.test>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             {BODY_MARKER} in mail\r\n--b\r\nContent-Type: text/plain; name=\"{ATTACHMENT_MARKER}.txt\"\r\n\
             Content-Disposition: attachment; filename=\"{ATTACHMENT_MARKER}.txt\"\r\n\r\n{ATTACHMENT_MARKER}\r\n--b--\r\n",
            schuilnaam::crypto::random_id()
        );
        let signed = world.jbwest.sign(&message, "jbwest.test", "sel");
        let smtp: std::net::SocketAddr = relay.smtp_addr.parse().unwrap();
        let (_, transcript) =
            crate::mail_support::swaks(smtp, "team@jbwest.test", &alias, &signed, &["--tls"]);
        assert_eq!(
            crate::mail_support::data_reply(&transcript),
            "250 2.0.0 Message accepted"
        );
    }
    let refused_mail = world.jbwest.sign(
        &format!("From: team@jbwest.test\r\nTo: x@relay.localhost\r\nSubject: {REFUSED_MARKER}\r\n\r\n{REFUSED_MARKER}\r\n"),
        "jbwest.test",
        "sel",
    );
    let smtp: std::net::SocketAddr = relay.smtp_addr.parse().unwrap();
    let (_, transcript) = crate::mail_support::swaks(
        smtp,
        "team@jbwest.test",
        "x@relay.localhost",
        &refused_mail,
        &["--tls"],
    );
    assert_eq!(
        crate::mail_support::data_reply(&transcript),
        "550 5.7.1 Message refused"
    );

    // A family member's mail, which passes DKIM for the family's own domain: the relay looks that
    // domain up (DKIM key, DMARC record), and refuses the mail. Neither the domain nor the address
    // may reach the log.
    let family_mail = world.family.sign(
        &format!("From: ouder@{FAMILY_DOMAIN}\r\nTo: {alias}\r\nSubject: {REFUSED_MARKER}\r\n\r\n{REFUSED_MARKER}\r\n"),
        FAMILY_DOMAIN,
        "sel",
    );
    let (_, transcript) = crate::mail_support::swaks(
        smtp,
        &format!("ouder@{FAMILY_DOMAIN}"),
        &alias,
        &family_mail,
        &["--tls"],
    );
    assert_eq!(
        crate::mail_support::data_reply(&transcript),
        "550 5.7.1 Message refused"
    );

    // Log in (one-time passphrase), change it, open every message so plaintext passes through.
    let login: Value = worker
        .post(format!("{}/v1/login", relay.worker_url))
        .json(&json!({ "handle": "w80", "passphrase": one_time, "totp": totp_now(&totp) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"]
        .as_str()
        .expect("login succeeded")
        .to_string();
    let changed = worker
        .post(format!("{}/v1/passphrase", relay.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "current": one_time, "new": NEW_PASSPHRASE }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let list: Vec<Value> = worker
        .get(format!("{}/v1/messages", relay.worker_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 25);
    for item in &list {
        let opened: Value = worker
            .get(format!(
                "{}/v1/messages/{}",
                relay.worker_url,
                item["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(opened["body"].as_str().unwrap().starts_with(BODY_MARKER));
        assert!(opened["subject"]
            .as_str()
            .unwrap()
            .starts_with(SUBJECT_MARKER));
    }
    // Identity markers for the leak guard: stored as keyed hashes only.
    let registered = worker
        .put(format!("{}/v1/markers", relay.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "names": [NAME_MARKER], "towns": [TOWN_MARKER], "plates": [PLATE_MARKER] }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    // The worker's own age keys exist on disk only wrapped under the passphrase.
    let wrapped: Vec<u8> = {
        let store = schuilnaam::store::Store::open(database_url, 1)
            .await
            .unwrap();
        let wrapped =
            sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w80'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        store.close().await;
        wrapped
    };
    let keyring = schuilnaam::crypto::unwrap_keyring(
        &wrapped,
        &age::secrecy::SecretString::from(NEW_PASSPHRASE.to_string()),
        12,
    )
    .unwrap();
    let worker_keys: Vec<String> = keyring
        .to_identity_file()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(worker_keys.len(), 2, "the first change rotated the key");
    let totp_secret = created["totp_uri"]
        .as_str()
        .unwrap()
        .split_once("secret=")
        .unwrap()
        .1
        .split('&')
        .next()
        .unwrap()
        .to_string();
    let mut markers = vec![
        SUBJECT_MARKER.to_string(),
        BODY_MARKER.to_string(),
        REFUSED_MARKER.to_string(),
        ATTACHMENT_MARKER.to_string(),
        REAL_PHONE.to_string(),
        REAL_PHONE_NATIONAL.to_string(),
        REAL_EMAIL.to_string(),
        "echte.naam.marker".to_string(),
        one_time,
        NEW_PASSPHRASE.to_string(),
        NAME_MARKER.to_string(),
        NAME_MARKER.to_lowercase(),
        TOWN_MARKER.to_string(),
        TOWN_MARKER.to_lowercase(),
        PLATE_MARKER.to_string(),
        PLATE_MARKER.replace('-', ""),
        totp_secret,
        token,
        FAMILY_DOMAIN.to_string(),
    ];
    markers.extend(worker_keys);
    (markers, relay)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_and_logs_hold_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Sqlite, dir.path()).await;
    let world = crate::smtp_inbound::MailWorld::new();
    let (markers, mut relay) = traffic_with_markers(dir.path(), &url, &world).await;

    // While running (the WAL holds the recent commits) …
    let running = files_under(dir.path());
    assert!(
        running
            .iter()
            .any(|p| p.to_string_lossy().ends_with("schuilnaam.db-wal")),
        "the WAL is among the files checked: {running:?}"
    );
    for file in &running {
        assert_absent(
            &file.display().to_string(),
            &std::fs::read(file).unwrap(),
            &markers,
        );
    }
    // … and after a clean stop.
    relay.stop();
    let log = std::fs::read(&relay.log).unwrap();
    assert!(log.len() > 1000, "the log recorded the traffic");
    assert!(String::from_utf8_lossy(&log).contains("route=\"/v1/messages\""));
    for file in files_under(dir.path()) {
        assert_absent(
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
            &markers,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_and_logs_hold_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Postgres, dir.path()).await;
    let world = crate::smtp_inbound::MailWorld::new();
    let (markers, mut relay) = traffic_with_markers(dir.path(), &url, &world).await;
    relay.stop();
    let dump = std::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(&url)
        .output()
        .expect("pg_dump runs");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dump.stdout).contains("COPY public.messages"),
        "the dump holds the messages table"
    );
    assert_absent("pg_dump", &dump.stdout, &markers);
    // bytea columns are dumped as hex: a plaintext marker inside a blob would show up hex-encoded.
    let hex_markers: Vec<String> = markers.iter().map(hex::encode).collect();
    assert_absent("pg_dump (hex)", &dump.stdout, &hex_markers);
    for file in files_under(dir.path()) {
        assert_absent(
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
            &markers,
        );
    }
}
