//! What the desk answers besides the live list: the flow counts of a day (closed periods from the local
//! counts log, plus the periods still open in each camera's counter) and the history search over the
//! passings index. Viewers and operators alike may ask.

use axum::extract::{Query as UrlQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{SignedIn, WebState};
use crate::counts::Tally;
use crate::history::{Cursor, DirectionFilter, Query};

/// One period of one camera, as the chart reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Period {
    pub camera: String,
    pub period_start: String,
    pub period_end: String,
    /// Still counting (not yet published).
    #[serde(default)]
    pub open: bool,
    #[serde(flatten)]
    pub tally: Tally,
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}

fn time_param(name: &str, value: Option<&String>) -> Result<Option<DateTime<Utc>>, String> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| format!("{name}: {v:?} is not an RFC 3339 time (e.g. 2026-11-29T22:00:00+08:00)")))
        .transpose()
}

#[derive(Deserialize)]
pub(super) struct CountsParams {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/counts?from=&to=`: every period that starts in [from, to) (default: the last 24 hours), closed
/// and open; the page sums them by its own local hour.
pub(super) async fn counts(State(s): State<WebState>, _: SignedIn, UrlQuery(p): UrlQuery<CountsParams>) -> Response {
    let (from, to) = match (time_param("from", p.from.as_ref()), time_param("to", p.to.as_ref())) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return bad_request(e),
    };
    let to = to.unwrap_or_else(|| Utc::now() + chrono::Duration::days(1));
    let from = from.unwrap_or(to - chrono::Duration::days(2));
    if to <= from || to - from > chrono::Duration::days(31) {
        return bad_request("from must be before to, at most 31 days apart".into());
    }
    let log = s.counts_log.clone();
    let cameras = s.cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
    let periods = tokio::task::spawn_blocking(move || {
        let days = (Utc::now() - from).num_days().clamp(0, 31) as u32 + 1;
        let mut periods: Vec<Period> = log.recent_lines(Utc::now(), days).iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
        for r in &cameras {
            periods.extend(r.flow.open_periods().into_iter().map(|(start, end, tally)| Period {
                camera: r.id.clone(),
                period_start: crate::payload::timestamp(start),
                period_end: crate::payload::timestamp(end),
                open: true,
                tally,
            }));
        }
        periods.retain(|p| DateTime::parse_from_rfc3339(&p.period_start).is_ok_and(|t| t >= from && t < to));
        periods.sort_by(|a, b| (&a.period_start, &a.camera).cmp(&(&b.period_start, &b.camera)));
        periods
    })
    .await
    .unwrap_or_default();
    Json(json!({ "periods": periods })).into_response()
}

#[derive(Deserialize)]
pub(super) struct SearchParams {
    plate: Option<String>,
    camera: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    direction: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

impl SearchParams {
    fn query(self) -> Result<Query, String> {
        let some = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let kind = some(self.kind);
        if let Some(k) = &kind {
            if k != "person" && k != "vehicle" {
                return Err(format!("type: {k:?} is not person or vehicle"));
            }
        }
        let direction = match some(self.direction).as_deref() {
            None => None,
            Some("in") => Some(DirectionFilter::In),
            Some("out") => Some(DirectionFilter::Out),
            Some("none") => Some(DirectionFilter::None),
            Some(d) => return Err(format!("direction: {d:?} is not in, out or none")),
        };
        let after = match some(self.after) {
            None => None,
            Some(c) => Some(Cursor::parse(&c).ok_or_else(|| format!("after: {c:?} is not a cursor from a previous page"))?),
        };
        let plate = some(self.plate);
        if plate.as_ref().is_some_and(|p| p.chars().count() > 12) {
            return Err("plate: at most 12 characters".into());
        }
        Ok(Query {
            plate,
            camera: some(self.camera),
            kind,
            direction,
            from_ms: time_param("from", self.from.as_ref())?.map(|t| t.timestamp_millis()),
            to_ms: time_param("to", self.to.as_ref())?.map(|t| t.timestamp_millis()),
            after,
            limit: self.limit.unwrap_or(20),
        })
    }
}

/// `GET /api/history?plate=&camera=&type=&direction=&from=&to=&after=&limit=`: one page of passings, newest
/// first, with the number matching in all and the cursor of the next page.
pub(super) async fn history(State(s): State<WebState>, _: SignedIn, UrlQuery(p): UrlQuery<SearchParams>) -> Response {
    let Some(history) = s.history.clone() else {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "the history index is not available; see the agent's log"}))).into_response();
    };
    let query = match p.query() {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    let started = std::time::Instant::now();
    match tokio::task::spawn_blocking(move || history.search(&query)).await {
        Ok(Ok(page)) => {
            tracing::debug!(results = page.items.len(), total = page.total, ms = started.elapsed().as_millis() as u64, "history search");
            Json(page).into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "history search failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "history search failed"}))).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
