//! The web app in a real headless Chromium (Debian's chromium and chromium-driver): the whole first
//! day of a worker with JavaScript on and off (screenshots under target/web-screenshots/), axe-core on
//! every page, HTML mail that stays inert, and a worker whose key never leaves their device.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fantoccini::Locator;
use schuilnaam::totp::TotpSecret;
use serde_json::json;

use crate::helpers::{message, post_message, Backend, TestApp};
use crate::web_support::{
    deliver_mail, first_message_link, Browser, BrowserOptions, RecordingProxy, RemoteRecorder,
    REMOTE_HOST,
};

const NEW_PASSPHRASE: &str = "mijn eigen lange zin voor de relay";

/// Fails with every serious or critical axe-core violation of the current page.
async fn assert_accessible(browser: &Browser, page: &str) {
    let violations = browser.axe().await;
    assert!(violations.is_empty(), "{page}: {violations:#?}");
}

async fn submit(browser: &Browser, form_action: &str) {
    browser
        .click_and_wait(&format!(
            "form[action=\"{form_action}\"] button[type=\"submit\"]"
        ))
        .await;
}

/// The worker's first day: log in with the one-time passphrase, choose their own, enrol a fresh TOTP
/// secret from the QR page, read a partner's message (mutual TLS), reply to a mail, write to a partner,
/// make and burn an alias, switch language, log out.
async fn first_day(javascript: bool) {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.outbound.smarthost = "127.0.0.1:9".into()
    })
    .await;
    let partner = app.add_partner("Jeugdbescherming West").await;
    app.add_mail_partner("GI Post", "gipost.example").await;
    let worker = app.add_worker("w400").await;
    let posted = post_message(
        &partner,
        &app.partner_url,
        &json!({ "to": worker.alias, "subject": "Aanmelding gezin", "body": "Graag overname <b>vandaag</b>.",
                 "urgent": true, "kind": "aanmelding" }),
    )
    .await
    .unwrap();
    assert_eq!(posted.status(), 202);
    let test = "first-day";
    let mut browser = Browser::start(
        &app.worker_url,
        test,
        BrowserOptions {
            javascript,
            ..Default::default()
        },
    )
    .await;

    // Log in with the one-time passphrase.
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/inloggen");
    browser.screenshot("login").await;
    if javascript {
        assert_accessible(&browser, "login").await;
    }
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", &worker.passphrase).await;
    browser.fill("#totp", &app.totp_code(&worker)).await;
    submit(&browser, "/inloggen").await;
    // Forced to choose a passphrase.
    assert_eq!(browser.path().await, "/wachtwoordzin");
    browser.screenshot("passphrase").await;
    if javascript {
        assert_accessible(&browser, "passphrase").await;
    }
    browser.fill("#current", &worker.passphrase).await;
    browser.fill("#new", NEW_PASSPHRASE).await;
    browser.fill("#repeat", NEW_PASSPHRASE).await;
    submit(&browser, "/wachtwoordzin").await;
    // Then the TOTP enrolment: a QR code drawn on the server, and the secret as text.
    assert_eq!(browser.path().await, "/tweestaps");
    assert!(
        browser.exists(".qr svg path").await,
        "an inline SVG QR code"
    );
    browser.screenshot("totp").await;
    if javascript {
        assert_accessible(&browser, "totp").await;
    }
    let secret_text = browser.text(".secret").await.replace(' ', "");
    let secret = TotpSecret::from_bytes(
        &data_encoding::BASE32_NOPAD
            .decode(secret_text.as_bytes())
            .unwrap(),
    );
    app.clock.advance(Duration::from_secs(30));
    browser.fill("#code", &secret.code_at(app.now())).await;
    browser.fill("#passphrase", NEW_PASSPHRASE).await;
    submit(&browser, "/tweestaps").await;
    assert_eq!(browser.path().await, "/?ok=tweestaps");
    let notice = browser.text(".notice").await;
    assert!(
        notice.contains("authenticator-app is ingesteld"),
        "{notice}"
    );
    // Only the new secret logs in now (over the API as well).
    let old = app
        .login_response("w400", NEW_PASSPHRASE, &app.totp_code(&worker))
        .await;
    assert_eq!(
        old.status(),
        401,
        "the administrator's TOTP secret no longer works"
    );
    app.clock.advance(Duration::from_secs(30));
    let new = app
        .login_response("w400", NEW_PASSPHRASE, &secret.code_at(app.now()))
        .await;
    assert_eq!(new.status(), 200);

    // The inbox: the partner's message, unread, urgent, a referral.
    browser.goto("/").await;
    browser.screenshot("inbox").await;
    if javascript {
        assert_accessible(&browser, "inbox").await;
    }
    let row = browser.text(".messages li").await;
    for expected in ["Jeugdbescherming West", "ongelezen", "spoed", "aanmelding"] {
        assert!(
            row.to_uppercase().contains(&expected.to_uppercase()),
            "{row}"
        );
    }
    browser.click_and_wait(".messages a").await;
    assert!(browser.path().await.starts_with("/berichten/"));
    assert_eq!(
        browser.text(".text-mail").await,
        "Graag overname <b>vandaag</b>.",
        "escaped, not rendered"
    );
    assert_eq!(browser.text(".subject").await, "Aanmelding gezin");
    browser.screenshot("message").await;
    if javascript {
        assert_accessible(&browser, "message").await;
    }

    // A mail from a partner, answered from the alias it came to.
    let mail_id = deliver_mail(
        &app,
        &worker.alias,
        "gipost.example",
        &format!(
            "From: Secretariaat <secretariaat@gipost.example>\r\nTo: {}\r\nSubject: Overleg\r\n\
             Message-ID: <o1@gipost.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nWanneer kun je?\r\n",
            worker.alias
        ),
    )
    .await;
    browser.goto(&format!("/berichten/{mail_id}")).await;
    browser.fill("#reply-body", "Donderdag om tien uur.").await;
    browser.screenshot("reply").await;
    submit(&browser, &format!("/berichten/{mail_id}/antwoord")).await;
    assert_eq!(browser.path().await, "/verzonden?ok=verstuurd");
    assert!(browser
        .text(".messages")
        .await
        .to_lowercase()
        .contains("in de wachtrij"));
    browser.screenshot("sent").await;
    if javascript {
        assert_accessible(&browser, "sent").await;
    }

    // A new message from the alias to a partner.
    browser.goto("/schrijven").await;
    if javascript {
        assert_accessible(&browser, "write").await;
    }
    browser.fill("#to", "secretariaat@gipost.example").await;
    browser.fill("#subject", "Nieuwe zaak").await;
    browser.fill("#body", "Zie bijlage.").await;
    submit(&browser, "/schrijven").await;
    assert_eq!(browser.path().await, "/verzonden?ok=verstuurd");
    assert_eq!(
        browser
            .client
            .find_all(Locator::Css(".messages li"))
            .await
            .unwrap()
            .len(),
        2
    );

    // A per-case alias with a purpose note, then burned after the confirmation step.
    browser.goto("/aliassen").await;
    submit(&browser, "/aliassen").await;
    assert_eq!(browser.path().await, "/aliassen?ok=alias");
    let newest = browser.text(".aliases li h2").await;
    assert_ne!(newest, worker.alias);
    browser
        .fill("#note-1", "zaak 2026-14, advocaat moeder")
        .await;
    submit(&browser, &format!("/aliassen/{newest}/notitie")).await;
    assert_eq!(browser.path().await, "/aliassen?ok=notitie");
    assert_eq!(
        browser.text("#note-1").await,
        "zaak 2026-14, advocaat moeder"
    );
    browser.screenshot("aliases").await;
    if javascript {
        assert_accessible(&browser, "aliases").await;
    }
    browser
        .click_and_wait(&format!("a[href=\"/aliassen/{newest}/verbranden\"]"))
        .await;
    browser.screenshot("burn-confirm").await;
    if javascript {
        assert_accessible(&browser, "burn").await;
    }
    submit(&browser, &format!("/aliassen/{newest}/verbranden")).await;
    assert_eq!(browser.path().await, "/aliassen?ok=verbrand");
    assert!(browser.text(".aliases li.burned").await.contains(&newest));
    let resolved = schuilnaam::alias::resolve(
        &app.core.store,
        &schuilnaam::alias::Address::parse(&newest).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(resolved, schuilnaam::alias::Resolution::Burned);

    // The remaining pages.
    for (path, name) in [
        ("/kenmerken", "markers"),
        ("/sessies", "sessions"),
        ("/dienst", "duty"),
        ("/berichten/00000000000000000000000000000000", "not-found"),
    ] {
        browser.goto(path).await;
        browser.screenshot(name).await;
        if javascript {
            assert_accessible(&browser, name).await;
        }
    }
    // English, and back.
    browser.goto("/").await;
    submit(&browser, "/taal").await;
    assert_eq!(browser.path().await, "/");
    let lang: String = browser
        .client
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lang, "en");
    assert!(browser.text("h1").await.contains("Inbox"));
    browser.screenshot("inbox-en").await;
    if javascript {
        assert_accessible(&browser, "inbox (en)").await;
    }
    submit(&browser, "/taal").await;
    assert!(browser.text("h1").await.contains("Postvak"));

    // Log out: the session and its unlocked key are gone.
    assert!(app.sessions.unlocked_identities() >= 1);
    submit(&browser, "/uitloggen").await;
    assert_eq!(browser.path().await, "/inloggen?ok=uitgelogd");
    browser.screenshot("logged-out").await;
    browser.goto("/").await;
    assert_eq!(browser.path().await, "/inloggen");
    browser.close().await;
    // The API session of the TOTP check above is the only one left.
    assert_eq!(app.sessions.len(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_first_day_in_chromium() {
    first_day(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_first_day_in_chromium_without_javascript() {
    first_day(false).await;
}

/// HTML mail with script, event handlers, javascript: and data: links, CSS url() and remote images:
/// shown in Chromium, nothing runs and no request leaves for the "remote" host (which Chromium resolves
/// to a loopback listener that counts every connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_mail_renders_inert_in_chromium() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.add_mail_partner("GI Html", "gihtml.example").await;
    let mut worker = app.add_worker("w401").await;
    let remote = RemoteRecorder::start();
    let r = format!("http://{REMOTE_HOST}");
    let html = format!(
        r#"<html><head><style>body {{ background: url({r}/css-bg.png) }} @import url({r}/import.css);</style>
<script>window.__ran = 1; new Image().src = "{r}/script.gif";</script>
<link rel="stylesheet" href="{r}/sheet.css"><meta http-equiv="refresh" content="0;url={r}/refresh"></head>
<body onload="window.__ran = 2">
<h1 id="kop">Verslag</h1>
<p style="background-image: url('{r}/inline-bg.png')">Tekst <b>vet</b></p>
<img src="{r}/pixel.gif" onerror="window.__ran = 3" alt="pixel">
<img srcset="{r}/srcset.png 2x">
<picture><source srcset="{r}/source.png"></picture>
<a href="javascript:window.__ran=4" id="js">js-link</a>
<a href="data:text/html,<script>alert(1)</script>" id="data">data-link</a>
<a href="{r}/track">volg</a>
<form action="{r}/form"><input name="q" value="x"><button>go</button></form>
<iframe src="{r}/frame"></iframe><object data="{r}/object"></object><embed src="{r}/embed">
<svg><image href="{r}/svg.png"/><script>window.__ran = 5</script></svg>
<video poster="{r}/poster.png" src="{r}/video.mp4"></video><audio src="{r}/audio.mp3"></audio>
<table background="{r}/table.png"><tr><td>cel</td></tr></table>
</body></html>"#
    );
    let raw = format!(
        "From: Team <team@gihtml.example>\r\nTo: {}\r\nSubject: Opgemaakt\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"grens\"\r\n\r\n--grens\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nVerslag\r\n--grens\r\n\
         Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--grens--\r\n",
        worker.alias
    );
    let id = deliver_mail(&app, &worker.alias, "gihtml.example", &raw).await;
    // The one-time passphrase is changed over HTTP first; Chromium then logs in straight to the inbox.
    crate::web_support::page_login(&app, &mut worker).await;
    let options = BrowserOptions {
        javascript: true,
        remote_host_at: Some(remote.address),
    };
    // The recorder works: a browser that does fetch the remote host is seen (a separate session, so
    // that the reading browser has no history with that host to preconnect to).
    let probe = Browser::start(&app.worker_url, "html-mail-probe", options.clone()).await;
    probe.client.goto(&format!("{r}/probe")).await.unwrap();
    probe.close().await;
    assert!(
        remote.requests().contains(&"GET /probe".to_string()),
        "the remote-host recorder must see a real request: {:?}",
        remote.requests()
    );
    let (connections, requests) = (remote.connections(), remote.requests());
    let mut browser = Browser::start(&app.worker_url, "html-mail", options).await;
    log_in(&browser, &app, &worker).await;
    browser.goto(&format!("/berichten/{id}")).await;
    browser.screenshot("html-mail").await;
    assert_eq!(browser.text(".html-mail h1").await, "Verslag");
    assert!(browser.text(".html-mail").await.contains("Tekst vet"));
    // Click every link in the mail: none goes anywhere.
    for link in browser
        .client
        .find_all(Locator::Css(".html-mail a"))
        .await
        .unwrap()
    {
        let _ = link.click().await;
    }
    assert!(browser
        .path()
        .await
        .starts_with(&format!("/berichten/{id}")));
    let ran = browser
        .client
        .execute("return window.__ran === undefined;", vec![])
        .await
        .unwrap();
    assert_eq!(ran, json!(true), "no script of the mail ran");
    // Everything the page loaded came from the relay itself.
    let origins = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)\
               .concat([location.host]);",
            vec![],
        )
        .await
        .unwrap();
    let own = app.worker_url.trim_start_matches("https://").to_string();
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str().unwrap(), own, "a request left for {origin}");
    }
    assert_accessible(&browser, "html mail").await;
    browser.close().await;
    assert_eq!(
        remote.connections(),
        connections,
        "a connection was made to the remote host"
    );
    assert_eq!(
        remote.requests(),
        requests,
        "a request reached the remote host"
    );
    app.stop().await;
}

