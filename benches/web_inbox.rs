//! The web app's inbox page with 1,000 messages in the mailbox: server time and page weight.
//!
//! `cargo bench --bench web_inbox` starts the relay in this process on SQLite in a temp directory,
//! delivers 1,000 messages to one worker through the intake, logs in through the pages, and then asks
//! for the inbox page (its first 50 messages, the unread marks of all, the count) REQUESTS times, one
//! after another on one keep-alive TLS connection. Against two named baselines measured the same way
//! in the same run:
//!   - `GET /inloggen`: TLS round trip, routing, the security headers and a template, no database;
//!   - `GET /v1/messages`: the worker API's JSON list of all 1,000 summaries (the same ownership
//!     query, no template, no unread marks).
//!
//! Times are measured at the client on loopback, so they include the TLS round trip: an upper bound of
//! the server's time. Page weight is every byte the inbox needs: the HTML, the stylesheet and the
//! idle-warning stylesheet (there is no script, font or image).

use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use schuilnaam::audit::Actor;
use schuilnaam::clock::{Clock, SystemClock};
use schuilnaam::intake::{Claim, Submission};
use schuilnaam::mailbox::{Channel, MessageKind};
use schuilnaam::partner::{NewOrganisation, OrgKind, OrgName};
use schuilnaam::worker::{Handle, NewWorker, Pseudonym};
use schuilnaam::{App, Config};
use serde_json::json;

const MESSAGES: usize = 1_000;
const REQUESTS: usize = 300;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_WEIGHT_BYTES: usize = 100 * 1024;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

struct Jar(std::sync::Mutex<Vec<(String, String)>>);

impl Jar {
    fn header(&self) -> String {
        let jar = self.0.lock().unwrap();
        jar.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            let mut jar = self.0.lock().unwrap();
            jar.retain(|(k, _)| k != name);
            if !value.is_empty() {
                jar.push((name.to_string(), value.to_string()));
            }
        }
    }
}

fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    page[start..start + 40].to_string()
}

