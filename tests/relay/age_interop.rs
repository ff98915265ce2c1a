//! Security property 2: every stored message is an age file that the reference `age` CLI decrypts
//! with the right identity and with no other. And the `inbox` reader with a device-held key.

use std::path::Path;
use std::process::{Command, Stdio};

use age::secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::helpers::{
    cli_json, client_for, delivered, fresh_database_url, message, post_message, totp_from_uri,
    write_config_file, Backend, RelayProcess, TestApp,
};

/// Runs the reference `age -d -i IDENTITY` on a file; returns (success, stdout, stderr).
fn age_decrypt(identity: &Path, file: &Path) -> (bool, Vec<u8>, String) {
    let output = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(file)
        .output()
        .expect("the reference age CLI is installed (scripts/test.sh installs it)");
    (
        output.status.success(),
        output.stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `age-keygen -o FILE`; returns the public key.
fn age_keygen(file: &Path) -> String {
    let output = Command::new("age-keygen")
        .arg("-o")
        .arg(file)
        .output()
        .expect("age-keygen is installed");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .trim()
        .strip_prefix("Public key: ")
        .unwrap_or_else(|| panic!("unexpected age-keygen output: {stderr}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_age_cli_opens_sealed_messages_with_the_right_identity_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("GI Interop").await;
    let mut worker = app.add_worker("w90").await;
    let response = post_message(
        &partner,
        &app.partner_url,
        &message(
            &worker.alias,
            "Voor age",
            "Leesbaar met de referentie-implementatie",
        ),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
    let token = app.login(&mut worker).await;
    let id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The stored bytes, as the database holds them, equal what /age serves.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM messages WHERE id = $1")
        .bind(&id)
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
    let served = app
        .get(&token, &format!("/v1/messages/{id}/age"))
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored, served.to_vec());
    let sealed_path = app.dir.path().join("message.age");
    std::fs::write(&sealed_path, &stored).unwrap();

    // The worker's identity, unwrapped from the database with the passphrase.
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w90'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    let keyring = schuilnaam::crypto::unwrap_keyring(
        &wrapped,
        &SecretString::from(worker.passphrase.clone()),
        12,
    )
    .unwrap();
    // The first login changed the one-time passphrase and rotated the keyring: the current identity
    // is the recipient of new messages; this message arrived before and is sealed to the older one.
    assert_eq!(keyring.len(), 2);
    assert_eq!(keyring.current().to_public().to_string(), worker.recipient);
    let current_only = app.dir.path().join("w90-current.key");
    std::fs::write(&current_only, keyring.current().to_string().expose_secret()).unwrap();
    let (ok, _, _) = age_decrypt(&current_only, &sealed_path);
    assert!(
        !ok,
        "sealed before the rotation: the new identity alone cannot open it"
    );
    // The whole ring is a standard multi-key identity file.
    let identity_path = app.dir.path().join("w90.key");
    std::fs::write(&identity_path, keyring.to_identity_file().as_bytes()).unwrap();

    let (ok, plaintext, stderr) = age_decrypt(&identity_path, &sealed_path);
    assert!(ok, "age -d failed: {stderr}");
    let letter: Value = serde_json::from_slice(&plaintext).unwrap();
    assert_eq!(
        letter["body"],
        json!("Leesbaar met de referentie-implementatie")
    );
    assert_eq!(letter["subject"], json!("Voor age"));
    assert_eq!(letter["from"], json!("GI Interop"));

    // Any other identity fails.
    let stranger = app.dir.path().join("stranger.key");
    age_keygen(&stranger);
    let (ok, plaintext, stderr) = age_decrypt(&stranger, &sealed_path);
    assert!(!ok, "a stranger's key must not open it");
    assert!(plaintext.is_empty());
    assert!(stderr.contains("no identity matched"), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_key_worker_reads_with_age_and_the_inbox_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Sqlite, dir.path()).await;
    let config = write_config_file(dir.path(), &url);
    let key = dir.path().join("device.key");
    let recipient = age_keygen(&key);

    cli_json(
        &config,
        &["org", "add", "--name", "Politie", "--kind", "ketenpartner"],
    );
    cli_json(
        &config,
        &[
            "dev-ca",
            "issue",
            "--org",
            "Politie",
            "--out",
            dir.path().join("politie").to_str().unwrap(),
        ],
    );
    let created = cli_json(
        &config,
        &[
            "worker",
            "add",
            "--handle",
            "w91",
            "--pseudonym",
            "LET-medewerker 91",
            "--phone",
            "0687654321",
            "--email",
            "w91@example.nl",
            "--recipient",
            &recipient,
        ],
    );
    assert_eq!(created["key_custody"], json!("device"));
    assert_eq!(created["recipient"], json!(recipient));
    // The relay never had the identity: nothing wrapped is stored.
    let wrapped: Option<Vec<u8>> = {
        let store = schuilnaam::store::Store::open(&url, 1).await.unwrap();
        let value = sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w91'")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        value
    };
    assert!(wrapped.is_none());

    let log = dir.path().join("relay.log");
    let mut relay = RelayProcess::start(&config, &log, "info");
    let ca = dir.path().join("dev-ca/ca.pem");
    let partner = client_for(
        &ca,
        Some((
            &dir.path().join("politie/client.pem"),
            &dir.path().join("politie/client-key.pem"),
        )),
    );
    let alias = created["alias"].as_str().unwrap();
    let id = delivered(
        &partner,
        &relay.partner_url,
        &message(
            alias,
            "Proces-verbaal factuur\u{202E}fdp.exe",
            "Alleen op het apparaat te lezen",
        ),
    )
    .await;

    // The inbox CLI: change the one-time passphrase, then mint an API token.
    let totp = totp_from_uri(created["totp_uri"].as_str().unwrap());
    let step = schuilnaam::totp::step_of(schuilnaam::clock::Clock::now_millis(
        &schuilnaam::clock::SystemClock,
    ));
    let one_time = created["passphrase"].as_str().unwrap();
    let new_passphrase = "apparaat-sleutel en een lange zin";
    let inbox = |args: &[&str], stdin: String, token: Option<&str>| {
        let mut command = Command::new(crate::helpers::binary());
        command
            .args(["inbox", "--server", &relay.worker_url, "--handle", "w91"])
            .arg("--identity")
            .arg(&key)
            .arg("--ca")
            .arg(&ca)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.env_remove("SCHUILNAAM_TOKEN");
        if let Some(token) = token {
            command.env("SCHUILNAAM_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // Listing before the change is refused with a clear message.
    let code = format!("{:06}", totp.code_at_step(step));
    let (ok, _, stderr) = inbox(&["list"], format!("{one_time}\n{code}\n"), None);
    assert!(!ok);
    assert!(
        stderr.contains("change your one-time passphrase"),
        "{stderr}"
    );

    let code = format!("{:06}", totp.code_at_step(step + 1));
    let (ok, stdout, stderr) = inbox(
        &["passphrase"],
        format!("{one_time}\n{code}\n{one_time}\n{new_passphrase}\n"),
        None,
    );
    assert!(ok, "passphrase change: {stdout} {stderr}");
    // The next step's code is spent; the same code again is refused (no replay).
    let (ok, _, stderr) = inbox(&["token"], format!("{new_passphrase}\n{code}\n"), None);
    assert!(!ok);
    assert!(stderr.contains("login failed"), "{stderr}");

    // Read with an API token (the TOTP window is spent for the next minute; an administrator-side
    // token stands in for `inbox token`, which would need a fresh code).
    let store = schuilnaam::store::Store::open(&url, 1).await.unwrap();
    let worker_id: schuilnaam::ids::WorkerId =
        sqlx::query_scalar("SELECT id FROM workers WHERE handle = 'w91'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let minted = schuilnaam::api_token::create(
        &store,
        schuilnaam::clock::Clock::now_millis(&schuilnaam::clock::SystemClock),
        &schuilnaam::audit::Actor::System,
        &worker_id,
        "test",
        1,
    )
    .await
    .unwrap();
    store.close().await;
    let token = Some(minted.token.as_str());
    let (ok, stdout, stderr) = inbox(&["--json", "list"], String::new(), token);
    assert!(ok, "{stderr}");
    let list: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], json!(id));
    let (ok, stdout, stderr) = inbox(&["--json", "open", &id], String::new(), token);
    assert!(ok, "{stderr}");
    let letter: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(letter["body"], json!("Alleen op het apparaat te lezen"));
    // For a terminal, a right-to-left override from the sender is marked, not obeyed.
    let (ok, stdout, stderr) = inbox(&["open", &id], String::new(), token);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Subject: Proces-verbaal factuur\u{fffd}fdp.exe\n"),
        "{stdout}"
    );
    assert!(!stdout.contains('\u{202E}'), "{stdout}");

    // The same file opens with the reference age CLI and the device key.
    let sealed = client_for(&ca, None)
        .get(format!("{}/v1/messages/{id}/age", relay.worker_url))
        .bearer_auth(&minted.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let sealed_path = dir.path().join("m.age");
    std::fs::write(&sealed_path, &sealed).unwrap();
    let (ok, plaintext, stderr) = age_decrypt(&key, &sealed_path);
    assert!(ok, "{stderr}");
    assert!(String::from_utf8_lossy(&plaintext).contains("Alleen op het apparaat te lezen"));

    let (ok, stdout, _) = inbox(&["delete", &id], String::new(), token);
    assert!(ok, "{stdout}");
    let (ok, stdout, _) = inbox(&["--json", "list"], String::new(), token);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&stdout).unwrap().len(),
        0
    );
    relay.stop();
}
