//! The worker API: login, sessions, ownership, API tokens, aliases.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{delivered, message, post_message, Backend, TestApp, PASSPHRASE_AFTER_CHANGE};
use crate::on_both_backends;

on_both_backends!(
    worker_cannot_read_another_workers_message,
    failed_logins_look_alike_and_are_audited,
    passphrase_change_rewraps_the_identity,
    api_tokens_read_sealed_files_but_unlock_nothing,
    worker_burns_an_alias_at_once,
);

async fn deliver(app: &TestApp, partner: &reqwest::Client, to: &str, body: &str) -> String {
    delivered(partner, &app.partner_url, &message(to, "onderwerp", body)).await
}

async fn worker_cannot_read_another_workers_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("William Schrikker Stichting").await;
    let mut a = app.add_worker("werker-a").await;
    let mut b = app.add_worker("werker-b").await;
    let for_b = deliver(&app, &partner, &b.alias, "alleen voor b").await;
    let token_a = app.login(&mut a).await;
    let token_b = app.login(&mut b).await;

    assert!(app.messages(&token_a).await.is_empty());
    let never_existed = schuilnaam::crypto::random_id();
    for path in ["", "/age"] {
        let theirs = app
            .get(&token_a, &format!("/v1/messages/{for_b}{path}"))
            .await;
        let nothing = app
            .get(&token_a, &format!("/v1/messages/{never_existed}{path}"))
            .await;
        assert_eq!(theirs.status(), 404);
        assert_eq!(nothing.status(), 404);
        assert_eq!(
            theirs.bytes().await.unwrap(),
            nothing.bytes().await.unwrap()
        );
    }
    let delete = app.delete(&token_a, &format!("/v1/messages/{for_b}")).await;
    assert_eq!(delete.status(), 404);
    // B still has it, intact.
    let opened: Value = app.open_message(&token_b, &for_b).await;
    assert_eq!(opened["body"], json!("alleen voor b"));
    // No token at all: 401.
    let anonymous = app
        .client()
        .get(format!("{}/v1/messages/{for_b}", app.worker_url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    app.stop().await;
}

async fn failed_logins_look_alike_and_are_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let worker = app.add_worker("w10").await;
    let wrong_passphrase = app
        .login_response("w10", "helemaal verkeerd", &app.totp_code(&worker))
        .await;
    let wrong_totp = app
        .login_response("w10", &worker.passphrase, "000000")
        .await;
    let unknown_handle = app
        .login_response("bestaat-niet", &worker.passphrase, &app.totp_code(&worker))
        .await;
    let invalid_handle = app
        .login_response("Not A Handle!", &worker.passphrase, "123456")
        .await;
    let mut bodies = Vec::new();
    for response in [wrong_passphrase, wrong_totp, unknown_handle, invalid_handle] {
        assert_eq!(response.status(), 401);
        bodies.push(response.bytes().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "identical answers");
    // Failed attempts are anonymous traffic: audited in batches (every second, and at shutdown).
    app.flush_audit().await;

    // A replayed code is refused even with the right passphrase.
    let code = app.totp_code(&worker);
    assert_eq!(
        app.login_response("w10", &worker.passphrase, &code)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.login_response("w10", &worker.passphrase, &code)
            .await
            .status(),
        401
    );
    app.flush_audit().await;

    let audited: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT action, subject, detail FROM audit_log WHERE action LIKE 'login.%' ORDER BY seq",
    )
    .fetch_all(app.core.store.pool())
    .await
    .unwrap();
    let expected = [
        ("login.failure", "w10", "passphrase"),
        ("login.failure", "w10", "totp"),
        ("login.failure", "unknown-handle", "unknown-handle"),
        ("login.failure", "unknown-handle", "unknown-handle"),
        ("login.success", "w10", "second_factor=totp"),
        ("login.failure", "w10", "totp"),
    ];
    let audited: Vec<(&str, &str, &str)> = audited
        .iter()
        .map(|(a, s, d)| (a.as_str(), s.as_str(), d.as_str()))
        .collect();
    assert_eq!(audited, expected);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_rate_limited_per_handle_and_per_address() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.login.max_failures_per_handle = 3;
        c.login.max_failures_per_address = 5;
    })
    .await;
    let mut worker = app.add_worker("w11").await;
    for _ in 0..3 {
        let r = app.login_response("w11", "fout fout fout", "000000").await;
        assert_eq!(r.status(), 401);
    }
    let limited = app
        .login_response("w11", &worker.passphrase, &app.totp_code(&worker))
        .await;
    assert_eq!(limited.status(), 429, "even the right credentials wait");
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );

    // Two more failures on other handles exhaust the address's budget.
    for handle in ["w12", "w13"] {
        assert_eq!(
            app.login_response(handle, "x", "000000").await.status(),
            401
        );
    }
    assert_eq!(app.login_response("w14", "x", "000000").await.status(), 429);

    // After the window the worker gets in.
    app.clock.advance(Duration::from_secs(901));
    let token = app.login(&mut worker).await;
    assert!(app.messages(&token).await.is_empty());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_slip_past_the_limit() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.login.max_failures_per_handle = 5;
        c.login.max_failures_per_address = 1000;
    })
    .await;
    let worker = app.add_worker("w15").await;
    let mut guesses = Vec::new();
    for i in 0..40 {
        let client = app.client();
        let url = format!("{}/v1/login", app.worker_url);
        let passphrase = worker.passphrase.clone();
        guesses.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({ "handle": "w15", "passphrase": passphrase, "totp": format!("{i:06}") }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for guess in guesses {
        statuses.push(guess.await.unwrap());
    }
    let tried = statuses.iter().filter(|s| **s != 429).count();
    assert!(
        tried <= 5,
        "only 5 guesses may be checked, {tried} were: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 40 - tried);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_current_passphrase_is_limited_and_audited() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.login.max_failures_per_handle = 3;
    })
    .await;
    let mut worker = app.add_worker("w16").await;
    let token = app.login(&mut worker).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let response = app
            .post(
                &token,
                "/v1/passphrase",
                &json!({ "current": format!("gok nummer {i}"), "new": "een nieuwe lange zin" }),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, vec![400, 400, 400, 429, 429]);
    let failures: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'worker.passphrase_change_failed'",
    )
    .fetch_one(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(failures, 3);
    // The refused guesses are in the log too: every attempt leaves a row.
    app.flush_audit().await;
    let limited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'worker.passphrase_change_rate_limited'",
    )
    .fetch_one(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(limited, 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_on_idle_absolute_timeout_and_logout() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.session.idle_timeout_seconds = 600;
        c.session.absolute_timeout_seconds = 3000;
    })
    .await;
    let mut worker = app.add_worker("w20").await;

    // Idle timeout. (`login` moves the clock 30 s for a fresh TOTP step.)
    let token = app.login(&mut worker).await;
    assert_eq!(app.sessions.unlocked_identities(), 1);
    app.clock.advance(Duration::from_secs(599));
    assert_eq!(app.get(&token, "/v1/messages").await.status(), 200);
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(app.get(&token, "/v1/messages").await.status(), 401);
    assert_eq!(app.sessions.unlocked_identities(), 0, "identity wiped");

    // Absolute lifetime: active every 500 s, still ends at 3000 s.
    let token = app.login(&mut worker).await;
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(500));
        assert_eq!(app.get(&token, "/v1/messages").await.status(), 200);
    }
    app.clock.advance(Duration::from_secs(500));
    assert_eq!(app.get(&token, "/v1/messages").await.status(), 401);

    // Logout ends the session on the server and wipes the identity.
    let token = app.login(&mut worker).await;
    assert_eq!(app.sessions.unlocked_identities(), 1);
    let logout = app
        .client()
        .post(format!("{}/v1/logout", app.worker_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_eq!(app.sessions.unlocked_identities(), 0);
    assert_eq!(app.get(&token, "/v1/messages").await.status(), 401);
    app.stop().await;
}

async fn passphrase_change_rewraps_the_identity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Briedis").await;
    let mut worker = app.add_worker("w30").await;
    let one_time = worker.passphrase.clone();
    let id = deliver(&app, &partner, &worker.alias, "voor het wisselen").await;
    // What an administrator who handed out the one-time passphrase could keep: a copy of the row.
    let wrapped_before: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w30'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    let recipient_before = app.recipient_of("w30").await;

    // The one-time passphrase admits only the change.
    let code = app.totp_code(&worker);
    let first: Value = app
        .login_response("w30", &one_time, &code)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["must_change_passphrase"], json!(true));
    let token = first["token"].as_str().unwrap();
    let refused = app.get(token, "/v1/messages").await;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"],
        json!("passphrase_change_required")
    );
    let too_short = app
        .post(
            token,
            "/v1/passphrase",
            &json!({ "current": one_time, "new": "kort" }),
        )
        .await;
    assert_eq!(too_short.status(), 400);
    let wrong_current = app
        .post(
            token,
            "/v1/passphrase",
            &json!({ "current": "niet de oude", "new": PASSPHRASE_AFTER_CHANGE }),
        )
        .await;
    assert_eq!(wrong_current.status(), 400);
    let changed = app
        .post(
            token,
            "/v1/passphrase",
            &json!({ "current": one_time, "new": PASSPHRASE_AFTER_CHANGE }),
        )
        .await;
    assert_eq!(changed.status(), 204);
    // The same session goes on.
    assert_eq!(app.get(token, "/v1/messages").await.status(), 200);

    // The old passphrase no longer logs in; the new one unlocks the rewrapped identity.
    let old = app
        .login_response("w30", &one_time, &app.totp_code(&worker))
        .await;
    assert_eq!(old.status(), 401);
    worker.passphrase = PASSPHRASE_AFTER_CHANGE.to_string();
    let token = app.login(&mut worker).await;
    let opened: Value = app.open_message(&token, &id).await;
    assert_eq!(opened["body"], json!("voor het wisselen"));

    // The stored keyring opens with the new passphrase only.
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped_identity FROM workers WHERE handle = 'w30'")
            .fetch_one(app.core.store.pool())
            .await
            .unwrap();
    use age::secrecy::SecretString;
    use schuilnaam::crypto::unwrap_keyring;
    let keyring = unwrap_keyring(
        &wrapped,
        &SecretString::from(PASSPHRASE_AFTER_CHANGE.to_string()),
        12,
    )
    .unwrap();
    assert!(unwrap_keyring(&wrapped, &SecretString::from(one_time.clone()), 12).is_err());

    // The change rotated the key: messages from now on are sealed to a fresh identity that the
    // one-time passphrase never protected.
    let recipient_after = app.recipient_of("w30").await;
    assert_ne!(recipient_after, recipient_before);
    assert_eq!(keyring.current().to_public().to_string(), recipient_after);
    let later = deliver(&app, &partner, &worker.alias, "na het wisselen").await;
    let sealed_later: Vec<u8> = sqlx::query_scalar("SELECT sealed FROM messages WHERE id = $1")
        .bind(&later)
        .fetch_one(app.core.store.pool())
        .await
        .unwrap();
    let kept = unwrap_keyring(&wrapped_before, &SecretString::from(one_time), 12).unwrap();
    assert!(
        schuilnaam::mailbox::open_letter(&kept, &sealed_later).is_err(),
        "the old passphrase and an old copy of the database must not open later messages"
    );
    let opened = schuilnaam::mailbox::open_letter(&keyring, &sealed_later).unwrap();
    assert_eq!(opened.body, "na het wisselen");
    // The same session reads both, the one before the change and the one after.
    for (message, body) in [(&id, "voor het wisselen"), (&later, "na het wisselen")] {
        let opened: Value = app.open_message(&token, message).await;
        assert_eq!(opened["body"], json!(body));
    }
    app.stop().await;
}

