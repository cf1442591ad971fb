//! `/clips/{id}.mp4`: a kept clip for the duty desk's player, with byte ranges (a browser asks for the
//! part it plays and seeks in). Every signed-in user may watch; each viewing (a request from the start
//! of the file) is an audit record naming who watched which clip.

use std::io::{Read, Seek, SeekFrom};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{AuditAction, AuditRecord, SignedIn, WebState};

/// The most one answer carries (the browser asks again for the rest).
const MAX_RANGE: u64 = 4 << 20;

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `len` bytes; `None` when unsatisfiable.
fn range(header: Option<&str>, len: u64) -> Option<(u64, u64, bool)> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Some((0, len.saturating_sub(1), false)) };
    // One range only; a list is answered with its first.
    let spec = spec.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, len.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(len.checked_sub(1)?)),
    };
    (start <= end && start < len).then_some((start, end, true))
}

pub(super) async fn clip(State(s): State<WebState>, SignedIn(session): SignedIn, UrlPath(name): UrlPath<String>, headers: HeaderMap) -> Response {
    let id = name.trim_end_matches(".mp4").to_string();
    let Some(clips) = s.clips.clone() else { return StatusCode::NOT_FOUND.into_response() };
    if uuid::Uuid::parse_str(&id).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let asked = headers.get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let found = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || clips.store().find(&id)).await.ok().flatten()
    };
    let Some((path, clip)) = found else { return StatusCode::NOT_FOUND.into_response() };
    let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) else { return StatusCode::NOT_FOUND.into_response() };
    let Some((start, end, partial)) = range(asked.as_deref(), len) else {
        return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{len}"))]).into_response();
    };
    if start == 0 {
        let mut record = AuditRecord::new(AuditAction::ClipViewed, chrono::Utc::now());
        record.clip = Some(id.clone());
        record.camera = Some(clip.camera.clone());
        record.alert = clip.alert_ids.first().cloned();
        record.by = Some(session.user.clone());
        record.role = Some(session.role.as_str().to_string());
        let log = s.audit.clone();
        if !matches!(tokio::task::spawn_blocking(move || log.append(record)).await, Ok(Ok(_))) {
            // Watching is allowed only on the record.
            return (StatusCode::INTERNAL_SERVER_ERROR, "the audit log cannot be written").into_response();
        }
    }
    let end = end.min(start + MAX_RANGE - 1);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(&path)?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = vec![0u8; (end - start + 1) as usize];
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    })
    .await;
    let Ok(Ok(bytes)) = read else { return StatusCode::NOT_FOUND.into_response() };
    let common = [(header::CONTENT_TYPE, "video/mp4".to_string()), (header::ACCEPT_RANGES, "bytes".into()), (header::CACHE_CONTROL, "no-store".into())];
    if partial || end + 1 < len {
        (StatusCode::PARTIAL_CONTENT, common, [(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))], bytes).into_response()
    } else {
        (StatusCode::OK, common, bytes).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn byte_ranges_are_read_as_browsers_send_them() {
        assert_eq!(range(None, 100), Some((0, 99, false)));
        assert_eq!(range(Some("bytes=0-"), 100), Some((0, 99, true)));
        assert_eq!(range(Some("bytes=10-19"), 100), Some((10, 19, true)));
        assert_eq!(range(Some("bytes=90-200"), 100), Some((90, 99, true)));
        assert_eq!(range(Some("bytes=-10"), 100), Some((90, 99, true)));
        assert_eq!(range(Some("bytes=100-"), 100), None);
        assert_eq!(range(Some("bytes=5-2"), 100), None);
        assert_eq!(range(Some("bytes=x-"), 100), None);
    }
}
