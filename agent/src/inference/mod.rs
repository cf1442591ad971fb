//! Inference on dedicated threads. `Session::run` blocks and takes `&mut self`, so each loaded model lives on
//! its own OS thread (never a tokio worker) and is fed through a bounded channel shared by all cameras.
//! A camera thread hands over its newest frame and waits for the answer; while it waits, its appsink keeps
//! only the newest frame, so a slow detector drops frames instead of building lag.

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use edge_config::{ExecutionProvider, Models, PlateMode};
use models::plates::{PlateModelPaths, PlateRead, PlateRecognizer, RecognizerSettings};
use models::{coco_class_id, Detection, ModelError, Provider, SessionOptions, Yolox, YoloxSettings};

use crate::events::plate_search::PlateFocus;
use crate::source::Frame;

/// Why a frame could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("detector threads have stopped")]
    Stopped,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("frame {seq}: {reason}")]
    Frame { seq: u64, reason: String },
}

/// The result of analysing one frame; the frame comes back with it.
pub struct Analysed {
    pub frame: Frame,
    pub detections: Vec<Detection>,
    /// Plates read in the frame (empty when plates are off for the camera); `region` is the index of the
    /// vehicle in `detections`.
    pub plates: Vec<PlateRead>,
    /// Time in the detector adapter (letterbox + `Session::run` + decode).
    pub inference: Duration,
    /// Time in the plate chain (detect, rectify, read), zero when it did not run.
    pub plate_time: Duration,
    /// Time from hand-over to result, including waiting for a free detector.
    pub latency: Duration,
    /// Vehicles the plate chain left out ([`PlateFocus`]).
    pub plate_searches_skipped: u32,
    /// `detections` go down to the tracker's low score; only those at or above this are reported.
    pub score_threshold: f32,
}

impl Analysed {
    /// The event builder's view of this frame at `time`.
    pub fn input(&self, time: crate::events::FrameTime) -> crate::events::FrameInput<'_> {
        crate::events::FrameInput { time, width: self.frame.width(), height: self.frame.height(), view: self.frame.view().ok(), detections: &self.detections, plates: &self.plates }
    }

    /// Detections confident enough to report (payloads, analysis output).
    pub fn reported(&self) -> impl Iterator<Item = &Detection> {
        self.detections.iter().filter(move |d| d.score >= self.score_threshold)
    }
}

