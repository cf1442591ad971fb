//! One GStreamer pipeline per camera:
//!
//! ```text
//! uridecodebin(uri, video only) ─▶ [rate gate] videoconvert ─▶ videoscale
//!     ─▶ video/x-raw,format=BGR,pixel-aspect-ratio=1/1[,width≤max] ─▶ appsink
//! ```
//!
//! Frames beyond the detect rate are dropped by a timestamp gate before colour conversion, so a 25 fps
//! camera analysed at 5 fps converts only 5 frames a second. In live mode the appsink keeps one buffer and drops older ones (newest
//! frame wins, never a queue); in offline mode (`analyze`) it blocks upstream so every sampled frame is seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_config::{CameraUrl, DecoderChoice, RtspTransport};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use models::{BgrImage, BgrView};

use super::decoder;
use super::gate::{self, RateGate};
use crate::stats::CameraRecord;

/// How frames are handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Daemon: newest frame wins; file sources play in real time as a camera would.
    Live,
    /// Offline analysis: every frame at the detect rate, as fast as the detector goes.
    Offline,
}

/// What a pipeline needs to know about its camera.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    pub camera_id: String,
    pub url: CameraUrl,
    pub detect_fps: f64,
    /// 0 keeps the native width.
    pub max_frame_width: u32,
    pub mode: Mode,
    pub transport: RtspTransport,
    pub latency_ms: u32,
    pub decoder: DecoderChoice,
    /// Where the compressed stream is recorded for clips, when they are on.
    pub clips: Option<Arc<crate::clips::ClipRing>>,
}

impl SourceSettings {
    /// Settings with the defaults for everything but the essentials (analysis, benchmarks).
    pub fn new(camera_id: impl Into<String>, url: CameraUrl, detect_fps: f64, max_frame_width: u32, mode: Mode) -> Self {
        Self {
            camera_id: camera_id.into(),
            url,
            detect_fps,
            max_frame_width,
            mode,
            transport: RtspTransport::Tcp,
            latency_ms: edge_config::DEFAULT_RTSP_LATENCY_MS,
            decoder: DecoderChoice::Auto,
            clips: None,
        }
    }
}

/// What kind of failure a source hit; decides the camera state and back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Unreachable,
    Unauthorized,
    /// The input is broken or unsupported (corrupt file, no video stream, unknown format).
    BadInput,
    /// A GStreamer element is missing (plugin package not installed).
    MissingPlugin,
    /// A hardware decoder failed (no device, driver trouble): software decoding may still work.
    HardwareDecoder,
    Other,
}

/// A source failure, with the camera named and credentials scrubbed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("camera {camera}: {message}")]
pub struct SourceError {
    pub camera: String,
    pub kind: FailureKind,
    pub message: String,
}

/// One BGR frame: a mapped GStreamer buffer (no copy) from a camera, or a decoded still image.
pub struct Frame {
    /// Sequence number of the frame among this pipeline's sampled frames.
    pub seq: u64,
    /// Presentation time from the stream start.
    pub pts: Option<Duration>,
    /// When the frame came out of the pipeline (decoded and converted): where its latency is counted from.
    pub arrived: std::time::Instant,
    width: u32,
    height: u32,
    stride: usize,
    pixels: Pixels,
}

enum Pixels {
    Gst(gst::MappedBuffer<gst::buffer::Readable>),
    Owned(BgrImage),
}

