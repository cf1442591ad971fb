//! The event builder over scripted frames.

use super::*;
use crate::topics::Topics;
use models::plates::{PlateColour, PlateRows};

type Event = ObjectEvent;

pub(crate) fn test_site() -> edge_config::Site {
    edge_config::Site { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into(), name: None }
}

fn builder(update_interval_s: f64) -> EventBuilder {
    let site = test_site();
    let ctx = Origin { topics: Some(Topics::new("checkpoint", &site)), site, camera: "gate".into() };
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
    Detection { class: ObjectClass::from_label(label).unwrap_or(ObjectClass::PERSON), score: 0.9, bbox: BBox::new(x, y2 - h, x + w, y2) }
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
    assert_eq!(end.kind(), ObjectKind::Vehicle);
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
        .map(|i| if (7..10).contains(&i) { (vec![], vec![]) } else { (vec![det("person", 100.0 + 30.0 * i as f32, 500.0 + 20.0 * i as f32, 60.0, 180.0)], vec![]) })
        .collect();
    let events = run(&mut b, &frames);
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "{:?}", phases(&events));
    assert_eq!(events.iter().filter(|e| e.phase == Phase::New).count(), 1);
    assert_eq!(events.iter().filter(|e| e.phase == Phase::End).count(), 1);
    assert!(events.iter().all(|e| e.plate.is_none() && e.kind() == ObjectKind::Person));
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
