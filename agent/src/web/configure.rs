//! Setting the checkpoint up by sight (admins only): a camera's lines, zones and motion masks drawn on a
//! frozen frame, and cameras added or their address fixed after a test that shows the first picture. Every
//! change goes to the configuration file — only the keys changed, comments and layout kept
//! ([`edge_config::edit`]), checked with `check-config`'s rules, written atomically — then the daemon's
//! own reload applies it. The file stays the source of truth: each edit starts from the file as it is
//! now, and one based on an older reading (a hand edit since) is refused. Each change is an audit record,
//! written before the file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use edge_config::edit::{self, EditError, Geometry};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::users::Role;
use super::{AuditAction, AuditRecord, ConfigAccess, Session, SignedIn, WebState};
use crate::source::{FailureKind, Mode, Next, Pipeline, SourceSettings};
use crate::stats::{CameraRecord, CameraState};

/// How long a camera under test has to show its first picture.
const PROBE_WAIT: Duration = Duration::from_secs(15);
/// How long a saved change waits for the reload to apply it.
const RELOAD_WAIT: Duration = Duration::from_secs(20);

fn refuse(status: StatusCode, error: impl Into<String>) -> Response {
    (status, Json(json!({ "error": error.into() }))).into_response()
}

/// Why a request is not an admin's with access to the file.
type NotAdmin = (StatusCode, &'static str);

/// The configuration access, when the session is an admin's.
fn admin<'a>(s: &'a WebState, session: &Session) -> Result<&'a ConfigAccess, NotAdmin> {
    if session.role != Role::Admin {
        return Err((StatusCode::FORBIDDEN, "only admins change the checkpoint's set-up"));
    }
    s.config.as_ref().ok_or((StatusCode::NOT_FOUND, "the configuration file is not known to this server"))
}

fn version(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn read(access: &ConfigAccess) -> Result<String, Response> {
    let path = access.config_file.clone();
    tokio::task::spawn_blocking(move || std::fs::read_to_string(&path))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the configuration file {}", access.config_file.display())))
}

/// The configuration access and the file as it is now, for an admin.
async fn admin_file(s: &WebState, session: &Session) -> Result<(ConfigAccess, String), Response> {
    let access = admin(s, session).map_err(|(status, why)| refuse(status, why))?.clone();
    let text = read(&access).await?;
    Ok((access, text))
}

/// The file as it is now, for an admin whose page read it at `seen` (its version); refused when it changed
/// since (a hand edit, another page).
async fn current(s: &WebState, session: &Session, seen: &str) -> Result<(ConfigAccess, String), Response> {
    let (access, text) = admin_file(s, session).await?;
    if seen != version(&text) {
        return Err(refuse(StatusCode::CONFLICT, "the configuration file changed since it was loaded here (edited by hand or on another page): load it again"));
    }
    Ok((access, text))
}

/// `GET /api/config/cameras/{id}`: the camera's geometry as the file has it now, and the file's version.
pub(super) async fn geometry(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(id): UrlPath<String>) -> Response {
    let (_, text) = match admin_file(&s, &session).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let config = match edit::check(&text) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::CONFLICT, format!("the configuration file has problems; fix them first: {e}")),
    };
    let Some(camera) = config.cameras.iter().find(|c| c.id == id) else { return refuse(StatusCode::NOT_FOUND, format!("no camera {id:?}")) };
    let g = Geometry { lines: camera.lines.clone(), zones: camera.zones.clone(), masks: camera.motion.masks.clone() };
    Json(json!({ "version": version(&text), "geometry": g, "url": camera.url.redacted() })).into_response()
}

/// `GET /api/frame/{camera}`: the camera's next frame as it is (the picture to draw on).
pub(super) async fn frame(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(camera): UrlPath<String>) -> Response {
    if let Err((status, why)) = admin(&s, &session) {
        return refuse(status, why);
    }
    let record = s.cameras.read().unwrap_or_else(|p| p.into_inner()).iter().find(|r| r.id == camera).cloned();
    let Some(record) = record else { return refuse(StatusCode::NOT_FOUND, format!("no camera {camera:?}")) };
    match tokio::time::timeout(Duration::from_secs(10), record.request_frame()).await {
        Ok(Ok(jpeg)) => ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "no-store")], jpeg).into_response(),
        _ => refuse(StatusCode::SERVICE_UNAVAILABLE, format!("camera {camera} delivered no frame within 10 s")),
    }
}

#[derive(Deserialize)]
pub(super) struct GeometryBody {
    version: String,
    #[serde(flatten)]
    geometry: Geometry,
}

