//! Signed voice-webhook decisions over TLS: how many per second, and the p99 latency a provider waits
//! for our TwiML while the caller hears ringing (target: p99 under 20 ms). Measured in the same run
//! against a named baseline, the partner API's no-work `GET /v1/ping` round trip.
//!
//! `cargo bench --bench phone_voice` starts the relay in this process on SQLite in a temp directory
//! (`SCHUILNAAM_BENCH_DATABASE_URL=postgres://…` for PostgreSQL) with `[phone]` on, a partner with a
//! registered number and a worker with an alias number, then drives CONNECTIONS keep-alive HTTPS
//! connections:
//!   1. baseline: `GET /v1/ping` on the partner listener (TLS + HTTP + routing, no work);
//!   2. routed: `POST /phone/voice` from the partner's number, each with its own CallSid and a valid
//!      `X-Twilio-Signature` (verify, gather the facts, decide, seal the caller, commit the call's row
//!      with its replay key and audit row, open the worker's number, answer `<Dial>`);
//!   3. refused: the same from an unknown number (verify, decide, queue the audit row, the refusal);
//!   4. paced: routed calls again, but arriving at PACED_RATE per second whatever the answers (an open
//!      loop, as calls reach a provider): the decision latency below saturation. In 2 and 3 every
//!      connection sends its next request as soon as it has an answer, so their p99 is the queue of
//!      a saturated server (connections / rate), not the time one decision takes.
//!
//! Client and server share the machine's cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use schuilnaam::audit::Actor;
use schuilnaam::clock::{Clock, SystemClock};
use schuilnaam::partner::{Fingerprint, NewOrganisation, OrgKind, OrgName};
use schuilnaam::phone::{pool, PhoneNumber};
use schuilnaam::worker::{Handle, NewWorker, Pseudonym};
use schuilnaam::{App, Config};

