//! The duty desk's own endpoints, for signed-in people only ([`SignedIn`]): who is signed in, the recent
//! list and the live stream, camera health and the notice line, disposing of alerts, the audit list and
//! snapshots. Sign-in and set-up are in [`super::auth`], the chart and the search in [`super::reports`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tokio::sync::broadcast;

use super::{AgentNotice, AuditAction, AuditRecord, CameraHealth, DisposeError, DisposedBy, FeedItem, Session, SignedIn, WebState};

pub(super) async fn me(State(s): State<WebState>, SignedIn(session): SignedIn) -> Response {
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

pub(super) async fn recent(State(s): State<WebState>, _: SignedIn) -> Response {
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
                problems: r.problems().into_iter().map(|p| super::feed::CameraProblem { kind: p.kind, since: crate::payload::timestamp(p.since), detail: p.detail }).collect(),
            }
        })
        .collect();
    FeedItem::Cameras { cameras, agent: agent_notice(s), notify: s.notify.as_ref().map(crate::notify::NotifyHandle::report) }
}

/// The disk and the link to the platform, for the page.
fn agent_notice(s: &WebState) -> Option<AgentNotice> {
    let storage = s.storage.as_ref()?.report();
    let health = s.health.as_ref()?.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let problems = health.problems.into_iter().filter(|p| !p.starts_with("camera ")).collect();
    let gat1400 = s.gat1400.as_ref().map(|g| g.state().as_str());
    Some(AgentNotice { storage: storage.state.as_str(), held: storage.held, uplink: health.uplink.as_str(), problems, gat1400 })
}

pub(super) async fn cameras(State(s): State<WebState>, _: SignedIn) -> Response {
    Json(camera_health(&s)).into_response()
}

pub(super) async fn stream(State(s): State<WebState>, SignedIn(session): SignedIn) -> Response {
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
pub(super) struct DisposeBody {
    outcome: String,
    #[serde(default)]
    note: Option<String>,
}

pub(super) async fn ack(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(id): UrlPath<String>, body: Option<Json<DisposeBody>>) -> Response {
    if !session.role.operates() {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "only operators dispose of alerts"}))).into_response();
    }
    let Some(Json(body)) = body else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "expected {\"outcome\": ..., \"note\": ...}"}))).into_response();
    };
    match s.disposer.dispose(&id, &body.outcome, body.note.as_deref(), DisposedBy::Desk { user: &session.user, role: session.role }).await {
        Ok(ack) => Json(ack).into_response(),
        Err(e @ DisposeError::NoSuchAlert(_)) => (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response(),
        Err(e @ DisposeError::Audit) => (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": e.to_string()}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e.to_string()}))).into_response(),
    }
}

/// What an operator asks for: notifications of `rule` (or every rule) from `camera` (or every camera)
/// silenced for `minutes` (0 lifts that mute).
#[derive(serde::Deserialize)]
pub(super) struct MuteBody {
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    camera: Option<String>,
    minutes: u32,
}

/// The longest mute from the desk, as from the platform: a day.
const MUTE_MAX_MINUTES: u32 = 1440;

pub(super) async fn mute(State(s): State<WebState>, SignedIn(session): SignedIn, body: Option<Json<MuteBody>>) -> Response {
    let bad = |status, error: String| (status, Json(json!({ "error": error }))).into_response();
    if !session.role.operates() {
        return bad(StatusCode::FORBIDDEN, "only operators mute notifications".into());
    }
    let Some(notify) = &s.notify else { return bad(StatusCode::NOT_FOUND, "no notification channel is configured".into()) };
    let Some(Json(body)) = body else { return bad(StatusCode::BAD_REQUEST, "expected {\"minutes\": 0-1440, \"rule\": ..., \"camera\": ...}".into()) };
    if body.minutes > MUTE_MAX_MINUTES {
        return bad(StatusCode::BAD_REQUEST, format!("minutes: {} is more than a day ({MUTE_MAX_MINUTES})", body.minutes));
    }
    if let Some(camera) = body.camera.as_deref().filter(|c| !s.camera_names.read().unwrap_or_else(|p| p.into_inner()).contains_key(*c)) {
        return bad(StatusCode::BAD_REQUEST, format!("camera: {camera:?} is not a camera of this checkpoint"));
    }
    let rule = body.rule.filter(|r| !r.is_empty());
    if rule.as_ref().is_some_and(|r| r.len() > 64 || r.chars().any(char::is_control)) {
        return bad(StatusCode::BAD_REQUEST, "rule: not a rule id".into());
    }
    let mut record = AuditRecord::new(AuditAction::Mute, chrono::Utc::now());
    record.rule = rule.clone();
    record.camera = body.camera.clone();
    record.count = Some(u64::from(body.minutes));
    record.by = Some(session.user.clone());
    record.role = Some(session.role.as_str().to_string());
    let log = s.audit.clone();
    if !matches!(tokio::task::spawn_blocking(move || log.append(record)).await, Ok(Ok(_))) {
        return bad(StatusCode::INTERNAL_SERVER_ERROR, "the audit log cannot be written: nothing was muted".into());
    }
    let until = notify.mute(rule, body.camera, body.minutes);
    Json(json!({ "until": until.map(crate::payload::timestamp), "notify": notify.report() })).into_response()
}

pub(super) async fn audit(State(s): State<WebState>, _: SignedIn) -> Response {
    let log = s.audit.clone();
    let records = tokio::task::spawn_blocking(move || log.recent(31)).await.unwrap_or_default();
    // The page lists acknowledgements; `edge-agent audit verify` and the files hold the rest.
    let entries: Vec<AuditRecord> = records.into_iter().rev().filter(|r| matches!(r.action, AuditAction::Acknowledge | AuditAction::Dispose)).take(500).collect();
    Json(json!({ "entries": entries })).into_response()
}

pub(super) async fn snapshot(State(s): State<WebState>, _: SignedIn, UrlPath(id): UrlPath<String>) -> Response {
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

/// How long the live view waits for the camera's next analysed frame.
const LIVE_WAIT: Duration = Duration::from_secs(5);

/// `/api/live/{camera}`: the camera's next analysed frame with the detections, lines, zones and masks
/// drawn on it (JPEG), for operators; the page asks for one a second or so while the live view is open.
pub(super) async fn live(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(camera): UrlPath<String>) -> Response {
    if !session.role.operates() {
        return (StatusCode::FORBIDDEN, Json(json!({"error": "the live view is for operators"}))).into_response();
    }
    let record = s.cameras.read().unwrap_or_else(|p| p.into_inner()).iter().find(|r| r.id == camera).cloned();
    let Some(record) = record else { return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no camera {camera:?}")}))).into_response() };
    match tokio::time::timeout(LIVE_WAIT, record.request_live()).await {
        Ok(Ok(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": format!("camera {camera} delivered no frame within {} s", LIVE_WAIT.as_secs())}))).into_response(),
    }
}