/// Writes `text` (already checked) after the audit record, and has the daemon reload it.
async fn save(s: &WebState, access: &ConfigAccess, session: &Session, mut record: AuditRecord, text: String) -> Response {
    record.by = Some(session.user.clone());
    record.role = Some(session.role.as_str().to_string());
    let log = s.audit.clone();
    if !matches!(tokio::task::spawn_blocking(move || log.append(record)).await, Ok(Ok(_))) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the audit log cannot be written: nothing was changed");
    }
    let path = access.config_file.clone();
    let written = tokio::task::spawn_blocking(move || crate::files::write_atomic(&path, text.as_bytes())).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "cannot write the configuration file {}: {e} (the service needs write access to it and its folder; see the README, \"Setting up by sight\")",
                    access.config_file.display()
                ),
            )
        }
        Err(_) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "the write stopped unexpectedly"),
    }
    let (done, applied) = tokio::sync::oneshot::channel();
    let reloaded = access.reload.send(done).await.is_ok() && matches!(tokio::time::timeout(RELOAD_WAIT, applied).await, Ok(Ok(true)));
    Json(json!({ "saved": true, "applied": reloaded })).into_response()
}

fn edit_refused(e: EditError) -> Response {
    let status = match e {
        EditError::NoCamera(_) => StatusCode::NOT_FOUND,
        EditError::Exists(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let issues: Vec<String> = match &e {
        EditError::Invalid(issues) => issues.iter().map(ToString::to_string).collect(),
        other => vec![other.to_string()],
    };
    (status, Json(json!({ "error": e.to_string(), "issues": issues }))).into_response()
}

/// `POST /api/config/cameras/{id}/geometry`: the lines, zones and masks drawn, for the file as read at
/// `version`.
pub(super) async fn set_geometry(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(id): UrlPath<String>, body: Option<Json<GeometryBody>>) -> Response {
    let Some(Json(body)) = body else { return refuse(StatusCode::BAD_REQUEST, "expected {\"version\": …, \"lines\": […], \"zones\": […], \"masks\": […]}") };
    let (access, text) = match current(&s, &session, &body.version).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let g = &body.geometry;
    let new = match edit::set_geometry(&text, &id, g) {
        Ok(t) => t,
        Err(e) => return edit_refused(e),
    };
    let mut record = AuditRecord::new(AuditAction::ConfigChanged, chrono::Utc::now());
    record.camera = Some(id.clone());
    let names = |ids: Vec<&str>| if ids.is_empty() { "-".to_string() } else { ids.join(",") };
    record.detail = Some(format!(
        "geometry: lines {}, zones {}, masks {}",
        names(g.lines.iter().map(|l| l.id.as_str()).collect()),
        names(g.zones.iter().map(|z| z.id.as_str()).collect()),
        g.masks.len()
    ));
    save(&s, &access, &session, record, new).await
}

#[derive(Deserialize)]
pub(super) struct ProbeBody {
    url: String,
}

/// What a camera under test showed.
fn probe(url: &str) -> Value {
    let url = edge_config::CameraUrl::new(url.trim().to_string());
    let scheme = url.scheme().unwrap_or_default();
    if !edge_config::SUPPORTED_URL_SCHEMES.contains(&scheme.as_str()) {
        return json!({ "ok": false, "kind": "bad_url", "reason": format!("{} is not a camera address (rtsp://, rtsps://, http(s):// MJPEG, file://, v4l2://)", url.redacted()) });
    }
    let record = Arc::new(CameraRecord::new("probe", 5.0, CameraState::Connecting));
    let failed = |kind: FailureKind, reason: String| {
        let kind = match kind {
            FailureKind::Unreachable => "unreachable",
            FailureKind::Unauthorized => "unauthorized",
            FailureKind::BadInput => "bad_input",
            FailureKind::MissingPlugin => "missing_plugin",
            FailureKind::HardwareDecoder => "hardware_decoder",
            FailureKind::Other => "other",
        };
        json!({ "ok": false, "kind": kind, "reason": url.scrub(&reason) })
    };
    let mut pipeline = match Pipeline::open(SourceSettings::new("probe", url.clone(), 25.0, 0, Mode::Live), record.clone()) {
        Ok(p) => p,
        Err(e) => return failed(e.kind, e.message),
    };
    let deadline = Instant::now() + PROBE_WAIT;
    loop {
        match pipeline.next(Duration::from_millis(200)) {
            Ok(Next::Frame(frame)) => {
                let Ok(view) = frame.view() else { return failed(FailureKind::Other, "the first frame cannot be read".into()) };
                let jpeg = crate::events::snapshot::frame_jpeg(&view, 960, 300_000).unwrap_or_default();
                // The frame rate is announced with the caps; give it a moment.
                let until = Instant::now() + Duration::from_millis(600);
                while pipeline.input_fps().is_none() && Instant::now() < until {
                    let _ = pipeline.next(Duration::from_millis(100));
                }
                let decoder = record.health().decoder.unwrap_or_default();
                let codec = ["h264", "h265", "hevc", "jpeg", "vp8", "vp9", "av1"]
                    .into_iter()
                    .find(|c| decoder.contains(c))
                    .map(|c| match c {
                        "h264" => "H.264",
                        "h265" | "hevc" => "H.265",
                        "jpeg" => "MJPEG",
                        other => other,
                    })
                    .unwrap_or(if decoder.is_empty() { "raw" } else { "?" });
                return json!({
                    "ok": true,
                    "width": frame.width(),
                    "height": frame.height(),
                    "fps": pipeline.input_fps().map(|f| (f * 100.0).round() / 100.0),
                    "codec": codec,
                    "decoder": decoder,
                    "picture": format!("data:image/jpeg;base64,{}", base64::engine::general_purpose::STANDARD.encode(jpeg)),
                });
            }
            Ok(Next::Eos) => return failed(FailureKind::BadInput, "the stream ended before its first picture".into()),
            Ok(Next::Timeout) if Instant::now() > deadline => return failed(FailureKind::Unreachable, format!("no picture within {} s", PROBE_WAIT.as_secs())),
            Ok(Next::Timeout) => {}
            Err(e) => return failed(e.kind, e.message),
        }
    }
}

/// `POST /api/cameras/test`: opens the address as the agent would and says what it found — codec,
/// resolution, frame rate and the first picture — or what went wrong, in words.
pub(super) async fn test(State(s): State<WebState>, SignedIn(session): SignedIn, body: Option<Json<ProbeBody>>) -> Response {
    if let Err((status, why)) = admin(&s, &session) {
        return refuse(status, why);
    }
    let Some(Json(body)) = body else { return refuse(StatusCode::BAD_REQUEST, "expected {\"url\": \"rtsp://…\"}") };
    match tokio::task::spawn_blocking(move || probe(&body.url)).await {
        Ok(v) => Json(v).into_response(),
        Err(_) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "the test stopped unexpectedly"),
    }
}

#[derive(Deserialize)]
pub(super) struct CameraBody {
    version: String,
    id: String,
    #[serde(default)]
    name: Option<String>,
    url: String,
}

/// `POST /api/cameras`: adds a camera, or (an existing id) sets its address.
pub(super) async fn save_camera(State(s): State<WebState>, SignedIn(session): SignedIn, body: Option<Json<CameraBody>>) -> Response {
    let Some(Json(body)) = body else { return refuse(StatusCode::BAD_REQUEST, "expected {\"version\": …, \"id\": …, \"url\": …, \"name\": …}") };
    let (access, text) = match current(&s, &session, &body.version).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let url = body.url.trim();
    let existing = edit::check(&text).map(|c| c.cameras.iter().any(|c| c.id == body.id)).unwrap_or(false);
    let new = if existing { edit::set_camera_url(&text, &body.id, url) } else { edit::add_camera(&text, &body.id, url, body.name.as_deref()) };
    let new = match new {
        Ok(t) => t,
        Err(e) => return edit_refused(e),
    };
    let mut record = AuditRecord::new(AuditAction::ConfigChanged, chrono::Utc::now());
    record.camera = Some(body.id.clone());
    // The address without its password.
    record.detail = Some(format!("{}: {}", if existing { "camera address set" } else { "camera added" }, edge_config::CameraUrl::new(url.to_string()).redacted()));
    save(&s, &access, &session, record, new).await
}

/// `GET /api/config`: the file's version and its cameras (addresses without passwords), for the admin page.
pub(super) async fn overview(State(s): State<WebState>, SignedIn(session): SignedIn) -> Response {
    let (_, text) = match admin_file(&s, &session).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let cameras: Vec<Value> = edit::check(&text).map(|c| c.cameras.iter().map(|c| json!({ "id": c.id, "name": c.name, "url": c.url.redacted() })).collect()).unwrap_or_default();
    Json(json!({ "version": version(&text), "cameras": cameras })).into_response()
}
