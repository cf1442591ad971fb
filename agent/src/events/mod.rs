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
use models::{BBox, BgrView, Detection, ObjectClass, ObjectKind};

use crate::topics::Origin;
use crate::tracking::{Observation, TrackEvent, Tracker, TrackerSettings};
use geometry::{Direction, LineGeom, LineState, ZoneGeom};
pub use object::{Crossing, EventOut, FrameSize, ObjectEvent, Phase, SnapshotInfo, ZoneVisit};
use plate_search::{PlateSchedule, PlateTargets, CONFIDENT_READ};
use snapshot::{Candidate, SnapshotSettings};
use voting::PlateVotes;

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
            snapshot: SnapshotSettings { max_width: events.snapshot_max_width, max_bytes: events.snapshot_max_bytes, context: events.snapshot_context },
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

/// What is known about one object.
struct Active {
    event_id: String,
    track_id: u64,
    confirmed: bool,
    seq: u32,
    class: ObjectClass,
    first_wall: DateTime<Utc>,
    last_wall: DateTime<Utc>,
    best_score: f32,
    last_box: BBox,
    lines: Vec<LineState>,
    crossings: Vec<Crossing>,
    direction: Option<Direction>,
    /// Per zone: index into `visits` of the open visit.
    in_zone: Vec<Option<usize>>,
    visits: Vec<ZoneVisit>,
    plates: PlateVotes,
    /// When it is searched for its plate again.
    plate_search: PlateSchedule,
    /// Plate and direction as last published.
    published: Published,
    last_update_s: f64,
    /// Stream time it was last seen.
    last_seen_s: f64,
    /// Where it was first seen.
    first_box: BBox,
    /// Where it last moved to, and when: a vehicle standing still before it was lost is remembered.
    moved: LastMove,
    snapshot: Option<Candidate>,
    /// Started from a plate no vehicle box covered.
    from_plate: bool,
    /// Ends as part of the chain with this event id.
    merged_into: Option<String>,
}

/// What an object's last event said about its plate (text, confidence) and direction.
#[derive(Debug, Clone, Default)]
struct Published {
    plate: Option<(String, f32)>,
    direction: Option<Direction>,
}

/// Where an object last moved to (a shift of more than [`identity::STILL_SHIFT`] of its width), and when
/// in stream seconds.
#[derive(Debug, Clone, Copy)]
struct LastMove {
    bbox: BBox,
    at_s: f64,
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
    active: BTreeMap<u64, Active>,
    /// Tracks found to be part of another track's vehicle: track id -> the key of that vehicle in `active`.
    aliases: BTreeMap<u64, u64>,
    /// Vehicles with a plate lost inside the frame, remembered for `plate_memory_s`.
    parked: Vec<Active>,
    frame: FrameSize,
    last_time: Option<FrameTime>,
}

