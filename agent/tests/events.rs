//! Events end to end: golden payloads from a scripted chain, and real clips built from the shared stills
//! analysed with `edge-agent analyze` (the daemon's pipeline and tracker).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::{config, file_url, run, stderr, stdout, Cam};
use edge_agent::events::{BuilderSettings, EventBuilder, FrameInput, FrameTime};
use edge_agent::payload::Event;
use edge_agent::topics::{Origin, Topics};
use edge_config::{Events, Line, Site, Zone};
use models::plates::{PlateColour, PlateRead, PlateRows};
use models::{BBox, Detection, ObjectClass};
use serde_json::Value;
use testkit::schemas::assert_valid;

/// A horizontal line at 75 % of the height; the village is below it.
const LINE_DOWN_IS_IN: &str = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

fn analyse(clip: &std::path::Path, camera_extra: &str, args: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(clip), extra: camera_extra }], "");
    let mut all = vec!["analyze", "--config", cfg.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    all.push(clip.to_str().unwrap());
    let out = run(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in events.iter().filter(|e| e.get("phase").is_some()) {
        assert_valid("event.v1.json", e);
    }
    events
}

/// Events grouped by id, in order.
fn chains(events: &[Value]) -> Vec<Vec<Value>> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for e in events {
        let id = e["id"].as_str().unwrap().to_string();
        if !by.contains_key(&id) {
            order.push(id.clone());
        }
        by.entry(id).or_default().push(e.clone());
    }
    order.into_iter().map(|id| by.remove(&id).unwrap()).collect()
}

