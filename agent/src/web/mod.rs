//! The duty desk: a web page served by the agent on the local network, with the live list of events and
//! alerts (server-sent events), snapshots, camera health, and acknowledging alerts. It works with the
//! uplink down: everything it shows comes from this PC. Every asset is served by the agent (no CDN).
//!
//! Access: a login is required for everything but the login page and static assets; accounts come from
//! the users file (`edge-agent users add`) or the first-run set-up, which needs a one-time code printed in
//! the agent's log. Sessions are random 256-bit tokens in an `HttpOnly`, `SameSite=Strict` cookie and
//! expire after `web.session_hours`. Viewers see; operators also acknowledge. Every acknowledgement is
//! appended to the audit log (`{state_dir}/audit/`).

mod auth;
mod feed;
pub mod users;

pub use feed::{Ack, AuditAction, AuditRecord, CameraHealth, Feed, FeedItem};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use rand::Rng;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::eventlog::EventLog;
use crate::metrics::CameraList;
use crate::snapshots::SnapshotStore;
use users::{Role, UsersFile};

const COOKIE: &str = "edge_session";
/// How long acknowledgements stay in the audit log.
pub const AUDIT_RETENTION_DAYS: u32 = 365;

/// Camera display names by id, shared with the daemon so a reload updates them.
pub type CameraNames = Arc<std::sync::RwLock<HashMap<String, String>>>;

/// Display names from a config (the id where a camera has no name).
pub fn camera_names(config: &edge_config::Config) -> HashMap<String, String> {
    config.cameras.iter().map(|c| (c.id.clone(), c.name.clone().unwrap_or_else(|| c.id.clone()))).collect()
}

/// What the web server needs.
#[derive(Clone)]
pub struct WebState {
    pub feed: Feed,
    pub cameras: CameraList,
    /// Display names by camera id; replaced on reload.
    pub camera_names: CameraNames,
    pub snapshots: SnapshotStore,
    pub audit: Arc<EventLog>,
    pub users_file: PathBuf,
    pub sessions: Arc<Mutex<HashMap<String, Session>>>,
    pub session_ttl: Duration,
    pub language: String,
    pub site_name: String,
    pub retention_days: u32,
    pub secure_cookie: bool,
    /// One-time code for the first-run set-up (while there are no accounts).
    pub setup_code: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub expires: Instant,
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill(&mut b[..]);
    hex::encode(b)
}

impl WebState {
    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        let token = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_string())?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        sessions.get(&token).cloned()
    }

    fn cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// If no account exists, makes (once) and logs the set-up code.
    pub fn prepare_setup(&self) {
        let none = UsersFile::load(&self.users_file).map(|f| f.users.is_empty()).unwrap_or(false);
        let mut code = self.setup_code.lock().unwrap_or_else(|p| p.into_inner());
        if none && code.is_none() {
            let c = random_token(4);
            tracing::warn!(
                setup_code = %c,
                users_file = %self.users_file.display(),
                "duty desk has no accounts: open the page and create the first operator with this set-up code, or run `edge-agent users add NAME --role operator`"
            );
            *code = Some(c);
        } else if !none {
            *code = None;
        }
    }
}

/// Starts the web server. Returns the bound address once listening.
pub async fn serve(listen: &str, state: WebState, tls: Option<(PathBuf, PathBuf)>, cancel: CancellationToken) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    state.prepare_setup();
    let app = router(state);
    let addr: SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("web.listen {listen}: {e}"))?;
    match tls {
        None => {
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("web.listen {listen}: {e}"))?;
            let bound = listener.local_addr()?;
            let task = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { cancel.cancelled().await }).await {
                    tracing::error!(error = %e, "duty desk web server failed");
                }
            });
            Ok((bound, task))
        }
        Some((cert, key)) => tls::serve(addr, app, &cert, &key, cancel).await,
    }
}

mod tls;

pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/setup", get(auth::setup_page).post(auth::setup))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("assets/app.js")) }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("assets/app.css")) }))
        .route("/api/me", get(me))
        .route("/api/recent", get(recent))
        .route("/api/stream", get(stream))
        .route("/api/cameras", get(cameras))
        .route("/api/alerts/{id}/ack", post(ack))
        .route("/api/audit", get(audit))
        .route("/snapshots/{id}", get(snapshot))
        .with_state(state)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "login required"}))).into_response()
}

fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"),
    );
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}

async fn index(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return Redirect::to("/login").into_response();
    }
    security_headers(Html(include_str!("assets/index.html")).into_response())
}

