//! `make bench` (plates): reader ms/plate single and batched, plate detector ms/frame at 320 and 640, each
//! against a bare `Session::run` on the same input tensor, the whole plate chain per frame, and the
//! exact-match accuracy on the 500 dev crops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use models::image::resize_bilinear;
use models::plates::{colour, PlateDetector, PlateDetectorSettings, PlateModelPaths, PlateReader, PlateRecognizer, ReaderSettings, RecognizerSettings};
use models::{environment, BgrImage, SessionOptions, Yolox, YoloxSettings};
use ort::value::TensorRef;
use testkit::synthetic::median;

const WARMUP: usize = 5;
const RUNS: usize = 60;

fn options() -> SessionOptions {
    SessionOptions::default()
}

fn dev_crops() -> Vec<(String, BgrImage)> {
    let dir = testkit::data("plates-dev");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), BgrImage::open(&p).unwrap())).collect()
}

/// Median milliseconds of `f` over the measured runs (after a warm-up); `f` gets the run number.
fn median_ms(mut f: impl FnMut(usize)) -> f64 {
    let mut times = Vec::new();
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        f(i);
        if i >= WARMUP {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    median(times)
}

/// Medians of `agent` and `bare`, run alternately so drift on a shared machine hits both alike.
fn interleaved_ms<T>(state: &mut T, mut agent: impl FnMut(&mut T, usize), mut bare: impl FnMut(&mut T)) -> (f64, f64) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..WARMUP + RUNS {
        let t = Instant::now();
        agent(state, i);
        let ta = t.elapsed().as_secs_f64() * 1000.0;
        let t = Instant::now();
        bare(state);
        let tb = t.elapsed().as_secs_f64() * 1000.0;
        if i >= WARMUP {
            a.push(ta);
            b.push(tb);
        }
    }
    (median(a), median(b))
}

fn bench_reader(crops: &[(String, BgrImage)]) {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    println!("plate reader (PP-OCRv4, 48x320 input, CPU, 2 threads, median of {RUNS}); the agent reads 2 plates per run");
    for batch in [1usize, 2, 8] {
        let settings = ReaderSettings { max_batch: batch, ..ReaderSettings::default() };
        let mut reader = PlateReader::load(env, &testkit::model("ppocr_v4_rec.onnx"), &options(), settings).unwrap();
        // Agent: contrast stretch, resize, pad, Session::run, template decoding. Bare: the tensor the
        // agent just prepared, straight through Session::run.
        let name = reader.input_name().to_string();
        let shape = [batch, 3, 48, 320];
        let (agent, bare) = interleaved_ms(
            &mut reader,
            |reader, i| {
                let views: Vec<_> = (0..batch).map(|k| (crops[(i * batch + k) % crops.len()].1.view(), Some(models::plates::PlateColour::Blue))).collect();
                std::hint::black_box(reader.read_batch(&views).unwrap());
            },
            |reader| {
                let data = reader.input_tensor(batch).0.to_vec();
                let input = TensorRef::from_array_view((shape, data.as_slice())).unwrap();
                std::hint::black_box(reader.session_mut().run(ort::inputs![name.as_str() => input]).unwrap());
            },
        );
        println!("  batch {batch}: agent {:6.2} ms/plate   bare Session::run {:6.2} ms/plate   overhead ratio {:.3}", agent / batch as f64, bare / batch as f64, agent / bare);
    }
}

fn bench_detector(frame: &BgrImage, file: &str) {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let mut det = PlateDetector::load(env, &testkit::model(file), &options(), PlateDetectorSettings::default()).unwrap();
    let size = det.size() as usize;
    let name = det.input_name().to_string();
    let (agent, bare) = interleaved_ms(
        &mut det,
        |det, _| {
            std::hint::black_box(det.detect(&frame.view()).unwrap());
        },
        |det| {
            let data = det.input_tensor().0.to_vec();
            let input = TensorRef::from_array_view(([1usize, 3, size, size], data.as_slice())).unwrap();
            std::hint::black_box(det.session_mut().run(ort::inputs![name.as_str() => input]).unwrap());
        },
    );
    let letterbox = median_ms(|_| {
        std::hint::black_box(det.preprocess(&frame.view()));
    });
    println!(
        "plate detector {size}x{size} on a {}x{} frame: agent {agent:6.2} ms/frame   bare Session::run {bare:6.2} ms   overhead ratio {:.3} (letterbox {letterbox:.2} ms)",
        frame.width(),
        frame.height(),
        agent / bare
    );
}

fn bench_chain(frame: &BgrImage) {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let mut yolox = Yolox::load(env, &testkit::model("yolox_nano_416.onnx"), &options(), YoloxSettings { classes: vec![2, 3, 5, 7], ..YoloxSettings::default() }).unwrap();
    let regions: Vec<_> = yolox.detect(&frame.view()).unwrap().into_iter().map(|d| d.bbox).collect();
    let paths = PlateModelPaths {
        region_detector: testkit::model("plate_det_y5fu_320.onnx"),
        frame_detector: Some(testkit::model("plate_det_y5fu_640.onnx")),
        reader: testkit::model("ppocr_v4_rec.onnx"),
        colour: Some(testkit::model("plate_color_cls_96.onnx")),
    };
    let mut rec = PlateRecognizer::load(env, &paths, &options(), RecognizerSettings::default()).unwrap();
    let mut plates = 0;
    let chain = median_ms(|_| {
        plates = rec.recognize(&frame.view(), &regions, models::plates::FrameSearch::Off).unwrap().plates.len();
    });
    println!("plate chain on {} vehicle region(s) of the 1920x1080 street scene: {chain:.2} ms/frame ({plates} plate read)", regions.len().min(4));
}

fn bench_accuracy(crops: &[(String, BgrImage)]) {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let mut reader = PlateReader::load(env, &testkit::model("ppocr_v4_rec.onnx"), &options(), ReaderSettings::default()).unwrap();
    let mut classifier = colour::ColourClassifier::load(env, &testkit::model("plate_color_cls_96.onnx"), &options()).unwrap();
    let mut correct = 0;
    for chunk in crops.chunks(16) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|(_, img)| {
                let facts = colour::pixel_facts(&img.view());
                let probs = (!facts.light_text()).then(|| classifier.classify(&img.view()).unwrap());
                (img.view(), Some(colour::decide(&facts, probs)))
            })
            .collect();
        for ((truth, _), read) in chunk.iter().zip(reader.read_batch(&batch).unwrap()) {
            if read.is_ok_and(|t| t.text == *truth) {
                correct += 1;
            }
        }
    }
    println!("plate reader accuracy on plates-dev: {correct}/{} exact = {:.1}%", crops.len(), 100.0 * correct as f64 / crops.len() as f64);
}

fn main() {
    let crops = dev_crops();
    bench_accuracy(&crops);
    bench_reader(&crops);
    let scene = BgrImage::open(&testkit::data("scenes/hy_test_img.jpg")).unwrap();
    let frame_720p = resize_bilinear(&scene.view(), 1280, 720);
    bench_detector(&frame_720p, "plate_det_y5fu_320.onnx");
    bench_detector(&frame_720p, "plate_det_y5fu_640.onnx");
    bench_chain(&scene);
}
