//! CPU-heavy work runs off the async threads: while a worker's 1.5 MB reply is being cleaned,
//! leak-checked, signed and sealed, the relay still answers everyone else.

use serde_json::json;

use crate::helpers::Backend;
use crate::mail_outbound::{app_with_outbound_on, mailed_worker, smarthost};
use crate::smtp_inbound::MailWorld;

/// A 1.5 MB reply occupies the CPU pool; meanwhile, on a runtime with ONE async thread (so that a
/// computation on it would stall everything), `/healthz` and another worker's login are answered, and
/// the pool still reports the reply's job as running after both came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_large_reply_does_not_stall_other_clients() {
    let world = MailWorld::new();
    let host = smarthost(true).await;
    let app = app_with_outbound_on(&world, Backend::Sqlite, &host, "relay.test").await;
    let (_, token, inbound_id) = mailed_worker(&world, &app, "w900", "Groot bestand").await;
    // Markers, so that the leak guard reads every byte of every attachment.
    let markers = app
        .client()
        .put(format!("{}/v1/markers", app.worker_url))
        .bearer_auth(&token)
        .json(&json!({ "names": ["Jan de Vries"], "towns": ["Alphen aan den Rijn"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(markers.status(), 200);
    let mut other = app.add_worker("w901").await;
    // Three text attachments of 400 kB: with base64, a request of about 1.8 MB. Large enough to keep
    // the pool busy for seconds in a debug build, small enough to finish well inside the timeouts.
    let line = "Verslag van het gesprek op het bureau, zonder namen of plaatsen erin. ";
    let text = line.repeat(400_000 / line.len());
    let attachment = |n: usize| {
        json!({
            "filename": format!("verslag-{n}.txt"),
            "content_type": "text/plain",
            "data": data_encoding::BASE64.encode(text.as_bytes()),
        })
    };
    let body = json!({
        "body": text[..200_000],
        "attachments": [attachment(1), attachment(2), attachment(3)],
    });
    let reply = {
        let client = app.client();
        let url = format!("{}/v1/messages/{inbound_id}/reply", app.worker_url);
        let token = token.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        })
    };
    // Wait until the reply's job is in the CPU pool.
    let mut polls = 0;
    while app.metric("cpu_jobs_running").await == 0 {
        polls += 1;
        assert!(
            polls < 6_000 && !reply.is_finished(),
            "the reply never showed as a CPU job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let health = reqwest::get(format!("{}/healthz", app.admin_url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let health_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    let login = app.login(&mut other).await;
    assert!(!login.is_empty());
    let login_ms = started.elapsed().as_millis();
    assert!(
        app.metric("cpu_jobs_running").await >= 1,
        "the reply's job ended before the other clients were answered: it proves nothing"
    );
    // Printed, not asserted: time is measured by the benchmarks, never by tests.
    eprintln!(
        "while a 1.5 MB reply was being composed: /healthz {health_ms} ms, login {login_ms} ms"
    );
    let reply = reply.await.unwrap();
    assert_eq!(reply.status(), 202, "{}", reply.text().await.unwrap());
    app.stop().await;
}
