//! Camera health on clips: a camera whose picture freezes, goes black, is covered or is knocked sideways
//! raises exactly one alert of the right kind and clears it when the picture recovers; clips of a working
//! gate — still, with noise and light drift, a car waiting a minute, a busy street — raise none. Checked
//! with `edge-agent analyze --health`, the daemon's own health check run on the file (the offline camera,
//! which needs a live source, is in `tests/notify.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scenes::{camera_fault, Fault};
use common::{config, run, stderr, stdout};
use serde_json::Value;

/// Short thresholds, so a 15 s fault is raised and a 10 s recovery clears it.
const HEALTH: &str = "[health]\nfrozen_secs = 5\ncovered_secs = 5\nmoved_secs = 5\nreference_secs = 5\nclear_secs = 3\n";

/// The health alerts `analyze --health` prints for `clip`: (rule, state, stream time of the message).
fn health_alerts(clip: &std::path::Path) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[], HEALTH);
    let out = run(&["analyze", "--config", cfg.to_str().unwrap(), "--json", "--health", clip.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| {
            let alert: Value = serde_json::from_str(l).unwrap();
            testkit::schemas::assert_valid("alert.v1.json", &alert);
            (alert["kind"].as_str().unwrap().to_string(), alert["health"]["state"].as_str().unwrap().to_string())
        })
        .collect()
}

fn raised_and_cleared(kind: &str) -> Vec<(String, String)> {
    vec![(kind.to_string(), "raised".to_string()), (kind.to_string(), "cleared".to_string())]
}

#[test]
fn a_frozen_picture_raises_camera_frozen_once_and_clears_it() {
    assert_eq!(health_alerts(&camera_fault(Fault::Frozen)), raised_and_cleared("camera_frozen"));
}

#[test]
fn a_picture_gone_black_raises_camera_covered_once_and_clears_it() {
    assert_eq!(health_alerts(&camera_fault(Fault::Black)), raised_and_cleared("camera_covered"));
}

#[test]
fn a_lens_covered_by_a_near_uniform_patch_raises_camera_covered_once_and_clears_it() {
    assert_eq!(health_alerts(&camera_fault(Fault::Covered)), raised_and_cleared("camera_covered"));
}

#[test]
fn a_view_shifted_by_a_tenth_raises_camera_moved_once_and_clears_it() {
    assert_eq!(health_alerts(&camera_fault(Fault::Shifted)), raised_and_cleared("camera_moved"));
}

#[test]
fn a_working_gate_raises_no_health_alert() {
    for clip in [
        common::scenes::still_road_with_noise(),
        common::scenes::car_waiting_a_minute(),
        common::scenes::person_after_still(),
        testkit::clips::cached("street_pan_720p_40s.mp4", |p| testkit::clips::street_pan_720p(p, 40.0)),
    ] {
        assert_eq!(health_alerts(&clip), Vec::<(String, String)>::new(), "{}", clip.display());
    }
}