impl Frame {
    /// A frame made from a still image (offline analysis of photos).
    pub fn from_image(image: BgrImage) -> Self {
        Self {
            seq: 1,
            pts: None,
            arrived: std::time::Instant::now(),
            width: image.width(),
            height: image.height(),
            stride: image.width() as usize * 3,
            pixels: Pixels::Owned(image),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The frame as a BGR view for the model adapters. Checked against the buffer size when the frame was
    /// made, so an error here means the buffer changed under us.
    pub fn view(&self) -> Result<BgrView<'_>, models::image::ImageError> {
        let bytes = match &self.pixels {
            Pixels::Gst(buffer) => buffer.as_slice(),
            Pixels::Owned(image) => image.as_bytes(),
        };
        BgrView::new(self.width, self.height, self.stride, bytes)
    }
}

/// What [`Pipeline::next`] found.
pub enum Next {
    Frame(Frame),
    /// No frame within the timeout.
    Timeout,
    /// The stream ended (files).
    Eos,
}

/// A running camera pipeline. Dropping it sets the pipeline to `Null`, releasing everything it held.
pub struct Pipeline {
    settings: SourceSettings,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
    seq: u64,
    /// The stream's frame rate ×1000, once the decoder announced it (0 = unknown or variable).
    input_fps: Arc<AtomicU64>,
    /// The clip recorder on the decoder's input; stopped (its last fragment finished) after the pipeline.
    tap: Option<crate::clips::recorder::Tap>,
}

/// Elements every pipeline needs, with the Debian package that provides each.
const REQUIRED_ELEMENTS: &[(&str, &str)] = &[
    ("uridecodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
];

/// Initialises GStreamer once and checks the elements the pipelines need exist.
pub fn init() -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer cannot be initialised: {e}"))?;
    let missing: Vec<String> =
        REQUIRED_ELEMENTS.iter().filter(|(name, _)| gst::ElementFactory::find(name).is_none()).map(|(name, pkg)| format!("{name} (package {pkg})")).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("GStreamer elements missing: {}", missing.join(", ")))
    }
}

impl Pipeline {
    /// Builds the pipeline and starts it. Errors that only show once data flows arrive through
    /// [`Pipeline::next`].
    pub fn open(settings: SourceSettings, record: Arc<CameraRecord>) -> Result<Self, SourceError> {
        let fail = |kind: FailureKind, message: String| SourceError { camera: settings.camera_id.clone(), kind, message };
        let make =
            |factory: &str| gst::ElementFactory::make(factory).build().map_err(|_| fail(FailureKind::MissingPlugin, format!("GStreamer element {factory} is not installed")));

        let choice = settings.decoder;
        decoder::check_available(choice).map_err(|message| fail(FailureKind::MissingPlugin, message))?;

        let pipeline = gst::Pipeline::with_name(&format!("camera-{}", settings.camera_id));
        let decode = make("uridecodebin")?;
        decode.set_property("uri", settings.url.uri());
        decode.set_property("caps", gst::Caps::builder("video/x-raw").any_features().build());
        decode.set_property("expose-all-streams", false);
        let (transport, latency) = (settings.transport, settings.latency_ms);
        decode.connect("source-setup", false, move |values| {
            if let Some(source) = values.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                configure_source(&source, transport, latency);
            }
            None
        });
        decoder::steer(&decode, choice);

        // Frames beyond the detect rate are dropped by a timestamp gate on the converter's input (see
        // `RateGate`), not by videorate: GStreamer 1.22's videorate aborts the process on variable-rate
        // streams without buffer durations (MJPEG over HTTP).
        let convert = make("videoconvert")?;
        let scale = make("videoscale")?;
        let out_caps = make("capsfilter")?;
        let mut caps = gst::Caps::builder("video/x-raw").field("format", "BGR").field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
        if settings.max_frame_width > 0 {
            caps = caps.field("width", gst::IntRange::new(16, settings.max_frame_width as i32));
        }
        out_caps.set_property("caps", caps.build());

        let live = settings.mode == Mode::Live;
        let is_file = settings.url.scheme().as_deref() == Some("file");
        let appsink = gst_app::AppSink::builder().name("frames").max_buffers(if live { 1 } else { 2 }).drop(live).sync(live && is_file).enable_last_sample(false).build();

        pipeline.add_many([&decode, &convert, &scale, &out_caps, appsink.upcast_ref()]).map_err(|e| fail(FailureKind::Other, format!("cannot assemble pipeline: {e}")))?;
        gst::Element::link_many([&convert, &scale, &out_caps, appsink.upcast_ref()]).map_err(|e| fail(FailureKind::Other, format!("cannot link pipeline: {e}")))?;

        let rate_sink = convert.static_pad("sink").ok_or_else(|| fail(FailureKind::Other, "videoconvert has no sink pad".into()))?;
        decode.connect_pad_added(move |_, pad| {
            let is_video = pad.current_caps().or_else(|| Some(pad.query_caps(None))).and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/"))).unwrap_or(false);
            if is_video && !rate_sink.is_linked() {
                if let Err(e) = pad.link(&rate_sink) {
                    tracing::warn!(error = ?e, "cannot link decoded video pad");
                }
            }
        });
        let rate_sink = convert.static_pad("sink").ok_or_else(|| fail(FailureKind::Other, "videoconvert has no sink pad".into()))?;
        decode.connect_no_more_pads(move |element| {
            if !rate_sink.is_linked() {
                gst::element_error!(element, gst::StreamError::WrongType, ("the source has no video stream"));
            }
        });

