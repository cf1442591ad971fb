//! MQTT payloads (contract v1). Each has a JSON Schema in `schemas/` named after its `schema` field, and
//! tests validate real payloads against it. Timestamps are RFC 3339 UTC with milliseconds.

use edge_config::Site;
use serde::Serialize;

use crate::stats::{CameraRecord, CameraState, CounterSnapshot};

pub const STATUS_SCHEMA: &str = "edge-agent/status/v1";
pub const STATS_SCHEMA: &str = "edge-agent/stats/v1";
pub const DETECTIONS_SCHEMA: &str = "edge-agent/detections/v1";
pub const EVENT_SCHEMA: &str = "edge-agent/event/v1";
pub const ALERT_SCHEMA: &str = "edge-agent/alert/v1";

/// RFC 3339, UTC, milliseconds: `2026-11-28T19:33:55.123Z`.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now() -> String {
    timestamp(chrono::Utc::now())
}

/// The five grid levels, as fields.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Grid {
    pub city: String,
    pub district: String,
    pub town: String,
    pub village: String,
    pub checkpoint: String,
}

impl From<&Site> for Grid {
    fn from(site: &Site) -> Self {
        Self {
            city: site.city.clone(),
            district: site.district.clone(),
            town: site.town.clone(),
            village: site.village.clone(),
            checkpoint: site.checkpoint.clone(),
        }
    }
}

/// Agent identity carried by the status payload.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub version: &'static str,
    pub hostname: String,
    pub started_at: String,
}

impl AgentInfo {
    pub fn current(started_at: chrono::DateTime<chrono::Utc>) -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
        Self { version: env!("CARGO_PKG_VERSION"), hostname, started_at: timestamp(started_at) }
    }
}

/// Agent state in `{prefix}/{site}/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Online,
    /// Set by the broker as the last will when the agent vanishes without a clean stop.
    Offline,
    /// Published by a clean shutdown.
    Stopped,
}

/// Retained `{prefix}/{site}/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: &'static str,
    pub state: AgentState,
    pub site: String,
    pub grid: Grid,
    pub name: Option<String>,
    pub agent: AgentInfo,
    /// When this payload was made (for `offline`: when the agent connected and registered its last will).
    pub ts: String,
    pub cameras: Vec<CameraStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraStatus {
    pub id: String,
    pub state: CameraState,
    pub since: String,
    pub last_error: Option<String>,
    /// `[width, height]` of the frames being analysed, once known.
    pub frame_size: Option<[u32; 2]>,
    /// The video decoder in use, e.g. `avdec_h264 (software)`, once known.
    pub decoder: Option<String>,
}

impl CameraStatus {
    pub fn of(record: &CameraRecord) -> Self {
        let h = record.health();
        Self {
            id: record.id.clone(),
            state: h.state,
            since: timestamp(h.since),
            last_error: h.last_error,
            frame_size: h.frame_size.map(|(w, h)| [w, h]),
            decoder: h.decoder,
        }
    }
}