fn anchor(b: &BBox) -> geometry::Point {
    (((b.x1 + b.x2) / 2.0) as f64, b.y2 as f64)
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
            active: BTreeMap::new(),
            aliases: BTreeMap::new(),
            parked: Vec::new(),
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
                    .active
                    .values()
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
        self.active.len() + self.parked.len()
    }

    /// Which vehicles the plate chain searches in the next frame (`settle_reads` 0: all, `None`). It leaves out the
    /// followed vehicles whose plate is settled — at least `settle_reads` reads agree with the voted text,
    /// which is at least [`CONFIDENT_READ`] — and, to favour the vehicles that are new or read confidently,
    /// those whose [`PlateSchedule`] says to wait (searches that found no confident read space out, and
    /// start over when the vehicle comes closer). A detection that no followed vehicle's box covers is
    /// searched only if it can start a track.
    pub fn plate_targets(&self, settle_reads: u32) -> Option<PlateTargets> {
        if settle_reads == 0 {
            return None;
        }
        let tracker = &self.settings.tracker;
        let mut targets = PlateTargets { skip: Vec::new(), due: Vec::new(), new_track_score: tracker.new_track_score };
        for a in self.active.values() {
            let settled = || a.plates.len() >= settle_reads as usize && a.plates.result().is_some_and(|p| p.reads >= settle_reads && p.confidence >= CONFIDENT_READ);
            if a.plate_search.waiting() || settled() {
                targets.skip.push(a.last_box);
            } else {
                targets.due.push((a.last_box, if a.confirmed { tracker.low_score } else { tracker.high_score }));
            }
        }
        Some(targets)
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
        let plates_by_detection = attribute_plates(&frame.plates);
        self.fit_geometry(input.width, input.height);
        let mut out = Vec::new();

        // Matches first, so `new` and `end` carry this frame's state.
        for e in &track_events {
            if let TrackEvent::Matched { id, detection } = e {
                self.matched(*id, *detection, input, &frame, &plates_by_detection);
            }
        }
        for e in &track_events {
            match e {
                TrackEvent::Confirmed { id } => {
                    if let Some(vehicle) = self.join_target(*id, t.stream_s) {
                        self.join(*id, vehicle);
                        continue;
                    }
                    if let Some(a) = self.active.get_mut(id) {
                        // A vehicle that came back (plate memory) has had its `new` already.
                        if a.confirmed {
                            continue;
                        }
                        a.confirmed = true;
                        a.last_update_s = t.stream_s;
                        out.push(emit(&self.origin, self.frame, &self.settings, a, Phase::New, t));
                    }
                }
                TrackEvent::Ended { id } => {
                    if let Some(o) = self.track_ended(*id, t) {
                        out.push(o);
                    }
                }
                TrackEvent::Dropped { id } => {
                    self.active.remove(id);
                    self.aliases.remove(id);
                }
                TrackEvent::Matched { .. } | TrackEvent::Missed { .. } => {}
            }
        }
        out.extend(self.merge_by_plate(t));
        out.extend(self.forget_parked(t));
        // Updates whose slot has come.
        for a in self.active.values_mut() {
            if a.confirmed && t.stream_s - a.last_update_s >= self.settings.update_interval_s && a.changed() {
                out.push(emit(&self.origin, self.frame, &self.settings, a, Phase::Update, t));
            }
        }
        out
    }

    /// The vehicle a just-confirmed track is part of: a followed vehicle of the same kind that it lies
    /// inside (or that lies inside it), or that reads the same plate where it is — unless both have plates
    /// and they differ.
    fn join_target(&self, id: u64, now_s: f64) -> Option<u64> {
        let a = self.active.get(&id)?;
        if !a.class.carries_plate() {
            return None;
        }
        let plate = a.plates.result().map(|p| p.text);
        self.active
            .iter()
            // Only a vehicle seen in this very frame: a lost one's last box is where it was, not where it is.
            .filter(|(k, b)| **k != id && b.confirmed && b.last_seen_s == now_s && b.class.track_group() == a.class.track_group())
            .find(|(_, b)| {
                let other = b.plates.result().map(|p| p.text);
                match (&plate, &other) {
                    (Some(x), Some(y)) if x != y => false,
                    (Some(_), Some(_)) => same_place(&a.last_box, &b.last_box),
                    _ => identity::nested(&a.last_box, &b.last_box, identity::JOIN_NESTED),
                }
            })
            .map(|(k, _)| *k)
    }

    /// Makes track `id` part of the vehicle at `vehicle`: what it saw joins that chain.
    fn join(&mut self, id: u64, vehicle: u64) {
        if let Some(part) = self.active.remove(&id) {
            if let Some(whole) = self.active.get_mut(&vehicle) {
                whole.absorb(part);
            }
        }
        self.alias(id, vehicle);
    }

    fn alias(&mut self, id: u64, vehicle: u64) {
        self.repoint(id, vehicle);
        self.aliases.insert(id, vehicle);
    }

    /// Tracks that were part of the vehicle at `from` are now part of the vehicle at `to`.
    fn repoint(&mut self, from: u64, to: u64) {
        for k in self.aliases.values_mut() {
            if *k == from {
                *k = to;
            }
        }
    }

    /// A track ended: the end of its chain, unless it was part of another vehicle, another track of its
    /// vehicle carries on, or it is a vehicle with a plate lost inside the frame (remembered a while).
    fn track_ended(&mut self, id: u64, t: FrameTime) -> Option<EventOut> {
        if self.aliases.remove(&id).is_some() {
            return None;
        }
        if let Some(heir) = self.aliases.iter().find(|(_, k)| **k == id).map(|(x, _)| *x) {
            let a = self.active.remove(&id)?;
            self.aliases.remove(&heir);
            self.repoint(id, heir);
            self.active.insert(heir, a);
            return None;
        }
        let a = self.active.get(&id)?;
        let remember = self.settings.plate_memory_s > 0.0
            && a.confirmed
            && a.last_seen_s - a.moved.at_s >= identity::STILL_BEFORE_LOST_S
            && a.class.carries_plate()
            && !a.plates.is_empty()
            && !identity::at_edge(&a.last_box, self.frame.width, self.frame.height);
        if remember {
            let a = self.active.remove(&id)?;
            self.parked.push(a);
            return None;
        }
        self.end(id, t)
    }

    /// Chains that turn out to be one vehicle by their plate: a vehicle remembered after being lost takes
    /// back the chain now reading its plate; two live chains reading the same plate in the same place
    /// become the older one. A chain that already had its `new` ends with `merged_into`.
    fn merge_by_plate(&mut self, t: FrameTime) -> Vec<EventOut> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.parked.len() {
            let text = self.parked[i].plates.result().map(|p| p.text);
            // It comes back where it stood (or near): the same plate elsewhere is another passing.
            let stood = self.parked[i].last_box;
            let back = self.active.iter().find(|(_, a)| a.class.carries_plate() && a.plates.result().map(|p| p.text) == text && same_place(&a.last_box, &stood)).map(|(k, _)| *k);
            match back.and_then(|k| self.active.remove(&k).map(|a| (k, a))) {
                Some((k, mut newer)) => {
                    let mut returned = self.parked.remove(i);
                    if newer.confirmed {
                        newer.merged_into = Some(returned.event_id.clone());
                        out.extend(end_message(&self.origin, self.frame, &self.settings, &mut newer, t));
                    }
                    returned.take_over(newer);
                    self.active.insert(k, returned);
                }
                None => i += 1,
            }
        }
        // Chains reading the same plate that are one vehicle: seen together in this frame in the same
        // place; or picked up again — under load the tracker can lose a moving vehicle between two analysed
        // frames and start a new track a step further on, so a chain first seen after a followed vehicle was
        // lost, near where it was lost and ahead of it, is that vehicle.
        loop {
            let plated: Vec<(u64, String, &Active)> =
                self.active.iter().filter(|(_, a)| a.confirmed && a.class.carries_plate()).filter_map(|(k, a)| a.plates.result().map(|p| (*k, p.text, a))).collect();
            let now = |a: &Active| a.last_seen_s == t.stream_s;
            let pairs = || plated.iter().flat_map(|o| plated.iter().map(move |y| (o, y))).filter(|(o, y)| o.1 == y.1 && now(y.2));
            // Event ids are UUIDv7: the smaller is the older chain.
            let together = pairs().find(|(o, y)| now(o.2) && o.2.event_id < y.2.event_id && same_place(&o.2.last_box, &y.2.last_box));
            let merge = match together {
                Some((o, y)) => Some((o.0, y.0, true)),
                None => pairs()
                    .find(|(o, y)| !now(o.2) && o.2.last_wall < y.2.first_wall && identity::picked_up(&o.2.first_box, &o.2.last_box, &y.2.first_box))
                    .map(|(o, y)| (o.0, y.0, false)),
            };
            let Some((older, younger, together)) = merge else { break };
            let (Some(mut kept), Some(mut merged)) = (self.active.remove(&older), self.active.remove(&younger)) else { break };
            merged.merged_into = Some(kept.event_id.clone());
            out.extend(end_message(&self.origin, self.frame, &self.settings, &mut merged, t));
            if together {
                kept.absorb(merged);
                self.active.insert(older, kept);
                self.alias(younger, older);
            } else {
                // The lost vehicle goes on as the new track.
                kept.take_over(merged);
                self.active.insert(younger, kept);
                self.alias(older, younger);
            }
        }
        out
    }

    /// Ends the remembered vehicles whose memory ran out.
    fn forget_parked(&mut self, t: FrameTime) -> Vec<EventOut> {
        let memory = self.settings.plate_memory_s;
        let (gone, kept): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.parked).into_iter().partition(|a| t.stream_s - a.last_seen_s > memory);
        self.parked = kept;
        gone.into_iter().filter_map(|mut a| end_message(&self.origin, self.frame, &self.settings, &mut a, t)).collect()
    }

    fn matched(&mut self, id: u64, detection: usize, input: &FrameInput<'_>, frame: &identity::Consolidated, plates: &BTreeMap<usize, Vec<&PlateRead>>) {
        let t = input.time;
        let Some(d) = frame.detections.get(detection) else { return };
        let from_plate = frame.plate_led.get(detection).copied().unwrap_or(false);
        // A track that is part of another vehicle adds its plate reads and pictures to that vehicle only.
        let (key, part) = match self.aliases.get(&id) {
            Some(k) => (*k, true),
            None => (id, false),
        };
        let class = self.tracker.track(id).map_or(d.class, |tr| tr.class());
        let (n_lines, n_zones) = (self.lines.len(), self.zones.len());
        if part && !self.active.contains_key(&key) {
            self.aliases.remove(&id);
            return;
        }
        let a = self.active.entry(key).or_insert_with(|| Active {
            event_id: uuid::Uuid::now_v7().to_string(),
            track_id: id,
            confirmed: false,
            seq: 0,
            class,
            first_wall: t.wall,
            last_wall: t.wall,
            best_score: 0.0,
            last_box: d.bbox,
            lines: vec![LineState::default(); n_lines],
            crossings: Vec::new(),
            direction: None,
            in_zone: vec![None; n_zones],
            visits: Vec::new(),
            plates: PlateVotes::default(),
            plate_search: PlateSchedule::new(&d.bbox),
            published: Published::default(),
            last_update_s: t.stream_s,
            last_seen_s: t.stream_s,
            first_box: d.bbox,
            moved: LastMove { bbox: d.bbox, at_s: t.stream_s },
            snapshot: None,
            from_plate,
            merged_into: None,
        });
        a.last_wall = t.wall;
        a.last_seen_s = t.stream_s;
        a.best_score = a.best_score.max(d.score);
        if !part {
            a.class = class;
            a.last_box = d.bbox;
            let ((x0, y0), (x1, y1)) = (a.moved.bbox.center(), d.bbox.center());
            if (x1 - x0).hypot(y1 - y0) > identity::STILL_SHIFT * a.moved.bbox.width().max(1.0) {
                a.moved = LastMove { bbox: d.bbox, at_s: t.stream_s };
            }
        }

        let ground = anchor(&d.bbox);
        if let (Some((_, lines, zones)), false) = (&self.geometry, part) {
            for (geom, state) in lines.iter().zip(a.lines.iter_mut()) {
                if let Some(direction) = state.step(geom, ground) {
                    a.direction = Some(direction);
                    a.crossings.push(Crossing { line: geom.id.clone(), direction, at: t.wall });
                }
            }
            for (zi, zone) in zones.iter().enumerate() {
                let inside = zone.contains(ground);
                match (inside, a.in_zone[zi]) {
                    (true, None) => {
                        a.visits.push(ZoneVisit { zone: zone.id.clone(), entered_at: t.wall, left_at: None, dwell_s: 0.0 });
                        a.in_zone[zi] = Some(a.visits.len() - 1);
                    }
                    (true, Some(v)) => a.visits[v].dwell_s = seconds(t.wall - a.visits[v].entered_at),
                    (false, Some(v)) => {
                        let visit = &mut a.visits[v];
                        visit.left_at = Some(t.wall);
                        visit.dwell_s = seconds(t.wall - visit.entered_at);
                        a.in_zone[zi] = None;
                    }
                    (false, None) => {}
                }
            }
        }

        let reads = plates.get(&detection).map(Vec::as_slice).unwrap_or_default();
        if a.class.carries_plate() {
            for p in reads {
                a.plates.add(p);
            }
            if !part {
                a.plate_search.seen(&d.bbox, reads.iter().map(|p| p.confidence).reduce(f32::max));
            }
        }
        if self.settings.snapshots {
            if let Some(view) = &input.view {
                let plate_conf = reads.iter().map(|p| p.confidence).fold(None, |m: Option<f32>, c| Some(m.map_or(c, |m| m.max(c))));
                let rough = snapshot::quality(&d.bbox, d.score, 400.0, plate_conf);
                // Sharpness only matters when the candidate could win on it.
                if a.snapshot.as_ref().is_none_or(|c| rough > c.quality) {
                    let sharp = view.crop(d.bbox).map_or(0.0, |c| snapshot::sharpness(&c));
                    let q = snapshot::quality(&d.bbox, d.score, sharp, plate_conf);
                    if a.snapshot.as_ref().is_none_or(|c| q > c.quality) {
                        a.snapshot = snapshot::capture(view, &d.bbox, &self.settings.snapshot, t.wall, q).or(a.snapshot.take());
                    }
                }
            }
        }
    }

    fn end(&mut self, id: u64, t: FrameTime) -> Option<EventOut> {
        let mut a = self.active.remove(&id)?;
        end_message(&self.origin, self.frame, &self.settings, &mut a, t)
    }

    /// Ends every object (end of stream, shutdown, a gap in the video).
    pub fn finish(&mut self) -> Vec<EventOut> {
        let t = self.last_time.unwrap_or(FrameTime { stream_s: 0.0, wall: Utc::now() });
        self.tracker.finish();
        self.aliases.clear();
        let ids: Vec<u64> = self.active.keys().copied().collect();
        let mut out: Vec<EventOut> = ids.into_iter().filter_map(|id| self.end(id, t)).collect();
        out.extend(std::mem::take(&mut self.parked).into_iter().filter_map(|mut a| end_message(&self.origin, self.frame, &self.settings, &mut a, t)));
        out
    }
}

