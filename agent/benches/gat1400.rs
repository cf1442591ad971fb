//! `make bench` (gat1400): what the GA/T 1400 uplink's pictures cost the camera thread, on a real 1080p
//! scene with its plate: the copy taken each time an object's best picture improves (snapshot only, the
//! baseline, vs snapshot + the frame + upright plate), and once per passing the JPEG encodes (the
//! snapshot alone vs with the scene scaled to 1280 and the plate) and the record (ids, codes, base64,
//! JSON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use edge_agent::events::snapshot::{self, SnapshotSettings};
use edge_agent::events::{Extras, FrameSize, ObjectEvent, Phase, Picture};
use edge_agent::gat1400::record::{self, Pictures};
use models::plates::{PlateColour, PlateRead, PlateRows};
use models::{BBox, BgrImage, ObjectClass};
use testkit::synthetic::median;

const WARMUP: usize = 5;
const RUNS: usize = 60;

fn median_ms(mut f: impl FnMut()) -> f64 {
    let mut times = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        f();
        if i >= WARMUP {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

fn main() {
    let frame = BgrImage::open(&testkit::data("scenes/hy_test_img.jpg")).unwrap();
    let view = frame.view();
    // The car and its (new-energy) plate as they lie in the scene.
    let car = BBox::new(560.0, 300.0, 1900.0, 1000.0);
    let plate = PlateRead {
        text: "苏ED51712".into(),
        confidence: 0.95,
        char_confidences: vec![],
        min_char_confidence: 0.9,
        layout: "new_energy",
        colour: PlateColour::Green,
        rows: PlateRows::Single,
        corners: [(1752.2, 785.9), (1867.1, 741.1), (1868.8, 811.4), (1753.8, 856.8)],
        bbox: BBox::new(1752.0, 741.0, 1869.0, 857.0),
        detector_score: 0.9,
        region: Some(0),
    };
    let base =
        SnapshotSettings { max_width: 640, max_bytes: 120_000, context: 0.15, scene_width: 0, scene_max_bytes: 0, scene_people: false, scene_vehicles: false, plate_crop: false };
    let gat = SnapshotSettings { scene_width: 1280, scene_max_bytes: 300_000, scene_vehicles: true, plate_crop: true, ..base };
    let now = Utc::now();

    // Each time the object's best picture improves.
    let off = median_ms(|| drop(snapshot::capture(&view, &car, Some(&plate), &base, now, 1.0)));
    let on = median_ms(|| drop(snapshot::capture(&view, &car, Some(&plate), &gat, now, 1.0)));
    println!("gat1400 capture per improvement: snapshot only {off:.2} ms, + frame copy + upright plate {on:.2} ms ({:.2}×)", on / off);

    // Once per passing.
    let candidate = snapshot::capture(&view, &car, Some(&plate), &gat, now, 1.0).unwrap();
    let snap_ms = median_ms(|| drop(snapshot::encode(&candidate, base.max_bytes)));
    let (frame_copy, frame_box) = candidate.scene.clone().unwrap();
    let (scene, scene_box) = snapshot::scaled_scene(&frame_copy.view(), &frame_box, gat.scene_width);
    let plate_img = candidate.plate.clone().unwrap();
    let extras_ms = median_ms(|| {
        let (scene, scene_box) = snapshot::scaled_scene(&frame_copy.view(), &frame_box, gat.scene_width);
        drop(snapshot::encode_image(&scene, scene_box, gat.scene_max_bytes));
        drop(snapshot::encode_image(&plate_img, BBox::new(0.0, 0.0, plate_img.width() as f32, plate_img.height() as f32), 64 << 10));
    });
    let snap = snapshot::encode(&candidate, base.max_bytes).unwrap();
    let s = snapshot::encode_image(&scene, scene_box, gat.scene_max_bytes).unwrap();
    let p = snapshot::encode_image(&plate_img, BBox::new(0.0, 0.0, plate_img.width() as f32, plate_img.height() as f32), 64 << 10).unwrap();
    println!(
        "gat1400 encodes per passing: snapshot {snap_ms:.2} ms ({} B), + scene scaled to {}x{} ({} B) and plate {}x{} ({} B) {extras_ms:.2} ms more ({:.2}×)",
        snap.jpeg.len(),
        s.width,
        s.height,
        s.jpeg.len(),
        p.width,
        p.height,
        p.jpeg.len(),
        (snap_ms + extras_ms) / snap_ms
    );

    // The record itself.
    let text = "[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n\n[gat1400]\nserver = \"http://127.0.0.1:9\"\ndevice_id = \"63010200001190000001\"\npassword = \"x\"\n";
    let config = edge_config::parse_str(text).unwrap();
    let settings = config.gat1400.clone().unwrap();
    let event = ObjectEvent {
        origin: Arc::new(edge_agent::topics::Origin { site: config.site.clone(), camera: "gate-in".into() }),
        id: "0193d9c0-0000-7000-8000-000000000001".into(),
        seq: 3,
        class: ObjectClass::CAR,
        phase: Phase::End,
        track_id: 1,
        started_at: now,
        ended_at: Some(now),
        at: now,
        direction: None,
        crossings: vec![],
        zones: vec![],
        score: 0.9,
        bbox: car,
        frame: FrameSize { width: 1920, height: 1080 },
        plate: None,
        snapshot: None,
        from_plate: false,
        merged_into: None,
    };
    let picture = |e: &snapshot::Encoded| Picture { jpeg: e.jpeg.clone(), width: e.width, height: e.height, object_box: e.object_box };
    let extras = Extras { scene: Some(picture(&s)), plate: Some(picture(&p)) };
    let pictures = Pictures { snapshot: Some((&snap.jpeg, snap.width, snap.height, snap.object_box)), extras: &extras };
    let mut bytes = 0;
    let record_ms = median_ms(|| bytes = record::build(&settings, &event, &pictures).unwrap().object.to_string().len());
    println!("gat1400 record per passing: {record_ms:.2} ms, {bytes} B of JSON with three pictures");
}
