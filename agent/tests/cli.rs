//! The command line against real models, real images and real clips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{config, file_url, run, stderr, stdout, Cam};
use serde_json::Value;

fn lines(out: &str) -> Vec<Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

fn iou(a: &[f64], b: &[f64]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

fn boxes(objects: &[Value], file_suffix: &str, label: &str) -> Vec<Vec<f64>> {
    objects
        .iter()
        .filter(|o| o["file"].as_str().unwrap().ends_with(file_suffix) && o["label"] == label)
        .map(|o| o["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
        .collect()
}

#[test]
fn analyze_reports_the_person_in_coco_139() {
    let image = testkit::data("scenes/coco_000000000139.jpg");
    let out = run(&["analyze", image.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects = lines(&stdout(&out));
    let people = boxes(&objects, "coco_000000000139.jpg", "person");
    let best = people.iter().map(|b| iou(b, &[413.0, 158.0, 466.0, 296.0])).fold(0.0, f64::max);
    assert!(best >= 0.6, "no person near [413,158,466,296]: {people:?}");
    let o = &objects[0];
    for key in ["file", "width", "height", "label", "class_id", "score", "box"] {
        assert!(o.get(key).is_some(), "missing {key} in {o}");
    }
}

#[test]
fn analyze_finds_people_and_vehicles_where_the_reference_does() {
    // Expected boxes: every confident (≥ 0.5) box of that label in the reference decode
    // (tools/yolox_reference.py, models/tests/golden), matched with IoU ≥ 0.85.
    let expected: &[(&str, &str)] = &[
        ("coco_000000000785.jpg", "person"),
        ("coco_000000001000.jpg", "person"),
        ("coco_000000006471.jpg", "person"),
        ("coco_000000001532.jpg", "car"),
        ("coco_000000007386.jpg", "motorcycle"),
    ];
    let golden: Vec<Value> = lines(&std::fs::read_to_string(testkit::workspace_dir().join("models/tests/golden/yolox_reference.jsonl")).unwrap());
    let dir = testkit::data("scenes");
    let files: Vec<String> = expected.iter().map(|(f, _)| dir.join(f).display().to_string()).collect();
    let mut args = vec!["analyze", "--json"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects = lines(&stdout(&out));
    for (file, label) in expected {
        let reference = golden.iter().find(|g| g["file"] == *file).unwrap();
        let class = match *label {
            "person" => 0,
            "car" => 2,
            "motorcycle" => 3,
            _ => unreachable!(),
        };
        let want: Vec<Vec<f64>> = reference["detections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["class"] == class && d["score"].as_f64().unwrap() >= 0.5)
            .map(|d| d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
            .collect();
        assert!(!want.is_empty(), "{file}: reference has no {label}");
        let ours = boxes(&objects, file, label);
        for w in &want {
            let best = ours.iter().map(|b| iou(b, w)).fold(0.0, f64::max);
            assert!(best >= 0.85, "{file}: {label} {w:?} matched with IoU {best:.2} only; ours: {ours:?}");
        }
    }
}

#[test]
fn analyze_reads_video_files_frame_by_frame() {
    let clip = testkit::clips::street_pan();
    let out = run(&["analyze", clip.to_str().unwrap(), "--json", "--detect-fps", "2", "--detections"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: Vec<Value> = lines(&stdout(&out)).into_iter().filter(|l| l["kind"] == "object").collect();
    let frames: std::collections::BTreeSet<u64> = objects.iter().map(|o| o["frame"].as_u64().unwrap()).collect();
    // 4 s at 2 fps.
    assert!((7..=9).contains(&frames.len()), "analysed frames: {frames:?}");
    assert!(objects.iter().any(|o| o["label"] == "car"), "no car in the street clip");
    assert!(objects.iter().all(|o| o["width"] == 1280 && o["height"] == 720));
}

#[test]
fn analyze_reports_a_corrupt_video_and_still_analyses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("broken.mp4");
    let clip = std::fs::read(testkit::clips::street_pan()).unwrap();
    let mut bytes = clip[..clip.len() / 2].to_vec();
    bytes[..64].fill(0x5a); // no valid header either
    std::fs::write(&corrupt, bytes).unwrap();
    let image = testkit::data("scenes/coco_000000000139.jpg");
    let out = run(&["analyze", "--json", corrupt.to_str().unwrap(), image.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("broken.mp4"), "{err}");
    assert!(lines(&stdout(&out)).iter().any(|o| o["label"] == "person"), "the good image was not analysed");
}

#[test]
fn analyze_with_a_missing_model_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::command().env("EDGE_AGENT_MODELS_DIR", dir.path()).args(["analyze", testkit::data("scenes/coco_000000000139.jpg").to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&dir.path().join("yolox_nano_416.onnx").display().to_string()), "{}", stderr(&out));
}

const CLIP_CAMERA: &str = "loop_file = true";

#[test]
fn check_config_accepts_a_good_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(1883), &[Cam { id: "gate", url: file_url(&testkit::clips::street_pan()), extra: CLIP_CAMERA }], "");
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK"));
}

#[test]
fn check_config_reports_an_unknown_key_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: "rtsp://10.0.0.5/live".into(), extra: "detect_fsp = 5" }], "");
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.starts_with("cameras[0]") && l.contains("detect_fsp")), "{err}");
}

#[test]
fn check_config_reports_every_bad_camera_url_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let cams = [
        Cam { id: "a", url: "ftp://admin:hunter2@10.0.0.5/live".into(), extra: "" },
        Cam { id: "b", url: "rtsp://admin:hunter2@/live".into(), extra: "" },
        Cam { id: "c", url: "file://camhost/clip.mp4".into(), extra: "" },
    ];
    let cfg = config(dir.path(), None, &cams, "");
    let out = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for path in ["cameras[0].url", "cameras[1].url", "cameras[2].url"] {
        assert!(err.lines().any(|l| l.starts_with(path)), "{path} not reported:\n{err}");
    }
    assert!(!err.contains("hunter2"), "credentials leaked:\n{err}");
}

