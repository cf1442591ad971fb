//! From detections to events: one `new` … `update` … `end` chain per person or vehicle passing.
//!
//! Design: [`EventBuilder`] is a synchronous state machine per camera. Each analysed frame goes in with
//! its detections and plate reads; the tracker ([`crate::tracking`]) says which object each detection is,
//! and every object accumulates its label, best score, line crossings, zone visits, plate readings (voted,
//! [`voting`]) and best picture ([`snapshot`]). Out come events: `new` when the tracker confirms an object,
//! `update` when its plate or direction becomes known or changes (at most one per `update_interval` per
//! object; a change waiting for its slot goes out with the next update or the end), and `end` when the
//! object is gone, with the final plate and the snapshot. Time comes in with each frame: the same frames
//! give the same phases, plates, directions, boxes and times; only the event ids (fresh UUIDv7s) differ from
//! run to run, and [`EventBuilder::finish`] without any frame falls back to the wall clock.
//!
//! The builder produces domain values ([`ObjectEvent`]); `crate::payload` turns them into contract v1.

mod active;
pub mod geometry;
pub mod identity;
mod object;
pub mod plate_search;
pub mod snapshot;
pub mod voting;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use edge_config::{Line, Zone};
use models::plates::PlateRead;
use models::{BgrView, Detection, ObjectKind};

use crate::topics::Origin;
use crate::tracking::{Observation, TrackEvent, Tracker, TrackerSettings};
use active::{Active, Emitter};
use geometry::{LineGeom, ZoneGeom};
use identity::Chains;
pub use object::{Crossing, EventOut, Extras, FrameSize, ObjectEvent, Phase, Picture, SnapshotInfo, ZoneVisit};
use plate_search::{Followed, PlateTargets};
use snapshot::SnapshotSettings;

/// Builder tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderSettings {
    pub tracker: TrackerSettings,
    /// Minimum seconds between two `update`s of one object.
    pub update_interval_s: f64,
    pub snapshot: SnapshotSettings,
    /// Whether to keep pictures (analysis without snapshots skips the copying).
    pub snapshots: bool,
    /// How long a vehicle with a plate that was lost inside the frame is remembered (0: not at all).
    pub plate_memory_s: f64,
}

impl BuilderSettings {
    /// From the config's `[events]` section, for a camera analysed at `detect_fps`.
    pub fn from_config(events: &edge_config::Events, detect_fps: f64) -> Self {
        Self {
            tracker: TrackerSettings {
                high_score: events.track_high_score,
                low_score: events.track_low_score,
                new_track_score: events.track_high_score,
                confirm_hits: events.confirm_frames,
                lost_timeout_s: events.lost_timeout_secs,
                frame_interval_s: 1.0 / detect_fps.max(0.01),
                ..TrackerSettings::default()
            },
            update_interval_s: events.update_interval_ms as f64 / 1000.0,
            snapshot: SnapshotSettings {
                max_width: events.snapshot_max_width,
                max_bytes: events.snapshot_max_bytes,
                context: events.snapshot_context,
                scene_width: 0,
                scene_max_bytes: 0,
                scene_people: false,
                scene_vehicles: false,
                plate_crop: false,
            },
            snapshots: true,
            plate_memory_s: events.plate_memory_secs,
        }
    }
}

/// When a frame was taken: `stream_s` is monotonic (seconds) and drives tracking; `wall` is reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameTime {
    pub stream_s: f64,
    pub wall: DateTime<Utc>,
}

/// One analysed frame, as the builder needs it.
pub struct FrameInput<'a> {
    pub time: FrameTime,
    pub width: u32,
    pub height: u32,
    /// The frame's pixels, for snapshots (`None` skips pictures for this frame).
    pub view: Option<BgrView<'a>>,
    pub detections: &'a [Detection],
    /// Plates read in the frame; `region` is an index into `detections`.
    pub plates: &'a [PlateRead],
}

