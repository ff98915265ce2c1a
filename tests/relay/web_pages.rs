//! The web app over HTTP (no browser): security headers and cookie flags on every page, CSRF, the
//! same 404 for someone else's message as for a missing one, pages that show a message never cached,
//! the login's rate limit and its answer that names no factor, the leak guard's refusal kept out of
//! URLs and logs, sessions and unread marks.

use serde_json::json;

use crate::helpers::{delivered, message, post_message, Backend, TestApp};
use crate::on_both_backends;
use crate::web_support::{csrf_of, deliver_mail, page_login, PageClient};

const SESSION_COOKIE: &str = "__Host-schuilnaam";

/// The headers every page must carry.
fn assert_page_headers(response: &reqwest::Response, what: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert!(
        !csp.contains("sandbox"),
        "{what}: the API's CSP leaked onto a page"
    );
    assert!(
        header("strict-transport-security").contains("max-age="),
        "{what}"
    );
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("cache-control"), "no-store", "{what}");
}

async fn every_page_has_the_security_headers_and_strict_cookies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("GI Koppen").await;
    let mut worker = app.add_worker("w300").await;
    let id = delivered(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "Koppen", "Tekst"),
    )
    .await;

    // Before login: the login page sets only the pre-login cookie, with every flag.
    let anonymous = PageClient::new(&app);
    let login = anonymous.get("/inloggen").await;
    assert_page_headers(&login, "/inloggen");
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.starts_with("__Host-schuilnaam-pre="),
        "{set_cookie}"
    );
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(set_cookie.contains(flag), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Domain="), "{set_cookie}");
    // Logged out, a page sends to the login.
    let inbox = anonymous.get("/").await;
    assert_eq!(inbox.status(), 303);
    assert_eq!(inbox.headers()["location"], "/inloggen");

    let client = PageClient::new(&app);
    let login_page = client.text("/inloggen").await;
    let code = app.totp_code(&worker);
    let logged_in = client
        .post(
            "/inloggen",
            &[
                ("csrf", csrf_of(&login_page).as_str()),
                ("handle", worker.handle.as_str()),
                ("passphrase", worker.passphrase.as_str()),
                ("totp", code.as_str()),
            ],
        )
        .await;
    assert_eq!(logged_in.status(), 303);
    assert_page_headers(&logged_in, "POST /inloggen");
    let session_cookie = logged_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .expect("a session cookie");
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(session_cookie.contains(flag), "{session_cookie}");
    }
    assert!(
        !session_cookie.contains("Max-Age"),
        "a browser-session cookie"
    );
    // The one-time passphrase must be changed first: every page sends there.
    assert_eq!(
        client.get("/").await.headers()["location"],
        "/wachtwoordzin"
    );
    let page = client.text("/wachtwoordzin").await;
    client
        .post(
            "/wachtwoordzin",
            &[
                ("csrf", csrf_of(&page).as_str()),
                ("current", worker.passphrase.as_str()),
                ("new", crate::helpers::PASSPHRASE_AFTER_CHANGE),
                ("repeat", crate::helpers::PASSPHRASE_AFTER_CHANGE),
            ],
        )
        .await;
    worker.passphrase = crate::helpers::PASSPHRASE_AFTER_CHANGE.to_string();

    let aliases = client.text("/aliassen").await;
    assert!(aliases.contains(&worker.alias));
    for path in [
        "/".to_string(),
        "/?pagina=2".to_string(),
        format!("/berichten/{id}"),
        "/schrijven".to_string(),
        "/verzonden".to_string(),
        "/aliassen".to_string(),
        format!("/aliassen/{}/verbranden", worker.alias),
        "/kenmerken".to_string(),
        "/sessies".to_string(),
        "/dienst".to_string(),
        "/tweestaps".to_string(),
        "/wachtwoordzin".to_string(),
    ] {
        let response = client.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_page_headers(&response, &path);
        let body = response.text().await.unwrap();
        assert!(
            body.starts_with("<!doctype html>\n<html lang=\"nl\">"),
            "{path}"
        );
        assert!(!body.contains("<script"), "{path}: a page without script");
        assert!(!body.contains(" style="), "{path}: no inline style");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}: nothing from elsewhere"
        );
    }
    // Downloads are attachments, never rendered; the age file too.
    let age = client.get(&format!("/berichten/{id}/age")).await;
    assert_eq!(age.status(), 200);
    assert!(age.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(age.headers()["content-type"], "application/octet-stream");
    assert_page_headers(&age, "age file");
    // The API keeps its own, stricter policy on the same listener.
    let api = app
        .client()
        .get(format!("{}/v1/messages", app.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    assert!(api.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    app.stop().await;
}

async fn forms_without_the_right_csrf_token_are_refused_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("GI Csrf").await;
    let mut worker = app.add_worker("w301").await;
    let id = delivered(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await;
    let client = page_login(&app, &mut worker).await;
    let good = csrf_of(&client.text("/").await);
    // A token of another session is as wrong as none.
    let mut other = app.add_worker("w302").await;
    let other_client = page_login(&app, &mut other).await;
    let foreign = csrf_of(&other_client.text("/").await);
    assert_ne!(good, foreign);
    for token in [None, Some("0".repeat(40)), Some(foreign.clone())] {
        let form = |extra: &[(&'static str, &'static str)]| {
            let mut fields: Vec<(&str, String)> =
                extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
            if let Some(token) = &token {
                fields.push(("csrf", token.clone()));
            }
            fields
        };
        let posts: Vec<(String, Vec<(&str, String)>)> = vec![
            (format!("/berichten/{id}/verwijderen"), form(&[])),
            (format!("/aliassen/{}/verbranden", worker.alias), form(&[])),
            ("/aliassen".into(), form(&[])),
            (
                format!("/aliassen/{}/notitie", worker.alias),
                form(&[("note", "zaak 12")]),
            ),
            (
                format!("/aliassen/{}/contacten", worker.alias),
                form(&[("contact", "moeder@familie.example")]),
            ),
            ("/kenmerken".into(), form(&[("names", "Jansen")])),
            ("/tokens".into(), form(&[("label", "laptop")])),
            ("/uitloggen".into(), form(&[])),
            (
                "/wachtwoordzin".into(),
                form(&[("current", "x"), ("new", "y"), ("repeat", "y")]),
            ),
            ("/taal".into(), form(&[("lang", "en"), ("back", "/")])),
        ];
        for (path, fields) in posts {
            let borrowed: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let response = client.post(&path, &borrowed).await;
            assert_eq!(response.status(), 403, "{path} with {token:?}");
            assert_page_headers(&response, &path);
        }
        // Multipart forms too.
        let reply = reqwest::multipart::Form::new().text("body", "antwoord");
        let reply = match &token {
            Some(token) => reply.text("csrf", token.clone()),
            None => reply,
        };
        let response = client.post_multipart("/schrijven", reply).await;
        assert_eq!(response.status(), 403);
    }
    // Nothing changed: the message, the alias, the session, the markers, no tokens, the language.
    assert_eq!(client.get(&format!("/berichten/{id}")).await.status(), 200);
    let aliases = client.text("/aliassen").await;
    assert!(!aliases.contains("class=\"burned\""));
    assert_eq!(
        aliases.matches("<h2 class=\"alias\">").count(),
        1,
        "no alias was added"
    );
    assert!(!aliases.contains("zaak 12"));
    let markers = client.text("/kenmerken").await;
    assert!(markers.contains("(0 opgeslagen)"));
    assert!(client
        .text("/sessies")
        .await
        .contains("Je hebt geen API-tokens."));
    assert!(client.text("/").await.contains("lang=\"nl\""));
    // The login form's token is bound to the pre-login cookie.
    let fresh = PageClient::new(&app);
    fresh.text("/inloggen").await;
    let code = app.totp_code(&worker);
    let refused = fresh
        .post(
            "/inloggen",
            &[
                ("csrf", good.as_str()),
                ("handle", worker.handle.as_str()),
                ("passphrase", worker.passphrase.as_str()),
                ("totp", code.as_str()),
            ],
        )
        .await;
    assert_eq!(refused.status(), 403);
    assert!(!fresh.has_cookie(SESSION_COOKIE));
    app.stop().await;
}

/// A subject and body with bidirectional overrides ("factuur\u{202E}fdp.exe" reads as
/// "factuurexe.pdf") are shown without them.
async fn bidirectional_overrides_from_outside_are_not_shown(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("GI Omkeer").await;
    let mut worker = app.add_worker("w313").await;
    let id = delivered(
        &partner,
        &app.partner_url,
        &message(
            &worker.alias,
            "factuur\u{202E}fdp.exe",
            "Zie bijlage\u{2067} factuur\u{202E}fdp.exe\u{2069}.",
        ),
    )
    .await;
    let client = page_login(&app, &mut worker).await;
    let page = client.text(&format!("/berichten/{id}")).await;
    assert!(page.contains("factuurfdp.exe"), "{page}");
    for control in ['\u{202E}', '\u{2067}', '\u{2069}'] {
        assert!(!page.contains(control), "{control:?} on the page");
    }
    app.stop().await;
}

async fn another_workers_message_is_the_same_404_as_a_missing_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("GI Vreemd").await;
    let mut mine = app.add_worker("w303").await;
    let theirs = app.add_worker("w304").await;
    let their_id = delivered(
        &partner,
        &app.partner_url,
        &message(&theirs.alias, "van w304", "geheim"),
    )
    .await;
    let missing = "0123456789abcdef0123456789abcdef";
    let client = page_login(&app, &mut mine).await;
    let csrf = csrf_of(&client.text("/").await);
    for suffix in ["", "/age", "/apparaat", "/bijlagen/0"] {
        let theirs = client.get(&format!("/berichten/{their_id}{suffix}")).await;
        let none = client.get(&format!("/berichten/{missing}{suffix}")).await;
        assert_eq!(theirs.status(), 404, "{suffix}");
        assert_eq!(none.status(), 404, "{suffix}");
        let (a, b) = (theirs.text().await.unwrap(), none.text().await.unwrap());
        assert_eq!(a, b, "{suffix}: the same page");
    }
    let deleted = client
        .post(
            &format!("/berichten/{their_id}/verwijderen"),
            &[("csrf", &csrf)],
        )
        .await;
    let none = client
        .post(
            &format!("/berichten/{missing}/verwijderen"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.status(), 404);
    assert_eq!(none.status(), 404);
    assert_eq!(deleted.text().await.unwrap(), none.text().await.unwrap());
    // Someone else's alias likewise.
    let burn = client
        .post(
            &format!("/aliassen/{}/verbranden", theirs.alias),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(burn.status(), 404);
    let confirm = client
        .get(&format!("/aliassen/{}/verbranden", theirs.alias))
        .await;
    assert_eq!(confirm.status(), 404);
    assert_eq!(
        app.stored_messages().await,
        1,
        "their message is still there"
    );
    app.stop().await;
}

/// A page with the script's per-response nonce blanked out.
fn without_nonce(page: &str) -> String {
    match page.find("nonce=\"") {
        Some(start) => {
            let value = start + "nonce=\"".len();
            let end = value + page[value..].find('"').unwrap();
            format!("{}{}", &page[..value], without_nonce(&page[end..]))
        }
        None => page.to_string(),
    }
}

/// The script tag's nonce and the page's CSP agree, with Subresource Integrity and nothing inline.
fn assert_script_page(headers: &reqwest::header::HeaderMap, body: &str, what: &str) {
    let csp = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    let start = body.find("nonce=\"").expect("a script with a nonce") + "nonce=\"".len();
    let nonce = &body[start..start + body[start..].find('"').unwrap()];
    assert!(
        csp.contains(&format!("script-src 'nonce-{nonce}'")),
        "{what}: {csp}"
    );
    assert!(body.contains("passkey.js\" integrity=\"sha256-"), "{what}");
    assert_eq!(
        body.matches("<script").count(),
        1,
        "{what}: one script, no inline one"
    );
}

/// The passkey page over HTTP: a script page with nonce and SRI; adding a passkey asks for the
/// passphrase again, needs a ceremony answer to a challenge this relay issued to this session, and
/// stores nothing otherwise; removing someone else's (or a missing) passkey is the same 404; a login
/// with a forged passkey answer fails like any other factor and is audited as such.
async fn passkeys_are_added_only_with_a_verified_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut worker = app.add_worker("w312").await;
    let anonymous = PageClient::new(&app);
    let away = anonymous.get("/sleutels").await;
    assert_eq!(away.status(), 303);
    assert_eq!(away.headers()["location"], "/inloggen");
    let login = anonymous.get("/inloggen").await;
    assert_page_headers(&login, "/inloggen");
    let headers = login.headers().clone();
    assert_script_page(&headers, &login.text().await.unwrap(), "/inloggen");

    let client = page_login(&app, &mut worker).await;
    let response = client.get("/sleutels").await;
    assert_eq!(response.status(), 200);
    assert_page_headers(&response, "/sleutels");
    let headers = response.headers().clone();
    let same_page = response.text().await.unwrap();
    assert_script_page(&headers, &same_page, "/sleutels");
    let stored = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM worker_passkeys")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap()
    };
    let csrf = csrf_of(&same_page);
    // A challenge of the page, in a clientDataJSON whose attestation is garbage.
    let marker = "data-challenge=\"";
    let start = same_page.find(marker).unwrap() + marker.len();
    let challenge = &same_page[start..start + same_page[start..].find('"').unwrap()];
    let b64 = |bytes: &[u8]| data_encoding::BASE64URL_NOPAD.encode(bytes);
    let client_data = b64(format!(
        r#"{{"type":"webauthn.create","challenge":"{challenge}","origin":"https://localhost"}}"#
    )
    .as_bytes());
    let attempt = |csrf: String, passphrase: &'static str, client_data: String| {
        let client = &client;
        async move {
            client
                .post(
                    "/sleutels",
                    &[
                        ("csrf", csrf.as_str()),
                        ("label", "telefoon"),
                        ("passphrase", passphrase),
                        ("client_data", client_data.as_str()),
                        ("attestation", "o2NmbXRkbm9uZQ"),
                    ],
                )
                .await
        }
    };
    let passphrase = crate::helpers::PASSPHRASE_AFTER_CHANGE;
    assert_eq!(
        attempt(String::new(), passphrase, client_data.clone())
            .await
            .status(),
        403
    );
    assert_eq!(
        attempt("0".repeat(40), passphrase, client_data.clone())
            .await
            .status(),
        403
    );
    let wrong = attempt(csrf.clone(), "niet de wachtwoordzin", client_data.clone()).await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("wachtwoordzin klopt niet"));
    let without_script = attempt(csrf.clone(), passphrase, String::new()).await;
    assert_eq!(without_script.status(), 422);
    assert!(without_script
        .text()
        .await
        .unwrap()
        .contains("alleen met JavaScript"));
    let unverified = attempt(csrf.clone(), passphrase, client_data.clone()).await;
    assert_eq!(unverified.status(), 422);
    assert!(unverified
        .text()
        .await
        .unwrap()
        .contains("kon niet worden gecontroleerd"));
    // A challenge this relay never issued.
    let forged = b64(br#"{"type":"webauthn.create","challenge":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","origin":"https://localhost"}"#);
    assert_eq!(
        attempt(csrf.clone(), passphrase, forged).await.status(),
        422
    );
    assert_eq!(stored().await, 0, "nothing was stored");

    let missing = client
        .post(
            &format!("/sleutels/{}/verwijderen", "a".repeat(32)),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(missing.status(), 404);
    let malformed = client
        .post("/sleutels/..%2Fx/verwijderen", &[("csrf", &csrf)])
        .await;
    assert_eq!(malformed.status(), 404);

    // A forged passkey answer at login: the usual 401, audited as a passkey failure.
    let fresh = PageClient::new(&app);
    let page = fresh.text("/inloggen").await;
    let failed = fresh
        .post(
            "/inloggen",
            &[
                ("csrf", csrf_of(&page).as_str()),
                ("handle", "w312"),
                ("passphrase", passphrase),
                ("totp", ""),
                ("passkey_id", "AQID"),
                ("passkey_client_data", &client_data),
                ("passkey_authenticator_data", "AQID"),
                ("passkey_signature", "AQID"),
            ],
        )
        .await;
    assert_eq!(failed.status(), 401);
    assert!(failed
        .text()
        .await
        .unwrap()
        .contains("gebruikersnaam, wachtwoordzin of code klopt niet"));
    app.flush_audit().await;
    let failures: Vec<String> = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'login.failure' ORDER BY seq",
    )
    .fetch_all(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(failures, ["passkey"]);
    app.stop().await;
}

async fn login_failures_name_no_factor_and_are_rate_limited_like_the_api(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let worker = app.add_worker("w305").await;
    let client = PageClient::new(&app);
    let page = client.text("/inloggen").await;
    let csrf = csrf_of(&page);
    let good_code = app.totp_code(&worker);
    let attempts = [
        ("w305", "fout wachtwoord", good_code.as_str()),
        ("w305", worker.passphrase.as_str(), "000000"),
        ("onbekend", worker.passphrase.as_str(), good_code.as_str()),
    ];
    let mut bodies = Vec::new();
    for (handle, passphrase, totp) in attempts {
        let response = client
            .post(
                "/inloggen",
                &[
                    ("csrf", &csrf),
                    ("handle", handle),
                    ("passphrase", passphrase),
                    ("totp", totp),
                ],
            )
            .await;
        assert_eq!(response.status(), 401);
        let body = response.text().await.unwrap();
        assert!(
            body.contains("gebruikersnaam, wachtwoordzin of code klopt niet"),
            "{body}"
        );
        // The page repeats the typed handle, nothing else; strip it (and the script's per-response
        // nonce) to compare.
        bodies.push(without_nonce(&body).replace(handle, "HANDLE"));
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    // The API and the pages share one limiter: the handle's budget (two used above) is used up across
    // both.
    let max = app.config.login.max_failures_per_handle as usize;
    for _ in 2..max {
        let response = app
            .login_response("w305", "fout wachtwoord", "000000")
            .await;
        assert_eq!(response.status(), 401);
    }
    let code = app.totp_code(&worker);
    let limited = client
        .post(
            "/inloggen",
            &[
                ("csrf", &csrf),
                ("handle", "w305"),
                ("passphrase", &worker.passphrase),
                ("totp", &code),
            ],
        )
        .await;
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.unwrap().contains("Te veel pogingen"));
    assert!(!client.has_cookie(SESSION_COOKIE));
    app.flush_audit().await;
    let failures: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failure'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    // Every attempt before the limit is audited (the unknown handle too); the limited one is not.
    assert_eq!(failures as usize, max + 1);
    app.stop().await;
}

async fn logout_ends_the_session_and_wipes_the_unlocked_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut worker = app.add_worker("w306").await;
    let client = page_login(&app, &mut worker).await;
    assert_eq!(app.sessions.unlocked_identities(), 1);
    let inbox = client.text("/").await;
    let response = client
        .post("/uitloggen", &[("csrf", &csrf_of(&inbox))])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/inloggen?ok=uitgelogd");
    assert!(!client.has_cookie(SESSION_COOKIE), "the cookie is cleared");
    assert_eq!(app.sessions.unlocked_identities(), 0);
    assert_eq!(app.sessions.len(), 0);
    assert!(client
        .text("/inloggen?ok=uitgelogd")
        .await
        .contains("Je sleutel is van de server gewist"));
    app.stop().await;
}

async fn an_idle_session_ends_and_the_pages_say_so(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut worker = app.add_worker("w307").await;
    let client = page_login(&app, &mut worker).await;
    let inbox = client.text("/").await;
    // Every logged-in page carries the warning, shown by CSS after idle − 120 s.
    let idle = app.config.session.idle_timeout_seconds;
    assert!(
        inbox.contains(&format!("/static/idle/{}.css", idle - 120)),
        "{inbox}"
    );
    assert!(inbox.contains("class=\"idle-warning\" role=\"status\""));
    let css = client
        .get(&format!("/static/idle/{}.css", idle - 120))
        .await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(css
        .text()
        .await
        .unwrap()
        .contains(&format!("animation-delay:{}s", idle - 120)));
    app.clock.advance(std::time::Duration::from_secs(idle));
    let after = client.get("/").await;
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()["location"], "/inloggen?verlopen=1");
    assert_eq!(app.sessions.unlocked_identities(), 0);
    assert!(client
        .text("/inloggen?verlopen=1")
        .await
        .contains("Je sessie is verlopen"));
    app.stop().await;
}

