//! The test harness: the real `App` on port 0 with its own database (a temp SQLite file, or a fresh
//! PostgreSQL database when `SCHUILNAAM_TEST_POSTGRES_URL` is set), its own data directory and
//! development CA, and a manual clock. Plus a way to run the real binary, for tests that need a
//! separate process (logs, kill -9).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use schuilnaam::audit::Actor;
use schuilnaam::clock::{Clock, ManualClock};
use schuilnaam::config::Config;
use schuilnaam::core::Core;
use schuilnaam::crypto;
use schuilnaam::partner::{self, Fingerprint, NewOrganisation, OrgKind, OrgName};
use schuilnaam::session::Sessions;
use schuilnaam::tls::DevCa;
use schuilnaam::totp::TotpSecret;
use schuilnaam::worker::{self, Handle, NewWorker, Pseudonym};
use schuilnaam::App;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const PASSPHRASE_AFTER_CHANGE: &str = "een lange zelfgekozen zin";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs an async test body once on SQLite and once on PostgreSQL, as `NAME::sqlite` and
/// `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// A database URL for a fresh, empty database on the given backend.
pub async fn fresh_database_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite:{}", dir.join("schuilnaam.db").display()),
        Backend::Postgres => {
            use sqlx::Connection;
            let admin_url = std::env::var("SCHUILNAAM_TEST_POSTGRES_URL").expect(
                "SCHUILNAAM_TEST_POSTGRES_URL is not set: run scripts/test.sh, which starts a \
                 throwaway PostgreSQL cluster and sets it",
            );
            let name = format!("t_{}", crypto::random_id());
            let mut connection = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect to the test PostgreSQL cluster");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut connection)
                .await
                .expect("create test database");
            connection.close().await.ok();
            let base = admin_url
                .rsplit_once('/')
                .map(|(base, _)| base)
                .expect("URL with a database path");
            format!("{base}/{name}")
        }
    }
}

/// A configuration for a test: the embedded default, pointed at `dir`, port 0 everywhere.
pub fn test_config(dir: &Path, database_url: String) -> Config {
    let mut config = Config::embedded_default().expect("embedded default");
    config.relay.data_dir = dir.to_path_buf();
    config.database.url = database_url;
    config.crypto.server_key = dir.join("server-key.txt");
    // Fast scrypt for tests; the format and code path are the production ones.
    config.crypto.scrypt_work_factor = 10;
    config.worker_api.listen = "127.0.0.1:0".parse().unwrap();
    config.partner_api.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.smtp.listen = "127.0.0.1:0".parse().unwrap();
    // Generating a 2048-bit RSA DKIM key takes about half a second: test relays share one (the first
    // writes it). Tests about the keys give each relay its own.
    config.outbound.dkim_rsa_key =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("dkim-rsa-shared.pem");
    config
}

pub struct TestApp {
    pub dir: TempDir,
    pub config: Config,
    pub core: Arc<Core>,
    pub sessions: Arc<Sessions>,
    pub clock: Arc<ManualClock>,
    pub worker_url: String,
    pub partner_url: String,
    pub admin_url: String,
    pub smtp_addr: std::net::SocketAddr,
    /// The phone listener, when `[phone] enabled`.
    pub phone_addr: Option<std::net::SocketAddr>,
    pub ca_pem: Vec<u8>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub struct TestWorker {
    pub handle: String,
    pub alias: String,
    pub passphrase: String,
    pub totp: TotpSecret,
    pub recipient: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_prepared(backend, adjust, ManualClock::starting_now(), |_| {}).await
    }

