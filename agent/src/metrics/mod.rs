//! Observability for the people who run the PC: `/metrics` in the Prometheus text format and `/healthz`,
//! on a small HTTP server bound to loopback by default, plus the health verdict the systemd watchdog
//! keep-alives depend on.
//!
//! Health is decided in one place ([`HealthCheck::evaluate`]): every enabled camera's thread has gone
//! round its loop recently, the outbox writer answers, and the MQTT task is still running; if not, the
//! agent is *unhealthy* and the watchdog lets systemd restart it. A disconnected broker or an offline
//! camera is *degraded*. When the agent runs but cannot do its job — the disk is full or failing, or
//! delivery to a connected broker has stalled — it is *failing*: `/healthz` answers 503 with the reason,
//! and the watchdog is still fed, because a restart would not fix either.

mod health;
mod render;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

use crate::mqtt::LinkState;
use crate::outbox::OutboxHandle;
use crate::stats::CameraRecord;
use crate::storage::Storage;
pub use health::{Health, HealthCheck, HealthStatus, Uplink, CAMERA_STUCK_AFTER, DELIVERY_STALLED_AFTER};
pub use render::render;

/// The cameras currently configured, in config order. Replaced as a whole on reload.
pub type CameraList = Arc<RwLock<Vec<Arc<CameraRecord>>>>;

/// Everything `/metrics` and `/healthz` read. Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    pub cameras: CameraList,
    pub outbox: OutboxHandle,
    pub storage: Arc<Storage>,
    pub link: Option<Arc<LinkState>>,
    pub health: Arc<Mutex<Health>>,
    pub started: Instant,
    pub reloads: Arc<ReloadCounters>,
    /// The duty desk's sign-in limits, when the desk is served.
    pub web_guard: Option<Arc<crate::web::guard::Guard>>,
    /// The notification channels, when any is configured.
    pub notify: Option<crate::notify::NotifyHandle>,
    pub clips: Option<crate::clips::ClipsHandle>,
    /// The GA/T 1400 uplink, when configured.
    pub gat1400: Option<crate::gat1400::Gat1400Handle>,
}

/// Config reloads, for `/metrics`.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    pub ok: std::sync::atomic::AtomicU64,
    pub rejected: std::sync::atomic::AtomicU64,
}

/// Serves `/metrics` and `/healthz` on `listen` until `cancel` fires. Returns the bound address (port 0
/// picks one) once listening.
pub async fn serve(listen: &str, sources: Sources, cancel: CancellationToken) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("metrics.listen {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(metrics)).route("/healthz", get(healthz)).with_state(sources);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics endpoint failed");
        }
    });
    Ok((addr, task))
}

async fn healthz(State(sources): State<Sources>) -> impl IntoResponse {
    let health = sources.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let code = if health.is_failing() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (code, axum::Json(health))
}

async fn metrics(State(sources): State<Sources>) -> impl IntoResponse {
    let outbox = sources.outbox.clone();
    let stats = tokio::task::spawn_blocking(move || outbox.outbox().stats()).await.ok().and_then(Result::ok).unwrap_or_default();
    let body = render(&sources, &stats);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}
