//! The event builder over scripted frames.

use super::*;
use models::plates::{PlateColour, PlateRows};
use models::{BBox, ObjectClass};

use super::geometry::Direction;

type Event = ObjectEvent;

pub(crate) fn test_site() -> edge_config::Site {
    edge_config::Site { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into(), name: None }
}

fn builder(update_interval_s: f64) -> EventBuilder {
    let site = test_site();
    let ctx = Origin { site, camera: "gate".into() };
    let settings = BuilderSettings {
        tracker: TrackerSettings { frame_interval_s: 0.2, ..TrackerSettings::default() },
        update_interval_s,
        snapshot: SnapshotSettings {
            max_width: 320,
            max_bytes: 50_000,
            context: 0.2,
            scene_width: 0,
            scene_max_bytes: 0,
            scene_people: false,
            scene_vehicles: false,
            plate_crop: false,
        },
        snapshots: false,
        plate_memory_s: 10.0,
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

/// A plate read at `bbox` (frame pixels), not tied to a vehicle region.
fn plate_at(text: &str, bbox: BBox) -> PlateRead {
    PlateRead { bbox, region: None, ..plate(text, 0) }
}

fn ends_counted(events: &[Event]) -> Vec<&Event> {
    events.iter().filter(|e| e.phase == Phase::End && e.merged_into.is_none()).collect()
}

#[test]
fn a_vehicle_seen_with_a_second_box_on_part_of_it_makes_one_chain() {
    let mut b = builder(1.0);
    let frames: Vec<_> = (0..20)
        .map(|i| {
            let y2 = 400.0 + 25.0 * i as f32;
            let whole = det("truck", 200.0, y2, 400.0, 300.0);
            // From frame 6 the detector also boxes the cab: 70 % of it inside the whole (not folded per frame).
            let mut dets = vec![whole];
            if i >= 6 {
                dets.push(det("car", 420.0, y2 + 30.0, 230.0, 200.0));
            }
            let plates = vec![plate("苏ED51712", dets.len() - 1)];
            (dets, plates)
        })
        .collect();
    let events = run(&mut b, &frames);
    let ids: std::collections::BTreeSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "{:?}", events.iter().map(|e| (e.id.as_str(), e.phase)).collect::<Vec<_>>());
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].plate.as_ref().map(|p| p.text.as_str()), Some("苏ED51712"));
}

#[test]
fn two_chains_that_read_the_same_plate_in_the_same_place_merge() {
    let mut b = builder(1.0);
    // Two overlapping boxes (IoU about 0.3, neither inside the other) confirmed before any plate is read,
    // then both read the same plate.
    let frames: Vec<_> = (0..20)
        .map(|i| {
            let y2 = 400.0 + 25.0 * i as f32;
            let dets = vec![det("car", 200.0, y2, 300.0, 250.0), det("car", 350.0, y2, 300.0, 250.0)];
            let plates = if i >= 5 { vec![plate("皖A0C911", 0), plate("皖A0C911", 1)] } else { vec![] };
            (dets, plates)
        })
        .collect();
    let events = run(&mut b, &frames);
    let merged: Vec<&Event> = events.iter().filter(|e| e.merged_into.is_some()).collect();
    assert_eq!(merged.len(), 1, "the younger chain ends merged");
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1, "one passing");
    assert_eq!(merged[0].merged_into.as_deref(), Some(end[0].id.as_str()));
    assert!(merged[0].id > end[0].id, "the older chain carries on");
}

#[test]
fn two_vehicles_side_by_side_with_different_plates_stay_two_chains() {
    let mut b = builder(1.0);
    let frames: Vec<_> = (0..20)
        .map(|i| {
            let y2 = 400.0 + 25.0 * i as f32;
            let dets = vec![det("car", 100.0, y2, 380.0, 260.0), det("car", 470.0, y2, 380.0, 260.0)];
            (dets, vec![plate("皖A0C911", 0), plate("苏ED51712", 1)])
        })
        .collect();
    let events = run(&mut b, &frames);
    let end = ends_counted(&events);
    let mut plates: Vec<&str> = end.iter().filter_map(|e| e.plate.as_ref().map(|p| p.text.as_str())).collect();
    plates.sort();
    assert_eq!(plates, vec!["皖A0C911", "苏ED51712"]);
    assert!(events.iter().all(|e| e.merged_into.is_none()));
}

