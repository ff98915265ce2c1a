//! schuilnaam: a secure pseudonymous contact relay for threatened youth-protection workers.
//!
//! `App::build` binds every listener and opens the store; `App::run_until_stopped` serves until the
//! shutdown future completes, then drains. `main.rs` only parses the command line and calls in here;
//! the integration tests start the very same `App` on port 0.

pub mod alias;
pub mod api_token;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod crypto;
pub mod error;
pub mod ids;
pub mod intake;
pub mod mail;
pub mod mailbox;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod oncall;
pub mod partner;
pub mod phone;
pub mod session;
pub mod store;
pub mod team;
pub mod telemetry;
pub mod tls;
pub mod totp;
pub mod web;
pub mod webauthn;
pub mod worker;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::Config;
pub use crate::error::{Error, Result};

use crate::clock::{SharedClock, SystemClock};
use crate::core::{Core, CoreParts};
use crate::crypto::ServerKey;
use crate::mail::smtp::SmtpServer;
use crate::session::{LoginLimiter, Sessions};
use crate::store::Store;
use crate::web::admin::{AdminState, Gauge};
use crate::web::worker_api::WorkerApi;

/// How often expired sessions are swept from memory (their identities wiped).
const SESSION_SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// How often handled phone webhooks, calls and bridges past their time are forgotten.
const PHONE_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The relay with its listeners bound and its store open, ready to run.
pub struct App {
    core: Arc<Core>,
    worker_api: Arc<WorkerApi>,
    smtp: Arc<SmtpServer>,
    worker_listener: TcpListener,
    partner_listener: TcpListener,
    admin_listener: TcpListener,
    smtp_listener: TcpListener,
    /// The phone webhooks' listener, when `[phone] enabled`.
    phone_listener: Option<TcpListener>,
    worker_tls: Arc<ServerConfig>,
    partner_tls: Arc<ServerConfig>,
}

impl App {
    pub async fn build(config: Config) -> Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like `build`, with a chosen clock (tests move time instead of sleeping).
    pub async fn build_with_clock(config: Config, clock: SharedClock) -> Result<Self> {
        tls::install_default_provider();
        prepare_data_dir(&config)?;
        let server_key = Arc::new(ServerKey::load_or_create(&config.crypto.server_key)?);
        let dkim = Arc::new(mail::dkim::DkimKey::from_config(&config)?);
        let smarthost = mail::smarthost::Smarthost::from_config(&config)?.map(Arc::new);
        let notifier = smarthost.as_ref().map(|_| {
            Arc::new(notify::Notifier::new(
                server_key.clone(),
                dkim.clone(),
                &config.relay.domain,
                &config.outbound.notify_from,
                config.outbound.notify_interval_seconds,
            ))
        });
        let outbound_wake = Arc::new(tokio::sync::Notify::new());
        let material = tls::load_material(&config)?;
        let worker_tls = tls::worker_server_config(&material)?;
        let partner_tls = tls::partner_server_config(&material)?;
        let smtp_tls = tls::smtp_server_config(&material)?;
        let authenticator = mail::auth::Authenticator::new(
            config
                .dns_resolver()
                .map_err(|e| Error::invalid(e.to_string()))?,
            &config.smtp.hostname,
        )?;
        let store = Store::open(&config.database.url, config.database.max_connections).await?;
        let worker_listener = TcpListener::bind(config.worker_api.listen).await?;
        let relying_party = config
            .worker_api
            .relying_party(local_addr(&worker_listener).port())
            .map_err(|e| Error::invalid(e.to_string()))?;
        let partner_listener = TcpListener::bind(config.partner_api.listen).await?;
        let admin_listener = TcpListener::bind(config.admin.listen).await?;
        let smtp_listener = TcpListener::bind(config.smtp.listen).await?;
        let phone = phone::Phone::from_config(&config.phone)?.map(Arc::new);
        let phone_listener = match &phone {
            Some(_) => Some(TcpListener::bind(config.phone.listen).await?),
            None => None,
        };
        let deliverer = mailbox::Deliverer::start(store.clone(), notifier, outbound_wake.clone());
        let sessions = Arc::new(Sessions::new(
            config.session.idle_timeout_seconds,
            config.session.absolute_timeout_seconds,
        ));
        let limiter = LoginLimiter::new(
            config.login.max_failures_per_handle,
            config.login.max_failures_per_address,
            config.login.window_seconds,
        );
        let core = Arc::new(Core::new(CoreParts {
            config,
            store,
            server_key,
            clock,
            deliverer,
            metrics: Default::default(),
            dkim,
            smarthost,
            outbound_wake,
            phone,
        }));
        if let Some(phone) = &core.phone {
            oncall::phone_channel::install(&core.oncall, phone);
        }
        let worker_api = Arc::new(WorkerApi {
            core: core.clone(),
            sessions,
            limiter,
            relying_party,
        });
        let smtp = Arc::new(SmtpServer::new(core.clone(), authenticator, smtp_tls));
        Ok(Self {
            core,
            worker_api,
            smtp,
            worker_listener,
            partner_listener,
            admin_listener,
            smtp_listener,
            phone_listener,
            worker_tls,
            partner_tls,
        })
    }