async fn log_in(browser: &Browser, app: &TestApp, worker: &crate::helpers::TestWorker) {
    browser.goto("/inloggen").await;
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", &worker.passphrase).await;
    browser.fill("#totp", &app.totp_code(worker)).await;
    submit(browser, "/inloggen").await;
    assert_eq!(browser.path().await, "/", "logged in");
}

/// Every line the relays of this test binary log, at debug level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A worker whose age identity lives on their device reads a message in Chromium: the page fetches
/// the sealed file and opens it with the identity file the worker picks. A TLS proxy in front of the
/// relay records every byte the browser sent, and the relay's log is captured: neither holds the
/// identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_key_worker_reads_in_chromium_and_the_key_never_reaches_the_server() {
    let logs = captured_logs();
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("Politie Apparaat").await;
    let identity = age::x25519::Identity::generate();
    let secret = {
        use age::secrecy::ExposeSecret;
        identity.to_string().expose_secret().to_string()
    };
    let worker = app
        .add_worker_with("w402", Some(identity.to_public()))
        .await;
    let posted = post_message(
        &partner,
        &app.partner_url,
        &message(
            &worker.alias,
            "Proces-verbaal",
            "Alleen op het apparaat te lezen.",
        ),
    )
    .await
    .unwrap();
    assert_eq!(posted.status(), 202);
    let key_dir = tempfile::tempdir().unwrap();
    let key_file = key_dir.path().join("sleutel.txt");
    std::fs::write(&key_file, format!("# mijn sleutel\n{secret}\n")).unwrap();

    let proxy = RecordingProxy::start(&app.worker_url, &app.ca_pem).await;
    let mut browser = Browser::start(
        &proxy.url,
        "device-key",
        BrowserOptions {
            javascript: true,
            ..Default::default()
        },
    )
    .await;
    browser.goto("/inloggen").await;
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", &worker.passphrase).await;
    browser.fill("#totp", &app.totp_code(&worker)).await;
    submit(&browser, "/inloggen").await;
    browser.fill("#current", &worker.passphrase).await;
    browser.fill("#new", NEW_PASSPHRASE).await;
    browser.fill("#repeat", NEW_PASSPHRASE).await;
    submit(&browser, "/wachtwoordzin").await;
    browser.goto("/").await;
    let id = first_message_link(&browser.source().await).expect("the message in the inbox");
    browser.goto(&format!("/berichten/{id}")).await;
    // No key on the server: the message page leads to the device-key page.
    assert_eq!(browser.path().await, format!("/berichten/{id}/apparaat"));
    browser.screenshot("device-page").await;
    assert_accessible(&browser, "device page").await;
    let page = browser.source().await;
    assert!(
        page.contains("integrity=\"sha256-"),
        "scripts carry SRI hashes"
    );
    browser
        .client
        .find(Locator::Css("#identity"))
        .await
        .unwrap()
        .send_keys(key_file.to_str().unwrap())
        .await
        .unwrap();
    submit_device(&browser).await;
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("#device-message:not([hidden])"))
        .await
        .expect("the message opens in the browser");
    assert_eq!(
        browser.text("#device-body").await,
        "Alleen op het apparaat te lezen."
    );
    assert_eq!(browser.text("#device-subject").await, "Proces-verbaal");
    browser.screenshot("device-opened").await;
    browser.close().await;
    app.stop().await;

    let sent = String::from_utf8_lossy(&proxy.sent()).to_string();
    assert!(
        sent.contains(&format!("GET /berichten/{id}/age")),
        "the proxy saw the traffic"
    );
    let bech32 = secret.trim_start_matches("AGE-SECRET-KEY-1");
    for form in [
        secret.as_str(),
        &secret.to_lowercase(),
        bech32,
        &bech32.to_lowercase(),
    ] {
        assert!(!sent.contains(form), "the identity was sent to the server");
    }
    let logged = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(
        logged.contains("/berichten/{id}/age"),
        "the relay's log was captured"
    );
    for form in [
        secret.as_str(),
        &secret.to_lowercase(),
        bech32,
        &bech32.to_lowercase(),
    ] {
        assert!(!logged.contains(form), "the identity is in a log line");
    }
}

