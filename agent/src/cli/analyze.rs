//! `edge-agent analyze PATH...`: offline analysis with the daemon's pipeline (the same GStreamer source in
//! offline mode, the same detector threads), printing JSON lines on stdout. Problems with one input are
//! reported on stderr naming the file, and the others are still analysed; the exit code is 1 if any failed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use edge_config::{CameraUrl, Models};
use models::BgrImage;
use serde::Serialize;

use crate::inference::{Analysed, Detector, DetectorHandle};
use crate::payload::round3;
use crate::source::{self, Frame, Mode, Next, Pipeline, SourceSettings};
use crate::stats::{CameraRecord, CameraState};

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
    #[arg(long, default_value_t = edge_config::default_detect_fps(), value_name = "FPS")]
    pub detect_fps: f64,
    /// Scale video frames wider than this down before analysis (0: native size).
    #[arg(long, default_value_t = edge_config::default_max_frame_width(), value_name = "PX")]
    pub max_frame_width: u32,
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mkv", "mov", "avi", "ts", "m2ts", "h264", "264", "h265", "265", "hevc", "webm", "flv", "mjpeg", "mjpg", "ogv"];

/// One object found in an image or a video frame.
#[derive(Debug, Serialize)]
pub struct ObjectLine<'a> {
    pub file: &'a str,
    /// Frame number within the analysed frames (videos only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Stream time of the frame in milliseconds (videos only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pts_ms: Option<u64>,
    pub width: u32,
    pub height: u32,
    pub label: &'static str,
    pub class_id: usize,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Video,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Some(Kind::Image)
    } else if VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        Some(Kind::Video)
    } else {
        None
    }
}

/// Expands directories (recursively, sorted); files named explicitly are kept whatever their extension.
fn expand(paths: &[PathBuf], failures: &mut Vec<String>) -> Vec<(PathBuf, Kind)> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, failures);
            found.sort();
            out.extend(found.into_iter().filter_map(|p| kind_of(&p).map(|k| (p, k))));
        } else if path.exists() {
            // Unknown extensions are tried as video: GStreamer detects the container from the content.
            out.push((path.clone(), kind_of(path).unwrap_or(Kind::Video)));
        } else {
            failures.push(format!("{}: no such file or directory", path.display()));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, failures: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            failures.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out, failures);
        } else {
            out.push(path);
        }
    }
}

/// Runs the command.
pub fn run(args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let models: Models = match &args.config {
        Some(path) => edge_config::load_file(path)?.models,
        None => super::default_models(),
    };
    let models = super::with_local_runtime(models);
    if !(args.detect_fps > 0.0 && args.detect_fps <= 60.0) {
        anyhow::bail!("--detect-fps {} is out of range (0, 60]", args.detect_fps);
    }
    let mut failures = Vec::new();
    let inputs = expand(&args.paths, &mut failures);
    for f in &failures {
        eprintln!("error: {f}");
    }
    if inputs.iter().any(|(_, k)| *k == Kind::Video) {
        source::pipeline::init().map_err(anyhow::Error::msg)?;
    }
    let detector = Detector::start(&models, 1).context("cannot load the detector")?;
    let handle = detector.handle().context("detector stopped")?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut objects = 0usize;
    for (path, kind) in &inputs {
        let shown = path.display().to_string();
        let result = match kind {
            Kind::Image => analyse_image(path, &handle).map(|a| {
                objects += a.detections.len();
                print_objects(&mut out, &shown, None, &a, args.json)
            }),
            Kind::Video => analyse_video(path, args, &handle, |a| {
                objects += a.detections.len();
                print_objects(&mut out, &shown, Some(a.frame.seq), a, args.json)
            }),
        };
        if let Err(e) = result {
            eprintln!("error: {shown}: {e:#}");
            failures.push(shown);
        }
    }
    drop(handle);
    detector.shutdown();
    eprintln!("analysed {} input(s), {} object(s), {} failure(s)", inputs.len(), objects, failures.len());
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn analyse_image(path: &Path, detector: &DetectorHandle) -> anyhow::Result<Analysed> {
    let image = BgrImage::open(path)?;
    Ok(detector.detect(Frame::from_image(image))?)
}

fn analyse_video(path: &Path, args: &AnalyzeArgs, detector: &DetectorHandle, mut each: impl FnMut(&Analysed)) -> anyhow::Result<()> {
    let absolute = std::fs::canonicalize(path).with_context(|| "cannot resolve path")?;
    let uri = url::Url::from_file_path(&absolute).map_err(|_| anyhow::anyhow!("cannot make a file URI"))?;
    let settings = SourceSettings {
        camera_id: "analyze".into(),
        url: CameraUrl::new(uri.as_str()),
        detect_fps: args.detect_fps,
        max_frame_width: args.max_frame_width,
        mode: Mode::Offline,
    };
    let record = Arc::new(CameraRecord::new("analyze", args.detect_fps, CameraState::Connecting));
    let mut pipeline = Pipeline::open(settings, record).map_err(|e| anyhow::anyhow!(e.message))?;
    let mut idle = Duration::ZERO;
    loop {
        match pipeline.next(Duration::from_millis(500)).map_err(|e| anyhow::anyhow!(e.message))? {
            Next::Frame(frame) => {
                idle = Duration::ZERO;
                each(&detector.detect(frame)?);
            }
            Next::Eos => return Ok(()),
            Next::Timeout => {
                idle += Duration::from_millis(500);
                if idle >= Duration::from_secs(30) {
                    anyhow::bail!("no frame decoded for 30 s");
                }
            }
        }
    }
}

fn print_objects(out: &mut impl Write, file: &str, frame: Option<u64>, analysed: &Analysed, json: bool) {
    let (width, height) = (analysed.frame.width(), analysed.frame.height());
    let pts_ms = frame.and(analysed.frame.pts.map(|p| p.as_millis() as u64));
    for d in &analysed.detections {
        let line = ObjectLine {
            file,
            frame,
            pts_ms,
            width,
            height,
            label: d.label,
            class_id: d.class_id,
            score: round3(d.score),
            bbox: d.bbox.to_array(),
        };
        let _ = if json {
            serde_json::to_string(&line).map(|s| writeln!(out, "{s}"))
        } else {
            let at = frame.map(|f| format!(" frame {f}")).unwrap_or_default();
            Ok(writeln!(out, "{file}{at}: {} {:.2} [{:.1}, {:.1}, {:.1}, {:.1}]", d.label, d.score, line.bbox[0], line.bbox[1], line.bbox[2], line.bbox[3]))
        };
    }
}