        decoder::note_choice(&pipeline, record.clone(), settings.camera_id.clone());
        let tap = settings.clips.clone().map(|ring| crate::clips::recorder::tap(&pipeline, ring));
        let input_fps = Arc::new(AtomicU64::new(0));
        if let Some(pad) = convert.static_pad("sink") {
            gate::install(&pad, RateGate::new(settings.detect_fps), record, input_fps.clone());
        }

        let bus = pipeline.bus().ok_or_else(|| fail(FailureKind::Other, "pipeline has no bus".into()))?;
        let this = Self { settings, pipeline, appsink, bus, seq: 0, input_fps, tap };
        if this.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus; surface it.
            return Err(this.bus_error().unwrap_or_else(|| this.error(FailureKind::Other, "pipeline refused to start".into())));
        }
        Ok(this)
    }

    pub fn camera_id(&self) -> &str {
        &self.settings.camera_id
    }

    /// The stream's frame rate as the decoder announced it, if it has one.
    pub fn input_fps(&self) -> Option<f64> {
        let v = self.input_fps.load(Ordering::Relaxed);
        (v > 0).then(|| v as f64 / 1000.0)
    }

    fn error(&self, kind: FailureKind, message: String) -> SourceError {
        SourceError { camera: self.settings.camera_id.clone(), kind, message: self.settings.url.scrub(&message) }
    }

    /// Drains the bus (so messages never pile up over months of running) and returns the first error.
    fn bus_error(&self) -> Option<SourceError> {
        while let Some(msg) = self.bus.pop() {
            match msg.view() {
                gst::MessageView::Error(err) => return Some(self.classify(err)),
                gst::MessageView::Warning(w) => {
                    let source = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    tracing::debug!(camera = %self.settings.camera_id, source = %source, warning = %self.settings.url.scrub(&w.error().to_string()), "GStreamer warning");
                }
                _ => {}
            }
        }
        None
    }

    fn classify(&self, err: &gst::message::Error) -> SourceError {
        let e = err.error();
        let from_hw_decoder =
            err.src().and_then(|s| s.downcast_ref::<gst::Element>().and_then(|el| el.factory())).is_some_and(|f| decoder::is_video_decoder(&f) && decoder::is_hardware(&f));
        let kind = if from_hw_decoder {
            FailureKind::HardwareDecoder
        } else if let Some(r) = e.kind::<gst::ResourceError>() {
            match r {
                gst::ResourceError::NotAuthorized => FailureKind::Unauthorized,
                gst::ResourceError::NotFound | gst::ResourceError::OpenRead | gst::ResourceError::OpenReadWrite | gst::ResourceError::Read | gst::ResourceError::Busy => {
                    FailureKind::Unreachable
                }
                _ => FailureKind::Other,
            }
        } else if let Some(s) = e.kind::<gst::StreamError>() {
            match s {
                gst::StreamError::CodecNotFound => FailureKind::MissingPlugin,
                _ => FailureKind::BadInput,
            }
        } else if e.kind::<gst::CoreError>() == Some(gst::CoreError::MissingPlugin) {
            FailureKind::MissingPlugin
        } else {
            FailureKind::Other
        };
        let source = err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into());
        let mut message = format!("{} (from {source})", e.message());
        if let Some(debug) = err.debug() {
            // GStreamer's debug text is a code location and element path, then (sometimes) the reason.
            let is_location = |l: &str| l.contains(".c(") && l.contains("(): ");
            if let Some(line) = debug.lines().rev().map(str::trim).find(|l| !l.is_empty() && !is_location(l)) {
                message.push_str(&format!(": {line}"));
            }
        }
        self.error(kind, message)
    }

    /// Waits up to `timeout` for the next frame. Errors from the pipeline come back as `Err`.
    pub fn next(&mut self, timeout: Duration) -> Result<Next, SourceError> {
        if let Some(err) = self.bus_error() {
            return Err(err);
        }
        let sample = match self.appsink.try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64)) {
            Some(s) => s,
            None => {
                if let Some(err) = self.bus_error() {
                    return Err(err);
                }
                return Ok(if self.appsink.is_eos() { Next::Eos } else { Next::Timeout });
            }
        };
        let caps = sample.caps().ok_or_else(|| self.error(FailureKind::Other, "frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| self.error(FailureKind::Other, format!("bad frame caps: {e}")))?;
        let buffer = sample.buffer_owned().ok_or_else(|| self.error(FailureKind::Other, "sample without buffer".into()))?;
        let pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
        let mapped = buffer.into_mapped_buffer_readable().map_err(|_| self.error(FailureKind::Other, "cannot map frame".into()))?;
        let stride = info.stride().first().copied().unwrap_or(0).max(0) as usize;
        let (width, height) = (info.width(), info.height());
        BgrView::new(width, height, stride, mapped.as_slice()).map_err(|e| self.error(FailureKind::Other, format!("frame buffer does not match its caps: {e}")))?;
        self.seq += 1;
        if self.seq == 1 {
            if let Some(tap) = &self.tap {
                tap.on_frames();
            }
        }
        Ok(Next::Frame(Frame { seq: self.seq, pts, arrived: std::time::Instant::now(), width, height, stride, pixels: Pixels::Gst(mapped) }))
    }

    /// Seeks back to the start (looping a file source).
    pub fn rewind(&self) -> bool {
        self.pipeline.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT, gst::ClockTime::ZERO).is_ok()
    }

    /// Sends EOS and waits briefly for it to drain, then stops the pipeline.
    pub fn close(self) {
        self.pipeline.send_event(gst::event::Eos::new());
        let _ = self.bus.timed_pop_filtered(gst::ClockTime::from_mseconds(500), &[gst::MessageType::Eos, gst::MessageType::Error]);
        // Drop sets the state to Null.
    }
}

