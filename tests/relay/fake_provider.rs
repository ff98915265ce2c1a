//! A fake Twilio-compatible provider for the tests: a real HTTPS server on loopback (its own CA, which
//! the relay is told to trust through `[phone] api_ca`) implementing the REST subset the relay uses —
//! `Messages.json`, `Calls.json`, `GET`/`DELETE` of recordings, with basic auth — and a client that
//! sends signed webhooks to the relay's phone listener, as the provider would.
//!
//! The webhook signature here is computed by this file's own code (HMAC-SHA1 over the public URL and
//! the sorted parameters), independently of `schuilnaam::phone::signature`.
//!
//! Start it with `FakeProvider::start().await`, lay it into a config with `fake.configure(&mut
//! config.phone)`, and after the relay is up tell it where the relay listens with
//! `fake.relay_at(addr)`. The relay's public base URL is `PUBLIC_BASE` (a name the relay does not
//! listen on, as behind a proxy): the fake signs over it and posts to the real address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use tempfile::TempDir;

/// The URL the relay's phone webhooks are configured under at the provider.
pub const PUBLIC_BASE: &str = "https://telefoon.relay.test";
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const AUTH_TOKEN: &str = "fake-provider-auth-token-7e1f";

/// One REST request the fake received: its form parameters.
pub type Form = HashMap<String, String>;

#[derive(Default)]
struct Recorded {
    messages: Vec<Form>,
    calls: Vec<Form>,
    recordings: HashMap<String, Vec<u8>>,
    fetched: Vec<String>,
    deleted: Vec<String>,
    delete_failures_left: u32,
    unauthorised: u32,
    next: u32,
}

pub struct FakeProvider {
    pub url: String,
    pub ca_path: PathBuf,
    state: Arc<Mutex<Recorded>>,
    relay: Mutex<Option<SocketAddr>>,
    client: Mutex<Option<reqwest::Client>>,
    _dir: TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        schuilnaam::tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let ca = schuilnaam::tls::DevCa::load_or_create(&dir.path().join("ca")).unwrap();
        let issued = ca
            .issue_server(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap();
        let certs = rustls_pemfile::certs(&mut issued.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes())
            .unwrap()
            .unwrap();
        let mut tls = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let state = Arc::new(Mutex::new(Recorded::default()));
        let prefix = format!("/2010-04-01/Accounts/{ACCOUNT_SID}");
        let router = Router::new()
            .route(&format!("{prefix}/Messages.json"), post(messages))
            .route(&format!("{prefix}/Calls.json"), post(calls))
            .route(
                &format!("{prefix}/Recordings/{{file}}"),
                get(recording).delete(delete_recording),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(schuilnaam::web::serve::serve_tls(
            listener,
            Arc::new(tls),
            router,
            Arc::new(Default::default()),
            schuilnaam::web::serve::MAX_CONNECTIONS,
            stop_rx,
        ));
        Self {
            url: format!("https://{addr}"),
            ca_path: ca.cert_path(),
            state,
            relay: Mutex::new(None),
            client: Mutex::new(None),
            _dir: dir,
            _stop: stop,
        }
    }

    /// Points a relay's `[phone]` at this provider (hosted path).
    pub fn configure(&self, phone: &mut schuilnaam::config::PhoneConfig) {
        phone.enabled = true;
        phone.listen = "127.0.0.1:0".parse().unwrap();
        phone.provider = schuilnaam::config::PhoneProviderKind::Twiml;
        phone.public_base_url = PUBLIC_BASE.into();
        phone.api_base_url = self.url.clone();
        phone.account_sid = ACCOUNT_SID.into();
        phone.auth_token = AUTH_TOKEN.into();
        phone.api_ca = self.ca_path.clone();
    }

    /// Where the relay's phone listener is, and the CA its certificate comes from.
    pub fn relay_at(&self, addr: SocketAddr, relay_ca_pem: &[u8]) {
        *self.relay.lock().unwrap() = Some(addr);
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(relay_ca_pem).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        *self.client.lock().unwrap() = Some(client);
    }

    /// The relay's phone listener and a client that trusts its certificate (for requests that are not
    /// signed webhooks, such as Kannel's).
    pub fn relay_client(&self) -> (SocketAddr, reqwest::Client) {
        let addr = self.relay.lock().unwrap().expect("relay_at was called");
        let client = self.client.lock().unwrap().clone().unwrap();
        (addr, client)
    }

    /// Posts a webhook signed as the provider signs: over `PUBLIC_BASE + path_and_query` and the
    /// parameters. Returns (status, body).
    pub async fn webhook(&self, path_and_query: &str, params: &[(&str, &str)]) -> (u16, String) {
        let signature = sign(
            AUTH_TOKEN,
            &format!("{PUBLIC_BASE}{path_and_query}"),
            params,
        );
        self.post_raw(path_and_query, params, Some(&signature))
            .await
    }

    /// Posts form parameters with the given signature header (or none).
    pub async fn post_raw(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
        signature: Option<&str>,
    ) -> (u16, String) {
        let (addr, client) = self.relay_client();
        let mut request = client
            .post(format!("https://{addr}{path_and_query}"))
            .form(params);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// Follows a URL the relay gave the provider (a call's `Url`): signed, to the real address.
    pub async fn follow(&self, public_url: &str, params: &[(&str, &str)]) -> (u16, String) {
        let path = public_url
            .strip_prefix(PUBLIC_BASE)
            .unwrap_or_else(|| panic!("not under the public base: {public_url}"));
        self.webhook(path, params).await
    }

    pub fn messages(&self) -> Vec<Form> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn calls(&self) -> Vec<Form> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn add_recording(&self, sid: &str, audio: &[u8]) {
        self.state
            .lock()
            .unwrap()
            .recordings
            .insert(sid.to_string(), audio.to_vec());
    }

    /// Recordings still held at the provider.
    pub fn has_recording(&self, sid: &str) -> bool {
        self.state.lock().unwrap().recordings.contains_key(sid)
    }

    pub fn fetched(&self) -> Vec<String> {
        self.state.lock().unwrap().fetched.clone()
    }

    pub fn deleted(&self) -> Vec<String> {
        self.state.lock().unwrap().deleted.clone()
    }

    /// The next `n` DELETEs of a recording answer 503.
    pub fn fail_deletes(&self, n: u32) {
        self.state.lock().unwrap().delete_failures_left = n;
    }

    /// Requests refused for wrong credentials.
    pub fn unauthorised(&self) -> u32 {
        self.state.lock().unwrap().unauthorised
    }
}

/// The provider's signature: base64(HMAC-SHA1(token, url + name + value for each parameter, sorted by
/// name and, within a name, by value)).
pub fn sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut data = url.to_string();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    data_encoding::BASE64.encode(&mac.finalize().into_bytes())
}

type Shared = State<Arc<Mutex<Recorded>>>;

fn authorised(state: &Mutex<Recorded>, headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        data_encoding::BASE64.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}").as_bytes())
    );
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !ok {
        state.lock().unwrap().unauthorised += 1;
    }
    ok
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [("content-type", "application/json")],
        r#"{"code": 20003, "message": "Authenticate", "status": 401}"#,
    )
        .into_response()
}