struct Job {
    frame: Frame,
    plates: PlateMode,
    focus: PlateFocus,
    submitted: Instant,
    reply: Sender<Result<Analysed, InferenceError>>,
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct DetectorInfo {
    pub model: PathBuf,
    pub provider: Provider,
    pub input_size: (u32, u32),
    pub sessions: usize,
    /// Whether the plate chain is loaded.
    pub plates: bool,
}

/// A pool of detector threads, each with its own session. Cheap to clone handles via [`Detector::handle`].
pub struct Detector {
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    info: DetectorInfo,
}

/// A cloneable way for camera threads to submit frames.
#[derive(Clone)]
pub struct DetectorHandle {
    jobs: Sender<Job>,
}

/// CPU cores to use for inference: the machine's, at most 4.
pub fn cpu_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

/// Translates the config's detector settings to the adapter's.
pub fn yolox_settings(models: &Models) -> Result<YoloxSettings, ModelError> {
    let mut classes = Vec::new();
    for label in &models.detector.labels {
        let id = coco_class_id(label).ok_or_else(|| ModelError::Contract {
            path: models.detector_path(),
            model: "YOLOX",
            mismatch: format!("label {label:?} is not one of the model's COCO labels"),
        })?;
        classes.push(id);
    }
    Ok(YoloxSettings { score_threshold: models.detector.score_threshold, nms_iou_threshold: models.detector.nms_iou_threshold, classes })
}

/// Session options from the config.
pub fn session_options(models: &Models) -> SessionOptions {
    SessionOptions {
        provider: match models.execution_provider {
            ExecutionProvider::Cpu => Provider::Cpu,
            ExecutionProvider::Cuda => Provider::Cuda,
        },
        require_provider: false,
    }
}

/// Loads the detector described by `models` (ONNX Runtime first).
pub fn load_yolox(models: &Models) -> Result<Yolox, ModelError> {
    let env = models::environment(models.onnxruntime_library.as_deref(), models.intra_threads)?;
    Yolox::load(env, &models.detector_path(), &session_options(models), yolox_settings(models)?)
}

/// Plate chain settings from the config.
pub fn plate_settings(models: &Models) -> (PlateModelPaths, RecognizerSettings) {
    let p = &models.plates;
    let paths = PlateModelPaths {
        region_detector: models.dir.join(&p.region_detector),
        frame_detector: Some(models.dir.join(&p.frame_detector)),
        reader: models.dir.join(&p.reader),
        colour: Some(models.dir.join(&p.colour_classifier)),
    };
    let mut settings = RecognizerSettings::default();
    settings.detector.score_threshold = p.score_threshold;
    settings.reader.min_char_confidence = p.min_char_confidence;
    settings.max_regions = p.max_vehicles_per_frame;
    settings.reader.max_batch = p.reader_batch;
    (paths, settings)
}

/// Loads the plate chain described by `models`.
pub fn load_plates(models: &Models) -> Result<PlateRecognizer, ModelError> {
    let env = models::environment(models.onnxruntime_library.as_deref(), models.intra_threads)?;
    let (paths, settings) = plate_settings(models);
    PlateRecognizer::load(env, &paths, &session_options(models), settings)
}

/// The plate chain applied to a frame the detector has analysed: a detector thread runs it right after
/// the detector, `analyze` on its own thread while the detector works on the next frame.
pub struct PlateChain {
    recognizer: PlateRecognizer,
}

impl PlateChain {
    pub fn load(models: &Models) -> Result<Self, ModelError> {
        Ok(Self { recognizer: load_plates(models)? })
    }

    /// Searches the vehicles of `analysed` that `focus` wants (and the whole frame where `plates` and
    /// `focus` say) and fills in its plates, plate time and left-out count. Nothing to do when `plates` is
    /// off; a failure is logged and the objects stand.
    pub fn search(&mut self, analysed: &mut Analysed, plates: PlateMode, focus: &PlateFocus) {
        if plates == PlateMode::Off {
            return;
        }
        let started = Instant::now();
        let Ok(view) = analysed.frame.view() else { return };
        let detections = &analysed.detections;
        let reported = |d: &Detection| d.score >= analysed.score_threshold;
        let vehicles = (0..detections.len()).filter(|&i| detections[i].class.carries_plate() && reported(&detections[i])).collect();
        let (carriers, left) = focus.split(detections, vehicles);
        analysed.plate_searches_skipped = left.len() as u32;
        let regions: Vec<_> = carriers.iter().map(|&i| detections[i].bbox).collect();
        let search = focus.frame_search(plates, detections.iter().any(reported));
        match self.recognizer.recognize(&view, &regions, search) {
            Ok(r) => {
                analysed.plates = r.plates;
                // Report the vehicle as an index into `detections`.
                for p in &mut analysed.plates {
                    p.region = p.region.and_then(|i| carriers.get(i).copied());
                }
            }
            Err(e) => tracing::warn!(frame = analysed.frame.seq, error = %e, "plate recognition failed; objects still reported"),
        }
        analysed.plate_time = started.elapsed();
    }
}

impl Detector {
    /// Loads `sessions` copies of the detector, each on its own thread. With `tracking_floor`, detections
    /// are decoded down to that score for the tracker (which uses weak detections to keep partly hidden
    /// objects), while [`Analysed::reported`] still applies the configured threshold.
    pub fn start(models: &Models, sessions: usize, tracking_floor: Option<f32>) -> Result<Self, ModelError> {
        let score_threshold = models.detector.score_threshold;
        let mut models = models.clone();
        if let Some(floor) = tracking_floor {
            models.detector.score_threshold = models.detector.score_threshold.min(floor);
        }
        let models = &models;
        let sessions = sessions.max(1);
        let (tx, rx) = bounded::<Job>(sessions * 2);
        let mut workers = Vec::new();
        let mut info = None;
        for i in 0..sessions {
            let yolox = load_yolox(models)?;
            let plates = if models.plates.enabled { Some(PlateChain::load(models)?) } else { None };
            info.get_or_insert_with(|| DetectorInfo {
                model: yolox.path().to_path_buf(),
                provider: yolox.provider(),
                input_size: yolox.input_size(),
                sessions,
                plates: plates.is_some(),
            });
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("detector-{i}"))
                .spawn(move || worker(yolox, plates, score_threshold, rx))
                .map_err(|e| ModelError::Inference { path: models.detector_path(), reason: format!("cannot start detector thread: {e}") })?;
            workers.push(handle);
        }
        let info = info.ok_or_else(|| ModelError::NotFound { path: models.detector_path() })?;
        Ok(Self { jobs: Some(tx), workers, info })
    }