    pub fn worker_addr(&self) -> SocketAddr {
        local_addr(&self.worker_listener)
    }

    pub fn partner_addr(&self) -> SocketAddr {
        local_addr(&self.partner_listener)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        local_addr(&self.admin_listener)
    }

    pub fn smtp_addr(&self) -> SocketAddr {
        local_addr(&self.smtp_listener)
    }

    /// The phone webhooks' listener, when `[phone] enabled`.
    pub fn phone_addr(&self) -> Option<SocketAddr> {
        self.phone_listener.as_ref().map(local_addr)
    }

    /// The core, for tests that look inside (the store, the keys, the audit queue).
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// The worker listener's sessions, for tests that check what a session holds.
    pub fn sessions(&self) -> Arc<Sessions> {
        self.worker_api.sessions.clone()
    }

    /// The gauges the admin listener shows besides the core's own.
    fn gauges(&self) -> Vec<Gauge> {
        let sessions = self.worker_api.sessions.clone();
        let unlocked = self.worker_api.sessions.clone();
        let budget = self.smtp.budget();
        vec![
            Gauge {
                name: "sessions",
                help: "Live worker sessions.",
                read: Box::new(move || sessions.len() as u64),
            },
            Gauge {
                name: "unlocked_identities",
                help: "Sessions holding an unlocked identity in memory.",
                read: Box::new(move || unlocked.unlocked_identities() as u64),
            },
            Gauge {
                name: "smtp_data_memory_bytes",
                help: "Message bytes SMTP sessions hold in memory right now (in 64 KiB steps).",
                read: Box::new(move || budget.held_bytes() as u64),
            },
        ]
    }

