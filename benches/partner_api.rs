//! Partner-API delivery throughput over TLS with keep-alive, against the same server's no-work route.
//!
//! `cargo bench --bench partner_api` starts the relay in this process on SQLite in a temp directory
//! (`SCHUILNAAM_BENCH_DATABASE_URL=postgres://…` to measure PostgreSQL instead), registers a partner
//! with a development-CA client certificate and a worker, then drives CONNECTIONS keep-alive HTTPS
//! connections:
//!   1. baseline: `GET /v1/ping` (TLS round trip + HTTP + routing, no work);
//!   2. delivery: `POST /v1/messages` with a 1 KiB body (authenticate the certificate pin, resolve the
//!      alias, seal with age, commit with the audit row, answer 202);
//!   3. ROUNDS times, delivery again while FLOOD_CONNECTIONS other connections send FLOOD_RATE
//!      requests per second: first the control, the same 1 KiB `POST /v1/messages` with an address
//!      that is not one (refused with 400 by validation, before the database: it costs TLS, HTTP
//!      and JSON like a refusal), then refused deliveries (to aliases that do not exist; 403 after
//!      the certificate pin and the alias were looked up, audited in batches).
//!
//! It prints the rates, the ratio delivery / bare TLS round trip, and per round the ratio of delivery
//! during refusals to delivery during the control: what a refusal's decision costs accepted
//! deliveries beyond the bytes on the wire. The target is a median of at least 0.90. It also prints
//! delivery during refusals against delivery alone. Client and server share the machine's cores, so
//! absolute figures understate a dedicated server; the ratios are the point, and alternating rounds
//! keep one slow moment of the machine from deciding them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schuilnaam::audit::Actor;
use schuilnaam::clock::{Clock, SystemClock};
use schuilnaam::partner::{Fingerprint, NewOrganisation, OrgKind, OrgName};
use schuilnaam::worker::{Handle, NewWorker, Pseudonym};
use schuilnaam::{App, Config};
use serde_json::json;

