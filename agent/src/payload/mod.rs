//! MQTT payloads (contract v1). Each has a JSON Schema in `schemas/` named after its `schema` field, and
//! tests validate real payloads against it. Timestamps are RFC 3339 UTC with milliseconds.

mod alert;
mod clip;
mod disposition;
mod event;

use edge_config::Site;
use serde::{Deserialize, Serialize};

pub use crate::events::{FrameSize, Phase};
pub use alert::{Alert, AlertHealth, AlertMatch, AlertPlate, HealthState};
pub use clip::{Clip, CLIP_SCHEMA};
pub use disposition::{Disposition, DispositionSource, DISPOSITION_SCHEMA};
pub use event::{Crossing, Event, SnapshotRef, ZoneVisit};

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

/// The five grid levels, as fields. Lines logged before the grid was added read back with it empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grid {
    pub city: String,
    pub district: String,
    pub town: String,
    pub village: String,
    pub checkpoint: String,
}

impl From<&Site> for Grid {
    fn from(site: &Site) -> Self {
        Self { city: site.city.clone(), district: site.district.clone(), town: site.town.clone(), village: site.village.clone(), checkpoint: site.checkpoint.clone() }
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
    /// The state directory's disk (absent in the last will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStatus>,
    /// Messages moved aside because they can never be delivered (absent in the last will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<DeadLetters>,
    /// The GA/T 1400 uplink's state (`registering`, `registered`, `unauthorised`, `unreachable`), when one
    /// is configured (absent in the last will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gat1400: Option<&'static str>,
}

/// The state directory's disk, as the status and stats report it.
#[derive(Debug, Clone, Serialize)]
pub struct StorageStatus {
    /// `ok`, `full` (below `storage.min_free_mb` after deleting what may go, or too full for the outbox to
    /// write: new snapshots are not kept) or `io_error` (the outbox cannot write).
    pub state: &'static str,
    pub free_bytes: Option<u64>,
    pub min_free_bytes: u64,
    /// Messages held in memory because the outbox cannot write them; committed when it can.
    pub held: u64,
    /// What is wrong, for people; `null` when ok.
    pub problem: Option<String>,
}

impl From<&crate::storage::StorageReport> for StorageStatus {
    fn from(r: &crate::storage::StorageReport) -> Self {
        Self { state: r.state.as_str(), free_bytes: r.free_bytes, min_free_bytes: r.min_free_bytes, held: r.held, problem: r.problem.clone() }
    }
}

/// Messages the outbox moved aside because they can never be delivered as they are.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetters {
    /// Kept in the dead-letter table now (the most recent 1000).
    pub count: u64,
    /// Moved aside since the outbox was created.
    pub total: u64,
    /// The most recent one.
    pub last: Option<DeadLetterInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterInfo {
    pub topic: String,
    pub bytes: usize,
    pub reason: String,
    /// When it was moved aside.
    pub at: String,
}

impl DeadLetters {
    /// The outbox's dead letters, when it can be read.
    pub fn of(outbox: &crate::outbox::Outbox) -> Option<Self> {
        let stats = outbox.stats().ok()?;
        let last = outbox.dead_letters(1).ok().and_then(|mut l| l.pop()).map(|d| DeadLetterInfo {
            topic: d.message.topic,
            bytes: d.message.payload.len(),
            reason: d.reason,
            at: chrono::DateTime::<chrono::Utc>::from_timestamp_millis(d.dead_at_ms as i64).map(timestamp).unwrap_or_default(),
        });
        Some(Self { count: stats.dead_letters, total: stats.dead_letters_total, last })
    }
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
        Self { id: record.id.clone(), state: h.state, since: timestamp(h.since), last_error: h.last_error, frame_size: h.frame_size.map(|(w, h)| [w, h]), decoder: h.decoder }
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
    /// The state directory's disk and what its floor made the agent do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageStats>,
    /// The work-group notification channels, when any is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<crate::notify::NotifyReport>,
    /// Event clips, when on: what was kept, refused and deleted, and each camera's recorder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clips: Option<crate::clips::ClipsReport>,
    /// The GA/T 1400 uplink, when configured: its state, queue and records by result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gat1400: Option<crate::gat1400::Gat1400Report>,
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
    /// Dead letters kept now, and moved aside since the outbox was created.
    pub dead_letters: u64,
    pub dead_letters_total: u64,
    /// Messages held in memory because the disk cannot take them now.
    pub held: u64,
    /// Snapshots dropped from that memory when it was full, and other messages lost (dropped with no
    /// snapshot left to drop, or held when the agent stopped), since start.
    pub shed_snapshots_total: u64,
    pub lost_total: u64,
}

/// The disk in `stats`: the status's view plus counters.
#[derive(Debug, Clone, Serialize)]
pub struct StorageStats {
    #[serde(flatten)]
    pub status: StorageStatus,
    /// New snapshots not kept because the disk was below its floor, since start.
    pub snapshots_refused_total: u64,
    /// Local snapshots and days of local logs deleted to stay above the floor, since start.
    pub snapshots_deleted_total: u64,
    pub log_days_deleted_total: u64,
}

impl From<&crate::storage::Storage> for StorageStats {
    fn from(s: &crate::storage::Storage) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &s.counters;
        Self {
            status: StorageStatus::from(&s.report()),
            snapshots_refused_total: c.snapshots_refused_total.load(Relaxed),
            snapshots_deleted_total: c.snapshots_deleted_total.load(Relaxed),
            log_days_deleted_total: c.log_days_deleted_total.load(Relaxed),
        }
    }
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
    /// Sampled frames not analysed because nothing moved and nothing was being followed.
    pub frames_gated: u64,
    /// Vehicle plate searches saved: plate already settled, search not due, or vehicle too small.
    pub plate_searches_skipped: u64,
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
        let inference_ms = (runs > 0)
            .then(|| InferenceMs { mean: round2((now.inference_us_total - before.inference_us_total) as f64 / runs as f64 / 1000.0), max: round2(max.as_secs_f64() * 1000.0) });
        let health = record.health();
        Self {
            id: record.id.clone(),
            state: health.state,
            last_error: health.last_error,
            frames_in: now.frames_in,
            frames_analysed: now.frames_analysed,
            frames_dropped: now.frames_dropped(),
            frames_skipped: now.frames_skipped(),
            frames_gated: now.frames_gated,
            plate_searches_skipped: now.plate_searches_skipped,
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
    /// Characters (0-based) read with less than `models::plates::UNCERTAIN_BELOW`; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uncertain_positions: Vec<usize>,
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
            uncertain_positions: p.uncertain_positions(),
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
        Self { label: d.label(), score: round3(d.score), bbox: d.bbox.to_array() }
    }
}

pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

pub fn round3(v: f32) -> f32 {
    (v * 1000.0).round() / 1000.0
}
