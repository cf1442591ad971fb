//! `edge-agent analyze PATH...`: offline analysis with the daemon's pipeline (the same GStreamer source in
//! offline mode, the same detector threads), printing JSON lines on stdout. Problems with one input are
//! reported on stderr naming the file, and the others are still analysed; the exit code is 1 if any failed.

mod health;
mod inputs;
mod output;

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edge_config::{CameraUrl, Models, PlateMode};
use models::BgrImage;

use crate::events::plate_search::{PlateFocus, PlateSearch};
use crate::events::{BuilderSettings, EventBuilder, EventOut, FrameTime};
use crate::frame_loop::{FrameLoop, Turn};
use crate::inference::{Analysed, Detector, DetectorHandle, InferenceError, Pending, PlateChain};
use crate::motion::{DetectGate, Look};
use crate::payload::round3;
use crate::source::{self, Frame, Mode, Next, Pipeline, SourceSettings};
use crate::stats::{CameraRecord, CameraState};
use inputs::{expand, Kind};
use output::{print_analysed, print_event};
pub use output::{CropLine, LineSource, ObjectLine, PlateLine};

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Images (JPEG, PNG), video files, or directories of them (searched recursively).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Configuration file to take model settings from.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Frames per second to analyse in videos.
    #[arg(long, default_value_t = edge_config::DEFAULT_DETECT_FPS, value_name = "FPS")]
    pub detect_fps: f64,
    /// Scale video frames wider than this down before analysis (0: native size).
    #[arg(long, default_value_t = edge_config::DEFAULT_MAX_FRAME_WIDTH, value_name = "PX")]
    pub max_frame_width: u32,
    /// Where to look for licence plates: `auto` (vehicles, and the whole frame when no vehicle is detected
    /// and every 2 s), `vehicles`, `frame` (whole image, plus vehicles) or `off`. Default: `frame` for
    /// images; for videos the camera's `plates`, else `auto`.
    #[arg(long, value_parser = parse_plate_mode, value_name = "MODE")]
    pub plates: Option<PlateMode>,
    /// Treat every image as an already rectified single-row plate and print `{"file","plate","confidence"}`.
    #[arg(long)]
    pub plate_crops: bool,
    /// Camera in `--config` whose lines, zones, plate mode and detect rate apply to videos (default: the
    /// only camera, if there is one).
    #[arg(long, value_name = "ID")]
    pub camera: Option<String>,
    /// Write each event's snapshot JPEG into this directory.
    #[arg(long, value_name = "DIR")]
    pub snapshots: Option<PathBuf>,
    /// For videos, also print every analysed frame's objects and plates (not only the events).
    #[arg(long)]
    pub detections: bool,
    /// Motion gating for videos: `on` runs the detector only while something moves or is followed (and
    /// every `keepalive_secs`), as the daemon does; `off` analyses every sampled frame. Default: the
    /// camera's `motion.enabled`, else on.
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub motion: Option<bool>,
    /// Stop searching a vehicle for its plate after this many agreeing reads (0: search every frame).
    /// Default: `models.plates.settle_reads`.
    #[arg(long, value_name = "N")]
    pub plate_settle: Option<u32>,
    /// `on` (default): detector threads (one per core) start on a video's next frames while the plate
    /// chain and the events finish the current one; `off`: one frame at a time, each model on every core
    /// (how `analyze` ran before; for comparison). Same results either way.
    #[arg(long, value_parser = parse_on_off, value_name = "on|off")]
    pub pipeline: Option<bool>,
    /// For videos, run only the camera health check (frozen, covered, moved; the config's `[health]`
    /// thresholds) and print its alerts, raised and cleared; the detector does not run.
    #[arg(long)]
    pub health: bool,
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("{other:?}: expected on or off")),
    }
}

fn parse_plate_mode(s: &str) -> Result<PlateMode, String> {
    match s {
        "auto" => Ok(PlateMode::Auto),
        "vehicles" => Ok(PlateMode::Vehicles),
        "frame" => Ok(PlateMode::Frame),
        "off" => Ok(PlateMode::Off),
        other => Err(format!("{other:?}: expected auto, vehicles, frame or off")),
    }
}

