//! `{prefix}/{site}/{camera}/alerts`: the wire form of a rule's [`Finding`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{round2, round3, timestamp, Grid, ALERT_SCHEMA};
use crate::events::geometry::Direction;
use crate::rules::{Finding, RuleType};
use crate::topics::Topics;
use models::ObjectKind;

/// An alert: a rule matched. Published on `{prefix}/{site}/{camera}/alerts` (QoS 1, through the outbox).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    pub schema: Cow<'static, str>,
    /// UUIDv7 of this alert.
    pub id: String,
    pub site: String,
    #[serde(default)]
    pub grid: Grid,
    pub camera: String,
    pub ts: String,
    /// The rule's id from the config.
    pub rule: String,
    /// `watch_list`, `key_region`, `crowding` or `after_hours`.
    pub kind: RuleType,
    /// `info`, `warning` or `critical`.
    pub severity: Cow<'static, str>,
    /// The event that triggered it (for crowding, the person present longest).
    pub event_id: Option<String>,
    /// Every event involved (crowding: the people in the zone).
    pub event_ids: Vec<String>,
    /// `person` or `vehicle`.
    #[serde(rename = "type")]
    pub object_type: Option<ObjectKind>,
    pub label: Option<Cow<'static, str>>,
    pub direction: Option<Direction>,
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
    /// Watch list: why the plate is listed, when the entry says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Rules from the platform's policy: the grid level and the document version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Cow<'static, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
    /// Camera health alerts (`camera_offline`, `camera_frozen`, `camera_covered`, `camera_moved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AlertHealth>,
}

/// A camera health alert: the condition raised, or cleared (the camera recovered).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertHealth {
    /// `raised` or `cleared`.
    pub state: HealthState,
    /// When the condition started (raised) or ended (cleared).
    pub since: String,
    /// What was measured.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    Raised,
    Cleared,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertPlate {
    pub text: String,
    pub confidence: f32,
    pub color: models::plates::PlateColour,
    /// Characters the read is not sure of (see the event's plate); absent when it is sure of all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncertain_positions: Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertMatch {
    /// The plate as listed.
    pub entry: String,
    /// 0: exact; 1: one character differs (at `position`, 0-based).
    pub distance: u8,
    pub position: Option<usize>,
}

impl Alert {
    /// The wire form of `f`; with `topics` it names the topic of the triggering event's snapshot.
    pub fn new(f: &Finding, topics: Option<&Topics>) -> Self {
        Self {
            schema: ALERT_SCHEMA.into(),
            id: f.id.clone(),
            site: f.origin.site.path(),
            grid: Grid::from(&f.origin.site),
            camera: f.origin.camera.clone(),
            ts: timestamp(f.at),
            rule: f.rule.clone(),
            kind: f.kind,
            severity: f.severity.as_str().into(),
            snapshot_topic: f.event_id.as_deref().zip(topics).map(|(id, t)| t.snapshot(&f.origin.camera, id)),
            event_id: f.event_id.clone(),
            event_ids: f.event_ids.clone(),
            object_type: f.class.map(|c| c.kind()),
            label: f.class.map(|c| c.label().into()),
            direction: f.direction,
            plate: f.plate.as_ref().map(|p| AlertPlate {
                text: p.text.clone(),
                confidence: round3(p.confidence),
                color: p.color,
                uncertain_positions: p.uncertain_positions.clone(),
            }),
            matched: f.matched.as_ref().map(|m| AlertMatch { entry: m.entry.clone(), distance: m.distance, position: m.position }),
            prefix: f.prefix.clone(),
            zone: f.zone.clone(),
            count: f.count,
            duration_s: f.duration_s.map(round2),
            reason: f.reason.clone(),
            level: f.provenance.as_ref().map(|p| p.level.into()),
            policy_version: f.provenance.as_ref().map(|p| p.version),
            health: f.health.as_ref().map(|h| AlertHealth {
                state: if h.raised { HealthState::Raised } else { HealthState::Cleared },
                since: timestamp(h.since),
                detail: h.detail.clone(),
            }),
        }
    }
}
