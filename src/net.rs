//! The accept loop every TCP listener shares (the HTTPS listeners and SMTP): a cap on open
//! connections, an optional cap per client network, and on shutdown: stop accepting, give open
//! connections time to finish (each watches the same shutdown signal), then cut what is left.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::session::network_of;

/// An accepted connection, handed to the adapter.
pub struct Accepted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    /// The client's network already has as many connections open as allowed: the adapter answers
    /// with its own "too many connections" and closes.
    pub over_network_limit: bool,
}

pub struct Limits {
    /// Open connections at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Open connections per client network (IPv4 address, IPv6 /64); `None`: no such cap.
    pub per_network: Option<usize>,
    /// How long open connections may take to finish after shutdown.
    pub drain: Duration,
}

/// Accepts until `shutdown`, running `handle` for each connection on its own task.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    handle: H,
) where
    H: Fn(Accepted) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_network = limits.per_network.map(|max| Arc::new(PerNetwork::new(max)));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = tcp.set_nodelay(true);
        let admission = per_network.as_ref().map(|p| p.admit(peer.ip()));
        let over_network_limit = matches!(admission, Some(None));
        let connection = handle(Accepted {
            tcp,
            peer,
            over_network_limit,
        });
        connections.spawn(async move {
            let _held = (slot, admission);
            connection.await;
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.drain, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections still open after the drain timeout; closing them");
        connections.abort_all();
    }
}

/// Open connections per client network; an admission is counted until it is dropped.
pub struct PerNetwork {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

pub struct Admission {
    owner: Arc<PerNetwork>,
    network: IpAddr,
}

impl PerNetwork {
    pub fn new(max: usize) -> Self {
        Self {
            open: Default::default(),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one more connection from `ip`'s network, or `None` when it is at the limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admission> {
        let network = network_of(ip);
        let mut open = self.lock();
        let count = open.entry(network).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Admission {
            owner: self.clone(),
            network,
        })
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self.owner.lock();
        if let Some(count) = open.get_mut(&self.network) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.network);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_network_are_counted_until_dropped() {
        let open = Arc::new(PerNetwork::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = open.admit(a).unwrap();
        let second = open.admit(a).unwrap();
        assert!(open.admit(a).is_none());
        assert!(open.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        let third = open.admit(a).unwrap();
        drop((second, third));
        assert!(open.is_empty());
    }
}
