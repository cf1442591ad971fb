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

use super::users::Role;
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
    FeedItem::Cameras { cameras, agent: agent_notice(s) }
}

/// The disk and the link to the platform, for the page.
fn agent_notice(s: &WebState) -> Option<AgentNotice> {
    let storage = s.storage.as_ref()?.report();
    let health = s.health.as_ref()?.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let problems = health.problems.into_iter().filter(|p| !p.starts_with("camera ")).collect();
    Some(AgentNotice { storage: storage.state.as_str(), held: storage.held, uplink: health.uplink.as_str(), problems })
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
    if session.role != Role::Operator {
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
