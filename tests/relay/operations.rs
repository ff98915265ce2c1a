//! Running the relay: retention, health and metrics, schema parity between the backends, shutdown.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::{fresh_database_url, message, post_message, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_task_deletes_old_messages() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.retention.messages_days = 30;
        c.retention.sweep_interval_seconds = 1;
    })
    .await;
    let partner = app.add_partner("GI Bewaartermijn").await;
    let worker = app.add_worker("w100").await;
    let old = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "oud", "b"),
    )
    .await
    .unwrap();
    assert_eq!(old.status(), 202);
    let old_id = old.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Mail that left 31 days ago (sent, bounced, given up), mail still waiting, and mail sent 2 days
    // ago: only the first three are forgotten.
    let outbound = |id: &'static str, state: &'static str, finished: Option<i64>| {
        sqlx::query(
            "INSERT INTO outbound_messages (id, kind, summary_sealed, state, next_attempt_at, \
             created_at, finished_at) VALUES ($1, 'reply', $2, $3, 0, 0, $4)",
        )
        .bind(id)
        .bind(b"sealed summary".to_vec())
        .bind(state)
        .bind(finished)
    };
    let t0 = app.now();
    for (id, state, finished) in [
        ("old-sent", "sent", Some(t0)),
        ("old-bounced", "bounced", Some(t0)),
        ("old-failed", "failed", Some(t0)),
        ("waiting", "queued", None),
        ("recent", "sent", Some(t0 + 29 * 86_400_000)),
    ] {
        outbound(id, state, finished)
            .execute(app.core.store.pool())
            .await
            .unwrap();
    }
    app.clock.advance(Duration::from_secs(29 * 86_400));
    let recent = post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "nieuw", "b"),
    )
    .await
    .unwrap();
    assert_eq!(recent.status(), 202);
    let recent_id = recent.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The first message is now 31 days old, the second 2.
    app.clock.advance(Duration::from_secs(2 * 86_400));

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM messages")
            .fetch_all(app.core.store.pool())
            .await
            .unwrap();
        if !ids.contains(&old_id) {
            assert_eq!(
                ids,
                vec![recent_id.clone()],
                "only the expired message goes"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'retention.deleted' AND subject = '1'",
    )
    .fetch_one(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left: Vec<String> = sqlx::query_scalar("SELECT id FROM outbound_messages ORDER BY id")
            .fetch_all(app.core.store.pool())
            .await
            .unwrap();
        if left == ["recent", "waiting"] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sent mail was not forgotten: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let forgotten: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'retention.outbound_forgotten' AND subject = '3'",
    )
    .fetch_one(app.core.store.pool())
    .await
    .unwrap();
    assert_eq!(forgotten, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_reports_health_and_metrics() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert!(app.admin_url.starts_with("http://127.0.0.1:"));
    let health = reqwest::get(format!("{}/healthz", app.admin_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let partner = app.add_partner("GI Meting").await;
    let worker = app.add_worker("w101").await;
    post_message(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "s", "b"),
    )
    .await
    .unwrap();
    post_message(
        &partner,
        &app.partner_url,
        &message("x@relay.localhost", "s", "b"),
    )
    .await
    .unwrap();
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("schuilnaam_messages_delivered_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("schuilnaam_messages_refused_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("schuilnaam_http_requests_total 2\n"),
        "{metrics}"
    );
    app.stop().await;
}

/// Tables and columns of a migrated database, as (table, column) pairs.
async fn schema_of(url: &str) -> Vec<(String, String)> {
    let store = schuilnaam::store::Store::open(url, 1).await.unwrap();
    let sql = match store.backend() {
        schuilnaam::store::Backend::Sqlite => {
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
        }
        schuilnaam::store::Backend::Postgres => {
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'"
        }
    };
    let mut columns: Vec<(String, String)> =
        sqlx::query_as(sql).fetch_all(store.pool()).await.unwrap();
    store.close().await;
    columns.sort();
    columns
}

#[tokio::test]
async fn both_backends_end_in_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = schema_of(&fresh_database_url(Backend::Sqlite, dir.path()).await).await;
    let postgres = schema_of(&fresh_database_url(Backend::Postgres, dir.path()).await).await;
    assert!(sqlite.len() > 40, "{sqlite:?}");
    assert_eq!(sqlite, postgres);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shutdown_the_partner_listener_is_closed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let partner = app.add_partner("GI Afsluiten").await;
    let worker = app.add_worker("w102").await;
    let url = app.partner_url.clone();
    // A request on a kept-alive connection works before shutdown.
    let first = post_message(&partner, &url, &message(&worker.alias, "s", "b"))
        .await
        .unwrap();
    assert_eq!(first.status(), 202);
    app.stop().await;
    // After shutdown nothing listens any more.
    let after = post_message(&partner, &url, &message(&worker.alias, "s", "b")).await;
    assert!(after.is_err(), "the listener is closed after shutdown");
}