#[test]
fn a_vehicle_lost_for_a_moment_comes_back_as_the_same_passing_within_the_plate_memory() {
    let mut b = builder(1.0);
    // It drives in, stops (frames 4-9), and is hidden.
    let car = |i: usize| det("car", 300.0, 300.0 + 60.0 * i.min(4) as f32, 300.0, 250.0);
    let mut frames: Vec<(Vec<Detection>, Vec<PlateRead>)> = (0..10).map(|i| (vec![car(i)], vec![plate("苏ED51712", 0)])).collect();
    // Hidden (a lorry passes in front) for 4 s: longer than the 2 s lost timeout, inside the 10 s memory.
    frames.extend((0..20).map(|_| (vec![], vec![])));
    frames.extend((10..20).map(|i| (vec![car(i)], vec![plate("苏ED51712", 0)])));
    let events = run(&mut b, &frames);
    assert_eq!(events.iter().filter(|e| e.phase == Phase::New).count(), 1, "{:?}", phases(&events));
    assert!(events.iter().all(|e| e.merged_into.is_none()));
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1);
    assert!(end[0].ended_at.unwrap() - end[0].started_at >= chrono::Duration::seconds(7), "the passing spans both sightings");

    // Another plate in the same place is another vehicle.
    let mut b = builder(1.0);
    frames.truncate(30);
    frames.extend((10..20).map(|i| (vec![car(i)], vec![plate("皖A0C911", 0)])));
    let events = run(&mut b, &frames);
    assert_eq!(ends_counted(&events).len(), 2);
}

#[test]
fn a_plate_without_a_vehicle_box_starts_a_vehicle_chain() {
    let mut b = builder(1.0);
    // A car too close for the detector: only its plate is found, moving down the frame.
    let frames: Vec<_> = (0..15)
        .map(|i| {
            let y = 300.0 + 30.0 * i as f32;
            (vec![], vec![plate_at("川A572F4", BBox::new(420.0, y, 560.0, y + 45.0))])
        })
        .collect();
    let events = run(&mut b, &frames);
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1, "{:?}", phases(&events));
    assert!(end[0].from_plate);
    assert_eq!(end[0].class, ObjectClass::CAR);
    assert_eq!(end[0].plate.as_ref().map(|p| p.text.as_str()), Some("川A572F4"));
    assert!(events.iter().all(|e| e.from_plate));
}

#[test]
fn a_vehicle_lost_while_moving_ends_at_once() {
    let mut b = builder(1.0);
    let frames: Vec<_> = (0..10).map(|i| (vec![det("car", 300.0, 300.0 + 50.0 * i as f32, 300.0, 250.0)], vec![plate("苏ED51712", 0)])).collect();
    let events = run(&mut b, &frames);
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1);
    // Ended by the 2 s lost timeout (frame 9 + 2 s), not held for the plate memory.
    assert!(end[0].at - end[0].ended_at.unwrap() <= chrono::Duration::milliseconds(2400), "{:?}", end[0].at - end[0].ended_at.unwrap());
}

#[test]
fn a_moving_vehicle_the_tracker_loses_for_a_step_is_picked_up_again_by_its_plate() {
    let mut b = builder(1.0);
    // Driving down the frame; at frame 8 it jumps further than the tracker follows (frames analysed late
    // under load) and a new track starts there, reading the same plate.
    let car = |i: usize| det("car", 300.0, 300.0 + if i < 8 { 30.0 * i as f32 } else { 30.0 * i as f32 + 260.0 }, 300.0, 250.0);
    let frames: Vec<_> = (0..16).map(|i| (vec![car(i)], vec![plate("苏ED51712", 0)])).collect();
    let events = run(&mut b, &frames);
    let end = ends_counted(&events);
    assert_eq!(end.len(), 1, "{:?}", phases(&events));
    let merged: Vec<&Event> = events.iter().filter(|e| e.merged_into.is_some()).collect();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].merged_into.as_deref(), Some(end[0].id.as_str()));
    assert_eq!(end[0].plate.as_ref().map(|p| p.text.as_str()), Some("苏ED51712"));

    // Far from where it was lost, the same plate is another passing (a clip looping back).
    let mut b = builder(1.0);
    let far = |i: usize| det("car", if i < 8 { 100.0 } else { 650.0 }, 300.0 + 30.0 * (i % 8) as f32, 250.0, 250.0);
    let frames: Vec<_> = (0..16).map(|i| (vec![far(i)], vec![plate("苏ED51712", 0)])).collect();
    let events = run(&mut b, &frames);
    assert_eq!(ends_counted(&events).len(), 2, "{:?}", phases(&events));
    assert!(events.iter().all(|e| e.merged_into.is_none()));
}
