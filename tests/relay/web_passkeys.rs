//! Passkeys over HTTP with a software authenticator (ES256 keys from ring, CBOR written by hand, as
//! a platform authenticator answers with attestation "none"): registration and login through the
//! pages, and every way an answer could be reused where it does not belong. The real browser
//! ceremony is `web_browser::a_passkey_replaces_the_code_in_chromium`.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, TestApp, TestWorker, PASSPHRASE_AFTER_CHANGE};
use crate::on_both_backends;
use crate::web_support::{csrf_of, page_login, PageClient};

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(bytes)
}

/// A CBOR byte string's header and bytes.
fn cbor_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = match bytes.len() {
        n if n < 24 => vec![0x40 | n as u8],
        n if n < 256 => vec![0x58, n as u8],
        n => vec![0x59, (n >> 8) as u8, n as u8],
    };
    out.extend_from_slice(bytes);
    out
}

/// One credential on a software authenticator.
pub struct SoftKey {
    pair: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    pub counter: u32,
    /// Whether the authenticator counts its signatures (many synced passkeys always say 0).
    pub counting: bool,
    origin: String,
}

impl SoftKey {
    pub fn new(app: &TestApp) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let port = app.worker_url.rsplit(':').next().unwrap();
        Self {
            pair,
            credential_id: schuilnaam::crypto::random_bytes::<16>().to_vec(),
            counter: 0,
            counting: true,
            origin: format!("https://localhost:{port}"),
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        format!(
            r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{}","crossOrigin":false}}"#,
            self.origin
        )
        .into_bytes()
    }

