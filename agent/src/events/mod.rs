//! From detections to events: one `new` … `update` … `end` chain per person or vehicle passing.
//!
//! Design: [`EventBuilder`] is a synchronous state machine per camera. Each analysed frame goes in with
//! its detections and plate reads; the tracker ([`crate::tracking`]) says which object each detection is,
//! and every object accumulates its label, best score, line crossings, zone visits, plate readings (voted,
//! [`voting`]) and best picture ([`snapshot`]). Out come events: `new` when the tracker confirms an object,
//! `update` when its plate or direction becomes known or changes (at most one per `update_interval` per
//! object; a change waiting for its slot goes out with the next update or the end), and `end` when the
//! object is gone, with the final plate and the snapshot. Time comes in with each frame, so the same frames
//! always give the same events.

pub mod geometry;
pub mod snapshot;
pub mod voting;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use edge_config::{Line, Zone};
use models::plates::PlateRead;
use models::{BBox, BgrView, Detection};

use crate::payload::{self, Crossing, Event, FrameSize, Grid, Phase, SnapshotRef, ZoneVisit};
use crate::tracking::{Observation, TrackEvent, Tracker, TrackerSettings};
use geometry::{Direction, LineGeom, LineState, ZoneGeom};
use snapshot::{Candidate, SnapshotSettings};
use voting::{PlateVotes, VotedPlate};

/// Labels whose plates are read and voted.
const VEHICLES: [&str; 4] = ["car", "bus", "truck", "motorcycle"];

/// Who is producing the events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventContext {
    pub site: String,
    pub grid: Grid,
    pub camera: String,
    /// `{prefix}/{site}/{camera}/snapshots`, when snapshots go to MQTT.
    pub snapshot_topic_base: Option<String>,
}

/// Builder tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct BuilderSettings {
    pub tracker: TrackerSettings,
    /// Minimum seconds between two `update`s of one object.
    pub update_interval_s: f64,
    pub snapshot: SnapshotSettings,
    /// Whether to keep pictures (analysis without snapshots skips the copying).
    pub snapshots: bool,
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

/// An event message, with the snapshot's JPEG bytes when the event carries one.
#[derive(Debug, Clone)]
pub struct EventOut {
    pub event: Event,
    pub snapshot: Option<Vec<u8>>,
}

/// What is known about one object.
struct Active {
    event_id: String,
    track_id: u64,
    confirmed: bool,
    seq: u32,
    label: &'static str,
    first_wall: DateTime<Utc>,
    last_wall: DateTime<Utc>,
    best_score: f32,
    last_box: BBox,
    lines: Vec<LineState>,
    crossings: Vec<Crossing>,
    direction: Option<Direction>,
    /// Per zone: index into `visits` of the open visit.
    in_zone: Vec<Option<usize>>,
    visits: Vec<(ZoneVisit, DateTime<Utc>)>,
    plates: PlateVotes,
    /// Plate and direction as last published.
    published: (Option<(String, f32)>, Option<Direction>),
    last_update_s: f64,
    snapshot: Option<Candidate>,
}

/// Lines and zones in pixels for one frame size.
type Geometry = ((u32, u32), Vec<LineGeom>, Vec<ZoneGeom>);

/// The event builder of one camera.
pub struct EventBuilder {
    ctx: EventContext,
    settings: BuilderSettings,
    tracker: Tracker,
    lines: Vec<Line>,
    zones: Vec<Zone>,
    geometry: Option<Geometry>,
    active: BTreeMap<u64, Active>,
    frame: FrameSize,
    last_time: Option<FrameTime>,
}

fn kind(label: &str) -> &'static str {
    if label == "person" {
        "person"
    } else {
        "vehicle"
    }
}

fn anchor(b: &BBox) -> geometry::Point {
    (((b.x1 + b.x2) / 2.0) as f64, b.y2 as f64)
}

