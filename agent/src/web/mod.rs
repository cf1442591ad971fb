//! The duty desk: a web page served by the agent on the local network, with the live list of events and
//! alerts (server-sent events), snapshots, camera health, and acknowledging alerts. It works with the
//! uplink down: everything it shows comes from this PC. Every asset is served by the agent (no CDN).
//!
//! Access: a login is required for everything but the login page and static assets; accounts come from
//! the users file (`edge-agent users add`) or the first-run set-up, which needs a one-time code the agent
//! writes to a file only root and the service user can read. Sessions ([`session`]) expire after
//! `web.session_hours` and end at once on sign-out or an account change. Viewers see; operators also
//! acknowledge. Sign-ins, account changes and acknowledgements go to the chained audit log ([`audit`]).
//! Every request passes [`policy`] (Host allow-list, same-origin check on changes, security headers), and
//! the server ([`server`]) limits connections and header time; [`guard`] limits guessing.

pub mod audit;
mod auth;
pub mod device;
pub mod dispose;
mod feed;
pub mod guard;
mod policy;
mod reports;
mod server;
pub mod session;
mod tls;
pub mod users;

pub use audit::{AuditAction, AuditLog, AuditRecord, AUDIT_RETENTION_DAYS};
pub use dispose::{DisposeError, Disposer};
pub use feed::{Ack, AgentNotice, CameraHealth, Feed, FeedItem};
pub use policy::allowed_hosts;
pub use session::{random_token, Session, Sessions};

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
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::metrics::CameraList;
use crate::snapshots::SnapshotStore;
use users::{Role, UsersFile};

const COOKIE: &str = "edge_session";
/// How long a set-up code stays valid.
const SETUP_CODE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Wrong set-up codes before the code is invalidated.
const SETUP_CODE_TRIES: u32 = 5;

/// Camera display names by id, shared with the daemon so a reload updates them.
pub type CameraNames = Arc<std::sync::RwLock<HashMap<String, String>>>;

/// Display names from a config (the id where a camera has no name).
pub fn camera_names(config: &edge_config::Config) -> HashMap<String, String> {
    config.cameras.iter().map(|c| (c.id.clone(), c.name.clone().unwrap_or_else(|| c.id.clone()))).collect()
}

/// The one-time code that lets the first operator account be created.
#[derive(Debug, Clone)]
pub struct SetupCode {
    code: String,
    expires: Instant,
    failures: u32,
}

/// What the web server needs.
#[derive(Clone)]
pub struct WebState {
    pub feed: Feed,
    pub cameras: CameraList,
    /// Display names by camera id; replaced on reload.
    pub camera_names: CameraNames,
    pub snapshots: SnapshotStore,
    pub audit: Arc<AuditLog>,
    pub users_file: PathBuf,
    pub sessions: Sessions,
    pub session_ttl: Duration,
    pub language: String,
    pub site_name: String,
    pub retention_days: u32,
    /// Served over TLS: `Secure` cookies and HSTS.
    pub tls: bool,
    /// The first-run set-up code, while there are no accounts.
    pub setup_code: Arc<Mutex<Option<SetupCode>>>,
    /// Where the set-up code is written (0600; root and the service user can read it).
    pub setup_code_file: PathBuf,
    pub guard: Arc<guard::Guard>,
    /// Signs and checks device cookies (browsers an account signed in from before).
    pub devices: Arc<device::DeviceKeys>,
    /// Host names the page answers to (see [`policy`]).
    pub allowed_hosts: Arc<Vec<String>>,
    pub disposer: Arc<Disposer>,
    /// Closed flow-count periods, for the chart.
    pub counts_log: Arc<crate::eventlog::EventLog>,
    /// The passings index, when it could be opened.
    pub history: Option<Arc<crate::history::History>>,
    /// The state directory's disk and the agent's latest health verdict, for the page's notice line.
    pub storage: Option<Arc<crate::storage::Storage>>,
    pub health: Option<Arc<Mutex<crate::metrics::Health>>>,
}

/// Every cookie a request carries, as (name, value).
fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(|c| c.trim().split_once('='))
}

impl WebState {
    fn token(headers: &HeaderMap) -> Option<String> {
        cookies(headers).find(|(k, _)| *k == COOKIE).map(|(_, v)| v.to_string())
    }

    fn session(&self, headers: &HeaderMap) -> Option<Session> {
        self.sessions.get(&Self::token(headers)?)
    }

