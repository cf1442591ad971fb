//! The detector on the CUDA execution provider. Needs an NVIDIA GPU, its driver, CUDA and cuDNN, and the
//! `onnxruntime-gpu` build of the library in `ORT_DYLIB_PATH`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use models::{runtime::environment, BgrImage, Provider, SessionOptions, Yolox, YoloxSettings};

fn load(provider: Provider) -> Yolox {
    let env = environment(Some(&testkit::ort_library()), 2).expect("ONNX Runtime loads");
    let options = SessionOptions { provider, require_provider: true };
    Yolox::load(env, &testkit::model("yolox_nano_416.onnx"), &options, YoloxSettings::default()).unwrap_or_else(|e| panic!("{} session: {e}", provider.name()))
}

#[test]
#[ignore = "needs an NVIDIA GPU with CUDA/cuDNN and ORT_DYLIB_PATH pointing at onnxruntime-gpu"]
fn detector_runs_on_cuda_and_agrees_with_the_cpu() {
    let image = BgrImage::open(&testkit::data("scenes/coco_000000001000.jpg")).unwrap();
    let mut cpu = load(Provider::Cpu);
    let mut gpu = load(Provider::Cuda);
    assert_eq!(gpu.provider(), Provider::Cuda, "CUDA provider did not register");
    let on_cpu = cpu.detect(&image.view()).unwrap();
    let on_gpu = gpu.detect(&image.view()).unwrap();
    let confident: Vec<_> = on_cpu.iter().filter(|d| d.score >= 0.5).collect();
    assert!(confident.len() >= 5, "expected a crowd of people, CPU found {on_cpu:?}");
    for d in confident {
        let best = on_gpu.iter().filter(|g| g.class_id() == d.class_id()).map(|g| g.bbox.iou(&d.bbox)).fold(0.0f32, f32::max);
        assert!(best >= 0.95, "CPU detection {d:?} has no GPU counterpart (best IoU {best})");
    }
    // Timing for the record (not asserted): warm up, then median of 50.
    for _ in 0..10 {
        gpu.detect(&image.view()).unwrap();
    }
    let mut ms: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            gpu.detect(&image.view()).unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!("CUDA detector: median {:.2} ms per 640x480 image (letterbox + run + decode)", ms[25]);
}
