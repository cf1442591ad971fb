//! The duty desk's HTTP(S) server with limits, so nobody on the village LAN can starve the agent of
//! descriptors or memory: a cap on connections in total and per address (one over the cap is closed at
//! once), a timeout for the TLS handshake and for every request header (which also closes idle keep-alive
//! connections), and a bound on the header size. Each connection is served by hyper's HTTP/1 with the
//! router, and the peer address is handed to the handlers (`ConnectInfo`) for the sign-in limits.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's header must arrive within this (also the longest an idle keep-alive connection stays).
    pub header_timeout: Duration,
    /// The TLS handshake must finish within this.
    pub handshake_timeout: Duration,
    /// Connections open at once, in total.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_address: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { header_timeout: Duration::from_secs(10), handshake_timeout: Duration::from_secs(10), max_connections: 256, max_per_address: 32 }
    }
}

/// Connections refused because a cap was reached (for the log).
#[derive(Debug, Default)]
pub struct Refused {
    pub total: AtomicU64,
}

/// Counts one address's open connections; gives the slot back when dropped.
struct AddressSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl AddressSlot {
    fn take(open: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut map = open.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self { ip, open: open.clone() })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections until `cancel`, serving each with `app` (through TLS when `tls` is set).
pub async fn run(listener: TcpListener, app: Router, tls: Option<TlsAcceptor>, limits: Limits, cancel: CancellationToken) {
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(Mutex::new(HashMap::new()));
    let refused = Arc::new(Refused::default());
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait instead of spinning.
                    tracing::warn!(error = %e, "duty desk: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let slots = total.clone().try_acquire_owned().ok().zip(AddressSlot::take(&per_address, peer.ip(), limits.max_per_address));
        let Some(slots) = slots else {
            if refused.total.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                tracing::warn!(address = %peer.ip(), "duty desk: connection limit reached, closing new connections");
            }
            drop(stream);
            continue;
        };
        let (app, tls, cancel) = (app.clone(), tls.clone(), cancel.clone());
        tokio::spawn(async move {
            let _slots = slots;
            match tls {
                None => serve_connection(stream, peer, app, limits, cancel).await,
                Some(acceptor) => match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => serve_connection(tls, peer, app, limits, cancel).await,
                    Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "duty desk: TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %peer, "duty desk: TLS handshake timed out"),
                },
            }
        });
    }
}

/// Serves one connection with HTTP/1 until it ends, its header times out, or the server stops.
async fn serve_connection<I>(io: I, peer: SocketAddr, app: Router, limits: Limits, cancel: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).max_buf_size(64 * 1024);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        r = connection.as_mut() => r,
        _ = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(2), connection.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = result {
        tracing::debug!(peer = %peer, error = %e, "duty desk: connection ended with an error");
    }
}