    fn cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// If no account exists, makes a set-up code (128 bits, valid for a day) and writes it to
    /// [`WebState::setup_code_file`]; the log says where, never the code.
    pub fn prepare_setup(&self) {
        let none = UsersFile::load(&self.users_file).map(|f| f.users.is_empty()).unwrap_or(false);
        let mut code = self.setup_code.lock().unwrap_or_else(|p| p.into_inner());
        if none && code.is_none() {
            let c = random_token(16);
            match write_secret(&self.setup_code_file, &c) {
                Ok(()) => {
                    tracing::warn!(
                        file = %self.setup_code_file.display(),
                        users_file = %self.users_file.display(),
                        "duty desk has no accounts: create the first operator on the page with the one-time set-up code in this file (valid 24 h), or run `edge-agent users add NAME --role operator`"
                    );
                    *code = Some(SetupCode { code: c, expires: Instant::now() + SETUP_CODE_TTL, failures: 0 });
                }
                Err(e) => tracing::error!(file = %self.setup_code_file.display(), error = %e, "cannot write the set-up code; create the first account with `edge-agent users add`"),
            }
        } else if !none {
            *code = None;
            let _ = std::fs::remove_file(&self.setup_code_file);
        }
    }

    /// Whether the set-up page is open.
    fn setup_open(&self) -> bool {
        self.setup_code.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|c| c.expires > Instant::now())
    }

    /// Checks a set-up code in constant time; too many wrong codes invalidate it.
    fn check_setup_code(&self, given: &str) -> Result<(), SetupRefused> {
        let mut slot = self.setup_code.lock().unwrap_or_else(|p| p.into_inner());
        let Some(code) = slot.as_mut() else { return Err(SetupRefused::Closed) };
        if code.expires <= Instant::now() {
            *slot = None;
            let _ = std::fs::remove_file(&self.setup_code_file);
            return Err(SetupRefused::Closed);
        }
        if constant_time_eq(given.trim().as_bytes(), code.code.as_bytes()) {
            return Ok(());
        }
        code.failures += 1;
        if code.failures >= SETUP_CODE_TRIES {
            *slot = None;
            let _ = std::fs::remove_file(&self.setup_code_file);
            tracing::warn!("duty desk: set-up code invalidated after {SETUP_CODE_TRIES} wrong attempts; restart the agent for a new one, or use `edge-agent users add`");
            return Err(SetupRefused::Locked);
        }
        Err(SetupRefused::Wrong)
    }

    /// Writes an audit record off the async runtime; `false` when it could not be written.
    async fn audit(&self, record: AuditRecord) -> bool {
        let audit = self.audit.clone();
        match tokio::task::spawn_blocking(move || audit.append(record)).await {
            Ok(Ok(())) => true,
            _ => {
                tracing::error!("cannot write the audit log");
                false
            }
        }
    }
}

/// Why a set-up code was refused.
#[derive(Debug, PartialEq, Eq)]
enum SetupRefused {
    Wrong,
    /// Too many wrong codes: invalidated now.
    Locked,
    /// No code (accounts exist, it expired, or it was invalidated).
    Closed,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes `text` to a new file only the owner can read (a file already there, or a link planted in its
/// place, is removed first, never followed).
fn write_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(format!("{text}\n").as_bytes())?;
    f.sync_all()
}

/// Starts the web server. Returns the bound address once listening.
pub async fn serve(listen: &str, state: WebState, tls: Option<(PathBuf, PathBuf)>, cancel: CancellationToken) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    state.prepare_setup();
    tokio::spawn(session::watch_users(state.users_file.clone(), state.sessions.clone(), state.audit.clone(), cancel.clone()));
    let (guard, audit) = (state.guard.clone(), state.audit.clone());
    tokio::spawn(report_failed_sign_ins(guard.clone(), audit.clone(), cancel.clone()));
    let app = router(state);
    let addr: SocketAddr = listen.parse().map_err(|e| anyhow::anyhow!("web.listen {listen}: {e}"))?;
    let acceptor = tls.map(|(cert, key)| tls::acceptor(&cert, &key)).transpose()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("web.listen {listen}: {e}"))?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        server::run(listener, app, acceptor, server::Limits::default(), cancel).await;
        // What the last minute's report has not written yet.
        let _ = tokio::task::spawn_blocking(move || write_failed_sign_ins(&guard, &audit)).await;
    });
    Ok((bound, task))
}

/// Writes the failed sign-ins of each minute to the audit log, as counts per address (no user names).
async fn report_failed_sign_ins(guard: Arc<guard::Guard>, audit: Arc<AuditLog>, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let (guard, audit) = (guard.clone(), audit.clone());
        let _ = tokio::task::spawn_blocking(move || write_failed_sign_ins(&guard, &audit)).await;
    }
}

fn write_failed_sign_ins(guard: &guard::Guard, audit: &AuditLog) {
    let failed = guard.take_failed();
    if failed.is_empty() {
        return;
    }
    let total: u64 = failed.values().sum();
    tracing::warn!(failed = total, addresses = failed.len(), "duty desk: failed sign-ins");
    for (address, count) in failed {
        let mut r = AuditRecord::new(AuditAction::SignInFailures, Utc::now());
        r.address = Some(address.to_string());
        r.count = Some(count);
        if let Err(e) = audit.append(r) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
    }
}