    fn auth_data_head(&self, flags: u8) -> Vec<u8> {
        let mut data = Sha256::digest(b"localhost").to_vec();
        data.push(flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }

    /// `(client_data, attestation)` of navigator.credentials.create() to `challenge`.
    pub fn register(&self, challenge: &str) -> (Vec<u8>, Vec<u8>) {
        let point = self.pair.public_key().as_ref();
        let mut cose = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cose.extend(cbor_bytes(&point[1..33]));
        cose.push(0x22);
        cose.extend(cbor_bytes(&point[33..65]));
        // User present, user verified, attested credential data.
        let mut auth_data = self.auth_data_head(0x45);
        auth_data.extend_from_slice(&[0u8; 16]);
        auth_data.extend_from_slice(&(self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend(cose);
        let mut attestation = vec![0xa3, 0x63];
        attestation.extend_from_slice(b"fmt");
        attestation.push(0x64);
        attestation.extend_from_slice(b"none");
        attestation.push(0x67);
        attestation.extend_from_slice(b"attStmt");
        attestation.push(0xa0);
        attestation.push(0x68);
        attestation.extend_from_slice(b"authData");
        attestation.extend(cbor_bytes(&auth_data));
        (self.client_data("webauthn.create", challenge), attestation)
    }

    /// The login form's passkey fields: navigator.credentials.get() to `challenge`.
    pub fn assert(&mut self, challenge: &str) -> [(&'static str, String); 4] {
        if self.counting {
            self.counter += 1;
        }
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data_head(0x05);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature = self.pair.sign(&SystemRandom::new(), &signed).unwrap();
        [
            ("passkey_id", b64(&self.credential_id)),
            ("passkey_client_data", b64(&client_data)),
            ("passkey_authenticator_data", b64(&auth_data)),
            ("passkey_signature", b64(signature.as_ref())),
        ]
    }
}

/// The page's `data-challenge`.
fn challenge_of(page: &str) -> String {
    let marker = "data-challenge=\"";
    let start = page.find(marker).expect("a challenge") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_string()
}

/// Registers `key` for the logged-in `client`: the answer to the page's challenge.
pub async fn register(client: &PageClient, key: &SoftKey, label: &str) -> reqwest::Response {
    let page = client.text("/sleutels").await;
    let (client_data, attestation) = key.register(&challenge_of(&page));
    client
        .post(
            "/sleutels",
            &[
                ("csrf", &csrf_of(&page)),
                ("label", label),
                ("passphrase", PASSPHRASE_AFTER_CHANGE),
                ("client_data", &b64(&client_data)),
                ("attestation", &b64(&attestation)),
            ],
        )
        .await
}

/// A login form with a passkey answer, from a fresh visitor (its own pre-login cookie).
struct PasskeyLogin {
    client: PageClient,
    form: Vec<(&'static str, String)>,
}

impl PasskeyLogin {
    async fn prepare(app: &TestApp, handle: &str, key: &mut SoftKey) -> Self {
        let client = PageClient::new(app);
        let page = client.text("/inloggen").await;
        let mut form = vec![
            ("csrf", csrf_of(&page)),
            ("handle", handle.to_string()),
            ("passphrase", PASSPHRASE_AFTER_CHANGE.to_string()),
            ("totp", String::new()),
        ];
        form.extend(key.assert(&challenge_of(&page)));
        Self { client, form }
    }

    async fn post(client: &PageClient, form: &[(&'static str, String)]) -> u16 {
        let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        client.post("/inloggen", &fields).await.status().as_u16()
    }

    async fn send(&self) -> u16 {
        Self::post(&self.client, &self.form).await
    }

    /// The same answer from another visitor, with that visitor's own cookie and CSRF token.
    async fn send_as_another_visitor(&self, app: &TestApp) -> u16 {
        let other = PageClient::new(app);
        let csrf = csrf_of(&other.text("/inloggen").await);
        let mut form = self.form.clone();
        form[0].1 = csrf;
        Self::post(&other, &form).await
    }
}

async fn worker_with_passkey(app: &TestApp, handle: &str) -> (TestWorker, SoftKey) {
    let mut worker = app.add_worker(handle).await;
    let client = page_login(app, &mut worker).await;
    let key = SoftKey::new(app);
    let added = register(&client, &key, "telefoon").await;
    assert_eq!(added.status(), 303, "{}", added.text().await.unwrap());
    (worker, key)
}

async fn failures(app: &TestApp) -> Vec<String> {
    app.flush_audit().await;
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'login.failure' ORDER BY seq")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap()
}

async fn a_passkey_answer_logs_in_once_and_only_where_it_was_asked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (worker, mut key) = worker_with_passkey(&app, "w320").await;
    // An authenticator that never counts: only the spent challenge stops a replay.
    key.counting = false;

    let login = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    // Sent from another visitor, whose cookie the challenge is not bound to.
    assert_eq!(login.send_as_another_visitor(&app).await, 401);
    let captured = login.client.cookies();
    assert_eq!(
        login.send().await,
        303,
        "the answer to its own page logs in"
    );
    // The same request again, cookie and all (as someone who captured it would send it): the
    // challenge is spent.
    login.client.restore_cookies(captured);
    assert_eq!(login.send().await, 401);

    // Three copies of one answer sent at once (argon2 takes long enough for all three to be in
    // flight): exactly one logs in.
    let copies = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    let cookies = copies.client.cookies();
    let clients: Vec<PageClient> = (0..3)
        .map(|_| {
            let client = PageClient::new(&app);
            client.restore_cookies(cookies.clone());
            client
        })
        .collect();
    let answers = tokio::join!(
        PasskeyLogin::post(&clients[0], &copies.form),
        PasskeyLogin::post(&clients[1], &copies.form),
        PasskeyLogin::post(&clients[2], &copies.form),
    );
    let answers = [answers.0, answers.1, answers.2];
    assert_eq!(
        answers.iter().filter(|status| **status == 303).count(),
        1,
        "{answers:?}"
    );

    // A registration challenge (bound to a session) is no login challenge.
    let other = page_login(&app, &mut app.add_worker("w321").await).await;
    let registration_page = other.text("/sleutels").await;
    let fresh = PageClient::new(&app);
    let page = fresh.text("/inloggen").await;
    let mut form = vec![
        ("csrf", csrf_of(&page)),
        ("handle", worker.handle.clone()),
        ("passphrase", PASSPHRASE_AFTER_CHANGE.to_string()),
        ("totp", String::new()),
    ];
    form.extend(key.assert(&challenge_of(&registration_page)));
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(fresh.post("/inloggen", &fields).await.status(), 401);

    // Five minutes later the page's challenge has expired.
    let late = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    app.clock.advance(std::time::Duration::from_secs(5 * 60));
    assert_eq!(late.send().await, 401);
    assert_eq!(failures(&app).await, ["passkey"; 6]);
    app.stop().await;
}

async fn a_passkey_opens_only_its_own_workers_account(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (mut first, mut key) = worker_with_passkey(&app, "w322").await;
    // Someone who knows the second worker's passphrase but holds only the first worker's passkey.
    let mut second = app.add_worker("w323").await;
    drop(page_login(&app, &mut second).await);
    let login = PasskeyLogin::prepare(&app, "w323", &mut key).await;
    assert_eq!(login.send().await, 401);
    // The same authenticator cannot be registered to the second worker as well, and the answer does
    // not say that someone else holds it (the first worker is told it is theirs already).
    let client = page_login(&app, &mut second).await;
    let twice = register(&client, &key, "gestolen").await;
    assert_eq!(twice.status(), 422);
    assert!(twice
        .text()
        .await
        .unwrap()
        .contains("kon niet worden gecontroleerd"));
    app.clock.advance(std::time::Duration::from_secs(30));
    let own = page_login(&app, &mut first).await;
    let again = register(&own, &key, "nog eens").await;
    assert_eq!(again.status(), 422);
    assert!(again.text().await.unwrap().contains("al toegevoegd"));
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM worker_passkeys")
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(count, 1);
    app.stop().await;
}

async fn a_cloned_passkey_shows_by_its_counter_and_an_administrator_removes_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (worker, mut key) = worker_with_passkey(&app, "w324").await;
    key.counter = 10;
    let login = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    assert_eq!(login.send().await, 303);
    // A copy of the key that has counted less than the original: refused.
    key.counter = 5;
    let clone = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    assert_eq!(clone.send().await, 401);
    key.counter = 11;
    let original = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    assert_eq!(original.send().await, 303);

    // The administrator removes the worker's passkeys (a lost phone): the passkey no longer logs in.
    let found = schuilnaam::worker::find(
        &app.core.store,
        &schuilnaam::worker::Handle::parse(&worker.handle).unwrap(),
    )
    .await
    .unwrap();
    let removed = schuilnaam::worker::passkeys::remove_all(
        &app.core.store,
        app.now(),
        &schuilnaam::audit::Actor::Cli("beheer".into()),
        &found,
    )
    .await
    .unwrap();
    assert_eq!(removed, 1);
    let after = PasskeyLogin::prepare(&app, &worker.handle, &mut key).await;
    assert_eq!(after.send().await, 401);
    assert_eq!(failures(&app).await, ["passkey", "passkey"]);
    app.stop().await;
}

on_both_backends!(
    a_passkey_answer_logs_in_once_and_only_where_it_was_asked,
    a_passkey_opens_only_its_own_workers_account,
    a_cloned_passkey_shows_by_its_counter_and_an_administrator_removes_them,
);