/// Lines and zones in pixels for one frame size.
type Geometry = ((u32, u32), Vec<LineGeom>, Vec<ZoneGeom>);

/// The event builder of one camera.
pub struct EventBuilder {
    origin: Arc<Origin>,
    settings: BuilderSettings,
    tracker: Tracker,
    lines: Vec<Line>,
    zones: Vec<Zone>,
    geometry: Option<Geometry>,
    chains: Chains,
    frame: FrameSize,
    last_time: Option<FrameTime>,
}

/// One frame's detections after [`identity::consolidate`], with the plates each carries.
struct Seen<'a> {
    input: &'a FrameInput<'a>,
    frame: &'a identity::Consolidated,
    plates: BTreeMap<usize, Vec<&'a PlateRead>>,
}

impl EventBuilder {
    pub fn new(origin: Origin, settings: BuilderSettings, lines: &[Line], zones: &[Zone]) -> Self {
        let tracker = Tracker::new(settings.tracker.clone());
        Self {
            origin: Arc::new(origin),
            settings,
            tracker,
            lines: lines.to_vec(),
            zones: zones.to_vec(),
            geometry: None,
            chains: Chains::default(),
            frame: FrameSize { width: 0, height: 0 },
            last_time: None,
        }
    }

    /// Confirmed people inside each zone now, as (zone id, their event ids, longest present first).
    pub fn people_in_zones(&self) -> Vec<(String, Vec<String>)> {
        self.zones
            .iter()
            .enumerate()
            .map(|(zi, zone)| {
                let mut inside: Vec<(DateTime<Utc>, &str)> = self
                    .chains
                    .followed()
                    .filter(|a| a.confirmed && a.class.kind() == ObjectKind::Person)
                    .filter_map(|a| a.in_zone.get(zi).copied().flatten().map(|v| (a.visits[v].entered_at, a.event_id.as_str())))
                    .collect();
                inside.sort();
                (zone.id.clone(), inside.into_iter().map(|(_, id)| id.to_string()).collect())
            })
            .collect()
    }

    /// Objects currently followed (confirmed or not), and vehicles remembered after being lost in view.
    pub fn active(&self) -> usize {
        self.chains.len()
    }

    /// Which vehicles the plate chain searches in the next frame ([`PlateTargets::collect`]; `settle_reads`
    /// 0: all, `None`).
    pub fn plate_targets(&self, settle_reads: u32) -> Option<PlateTargets> {
        let followed = self.chains.followed().map(|a| Followed { last_box: a.last_box, confirmed: a.confirmed, schedule: &a.plate_search, votes: &a.plates });
        PlateTargets::collect(followed, settle_reads, &self.settings.tracker)
    }

    /// Time of the last frame fed in.
    pub fn last_time(&self) -> Option<FrameTime> {
        self.last_time
    }

    /// Converts the lines and zones to pixels when the frame size is new.
    fn fit_geometry(&mut self, w: u32, h: u32) {
        if self.geometry.as_ref().is_none_or(|(size, ..)| *size != (w, h)) {
            let lines = self.lines.iter().map(|l| LineGeom::new(l, w, h)).collect();
            let zones = self.zones.iter().map(|z| ZoneGeom::new(z, w, h)).collect();
            self.geometry = Some(((w, h), lines, zones));
        }
    }

