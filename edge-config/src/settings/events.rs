//! `[events]`: tracking and the events it produces.

use serde::{Deserialize, Serialize};

/// Tracking objects and turning them into events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    /// Frames in a row an object must be seen before its `new` event.
    pub confirm_frames: u32,
    /// An object unseen for this long has left: its `end` event goes out.
    pub lost_timeout_secs: f64,
    /// Detections at or above this score can start a track.
    pub track_high_score: f32,
    /// Weaker detections (down to this score) only keep existing tracks alive (an object partly hidden).
    pub track_low_score: f32,
    /// At most one `update` per object in this interval; later changes wait for the next slot or the `end`.
    pub update_interval_ms: u64,
    /// Snapshots larger than this are re-encoded smaller.
    pub snapshot_max_bytes: usize,
    /// Snapshots wider than this are scaled down.
    pub snapshot_max_width: u32,
    /// Context around the object in a snapshot, as a fraction of its size on each side.
    pub snapshot_context: f32,
    /// A vehicle with a read plate that is lost inside the frame (stopped, hidden for a moment) is kept
    /// this long: if a vehicle with the same plate appears in that time, it continues the same passing.
    /// Its `end` goes out when the memory runs out. 0 turns the memory off.
    pub plate_memory_secs: f64,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            confirm_frames: 3,
            lost_timeout_secs: 2.0,
            plate_memory_secs: 10.0,
            track_high_score: 0.5,
            track_low_score: 0.1,
            update_interval_ms: 1000,
            snapshot_max_bytes: 200 * 1024,
            snapshot_max_width: 640,
            snapshot_context: 0.25,
        }
    }
}