pub fn router(state: WebState) -> Router {
    let policy = axum::middleware::from_fn_with_state(state.clone(), policy::enforce);
    Router::new()
        .route("/", get(index))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/setup", get(auth::setup_page).post(auth::setup))
        .route("/static/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], include_str!("assets/app.js")) }))
        .route("/static/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], include_str!("assets/app.css")) }))
        .route("/api/me", get(me))
        .route("/api/recent", get(recent))
        .route("/api/stream", get(stream))
        .route("/api/cameras", get(cameras))
        .route("/api/alerts/{id}/ack", post(ack))
        .route("/api/alerts/{id}/dispose", post(ack))
        .route("/api/audit", get(audit))
        .route("/api/counts", get(reports::counts))
        .route("/api/history", get(reports::history))
        .route("/snapshots/{id}", get(snapshot))
        .layer(policy)
        .with_state(state)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "login required"}))).into_response()
}

async fn index(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return Redirect::to("/login").into_response();
    }
    Html(include_str!("assets/index.html")).into_response()
}

async fn me(State(s): State<WebState>, headers: HeaderMap) -> Response {
    let Some(session) = s.session(&headers) else { return unauthorized() };
    Json(json!({
        "user": session.user,
        "role": session.role.as_str(),
        "language": s.language,
        "site": s.site_name,
        "retention_days": s.retention_days,
        "outcomes": s.disposer.outcomes,
        "cameras": s.camera_names.read().unwrap_or_else(|p| p.into_inner()).clone(),
    }))
    .into_response()
}

async fn recent(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    // Open alerts that have left the recent list stay on the page until disposed of.
    let mut items = s.feed.open_alerts_not_recent();
    items.extend(s.feed.recent());
    Json(json!({ "items": items })).into_response()
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
    FeedItem::Cameras { cameras, agent: agent_notice(s) }
}

/// The disk and the link to the platform, for the page.
fn agent_notice(s: &WebState) -> Option<AgentNotice> {
    let storage = s.storage.as_ref()?.report();
    let health = s.health.as_ref()?.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let problems = health.problems.into_iter().filter(|p| !p.starts_with("camera ")).collect();
    Some(AgentNotice { storage: storage.state.as_str(), held: storage.held, uplink: health.uplink.as_str(), problems })
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
    // Live items as they come, and camera health every 5 s; the stream ends when the session does.
    let items = futures_stream(rx, state, session);
    Sse::new(items).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// What the SSE stream carries between polls.
struct StreamState {
    rx: broadcast::Receiver<Arc<str>>,
    state: WebState,
    session: Session,
    ticker: tokio::time::Interval,
}

fn futures_stream(rx: broadcast::Receiver<Arc<str>>, state: WebState, session: Session) -> impl futures_util::Stream<Item = Result<SseEvent, std::convert::Infallible>> {
    // The interval's first tick is immediate: camera health goes out first.
    let ticker = tokio::time::interval(Duration::from_secs(5));
    futures_util::stream::unfold(StreamState { rx, state, session, ticker }, |mut st| async move {
        if Instant::now() >= st.session.expires {
            return None;
        }
        let data = tokio::select! {
            _ = st.session.ended.cancelled() => return None,
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

/// What an operator records for an alert.
#[derive(serde::Deserialize)]
struct DisposeBody {
    outcome: String,
    #[serde(default)]
    note: Option<String>,
}

async fn ack(State(s): State<WebState>, headers: HeaderMap, UrlPath(id): UrlPath<String>, body: Option<Json<DisposeBody>>) -> Response {
    let Some(session) = s.session(&headers) else { return unauthorized() };
    if session.role != Role::Operator {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "only operators dispose of alerts"}))).into_response();
    }
    let Some(Json(body)) = body else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "expected {\"outcome\": ..., \"note\": ...}"}))).into_response();
    };
    match s.disposer.dispose(&id, &body.outcome, body.note.as_deref(), &session.user, session.role.as_str(), "village").await {
        Ok(ack) => Json(ack).into_response(),
        Err(e @ DisposeError::NoSuchAlert(_)) => (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response(),
        Err(e @ DisposeError::Audit) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e.to_string()}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

async fn audit(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return unauthorized();
    }
    let log = s.audit.clone();
    let records = tokio::task::spawn_blocking(move || log.recent(31)).await.unwrap_or_default();
    // The page lists acknowledgements; `edge-agent audit verify` and the files hold the rest.
    let entries: Vec<AuditRecord> = records.into_iter().rev().filter(|r| matches!(r.action, AuditAction::Acknowledge | AuditAction::Dispose)).take(500).collect();
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
        // Pictures of people must not stay in a shared duty PC's browser cache after sign-out.
        Ok(Some(bytes)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], bytes).into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
