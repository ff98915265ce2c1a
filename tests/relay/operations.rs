//! Running the relay: retention, health and metrics, schema parity between the backends, shutdown.

use std::time::Duration;

use crate::helpers::{delivered, fresh_database_url, message, post_message, Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_task_deletes_old_messages() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.retention.messages_days = 30;
        c.retention.sweep_interval_seconds = 1;
    })
    .await;
    let partner = app.add_partner("GI Bewaartermijn").await;
    let worker = app.add_worker("w100").await;
    let old_id = delivered(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "oud", "b"),
    )
    .await;
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
    let recent_id = delivered(
        &partner,
        &app.partner_url,
        &message(&worker.alias, "nieuw", "b"),
    )
    .await;
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

/// The shape of a migrated database, in one form for both backends: every column with its type,
/// NOT NULL and primary-key position; every index and uniqueness constraint by its columns; every
/// foreign key. Types are compared as the store uses them: TEXT, BIGINT (SQLite's INTEGER), BLOB
/// (PostgreSQL's BYTEA).
#[derive(Debug, PartialEq, Eq)]
struct Schema {
    columns: Vec<(String, String, String, bool, i64)>,
    indexes: Vec<(String, String, bool)>,
    foreign_keys: Vec<(String, String, String, String)>,
}

fn normalise_type(declared: &str) -> String {
    match declared.to_ascii_lowercase().as_str() {
        "text" => "text".into(),
        "integer" | "bigint" => "bigint".into(),
        "blob" | "bytea" => "blob".into(),
        other => format!("unexpected:{other}"),
    }
}

async fn schema_of(url: &str) -> Schema {
    let store = schuilnaam::store::Store::open(url, 1).await.unwrap();
    let pool = store.pool();
    let schema = match store.backend() {
        schuilnaam::store::Backend::Sqlite => {
            let columns: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
                "SELECT m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m \
                 JOIN pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let indexes: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT m.name, \
                 (SELECT group_concat(name, ',') FROM \
                    (SELECT ii.name FROM pragma_index_info(il.name) ii ORDER BY ii.seqno)), \
                 il.\"unique\" \
                 FROM sqlite_master m JOIN pragma_index_list(m.name) il \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' \
                 AND il.origin <> 'pk'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let foreign_keys: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT m.name, f.\"from\", f.\"table\", f.\"to\" FROM sqlite_master m \
                 JOIN pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            Schema {
                columns: columns
                    .into_iter()
                    .map(|(t, c, ty, notnull, pk)| {
                        // A primary key column is NOT NULL on both (declared so in both files).
                        (t, c, normalise_type(&ty), notnull != 0 || pk > 0, pk)
                    })
                    .collect(),
                indexes: indexes
                    .into_iter()
                    .map(|(t, cols, unique)| (t, cols, unique != 0))
                    .collect(),
                foreign_keys,
            }
        }
        schuilnaam::store::Backend::Postgres => {
            let columns: Vec<(String, String, String, bool, i64)> = sqlx::query_as(
                "SELECT c.table_name::text, c.column_name::text, c.data_type::text, \
                 c.is_nullable = 'NO', \
                 COALESCE((SELECT k.ordinal_position::bigint FROM information_schema.key_column_usage k \
                   JOIN information_schema.table_constraints tc \
                     ON tc.constraint_name = k.constraint_name AND tc.table_name = k.table_name \
                   WHERE tc.constraint_type = 'PRIMARY KEY' AND k.table_name = c.table_name \
                     AND k.column_name = c.column_name), 0) \
                 FROM information_schema.columns c \
                 WHERE c.table_schema = 'public' AND c.table_name NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let indexes: Vec<(String, String, bool)> = sqlx::query_as(
                "SELECT t.relname::text, \
                 (SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
                    FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) \
                    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum), \
                 ix.indisunique \
                 FROM pg_index ix JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace ns ON ns.oid = t.relnamespace \
                 WHERE ns.nspname = 'public' AND NOT ix.indisprimary AND t.relname NOT LIKE '_sqlx%'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let foreign_keys: Vec<(String, String, String, String)> = sqlx::query_as(
                "SELECT src.relname::text, sa.attname::text, dst.relname::text, da.attname::text \
                 FROM pg_constraint c \
                 JOIN pg_class src ON src.oid = c.conrelid \
                 JOIN pg_class dst ON dst.oid = c.confrelid \
                 JOIN pg_namespace ns ON ns.oid = src.relnamespace \
                 JOIN unnest(c.conkey) WITH ORDINALITY AS sk(attnum, n) ON true \
                 JOIN unnest(c.confkey) WITH ORDINALITY AS dk(attnum, n) ON dk.n = sk.n \
                 JOIN pg_attribute sa ON sa.attrelid = src.oid AND sa.attnum = sk.attnum \
                 JOIN pg_attribute da ON da.attrelid = dst.oid AND da.attnum = dk.attnum \
                 WHERE c.contype = 'f' AND ns.nspname = 'public'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            Schema {
                columns: columns
                    .into_iter()
                    .map(|(t, c, ty, notnull, pk)| (t, c, normalise_type(&ty), notnull, pk))
                    .collect(),
                indexes,
                foreign_keys,
            }
        }
    };
    store.close().await;
    let mut schema = schema;
    schema.columns.sort();
    schema.indexes.sort();
    schema.foreign_keys.sort();
    schema
}

#[tokio::test]
async fn both_backends_end_in_the_same_schema() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = schema_of(&fresh_database_url(Backend::Sqlite, dir.path()).await).await;
    let postgres = schema_of(&fresh_database_url(Backend::Postgres, dir.path()).await).await;
    assert!(sqlite.columns.len() > 40, "{sqlite:?}");
    assert!(!sqlite.indexes.is_empty() && !sqlite.foreign_keys.is_empty());
    for (table, column, ty, ..) in &sqlite.columns {
        assert!(!ty.starts_with("unexpected"), "{table}.{column}: {ty}");
    }
    assert_eq!(sqlite.columns, postgres.columns, "columns");
    assert_eq!(sqlite.indexes, postgres.indexes, "indexes and uniqueness");
    assert_eq!(sqlite.foreign_keys, postgres.foreign_keys, "foreign keys");
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