fn assert_chain_shape(chain: &[Value]) {
    let phases: Vec<&str> = chain.iter().map(|e| e["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"new"), "{phases:?}");
    assert_eq!(phases.last(), Some(&"end"), "{phases:?}");
    assert!(phases[1..phases.len() - 1].iter().all(|p| *p == "update"), "{phases:?}");
    let seqs: Vec<u64> = chain.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=chain.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_car_driving_in_across_the_line_is_one_chain_with_its_plate_and_direction() {
    let events = analyse(&common::scenes::car_crossing(true), LINE_DOWN_IS_IN, &[]);
    let chains = chains(&events);
    assert_eq!(chains.len(), 1, "exactly one chain: {events:#?}");
    assert_chain_shape(&chains[0]);
    let end = chains[0].last().unwrap();
    assert_eq!(end["type"], "vehicle");
    assert_eq!(end["label"], "car");
    assert_eq!(end["plate"]["text"], "苏ED51712");
    assert_eq!(end["plate"]["color"], "green");
    assert!(end["plate"]["reads"].as_u64().unwrap() >= 5, "{end}");
    assert_eq!(end["direction"], "in");
    assert_eq!(end["crossings"][0]["line"], "gate");
}

#[test]
fn the_same_car_driving_out_is_one_chain_going_out() {
    let events = analyse(&common::scenes::car_crossing(false), LINE_DOWN_IS_IN, &[]);
    let chains = chains(&events);
    assert_eq!(chains.len(), 1, "{events:#?}");
    assert_chain_shape(&chains[0]);
    let end = chains[0].last().unwrap();
    assert_eq!(end["direction"], "out");
    assert_eq!(end["plate"]["text"], "苏ED51712");
}

#[test]
fn a_car_missed_for_several_frames_is_still_one_chain() {
    let events = analyse(&common::scenes::car_crossing_with_gap(), LINE_DOWN_IS_IN, &["--detections"]);
    let frames_without_car = events.iter().filter(|e| e["kind"] == "object").map(|e| e["frame"].as_u64().unwrap()).collect::<std::collections::BTreeSet<_>>();
    let missing = (1..=15u64).filter(|f| !frames_without_car.contains(f)).count();
    assert!(missing >= 2, "the clip should make the detector miss the car for a few frames");
    let events: Vec<Value> = events.into_iter().filter(|e| e.get("phase").is_some()).collect();
    let chains = chains(&events);
    assert_eq!(chains.len(), 1, "flicker split the chain: {events:#?}");
    assert_chain_shape(&chains[0]);
    assert_eq!(chains[0].last().unwrap()["direction"], "in");
}

#[test]
fn two_cars_one_after_another_are_two_chains_with_their_plates() {
    let events = analyse(&common::scenes::two_cars(), LINE_DOWN_IS_IN, &[]);
    let chains = chains(&events);
    assert_eq!(chains.len(), 2, "{events:#?}");
    let plates: Vec<&str> = chains.iter().map(|c| c.last().unwrap()["plate"]["text"].as_str().unwrap()).collect();
    assert_eq!(plates, ["苏ED51712", "京PL3N67"]);
    for c in &chains {
        assert_chain_shape(c);
        assert_eq!(c.last().unwrap()["direction"], "in");
    }
}

/// Chains that are passings of their own (not merged into another).
fn passings(events: &[Value]) -> Vec<Vec<Value>> {
    chains(events).into_iter().filter(|c| c.last().is_some_and(|e| e["phase"] == "end" && e.get("merged_into").is_none())).collect()
}

#[test]
fn two_cars_side_by_side_stay_two_chains_with_their_plates() {
    let events = analyse(&common::scenes::two_cars_side_by_side(), LINE_DOWN_IS_IN, &[]);
    let passings = passings(&events);
    let mut plates: Vec<&str> = passings.iter().filter_map(|c| c.last().unwrap()["plate"]["text"].as_str()).collect();
    plates.sort();
    assert_eq!(plates, ["京PL3N67", "苏ED51712"], "{events:#?}");
    assert_eq!(passings.len(), 2);
}

fn iou(a: &Value, b: &Value) -> f64 {
    let (a, b): (Vec<f64>, Vec<f64>) = (a.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect(), b.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect());
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let area = |r: &[f64]| (r[2] - r[0]) * (r[3] - r[1]);
    w * h / (area(&a) + area(&b) - w * h)
}

#[test]
fn a_bus_the_detector_boxes_twice_is_one_chain_with_its_plate() {
    let events = analyse(&common::scenes::bus_boxed_twice(), LINE_DOWN_IS_IN, &["--detections"]);
    // The detector really does box it twice (bus and truck, nearly the same box) in many frames.
    let mut frames: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for o in events.iter().filter(|e| e["kind"] == "object" && ["car", "truck", "bus"].contains(&e["label"].as_str().unwrap_or("")) && e["score"].as_f64().unwrap() >= 0.5) {
        frames.entry(o["frame"].as_u64().unwrap()).or_default().push(o["box"].clone());
    }
    let doubled = frames.values().filter(|boxes| boxes.iter().enumerate().any(|(i, a)| boxes[i + 1..].iter().any(|b| iou(a, b) >= 0.7))).count();
    assert!(doubled >= 3, "frames with a vehicle boxed twice, both confident: {doubled}");
    let chains: Vec<Value> = events.iter().filter(|e| e.get("phase").is_some()).cloned().collect();
    let passings = passings(&chains);
    let bus: Vec<&Vec<Value>> = passings.iter().filter(|c| c.last().unwrap()["plate"]["text"] == "湘A97971").collect();
    assert_eq!(bus.len(), 1, "{chains:#?}");
    assert_eq!(bus[0].last().unwrap()["plate"]["color"], "yellow");
    assert_chain_shape(bus[0]);
    // Nothing else passing reads its plate.
    assert!(passings.iter().filter(|c| c.iter().any(|e| e["plate"]["text"] == "湘A97971")).count() == 1, "{chains:#?}");
}

#[test]
fn a_car_hidden_for_a_moment_where_it_stopped_stays_one_passing() {
    let clip = common::scenes::car_stopping_hidden_and_leaving();
    let run = |events_section: &str| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(&clip), extra: LINE_DOWN_IS_IN }], events_section);
        let out = run(&["analyze", "--config", cfg.to_str().unwrap(), "--json", clip.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let events: Vec<Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        for e in &events {
            assert_valid("event.v1.json", e);
        }
        passings(&events).into_iter().filter(|c| c[0]["type"] == "vehicle").collect::<Vec<_>>()
    };
    // With the plate memory (the default), one passing from driving in to driving out.
    let vehicles = run("");
    assert_eq!(vehicles.len(), 1, "{vehicles:#?}");
    let end = vehicles[0].last().unwrap();
    assert_eq!(end["plate"]["text"], "苏ED51712");
    let span = end["ended_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap() - end["started_at"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
    assert!(span >= chrono::Duration::seconds(8), "the passing spans both sightings: {span:?}");
    assert_eq!(vehicles[0].iter().filter(|e| e["phase"] == "new").count(), 1);
    // Without it, the same car makes two passings.
    let vehicles = run("[events]\nplate_memory_secs = 0\n");
    assert_eq!(vehicles.len(), 2, "{vehicles:#?}");
}

#[test]
fn a_car_too_close_for_the_detector_is_found_by_its_plate() {
    let clip = common::scenes::close_up_car();
    // Searching only inside detected vehicles, the passing is lost: the detector never boxes the car.
    let events = analyse(&clip, LINE_DOWN_IS_IN, &["--plates", "vehicles"]);
    assert!(passings(&events).iter().all(|c| c[0]["type"] != "vehicle"), "{events:#?}");
    // The default `auto` mode searches the frame when no vehicle is seen and starts the vehicle from its plate.
    let events = analyse(&clip, LINE_DOWN_IS_IN, &[]);
    let vehicles: Vec<Vec<Value>> = passings(&events).into_iter().filter(|c| c[0]["type"] == "vehicle").collect();
    assert_eq!(vehicles.len(), 1, "{events:#?}");
    let end = vehicles[0].last().unwrap();
    assert_eq!(end["plate"]["text"], "浙A13840");
    assert_eq!(end["plate"]["color"], "yellow");
    assert_eq!(end["started_from"], "plate");
    assert_eq!(end["direction"], "in");
    assert_chain_shape(&vehicles[0]);
}

#[test]
fn people_walking_across_a_line_get_person_events_with_directions() {
    // A vertical line in the middle; the village is to the right.
    let line = "[[cameras.lines]]\nid = \"path\"\npoints = [[0.5, 0.0], [0.5, 1.0]]\nin_side = [0.9, 0.5]\n";
    let events = analyse(&common::scenes::people_walking(), line, &[]);
    let chains = chains(&events);
    assert_eq!(chains.len(), 2, "{events:#?}");
    for c in &chains {
        assert_chain_shape(c);
        let end = c.last().unwrap();
        assert_eq!(end["type"], "person");
        assert_eq!(end["direction"], "in");
        assert!(end["plate"].is_null());
    }
}

#[test]
fn snapshots_are_written_and_described() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snaps");
    let events = analyse(&common::scenes::car_crossing(true), LINE_DOWN_IS_IN, &["--snapshots", snaps.to_str().unwrap()]);
    let end = events.iter().find(|e| e["phase"] == "end").unwrap();
    let s = &end["snapshot"];
    assert_valid("snapshot.v1.json", s);
    let bytes = std::fs::read(s["file"].as_str().unwrap()).unwrap();
    assert_eq!(bytes.len() as u64, s["bytes"].as_u64().unwrap());
    assert!(bytes.len() <= 200 * 1024);
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), s["sha256"].as_str().unwrap());
    let img = image::load_from_memory(&bytes).unwrap();
    assert_eq!((img.width(), img.height()), (s["width"].as_u64().unwrap() as u32, s["height"].as_u64().unwrap() as u32));
    assert!(img.width() <= 640);
    assert!(events.iter().filter(|e| e["phase"] != "end").all(|e| e["snapshot"].is_null()));
}

