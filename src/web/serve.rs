//! Serving a router over TLS: the shared accept loop, a handshake with a deadline, the connection facts
//! (client address, client-certificate fingerprint) attached to each request, HTTP/1.1, and on shutdown
//! every open connection finishes its request in flight and closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::ConnectionInfo;
use crate::metrics::Metrics;
use crate::net::{accept_loop, Accepted, Limits};
use crate::partner::Fingerprint;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener; further clients wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 2048;

/// Serves `router` over TLS on `listener`; one client address (IPv6 /64) may hold at most
/// `per_address` of the listener's connections, so that idle or slow connections from one host
/// cannot take every slot.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    metrics: Arc<Metrics>,
    per_address: usize,
    shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let limits = Limits {
        max_connections: MAX_CONNECTIONS,
        per_network: Some(per_address),
        drain: DRAIN_TIMEOUT,
    };
    let connection_shutdown = shutdown.clone();
    accept_loop(listener, limits, shutdown, move |accepted| {
        serve_connection(
            accepted,
            acceptor.clone(),
            router.clone(),
            metrics.clone(),
            connection_shutdown.clone(),
        )
    })
    .await;
}

async fn serve_connection(
    accepted: Accepted,
    acceptor: TlsAcceptor,
    router: Router,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    if accepted.over_network_limit {
        // Closed before the handshake: costs nothing, and frees the slot at once.
        Metrics::inc(&metrics.https_connections_refused_total);
        return;
    }
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(accepted.tcp)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            Metrics::inc(&metrics.tls_handshakes_failed_total);
            tracing::debug!(cause = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            Metrics::inc(&metrics.tls_handshakes_failed_total);
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let info = ConnectionInfo {
        peer: accepted.peer.ip(),
        client_certificate: stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| Fingerprint::of_der(leaf)),
    };
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(info.clone());
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(cause = %e, "connection ended with an error");
    }
}