async fn api_tokens_read_sealed_files_but_unlock_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Leger des Heils").await;
    let mut worker = app.add_worker("w40").await;
    let id = deliver(&app, &partner, &worker.alias, "via token").await;
    let session = app.login(&mut worker).await;
    // A session alone mints no token: the current passphrase is asked again.
    for passphrase in [json!(null), json!(""), json!("niet de wachtwoordzin")] {
        let mut request = json!({ "label": "laptop", "expires_in_days": 7 });
        if !passphrase.is_null() {
            request["passphrase"] = passphrase;
        }
        let refused = app.post(&session, "/v1/tokens", &request).await;
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"], "passphrase_not_confirmed");
    }
    let created = app
        .post(
            &session,
            "/v1/tokens",
            &json!({ "label": "laptop", "expires_in_days": 7, "passphrase": worker.passphrase }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let api_token = created["token"].as_str().unwrap().to_string();
    assert!(api_token.starts_with("snt_"));

    // Lists and fetches the sealed file …
    assert_eq!(app.messages(&api_token).await.len(), 1);
    assert_eq!(
        app.get(&api_token, &format!("/v1/messages/{id}/age"))
            .await
            .status(),
        200
    );
    // … but cannot open on the server, change the passphrase or mint tokens.
    assert_eq!(
        app.get(&api_token, &format!("/v1/messages/{id}"))
            .await
            .status(),
        409
    );
    let mint = app
        .post(&api_token, "/v1/tokens", &json!({ "label": "nog een" }))
        .await;
    assert_eq!(mint.status(), 403);
    // Nor manage tokens or aliases: a stolen CLI token cannot burn the worker's aliases.
    let post = |path: &'static str| {
        let client = app.client();
        let url = format!("{}{path}", app.worker_url);
        let token = api_token.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(post("/v1/aliases").await, 403);
    assert_eq!(
        app.client()
            .post(format!(
                "{}/v1/aliases/{}/burn",
                app.worker_url, worker.alias
            ))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(app.get(&api_token, "/v1/tokens").await.status(), 403);
    // The database holds its hash only.
    let stored: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM api_tokens")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap();
    assert_eq!(
        stored,
        vec![schuilnaam::crypto::sha256_hex(api_token.as_bytes())]
    );

    // Expiry.
    app.clock.advance(Duration::from_secs(8 * 86_400));
    assert_eq!(app.get(&api_token, "/v1/messages").await.status(), 401);

    // Revocation (a fresh token, revoked by id).
    let session = app.login(&mut worker).await;
    let fresh: Value = app
        .post(
            &session,
            "/v1/tokens",
            &json!({ "label": "telefoon", "passphrase": worker.passphrase }),
        )
        .await
        .json()
        .await
        .unwrap();
    let fresh_token = fresh["token"].as_str().unwrap();
    assert_eq!(app.get(fresh_token, "/v1/messages").await.status(), 200);
    let revoke = app
        .client()
        .delete(format!(
            "{}/v1/tokens/{}",
            app.worker_url,
            fresh["id"].as_str().unwrap()
        ))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(app.get(fresh_token, "/v1/messages").await.status(), 401);

    // A passphrase change ends every API token.
    let another: Value = app
        .post(
            &session,
            "/v1/tokens",
            &json!({ "label": "tablet", "passphrase": worker.passphrase }),
        )
        .await
        .json()
        .await
        .unwrap();
    let another = another["token"].as_str().unwrap();
    assert_eq!(app.get(another, "/v1/messages").await.status(), 200);
    let changed = app
        .post(
            &session,
            "/v1/passphrase",
            &json!({ "current": worker.passphrase, "new": "weer een nieuwe lange zin" }),
        )
        .await;
    assert_eq!(changed.status(), 204);
    assert_eq!(app.get(another, "/v1/messages").await.status(), 401);
    app.stop().await;
}

async fn worker_burns_an_alias_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("JB Rotterdam Rijnmond").await;
    let mut worker = app.add_worker("w50").await;
    let other = app.add_worker("w51").await;
    let token = app.login(&mut worker).await;

    let created: Value = app
        .client()
        .post(format!("{}/v1/aliases", app.worker_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let per_case = created["address"].as_str().unwrap().to_string();
    assert_ne!(per_case, worker.alias);
    deliver(&app, &partner, &per_case, "per zaak").await;

    let burn = |address: String| {
        let client = app.client();
        let url = format!("{}/v1/aliases/{address}/burn", app.worker_url);
        let token = token.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Someone else's alias is not found, and stays live.
    assert_eq!(burn(other.alias.clone()).await, 404);
    deliver(&app, &partner, &other.alias, "nog steeds").await;

    assert_eq!(burn(per_case.clone()).await, 204);
    let refused = post_message(&partner, &app.partner_url, &message(&per_case, "s", "b"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // Burning twice: the live alias is gone.
    assert_eq!(burn(per_case.clone()).await, 404);
    // The first alias still works.
    deliver(&app, &partner, &worker.alias, "eerste alias").await;

    let aliases: Vec<Value> = app.get(&token, "/v1/aliases").await.json().await.unwrap();
    let burned: Vec<bool> = aliases
        .iter()
        .map(|a| a["burned"].as_bool().unwrap())
        .collect();
    assert_eq!(burned, vec![false, true]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_api_rejects_bad_input_clearly() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut worker = app.add_worker("w60").await;
    let login_url = format!("{}/v1/login", app.worker_url);
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("not JSON", "application/json", b"handle=w60".to_vec(), 400),
        (
            "form content type",
            "application/x-www-form-urlencoded",
            b"handle=w60".to_vec(),
            415,
        ),
        (
            "missing field",
            "application/json",
            br#"{"handle":"w60"}"#.to_vec(),
            400,
        ),
        ("huge body", "application/json", vec![b' '; 100_000], 413),
    ];
    for (what, content_type, body, status) in cases {
        let response = app
            .client()
            .post(&login_url)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{what}");
        let body: Value = response.json().await.unwrap();
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    let token = app.login(&mut worker).await;
    let bad_token = app.get("not-a-token", "/v1/messages").await;
    assert_eq!(bad_token.status(), 401);
    assert_eq!(app.get(&token, "/v1/nothing-here").await.status(), 404);
    let bad_label = app
        .post(
            &token,
            "/v1/tokens",
            &json!({ "label": "", "passphrase": worker.passphrase }),
        )
        .await;
    assert_eq!(bad_label.status(), 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_carry_protective_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("Leger des Heils").await;
    let mut worker = app.add_worker("w60").await;
    let id = deliver(&app, &partner, &worker.alias, "kopregels").await;
    let token = app.login(&mut worker).await;
    let responses = vec![
        (
            "worker: a message",
            app.get(&token, &format!("/v1/messages/{id}")).await,
        ),
        (
            "worker: refused",
            app.get("geen-token", "/v1/messages").await,
        ),
        (
            "worker: unknown route",
            app.get(&token, "/bestaat-niet").await,
        ),
        (
            "partner: refused",
            partner
                .post(format!("{}/v1/messages", app.partner_url))
                .json(&json!({ "to": "onbekend@relay.localhost", "subject": "s", "body": "b" }))
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (what, response) in responses {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{what}: no {name}"))
        };
        assert_eq!(
            header("content-security-policy"),
            "default-src 'none'; frame-ancestors 'none'; sandbox",
            "{what}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header("cache-control"), "no-store", "{what}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(header("x-frame-options"), "DENY", "{what}");
        assert!(header("strict-transport-security").starts_with("max-age="));
    }
    app.stop().await;
}