/// How long a camera waits for its old pipeline to shut down before it goes on without it.
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);

/// Pipelines whose shutdown did not finish within [`TEARDOWN_WAIT`], since the agent started (`/metrics`).
pub static TEARDOWNS_HUNG: AtomicU64 = AtomicU64::new(0);

impl Drop for Pipeline {
    /// Shuts the pipeline down on a thread of its own, waiting for it only [`TEARDOWN_WAIT`]: rtspsrc can
    /// block for good in its change to NULL (seen in the hour-long soak: a stream that stalled as it ended
    /// left the camera thread waiting on rtspsrc's lock for 50 minutes, and the camera silent). The camera
    /// then reconnects with a new pipeline, and the old one stays with its thread, counted and logged.
    fn drop(&mut self) {
        let pipeline = self.pipeline.clone();
        let (done, finished) = std::sync::mpsc::sync_channel(1);
        let teardown = std::thread::Builder::new().name("gst-teardown".into()).spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
            let _ = done.send(());
        });
        if teardown.is_err() {
            let _ = self.pipeline.set_state(gst::State::Null);
        } else if finished.recv_timeout(TEARDOWN_WAIT).is_err() {
            TEARDOWNS_HUNG.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                camera = %self.settings.camera_id,
                waited_s = TEARDOWN_WAIT.as_secs(),
                "the old pipeline did not shut down (its GStreamer source is stuck); reconnecting without it, its threads and memory stay until the agent restarts"
            );
        }
    }
}

/// Source settings: RTSP transport and jitter buffer, and timestamps on HTTP MJPEG streams (which carry
/// none, and the rate limiter needs them).
fn configure_source(source: &gst::Element, transport: RtspTransport, latency_ms: u32) {
    let factory = source.factory().map(|f| f.name().to_string()).unwrap_or_default();
    match factory.as_str() {
        "rtspsrc" => {
            source.set_property_from_str(
                "protocols",
                match transport {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                },
            );
            source.set_property("latency", latency_ms);
            if source.has_property("tcp-timeout") {
                source.set_property("tcp-timeout", 10_000_000u64);
            }
        }
        "souphttpsrc" => {
            source.set_property("is-live", true);
            source.set_property("do-timestamp", true);
            if source.has_property("timeout") {
                source.set_property("timeout", 15u32);
            }
        }
        _ => {}
    }
}
