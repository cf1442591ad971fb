//! `[storage]`: the state directory and how long what it holds is kept.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Local state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Directory for the outbox, snapshots and other state; relative paths are relative to the config file.
    pub state_dir: PathBuf,
    /// Local snapshot copies (for the duty desk) are deleted after this many days.
    pub snapshot_retention_days: u32,
    /// The outbox holds at most this many bytes of undelivered messages; beyond it the oldest are evicted.
    pub outbox_max_bytes: u64,
    /// Undelivered messages older than this are evicted.
    pub outbox_max_age_hours: u64,
    /// Local event log (`events/YYYY-MM-DD.jsonl`) files are deleted after this many days.
    pub event_log_retention_days: u32,
    /// Free space the agent keeps on the state directory's file system, in MiB. Below it the agent deletes
    /// its own oldest local snapshots, then the oldest days of its local logs and history, and if that is
    /// not enough refuses new snapshots (never events or alerts) until space comes back.
    pub min_free_mb: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/edge-agent"),
            snapshot_retention_days: 7,
            // About a week of a busy village gate (events plus snapshots).
            outbox_max_bytes: 1 << 30,
            outbox_max_age_hours: 24 * 7,
            event_log_retention_days: 7,
            min_free_mb: 256,
        }
    }
}