async fn me(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let Some(session) = s.session(&headers) else { return unauthorized() };
    Json(json!({
        "user": session.user,
        "role": session.role.as_str(),
        "language": s.language,
        "site": s.site_name,
        "retention_days": s.retention_days,
        "cameras": s.camera_names.read().unwrap_or_else(|p| p.into_inner()).clone(),
    }))
    .into_response()
}

async fn recent(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    Json(json!({ "items": s.feed.recent() })).into_response()
}

fn camera_health(s: &WebState) -> FeedItem {
    let list = s.cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
    let names = s.camera_names.read().unwrap_or_else(|p| p.into_inner()).clone();
    let cameras = list
        .iter()
        .map(|r| {
            let h = r.health();
            let (_, fps) = r.rates();
            CameraHealth {
                id: r.id.clone(),
                name: names.get(&r.id).cloned(),
                state: h.state.as_str(),
                since: crate::payload::timestamp(h.since),
                last_error: h.last_error,
                fps: crate::payload::round2(fps),
            }
        })
        .collect();
    FeedItem::Cameras { cameras }
}

async fn cameras(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    Json(camera_health(&s)).into_response()
}

async fn stream(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let Some(session) = s.session(&headers) else { return unauthorized() };
    let rx = s.feed.subscribe();
    let state = s.clone();
    let expires = session.expires;
    // Live items as they come, and camera health every 5 s; the stream ends when the session does.
    let items = futures_stream(rx, state, expires);
    Sse::new(items).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// What the SSE stream carries between polls.
struct StreamState {
    rx: broadcast::Receiver<Arc<str>>,
    state: WebState,
    expires: Instant,
    ticker: tokio::time::Interval,
}

fn futures_stream(rx: broadcast::Receiver<Arc<str>>, state: WebState, expires: Instant) -> impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    // The interval's first tick is immediate: camera health goes out first.
    let ticker = tokio::time::interval(Duration::from_secs(5));
    futures_util::stream::unfold(StreamState { rx, state, expires, ticker }, |mut st| async move {
        if Instant::now() >= st.expires {
            return None;
        }
        let data = tokio::select! {
            item = st.rx.recv() => match item {
                Ok(text) => text.to_string(),
                // A slow page missed some: it reloads the recent list.
                Err(broadcast::error::RecvError::Lagged(_)) => FeedItem::Resync.to_json(),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = st.ticker.tick() => camera_health(&st.state).to_json(),
        };
        Some((Ok(SseEvent::default().data(data)), st))
    })
}

async fn ack(State(s): State<WebState>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    let Some(session) = s.session(&headers) else { return unauthorized() };
    if session.role != Role::Operator {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "only operators acknowledge alerts"}))).into_response();
    }
    let Some((alert, acked)) = s.feed.alert(&id) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "no such alert"}))).into_response();
    };
    if let Some(ack) = acked {
        return Json(ack).into_response();
    }
    let now = Utc::now();
    let ack = Ack { by: session.user.clone(), at: crate::payload::timestamp(now) };
    let record = AuditRecord {
        action: AuditAction::Acknowledge,
        alert: id.clone(),
        rule: alert["rule"].as_str().map(str::to_string),
        camera: alert["camera"].as_str().map(str::to_string),
        by: session.user.clone(),
        role: session.role.as_str().to_string(),
        at: ack.at.clone(),
    };
    let audit = s.audit.clone();
    let line = serde_json::to_string(&record).unwrap_or_default();
    let written = tokio::task::spawn_blocking(move || audit.append(now, line.as_bytes())).await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(alert = %id, "cannot write the audit log; acknowledgement refused");
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "audit log not writable"}))).into_response();
    }
    tracing::info!(alert = %id, user = %session.user, "alert acknowledged");
    s.feed.acknowledge(&id, &ack);
    Json(ack).into_response()
}

async fn audit(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    let log = s.audit.clone();
    let lines = tokio::task::spawn_blocking(move || log.recent_lines(Utc::now(), 31)).await.unwrap_or_default();
    let entries: Vec<AuditRecord> = lines.iter().rev().filter_map(|l| serde_json::from_str(l).ok()).take(500).collect();
    Json(json!({ "entries": entries })).into_response()
}

async fn snapshot(State(s): State<WebState>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    let id = id.trim_end_matches(".jpg").to_string();
    if uuid::Uuid::parse_str(&id).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let store = s.snapshots.clone();
    match tokio::task::spawn_blocking(move || store.find(&id).and_then(|p| std::fs::read(p).ok())).await {
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "private, max-age=3600")], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