async fn submit_device(browser: &Browser) {
    // The script opens the message in place: no new page.
    browser.click("#device-form button[type=\"submit\"]").await;
}

/// The audit details of one action, in order (written first).
async fn audit_details(app: &TestApp, action: &str) -> Vec<String> {
    app.flush_audit().await;
    sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(app.core.store.pool())
        .await
        .unwrap()
}

async fn log_out(browser: &Browser) {
    submit(browser, "/uitloggen").await;
    assert!(browser.path().await.starts_with("/inloggen"));
}

/// Passkeys in Chromium with a virtual authenticator (WebDriver's WebAuthn extension, a real
/// WebAuthn ceremony in the browser): the worker adds one after confirming the passphrase, logs out,
/// and logs in with handle, passphrase and the passkey instead of a code. Once removed, the same
/// passkey no longer logs in, and the failure looks like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passkey_replaces_the_code_in_chromium() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let worker = app.add_worker("w403").await;
    // Passkeys need a host name: the development relying party is localhost.
    let base = app.worker_url.replace("127.0.0.1", "localhost");
    let mut browser = Browser::start(
        &base,
        "passkey",
        BrowserOptions {
            javascript: true,
            ..Default::default()
        },
    )
    .await;
    let authenticator = browser.add_virtual_authenticator().await;
    browser.goto("/inloggen").await;
    assert!(
        browser.exists("#passkey-login:not([hidden])").await,
        "the script offers the passkey login"
    );
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", &worker.passphrase).await;
    browser.fill("#totp", &app.totp_code(&worker)).await;
    submit(&browser, "/inloggen").await;
    browser.fill("#current", &worker.passphrase).await;
    browser.fill("#new", NEW_PASSPHRASE).await;
    browser.fill("#repeat", NEW_PASSPHRASE).await;
    submit(&browser, "/wachtwoordzin").await;

    browser.goto("/sleutels").await;
    assert!(
        !browser.exists("#passkey-script-needed:not([hidden])").await,
        "with script, the page does not say it needs it"
    );
    browser.screenshot("passkeys-empty").await;
    assert_accessible(&browser, "passkeys").await;
    browser.fill("#label", "telefoon").await;
    browser.fill("#passphrase", NEW_PASSPHRASE).await;
    submit(&browser, "/sleutels").await;
    assert_eq!(browser.path().await, "/sleutels?ok=passkey");
    assert!(browser.text("#passkeys").await.contains("telefoon"));
    browser.screenshot("passkey-added").await;
    assert_eq!(
        browser
            .authenticator_credentials(&authenticator)
            .await
            .len(),
        1,
        "the private key is on the authenticator"
    );
    assert_eq!(audit_details(&app, "worker.passkey_added").await.len(), 1);

    // Log in again with the passkey instead of a code.
    log_out(&browser).await;
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", NEW_PASSPHRASE).await;
    browser.click_and_wait("#passkey-login").await;
    assert_eq!(browser.path().await, "/", "logged in with the passkey");
    browser.screenshot("logged-in-with-passkey").await;
    assert_eq!(
        audit_details(&app, "login.success").await.last().unwrap(),
        "second_factor=passkey"
    );
    // The passphrase stays the first factor: a wrong one with a good passkey fails.
    log_out(&browser).await;
    browser.fill("#handle", &worker.handle).await;
    browser
        .fill("#passphrase", "niet mijn wachtwoordzin hoor")
        .await;
    browser.click_and_wait("#passkey-login").await;
    assert_eq!(browser.path().await, "/inloggen");
    assert!(browser.exists("#login-error").await);

    // Removed, the passkey no longer logs in; the answer is the login's usual one.
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", NEW_PASSPHRASE).await;
    app.clock.advance(Duration::from_secs(30));
    browser.fill("#totp", &app.totp_code(&worker)).await;
    submit(&browser, "/inloggen").await;
    browser.goto("/sleutels").await;
    browser
        .click_and_wait("form[action$=\"/verwijderen\"] button[type=\"submit\"]")
        .await;
    assert_eq!(browser.path().await, "/sleutels?ok=passkey-weg");
    assert!(!browser.text("#passkeys").await.contains("telefoon"));
    log_out(&browser).await;
    browser.fill("#handle", &worker.handle).await;
    browser.fill("#passphrase", NEW_PASSPHRASE).await;
    browser.click_and_wait("#passkey-login").await;
    assert_eq!(browser.path().await, "/inloggen");
    assert!(browser.exists("#login-error").await);
    let failures = audit_details(&app, "login.failure").await;
    assert_eq!(failures, ["passphrase", "passkey"]);
    browser.close().await;
    app.stop().await;
}