    /// Serves every listener and runs the background tasks until `shutdown` completes; then stops
    /// accepting, lets open requests finish, writes the queued audit rows and closes the store.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let admin_state = Arc::new(AdminState {
            core: self.core.clone(),
            gauges: self.gauges(),
        });
        let core = self.core;
        let worker = tokio::spawn(web::serve::serve_tls(
            self.worker_listener,
            self.worker_tls.clone(),
            web::worker_router(self.worker_api.clone()),
            core.metrics.clone(),
            core.config.worker_api.max_connections_per_address,
            stop_rx.clone(),
        ));
        let partner = tokio::spawn(web::serve::serve_tls(
            self.partner_listener,
            self.partner_tls,
            web::partner_api::router(core.clone()),
            core.metrics.clone(),
            core.config.partner_api.max_connections_per_address,
            stop_rx.clone(),
        ));
        let mut admin_stop = stop_rx.clone();
        let admin = tokio::spawn(
            axum::serve(self.admin_listener, web::admin::router(admin_state))
                .with_graceful_shutdown(async move {
                    let _ = admin_stop.changed().await;
                })
                .into_future(),
        );
        let smtp = tokio::spawn(mail::smtp::serve(
            self.smtp_listener,
            self.smtp,
            stop_rx.clone(),
        ));
        let sender = core.smarthost.clone().map(|smarthost| {
            tokio::spawn(mail::sender::run(core.clone(), smarthost, stop_rx.clone()))
        });
        let mut phone_tasks = Vec::new();
        if let (Some(listener), Some(phone)) = (self.phone_listener, core.phone.clone()) {
            phone_tasks.push(tokio::spawn(web::serve::serve_tls(
                listener,
                self.worker_tls.clone(),
                web::phone_hooks::router(core.clone(), phone.clone()),
                core.metrics.clone(),
                core.config.phone.max_connections_per_address,
                stop_rx.clone(),
            )));
            phone_tasks.push(tokio::spawn(phone::voicemail::run(
                core.clone(),
                phone.clone(),
                phone.voicemail_wake.clone(),
                stop_rx.clone(),
            )));
        }
        let oncall = tokio::spawn(oncall::scheduler::run(core.clone(), stop_rx.clone()));
        let background = tokio::spawn(run_background_tasks(
            core.clone(),
            self.worker_api.sessions.clone(),
            stop_rx,
        ));
        tracing::info!("schuilnaam is running");

        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing open requests");
        let _ = stop_tx.send(true);
        let _ = tokio::join!(worker, partner, admin, smtp, background, oncall);
        if let Some(sender) = sender {
            let _ = sender.await;
        }
        for task in phone_tasks {
            let _ = task.await;
        }
        // Every listener has stopped: nothing more can be queued.
        if let Err(e) = core.audit_queue.flush(core.now()).await {
            tracing::error!(cause = %e, "writing the queued audit rows at shutdown failed");
        }
        core.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound listener has a local address")
}

/// The data directory holds the database, keys and CA: owner-only.
pub fn prepare_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &config.relay.data_dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    } else if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            data_dir = %dir.display(),
            "the data directory is readable by other accounts; chmod 700 it"
        );
    }
    Ok(())
}

/// Retention, session sweeping and writing the queued audit rows, until told to stop.
async fn run_background_tasks(
    core: Arc<Core>,
    sessions: Arc<Sessions>,
    mut stop: watch::Receiver<bool>,
) {
    let mut retention = tokio::time::interval(Duration::from_secs(
        core.config.retention.sweep_interval_seconds,
    ));
    let mut sweep = tokio::time::interval(SESSION_SWEEP_INTERVAL);
    let mut audit = tokio::time::interval(audit::AUDIT_FLUSH_INTERVAL);
    let mut phone_sweep = tokio::time::interval(PHONE_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            _ = phone_sweep.tick() => {
                if let Err(e) = phone::voice::sweep(&core).await {
                    tracing::error!(cause = %e, "forgetting old phone webhooks failed");
                }
            }
            _ = retention.tick() => apply_retention(&core).await,
            _ = sweep.tick() => { sessions.sweep(core.now()); }
            _ = audit.tick() => {
                if let Err(e) = core.audit_queue.flush(core.now()).await {
                    tracing::error!(cause = %e, "writing the queued audit rows failed; will retry");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Deletes messages older than `retention.messages_days`, and the summaries of mail that left (or was
/// given up) that long ago.
pub async fn apply_retention(core: &Core) {
    let now = core.now();
    let cutoff = now - i64::from(core.config.retention.messages_days) * 86_400_000;
    match mailbox::delete_older_than(&core.store, now, cutoff).await {
        Ok(0) => {}
        Ok(deleted) => {
            core.metrics
                .retention_deleted_total
                .fetch_add(deleted, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(deleted, "retention: deleted expired messages");
        }
        Err(e) => tracing::error!(cause = %e, "retention sweep failed"),
    }
    match mail::outbound::forget_finished_before(&core.store, now, cutoff).await {
        Ok(0) => {}
        Ok(forgotten) => tracing::info!(forgotten, "retention: forgot sent mail"),
        Err(e) => tracing::error!(cause = %e, "retention sweep of sent mail failed"),
    }
}