/// Two boxes of chains reading the same plate are one vehicle: they overlap, or one lies inside the other.
fn same_place(a: &BBox, b: &BBox) -> bool {
    a.iou(b) >= identity::SAME_PLATE_IOU || identity::nested(a, b, identity::JOIN_NESTED)
}

/// The `end` of `a` (nothing for an object never confirmed). Gone while inside a zone: it left when it was
/// last seen. `a` may live on afterwards (a chain merged into another).
fn end_message(origin: &Arc<Origin>, frame: FrameSize, settings: &BuilderSettings, a: &mut Active, t: FrameTime) -> Option<EventOut> {
    a.leave_zones();
    a.confirmed.then(|| emit(origin, frame, settings, a, Phase::End, t))
}

/// Makes the message for one phase of `a`.
fn emit(origin: &Arc<Origin>, frame: FrameSize, settings: &BuilderSettings, a: &mut Active, phase: Phase, t: FrameTime) -> EventOut {
    a.seq += 1;
    let plate = if a.class.carries_plate() { a.plates.result() } else { None };
    a.published = Published { plate: plate.as_ref().map(|p| (p.text.clone(), p.confidence)), direction: a.direction };
    if phase == Phase::Update {
        a.last_update_s = t.stream_s;
    }
    let encoded = match (phase, &a.snapshot) {
        (Phase::End, Some(candidate)) => snapshot::encode(candidate, settings.snapshot.max_bytes).map(|e| (candidate, e)),
        _ => None,
    };
    let (snapshot, jpeg) = match encoded {
        Some((candidate, e)) => (
            Some(SnapshotInfo {
                bytes: e.jpeg.len(),
                width: e.width,
                height: e.height,
                object_box: e.object_box,
                frame_region: candidate.frame_region,
                taken_at: candidate.taken_at,
                sha256: e.sha256,
            }),
            Some(e.jpeg),
        ),
        None => (None, None),
    };
    let event = ObjectEvent {
        origin: origin.clone(),
        id: a.event_id.clone(),
        seq: a.seq,
        class: a.class,
        phase,
        track_id: a.track_id,
        started_at: a.first_wall,
        ended_at: (phase == Phase::End).then_some(a.last_wall),
        at: t.wall,
        direction: a.direction,
        crossings: a.crossings.clone(),
        zones: a.visits.clone(),
        score: a.best_score,
        bbox: a.last_box,
        frame,
        plate,
        snapshot,
        from_plate: a.from_plate,
        merged_into: a.merged_into.clone(),
    };
    EventOut { event, snapshot: jpeg }
}