impl EventBuilder {
    pub fn new(ctx: EventContext, settings: BuilderSettings, lines: &[Line], zones: &[Zone]) -> Self {
        let tracker = Tracker::new(settings.tracker.clone());
        Self {
            ctx,
            settings,
            tracker,
            lines: lines.to_vec(),
            zones: zones.to_vec(),
            geometry: None,
            active: BTreeMap::new(),
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
                let mut inside: Vec<(&str, &str)> = self
                    .active
                    .values()
                    .filter(|a| a.confirmed && a.label == "person")
                    .filter_map(|a| a.in_zone.get(zi).copied().flatten().map(|v| (a.visits[v].0.entered_at.as_str(), a.event_id.as_str())))
                    .collect();
                inside.sort();
                (zone.id.clone(), inside.into_iter().map(|(_, id)| id.to_string()).collect())
            })
            .collect()
    }

    /// Objects currently followed (confirmed or not).
    pub fn active(&self) -> usize {
        self.active.len()
    }

    /// Time of the last frame fed in.
    pub fn last_time(&self) -> Option<FrameTime> {
        self.last_time
    }

    fn geometry(&mut self, w: u32, h: u32) -> (&[LineGeom], &[ZoneGeom]) {
        if self.geometry.as_ref().is_none_or(|(size, ..)| *size != (w, h)) {
            let lines = self.lines.iter().map(|l| LineGeom::new(l, w, h)).collect();
            let zones = self.zones.iter().map(|z| ZoneGeom::new(z, w, h)).collect();
            self.geometry = Some(((w, h), lines, zones));
        }
        match &self.geometry {
            Some((_, l, z)) => (l, z),
            None => (&[], &[]),
        }
    }

    /// Feeds one analysed frame; returns the events it completes.
    pub fn observe(&mut self, input: &FrameInput<'_>) -> Vec<EventOut> {
        let t = input.time;
        self.last_time = Some(t);
        self.frame = FrameSize { width: input.width, height: input.height };
        let observations: Vec<Observation> = input.detections.iter().map(|d| Observation { bbox: d.bbox, score: d.score, label: d.label }).collect();
        let track_events = self.tracker.update(t.stream_s, input.width, input.height, &observations);
        let plates_by_detection = attribute_plates(input.detections, input.plates);
        self.geometry(input.width, input.height);
        let mut out = Vec::new();

        // Matches first, so `new` and `end` carry this frame's state.
        for e in &track_events {
            if let TrackEvent::Matched { id, detection } = e {
                self.matched(*id, *detection, input, &plates_by_detection);
            }
        }
        for e in &track_events {
            match e {
                TrackEvent::Confirmed { id } => {
                    if let Some(a) = self.active.get_mut(id) {
                        a.confirmed = true;
                        a.last_update_s = t.stream_s;
                        out.push(emit(&self.ctx, self.frame, &self.settings, a, Phase::New, t));
                    }
                }
                TrackEvent::Ended { id } => {
                    if let Some(o) = self.end(*id, t) {
                        out.push(o);
                    }
                }
                TrackEvent::Dropped { id } => {
                    self.active.remove(id);
                }
                TrackEvent::Matched { .. } | TrackEvent::Missed { .. } => {}
            }
        }
        // Updates whose slot has come.
        for a in self.active.values_mut() {
            if a.confirmed && t.stream_s - a.last_update_s >= self.settings.update_interval_s && a.changed() {
                out.push(emit(&self.ctx, self.frame, &self.settings, a, Phase::Update, t));
            }
        }
        out
    }

    fn matched(&mut self, id: u64, detection: usize, input: &FrameInput<'_>, plates: &BTreeMap<usize, Vec<&PlateRead>>) {
        let t = input.time;
        let Some(d) = input.detections.get(detection) else { return };
        let label = self.tracker.track(id).map_or(d.label, |tr| tr.label());
        let (n_lines, n_zones) = (self.lines.len(), self.zones.len());
        let a = self.active.entry(id).or_insert_with(|| Active {
            event_id: uuid::Uuid::now_v7().to_string(),
            track_id: id,
            confirmed: false,
            seq: 0,
            label,
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
            published: (None, None),
            last_update_s: t.stream_s,
            snapshot: None,
        });
        a.label = label;
        a.last_wall = t.wall;
        a.best_score = a.best_score.max(d.score);
        a.last_box = d.bbox;

        let ground = anchor(&d.bbox);
        if let Some((_, lines, zones)) = &self.geometry {
            for (geom, state) in lines.iter().zip(a.lines.iter_mut()) {
                if let Some(direction) = state.step(geom, ground) {
                    a.direction = Some(direction);
                    a.crossings.push(Crossing { line: geom.id.clone(), direction, at: payload::timestamp(t.wall) });
                }
            }
            for (zi, zone) in zones.iter().enumerate() {
                let inside = zone.contains(ground);
                match (inside, a.in_zone[zi]) {
                    (true, None) => {
                        a.visits.push((ZoneVisit { id: zone.id.clone(), entered_at: payload::timestamp(t.wall), left_at: None, dwell_s: 0.0 }, t.wall));
                        a.in_zone[zi] = Some(a.visits.len() - 1);
                    }
                    (true, Some(v)) => a.visits[v].0.dwell_s = seconds(t.wall - a.visits[v].1),
                    (false, Some(v)) => {
                        let (visit, entered) = &mut a.visits[v];
                        visit.left_at = Some(payload::timestamp(t.wall));
                        visit.dwell_s = seconds(t.wall - *entered);
                        a.in_zone[zi] = None;
                    }
                    (false, None) => {}
                }
            }
        }

        let reads = plates.get(&detection).map(Vec::as_slice).unwrap_or_default();
        if VEHICLES.contains(&label) {
            for p in reads {
                a.plates.add(p);
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
        // Gone while inside a zone: it left when it was last seen.
        for open in a.in_zone.iter_mut() {
            if let Some(v) = open.take() {
                let (visit, entered) = &mut a.visits[v];
                visit.left_at = Some(payload::timestamp(a.last_wall));
                visit.dwell_s = seconds(a.last_wall - *entered);
            }
        }
        a.confirmed.then(|| emit(&self.ctx, self.frame, &self.settings, &mut a, Phase::End, t))
    }

    /// Ends every object (end of stream, shutdown, a gap in the video).
    pub fn finish(&mut self) -> Vec<EventOut> {
        let t = self.last_time.unwrap_or(FrameTime { stream_s: 0.0, wall: Utc::now() });
        self.tracker.finish();
        let ids: Vec<u64> = self.active.keys().copied().collect();
        ids.into_iter().filter_map(|id| self.end(id, t)).collect()
    }
}

/// Makes the message for one phase of `a`.
fn emit(ctx: &EventContext, frame: FrameSize, settings: &BuilderSettings, a: &mut Active, phase: Phase, t: FrameTime) -> EventOut {
    let max_bytes = settings.snapshot.max_bytes;
    a.seq += 1;
    let plate = if VEHICLES.contains(&a.label) { a.plates.result() } else { None };
    a.published = (plate.as_ref().map(|p| (p.text.clone(), p.confidence)), a.direction);
    if phase == Phase::Update {
        a.last_update_s = t.stream_s;
    }
    let (snapshot_ref, jpeg) = match (phase, &a.snapshot) {
        (Phase::End, Some(candidate)) => match snapshot::encode(candidate, max_bytes) {
            Some(e) => (
                Some(SnapshotRef {
                    id: a.event_id.clone(),
                    topic: ctx.snapshot_topic_base.as_ref().map(|b| format!("{b}/{}", a.event_id)),
                    file: None,
                    content_type: "image/jpeg",
                    bytes: e.jpeg.len(),
                    width: e.width,
                    height: e.height,
                    bbox: e.object_box.to_array(),
                    frame_region: candidate.frame_region.to_array(),
                    taken_at: payload::timestamp(candidate.taken_at),
                    sha256: e.sha256,
                }),
                Some(e.jpeg),
            ),
            None => (None, None),
        },
        _ => (None, None),
    };
    let event = Event {
        schema: payload::EVENT_SCHEMA,
        id: a.event_id.clone(),
        seq: a.seq,
        site: ctx.site.clone(),
        grid: ctx.grid.clone(),
        camera: ctx.camera.clone(),
        kind: kind(a.label),
        phase,
        label: a.label,
        track_id: a.track_id,
        started_at: payload::timestamp(a.first_wall),
        ended_at: (phase == Phase::End).then(|| payload::timestamp(a.last_wall)),
        ts: payload::timestamp(t.wall),
        direction: a.direction,
        crossings: a.crossings.clone(),
        zones: a.visits.iter().map(|(v, _)| v.clone()).collect(),
        score: payload::round3(a.best_score),
        bbox: a.last_box.to_array(),
        frame,
        plate: plate.map(round_plate),
        snapshot: snapshot_ref,
    };
    EventOut { event, snapshot: jpeg }
}

impl Active {
    /// Whether the plate or direction differs from what was last published (plate: new text, or
    /// confidence up by 0.05 or more).
    fn changed(&self) -> bool {
        let plate = self.plates.result();
        let plate_changed = match (&self.published.0, &plate) {
            (None, Some(_)) => true,
            (Some((text, conf)), Some(p)) => *text != p.text || p.confidence >= conf + 0.05,
            _ => false,
        };
        plate_changed || self.published.1 != self.direction
    }
}

fn round_plate(mut p: VotedPlate) -> VotedPlate {
    p.confidence = payload::round3(p.confidence);
    p.min_char_confidence = payload::round3(p.min_char_confidence);
    p
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    payload::round2(d.num_milliseconds() as f64 / 1000.0)
}

/// Plates per vehicle detection: by the region the recogniser reported, else the vehicle box containing
/// the plate's centre.
fn attribute_plates<'a>(detections: &[Detection], plates: &'a [PlateRead]) -> BTreeMap<usize, Vec<&'a PlateRead>> {
    let mut by = BTreeMap::<usize, Vec<&PlateRead>>::new();
    for p in plates {
        let owner = p.region.or_else(|| {
            let (cx, cy) = p.bbox.center();
            detections
                .iter()
                .enumerate()
                .filter(|(_, d)| VEHICLES.contains(&d.label) && cx >= d.bbox.x1 && cx <= d.bbox.x2 && cy >= d.bbox.y1 && cy <= d.bbox.y2)
                .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
                .map(|(i, _)| i)
        });
        if let Some(i) = owner {
            by.entry(i).or_default().push(p);
        }
    }
    by
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::plates::{PlateColour, PlateRows};

    fn builder(update_interval_s: f64) -> EventBuilder {
        let ctx = EventContext {
            site: "a/b/c/d/e".into(),
            grid: Grid { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into() },
            camera: "gate".into(),
            snapshot_topic_base: Some("checkpoint/a/b/c/d/e/gate/snapshots".into()),
        };
        let settings = BuilderSettings {
            tracker: TrackerSettings { frame_interval_s: 0.2, ..TrackerSettings::default() },
            update_interval_s,
            snapshot: SnapshotSettings { max_width: 320, max_bytes: 50_000, context: 0.2 },
            snapshots: false,
        };
        // The village is below the line at 60 % of the height.
        let line = Line { id: "gate".into(), points: [[0.0, 0.6], [1.0, 0.6]], in_side: [0.5, 0.9] };
        let zone = Zone { id: "lane".into(), points: vec![[0.0, 0.7], [1.0, 0.7], [1.0, 1.0], [0.0, 1.0]] };
        EventBuilder::new(ctx, settings, &[line], &[zone])
    }

    fn det(label: &'static str, x: f32, y2: f32, w: f32, h: f32) -> Detection {
        Detection { class_id: 0, label, score: 0.9, bbox: BBox::new(x, y2 - h, x + w, y2) }
    }

    fn plate(text: &str, vehicle: usize) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence: 0.95,
            char_confidences: vec![0.95; text.chars().count()],
            min_char_confidence: 0.95,
            layout: "standard",
            colour: PlateColour::Green,
            rows: PlateRows::Single,
            corners: [(0.0, 0.0); 4],
            bbox: BBox::default(),
            detector_score: 0.9,
            region: Some(vehicle),
        }
    }

    fn time(i: usize) -> FrameTime {
        let start = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        FrameTime { stream_s: i as f64 * 0.2, wall: start + chrono::Duration::milliseconds(200 * i as i64) }
    }

    /// Feeds frames (detections, plates) at 5 fps and then an empty tail; returns every event.
    fn run(b: &mut EventBuilder, frames: &[(Vec<Detection>, Vec<PlateRead>)]) -> Vec<Event> {
        let mut out = Vec::new();
        let tail = vec![(Vec::new(), Vec::new()); 15];
        for (i, (dets, plates)) in frames.iter().chain(tail.iter()).enumerate() {
            let input = FrameInput { time: time(i), width: 1000, height: 1000, view: None, detections: dets, plates };
            out.extend(b.observe(&input).into_iter().map(|o| o.event));
        }
        out.extend(b.finish().into_iter().map(|o| o.event));
        out
    }

    fn phases(events: &[Event]) -> Vec<(Phase, Option<Direction>)> {
        events.iter().map(|e| (e.phase, e.direction)).collect()
    }

    #[test]
    fn a_car_driving_in_makes_one_chain_with_direction_and_plate() {
        let mut b = builder(1.0);
        // Ground point from y=400 to y=960 over 15 frames: crosses the line (600) and enters the zone (700).
        let frames: Vec<_> = (0..15).map(|i| (vec![det("car", 300.0, 400.0 + 40.0 * i as f32, 300.0, 250.0)], vec![plate("苏ED51712", 0)])).collect();
        let events = run(&mut b, &frames);
        let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "one chain: {:?}", phases(&events));
        assert_eq!(events.first().unwrap().phase, Phase::New);
        assert_eq!(events.last().unwrap().phase, Phase::End);
        assert_eq!(events.iter().filter(|e| e.phase == Phase::End).count(), 1);
        let end = events.last().unwrap();
        assert_eq!(end.direction, Some(Direction::In));
        assert_eq!(end.kind, "vehicle");
        let p = end.plate.as_ref().unwrap();
        assert_eq!(p.text, "苏ED51712");
        assert_eq!(p.reads, p.votes);
        assert!(p.reads >= 10);
        assert_eq!(end.crossings.len(), 1);
        assert_eq!(end.zones.len(), 1);
        assert!(end.zones[0].dwell_s > 0.0);
        assert!(end.ended_at.is_some());
        // seq counts phases.
        let seqs: Vec<u32> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=events.len() as u32).collect::<Vec<_>>());
        // The plate and the direction each triggered an update before the end.
        assert!(events.iter().any(|e| e.phase == Phase::Update && e.direction == Some(Direction::In)), "{:?}", phases(&events));
    }

    #[test]
    fn driving_out_reverses_the_direction() {
        let mut b = builder(1.0);
        let frames: Vec<_> = (0..15).map(|i| (vec![det("car", 300.0, 960.0 - 40.0 * i as f32, 300.0, 250.0)], vec![])).collect();
        let events = run(&mut b, &frames);
        let end = events.last().unwrap();
        assert_eq!(end.phase, Phase::End);
        assert_eq!(end.direction, Some(Direction::Out));
        assert!(end.plate.is_none(), "never read: plate null");
    }

    #[test]
    fn a_person_missed_for_a_few_frames_stays_one_event() {
        let mut b = builder(1.0);
        let frames: Vec<_> = (0..20)
            .map(|i| {
                if (7..10).contains(&i) {
                    (vec![], vec![])
                } else {
                    (vec![det("person", 100.0 + 30.0 * i as f32, 500.0 + 20.0 * i as f32, 60.0, 180.0)], vec![])
                }
            })
            .collect();
        let events = run(&mut b, &frames);
        let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "{:?}", phases(&events));
        assert_eq!(events.iter().filter(|e| e.phase == Phase::New).count(), 1);
        assert_eq!(events.iter().filter(|e| e.phase == Phase::End).count(), 1);
        assert!(events.iter().all(|e| e.plate.is_none() && e.kind == "person"));
    }

    #[test]
    fn updates_are_rate_limited() {
        let mut b = builder(10.0);
        // Plate reads change every frame; with a 10 s interval no update fits in 3 s.
        let texts = ["皖A0C911", "皖A0C917", "皖A0C911"];
        let frames: Vec<_> = (0..15).map(|i| (vec![det("car", 300.0, 500.0, 300.0, 250.0)], vec![plate(texts[i % 3], 0)])).collect();
        let events = run(&mut b, &frames);
        assert_eq!(events.iter().filter(|e| e.phase == Phase::Update).count(), 0, "{:?}", phases(&events));
        let end = events.last().unwrap();
        assert_eq!(end.plate.as_ref().unwrap().text, "皖A0C911");
    }

    #[test]
    fn two_vehicles_one_after_another_make_two_chains_with_their_plates() {
        let mut b = builder(1.0);
        let mut frames: Vec<_> = (0..12).map(|i| (vec![det("car", 300.0, 400.0 + 50.0 * i as f32, 300.0, 250.0)], vec![plate("苏ED51712", 0)])).collect();
        frames.extend((0..15).map(|_| (vec![], vec![])));
        frames.extend((0..12).map(|i| (vec![det("car", 300.0, 400.0 + 50.0 * i as f32, 300.0, 250.0)], vec![plate("藏DT5022", 0)])));
        let events = run(&mut b, &frames);
        let ends: Vec<&Event> = events.iter().filter(|e| e.phase == Phase::End).collect();
        assert_eq!(ends.len(), 2);
        assert_eq!(ends[0].plate.as_ref().unwrap().text, "苏ED51712");
        assert_eq!(ends[1].plate.as_ref().unwrap().text, "藏DT5022");
        assert_ne!(ends[0].id, ends[1].id);
        assert!(ends.iter().all(|e| e.direction == Some(Direction::In)));
    }
}