// --- golden payloads -----------------------------------------------------------------------------------

fn golden_site() -> Site {
    Site { city: "xining".into(), district: "chengzhong".into(), town: "nanchuan".into(), village: "xiaozhuang".into(), checkpoint: "east-gate".into(), name: None }
}

fn golden_builder() -> EventBuilder {
    let ctx = Origin { site: golden_site(), camera: "gate-in".into() };
    let line = Line { id: "gate".into(), points: [[0.0, 0.75], [1.0, 0.75]], in_side: [0.5, 0.95] };
    let zone = Zone { id: "lane".into(), points: vec![[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]] };
    EventBuilder::new(ctx, BuilderSettings::from_config(&Events::default(), 5.0), &[line], &[zone])
}

#[test]
fn event_payloads_match_the_golden_chain() {
    let mut b = golden_builder();
    let topics = Topics::new("checkpoint", &golden_site());
    let start: DateTime<Utc> = "2026-11-28T08:00:00Z".parse().unwrap();
    let mut lines = Vec::new();
    for i in 0..30usize {
        let time = FrameTime { stream_s: i as f64 * 0.2, wall: start + chrono::Duration::milliseconds(200 * i as i64) };
        let (dets, plates) = if i < 15 {
            let y2 = 500.0 + 35.0 * i as f32;
            let det = Detection { class: ObjectClass::CAR, score: 0.9, bbox: BBox::new(600.0, y2 - 400.0, 1300.0, y2) };
            let plate = PlateRead {
                text: "苏ED51712".into(),
                confidence: 0.97,
                char_confidences: vec![0.97; 8],
                min_char_confidence: 0.97,
                layout: "new-energy-small",
                colour: PlateColour::Green,
                rows: PlateRows::Single,
                corners: [(900.0, y2 - 120.0), (1010.0, y2 - 120.0), (1010.0, y2 - 85.0), (900.0, y2 - 85.0)],
                bbox: BBox::new(900.0, y2 - 120.0, 1010.0, y2 - 85.0),
                detector_score: 0.9,
                region: Some(0),
            };
            (vec![det], vec![plate])
        } else {
            (vec![], vec![])
        };
        let input = FrameInput { time, width: 1920, height: 1080, view: None, detections: &dets, plates: &plates };
        lines.extend(b.observe(&input).into_iter().map(|o| Event::new(&o.event, Some(&topics))));
    }
    lines.extend(b.finish().into_iter().map(|o| Event::new(&o.event, Some(&topics))));
    let id = lines[0].id.clone();
    let mut text = String::new();
    for e in lines {
        assert_valid("event.v1.json", &serde_json::to_value(&e).unwrap());
        assert_eq!(e.id, id, "the id is stable across phases");
        // The id is a fresh UUIDv7; everything else is fixed by the input.
        text.push_str(&serde_json::to_string(&e).unwrap().replace(&id, "0193d9c0-0000-7000-8000-000000000000"));
        text.push('\n');
    }
    let golden_path = testkit::workspace_dir().join("agent/tests/golden/event_chain.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&golden_path).unwrap();
    assert_eq!(text, golden, "payloads changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff");
    // The duty desk reads the events log back into the same type after a restart: nothing is lost or changed.
    for line in golden.lines() {
        let back: Event = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), line);
    }
}
