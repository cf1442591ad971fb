//! What the builder knows about one object it follows ([`Active`]), the steps a matched detection takes it
//! through (movement, lines and zones, plate reads, the picture), and the messages made from it
//! ([`Emitter`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use models::plates::PlateRead;
use models::{BBox, BgrView, Detection, ObjectClass};

use super::geometry::{Direction, LineGeom, LineState, ZoneGeom};
use super::identity;
use super::object::{Crossing, EventOut, Extras, FrameSize, ObjectEvent, Phase, Picture, SnapshotInfo, ZoneVisit};
use super::plate_search::PlateSchedule;
use super::snapshot::{self, Candidate, SnapshotSettings};
use super::voting::PlateVotes;
use super::{BuilderSettings, FrameTime};
use crate::topics::Origin;

/// What is known about one object.
pub(super) struct Active {
    pub event_id: String,
    pub track_id: u64,
    pub confirmed: bool,
    seq: u32,
    pub class: ObjectClass,
    pub first_wall: DateTime<Utc>,
    pub last_wall: DateTime<Utc>,
    best_score: f32,
    pub last_box: BBox,
    lines: Vec<LineState>,
    crossings: Vec<Crossing>,
    direction: Option<Direction>,
    /// Per zone: index into `visits` of the open visit.
    pub in_zone: Vec<Option<usize>>,
    pub visits: Vec<ZoneVisit>,
    pub plates: PlateVotes,
    /// When it is searched for its plate again.
    pub plate_search: PlateSchedule,
    /// Plate and direction as last published.
    published: Published,
    pub last_update_s: f64,
    /// Stream time it was last seen.
    pub last_seen_s: f64,
    /// Where it was first seen.
    pub first_box: BBox,
    /// Where it last moved to, and when: a vehicle standing still before it was lost is remembered.
    pub moved: LastMove,
    snapshot: Option<Candidate>,
    /// Started from a plate no vehicle box covered.
    from_plate: bool,
    /// Ends as part of the chain with this event id.
    pub merged_into: Option<String>,
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
pub(super) struct LastMove {
    bbox: BBox,
    pub at_s: f64,
}

/// Where a box stands on the ground: the middle of its bottom edge.
fn anchor(b: &BBox) -> super::geometry::Point {
    (((b.x1 + b.x2) / 2.0) as f64, b.y2 as f64)
}

impl Active {
    /// A new object, first seen as `track` at `bbox`; `lines` and `zones` are how many the camera has.
    pub fn new(track: u64, class: ObjectClass, bbox: BBox, t: FrameTime, from_plate: bool, lines: usize, zones: usize) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            track_id: track,
            confirmed: false,
            seq: 0,
            class,
            first_wall: t.wall,
            last_wall: t.wall,
            best_score: 0.0,
            last_box: bbox,
            lines: vec![LineState::default(); lines],
            crossings: Vec::new(),
            direction: None,
            in_zone: vec![None; zones],
            visits: Vec::new(),
            plates: PlateVotes::default(),
            plate_search: PlateSchedule::new(&bbox),
            published: Published::default(),
            last_update_s: t.stream_s,
            last_seen_s: t.stream_s,
            first_box: bbox,
            moved: LastMove { bbox, at_s: t.stream_s },
            snapshot: None,
            from_plate,
            merged_into: None,
        }
    }

    /// Seen at `t` with a detection scoring `score`.
    pub fn seen(&mut self, t: FrameTime, score: f32) {
        self.last_wall = t.wall;
        self.last_seen_s = t.stream_s;
        self.best_score = self.best_score.max(score);
    }

    /// Its own track's detection (not a part's): its label and box, and whether it moved.
    pub fn moved_to(&mut self, class: ObjectClass, bbox: BBox, at_s: f64) {
        self.class = class;
        self.last_box = bbox;
        let ((x0, y0), (x1, y1)) = (self.moved.bbox.center(), bbox.center());
        if (x1 - x0).hypot(y1 - y0) > identity::STILL_SHIFT * self.moved.bbox.width().max(1.0) {
            self.moved = LastMove { bbox, at_s };
        }
    }

    /// Steps its ground point at `bbox` over the lines (a crossing sets its direction) and the zones (visits
    /// open, grow and close).
    pub fn walk(&mut self, lines: &[LineGeom], zones: &[ZoneGeom], bbox: &BBox, at: DateTime<Utc>) {
        let ground = anchor(bbox);
        for (geom, state) in lines.iter().zip(self.lines.iter_mut()) {
            if let Some(direction) = state.step(geom, ground) {
                self.direction = Some(direction);
                self.crossings.push(Crossing { line: geom.id.clone(), direction, at });
            }
        }
        for (zi, zone) in zones.iter().enumerate() {
            let inside = zone.contains(ground);
            match (inside, self.in_zone[zi]) {
                (true, None) => {
                    self.visits.push(ZoneVisit { zone: zone.id.clone(), entered_at: at, left_at: None, dwell_s: 0.0 });
                    self.in_zone[zi] = Some(self.visits.len() - 1);
                }
                (true, Some(v)) => self.visits[v].dwell_s = seconds(at - self.visits[v].entered_at),
                (false, Some(v)) => {
                    let visit = &mut self.visits[v];
                    visit.left_at = Some(at);
                    visit.dwell_s = seconds(at - visit.entered_at);
                    self.in_zone[zi] = None;
                }
                (false, None) => {}
            }
        }
    }

    /// Counts a vehicle's plate reads on a detection at `bbox`; its own track's search schedule moves on
    /// (a part's detection says nothing of when the vehicle is searched).
    pub fn read_plates(&mut self, reads: &[&PlateRead], bbox: &BBox, part: bool) {
        if !self.class.carries_plate() {
            return;
        }
        for p in reads {
            self.plates.add(p);
        }
        if !part {
            self.plate_search.seen(bbox, reads.iter().map(|p| p.confidence).reduce(f32::max));
        }
    }

    /// Keeps the picture of detection `d` in `view` if it is the best so far (size, score, sharpness, and
    /// how well its plate read).
    pub fn consider_picture(&mut self, view: &BgrView<'_>, d: &Detection, reads: &[&PlateRead], settings: &SnapshotSettings, at: DateTime<Utc>) {
        let best = reads.iter().max_by(|a, b| a.confidence.total_cmp(&b.confidence));
        let plate_conf = best.map(|p| p.confidence);
        let rough = snapshot::quality(&d.bbox, d.score, 400.0, plate_conf);
        // Sharpness only matters when the candidate could win on it.
        if self.snapshot.as_ref().is_none_or(|c| rough > c.quality) {
            let sharp = view.crop(d.bbox).map_or(0.0, |c| snapshot::sharpness(&c));
            let q = snapshot::quality(&d.bbox, d.score, sharp, plate_conf);
            if self.snapshot.as_ref().is_none_or(|c| q > c.quality) {
                // The whole frame only of the objects an uplink sends.
                let scene = if self.class.kind() == models::ObjectKind::Person { settings.scene_people } else { settings.scene_vehicles && self.class.carries_plate() };
                let settings = SnapshotSettings { scene_width: if scene { settings.scene_width } else { 0 }, ..*settings };
                self.snapshot = snapshot::capture(view, &d.bbox, best.copied(), &settings, at, q).or(self.snapshot.take());
            }
        }
    }

    /// Closes the open zone visits: it left them when it was last seen.
    pub fn leave_zones(&mut self) {
        for open in self.in_zone.iter_mut() {
            if let Some(visit) = open.take().and_then(|v| self.visits.get_mut(v)) {
                visit.left_at = Some(self.last_wall);
                visit.dwell_s = seconds(self.last_wall - visit.entered_at);
            }
        }
    }

    /// Goes on from where `newer` (a new track of the same vehicle) is: its line sides, its open zone
    /// visits (this one's were left when it was last seen), its box; and takes what it saw.
    pub fn take_over(&mut self, mut newer: Active) {
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
    pub fn absorb(&mut self, other: Active) {
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
    pub fn changed(&self) -> bool {
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

/// Makes the messages of one camera's objects.
pub(super) struct Emitter<'a> {
    pub origin: &'a Arc<Origin>,
    pub frame: FrameSize,
    pub settings: &'a BuilderSettings,
}

impl Emitter<'_> {
    /// The `end` of `a` (nothing for an object never confirmed). Gone while inside a zone: it left when it
    /// was last seen. `a` may live on afterwards (a chain merged into another).
    pub fn end(&self, a: &mut Active, t: FrameTime) -> Option<EventOut> {
        a.leave_zones();
        a.confirmed.then(|| self.emit(a, Phase::End, t))
    }

    /// Makes the message for one phase of `a`.
    pub fn emit(&self, a: &mut Active, phase: Phase, t: FrameTime) -> EventOut {
        a.seq += 1;
        let plate = if a.class.carries_plate() { a.plates.result() } else { None };
        a.published = Published { plate: plate.as_ref().map(|p| (p.text.clone(), p.confidence)), direction: a.direction };
        if phase == Phase::Update {
            a.last_update_s = t.stream_s;
        }
        let encoded = match (phase, &a.snapshot) {
            (Phase::End, Some(candidate)) => snapshot::encode(candidate, self.settings.snapshot.max_bytes).map(|e| (candidate, e)),
            _ => None,
        };
        let extras = match (phase, &a.snapshot) {
            (Phase::End, Some(candidate)) => extras(candidate, &self.settings.snapshot),
            _ => Extras::default(),
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
            origin: self.origin.clone(),
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
            frame: self.frame,
            plate,
            snapshot,
            from_plate: a.from_plate,
            merged_into: a.merged_into.clone(),
        };
        EventOut { event, snapshot: jpeg, extras }
    }
}

/// The scene and plate pictures of `candidate`, encoded.
fn extras(candidate: &Candidate, settings: &SnapshotSettings) -> Extras {
    let picture = |e: snapshot::Encoded| Picture { jpeg: e.jpeg, width: e.width, height: e.height, object_box: e.object_box };
    let scene = candidate
        .scene
        .as_ref()
        .and_then(|(frame, object_box)| {
            let (image, object_box) = snapshot::scaled_scene(&frame.view(), object_box, settings.scene_width);
            snapshot::encode_image(&image, object_box, settings.scene_max_bytes)
        })
        .map(picture);
    let plate =
        candidate.plate.as_ref().and_then(|image| snapshot::encode_image(image, BBox::new(0.0, 0.0, image.width() as f32, image.height() as f32), PLATE_MAX_BYTES)).map(picture);
    Extras { scene, plate }
}

/// Largest JPEG of a plate crop.
const PLATE_MAX_BYTES: usize = 64 << 10;
