//! `make bench`: detector cost in the agent against a bare `Session::run` on the same tensor, and end-to-end
//! offline analysis speed on a 1280x720 H.264 clip built from the shared street scene.
//!
//! Figures are medians over many runs; the machine is shared and noisy, so read the ratios, not the
//! absolute milliseconds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_agent::events::{BuilderSettings, EventBuilder, FrameInput, FrameTime};
use edge_agent::inference::{yolox_settings, Detector};
use edge_agent::source::{self, Frame, Mode, Next, Pipeline, SourceSettings};
use edge_agent::stats::{CameraRecord, CameraState};
use edge_config::{CameraUrl, Line, Models, PlateMode, Zone};
use models::plates::{PlateColour, PlateRead, PlateRows};
use models::{BBox, BgrImage, Detection, ObjectClass, SessionOptions, Yolox};
use ort::value::TensorRef;
use testkit::synthetic::median;

const WARMUP: usize = 10;
const RUNS: usize = 100;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn models(plates: bool) -> Models {
    let mut m = Models { dir: testkit::shared_dir().join("models"), onnxruntime_library: Some(testkit::ort_library()), intra_threads: 2, ..Models::default() };
    m.plates.enabled = plates;
    m
}

fn frame_720p() -> BgrImage {
    let scene = BgrImage::open(&testkit::data("scenes/hy_test_img.jpg")).unwrap();
    models::image::resize_bilinear(&scene.view(), 1280, 720)
}

