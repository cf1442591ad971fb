//! `{prefix}/{site}/{camera}/clips`: a clip kept around an event (and the same record beside the file).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::Grid;

pub const CLIP_SCHEMA: &str = "edge-agent/clip/v1";

/// A clip, published once its file is complete (QoS 1, through the outbox). The video itself is sent
/// only when the platform asks for it (`clip` command), in chunks on `{topic}/{id}/{n}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clip {
    pub schema: Cow<'static, str>,
    /// The clip's id: the id of the event it shows (or of the crowding alert, which has no one event).
    pub id: String,
    pub site: String,
    #[serde(default)]
    pub grid: Grid,
    pub camera: String,
    /// The event it shows; `null` for a crowding alert's clip.
    pub event_id: Option<String>,
    /// The alerts raised on it (empty when every passing is kept and this one raised none).
    pub alert_ids: Vec<String>,
    /// The clip's first frame (a keyframe at or before `pre_capture_s` before the object was first seen).
    pub started_at: String,
    pub ended_at: String,
    pub duration_s: f64,
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub content_type: Cow<'static, str>,
    /// `h264` or `h265`: the camera's own stream, not encoded again.
    pub codec: Cow<'static, str>,
    pub pre_capture_s: u32,
    pub post_capture_s: u32,
    /// When this message was made.
    pub ts: String,
}
