//! `[models]`: model files, ONNX Runtime and inference threads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where model files are and how they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Models {
    /// Directory with the model files; relative paths are relative to the config file.
    pub dir: PathBuf,
    /// Path of `libonnxruntime.so`. Default: `$ORT_DYLIB_PATH`, then the packaged library.
    pub onnxruntime_library: Option<PathBuf>,
    /// Where inference runs: `cpu` or `cuda` (falls back to `cpu` with a warning when CUDA is unavailable).
    pub execution_provider: ExecutionProvider,
    /// Threads one inference may use. 1 (the default) with one detector session per core analyses several
    /// cameras' frames side by side and spends far less CPU than threads that wait on each other.
    pub intra_threads: usize,
    /// Detector threads, each with its own copy of the models, each analysing one frame at a time: 0 (the
    /// default) is one per CPU core, at most 4 (one with `execution_provider = "cuda"`).
    pub detector_sessions: usize,
    /// The person/vehicle detector.
    pub detector: Detector,
    /// Licence-plate recognition.
    pub plates: Plates,
}

/// ONNX Runtime execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionProvider {
    /// The default CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA (needs the `onnxruntime-gpu` build of the library).
    Cuda,
}

/// The object detector (YOLOX, COCO classes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Detector {
    /// Model file name, relative to `models.dir`, or an absolute path.
    pub file: PathBuf,
    /// Minimum score (objectness × class probability) for a detection to count.
    pub score_threshold: f32,
    /// IoU above which two boxes of one class are the same object (per-class NMS).
    pub nms_iou_threshold: f32,
    /// COCO labels the agent keeps; everything else the model sees is ignored.
    pub labels: Vec<String>,
}

/// Licence-plate recognition: detector, reader and colour classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Plates {
    /// Read plates at all (cameras can still turn it off one by one).
    pub enabled: bool,
    /// Plate detector run on vehicle regions, relative to `models.dir`.
    pub region_detector: PathBuf,
    /// Plate detector run on whole frames (cameras with `plates = "frame"`): the 640 model finds small plates.
    pub frame_detector: PathBuf,
    /// Text recogniser (PP-OCRv4) reading the plates.
    pub reader: PathBuf,
    /// Colour classifier (blue/green/yellow); the pixels decide black and white.
    pub colour_classifier: PathBuf,
    /// Minimum plate-detector score.
    pub score_threshold: f32,
    /// A read whose least certain character is below this probability is rejected, not published.
    pub min_char_confidence: f32,
    /// Largest number of vehicles searched for plates per frame (largest first).
    pub max_vehicles_per_frame: usize,
    /// Plates read per model run: 2 is fastest per plate on a 2-core CPU; raise it on a GPU.
    pub reader_batch: usize,
    /// A vehicle's plate is settled once this many reads agree with its voted text (each at least 0.9
    /// confident); a settled vehicle is not searched again. 0 searches every vehicle in every frame.
    pub settle_reads: u32,
    /// Vehicles narrower than this (pixels of the analysed frame) are not searched: too small for a
    /// readable plate.
    pub min_vehicle_width_px: u32,
}

impl Default for Models {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/edge-agent/models"),
            onnxruntime_library: None,
            execution_provider: ExecutionProvider::default(),
            intra_threads: 1,
            detector_sessions: 0,
            detector: Detector::default(),
            plates: Plates::default(),
        }
    }
}

impl Default for Detector {
    fn default() -> Self {
        Self {
            file: PathBuf::from("yolox_nano_416.onnx"),
            score_threshold: 0.3,
            nms_iou_threshold: 0.45,
            // The road users a checkpoint cares about.
            labels: ["person", "bicycle", "car", "motorcycle", "bus", "truck"].map(String::from).to_vec(),
        }
    }
}

impl Default for Plates {
    fn default() -> Self {
        Self {
            enabled: true,
            region_detector: PathBuf::from("plate_det_y5fu_320.onnx"),
            frame_detector: PathBuf::from("plate_det_y5fu_640.onnx"),
            reader: PathBuf::from("ppocr_v4_rec.onnx"),
            colour_classifier: PathBuf::from("plate_color_cls_96.onnx"),
            score_threshold: 0.3,
            // Measured on the dev crops: correct reads never went below 0.088, partial plates and signs never
            // above 0.002 (README, "Licence plates").
            min_char_confidence: 0.02,
            max_vehicles_per_frame: 4,
            reader_batch: 2,
            settle_reads: 5,
            min_vehicle_width_px: 96,
        }
    }
}

impl Models {
    /// Detector threads to start: `detector_sessions`, or for 0 one per CPU core (`cores`, the caller's
    /// count; one on CUDA).
    pub fn sessions(&self, cores: usize) -> usize {
        match (self.detector_sessions, self.execution_provider) {
            (0, ExecutionProvider::Cuda) => 1,
            (0, _) => cores,
            (n, _) => n,
        }
    }

    /// The detector file as an absolute (or `dir`-relative) path.
    pub fn detector_path(&self) -> PathBuf {
        self.dir.join(&self.detector.file)
    }

    /// The plate model files, `(config key, path)`.
    pub fn plate_paths(&self) -> [(&'static str, PathBuf); 4] {
        let p = &self.plates;
        [
            ("models.plates.region_detector", self.dir.join(&p.region_detector)),
            ("models.plates.frame_detector", self.dir.join(&p.frame_detector)),
            ("models.plates.reader", self.dir.join(&p.reader)),
            ("models.plates.colour_classifier", self.dir.join(&p.colour_classifier)),
        ]
    }
}