async fn the_inbox_pages_newest_first_with_unread_marks(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("GI Stapel").await;
    let mut worker = app.add_worker("w308").await;
    let mut ids = Vec::new();
    for i in 0..55 {
        let mut body = message(&worker.alias, &format!("bericht {i}"), "tekst");
        if i == 54 {
            body["urgent"] = json!(true);
            body["kind"] = json!("aanmelding");
        }
        app.clock.advance(std::time::Duration::from_secs(1));
        let response = post_message(&partner, &app.partner_url, &body)
            .await
            .unwrap();
        ids.push(
            response.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let client = page_login(&app, &mut worker).await;
    let first = client.text("/").await;
    assert_eq!(first.matches("<li class=\"unread\">").count(), 50);
    let newest = first.find(&ids[54]).unwrap();
    assert!(newest < first.find(&ids[53]).unwrap(), "newest first");
    assert!(first.contains("Pagina 1 / 2"));
    assert!(first.contains("href=\"/?pagina=2\""));
    assert!(first.contains("badge urgent") && first.contains("badge referral"));
    // A page number that is no number: the pages' own 400 page, not the framework's text.
    let bad = client.get("/?pagina=abc").await;
    assert_eq!(bad.status(), 400);
    let bad_page = bad.text().await.unwrap();
    assert!(bad_page.starts_with("<!doctype html>"), "{bad_page}");
    assert!(!bad_page.contains("deserialize"), "{bad_page}");
    let second = client.text("/?pagina=2").await;
    assert_eq!(second.matches("/berichten/").count(), 5);
    assert!(second.contains(&ids[0]));
    // A HEAD (a prefetch, a link checker) leaves it unread; opening marks read.
    let head = client
        .client
        .head(format!("{}/berichten/{}", client.base, ids[54]))
        .header(
            "cookie",
            format!("{SESSION_COOKIE}={}", client.cookies()[SESSION_COOKIE]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        client
            .text("/")
            .await
            .matches("<li class=\"unread\">")
            .count(),
        50
    );
    client.text(&format!("/berichten/{}", ids[54])).await;
    let again = client.text("/").await;
    assert_eq!(again.matches("<li class=\"unread\">").count(), 49);
    // Deleting removes it (post-redirect-get with a notice code, nothing else in the URL).
    let csrf = csrf_of(&again);
    let deleted = client
        .post(
            &format!("/berichten/{}/verwijderen", ids[54]),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(deleted.headers()["location"], "/?ok=verwijderd");
    assert!(client
        .text("/?ok=verwijderd")
        .await
        .contains("Het bericht is verwijderd."));
    assert_eq!(
        client
            .get(&format!("/berichten/{}", ids[54]))
            .await
            .status(),
        404
    );
    app.stop().await;
}

async fn the_leak_guard_refusal_is_explained_without_the_marker_in_url_or_log(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.outbound.smarthost = "127.0.0.1:9".into()).await;
    app.add_mail_partner("GI Lek", "gilek.example").await;
    let mut worker = app.add_worker("w309").await;
    let client = page_login(&app, &mut worker).await;
    let markers = client.text("/kenmerken").await;
    let saved = client
        .post(
            "/kenmerken",
            &[
                ("csrf", &csrf_of(&markers)),
                ("names", "Wilhelmina Zevenbergen"),
            ],
        )
        .await;
    assert_eq!(saved.headers()["location"], "/kenmerken?ok=kenmerken");
    let page = client.text("/kenmerken?ok=kenmerken").await;
    assert!(
        page.contains("(1 opgeslagen)") || page.contains("(2 opgeslagen)"),
        "{page}"
    );
    assert!(
        !page.contains("Zevenbergen"),
        "markers are never shown back"
    );

    let id = deliver_mail(
        &app,
        &worker.alias,
        "gilek.example",
        &format!(
            "From: Team <team@gilek.example>\r\nTo: {}\r\nSubject: Vraag\r\nMessage-ID: <v1@gilek.example>\r\n\r\nKun je bellen?\r\n",
            worker.alias
        ),
    )
    .await;
    let message_page = client.text(&format!("/berichten/{id}")).await;
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&message_page))
        .text("body", "Groet, W. Zevenbergen");
    let refused = client
        .post_multipart(&format!("/berichten/{id}/antwoord"), form)
        .await;
    assert_eq!(
        refused.status(),
        422,
        "answered on the page, not redirected"
    );
    assert!(refused.headers().get("location").is_none());
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("je bericht bevat iets dat naar jou kan leiden: je eigen naam"),
        "{body}"
    );
    assert!(
        body.contains("Groet, W. Zevenbergen</textarea>"),
        "the draft is kept"
    );
    // Nothing was queued; a clean reply is.
    let queued: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbound_messages WHERE kind = 'reply'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    assert_eq!(queued, 0);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf_of(&message_page))
        .text("body", "Ik bel morgen.")
        .part(
            "attachment",
            reqwest::multipart::Part::bytes(b"verslag".to_vec())
                .file_name("verslag.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let sent = client
        .post_multipart(&format!("/berichten/{id}/antwoord"), form)
        .await;
    assert_eq!(sent.status(), 303);
    assert_eq!(sent.headers()["location"], "/verzonden?ok=verstuurd");
    let sent_page = client.text("/verzonden?ok=verstuurd").await;
    assert!(sent_page.contains("in de wachtrij"), "{sent_page}");
    assert!(sent_page.contains("team@gilek.example"));
    // The audit log and the database hold no marker text.
    let dump: Vec<String> = sqlx::query_scalar("SELECT detail || subject FROM audit_log")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap();
    assert!(!dump.iter().any(|d| d.contains("Zevenbergen")));
    app.stop().await;
}

async fn sessions_and_tokens_are_listed_and_ended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut worker = app.add_worker("w310").await;
    let phone = page_login(&app, &mut worker).await;
    let laptop = page_login(&app, &mut worker).await;
    let page = laptop.text("/sessies").await;
    assert_eq!(page.matches("/beeindigen").count(), 2);
    assert!(page.contains("deze sessie"));
    // A session alone mints no token: the current passphrase is asked again.
    for passphrase in ["", "niet de wachtwoordzin"] {
        let refused = laptop
            .post(
                "/tokens",
                &[
                    ("csrf", &csrf_of(&page)),
                    ("label", "laptop"),
                    ("passphrase", passphrase),
                ],
            )
            .await;
        assert_eq!(refused.status(), 422);
        let body = refused.text().await.unwrap();
        assert!(body.contains("wachtwoordzin klopt niet"), "{body}");
        assert!(!body.contains("snt_"), "no token");
    }
    // A token, shown once in the response to the POST.
    let created = laptop
        .post(
            "/tokens",
            &[
                ("csrf", &csrf_of(&page)),
                ("label", "laptop"),
                ("passphrase", &worker.passphrase),
            ],
        )
        .await;
    assert_eq!(created.status(), 200);
    let body = created.text().await.unwrap();
    let marker = "<code class=\"secret\">";
    let start = body.find(marker).unwrap() + marker.len();
    let token = &body[start..body[start..].find('<').unwrap() + start];
    assert!(app.get(token, "/v1/messages").await.status() == 200);
    assert!(
        !laptop.text("/sessies").await.contains(token),
        "not shown again"
    );
    // End the phone's session from the laptop.
    let page = laptop.text("/sessies").await;
    let other_block = page
        .split("<li>")
        .find(|block| block.contains("/beeindigen") && !block.contains("deze sessie"))
        .expect("the other session");
    let at = other_block.find("/sessies/").unwrap() + "/sessies/".len();
    let target = &other_block[at..at + 24];
    let ended = laptop
        .post(
            &format!("/sessies/{target}/beeindigen"),
            &[("csrf", &csrf_of(&page))],
        )
        .await;
    assert_eq!(ended.headers()["location"], "/sessies?ok=sessie");
    assert_eq!(
        phone.get("/").await.status(),
        303,
        "the phone is logged out"
    );
    assert_eq!(laptop.get("/").await.status(), 200);
    // Revoke the token.
    let page = laptop.text("/sessies").await;
    let at = page.find("/tokens/").unwrap();
    let token_id = &page[at + 8..at + 8 + page[at + 8..].find('/').unwrap()];
    let revoked = laptop
        .post(
            &format!("/tokens/{token_id}/intrekken"),
            &[("csrf", &csrf_of(&page))],
        )
        .await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(app.get(token, "/v1/messages").await.status(), 401);
    app.stop().await;
}

