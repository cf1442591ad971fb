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
mod clips;
mod configure;
mod desk;
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
pub use dispose::{DisposeError, DisposedBy, Disposer};
pub use feed::{Ack, AgentNotice, CameraHealth, Feed, FeedItem};
pub use policy::allowed_hosts;
pub use session::{random_token, Session, Sessions};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::metrics::CameraList;
use crate::snapshots::SnapshotStore;
use users::UsersFile;

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

/// What the admin pages change: the configuration file, applied by the daemon's reload.
#[derive(Clone)]
pub struct ConfigAccess {
    pub config_file: std::path::PathBuf,
    /// Asks the daemon to reload; the answer says whether the new configuration applied.
    pub reload: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<bool>>,
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
    /// The work-group notification channels, when configured: their results on the page, and mutes.
    pub notify: Option<crate::notify::NotifyHandle>,
    /// Kept clips, when clips are on.
    pub clips: Option<crate::clips::ClipsHandle>,
    /// The GA/T 1400 uplink, when configured: its state on the page's notice line.
    pub gat1400: Option<crate::gat1400::Gat1400Handle>,
    /// The configuration file and the daemon's reload, for admins setting the checkpoint up.
    pub config: Option<ConfigAccess>,
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
        .route("/api/me", get(desk::me))
        .route("/api/recent", get(desk::recent))
        .route("/api/stream", get(desk::stream))
        .route("/api/cameras", get(desk::cameras).post(configure::save_camera))
        .route("/api/alerts/{id}/ack", post(desk::ack))
        .route("/api/alerts/{id}/dispose", post(desk::ack))
        .route("/api/audit", get(desk::audit))
        .route("/api/notify/mute", post(desk::mute))
        .route("/api/live/{camera}", get(desk::live))
        .route("/api/frame/{camera}", get(configure::frame))
        .route("/api/config", get(configure::overview))
        .route("/api/config/cameras/{id}", get(configure::geometry))
        .route("/api/config/cameras/{id}/geometry", post(configure::set_geometry))
        .route("/api/cameras/test", post(configure::test))
        .route("/api/counts", get(reports::counts))
        .route("/api/history", get(reports::history))
        .route("/snapshots/{id}", get(desk::snapshot))
        .route("/clips/{id}", get(clips::clip))
        .layer(policy)
        .with_state(state)
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({"error": "login required"}))).into_response()
}

/// The session of a signed-in person, for handlers that answer nobody else: without one the request is
/// answered `401 login required` before the handler runs.
pub(super) struct SignedIn(pub Session);

impl axum::extract::FromRequestParts<WebState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        state.session(&parts.headers).map(SignedIn).ok_or_else(unauthorized)
    }
}

async fn index(State(s): State<WebState>, headers: HeaderMap) -> Response {
    if s.session(&headers).is_none() {
        return Redirect::to("/login").into_response();
    }
    Html(include_str!("assets/index.html")).into_response()
}
