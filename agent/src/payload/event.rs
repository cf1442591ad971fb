//! `{prefix}/{site}/{camera}/events`: the wire form of [`ObjectEvent`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{round2, round3, timestamp, Grid, EVENT_SCHEMA};
use crate::events::geometry::Direction;
use crate::events::voting::VotedPlate;
use crate::events::{self, FrameSize, ObjectEvent, Phase};
use crate::topics::Topics;
use models::ObjectKind;

/// `{prefix}/{site}/{camera}/events` (QoS 1): one message per phase of one object passing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub schema: Cow<'static, str>,
    /// UUIDv7, the same for every phase of one object. Consumers deduplicate on (`id`, `seq`).
    pub id: String,
    /// Phase number within the event: 1 for `new`, then one more per message.
    pub seq: u32,
    pub site: String,
    #[serde(default)]
    pub grid: Grid,
    pub camera: String,
    /// `person` or `vehicle`.
    #[serde(rename = "type")]
    pub kind: ObjectKind,
    pub phase: Phase,
    /// Detector label: person, bicycle, car, motorcycle, bus, truck.
    pub label: Cow<'static, str>,
    /// Tracker id, unique per camera while the agent runs.
    pub track_id: u64,
    /// When the object was first seen.
    pub started_at: String,
    /// When it was last seen; set on `end` only.
    pub ended_at: Option<String>,
    /// When this message was made.
    pub ts: String,
    /// `in`/`out` from the last line crossing, `null` when no line was crossed.
    pub direction: Option<Direction>,
    pub crossings: Vec<Crossing>,
    pub zones: Vec<ZoneVisit>,
    /// Best detection score of the object.
    pub score: f32,
    /// Last box, `[x1, y1, x2, y2]` in frame pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub frame: FrameSize,
    /// Voted plate (vehicles), `null` when none was read.
    pub plate: Option<VotedPlate>,
    /// The object's best picture; set on `end`.
    pub snapshot: Option<SnapshotRef>,
    /// `plate` when the chain was started from a plate that no vehicle box covered (a vehicle too close to
    /// the camera for the detector); absent for chains started by the detector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_from: Option<Cow<'static, str>>,
    /// On an `end` only: this chain turned out to be the same vehicle as the chain with this id (same
    /// plate, same place, same time), which carries on. It is not a passing of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

/// One crossing of a configured line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    pub line: String,
    pub direction: Direction,
    pub at: String,
}

/// One stay in a configured zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZoneVisit {
    pub id: String,
    pub entered_at: String,
    /// `null` while the object is still inside.
    pub left_at: Option<String>,
    pub dwell_s: f64,
}

/// Where an event's snapshot is and what it shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
    /// The event id; the JPEG is published on `{prefix}/{site}/{camera}/snapshots/{id}`.
    pub id: String,
    /// That topic, when the agent publishes to MQTT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Local file (offline analysis with `--snapshots DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub content_type: Cow<'static, str>,
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

impl Event {
    /// The wire form of `e`; with `topics` (the agent publishes to MQTT) its snapshot names the topic it goes to.
    pub fn new(e: &ObjectEvent, topics: Option<&Topics>) -> Self {
        Self {
            schema: EVENT_SCHEMA.into(),
            id: e.id.clone(),
            seq: e.seq,
            site: e.origin.site.path(),
            grid: Grid::from(&e.origin.site),
            camera: e.origin.camera.clone(),
            kind: e.kind(),
            phase: e.phase,
            label: e.class.label().into(),
            track_id: e.track_id,
            started_at: timestamp(e.started_at),
            ended_at: e.ended_at.map(timestamp),
            ts: timestamp(e.at),
            direction: e.direction,
            crossings: e.crossings.iter().map(Crossing::from).collect(),
            zones: e.zones.iter().map(ZoneVisit::from).collect(),
            score: round3(e.score),
            bbox: e.bbox.to_array(),
            frame: e.frame,
            plate: e.plate.as_ref().map(rounded),
            snapshot: e.snapshot.as_ref().map(|s| SnapshotRef {
                id: e.id.clone(),
                topic: topics.map(|t| t.snapshot(e.camera(), &e.id)),
                file: None,
                content_type: "image/jpeg".into(),
                bytes: s.bytes,
                width: s.width,
                height: s.height,
                bbox: s.object_box.to_array(),
                frame_region: s.frame_region.to_array(),
                taken_at: timestamp(s.taken_at),
                sha256: s.sha256.clone(),
            }),
            started_from: e.from_plate.then_some("plate".into()),
            merged_into: e.merged_into.clone(),
        }
    }
}

impl From<&events::Crossing> for Crossing {
    fn from(c: &events::Crossing) -> Self {
        Self { line: c.line.clone(), direction: c.direction, at: timestamp(c.at) }
    }
}

impl From<&events::ZoneVisit> for ZoneVisit {
    fn from(v: &events::ZoneVisit) -> Self {
        Self { id: v.zone.clone(), entered_at: timestamp(v.entered_at), left_at: v.left_at.map(timestamp), dwell_s: round2(v.dwell_s) }
    }
}

/// The voted plate with its confidences rounded for the wire.
fn rounded(p: &VotedPlate) -> VotedPlate {
    VotedPlate { confidence: round3(p.confidence), min_char_confidence: round3(p.min_char_confidence), ..p.clone() }
}
