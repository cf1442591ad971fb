//! What the event builder says about an object passing: domain values with real times and boxes. The wire
//! form (strings, rounding, field names of contract v1) is made from these in `crate::payload`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use models::{BBox, ObjectClass, ObjectKind};
use serde::{Deserialize, Serialize};

use super::geometry::Direction;
use super::voting::VotedPlate;
use crate::topics::Origin;

/// Phase of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// The object was confirmed (seen in enough frames in a row).
    New,
    /// Its plate or direction became known or improved.
    Update,
    /// It is gone; final values.
    End,
}

/// Size of the analysed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
}

/// One crossing of a configured line.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub line: String,
    pub direction: Direction,
    pub at: DateTime<Utc>,
}

/// One stay in a configured zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneVisit {
    pub zone: String,
    pub entered_at: DateTime<Utc>,
    /// `None` while the object is still inside.
    pub left_at: Option<DateTime<Utc>>,
    /// Seconds inside so far (until `left_at` once it left).
    pub dwell_s: f64,
}

/// The picture an `end` event carries (its JPEG travels beside the event in [`EventOut`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotInfo {
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
    /// The object inside the picture.
    pub object_box: BBox,
    /// The part of the frame the picture shows, in frame pixels.
    pub frame_region: BBox,
    pub taken_at: DateTime<Utc>,
    pub sha256: String,
}

/// One phase of one object passing one camera.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// Which site and camera saw it.
    pub origin: Arc<Origin>,
    /// UUIDv7, the same for every phase of one object.
    pub id: String,
    /// 1 for `new`, then one more per message.
    pub seq: u32,
    pub class: ObjectClass,
    pub phase: Phase,
    /// Tracker id, unique per camera while the agent runs.
    pub track_id: u64,
    pub started_at: DateTime<Utc>,
    /// When it was last seen; set on `end` only.
    pub ended_at: Option<DateTime<Utc>>,
    /// The time of the frame that produced this phase.
    pub at: DateTime<Utc>,
    /// From the last line crossing.
    pub direction: Option<Direction>,
    pub crossings: Vec<Crossing>,
    pub zones: Vec<ZoneVisit>,
    /// Best detection score.
    pub score: f32,
    /// Last box, in frame pixels.
    pub bbox: BBox,
    pub frame: FrameSize,
    /// Voted plate (plate-carrying classes only).
    pub plate: Option<VotedPlate>,
    /// Set on `end` when a picture was kept.
    pub snapshot: Option<SnapshotInfo>,
    /// The chain was started from a plate no vehicle box covered (a vehicle too close for the detector).
    pub from_plate: bool,
    /// Set on the `end` of a chain found to be the same vehicle as the chain with this id (same plate, same
    /// place, same time): that chain carries on, and this one is not a passing of its own.
    pub merged_into: Option<String>,
}

impl ObjectEvent {
    pub fn kind(&self) -> ObjectKind {
        self.class.kind()
    }

    pub fn camera(&self) -> &str {
        &self.origin.camera
    }
}

/// A JPEG picture and its size.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The object inside the picture.
    pub object_box: BBox,
}

/// Pictures of an `end` besides its snapshot, when the settings ask for them (the GA/T 1400 uplink): the
/// whole frame, and the plate at full resolution. They travel only to that uplink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub scene: Option<Picture>,
    pub plate: Option<Picture>,
}

/// An event, with the snapshot's JPEG bytes when the event carries one.
#[derive(Debug, Clone)]
pub struct EventOut {
    pub event: ObjectEvent,
    pub snapshot: Option<Vec<u8>>,
    pub extras: Extras,
}
