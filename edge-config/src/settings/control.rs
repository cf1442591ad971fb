//! `[control]` and `[reports]`: what comes down from the platform and what goes up to it.

use serde::{Deserialize, Serialize};

/// Policy from the platform (see the README, "Managing checkpoints from the platform").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Control {
    /// Take policy documents from the platform over MQTT (needs `[mqtt]`).
    pub enabled: bool,
    /// Ed25519 public keys (64 hex characters each). When any is set, policy documents must be signed by one
    /// of them; otherwise they are trusted as the broker's ACL lets them through.
    pub trusted_keys: Vec<String>,
}

/// Reports up the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reports {
    /// Length of a flow-count period (people and vehicles by direction, plates, alerts per camera); must
    /// divide a day. Default: an hour.
    pub counts_period_secs: u32,
}

impl Default for Control {
    fn default() -> Self {
        Self { enabled: true, trusted_keys: Vec::new() }
    }
}

impl Default for Reports {
    fn default() -> Self {
        Self { counts_period_secs: 3600 }
    }
}
