//! On-call latency: from the commit of an urgent message to the SMS request that pages the duty.
//!
//! `cargo bench --bench oncall` (or `bench/oncall-latency.sh`, which also starts a throwaway PostgreSQL)
//! starts the relay in this process with the real clock and its production scheduler settings, a team
//! with a rota, and a partner with a client certificate; then 1,000 times: the partner posts an urgent
//! message to the team's alias over TLS, the relay commits it together with its alert, the scheduler
//! claims the alert's first step and hands the SMS to the channel, where the moment is taken; the alert
//! is then resolved (so the next message raises a new one instead of joining it). Reported, p50 / p99 /
//! max over the 1,000 alerts:
//!   - commit → SMS: from the message's `received_at` (taken just before it is sealed and committed;
//!     millisecond resolution) to the SMS request;
//!   - POST → SMS: from the client starting its request to the SMS request (TLS, intake, sealing and
//!     commit included; what a partner's urgent message costs until the phone is paged).
//!
//! Modes: SQLite; PostgreSQL and two relay instances on one PostgreSQL database (messages alternate
//! between them) when `SCHUILNAAM_BENCH_POSTGRES_URL` names a PostgreSQL server whose user may create
//! databases.

use std::sync::Arc;
use std::time::{Duration, Instant};

use schuilnaam::audit::Actor;
use schuilnaam::clock::{Clock, SystemClock};
use schuilnaam::core::Core;
use schuilnaam::ids::AlertId;
use schuilnaam::oncall::alert::{self, Closer, Via};
use schuilnaam::oncall::notify::{Channel, ChannelKind, Delivery, Purpose, SendFuture, Sent};
use schuilnaam::oncall::rota::{self, RotaSpec, Rotation};
use schuilnaam::partner::{Fingerprint, NewOrganisation, OrgKind, OrgName};
use schuilnaam::worker::{Handle, NewWorker, Pseudonym};
use schuilnaam::{App, Config};
use serde_json::json;
use tokio::sync::mpsc;

const ALERTS: usize = 1_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    println!(
        "on-call latency, {ALERTS} alerts per run (urgent message to a team with a rota → SMS)"
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().join("bench.db").display());
    measure("SQLite", &[sqlite], dir.path()).await;
    match std::env::var("SCHUILNAAM_BENCH_POSTGRES_URL") {
        Ok(admin) => {
            let one = fresh_postgres(&admin).await;
            measure("PostgreSQL", &[one], dir.path()).await;
            let shared = fresh_postgres(&admin).await;
            measure(
                "PostgreSQL, two instances",
                &[shared.clone(), shared],
                dir.path(),
            )
            .await;
        }
        Err(_) => println!("  (set SCHUILNAAM_BENCH_POSTGRES_URL to measure PostgreSQL too)"),
    }
}

async fn fresh_postgres(admin: &str) -> String {
    use sqlx::Connection;
    let name = format!("bench_{}", schuilnaam::crypto::random_id());
    let mut connection = sqlx::PgConnection::connect(admin).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map(|(base, _)| base).unwrap();
    format!("{base}/{name}")
}

/// What the SMS channel saw: the alert and when.
struct Paged {
    alert: AlertId,
    at: Instant,
    wall_micros: i64,
}

struct BenchSms {
    pages: mpsc::UnboundedSender<Paged>,
}

impl Channel for BenchSms {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    fn send<'a>(&'a self, _core: &'a Core, delivery: &'a Delivery) -> SendFuture<'a> {
        let at = Instant::now();
        let wall_micros = jiff::Timestamp::now().as_microsecond();
        Box::pin(async move {
            if let Purpose::Alert { alert_id, .. } = &delivery.purpose {
                let _ = self.pages.send(Paged {
                    alert: alert_id.clone(),
                    at,
                    wall_micros,
                });
            }
            Ok(Sent::default())
        })
    }
}

struct Relay {
    core: Arc<Core>,
    partner_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<schuilnaam::Result<()>>,
}

