//! `[clips]`: event clips. Each camera's compressed stream (never decoded or encoded again for this) is
//! kept in a short ring of keyframe-aligned MP4 fragments, so a clip can start before the event did; a
//! clip is cut from the ring for every alert (default) or every passing and kept for a limited time.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which events get a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipKeep {
    /// Every alert a rule raised on an event (and crowding alerts, around the moment they fire).
    Alerts,
    /// Every passing (vehicle or person event), whether it raised an alert or not.
    Passings,
}

/// Event clips. *(restart)*
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Clips {
    /// Keep the ring and cut clips. Cameras that send MJPEG or raw video have no clips (their frames are not
    /// encoded; re-encoding would cost the detector its CPU): the duty desk and `stats` say so.
    pub enabled: bool,
    pub keep: ClipKeep,
    /// Seconds of video before the object was first seen.
    pub pre_capture_secs: u32,
    /// Seconds after it was last seen.
    pub post_capture_secs: u32,
    /// Length the ring's fragments aim for; each starts at a keyframe, so a camera with a long keyframe
    /// interval makes longer ones.
    pub fragment_secs: u32,
    /// Where the ring lives (a tmpfs such as `/dev/shm/edge-agent` spares the disk). Default:
    /// `{state_dir}/clips/ring`.
    pub ring_dir: Option<PathBuf>,
    /// Most bytes one camera's ring holds; beyond it the oldest fragments go even if younger than the
    /// pre-capture needs.
    pub ring_max_mb: u64,
    /// Clips are deleted after this many days.
    pub retention_days: u32,
    /// All clips together take at most this many MiB; beyond it the oldest are deleted (counted).
    pub max_mb: u64,
    /// A clip the platform asks for (`clip` command) travels through the outbox in chunks of this many KiB.
    pub chunk_kb: u32,
}

impl Default for Clips {
    fn default() -> Self {
        Self {
            enabled: true,
            keep: ClipKeep::Alerts,
            pre_capture_secs: 5,
            post_capture_secs: 5,
            fragment_secs: 2,
            ring_dir: None,
            ring_max_mb: 64,
            retention_days: 7,
            max_mb: 2048,
            chunk_kb: 256,
        }
    }
}
