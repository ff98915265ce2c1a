//! The hash-chained audit log, checked with the real `schuilnaam audit verify`.

use serde_json::Value;

use crate::helpers::{message, post_message, run_cli, write_config_file, Backend, TestApp};
use crate::on_both_backends;

on_both_backends!(audit_verify_detects_edits_deletions_and_swaps);

/// A relay with some history: an organisation, workers, a delivery, a refusal, logins.
async fn app_with_history(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let partner = app.add_partner("Jeugdbescherming Noord").await;
    let mut worker = app.add_worker("w70").await;
    let response = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
    let refused = post_message(
        &partner,
        &app.partner_url,
        &message("niemand@relay.localhost", "s", "b"),
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(
        app.login_response("w70", "fout", "000000").await.status(),
        401
    );
    let token = app.login(&mut worker).await;
    let id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get(&token, &format!("/v1/messages/{id}"))
            .await
            .status(),
        200
    );
    app.flush_audit().await;
    app
}

fn verify(app: &TestApp) -> (bool, String, String) {
    let config = write_config_file(app.dir.path(), &app.config.database.url);
    run_cli(&config, &["audit", "verify"])
}

async fn execute(app: &TestApp, sql: &str) {
    sqlx::query(sql)
        .execute(app.core.store.pool())
        .await
        .unwrap();
}

async fn audit_verify_detects_edits_deletions_and_swaps(backend: Backend) {
    // A clean log verifies and records every kind of event.
    let app = app_with_history(backend).await;
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY seq")
        .fetch_all(app.core.store.pool())
        .await
        .unwrap();
    for expected in [
        "organisation.added",
        "worker.added",
        "alias.added",
        "message.delivered",
        "message.refused",
        "login.failure",
        "login.success",
        "worker.passphrase_changed",
        "message.opened",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} in {actions:?}"
        );
    }
    let (ok, stdout, stderr) = verify(&app);
    assert!(ok, "clean log verifies: {stdout} {stderr}");
    assert!(
        stdout.contains(&format!("{} rows", actions.len())),
        "{stdout}"
    );
    let config = write_config_file(app.dir.path(), &app.config.database.url);
    let (ok, stdout, _) = run_cli(&config, &["--json", "audit", "verify"]);
    assert!(ok);
    let verified: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(verified["rows"].as_u64().unwrap() as usize, actions.len());

    // An edited row.
    execute(
        &app,
        "UPDATE audit_log SET detail = 'nothing happened' WHERE seq = 3",
    )
    .await;
    let (ok, stdout, _) = verify(&app);
    assert!(!ok, "edit detected");
    assert!(stdout.contains("row 3"), "{stdout}");
    assert!(stdout.contains("edited"), "{stdout}");
    app.stop().await;

    // A deleted row.
    let app = app_with_history(backend).await;
    execute(&app, "DELETE FROM audit_log WHERE seq = 4").await;
    let (ok, stdout, _) = verify(&app);
    assert!(!ok, "deletion detected");
    assert!(
        stdout.contains("row 4") && stdout.contains("missing"),
        "{stdout}"
    );
    app.stop().await;

    // A deleted last row.
    let app = app_with_history(backend).await;
    execute(
        &app,
        "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
    )
    .await;
    let (ok, stdout, _) = verify(&app);
    assert!(!ok, "truncation detected: {stdout}");
    app.stop().await;

    // Two rows swapped (contents exchanged, sequence numbers kept).
    let app = app_with_history(backend).await;
    execute(&app, "UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    execute(&app, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    execute(&app, "UPDATE audit_log SET seq = 3 WHERE seq = -2").await;
    let (ok, stdout, _) = verify(&app);
    assert!(!ok, "swap detected");
    assert!(stdout.contains("row 2"), "{stdout}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_holds_no_content_identity_or_address() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("GI Zuid").await;
    let mut worker = app.add_worker("w71").await;
    let subject = "ONDERWERP-MARKER-81f2";
    let body = "INHOUD-MARKER-9c3a";
    // A partner mistypes a real person's address as the recipient: refused, and not recorded.
    let real_address = "jan.jansen@jeugdbeschermingwest.nl";
    let refused = post_message(&partner, &app.partner_url, &message(real_address, "s", "b"))
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let response = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, subject, body),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 202);
    let token = app.login(&mut worker).await;
    let id = app.messages(&token).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.get(&token, &format!("/v1/messages/{id}")).await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, subject, detail FROM audit_log")
            .fetch_all(app.core.store.pool())
            .await
            .unwrap();
    assert!(rows.len() >= 6);
    for (actor, subject_col, detail) in rows {
        let row = format!("{actor} {subject_col} {detail}");
        for forbidden in [
            subject,
            body,
            "127.0.0.1",
            "+31612345678",
            "medewerker@example.nl",
        ] {
            assert!(!row.contains(forbidden), "{forbidden} in audit row {row}");
        }
    }
    app.stop().await;
}
