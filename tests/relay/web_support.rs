//! What the web app tests share: one chromedriver per test binary (started on first use, ended with
//! the binary), one Chromium session per test, screenshots under target/web-screenshots/, axe-core,
//! a loopback listener that records every connection made to a "remote" host, a TLS proxy that records
//! every byte a browser sends, and mail delivered straight through the intake.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use schuilnaam::intake::{self, Claim, Submission};
use schuilnaam::mailbox::{Channel, MailParts, MessageKind};
use serde_json::json;

use crate::helpers::TestApp;

/// The remote-looking host that HTML mail points at; Chromium resolves it to a recording listener.
pub const REMOTE_HOST: &str = "tracker.evil.example";

/// The chromedriver of this test binary: started once, ended by a watcher when the binary exits.
fn chromedriver() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The watcher ends chromedriver (and with it the browsers) once this test binary is gone.
        let mut watcher = Command::new("sh")
            .arg("-c")
            .arg(
                "chromedriver --port=\"$1\" --log-level=OFF >/dev/null 2>&1 & c=$!; \
                 while kill -0 \"$2\" 2>/dev/null && kill -0 \"$c\" 2>/dev/null; do sleep 1; done; \
                 kill \"$c\" 2>/dev/null",
            )
            .arg("sh")
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test.sh installs it)");
        // Reaped by a thread of its own, so that it never lingers as a zombie.
        std::thread::spawn(move || watcher.wait());
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        format!("http://127.0.0.1:{port}")
    })
}

/// How a test's browser is set up.
#[derive(Clone, Default)]
pub struct BrowserOptions {
    pub javascript: bool,
    /// Where REMOTE_HOST (and every subdomain) resolves to.
    pub remote_host_at: Option<SocketAddr>,
}

/// One Chromium session; closed when the test is done (or ended by chromedriver if it panics).
pub struct Browser {
    pub client: Client,
    pub base: String,
    shots: PathBuf,
    shot: usize,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(base: &str, test: &str, options: BrowserOptions) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--window-size=360,800".into(),
            // Dutch, as a worker's phone would ask for it; the English switch is tested as such.
            "--lang=nl".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Some(at) = options.remote_host_at {
            args.push(format!(
                "--host-resolver-rules=MAP {REMOTE_HOST} {at}, MAP *.evil.example {at}"
            ));
        }
        let mut chrome = json!({ "binary": chromium_binary(), "args": args });
        chrome["prefs"] = json!({ "intl.accept_languages": "nl-NL,nl" });
        if !options.javascript {
            chrome["prefs"]["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("acceptInsecureCerts".into(), json!(true));
        capabilities.insert("goog:chromeOptions".into(), chrome);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(chromedriver())
            .await
            .expect("a Chromium session");
        let suffix = if options.javascript { "js" } else { "nojs" };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/web-screenshots")
            .join(format!("{test}-{suffix}"));
        std::fs::create_dir_all(&shots).unwrap();
        Self {
            client,
            base: base.to_string(),
            shots,
            shot: 0,
            _profile: profile,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.clear().await.unwrap();
        element.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks a button that submits a form and waits until the browser shows the page it led to (the
    /// old document's root element goes stale).
    pub async fn click_and_wait(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while old.tag_name().await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "no new page after clicking {css}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The new document is there once its body can be found.
        self.client
            .wait()
            .for_element(Locator::Css("body"))
            .await
            .unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// A screenshot saved under target/web-screenshots/<test>-<js|nojs>/NN-<name>.png.
    pub async fn screenshot(&mut self, name: &str) {
        self.shot += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.shot)), png).unwrap();
    }

    /// Runs axe-core on the current page: the serious and critical violations (id, impact, count).
    pub async fn axe(&self) -> Vec<String> {
        static AXE: OnceLock<String> = OnceLock::new();
        let source = AXE.get_or_init(|| {
            let path = std::env::var("SCHUILNAAM_TEST_AXE")
                .expect("SCHUILNAAM_TEST_AXE (the axe-core script) is set by scripts/test.sh");
            std::fs::read_to_string(path).expect("axe.min.js")
        });
        self.client
            .execute(&format!("{source}\n;return true;"), vec![])
            .await
            .unwrap();
        let result = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, { resultTypes: ['violations'] })\
                   .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, \
                     nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3) }))))\
                   .catch(e => done([{ id: 'axe-error', impact: 'critical', nodes: [String(e)] }]));",
                vec![],
            )
            .await
            .unwrap();
        result
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| format!("{} ({}): {}", v["id"], v["impact"], v["nodes"]))
            .collect()
    }

    /// Adds a virtual authenticator to this browser (WebDriver's WebAuthn extension): a platform
    /// authenticator with discoverable credentials and user verification that approves every request,
    /// as a phone's fingerprint reader would.
    pub async fn add_virtual_authenticator(&self) -> String {
        let answer = self
            .webauthn_command(
                reqwest::Method::POST,
                "authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                })),
            )
            .await;
        answer["value"]
            .as_str()
            .expect("an authenticator id")
            .to_string()
    }

    /// The credentials the virtual authenticator holds (WebDriver's JSON objects).
    pub async fn authenticator_credentials(&self, authenticator: &str) -> Vec<serde_json::Value> {
        let answer = self
            .webauthn_command(
                reqwest::Method::GET,
                &format!("authenticator/{authenticator}/credentials"),
                None,
            )
            .await;
        answer["value"].as_array().cloned().unwrap_or_default()
    }

    async fn webauthn_command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let session = self.client.session_id().await.unwrap().expect("a session");
        let url = format!("{}/session/{session}/webauthn/{path}", chromedriver());
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "chromedriver: {path}");
        response.json().await.unwrap()
    }

    pub async fn close(self) {
        self.client.close().await.unwrap();
    }
}