fn parse_form(body: &Bytes) -> Form {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn created(prefix: &str, state: &Mutex<Recorded>) -> Response {
    let n = {
        let mut state = state.lock().unwrap();
        state.next += 1;
        state.next
    };
    let sid = format!("{prefix}{n:032x}");
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        format!(r#"{{"sid": "{sid}", "status": "queued"}}"#),
    )
        .into_response()
}

async fn messages(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&state, &headers) {
        return refused();
    }
    let form = parse_form(&body);
    if !form.contains_key("From") || !form.contains_key("To") || !form.contains_key("Body") {
        return (StatusCode::BAD_REQUEST, r#"{"code": 21604}"#).into_response();
    }
    state.lock().unwrap().messages.push(form);
    created("SM", &state)
}

async fn calls(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    if !authorised(&state, &headers) {
        return refused();
    }
    let form = parse_form(&body);
    if !form.contains_key("From") || !form.contains_key("To") {
        return (StatusCode::BAD_REQUEST, r#"{"code": 21201}"#).into_response();
    }
    state.lock().unwrap().calls.push(form);
    created("CA", &state)
}

async fn recording(State(state): Shared, headers: HeaderMap, Path(file): Path<String>) -> Response {
    if !authorised(&state, &headers) {
        return refused();
    }
    let Some(sid) = file.strip_suffix(".wav") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut state = state.lock().unwrap();
    state.fetched.push(sid.to_string());
    match state.recordings.get(sid) {
        Some(audio) => ([("content-type", "audio/x-wav")], audio.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_recording(
    State(state): Shared,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    if !authorised(&state, &headers) {
        return refused();
    }
    let Some(sid) = file.strip_suffix(".json") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut state = state.lock().unwrap();
    if state.delete_failures_left > 0 {
        state.delete_failures_left -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if state.recordings.remove(sid).is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    state.deleted.push(sid.to_string());
    StatusCode::NO_CONTENT.into_response()
}