const CONNECTIONS: usize = 16;
const PINGS: usize = 10_000;
const ROUTED: usize = 5_000;
const REFUSED: usize = 5_000;
/// Routed calls sent at PACED_RATE per second in phase 4.
const PACED: usize = 3_000;
const PACED_RATE: u64 = 300;
const TOKEN: &str = "bench-auth-token";
const PUBLIC: &str = "https://phone.bench.example";
const PARTNER: &str = "+31201234567";
const STRANGER: &str = "+31699999999";
const ALIAS_NUMBER: &str = "+3197010000001";

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
    for listen in [
        &mut config.worker_api.listen,
        &mut config.partner_api.listen,
        &mut config.admin.listen,
        &mut config.smtp.listen,
        &mut config.phone.listen,
    ] {
        *listen = "127.0.0.1:0".parse().unwrap();
    }
    config.phone.enabled = true;
    config.phone.public_base_url = PUBLIC.into();
    config.phone.account_sid = "ACbench".into();
    config.phone.auth_token = TOKEN.into();
    let backend = if config.database.url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    };

    let app = App::build(config.clone()).await.unwrap();
    let core = app.core();
    let partner_url = format!("https://{}", app.partner_addr());
    let phone_url = format!("https://{}", app.phone_addr().unwrap());
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
            phones: vec![PhoneNumber::parse(PARTNER).unwrap()],
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
            phone: PhoneNumber::parse("0612345678").unwrap(),
            email: schuilnaam::mail::EmailAddress::parse("bench@example.nl").unwrap(),
            recipient: None,
        },
    )
    .await
    .unwrap();
    pool::add(
        &core.store,
        now,
        &Actor::System,
        &[PhoneNumber::parse(ALIAS_NUMBER).unwrap()],
    )
    .await
    .unwrap();
    let alias = schuilnaam::alias::Address::parse(&worker.alias).unwrap();
    pool::assign(&core.store, now, &Actor::System, &alias, None)
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
    let ping = move |c: &reqwest::Client, _: usize| c.get(&ping_url);
    drive(&client, 200, ping.clone(), "").await;
    let baseline = drive(&client, PINGS, ping, "pong").await;

    let voice = |from: &'static str| {
        let url = format!("{phone_url}/phone/voice");
        move |c: &reqwest::Client, n: usize| {
            let call_sid = format!("CA{n:032x}{}", if from == PARTNER { "" } else { "f" });
            let call_sid = &call_sid[..34];
            let params = [("CallSid", call_sid), ("From", from), ("To", ALIAS_NUMBER)];
            c.post(&url)
                .header("X-Twilio-Signature", sign(&params))
                .form(&params)
        }
    };
    drive(&client, 100, voice(STRANGER), "").await;
    let routed = drive(&client, ROUTED, voice(PARTNER), "<Dial").await;
    let refused = drive(&client, REFUSED, voice(STRANGER), "Hangup").await;
    let paced = pace(&client, PACED, voice(PARTNER), "<Dial").await;

    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM phone_calls")
        .fetch_one(core.store.pool())
        .await
        .unwrap();
    assert_eq!(
        calls as usize,
        ROUTED + PACED,
        "every routed call committed its row"
    );

    println!("phone webhooks over TLS 1.3, {CONNECTIONS} keep-alive connections, {backend}");
    for (name, what, result) in [
        ("baseline", "GET /v1/ping (partner API, no work)", &baseline),
        ("routed", "POST /phone/voice, partner → <Dial>", &routed),
        ("refused", "POST /phone/voice, unknown → refusal", &refused),
        ("paced", "POST /phone/voice, partner, 300/s", &paced),
    ] {
        println!(
            "  {name:<9} {what:<40} {:>6} req  {:>7.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            result.count,
            result.rate,
            result.p50.as_secs_f64() * 1000.0,
            result.p99.as_secs_f64() * 1000.0
        );
    }
    println!(
        "  ratio routed / baseline: {:.3} (rate); decision p99 at {PACED_RATE}/s: {:.2} ms, target < 20 ms: {}",
        routed.rate / baseline.rate,
        paced.p99.as_secs_f64() * 1000.0,
        if paced.p99 < Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        }
    );

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}

/// The provider's signature over the public URL and the parameters.
fn sign(params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TOKEN.as_bytes()).unwrap();
    mac.update(format!("{PUBLIC}/phone/voice").as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

struct Measured {
    count: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Sends `total` requests over CONNECTIONS concurrent workers; every response must succeed and
/// contain `expect`.
async fn drive(
    client: &reqwest::Client,
    total: usize,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static + Clone,
    expect: &'static str,
) -> Measured {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(1);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let next = next.clone();
        let request = request.clone();
        let latencies = latencies.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let response = request(&client, n).send().await.expect("request");
                assert!(response.status().is_success(), "{}", response.status());
                let body = response.text().await.expect("body");
                mine.push(sent.elapsed());
                assert!(body.contains(expect), "{body}");
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    measured(latencies, started.elapsed())
}

/// Rate and percentiles of `latencies`, sent over `elapsed`.
fn measured(mut latencies: Vec<Duration>, elapsed: Duration) -> Measured {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Measured {
        count: latencies.len(),
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Sends `total` requests at PACED_RATE per second, each on its own task whether or not earlier ones
/// were answered; every response must succeed and contain `expect`.
async fn pace(
    client: &reqwest::Client,
    total: usize,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static + Clone,
    expect: &'static str,
) -> Measured {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    let mut calls = Vec::with_capacity(total);
    for n in 0..total {
        tick.tick().await;
        let client = client.clone();
        let request = request.clone();
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let response = request(&client, 1_000_000_000 + n)
                .send()
                .await
                .expect("request");
            assert!(response.status().is_success(), "{}", response.status());
            let body = response.text().await.expect("body");
            assert!(body.contains(expect), "{body}");
            sent.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for call in calls {
        latencies.push(call.await.unwrap());
    }
    measured(latencies, started.elapsed())
}