/// What a video is analysed with: the events settings and, when a camera is chosen, its geometry.
struct VideoSetup {
    site: edge_config::Site,
    camera: Option<edge_config::Camera>,
    events: edge_config::Events,
    plates: edge_config::Plates,
    health: edge_config::Health,
}

/// Runs the command.
pub fn run(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config.as_deref().map(edge_config::load_file).transpose()?;
    let models: Models = match &config {
        Some(c) => c.models.clone(),
        None => super::default_models(),
    };
    let camera = match (&config, &args.camera) {
        (Some(c), Some(id)) => Some(c.cameras.iter().find(|cam| cam.id == *id).cloned().ok_or_else(|| {
            let ids: Vec<&str> = c.cameras.iter().map(|cam| cam.id.as_str()).collect();
            anyhow::anyhow!("--camera {id:?}: no such camera in the config (cameras: {})", ids.join(", "))
        })?),
        (Some(c), None) if c.cameras.len() == 1 => c.cameras.first().cloned(),
        (None, Some(_)) => anyhow::bail!("--camera needs --config"),
        _ => None,
    };
    let video = VideoSetup {
        site: config.as_ref().map_or_else(
            || edge_config::Site { city: "local".into(), district: "local".into(), town: "local".into(), village: "local".into(), checkpoint: "local".into(), name: None },
            |c| c.site.clone(),
        ),
        camera,
        events: config.as_ref().map(|c| c.events.clone()).unwrap_or_default(),
        plates: models.plates.clone(),
        health: config.as_ref().map(|c| c.health.clone()).unwrap_or_default(),
    };
    if let Some(dir) = &args.snapshots {
        std::fs::create_dir_all(dir).with_context(|| format!("--snapshots {}", dir.display()))?;
    }
    let mut models = super::with_local_runtime(models);
    let overlap = args.pipeline.unwrap_or(true);
    // Overlapping frames, as the daemon: one detector session per core with one thread each, working on
    // the frames ahead while this thread runs the plate chain and the events. One frame at a time: one
    // session, each model on every core.
    let cores = crate::inference::cpu_cores();
    let sessions = if overlap { cores } else { 1 };
    if !overlap {
        models.intra_threads = models.intra_threads.max(cores);
    }
    if !(args.detect_fps > 0.0 && args.detect_fps <= 60.0) {
        anyhow::bail!("--detect-fps {} is out of range (0, 60]", args.detect_fps);
    }
    let mut failures = Vec::new();
    let inputs = expand(&args.paths, &mut failures);
    for f in &failures {
        eprintln!("error: {f}");
    }
    if args.health {
        return health::run(&inputs, args, &video, failures);
    }
    if args.plate_crops {
        return read_plate_crops(&models, &inputs, failures, args.json);
    }
    if args.plates == Some(PlateMode::Off) {
        models.plates.enabled = false;
    }
    if inputs.iter().any(|(_, k)| *k == Kind::Video) {
        source::pipeline::init().map_err(anyhow::Error::msg)?;
    }
    // With the frames overlapping, the plate chain runs on this thread.
    let plates_here = overlap && models.plates.enabled;
    let on_detector_thread = Models { plates: edge_config::Plates { enabled: models.plates.enabled && !plates_here, ..models.plates.clone() }, ..models.clone() };
    let detector = Detector::start(&on_detector_thread, sessions, Some(video.events.track_low_score)).context("cannot load the detector")?;
    let chain = if plates_here { Some(PlateChain::load(&models).context("cannot load the plate models")?) } else { None };
    let mut engine = Engine { detector: detector.handle().context("detector stopped")?, sessions, overlap, chain };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut objects, mut plates, mut events) = (0usize, 0usize, 0usize);
    let (mut sampled, mut analysed_frames, mut searches_skipped, mut wasted) = (0u64, 0u64, 0u64, 0u64);
    for (path, kind) in &inputs {
        let shown = path.display().to_string();
        let result = match kind {
            Kind::Image => analyse_image(path, &mut engine, args.plates.unwrap_or(PlateMode::Frame)).map(|a| {
                objects += a.reported().count();
                plates += a.plates.len();
                print_analysed(&mut out, &shown, None, &a, args.json)
            }),
            Kind::Video => analyse_video(path, args, &video, &mut engine, |line| match line {
                VideoLine::Sampled { analysed, dropped_ahead } => {
                    sampled += 1;
                    analysed_frames += u64::from(analysed);
                    wasted += u64::from(dropped_ahead);
                }
                VideoLine::Frame(a) => {
                    searches_skipped += u64::from(a.plate_searches_skipped);
                    objects += a.reported().count();
                    plates += a.plates.len();
                    if args.detections {
                        print_analysed(&mut out, &shown, Some(a.frame.seq), a, args.json);
                    }
                }
                VideoLine::Event(e) => {
                    events += 1;
                    print_event(&mut out, &shown, e, args.json);
                }
            }),
        };
        if let Err(e) = result {
            eprintln!("error: {shown}: {e:#}");
            failures.push(shown);
        }
    }
    drop(engine);
    detector.shutdown();
    eprintln!("analysed {} input(s), {objects} object(s), {plates} plate(s), {events} event message(s), {} failure(s)", inputs.len(), failures.len());
    if sampled > 0 {
        let ahead = if wasted > 0 { format!("; {wasted} frame(s) the detector started on ahead were then skipped") } else { String::new() };
        eprintln!("detector ran on {analysed_frames} of {sampled} sampled video frame(s); {searches_skipped} vehicle plate search(es) left out{ahead}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The detector thread and, with the frames overlapping (`--pipeline on`), this thread's plate chain.
struct Engine {
    detector: DetectorHandle,
    /// Detector sessions (threads).
    sessions: usize,
    /// The detector starts on a video's next frame while this thread finishes the current one.
    overlap: bool,
    /// The plate chain when it runs on this thread (frames overlapping, plates on); otherwise the detector
    /// thread runs it.
    chain: Option<PlateChain>,
}

impl Engine {
    /// Starts the detector on a frame read ahead, before its turn: what the plate chain searches is not
    /// known yet, so the chain waits for [`Engine::finish`] (with the frames overlapping it runs here).
    fn start_ahead(&self, frame: Frame) -> Result<Pending, InferenceError> {
        self.detector.submit(frame, PlateMode::Off, PlateFocus::default())
    }

    /// Starts the detector on `frame`, with the plate chain after it on the detector thread unless the chain
    /// runs here.
    fn start(&self, frame: Frame, plates: PlateMode, focus: &PlateFocus) -> Result<Pending, InferenceError> {
        match self.chain {
            Some(_) => self.start_ahead(frame),
            None => self.detector.submit(frame, plates, focus.clone()),
        }
    }

    /// Waits for the detector, then runs the plate chain when it runs here.
    fn finish(&mut self, pending: Pending, plates: PlateMode, focus: &PlateFocus) -> Result<Analysed, InferenceError> {
        let mut analysed = pending.wait()?;
        if let Some(chain) = self.chain.as_mut() {
            chain.search(&mut analysed, plates, focus);
        }
        Ok(analysed)
    }
}

fn analyse_image(path: &Path, engine: &mut Engine, plates: PlateMode) -> anyhow::Result<Analysed> {
    let image = BgrImage::open(path)?;
    let pending = engine.start(Frame::from_image(image), plates, &PlateFocus::default())?;
    Ok(engine.finish(pending, plates, &PlateFocus::default())?)
}

/// `--plate-crops`: every image is a rectified plate; read them in batches.
fn read_plate_crops(models: &Models, inputs: &[(PathBuf, Kind)], mut failures: Vec<String>, json: bool) -> anyhow::Result<ExitCode> {
    let mut recognizer = crate::inference::load_plates(models).context("cannot load the plate models")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let (mut read, mut total) = (0usize, 0usize);
    let images: Vec<(String, BgrImage)> = inputs
        .iter()
        .filter_map(|(path, _)| match BgrImage::open(path) {
            Ok(img) => Some((path.display().to_string(), img)),
            Err(e) => {
                eprintln!("error: {e}");
                failures.push(path.display().to_string());
                None
            }
        })
        .collect();
    for chunk in images.chunks(16) {
        let views: Vec<_> = chunk.iter().map(|(_, img)| img.view()).collect();
        for ((file, _), (_, result)) in chunk.iter().zip(recognizer.read_crops(&views)?) {
            total += 1;
            let (plate, confidence) = match &result {
                Ok(t) => {
                    read += 1;
                    (Some(t.text.as_str()), Some(round3(t.confidence)))
                }
                Err(_) => (None, None),
            };
            let line = CropLine { file, plate, confidence };
            let _ = if json {
                serde_json::to_string(&line).map(|s| writeln!(out, "{s}"))
            } else {
                let text = match (&result, plate) {
                    (Err(why), _) => format!("no plate ({why:?})"),
                    (Ok(_), p) => format!("{} {:.3}", p.unwrap_or_default(), confidence.unwrap_or(0.0)),
                };
                Ok(writeln!(out, "{file}: {text}"))
            };
        }
    }
    eprintln!("read {read} plate(s) from {total} crop(s), {} failure(s)", failures.len());
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// What a video's analysis yields, in order.
enum VideoLine<'a> {
    /// A frame was sampled; `analysed` says whether the detector ran on it (motion gating).
    Sampled {
        analysed: bool,
        /// The detector had started on it ahead, before the gate decided to skip it.
        dropped_ahead: bool,
    },
    Frame(&'a Analysed),
    Event(&'a crate::payload::Event),
}

/// A video through the daemon's per-frame path ([`FrameLoop`]), driven from a file: frames are read ahead
/// and, with the frames overlapping, the detector starts on those the loop expects to analyse.
fn analyse_video(path: &Path, args: &AnalyzeArgs, setup: &VideoSetup, engine: &mut Engine, mut each: impl FnMut(VideoLine<'_>)) -> anyhow::Result<()> {
    let absolute = std::fs::canonicalize(path).with_context(|| "cannot resolve path")?;
    let uri = url::Url::from_file_path(&absolute).map_err(|_| anyhow::anyhow!("cannot make a file URI"))?;
    let camera = setup.camera.as_ref();
    let detect_fps = camera.map_or(args.detect_fps, |c| c.detect_fps);
    let camera_id = camera.map_or_else(|| "analyze".to_string(), |c| c.id.clone());
    let settings = SourceSettings {
        decoder: camera.map_or(edge_config::DecoderChoice::Auto, |c| c.decoder),
        ..SourceSettings::new(camera_id.clone(), CameraUrl::new(uri.as_str()), detect_fps, camera.map_or(args.max_frame_width, |c| c.max_frame_width), Mode::Offline)
    };
    let mut frames = frame_loop(args, setup, detect_fps, camera_id);
    let started = chrono::Utc::now();
    let emit = |outs: Vec<EventOut>, each: &mut dyn FnMut(VideoLine<'_>)| -> anyhow::Result<()> {
        for out in outs {
            let mut event = crate::payload::Event::new(&out.event, None);
            if let (Some(dir), Some(jpeg), Some(snapshot)) = (&args.snapshots, &out.snapshot, event.snapshot.as_mut()) {
                let file = dir.join(format!("{}.jpg", event.id));
                std::fs::write(&file, jpeg).with_context(|| format!("cannot write {}", file.display()))?;
                snapshot.file = Some(file.display().to_string());
            }
            each(VideoLine::Event(&event));
        }
        Ok(())
    };

    let record = Arc::new(CameraRecord::new("analyze", detect_fps, CameraState::Connecting));
    let mut pipeline = Pipeline::open(settings, record).map_err(|e| anyhow::anyhow!(e.message))?;
    let mut idle = Duration::ZERO;
    // Frames read ahead. Each frame's turn comes once the frames before it are finished (plates, events),
    // as in the daemon; with the frames overlapping, the detector has meanwhile started on those it will
    // probably analyse.
    let lookahead = if engine.overlap { 2 * engine.sessions + 1 } else { 1 };
    let mut window: VecDeque<Ahead> = VecDeque::with_capacity(lookahead);
    let mut ended = false;
    loop {
        while !ended && window.len() < lookahead {
            match pipeline.next(Duration::from_millis(500)).map_err(|e| anyhow::anyhow!(e.message))? {
                Next::Frame(frame) => {
                    idle = Duration::ZERO;
                    let stream_s = frame.pts.map_or(frame.seq as f64 / detect_fps, |p| p.as_secs_f64());
                    let look = frames.look(&frame);
                    // Counted from the last frame started ahead. A frame the loop then skips is dropped unused;
                    // one it runs on that was not expected (an object that appeared in a frame ahead, then
                    // stood still) starts late. Either way the results are the same.
                    let planned = window.iter().rev().find(|a| a.frame.started()).map(|a| a.stream_s);
                    let frame = if engine.overlap && frames.likely_analysed(look, stream_s, planned) {
                        AheadFrame::Started(engine.start_ahead(frame)?)
                    } else {
                        AheadFrame::Waiting(frame)
                    };
                    window.push_back(Ahead { look, stream_s, frame });
                }
                Next::Eos => ended = true,
                Next::Timeout if window.is_empty() => {
                    idle += Duration::from_millis(500);
                    if idle >= Duration::from_secs(30) {
                        anyhow::bail!("no frame decoded for 30 s");
                    }
                }
                Next::Timeout => break,
            }
        }
        let Some(Ahead { look, stream_s, frame }) = window.pop_front() else {
            if ended {
                break;
            }
            continue;
        };
        let Turn::Analyse(focus) = frames.turn(look, stream_s) else {
            each(VideoLine::Sampled { analysed: false, dropped_ahead: frame.started() });
            continue;
        };
        each(VideoLine::Sampled { analysed: true, dropped_ahead: false });
        let pending = match frame {
            AheadFrame::Started(pending) => pending,
            AheadFrame::Waiting(frame) => engine.start(frame, frames.plates(), &focus)?,
        };
        let analysed = engine.finish(pending, frames.plates(), &focus)?;
        each(VideoLine::Frame(&analysed));
        let wall = started + chrono::Duration::milliseconds((stream_s * 1000.0) as i64);
        let observed = frames.observe(&analysed, FrameTime { stream_s, wall });
        emit(observed.gap, &mut each)?;
        emit(observed.events, &mut each)?;
    }
    let outs = frames.finish();
    emit(outs, &mut each)
}

/// The per-frame path for a video: the camera's lines, zones, motion gating and plate search where a
/// camera applies, the command line's choices over them.
fn frame_loop(args: &AnalyzeArgs, setup: &VideoSetup, detect_fps: f64, camera_id: String) -> FrameLoop {
    let camera = setup.camera.as_ref();
    let plate_mode = args.plates.or(camera.map(|c| c.plates)).unwrap_or_default();
    let origin = crate::topics::Origin { site: setup.site.clone(), camera: camera_id };
    let mut builder_settings = BuilderSettings::from_config(&setup.events, detect_fps);
    builder_settings.snapshots = args.snapshots.is_some();
    let (lines, zones) = camera.map_or((&[][..], &[][..]), |c| (&c.lines[..], &c.zones[..]));
    let builder = EventBuilder::new(origin, builder_settings, lines, zones);
    let motion = edge_config::Motion { enabled: args.motion.unwrap_or(camera.is_none_or(|c| c.motion.enabled)), ..camera.map(|c| c.motion.clone()).unwrap_or_default() };
    let settle_reads = args.plate_settle.unwrap_or(setup.plates.settle_reads);
    let search = PlateSearch::new(plate_mode, settle_reads, setup.plates.min_vehicle_width_px as f32);
    FrameLoop::new(DetectGate::new(&motion), search, builder)
}

/// A video frame read ahead: what the motion stage saw, and the frame, or the detector's work on it.
struct Ahead {
    look: Look,
    stream_s: f64,
    frame: AheadFrame,
}

/// Where a frame read ahead stands.
enum AheadFrame {
    /// The detector started on it, guessing the gate will let it through.
    Started(Pending),
    /// Not started: the gate decides when its turn comes.
    Waiting(Frame),
}

impl AheadFrame {
    fn started(&self) -> bool {
        matches!(self, AheadFrame::Started(_))
    }
}