    /// Like `spawn_with`, with a given clock (two relays may share one), and `prepare` run on the
    /// core before the relay starts (e.g. installing on-call channels before its first round).
    pub async fn spawn_prepared(
        backend: Backend,
        adjust: impl FnOnce(&mut Config),
        clock: Arc<ManualClock>,
        prepare: impl FnOnce(&Arc<Core>),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_database_url(backend, dir.path()).await;
        let mut config = test_config(dir.path(), url);
        adjust(&mut config);
        let app = App::build_with_clock(config.clone(), clock.clone())
            .await
            .expect("app builds");
        prepare(&app.core());
        let worker_url = format!("https://{}", app.worker_addr());
        let partner_url = format!("https://{}", app.partner_addr());
        let admin_url = format!("http://{}", app.admin_addr());
        let smtp_addr = app.smtp_addr();
        let phone_addr = app.phone_addr();
        let core = app.core();
        let sessions = app.sessions();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .expect("app runs");
        });
        let ca_pem = std::fs::read(config.dev_ca_dir().join("ca.pem")).expect("dev CA written");
        Self {
            dir,
            config,
            core,
            sessions,
            clock,
            worker_url,
            partner_url,
            admin_url,
            smtp_addr,
            phone_addr,
            ca_pem,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the app and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("app task ends cleanly");
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem).unwrap())
            .timeout(Duration::from_secs(30))
    }

    /// A client for the worker API (trusts the development CA, no client certificate).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().unwrap()
    }

    /// A client presenting the given certificate and key.
    pub fn client_with_certificate(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        let identity =
            reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes()).unwrap();
        self.client_builder().identity(identity).build().unwrap()
    }

    pub fn dev_ca(&self) -> DevCa {
        DevCa::load_or_create(&self.config.dev_ca_dir()).unwrap()
    }

    /// Registers an organisation with a development-CA client certificate pinned to it and returns
    /// a client presenting that certificate.
    pub async fn add_partner(&self, name: &str) -> reqwest::Client {
        self.add_partner_from(name, None).await
    }

    /// Like `add_partner`, with the client connecting from `local` (another loopback address: the
    /// relay then sees another client address).
    pub async fn add_partner_from(&self, name: &str, local: Option<IpAddr>) -> reqwest::Client {
        let issued = self.dev_ca().issue_client(name).unwrap();
        self.add_organisation(NewOrganisation {
            certificates: vec![Fingerprint::of_pem(issued.cert_pem.as_bytes()).unwrap()],
            ..organisation(name)
        })
        .await;
        let identity = reqwest::Identity::from_pem(
            format!("{}\n{}", issued.cert_pem, issued.key_pem).as_bytes(),
        )
        .unwrap();
        self.client_builder()
            .identity(identity)
            .local_address(local)
            .build()
            .unwrap()
    }

    /// Registers an organisation that writes by mail from `domain`.
    pub async fn add_mail_partner(&self, name: &str, domain: &str) {
        self.add_organisation(NewOrganisation {
            domains: vec![schuilnaam::alias::Domain::parse(domain).unwrap()],
            ..organisation(name)
        })
        .await;
    }

    /// Registers an organisation, as `org add` does.
    pub async fn add_organisation(&self, new: NewOrganisation) {
        partner::add(&self.core.store, self.now(), &Actor::System, new)
            .await
            .unwrap();
    }

    /// Disables an organisation, as `org disable` does.
    pub async fn disable_organisation(&self, name: &str) {
        partner::set_enabled(
            &self.core.store,
            self.now(),
            &Actor::System,
            &OrgName::parse(name).unwrap(),
            false,
        )
        .await
        .unwrap();
    }

    pub async fn add_worker(&self, handle: &str) -> TestWorker {
        self.add_worker_with(handle, None).await
    }

    pub async fn add_worker_with(
        &self,
        handle: &str,
        recipient: Option<age::x25519::Recipient>,
    ) -> TestWorker {
        let created = worker::create(
            &self.core.store,
            &self.core.worker_crypto(),
            &self.core.domain,
            self.now(),
            &Actor::System,
            NewWorker {
                handle: Handle::parse(handle).unwrap(),
                pseudonym: Pseudonym::parse(&format!("LET-medewerker {handle}")).unwrap(),
                phone: schuilnaam::phone::PhoneNumber::parse("+31612345678").unwrap(),
                email: schuilnaam::mail::EmailAddress::parse("medewerker@example.nl").unwrap(),
                recipient,
            },
        )
        .await
        .unwrap();
        TestWorker {
            handle: created.handle.clone(),
            alias: created.alias.clone(),
            passphrase: created.passphrase.expose_secret().to_string(),
            totp: totp_from_uri(&created.totp_uri),
            recipient: created.recipient.clone(),
        }
    }

    /// A fresh TOTP code: the clock first moves to the next 30-second step, so codes never repeat.
    pub fn totp_code(&self, worker: &TestWorker) -> String {
        self.clock.advance(Duration::from_secs(30));
        worker.totp.code_at(self.now())
    }

    /// Posts a login and returns the raw response.
    pub async fn login_response(
        &self,
        handle: &str,
        passphrase: &str,
        totp: &str,
    ) -> reqwest::Response {
        self.client()
            .post(format!("{}/v1/login", self.worker_url))
            .json(&json!({ "handle": handle, "passphrase": passphrase, "totp": totp }))
            .send()
            .await
            .unwrap()
    }

    /// Logs in, changing the one-time passphrase first when required; returns a bearer token.
    pub async fn login(&self, worker: &mut TestWorker) -> String {
        let code = self.totp_code(worker);
        let response = self
            .login_response(&worker.handle, &worker.passphrase, &code)
            .await;
        assert_eq!(response.status(), 200, "login of {}", worker.handle);
        let body: Value = response.json().await.unwrap();
        let token = body["token"].as_str().unwrap().to_string();
        if body["must_change_passphrase"] == json!(true) {
            let changed = self
                .client()
                .post(format!("{}/v1/passphrase", self.worker_url))
                .bearer_auth(&token)
                .json(&json!({ "current": worker.passphrase, "new": PASSPHRASE_AFTER_CHANGE }))
                .send()
                .await
                .unwrap();
            assert_eq!(changed.status(), 204, "passphrase change");
            worker.passphrase = PASSPHRASE_AFTER_CHANGE.to_string();
            // A server-held keyring was rotated: new messages go to the new recipient.
            worker.recipient = self.recipient_of(&worker.handle).await;
        }
        token
    }

    /// The age recipient the relay currently seals a worker's messages to.
    pub async fn recipient_of(&self, handle: &str) -> String {
        sqlx::query_scalar("SELECT recipient FROM workers WHERE handle = $1")
            .bind(handle)
            .fetch_one(self.core.store.pool())
            .await
            .unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.client()
            .get(format!("{}{path}", self.worker_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// POSTs JSON to the worker API with a bearer token.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client()
            .post(format!("{}{path}", self.worker_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, token: &str, path: &str) -> reqwest::Response {
        self.client()
            .delete(format!("{}{path}", self.worker_url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn messages(&self, token: &str) -> Vec<Value> {
        let response = self.get(token, "/v1/messages").await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// One message, opened by the worker API.
    pub async fn open_message(&self, token: &str, id: &str) -> Value {
        let response = self.get(token, &format!("/v1/messages/{id}")).await;
        assert_eq!(response.status(), 200, "opening message {id}");
        response.json().await.unwrap()
    }

    /// The admin listener's Prometheus text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One value from the admin listener's metrics (a counter or a gauge).
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.metrics().await;
        let prefix = format!("schuilnaam_{name} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Message bytes SMTP sessions hold in memory right now (the `/metrics` gauge).
    pub async fn smtp_budget_held_bytes(&self) -> usize {
        self.metric("smtp_data_memory_bytes").await as usize
    }

    /// Writes the audit rows of anonymous traffic (refusals, failed logins) that wait in memory, as the
    /// relay does every second and when it stops.
    pub async fn flush_audit(&self) {
        self.core
            .audit_queue
            .flush(self.now())
            .await
            .expect("queued audit rows are written");
    }

    /// Number of stored messages, straight from the database.
    pub async fn stored_messages(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(self.core.store.pool())
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Posts a message on the partner API.
pub async fn post_message(
    client: &reqwest::Client,
    partner_url: &str,
    body: &Value,
) -> Result<reqwest::Response, reqwest::Error> {
    client
        .post(format!("{partner_url}/v1/messages"))
        .json(body)
        .send()
        .await
}

/// Posts a message as `partner`, expects it accepted, and returns its id.
pub async fn delivered(partner: &reqwest::Client, partner_url: &str, body: &Value) -> String {
    let response = post_message(partner, partner_url, body).await.unwrap();
    assert_eq!(response.status(), 202);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An organisation as `org add` takes it: a GI with nothing registered yet.
pub fn organisation(name: &str) -> NewOrganisation {
    NewOrganisation {
        name: OrgName::parse(name).unwrap(),
        kind: OrgKind::Gi,
        domains: vec![],
        phones: vec![],
        certificates: vec![],
    }
}

pub fn message(to: &str, subject: &str, body: &str) -> Value {
    json!({ "to": to, "subject": subject, "body": body, "urgent": false, "kind": "bericht" })
}

pub fn totp_from_uri(uri: &str) -> TotpSecret {
    let secret = uri
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("secret in URI");
    TotpSecret::from_bytes(
        &data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .unwrap(),
    )
}

// ---- the real binary ------------------------------------------------------------------------------

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_schuilnaam")
}

/// Writes a configuration file for the binary: data in `dir`, port 0, the given database.
pub fn write_config_file(dir: &Path, database_url: &str) -> PathBuf {
    let path = dir.join("schuilnaam.toml");
    let text = format!(
        "[relay]\ndata_dir = {data:?}\n\
         [database]\nurl = {url:?}\n\
         [crypto]\nserver_key = {key:?}\nscrypt_work_factor = 10\n\
         [worker_api]\nlisten = \"127.0.0.1:0\"\n\
         [partner_api]\nlisten = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         [smtp]\nlisten = \"127.0.0.1:0\"\n",
        data = dir.display().to_string(),
        url = database_url,
        key = dir.join("server-key.txt").display().to_string(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs a CLI command to completion; returns (exit success, stdout, stderr).
pub fn run_cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("run schuilnaam");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a CLI command with `--json` that must succeed; returns its JSON output.
pub fn cli_json(config: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = run_cli(config, &all);
    assert!(ok, "schuilnaam {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// `schuilnaam serve` in its own process, logging to a file.
pub struct RelayProcess {
    pub child: Child,
    pub log: PathBuf,
    pub worker_url: String,
    pub partner_url: String,
    pub admin_url: String,
    pub smtp_addr: String,
}

impl RelayProcess {
    pub fn start(config: &Path, log: &Path, rust_log: &str) -> Self {
        Self::start_with_env(config, log, rust_log, &[])
    }

    /// With extra environment variables (`SCHUILNAAM_SECTION__KEY` overrides).
    pub fn start_with_env(config: &Path, log: &Path, rust_log: &str, env: &[(&str, &str)]) -> Self {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let offset = std::fs::metadata(log).map(|m| m.len()).unwrap_or(0) as usize;
        let child = Command::new(binary())
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start schuilnaam serve");
        // Owned before waiting, so that a failed start still kills the process (Drop).
        let mut relay = Self {
            child,
            log: log.to_path_buf(),
            worker_url: String::new(),
            partner_url: String::new(),
            admin_url: String::new(),
            smtp_addr: String::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let text = text.get(offset..).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("listening")) {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(&format!("{name}=")))
                        .unwrap_or_else(|| panic!("{name} in {line}"))
                        .to_string()
                };
                relay.worker_url = format!("https://{}", field("worker_api"));
                relay.partner_url = format!("https://{}", field("partner_api"));
                relay.admin_url = format!("http://{}", field("admin"));
                relay.smtp_addr = field("smtp");
                return relay;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "relay did not start; log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the graceful exit.
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "relay exited with {status}");
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reqwest client trusting the CA at `ca_path`, optionally presenting a client certificate.
pub fn client_for(ca_path: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let ca = std::fs::read(ca_path).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .timeout(Duration::from_secs(30));
    if let Some((cert, key)) = identity {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend_from_slice(b"\n");
        pem.extend_from_slice(&std::fs::read(key).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
    }
    builder.build().unwrap()
}

/// A TOTP code for the real clock (for the separate-process relay).
pub fn totp_now(secret: &TotpSecret) -> String {
    secret.code_at(schuilnaam::clock::SystemClock.now_millis())
}