async fn start(url: &str, data: &std::path::Path, pages: mpsc::UnboundedSender<Paged>) -> Relay {
    let mut config = Config::embedded_default().unwrap();
    config.relay.data_dir = data.to_path_buf();
    config.crypto.server_key = data.join("server-key.txt");
    config.database.url = url.to_string();
    config.worker_api.listen = "127.0.0.1:0".parse().unwrap();
    config.partner_api.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    let app = App::build(config).await.unwrap();
    let core = app.core();
    core.oncall.install_channel(Arc::new(BenchSms { pages }));
    let partner_url = format!("https://{}", app.partner_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Relay {
        core,
        partner_url,
        stop,
        task,
    }
}

async fn measure(label: &str, urls: &[String], base: &std::path::Path) {
    let data = base.join(schuilnaam::crypto::random_id());
    std::fs::create_dir_all(&data).unwrap();
    let (tx, mut pages) = mpsc::unbounded_channel();
    let mut relays = Vec::new();
    for url in urls {
        relays.push(start(url, &data, tx.clone()).await);
    }
    let core = relays[0].core.clone();
    let now = SystemClock.now_millis();
    let ca = schuilnaam::tls::DevCa::load_or_create(&data.join("dev-ca")).unwrap();
    let issued = ca.issue_client("Bench GI").unwrap();
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
    let team = Handle::parse("let-jb").unwrap();
    let alias = schuilnaam::team::add(
        &core.store,
        &core.domain,
        now,
        &Actor::System,
        &team,
        &schuilnaam::alias::LocalPart::parse("aanmelding").unwrap(),
    )
    .await
    .unwrap();
    let mut members = Vec::new();
    for handle in ["duty1", "duty2"] {
        let handle = Handle::parse(handle).unwrap();
        schuilnaam::worker::create(
            &core.store,
            &core.worker_crypto(),
            &core.domain,
            now,
            &Actor::System,
            NewWorker {
                handle: handle.clone(),
                pseudonym: Pseudonym::parse("Bench").unwrap(),
                phone: schuilnaam::phone::PhoneNumber::parse("0612345678").unwrap(),
                email: schuilnaam::mail::EmailAddress::parse("bench@example.nl").unwrap(),
                recipient: None,
            },
        )
        .await
        .unwrap();
        schuilnaam::team::add_member(&core.store, now, &Actor::System, &team, &handle)
            .await
            .unwrap();
        members.push(handle);
    }
    let today = jiff::Timestamp::from_millisecond(now)
        .unwrap()
        .to_zoned(core.oncall.tz().clone())
        .date();
    rota::set(
        &core.store,
        now,
        &Actor::System,
        &team,
        &RotaSpec {
            members,
            rotation: Rotation::Weekly,
            handover: rota::parse_handover("00:00").unwrap(),
            start: today,
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
        .http1_only()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let body = json!({
        "to": alias,
        "subject": "Spoed",
        "body": "x".repeat(1024),
        "urgent": true,
        "kind": "bericht",
    });
    // Warm up the connections and the statement caches.
    for relay in &relays {
        let response = client
            .get(format!("{}/v1/ping", relay.partner_url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    let mut from_commit = Vec::with_capacity(ALERTS);
    let mut from_post = Vec::with_capacity(ALERTS);
    for i in 0..ALERTS {
        let relay = &relays[i % relays.len()];
        let started = Instant::now();
        let response = client
            .post(format!("{}/v1/messages", relay.partner_url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let paged = tokio::time::timeout(Duration::from_secs(30), pages.recv())
            .await
            .expect("the SMS within 30 s")
            .unwrap();
        let received: i64 = sqlx::query_scalar(
            "SELECT m.received_at FROM alerts a JOIN messages m ON m.id = a.message_id WHERE a.id = $1",
        )
        .bind(paged.alert.as_str())
        .fetch_one(core.store.pool())
        .await
        .unwrap();
        from_commit.push((paged.wall_micros - received * 1000).max(0) as f64 / 1000.0);
        from_post.push(paged.at.duration_since(started).as_secs_f64() * 1000.0);
        alert::resolve(
            &core.store,
            SystemClock.now_millis(),
            &paged.alert,
            Closer::Admin(&Actor::System),
            Via::Cli,
        )
        .await
        .unwrap();
    }
    // Every alert paged exactly once.
    assert!(pages.try_recv().is_err(), "an SMS more than alerts");
    let notified: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM oncall_notifications WHERE channel = 'sms' AND state = 'sent'",
    )
    .fetch_one(core.store.pool())
    .await
    .unwrap();
    assert_eq!(notified as usize, ALERTS);
    println!("  {label}");
    report("commit → SMS", &mut from_commit);
    report("POST → SMS  ", &mut from_post);
    for relay in relays {
        let _ = relay.stop.send(());
        relay.task.await.unwrap().unwrap();
    }
}

fn report(what: &str, millis: &mut [f64]) {
    millis.sort_by(|a, b| a.total_cmp(b));
    let at =
        |q: f64| millis[((millis.len() as f64 * q).ceil() as usize).clamp(1, millis.len()) - 1];
    println!(
        "    {what}  p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        at(0.50),
        at(0.99),
        millis[millis.len() - 1]
    );
}