async fn timed(
    client: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
) -> (Vec<f64>, usize) {
    let mut times = Vec::with_capacity(REQUESTS);
    let mut size = 0;
    for _ in 0..REQUESTS {
        let mut request = client.get(url);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let started = Instant::now();
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        let body = response.bytes().await.unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        size = body.len();
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times, size)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default().unwrap();
    config.relay.data_dir = dir.path().to_path_buf();
    config.crypto.server_key = dir.path().join("server-key.txt");
    config.database.url = format!("sqlite:{}", dir.path().join("bench.db").display());
    config.crypto.scrypt_work_factor = 10;
    config.worker_api.listen = "127.0.0.1:0".parse().unwrap();
    config.partner_api.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    let app = App::build(config.clone()).await.unwrap();
    let core = app.core();
    let base = format!("https://{}", app.worker_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stop_rx.await;
    }));
    let now = || SystemClock.now_millis();
    schuilnaam::partner::add(
        &core.store,
        now(),
        &Actor::System,
        NewOrganisation {
            name: OrgName::parse("Jeugdbescherming West").unwrap(),
            kind: OrgKind::Gi,
            domains: vec![schuilnaam::alias::Domain::parse("jbwest.example").unwrap()],
            phones: vec![],
            certificates: vec![],
        },
    )
    .await
    .unwrap();
    let created = schuilnaam::worker::create(
        &core.store,
        &core.worker_crypto(),
        &core.domain,
        now(),
        &Actor::System,
        NewWorker {
            handle: Handle::parse("w1").unwrap(),
            pseudonym: Pseudonym::parse("LET-medewerker 1").unwrap(),
            phone: schuilnaam::phone::PhoneNumber::parse("+31612345678").unwrap(),
            email: schuilnaam::mail::EmailAddress::parse("w1@example.nl").unwrap(),
            recipient: None,
        },
    )
    .await
    .unwrap();
    let organisation = schuilnaam::partner::by_mail_domain(&core.store, "jbwest.example")
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    for i in 0..MESSAGES {
        schuilnaam::intake::submit(
            &core,
            Submission {
                to: schuilnaam::alias::Address::parse(&created.alias).unwrap(),
                claim: Claim {
                    organisation: Some(organisation.clone()),
                    ..Claim::default()
                },
                channel: Channel::Api,
                kind: if i % 10 == 0 {
                    MessageKind::Aanmelding
                } else {
                    MessageKind::Bericht
                },
                urgent: i % 7 == 0,
                sender_label: String::new(),
                subject: format!("Bericht {i}"),
                body: "Graag contact over de overdracht.".repeat(10),
                mail: None,
            },
        )
        .await
        .unwrap();
    }
    println!(
        "delivered {MESSAGES} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(config.dev_ca_dir().join("ca.pem")).unwrap(),
            )
            .unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let totp = {
        let uri = &created.totp_uri;
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        schuilnaam::totp::TotpSecret::from_bytes(
            &data_encoding::BASE32_NOPAD
                .decode(secret.as_bytes())
                .unwrap(),
        )
    };
    let step = schuilnaam::totp::step_of(now());
    // The one-time passphrase is changed over the API, then the pages log in.
    let login: serde_json::Value = client
        .post(format!("{base}/v1/login"))
        .json(
            &json!({ "handle": "w1", "passphrase": created.passphrase.expose_secret(),
                       "totp": format!("{:06}", totp.code_at_step(step)) }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_token = login["token"].as_str().unwrap().to_string();
    let passphrase = "een lange zin voor de meting";
    let changed = client
        .post(format!("{base}/v1/passphrase"))
        .bearer_auth(&api_token)
        .json(&json!({ "current": created.passphrase.expose_secret(), "new": passphrase }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 204);
    let jar = Jar(std::sync::Mutex::new(Vec::new()));
    let page = client.get(format!("{base}/inloggen")).send().await.unwrap();
    jar.keep(&page);
    let csrf = csrf_of(&page.text().await.unwrap());
    let logged_in = client
        .post(format!("{base}/inloggen"))
        .header("cookie", jar.header())
        .form(&[
            ("csrf", csrf.as_str()),
            ("handle", "w1"),
            ("passphrase", passphrase),
            ("totp", &format!("{:06}", totp.code_at_step(step + 1))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 303, "page login");
    jar.keep(&logged_in);
    let cookie = jar.header();

    // Warm up the connection and the caches, then measure.
    timed(&client, &format!("{base}/"), Some(&cookie), None).await;
    let (login_times, _) = timed(&client, &format!("{base}/inloggen"), None, None).await;
    let (api_times, api_bytes) = timed(
        &client,
        &format!("{base}/v1/messages"),
        None,
        Some(&api_token),
    )
    .await;
    let (inbox_times, inbox_bytes) = timed(&client, &format!("{base}/"), Some(&cookie), None).await;

    let inbox = client
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(inbox.matches("/berichten/").count(), 50);
    let mut assets = 0;
    for marker in ["<link rel=\"stylesheet\" href=\""] {
        for (at, _) in inbox.match_indices(marker) {
            let start = at + marker.len();
            let href = &inbox[start..start + inbox[start..].find('"').unwrap()];
            let bytes = client
                .get(format!("{base}{href}"))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            assets += bytes.len();
        }
    }
    assert!(!inbox.contains("<script") && !inbox.contains("<img"));
    let weight = inbox_bytes + assets;

    println!("inbox page, {MESSAGES} messages in the mailbox (50 per page), {REQUESTS} sequential requests on one TLS connection:");
    let line = |name: &str, t: &[f64]| {
        println!(
            "  {name:<44} p50 {:6.2} ms   p99 {:6.2} ms   max {:6.2} ms",
            percentile(t, 0.5),
            percentile(t, 0.99),
            t[t.len() - 1]
        )
    };
    line("baseline GET /inloggen (no database)", &login_times);
    line(
        &format!("baseline GET /v1/messages (JSON, {api_bytes} B)"),
        &api_times,
    );
    line("GET / (the inbox page)", &inbox_times);
    println!(
        "  inbox p99 / login-page p99: {:.1}x   target p99 < {TARGET_P99_MS} ms: {}",
        percentile(&inbox_times, 0.99) / percentile(&login_times, 0.99),
        if percentile(&inbox_times, 0.99) < TARGET_P99_MS {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "page weight: HTML {inbox_bytes} B + stylesheets {assets} B = {weight} B ({:.1} KiB); target < 100 KiB: {}",
        weight as f64 / 1024.0,
        if weight < TARGET_WEIGHT_BYTES { "met" } else { "NOT met" }
    );
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