async fn totp_enrolment_replaces_the_administrators_secret(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut worker = app.add_worker("w311").await;
    let other_device = page_login(&app, &mut worker).await;
    let client = page_login(&app, &mut worker).await;
    let page = client.text("/tweestaps").await;
    assert!(
        page.contains("<svg") && page.contains("<path"),
        "an inline SVG QR code"
    );
    let marker = "<code class=\"secret\">";
    let start = page.find(marker).unwrap() + marker.len();
    let text: String = page[start..start + page[start..].find('<').unwrap()]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let secret = schuilnaam::totp::TotpSecret::from_bytes(
        &data_encoding::BASE32_NOPAD.decode(text.as_bytes()).unwrap(),
    );
    // A wrong code keeps the old secret and shows the same new one again.
    let wrong = client
        .post(
            "/tweestaps",
            &[
                ("csrf", &csrf_of(&page)),
                ("code", "000000"),
                ("passphrase", &worker.passphrase),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains(&page[start..start + 20]));
    app.clock.advance(std::time::Duration::from_secs(30));
    let code = secret.code_at(app.now());
    // The right code from a session alone, without the current passphrase: nothing is replaced.
    for passphrase in ["", "niet de wachtwoordzin"] {
        let refused = client
            .post(
                "/tweestaps",
                &[
                    ("csrf", &csrf_of(&page)),
                    ("code", &code),
                    ("passphrase", passphrase),
                ],
            )
            .await;
        assert_eq!(refused.status(), 422);
        assert!(refused
            .text()
            .await
            .unwrap()
            .contains("wachtwoordzin klopt niet"));
    }
    let confirmed = client
        .post(
            "/tweestaps",
            &[
                ("csrf", &csrf_of(&page)),
                ("code", &code),
                ("passphrase", &worker.passphrase),
            ],
        )
        .await;
    assert_eq!(
        confirmed.status(),
        303,
        "{}",
        confirmed.text().await.unwrap_or_default()
    );
    assert_eq!(confirmed.headers()["location"], "/?ok=tweestaps");
    // The worker's other session ends with the old second factor.
    assert_eq!(
        other_device.get("/").await.headers()["location"],
        "/inloggen?verlopen=1"
    );
    // The administrator's secret no longer logs in; the new one does (a later step).
    let old = app
        .login_response("w311", &worker.passphrase, &app.totp_code(&worker))
        .await;
    assert_eq!(old.status(), 401);
    app.clock.advance(std::time::Duration::from_secs(30));
    let new = app
        .login_response("w311", &worker.passphrase, &secret.code_at(app.now()))
        .await;
    assert_eq!(new.status(), 200);
    app.stop().await;
}

/// Guessing the current passphrase on the change page is limited like a login, and the limit says
/// when to try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_guesses_on_the_change_page_are_limited_with_retry_after() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut worker = app.add_worker("w306").await;
    let client = page_login(&app, &mut worker).await;
    let max = app.config.login.max_failures_per_handle as usize;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..=max {
        let page = client.text("/wachtwoordzin").await;
        let response = client
            .post(
                "/wachtwoordzin",
                &[
                    ("csrf", csrf_of(&page).as_str()),
                    ("current", "niet de wachtwoordzin"),
                    ("new", "een nieuwe lange wachtwoordzin"),
                    ("repeat", "een nieuwe lange wachtwoordzin"),
                ],
            )
            .await;
        statuses.push(response.status().as_u16());
        last = Some(response);
    }
    assert_eq!(statuses[..max], vec![422; max][..], "{statuses:?}");
    let limited = last.unwrap();
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
}

on_both_backends!(
    totp_enrolment_replaces_the_administrators_secret,
    every_page_has_the_security_headers_and_strict_cookies,
    forms_without_the_right_csrf_token_are_refused_and_change_nothing,
    another_workers_message_is_the_same_404_as_a_missing_one,
    login_failures_name_no_factor_and_are_rate_limited_like_the_api,
    logout_ends_the_session_and_wipes_the_unlocked_key,
    an_idle_session_ends_and_the_pages_say_so,
    the_inbox_pages_newest_first_with_unread_marks,
    the_leak_guard_refusal_is_explained_without_the_marker_in_url_or_log,
    sessions_and_tokens_are_listed_and_ended,
    passkeys_are_added_only_with_a_verified_answer,
    bidirectional_overrides_from_outside_are_not_shown,
);
