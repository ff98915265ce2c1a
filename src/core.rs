//! The application core that every adapter holds: the store, the keys, the clock, the deliverer, the
//! metrics, the relay domain, and the shared limits on expensive work. It knows no listener: the partner
//! API, the worker API, SMTP and the admin listener each hold an `Arc<Core>` plus their own adapter
//! state, and turn their wire format into calls on the domain modules and on `intake`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};

use crate::alias::Domain;
use crate::audit::AuditQueue;
use crate::clock::{Millis, SharedClock};
use crate::config::Config;
use crate::crypto::ServerKey;
use crate::error::{Error, Result};
use crate::mail::dkim::DkimKey;
use crate::mail::smarthost::Smarthost;
use crate::mailbox::Deliverer;
use crate::metrics::Metrics;
use crate::store::Store;

/// Parallel passphrase computations allowed (argon2id 64 MiB, scrypt up to 256 MiB each); more wait,
/// and past `KDF_WAIT` are told to retry.
pub const KDF_SLOTS: usize = 4;
const KDF_WAIT: Duration = Duration::from_secs(10);

pub struct Core {
    pub config: Config,
    pub store: Store,
    pub server_key: Arc<ServerKey>,
    pub clock: SharedClock,
    pub domain: Domain,
    pub deliverer: Deliverer,
    pub metrics: Arc<Metrics>,
    /// Audit rows of anonymous traffic (refusals, failed and rate-limited logins), written in batches.
    pub audit_queue: AuditQueue,
    /// CPU-heavy work (composing, cleaning, leak-checking, signing, sealing, parsing large mail).
    pub cpu: CpuPool,
    /// The relay's DKIM key (signs replies and notifications).
    pub dkim: Arc<DkimKey>,
    /// `None` when no smarthost is configured (outbound mail off).
    pub smarthost: Option<Arc<Smarthost>>,
    /// Woken when something was queued for the outbound sender.
    pub outbound_wake: Arc<Notify>,
    /// The phone provider and settings; `None` when `[phone] enabled` is false.
    pub phone: Option<Arc<crate::phone::Phone>>,
    /// The on-call duty: its settings, channels and the scheduler's wake-up.
    pub oncall: Arc<crate::oncall::OnCall>,
    kdf_slots: Semaphore,
}

/// What `Core::new` is built from (everything already loaded or opened).
pub struct CoreParts {
    pub config: Config,
    pub store: Store,
    pub server_key: Arc<ServerKey>,
    pub clock: SharedClock,
    pub deliverer: Deliverer,
    pub metrics: Arc<Metrics>,
    pub dkim: Arc<DkimKey>,
    pub smarthost: Option<Arc<Smarthost>>,
    pub outbound_wake: Arc<Notify>,
    pub phone: Option<Arc<crate::phone::Phone>>,
}

impl Core {
    pub fn new(parts: CoreParts) -> Self {
        let domain = parts.config.domain();
        let oncall = Arc::new(crate::oncall::OnCall::new(
            &parts.config.oncall,
            parts.deliverer.alert_wake(),
        ));
        if parts.smarthost.is_some() {
            oncall.install_channel(Arc::new(crate::oncall::notify::EmailChannel));
        }
        Self {
            oncall,
            audit_queue: AuditQueue::new(parts.store.clone()),
            cpu: CpuPool::new(cpu_slots()),
            domain,
            config: parts.config,
            store: parts.store,
            server_key: parts.server_key,
            clock: parts.clock,
            deliverer: parts.deliverer,
            metrics: parts.metrics,
            dkim: parts.dkim,
            smarthost: parts.smarthost,
            outbound_wake: parts.outbound_wake,
            phone: parts.phone,
            kdf_slots: Semaphore::new(KDF_SLOTS),
        }
    }

    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Waits for a passphrase-computation slot; `Busy` when the relay is saturated.
    pub async fn kdf_slot(&self) -> Result<SemaphorePermit<'_>> {
        match tokio::time::timeout(KDF_WAIT, self.kdf_slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::Busy),
        }
    }

    pub fn worker_crypto(&self) -> crate::worker::Crypto<'_> {
        crate::worker::Crypto {
            server_key: &self.server_key,
            scrypt_work_factor: self.config.crypto.scrypt_work_factor,
        }
    }
}

/// As many CPU jobs at once as there are cores (at least two): more would only queue inside the
/// blocking pool while holding their inputs in memory.
fn cpu_slots() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

/// Runs CPU-heavy closures on the blocking thread pool, at most `slots` at a time, so that a large
/// reply or message never stalls the async threads that answer every other client.
pub struct CpuPool {
    slots: Arc<Semaphore>,
    size: usize,
}

impl CpuPool {
    pub fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            size: slots,
        }
    }

    /// Runs `work` off the async threads once a slot is free; its result.
    pub fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slots = self.slots.clone();
        async move {
            let _slot = slots.acquire_owned().await.map_err(|_| Error::Busy)?;
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|_| Error::Crypto("a background computation did not finish".into()))
        }
    }

    /// Jobs running right now (for `/metrics`).
    pub fn running(&self) -> usize {
        self.size - self.slots.available_permits()
    }
}