    pub fn info(&self) -> &DetectorInfo {
        &self.info
    }

    pub fn handle(&self) -> Option<DetectorHandle> {
        self.jobs.as_ref().map(|jobs| DetectorHandle { jobs: jobs.clone() })
    }

    /// Stops accepting work and waits for the threads to finish their current frame.
    pub fn shutdown(mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl DetectorHandle {
    /// Analyses `frame` (objects, and plates where `plates` says), blocking until a detector thread is free
    /// and done.
    pub fn detect(&self, frame: Frame, plates: PlateMode) -> Result<Analysed, InferenceError> {
        self.detect_focused(frame, plates, PlateFocus::default())
    }

    /// Like [`DetectorHandle::detect`], searching only the vehicles `focus` wants for plates.
    pub fn detect_focused(&self, frame: Frame, plates: PlateMode, focus: PlateFocus) -> Result<Analysed, InferenceError> {
        self.submit(frame, plates, focus)?.wait()
    }

    /// Hands `frame` to a detector thread (blocking only while every thread is busy and the queue full);
    /// the answer comes from [`Pending::wait`].
    pub fn submit(&self, frame: Frame, plates: PlateMode, focus: PlateFocus) -> Result<Pending, InferenceError> {
        let (reply, answer) = bounded(1);
        self.jobs.send(Job { frame, plates, focus, submitted: Instant::now(), reply }).map_err(|_| InferenceError::Stopped)?;
        Ok(Pending(answer))
    }
}

/// A frame a detector thread is working on ([`DetectorHandle::submit`]). Dropping it discards the answer.
pub struct Pending(Receiver<Result<Analysed, InferenceError>>);

impl Pending {
    /// Blocks until the frame is analysed.
    pub fn wait(self) -> Result<Analysed, InferenceError> {
        self.0.recv().map_err(|_| InferenceError::Stopped)?
    }
}

fn worker(mut yolox: Yolox, mut plates: Option<PlateChain>, score_threshold: f32, jobs: Receiver<Job>) {
    for job in jobs {
        let started = Instant::now();
        let detections = match job.frame.view().map_err(|e| InferenceError::Frame { seq: job.frame.seq, reason: e.to_string() }).and_then(|v| Ok(yolox.detect(&v)?)) {
            Ok(d) => d,
            Err(e) => {
                let _ = job.reply.send(Err(e));
                continue;
            }
        };
        let inference = started.elapsed();
        let mut answer = Analysed {
            frame: job.frame,
            detections,
            plates: Vec::new(),
            inference,
            plate_time: Duration::ZERO,
            latency: Duration::ZERO,
            plate_searches_skipped: 0,
            score_threshold,
        };
        if let Some(chain) = plates.as_mut() {
            chain.search(&mut answer, job.plates, &job.focus);
        }
        answer.latency = job.submitted.elapsed();
        // The camera may have gone away while we worked; nothing to do then.
        let _ = job.reply.send(Ok(answer));
    }
}