/// Periodic `{prefix}/{site}/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub schema: &'static str,
    pub site: String,
    pub ts: String,
    /// Seconds covered by the rates below.
    pub interval_s: f64,
    pub uptime_s: f64,
    pub detector: DetectorStats,
    /// Undelivered messages on disk.
    pub outbox: OutboxStats,
    /// The MQTT connection.
    pub mqtt: LinkStats,
    pub cameras: Vec<CameraStats>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxStats {
    /// Messages waiting for the broker's acknowledgement.
    pub depth: u64,
    pub bytes: u64,
    /// Age of the oldest waiting message, seconds; `null` when empty.
    pub oldest_age_s: Option<f64>,
    /// Messages evicted because the outbox was full or they were too old.
    pub evicted_total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkStats {
    pub connects_total: u64,
    pub connection_errors_total: u64,
    /// QoS 1 messages sent, re-sends included.
    pub sent_total: u64,
    /// QoS 1 messages acknowledged by the broker.
    pub acked_total: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectorStats {
    pub model: String,
    pub provider: &'static str,
    pub input: [u32; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct CameraStats {
    pub id: String,
    pub state: CameraState,
    /// The last error of the camera's source, if any (credentials scrubbed).
    pub last_error: Option<String>,
    /// Frames decoded since the agent started.
    pub frames_in: u64,
    /// Frames the detector analysed.
    pub frames_analysed: u64,
    /// Frames that were ready for the detector but replaced by a newer one before it was free.
    pub frames_dropped: u64,
    /// Frames skipped on purpose to hold the configured detect rate.
    pub frames_skipped: u64,
    pub fps_in: f64,
    pub fps_analysed: f64,
    pub detections: u64,
    /// Inference time over the interval, `null` when nothing ran.
    pub inference_ms: Option<InferenceMs>,
    /// Plates read since start.
    pub plates: u64,
    /// Mean time of the plate chain per frame it ran on over the interval, `null` when it did not run.
    pub plate_ms: Option<f64>,
    pub restarts: u64,
    pub messages_dropped: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct InferenceMs {
    pub mean: f64,
    pub max: f64,
}

impl CameraStats {
    /// Stats from two snapshots of a camera's counters.
    pub fn between(record: &CameraRecord, before: &CounterSnapshot, now: &CounterSnapshot, max: std::time::Duration) -> Self {
        let secs = now.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let runs = now.inference_runs - before.inference_runs;
        let plate_runs = now.plate_runs - before.plate_runs;
        let inference_ms = (runs > 0).then(|| InferenceMs {
            mean: round2((now.inference_us_total - before.inference_us_total) as f64 / runs as f64 / 1000.0),
            max: round2(max.as_secs_f64() * 1000.0),
        });
        let health = record.health();
        Self {
            id: record.id.clone(),
            state: health.state,
            last_error: health.last_error,
            frames_in: now.frames_in,
            frames_analysed: now.frames_analysed,
            frames_dropped: now.frames_dropped(),
            frames_skipped: now.frames_skipped(),
            fps_in: round2((now.frames_in - before.frames_in) as f64 / secs),
            fps_analysed: round2((now.frames_analysed - before.frames_analysed) as f64 / secs),
            detections: now.detections,
            inference_ms,
            plates: now.plates,
            plate_ms: (plate_runs > 0).then(|| round2((now.plate_us_total - before.plate_us_total) as f64 / plate_runs as f64 / 1000.0)),
            restarts: now.restarts,
            messages_dropped: now.messages_dropped,
        }
    }
}

/// `{prefix}/{site}/{camera}/detections`: what the detector saw in one frame (QoS 0, rate-limited).
#[derive(Debug, Clone, Serialize)]
pub struct Detections {
    pub schema: &'static str,
    pub site: String,
    pub camera: String,
    pub ts: String,
    pub frame: FrameInfo,
    pub inference_ms: f64,
    pub detections: Vec<DetectedObject>,
    /// Plates read in the frame.
    pub plates: Vec<DetectedPlate>,
}

/// A plate read in one frame.
#[derive(Debug, Clone, Serialize)]
pub struct DetectedPlate {
    /// The plate number, e.g. `苏ED51712`.
    pub text: String,
    pub confidence: f32,
    pub min_char_confidence: f32,
    pub color: &'static str,
    /// 1 or 2 (double-row yellow plates).
    pub rows: u8,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Top-left, top-right, bottom-right, bottom-left, in frame pixels.
    pub corners: [[f32; 2]; 4],
}

impl DetectedPlate {
    pub fn from(p: &models::plates::PlateRead) -> Self {
        let r = |v: f32| (v * 10.0).round() / 10.0;
        Self {
            text: p.text.clone(),
            confidence: round3(p.confidence),
            min_char_confidence: round3(p.min_char_confidence),
            color: p.colour.as_str(),
            rows: p.rows.count(),
            bbox: p.bbox.to_array(),
            corners: p.corners.map(|(x, y)| [r(x), r(y)]),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FrameInfo {
    pub seq: u64,
    /// Stream time of the frame, milliseconds, when the source provides it.
    pub pts_ms: Option<u64>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetectedObject {
    pub label: &'static str,
    pub score: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

impl DetectedObject {
    pub fn from(d: &models::Detection) -> Self {
        Self { label: d.label, score: round3(d.score), bbox: d.bbox.to_array() }
    }
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn round3(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}

/// Phase of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The object was confirmed (seen in enough frames in a row).
    New,
    /// Its plate or direction became known or improved.
    Update,
    /// It is gone; final values.
    End,
}

/// `{prefix}/{site}/{camera}/events` (QoS 1): one message per phase of one object passing.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub schema: &'static str,
    /// UUIDv7, the same for every phase of one object. Consumers deduplicate on (`id`, `seq`).
    pub id: String,
    /// Phase number within the event: 1 for `new`, then one more per message.
    pub seq: u32,
    pub site: String,
    pub grid: Grid,
    pub camera: String,
    /// `person` or `vehicle`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub phase: Phase,
    /// Detector label: person, bicycle, car, motorcycle, bus, truck.
    pub label: &'static str,
    /// Tracker id, unique per camera while the agent runs.
    pub track_id: u64,
    /// When the object was first seen.
    pub started_at: String,
    /// When it was last seen; set on `end` only.
    pub ended_at: Option<String>,
    /// When this message was made.
    pub ts: String,
    /// `in`/`out` from the last line crossing, `null` when no line was crossed.
    pub direction: Option<crate::events::geometry::Direction>,
    pub crossings: Vec<Crossing>,
    pub zones: Vec<ZoneVisit>,
    /// Best detection score of the object.
    pub score: f32,
    /// Last box, `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub frame: FrameSize,
    /// Voted plate (vehicles), `null` when none was read.
    pub plate: Option<crate::events::voting::VotedPlate>,
    /// The object's best picture; set on `end`.
    pub snapshot: Option<SnapshotRef>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

/// One crossing of a configured line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Crossing {
    pub line: String,
    pub direction: crate::events::geometry::Direction,
    pub at: String,
}

/// One stay in a configured zone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneVisit {
    pub id: String,
    pub entered_at: String,
    /// `null` while the object is still inside.
    pub left_at: Option<String>,
    pub dwell_s: f64,
}

/// Where an event's snapshot is and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRef {
    /// The event id; the JPEG is published on `{prefix}/{site}/{camera}/snapshots/{id}`.
    pub id: String,
    /// That topic, when the agent publishes to MQTT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Local file (offline analysis with `--snapshots DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub content_type: &'static str,
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
    /// The object inside the picture, `[x1, y1, x2, y2]`.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The part of the frame the picture shows, in frame pixels.
    pub frame_region: [f32; 4],
    pub taken_at: String,
    pub sha256: String,
}

/// An alert: a rule matched. Published on `{prefix}/{site}/{camera}/alerts` (QoS 1, through the outbox).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub schema: &'static str,
    /// UUIDv7 of this alert.
    pub id: String,
    pub site: String,
    pub grid: Grid,
    pub camera: String,
    pub ts: String,
    /// The rule's id from the config.
    pub rule: String,
    /// `watch_list`, `key_region`, `crowding` or `after_hours`.
    pub kind: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// The event that triggered it (for crowding, the person present longest).
    pub event_id: Option<String>,
    /// Every event involved (crowding: the people in the zone).
    pub event_ids: Vec<String>,
    /// `person` or `vehicle`.
    #[serde(rename = "type")]
    pub object_type: Option<&'static str>,
    pub label: Option<&'static str>,
    pub direction: Option<crate::events::geometry::Direction>,
    pub plate: Option<AlertPlate>,
    /// Watch list: the listed plate matched, and how.
    pub matched: Option<AlertMatch>,
    /// Key region: the prefix matched.
    pub prefix: Option<String>,
    /// Crowding: the zone, how many people, for how long.
    pub zone: Option<String>,
    pub count: Option<u32>,
    pub duration_s: Option<f64>,
    /// Where the triggering event's snapshot is (or will be, once the object has left) published.
    pub snapshot_topic: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertPlate {
    pub text: String,
    pub confidence: f32,
    pub color: models::plates::PlateColour,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertMatch {
    /// The plate as listed.
    pub entry: String,
    /// 0: exact; 1: one character differs (at `position`, 0-based).
    pub distance: u8,
    pub position: Option<usize>,
}

impl Alert {
    pub fn from_finding(f: crate::rules::Finding, site: &str, grid: &Grid, camera: &str, snapshot_base: Option<&str>) -> Self {
        Self {
            schema: ALERT_SCHEMA,
            id: uuid::Uuid::now_v7().to_string(),
            site: site.to_string(),
            grid: grid.clone(),
            camera: camera.to_string(),
            ts: now(),
            rule: f.rule,
            kind: f.kind,
            severity: f.severity.as_str(),
            snapshot_topic: snapshot_base.zip(f.event_id.as_ref()).map(|(base, id)| format!("{base}/{id}")),
            event_id: f.event_id,
            event_ids: f.event_ids,
            object_type: f.object_type,
            label: f.label,
            direction: f.direction,
            plate: f.plate.map(|(text, confidence, color)| AlertPlate { text, confidence: round3(confidence), color }),
            matched: f.matched.map(|m| AlertMatch { entry: m.entry, distance: m.distance, position: m.position }),
            prefix: f.prefix,
            zone: f.zone,
            count: f.count,
            duration_s: f.duration_s,
        }
    }
}