const CONNECTIONS: usize = 16;
const PINGS: usize = 20_000;
const DELIVERIES: usize = 5_000;
/// Flood requests per second during phase 3, and the connections they come over.
const FLOOD_RATE: u64 = 1_000;
/// Control and refusal floods, alternating.
const ROUNDS: usize = 5;
const FLOOD_CONNECTIONS: usize = 4;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default().unwrap();
    config.relay.data_dir = dir.path().to_path_buf();
    config.crypto.server_key = dir.path().join("server-key.txt");
    config.database.url = std::env::var("SCHUILNAAM_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite:{}", dir.path().join("bench.db").display()));
    config.worker_api.listen = "127.0.0.1:0".parse().unwrap();
    config.partner_api.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    let backend = if config.database.url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };

    let app = App::build(config.clone()).await.unwrap();
    let core = app.core();
    let partner_url = format!("https://{}", app.partner_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));

    let ca = schuilnaam::tls::DevCa::load_or_create(&config.dev_ca_dir()).unwrap();
    let issued = ca.issue_client("Bench GI").unwrap();
    let now = SystemClock.now_millis();
    schuilnaam::partner::add(
        &core.store,
        now,
        &Actor::System,
        NewOrganisation {
            name: OrgName::parse("Bench GI").unwrap(),
            kind: OrgKind::Gi,
            domains: vec![],
            phones: vec![],
            certificates: vec![Fingerprint::of_pem(issued.cert_pem.as_bytes()).unwrap()],
        },
    )
    .await
    .unwrap();
    let worker = schuilnaam::worker::create(
        &core.store,
        &core.worker_crypto(),
        &core.domain,
        now,
        &Actor::System,
        NewWorker {
            handle: Handle::parse("bench").unwrap(),
            pseudonym: Pseudonym::parse("Bench").unwrap(),
            phone: schuilnaam::phone::PhoneNumber::parse("0612345678").unwrap(),
            email: schuilnaam::mail::EmailAddress::parse("bench@example.nl").unwrap(),
            recipient: None,
        },
    )
    .await
    .unwrap();

    let identity =
        reqwest::Identity::from_pem(format!("{}\n{}", issued.cert_pem, issued.key_pem).as_bytes())
            .unwrap();
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .identity(identity)
        .pool_max_idle_per_host(CONNECTIONS)
        .http1_only()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();

    let ping_url = format!("{partner_url}/v1/ping");
    // Warm up: open the connections.
    let ping = move |c: &reqwest::Client| c.get(&ping_url);
    drive(&client, 200, ping.clone()).await;
    let ping_rate = drive(&client, PINGS, ping).await;

    let body = json!({
        "to": worker.alias,
        "subject": "Bench",
        "body": "x".repeat(1024),
        "urgent": false,
        "kind": "bericht",
    });
    let deliver_url = format!("{partner_url}/v1/messages");
    let deliver = move |c: &reqwest::Client| c.post(&deliver_url).json(&body);
    let delivery_rate = drive(&client, DELIVERIES, deliver.clone()).await;

    let messages_url = format!("{partner_url}/v1/messages");
    let flood_body = |to: String| {
        json!({
            "to": to,
            "subject": "Bench",
            "body": "x".repeat(1024),
        })
    };
    let mut rounds = Vec::new();
    let mut refused = 0;
    for _ in 0..ROUNDS {
        let url = messages_url.clone();
        let control = Flood::start(&client, 400, move |c: &reqwest::Client, n: u64| {
            c.post(&url)
                .json(&flood_body(format!("onbekend{n} relay.localhost")))
        });
        let control_rate = drive(&client, DELIVERIES, deliver.clone()).await;
        control.stop().await;
        let url = messages_url.clone();
        let refusals = Flood::start(&client, 403, move |c: &reqwest::Client, n: u64| {
            c.post(&url)
                .json(&flood_body(format!("onbekend{n}@relay.localhost")))
        });
        let refused_rate = drive(&client, DELIVERIES, deliver.clone()).await;
        let (sent, seconds) = refusals.stop().await;
        refused += sent;
        rounds.push((control_rate, refused_rate, sent as f64 / seconds));
    }

    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(core.store.pool())
        .await
        .unwrap();
    assert_eq!(
        stored as usize,
        (1 + 2 * ROUNDS) * DELIVERIES,
        "every delivery committed"
    );
    core.audit_queue
        .flush(SystemClock.now_millis())
        .await
        .unwrap();
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'message.refused'")
            .fetch_one(core.store.pool())
            .await
            .unwrap();
    assert_eq!(audited as u64, refused, "every refusal audited");

    println!("partner API over TLS 1.3, {CONNECTIONS} keep-alive connections, {backend}");
    println!("  baseline  GET /v1/ping      {PINGS:>6} requests  {ping_rate:>9.0} req/s");
    println!("  delivery  POST /v1/messages {DELIVERIES:>6} requests  {delivery_rate:>9.0} msg/s  (1 KiB, sealed + committed)");
    println!(
        "  ratio delivery / bare TLS round trip: {:.3}",
        delivery_rate / ping_rate
    );
    println!(
        "  delivery while {FLOOD_CONNECTIONS} more connections send {FLOOD_RATE}/s of 1 KiB POSTs \
         ({DELIVERIES} deliveries per phase):"
    );
    println!("    round  during control (400)  during refusals (403)  refusals/s  ratio");
    for (round, (control, refused, rate)) in rounds.iter().enumerate() {
        println!(
            "    {:>5}  {control:>14.0} msg/s  {refused:>15.0} msg/s  {rate:>10.0}  {:.3}",
            round + 1,
            refused / control
        );
    }
    let ratio = median(rounds.iter().map(|(control, refused, _)| refused / control));
    println!(
        "  median ratio delivery during refusals / during the control: {ratio:.3}  \
         (target >= 0.90: {}; {refused} refusals, all audited)",
        if ratio >= 0.9 { "met" } else { "NOT met" }
    );
    println!(
        "  median ratio delivery during refusals / delivery alone: {:.3}",
        median(rounds.iter().map(|(_, refused, _)| refused / delivery_rate))
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// Requests at FLOOD_RATE per second over FLOOD_CONNECTIONS connections, each answered with
/// `status`, until stopped.
struct Flood {
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<u64>>,
    started: Instant,
}

impl Flood {
    fn start(
        client: &reqwest::Client,
        status: u16,
        request: impl Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder
            + Send
            + Sync
            + Clone
            + 'static,
    ) -> Self {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let per_connection =
            Duration::from_micros(1_000_000 * FLOOD_CONNECTIONS as u64 / FLOOD_RATE);
        let workers = (0..FLOOD_CONNECTIONS as u64)
            .map(|worker| {
                let client = client.clone();
                let request = request.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    let mut pace = tokio::time::interval(per_connection);
                    let mut sent = 0;
                    while !*stopped.borrow() {
                        pace.tick().await;
                        let n = worker * 1_000_000 + sent;
                        let response = request(&client, n).send().await.expect("request");
                        assert_eq!(response.status(), status);
                        response.bytes().await.expect("body");
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        Self {
            stop,
            workers,
            started: Instant::now(),
        }
    }

    /// Stops the flood; how many were refused, over how many seconds.
    async fn stop(self) -> (u64, f64) {
        let _ = self.stop.send(true);
        let mut refused = 0;
        for worker in self.workers {
            refused += worker.await.unwrap();
        }
        (refused, self.started.elapsed().as_secs_f64())
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Sends `total` requests over CONNECTIONS concurrent workers; returns requests per second. Every
/// response must be a success.
async fn drive(
    client: &reqwest::Client,
    total: usize,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static + Clone,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let next = next.clone();
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let response = request(&client).send().await.expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                response.bytes().await.expect("body");
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}