fn bench_detector() {
    let models = models(false);
    let image = frame_720p();

    // Bare: the same model and tensor, nothing but Session::run.
    let env = models::environment(models.onnxruntime_library.as_deref(), models.intra_threads).unwrap();
    let options = SessionOptions::default();
    let mut bare = Yolox::load(env, &models.detector_path(), &options, yolox_settings(&models).unwrap()).unwrap();
    bare.preprocess(&image.view());
    let (data, shape) = bare.input_tensor();
    let data = data.to_vec();
    let session = bare.session_mut();
    let mut bare_ms = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        let input = TensorRef::from_array_view((shape, data.as_slice())).unwrap();
        let out = session.run(ort::inputs!["images" => input]).unwrap();
        std::hint::black_box(&out);
        drop(out);
        if i >= WARMUP {
            bare_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(bare);

    // Agent: a 1280x720 frame through the detector thread (letterbox, run, decode, NMS, hand-over).
    let detector = Detector::start(&models, 1, None).unwrap();
    let handle = detector.handle().unwrap();
    let mut agent_ms = Vec::new();
    let mut adapter_ms = Vec::new();
    for i in 0..WARMUP + RUNS {
        let frame = Frame::from_image(image.clone());
        let t = Instant::now();
        let analysed = handle.detect(frame, PlateMode::Off).unwrap();
        if i >= WARMUP {
            agent_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            adapter_ms.push(analysed.inference.as_secs_f64() * 1000.0);
        }
    }
    drop(handle);
    detector.shutdown();

    let (b, a, d) = (median(bare_ms.clone()), median(agent_ms.clone()), median(adapter_ms));
    println!("detector (yolox_nano_416, CPU, 2 intra-op threads, {RUNS} runs, median)");
    println!("  bare Session::run on the prepared tensor    {b:7.2} ms   (mean {:.2})", mean(&bare_ms));
    println!("  agent: 1280x720 frame → detections          {a:7.2} ms   (mean {:.2})", mean(&agent_ms));
    println!("    of which in the adapter (letterbox+run+decode) {d:.2} ms");
    println!("  overhead ratio agent / bare                 {:7.3}", a / b);
}

fn bench_analyze(detect_fps: f64, plates: PlateMode, events: bool) -> f64 {
    let seconds = 10.0;
    let clip = testkit::clips::cached("street_pan_720p_10s.mp4", |p| testkit::clips::street_pan_720p(p, seconds));
    source::pipeline::init().unwrap();
    let detector = Detector::start(&models(plates != PlateMode::Off), 1, Some(0.1)).unwrap();
    let handle = detector.handle().unwrap();
    let mut best: Option<(Duration, u64)> = None;
    for _ in 0..3 {
        let record = Arc::new(CameraRecord::new("bench", detect_fps, CameraState::Connecting));
        let settings = SourceSettings::new("bench", CameraUrl::new(format!("file://{}", clip.canonicalize().unwrap().display())), detect_fps, 1920, Mode::Offline);
        let mut builder = events.then(|| event_builder(detect_fps));
        let t = Instant::now();
        let mut pipeline = Pipeline::open(settings, record).unwrap();
        let mut frames = 0u64;
        loop {
            match pipeline.next(Duration::from_secs(5)).unwrap() {
                Next::Frame(f) => {
                    let analysed = handle.detect(f, plates).unwrap();
                    if let Some(b) = builder.as_mut() {
                        let stream_s = analysed.frame.pts.map_or(0.0, |p| p.as_secs_f64());
                        std::hint::black_box(b.observe(&analysed.input(FrameTime { stream_s, wall: chrono::Utc::now() })));
                    }
                    std::hint::black_box(&analysed);
                    frames += 1;
                }
                Next::Eos => break,
                Next::Timeout => panic!("analysis stalled"),
            }
        }
        let took = t.elapsed();
        drop(pipeline);
        if best.is_none_or(|(b, _)| took < b) {
            best = Some((took, frames));
        }
    }
    drop(handle);
    detector.shutdown();
    let (took, frames) = best.unwrap();
    let fps = frames as f64 / took.as_secs_f64();
    println!(
        "analyze, 1280x720 H.264 clip, {seconds:.0} s at 25 fps, detect rate {detect_fps} fps, plates {plates:?}, event layer {} (best of 3)",
        if events { "on" } else { "off" }
    );
    println!("  frames analysed                             {frames:7}");
    println!("  analysed frames per second                  {fps:7.1}");
    println!("  video seconds per wall-clock second         {:7.1}x real time", seconds / took.as_secs_f64());
    fps
}

fn event_builder(detect_fps: f64) -> EventBuilder {
    let site = edge_config::Site { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into(), name: None };
    let ctx = edge_agent::topics::Origin { site, camera: "bench".into(), topics: None };
    let line = Line { id: "gate".into(), points: [[0.0, 0.6], [1.0, 0.6]], in_side: [0.5, 0.9] };
    let zone = Zone { id: "lane".into(), points: vec![[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]] };
    EventBuilder::new(ctx, BuilderSettings::from_config(&edge_config::Events::default(), detect_fps), &[line], &[zone])
}

/// Tracker + event building alone, 50 objects moving through a 1280x720 frame, half of them vehicles with
/// a plate read every frame; with and without snapshot copying.
fn bench_events() {
    let frame = BgrImage::open(&testkit::data("scenes/hy_test_img.jpg")).unwrap();
    let frame = models::image::resize_bilinear(&frame.view(), 1280, 720);
    for pictures in [false, true] {
        let mut builder = event_builder(5.0);
        let mut times = Vec::new();
        let mut events = 0;
        for i in 0..300usize {
            let mut detections = Vec::new();
            let mut plates = Vec::new();
            for k in 0..50usize {
                // Each object walks down its own column and wraps around, so objects keep coming and going.
                let x = 10.0 + (k % 25) as f32 * 50.0;
                let y = ((i * 7 + k * 37) % 800) as f32 - 80.0;
                let vehicle = k % 2 == 0;
                let (w, h) = if vehicle { (45.0, 35.0) } else { (20.0, 50.0) };
                detections.push(Detection { class: if vehicle { ObjectClass::CAR } else { ObjectClass::PERSON }, score: 0.8, bbox: BBox::new(x, y, x + w, y + h) });
                if vehicle {
                    plates.push(PlateRead {
                        text: "苏ED51712".into(),
                        confidence: 0.9,
                        char_confidences: vec![0.9; 8],
                        min_char_confidence: 0.9,
                        layout: "new-energy-small",
                        colour: PlateColour::Green,
                        rows: PlateRows::Single,
                        corners: [(x, y); 4],
                        bbox: BBox::new(x + 10.0, y + 20.0, x + 30.0, y + 30.0),
                        detector_score: 0.9,
                        region: Some(detections.len() - 1),
                    });
                }
            }
            let input = FrameInput {
                time: FrameTime { stream_s: i as f64 * 0.2, wall: chrono::Utc::now() },
                width: 1280,
                height: 720,
                view: pictures.then(|| frame.view()),
                detections: &detections,
                plates: &plates,
            };
            let t = Instant::now();
            events += builder.observe(&input).len();
            if i >= 20 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        println!(
            "tracker + events, 50 objects per frame, snapshots {}: median {:.3} ms/frame, mean {:.3} ms ({events} event messages in 300 frames)",
            if pictures { "on " } else { "off" },
            median(times.clone()),
            mean(&times)
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    println!("edge-agent pipeline benchmark ({} cores)", std::thread::available_parallelism().map_or(0, |n| n.get()));
    bench_detector();
    bench_analyze(5.0, PlateMode::Off, false);
    let without = bench_analyze(5.0, PlateMode::Vehicles, false);
    let with = bench_analyze(5.0, PlateMode::Vehicles, true);
    println!("event layer cost on analyze: {:.3}x the frames/s without it", with / without);
    bench_events();
}
