//! Motion gating loses no passing: clips of a quiet gate — a person walking in after a long still
//! stretch, a car creeping in slowly, a car waiting in view for a minute, and a minute of sensor noise and
//! light drift with nothing passing — analysed with `edge-agent analyze` with gating on (the default) and
//! off. Every passing of the ungated run is there in the gated run, with the same plate; the still clip
//! produces nothing and leaves the detector mostly idle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, file_url, run, stderr, stdout, Cam};
use serde_json::Value;

struct Run {
    /// `end` events: (type, plate text, seconds from first seen to last seen).
    ends: Vec<(String, Option<String>, f64)>,
    /// Frames the detector ran on, of those sampled.
    analysed: u64,
    sampled: u64,
}

fn analyse(clip: &std::path::Path, motion: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(clip), extra: "detect_fps = 5" }], "");
    let out = run(&["analyze", "--config", cfg.to_str().unwrap(), "--json", "--motion", motion, clip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let line = err.lines().find(|l| l.starts_with("detector ran on")).unwrap_or_else(|| panic!("{err}"));
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let ends = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["phase"] == "end")
        .map(|e| {
            let t = |k: &str| chrono::DateTime::parse_from_rfc3339(e[k].as_str().unwrap()).unwrap();
            let span = (t("ended_at") - t("started_at")).num_milliseconds() as f64 / 1000.0;
            (e["type"].as_str().unwrap().to_string(), e["plate"]["text"].as_str().map(str::to_string), span)
        })
        .collect();
    Run { ends, analysed: numbers[0], sampled: numbers[1] }
}

/// The passings of both runs: same types and plates, in order.
fn same_passings(gated: &Run, every_frame: &Run) {
    let strip = |r: &Run| r.ends.iter().map(|(t, p, _)| (t.clone(), p.clone())).collect::<Vec<_>>();
    assert_eq!(strip(gated), strip(every_frame), "gated {:?} / every frame {:?}", gated.ends, every_frame.ends);
}

#[test]
fn a_person_walking_in_after_a_long_still_stretch_is_not_missed() {
    let clip = common::scenes::person_after_still();
    let (gated, every) = (analyse(&clip, "on"), analyse(&clip, "off"));
    same_passings(&gated, &every);
    assert_eq!(gated.ends.iter().filter(|(t, _, _)| t == "person").count(), 1, "{:?}", gated.ends);
    // 35 of the 43 s are still: the detector sleeps through most of them.
    assert_eq!(every.analysed, every.sampled);
    assert!(gated.analysed * 2 < gated.sampled, "detector ran on {} of {} frames", gated.analysed, gated.sampled);
}

#[test]
fn a_car_creeping_in_slowly_gets_its_chain_and_plate() {
    let clip = common::scenes::car_creeping();
    let (gated, every) = (analyse(&clip, "on"), analyse(&clip, "off"));
    same_passings(&gated, &every);
    assert_eq!(with_plate(&gated).len(), 1, "{:?}", gated.ends);
}

/// The `end` events of the clip's car (the sprite also carries part of a parked car beside it).
fn with_plate(run: &Run) -> Vec<&(String, Option<String>, f64)> {
    run.ends.iter().filter(|(_, p, _)| p.as_deref() == Some("苏ED51712")).collect()
}

#[test]
fn a_car_waiting_a_minute_in_view_stays_one_passing() {
    let clip = common::scenes::car_waiting_a_minute();
    let (gated, every) = (analyse(&clip, "on"), analyse(&clip, "off"));
    same_passings(&gated, &every);
    let car = with_plate(&gated);
    assert_eq!(car.len(), 1, "{:?}", gated.ends);
    let (kind, _, span) = car[0];
    assert_eq!(kind, "vehicle");
    assert!(*span > 60.0, "one chain across the wait: {span} s");
    // While it waits nothing moves: the detector looks twice a second instead of five times.
    assert!((gated.analysed as f64) < 0.75 * gated.sampled as f64, "detector ran on {} of {} frames", gated.analysed, gated.sampled);
}

#[test]
fn noise_and_light_drift_with_nothing_passing_make_no_events_and_an_idle_detector() {
    let clip = common::scenes::still_road_with_noise();
    let gated = analyse(&clip, "on");
    assert!(gated.ends.is_empty(), "{:?}", gated.ends);
    // Keep-alive looks every 2 s at 5 fps: about one frame in ten.
    assert!(gated.analysed * 100 <= 15 * gated.sampled, "detector ran on {} of {} frames", gated.analysed, gated.sampled);
}

/// Everything `analyze --detections` prints for a clip, with event ids and clock times left out (they
/// come from the wall clock), and the stderr summary.
fn full_output(clip: &std::path::Path, pipeline: &str) -> (Vec<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(clip), extra: "detect_fps = 5" }], "");
    let out = run(&["analyze", "--config", cfg.to_str().unwrap(), "--json", "--detections", "--pipeline", pipeline, clip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = stdout(&out)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for key in ["id", "ts", "started_at", "ended_at"] {
                if let Some(o) = v.as_object_mut() {
                    o.remove(key);
                }
            }
            v.to_string()
        })
        .collect();
    let summary = stderr(&out).lines().find(|l| l.starts_with("detector ran on")).unwrap_or_default().to_string();
    (lines, summary)
}

#[test]
fn overlapping_frames_change_nothing_and_waste_little() {
    // A car that waits (the gate looks twice a second at a still scene with an object followed) and a
    // person after a long still stretch (keep-alive looks, then motion): the detector starting on frames
    // ahead must give the same objects, plates and events as one frame at a time.
    for clip in [common::scenes::car_waiting_a_minute(), common::scenes::person_after_still()] {
        let (overlapped, summary) = full_output(&clip, "on");
        let (one_at_a_time, summary_one) = full_output(&clip, "off");
        assert!(overlapped.len() > 20, "{}: {} lines", clip.display(), overlapped.len());
        assert_eq!(overlapped, one_at_a_time, "{}", clip.display());
        let numbers = |s: &str| s.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse::<u64>().ok()).collect::<Vec<_>>();
        let (on, off) = (numbers(&summary), numbers(&summary_one));
        assert_eq!(on[..3], off[..3], "{summary} / {summary_one}");
        // Frames started ahead and then skipped by the gate: a few at the end of each stretch of activity.
        let wasted = on.get(3).copied().unwrap_or(0);
        assert!(wasted * 10 <= on[0], "{}: {summary}", clip.display());
    }
}