#[test]
fn check_config_and_run_report_a_missing_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(&testkit::clips::street_pan()), extra: "" }], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[models]\n", "[models]\ndetector = { file = \"missing.onnx\" }\n");
    std::fs::write(&cfg, text).unwrap();
    for cmd in [vec!["check-config", cfg.to_str().unwrap()], vec!["run", "--config", cfg.to_str().unwrap()]] {
        let out = run(&cmd);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}");
        let err = stderr(&out);
        assert!(err.contains("models.detector.file") && err.contains("missing.onnx"), "{cmd:?}: {err}");
    }
}

#[test]
fn run_rejects_a_model_with_the_wrong_tensor_contract() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "gate", url: file_url(&testkit::clips::street_pan()), extra: "" }], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[models]\n", "[models]\ndetector = { file = \"plate_det_y5fu_320.onnx\" }\n");
    std::fs::write(&cfg, text).unwrap();
    let out = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("plate_det_y5fu_320.onnx") && err.contains("YOLOX tensor contract"), "{err}");
}

#[test]
fn analyze_reads_the_plates_in_the_scenes() {
    let scenes = testkit::data("scenes");
    let files = ["hy_test_img.jpg", "hy_a.jpg"].map(|f| scenes.join(f).display().to_string());
    let out = run(&["analyze", "--json", &files[0], &files[1]]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plates: Vec<Value> = lines(&stdout(&out)).into_iter().filter(|l| l["kind"] == "plate").collect();
    let got: Vec<(String, String, String)> = plates
        .iter()
        .map(|p| (p["file"].as_str().unwrap().rsplit('/').next().unwrap().to_string(), p["plate"].as_str().unwrap().to_string(), p["color"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, vec![("hy_test_img.jpg".to_string(), "苏ED51712".to_string(), "green".to_string()), ("hy_a.jpg".to_string(), "粤ZP560港".to_string(), "black".to_string())]);
    let p = &plates[0];
    for key in ["confidence", "min_char_confidence", "rows", "corners", "box"] {
        assert!(p.get(key).is_some(), "missing {key} in {p}");
    }
    assert_eq!(p["corners"].as_array().unwrap().len(), 4);
    assert_eq!(p["rows"], 1);
    assert!(p["vehicle_box"].is_array(), "the plate is on the detected car: {p}");
}

#[test]
fn analyze_plate_crops_prints_file_plate_and_confidence() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["皖A0C911.jpg", "京PL3N67.jpg", "浙D9594H.jpg"] {
        std::fs::copy(testkit::data(&format!("plates-dev/{f}")), dir.path().join(f)).unwrap();
    }
    // A sign is not a plate: the line says so with a null plate.
    let sign = testkit::text::render("欢迎光临", 40.0, [255, 255, 255], [20, 60, 180], 6);
    sign.save(dir.path().join("sign.png")).unwrap();
    let out = run(&["analyze", "--plate-crops", "--json", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = lines(&stdout(&out));
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["confidence", "file", "plate"], "{row}");
        let file = row["file"].as_str().unwrap();
        if file.ends_with("sign.png") {
            assert!(row["plate"].is_null() && row["confidence"].is_null(), "{row}");
        } else {
            let truth = std::path::Path::new(file).file_stem().unwrap().to_str().unwrap();
            assert_eq!(row["plate"], truth);
            assert!(row["confidence"].as_f64().unwrap() > 0.5);
        }
    }
}