fn chromium_binary() -> String {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/chromium")
        .to_string()
}

/// A loopback listener standing in for every remote host: it counts every connection made to it the
/// moment it is accepted, and records the request line of each (answering an empty 404), so a test
/// can assert that nothing reached "outside".
pub struct RemoteRecorder {
    pub address: SocketAddr,
    connections: Arc<Mutex<usize>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl RemoteRecorder {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                *counted.lock().unwrap() += 1;
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buffer = [0u8; 4096];
                    let n = stream.read(&mut buffer).unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    let head = String::from_utf8_lossy(&buffer[..n]).to_string();
                    let line = head.lines().next().unwrap_or_default();
                    recorded
                        .lock()
                        .unwrap()
                        .push(line.trim_end_matches(" HTTP/1.1").to_string());
                    let _ = stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Self {
            address,
            connections,
            requests,
        }
    }

    /// Connections accepted so far (with or without a request on them).
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A TLS proxy in front of the relay's worker listener that records every byte a browser sends
/// through it (decrypted): the proof of what reached the server.
pub struct RecordingProxy {
    pub url: String,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl RecordingProxy {
    pub async fn start(upstream: &str, ca_pem: &[u8]) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let upstream: SocketAddr = upstream
            .trim_start_matches("https://")
            .parse()
            .expect("worker URL is https://ip:port");
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
        let server = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for der in rustls_pemfile::certs(&mut &ca_pem[..]) {
            roots.add(der.unwrap()).unwrap();
        }
        let client = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let recorded = sent.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, connector, recorded) =
                    (acceptor.clone(), connector.clone(), recorded.clone());
                tokio::spawn(async move {
                    let Ok(browser) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(tcp) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let name = rustls::pki_types::ServerName::IpAddress(upstream.ip().into());
                    let Ok(relay) = connector.connect(name, tcp).await else {
                        return;
                    };
                    let (mut from_browser, mut to_browser) = tokio::io::split(browser);
                    let (mut from_relay, mut to_relay) = tokio::io::split(relay);
                    let up = async {
                        let mut buffer = vec![0u8; 16 * 1024];
                        while let Ok(n) = from_browser.read(&mut buffer).await {
                            if n == 0 {
                                break;
                            }
                            recorded.lock().unwrap().extend_from_slice(&buffer[..n]);
                            if to_relay.write_all(&buffer[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_relay.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut from_relay, &mut to_browser).await;
                        let _ = to_browser.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Self { url, sent }
    }

    /// Everything the browser sent, decrypted (request lines, headers, bodies).
    pub fn sent(&self) -> Vec<u8> {
        self.sent.lock().unwrap().clone()
    }
}

/// Delivers a raw e-mail to an alias as the SMTP intake would after authenticating the sender as the
/// organisation that registered `domain`: the letter keeps the raw message (for HTML and attachments).
pub async fn deliver_mail(app: &TestApp, to: &str, domain: &str, raw: &str) -> String {
    let core = &app.core;
    let organisation = schuilnaam::partner::by_mail_domain(&core.store, domain)
        .await
        .unwrap()
        .expect("a registered mail partner");
    let inspected = schuilnaam::mail::inspect::inspect(raw.as_bytes()).expect("a valid message");
    let submission = Submission {
        to: schuilnaam::alias::Address::parse(to).unwrap(),
        claim: Claim {
            organisation: Some(organisation),
            ..Claim::default()
        },
        channel: Channel::Mail,
        kind: MessageKind::Bericht,
        urgent: inspected.urgent,
        sender_label: String::new(),
        subject: inspected.subject.clone(),
        body: inspected.text.clone(),
        mail: Some(MailParts {
            reply_to: inspected.from.as_str().to_string(),
            message_id: inspected.message_id.clone(),
            references: inspected.references.clone(),
            attachments: inspected.attachments.clone(),
            raw: raw.as_bytes().to_vec(),
        }),
    };
    intake::submit(core, submission)
        .await
        .unwrap_or_else(|e| panic!("delivery refused: {e}"))
        .to_string()
}

/// The id of the newest message of a worker's inbox page link.
pub fn first_message_link(source: &str) -> Option<String> {
    let start = source.find("href=\"/berichten/")? + "href=\"/berichten/".len();
    Some(source[start..start + 32].to_string())
}

/// A reqwest client for the pages that keeps cookies like a browser (but runs no script, loads no
/// CSS) and follows no redirect, so each answer can be checked.
pub struct PageClient {
    pub client: reqwest::Client,
    pub base: String,
    cookies: Mutex<std::collections::BTreeMap<String, String>>,
}

impl PageClient {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&app.ca_pem).unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: app.worker_url.clone(),
            cookies: Mutex::new(Default::default()),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.cookies.lock().unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    pub async fn text(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    pub async fn post_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> reqwest::Response {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .multipart(form)
            .send()
            .await
            .unwrap();
        self.keep(&response);
        response
    }

    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().contains_key(name)
    }

    /// The cookies this client holds now, to send again later as a replaying attacker would.
    pub fn cookies(&self) -> std::collections::BTreeMap<String, String> {
        self.cookies.lock().unwrap().clone()
    }

    pub fn restore_cookies(&self, cookies: std::collections::BTreeMap<String, String>) {
        *self.cookies.lock().unwrap() = cookies;
    }
}

/// The value of the first hidden `csrf` field in a page.
pub fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..start + 40].to_string()
}

/// Logs in through the pages: handle, passphrase and a fresh code; changes the one-time passphrase
/// when asked. Returns the client holding the session cookie.
pub async fn page_login(app: &TestApp, worker: &mut crate::helpers::TestWorker) -> PageClient {
    let client = PageClient::new(app);
    let login = client.text("/inloggen").await;
    let code = app.totp_code(worker);
    let response = client
        .post(
            "/inloggen",
            &[
                ("csrf", csrf_of(&login).as_str()),
                ("handle", worker.handle.as_str()),
                ("passphrase", worker.passphrase.as_str()),
                ("totp", code.as_str()),
            ],
        )
        .await;
    assert_eq!(response.status(), 303, "page login of {}", worker.handle);
    if response.headers()["location"] == "/wachtwoordzin" {
        let page = client.text("/wachtwoordzin").await;
        let changed = client
            .post(
                "/wachtwoordzin",
                &[
                    ("csrf", csrf_of(&page).as_str()),
                    ("current", worker.passphrase.as_str()),
                    ("new", crate::helpers::PASSPHRASE_AFTER_CHANGE),
                    ("repeat", crate::helpers::PASSPHRASE_AFTER_CHANGE),
                ],
            )
            .await;
        assert_eq!(changed.status(), 303);
        worker.passphrase = crate::helpers::PASSPHRASE_AFTER_CHANGE.to_string();
        worker.recipient = app.recipient_of(&worker.handle).await;
    }
    client
}
