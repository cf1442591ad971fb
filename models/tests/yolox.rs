#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The YOLOX adapter against a reference decode (tools/yolox_reference.py: OpenCV letterbox, the same model
//! through onnxruntime's Python API) on real COCO images.

use std::path::Path;

use models::{runtime::environment, BBox, BgrImage, ModelError, SessionOptions, Yolox, YoloxSettings};
use serde_json::Value;

fn detector(settings: YoloxSettings) -> Yolox {
    let env = environment(Some(&testkit::ort_library()), 2).expect("ONNX Runtime loads");
    Yolox::load(env, &testkit::model("yolox_nano_416.onnx"), &SessionOptions::default(), settings).expect("model loads")
}

fn bbox(v: &Value) -> BBox {
    let a: Vec<f32> = v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    BBox::new(a[0], a[1], a[2], a[3])
}

#[test]
fn person_in_coco_139_is_where_the_issue_says() {
    let mut yolox = detector(YoloxSettings { classes: vec![0], ..YoloxSettings::default() });
    let image = BgrImage::open(&testkit::data("scenes/coco_000000000139.jpg")).unwrap();
    let dets = yolox.detect(&image.view()).unwrap();
    let expected = BBox::new(413.0, 158.0, 466.0, 296.0);
    let best = dets.iter().map(|d| d.bbox.iou(&expected)).fold(0.0f32, f32::max);
    assert!(best >= 0.6, "no person near {expected:?}: {dets:?}");
}

#[test]
fn detections_match_the_reference_decode() {
    let golden = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/yolox_reference.jsonl")).unwrap();
    let keep = [0usize, 1, 2, 3, 5, 7];
    let mut yolox = detector(YoloxSettings { classes: keep.to_vec(), ..YoloxSettings::default() });
    let mut checked = 0;
    for line in golden.lines() {
        let reference: Value = serde_json::from_str(line).unwrap();
        let file = reference["file"].as_str().unwrap();
        let image = BgrImage::open(&testkit::data(&format!("scenes/{file}"))).unwrap();
        assert_eq!(image.width() as u64, reference["width"].as_u64().unwrap());
        let ours = yolox.detect(&image.view()).unwrap();
        for r in reference["detections"].as_array().unwrap() {
            let class = r["class"].as_u64().unwrap() as usize;
            let score = r["score"].as_f64().unwrap() as f32;
            if !keep.contains(&class) || score < 0.5 {
                continue; // near-threshold boxes may legitimately flip with JPEG decoder differences
            }
            let rb = bbox(&r["box"]);
            let matched = ours.iter().filter(|d| d.class_id() == class).max_by(|a, b| a.bbox.iou(&rb).total_cmp(&b.bbox.iou(&rb)));
            let m = matched.unwrap_or_else(|| panic!("{file}: reference {class} {rb:?} not found in {ours:?}"));
            assert!(m.bbox.iou(&rb) >= 0.9, "{file}: IoU {} for {rb:?} vs {:?}", m.bbox.iou(&rb), m.bbox);
            assert!((m.score - score).abs() <= 0.05, "{file}: score {} vs reference {score}", m.score);
            checked += 1;
        }
        // Nothing confident that the reference does not have.
        for d in ours.iter().filter(|d| d.score >= 0.6) {
            let known = reference["detections"].as_array().unwrap().iter().any(|r| r["class"].as_u64().unwrap() as usize == d.class_id() && bbox(&r["box"]).iou(&d.bbox) >= 0.5);
            assert!(known, "{file}: unexpected {d:?}");
        }
    }
    assert!(checked >= 30, "only {checked} reference boxes compared");
}

#[test]
fn a_missing_model_file_is_named() {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let err = Yolox::load(env, Path::new("/nonexistent/yolox.onnx"), &SessionOptions::default(), YoloxSettings::default()).err().unwrap();
    assert!(matches!(err, ModelError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/yolox.onnx"), "{err}");
}

#[test]
fn a_model_with_another_contract_is_rejected_with_the_mismatch() {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let path = testkit::model("plate_det_y5fu_320.onnx");
    let err = Yolox::load(env, &path, &SessionOptions::default(), YoloxSettings::default()).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Contract { .. }), "{msg}");
    assert!(msg.contains("plate_det_y5fu_320.onnx") && msg.contains("\"images\""), "{msg}");
}

#[test]
fn a_corrupt_model_file_is_rejected_with_its_path() {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.onnx");
    let bytes = std::fs::read(testkit::model("yolox_nano_416.onnx")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = Yolox::load(env, &path, &SessionOptions::default(), YoloxSettings::default()).err().unwrap();
    assert!(matches!(err, ModelError::Load { .. }), "{err}");
    assert!(err.to_string().contains("truncated.onnx"), "{err}");
}