    /// Feeds one analysed frame; returns the events it completes.
    pub fn observe(&mut self, input: &FrameInput<'_>) -> Vec<EventOut> {
        let t = input.time;
        self.last_time = Some(t);
        self.frame = FrameSize { width: input.width, height: input.height };
        let frame = identity::consolidate(input.detections, input.plates, input.width, input.height);
        let observations: Vec<Observation> = frame.detections.iter().map(|d| Observation { bbox: d.bbox, score: d.score, class: d.class }).collect();
        let track_events = self.tracker.update(t.stream_s, input.width, input.height, &observations);
        self.fit_geometry(input.width, input.height);
        let seen = Seen { input, frame: &frame, plates: attribute_plates(&frame.plates) };

        // Matches first, so `new` and `end` carry this frame's state.
        for e in &track_events {
            if let TrackEvent::Matched { id, detection } = e {
                self.matched(*id, *detection, &seen);
            }
        }
        let mut out = Vec::new();
        let emitter = Emitter { origin: &self.origin, frame: self.frame, settings: &self.settings };
        for e in &track_events {
            match e {
                TrackEvent::Confirmed { id } => {
                    if let Some(a) = self.chains.confirm(*id, t.stream_s) {
                        out.push(emitter.emit(a, Phase::New, t));
                    }
                }
                TrackEvent::Ended { id } => out.extend(self.chains.track_ended(*id, t, self.settings.plate_memory_s, &emitter)),
                TrackEvent::Dropped { id } => self.chains.dropped(*id),
                TrackEvent::Matched { .. } | TrackEvent::Missed { .. } => {}
            }
        }
        out.extend(self.chains.merge_by_plate(t, &emitter));
        out.extend(self.chains.forget_parked(t, self.settings.plate_memory_s, &emitter));
        // Updates whose slot has come.
        for a in self.chains.followed_mut() {
            if a.confirmed && t.stream_s - a.last_update_s >= self.settings.update_interval_s && a.changed() {
                out.push(emitter.emit(a, Phase::Update, t));
            }
        }
        out
    }

    /// Track `id` took detection `detection` of the frame: the chain it goes to (its own, new if need
    /// be, or the vehicle it is part of) takes in where it is, the lines and zones it crossed, its plate
    /// reads and its picture.
    fn matched(&mut self, id: u64, detection: usize, seen: &Seen<'_>) {
        let t = seen.input.time;
        let Some(d) = seen.frame.detections.get(detection) else { return };
        // A track that is part of another vehicle adds its plate reads and pictures to that vehicle only.
        let Some((key, part)) = self.chains.route(id) else { return };
        let class = self.tracker.track(id).map_or(d.class, |tr| tr.class());
        let from_plate = seen.frame.plate_led.get(detection).copied().unwrap_or(false);
        let (lines, zones) = (self.lines.len(), self.zones.len());
        let a = self.chains.entry(key, || Active::new(id, class, d.bbox, t, from_plate, lines, zones));
        a.seen(t, d.score);
        if !part {
            a.moved_to(class, d.bbox, t.stream_s);
            if let Some((_, lines, zones)) = &self.geometry {
                a.walk(lines, zones, &d.bbox, t.wall);
            }
        }
        let reads = seen.plates.get(&detection).map(Vec::as_slice).unwrap_or_default();
        a.read_plates(reads, &d.bbox, part);
        if let (true, Some(view)) = (self.settings.snapshots, &seen.input.view) {
            a.consider_picture(view, d, reads, &self.settings.snapshot, t.wall);
        }
    }

    /// Ends every object (end of stream, shutdown, a gap in the video).
    pub fn finish(&mut self) -> Vec<EventOut> {
        let t = self.last_time.unwrap_or(FrameTime { stream_s: 0.0, wall: Utc::now() });
        self.tracker.finish();
        let emitter = Emitter { origin: &self.origin, frame: self.frame, settings: &self.settings };
        self.chains.finish(t, &emitter)
    }
}

/// Plates per vehicle detection (after [`identity::consolidate`], every plate names its vehicle).
fn attribute_plates(plates: &[PlateRead]) -> BTreeMap<usize, Vec<&PlateRead>> {
    let mut by = BTreeMap::<usize, Vec<&PlateRead>>::new();
    for p in plates {
        if let Some(i) = p.region {
            by.entry(i).or_default().push(p);
        }
    }
    by
}

#[cfg(test)]
mod tests;