impl Active {
    /// Closes the open zone visits: it left them when it was last seen.
    fn leave_zones(&mut self) {
        for open in self.in_zone.iter_mut() {
            if let Some(visit) = open.take().and_then(|v| self.visits.get_mut(v)) {
                visit.left_at = Some(self.last_wall);
                visit.dwell_s = seconds(self.last_wall - visit.entered_at);
            }
        }
    }

    /// Goes on from where `newer` (a new track of the same vehicle) is: its line sides, its open zone
    /// visits (this one's were left when it was last seen), its box; and takes what it saw.
    fn take_over(&mut self, mut newer: Active) {
        self.lines = std::mem::take(&mut newer.lines);
        self.leave_zones();
        let offset = self.visits.len();
        self.in_zone = newer.in_zone.iter().map(|v| v.map(|i| i + offset)).collect();
        self.visits.append(&mut newer.visits);
        self.last_box = newer.last_box;
        self.moved = newer.moved;
        self.absorb(newer);
    }

    /// Takes in what another track of the same vehicle saw.
    fn absorb(&mut self, other: Active) {
        self.plates.absorb(other.plates);
        self.best_score = self.best_score.max(other.best_score);
        if other.last_seen_s > self.last_seen_s {
            self.last_seen_s = other.last_seen_s;
            self.last_wall = other.last_wall;
        }
        self.first_wall = self.first_wall.min(other.first_wall);
        for c in other.crossings {
            if !self.crossings.iter().any(|k| k.line == c.line) {
                self.direction = Some(c.direction);
                self.crossings.push(c);
            }
        }
        self.crossings.sort_by_key(|c| c.at);
        self.visits.extend(other.visits.into_iter().filter(|v| v.left_at.is_some()));
        if other.snapshot.as_ref().is_some_and(|o| self.snapshot.as_ref().is_none_or(|s| o.quality > s.quality)) {
            self.snapshot = other.snapshot;
        }
        self.from_plate |= other.from_plate;
    }

    /// Whether the plate or direction differs from what was last published (plate: new text, or
    /// confidence up by 0.05 or more).
    fn changed(&self) -> bool {
        let plate = self.plates.result();
        let plate_changed = match (&self.published.plate, &plate) {
            (None, Some(_)) => true,
            (Some((text, conf)), Some(p)) => *text != p.text || p.confidence >= conf + 0.05,
            _ => false,
        };
        plate_changed || self.published.direction != self.direction
    }
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
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
