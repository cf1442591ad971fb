//! The health verdict: what `/healthz`, the status report and the systemd watchdog go by.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Sources;
use crate::mqtt::LinkState;
use crate::stats::CameraState;

/// A camera thread that has not gone round its loop for this long is stuck.
pub const CAMERA_STUCK_AFTER: Duration = Duration::from_secs(30);
/// The outbox writer must answer within this.
const OUTBOX_PING_DEADLINE: Duration = Duration::from_secs(10);
/// Connected, messages waiting, and no acknowledgement for this long: delivery has stalled.
pub const DELIVERY_STALLED_AFTER: Duration = Duration::from_secs(60);

/// How the agent is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not checked yet.
    Starting,
    Ok,
    /// Running, but something needs attention (a camera or the broker cannot be reached).
    Degraded,
    /// Running, but not recording or delivering what it should (storage full or failing, delivery to a
    /// connected broker stalled); a restart would not fix it.
    Failing,
    /// A main loop is stuck: the watchdog lets systemd restart the agent.
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The link to the platform, as the health check found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Uplink {
    /// No broker configured.
    Standalone,
    Connected,
    Disconnected,
    /// Connected, but the broker has acknowledged nothing for a minute while messages wait.
    Stalled,
}

impl Uplink {
    pub fn as_str(self) -> &'static str {
        match self {
            Uplink::Standalone => "standalone",
            Uplink::Connected => "connected",
            Uplink::Disconnected => "disconnected",
            Uplink::Stalled => "stalled",
        }
    }
}

/// The latest health verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: HealthStatus,
    /// What is wrong, for people.
    pub problems: Vec<String>,
    #[serde(skip)]
    pub checked: Option<Instant>,
    #[serde(skip)]
    pub uplink: Uplink,
}

impl Default for Health {
    fn default() -> Self {
        Self { status: HealthStatus::Starting, problems: Vec::new(), checked: None, uplink: Uplink::Standalone }
    }
}

impl Health {
    pub fn is_unhealthy(&self) -> bool {
        self.status == HealthStatus::Unhealthy
    }

    /// Whether `/healthz` answers 503: stuck, or running without doing its job.
    pub fn is_failing(&self) -> bool {
        matches!(self.status, HealthStatus::Unhealthy | HealthStatus::Failing)
    }
}

/// The periodic health check.
pub struct HealthCheck {
    pub sources: Sources,
    /// The MQTT task (`None` when running standalone).
    pub mqtt_task: Option<tokio::task::AbortHandle>,
}

impl HealthCheck {
    /// Looks at every main loop and stores the verdict.
    pub async fn evaluate(&self) -> Health {
        let mut stuck = Vec::new();
        let mut degraded = Vec::new();
        for r in self.sources.cameras.read().unwrap_or_else(|p| p.into_inner()).iter() {
            let h = r.health();
            if matches!(h.state, CameraState::Disabled | CameraState::Ended | CameraState::Stopped) {
                continue;
            }
            let quiet = r.since_beat();
            if quiet > CAMERA_STUCK_AFTER {
                stuck.push(format!("camera {}: thread stuck for {:.0} s", r.id, quiet.as_secs_f64()));
            } else if h.state != CameraState::Online {
                let why = h.last_error.map(|e| format!(": {e}")).unwrap_or_default();
                degraded.push(format!("camera {}: {}{why}", r.id, h.state.as_str()));
            }
        }
        let mut failing = Vec::new();
        let outbox = self.sources.outbox.clone();
        let answered = tokio::time::timeout(OUTBOX_PING_DEADLINE + Duration::from_secs(1), tokio::task::spawn_blocking(move || outbox.ping(OUTBOX_PING_DEADLINE))).await;
        match answered {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(crate::outbox::OutboxError::NoAnswer(_)))) | Err(_) => stuck.push(format!("outbox writer: no answer within {} s", OUTBOX_PING_DEADLINE.as_secs())),
            Ok(Ok(Err(e))) => stuck.push(format!("outbox writer: {e}")),
            Ok(Err(_)) => stuck.push("outbox writer: check failed".into()),
        }
        failing.extend(self.sources.storage.report().problem);
        let mut uplink = Uplink::Standalone;
        if let Some(task) = &self.mqtt_task {
            if task.is_finished() {
                stuck.push("MQTT task has stopped".into());
                uplink = Uplink::Disconnected;
            } else if let Some(link) = &self.sources.link {
                if !link.connected.load(Ordering::Relaxed) {
                    let why = link.last_error().map(|e| format!(": {e}")).unwrap_or_default();
                    degraded.push(format!("MQTT broker not connected{why}"));
                    uplink = Uplink::Disconnected;
                } else if let Some(problem) = self.delivery_stalled(link).await {
                    failing.push(problem);
                    uplink = Uplink::Stalled;
                } else {
                    uplink = Uplink::Connected;
                }
            }
        }
        if let Some(problem) = self.sources.gat1400.as_ref().and_then(crate::gat1400::Gat1400Handle::problem) {
            degraded.push(problem);
        }
        let status = if !stuck.is_empty() {
            HealthStatus::Unhealthy
        } else if !failing.is_empty() {
            HealthStatus::Failing
        } else if !degraded.is_empty() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Ok
        };
        stuck.extend(failing);
        stuck.extend(degraded);
        let health = Health { status, problems: stuck, checked: Some(Instant::now()), uplink };
        *self.sources.health.lock().unwrap_or_else(|p| p.into_inner()) = health.clone();
        health
    }
}

impl HealthCheck {
    /// Connected, messages waiting in the outbox, and none acknowledged for [`DELIVERY_STALLED_AFTER`].
    async fn delivery_stalled(&self, link: &LinkState) -> Option<String> {
        let quiet_ms = crate::outbox::now_ms().saturating_sub(link.last_progress_ms.load(Ordering::Relaxed));
        if quiet_ms < DELIVERY_STALLED_AFTER.as_millis() as u64 {
            return None;
        }
        let outbox = self.sources.outbox.clone();
        let depth = tokio::task::spawn_blocking(move || outbox.outbox().stats().map(|s| s.depth)).await.ok()?.ok()?;
        (depth > 0).then(|| format!("MQTT delivery stalled: {depth} message(s) waiting, none acknowledged by the connected broker for {} s", quiet_ms / 1000))
    }
}
