//! `[[cameras]]`: one camera each, with its lines, zones and motion stage.

use serde::{Deserialize, Serialize};

use super::default_true;
use crate::secret::CameraUrl;

/// URL schemes a camera source may use.
pub const SUPPORTED_URL_SCHEMES: &[&str] = &["rtsp", "rtsps", "http", "https", "file", "v4l2"];
/// Frames per second a camera hands to the detector when `detect_fps` is not set.
pub const DEFAULT_DETECT_FPS: f64 = 5.0;
/// Frames wider than this are scaled down when `max_frame_width` is not set.
pub const DEFAULT_MAX_FRAME_WIDTH: u32 = 1920;
/// The RTSP jitter buffer when `latency_ms` is not set.
pub const DEFAULT_RTSP_LATENCY_MS: u32 = 200;

/// RTSP lower transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

/// Which video decoder a camera uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderChoice {
    #[default]
    Auto,
    Software,
    Vaapi,
    Nvcodec,
    V4l2,
}

impl DecoderChoice {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecoderChoice::Auto => "auto",
            DecoderChoice::Software => "software",
            DecoderChoice::Vaapi => "vaapi",
            DecoderChoice::Nvcodec => "nvcodec",
            DecoderChoice::V4l2 => "v4l2",
        }
    }
}

/// Where a camera looks for plates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateMode {
    /// Inside detected vehicles, cropped from the full-resolution frame.
    Vehicles,
    /// Anywhere in the frame (a camera aimed at a lane), plus inside vehicles.
    Frame,
    /// Inside vehicles, plus the whole frame when the detector saw no vehicle in a frame it ran on (something
    /// moved, or a vehicle led by its plate is being followed) and every few seconds regardless: a vehicle
    /// so close that the detector misses it is still found by its plate. The default.
    #[default]
    Auto,
    /// Not at all.
    Off,
}

/// A virtual line across the road. Coordinates are fractions of the frame (0–1, x right, y down), so they
/// survive a change of resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// Name reported in events.
    pub id: String,
    /// The two ends of the line, `[[x1, y1], [x2, y2]]`.
    pub points: [[f64; 2]; 2],
    /// Any point on the side objects are on after coming *in* (the village side).
    pub in_side: [f64; 2],
}

/// A polygon zone; events record when an object's ground point entered and left it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Name reported in events.
    pub id: String,
    /// Corners in order, `[[x, y], ...]`, at least three, fractions of the frame.
    pub points: Vec<[f64; 2]>,
}

/// One camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Camera {
    /// Short id used in topics and payloads: letters, digits, `-` and `_`.
    pub id: String,
    /// Human-readable name for the duty desk, e.g. `东口进村`.
    #[serde(default)]
    pub name: Option<String>,
    /// Source: `rtsp://[user:pw@]host[:port]/path`, `rtsps://...`, `http(s)://...` (MJPEG),
    /// `file:///absolute/path.mp4`, or a USB camera as `/dev/videoN` (or `v4l2:///dev/videoN`). Credentials
    /// here are treated as secrets.
    pub url: CameraUrl,
    /// RTSP transport: `tcp` (default: survives NAT and lossy links) or `udp`.
    #[serde(default)]
    pub transport: RtspTransport,
    /// RTSP jitter buffer.
    #[serde(default = "default_rtsp_latency_ms")]
    pub latency_ms: u32,
    /// Video decoder: `auto` (a working hardware decoder if there is one, else software), `software`,
    /// `vaapi` (Intel/AMD), `nvcodec` (NVIDIA) or `v4l2` (stateful V4L2 decoders on ARM boards).
    #[serde(default)]
    pub decoder: DecoderChoice,
    /// Restart the stream when no frame arrives for this long. Default: 5 frame intervals of the stream (at
    /// the detect rate at most), and never less than 10 s, so slow cameras are not restarted.
    #[serde(default)]
    pub stall_timeout_secs: Option<f64>,
    /// Longest wait between reconnection attempts (the wait doubles from 1 s up to this, with jitter).
    #[serde(default = "default_camera_reconnect_max_secs")]
    pub reconnect_max_secs: f64,
    /// Whether the agent opens this camera.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Frames per second handed to the detector; the rest are dropped before colour conversion.
    #[serde(default = "default_detect_fps")]
    pub detect_fps: f64,
    /// For `file://` sources: start again from the beginning when the file ends; otherwise the camera stops
    /// with state `ended`.
    #[serde(default)]
    pub loop_file: bool,
    /// Where to look for licence plates: `auto` (vehicles, and the whole frame when no vehicle is seen and
    /// every few seconds), `vehicles`, `frame` (a camera aimed at a lane) or `off`.
    #[serde(default)]
    pub plates: PlateMode,
    /// Lines whose crossing gives an object its direction (`in`/`out`).
    #[serde(default)]
    pub lines: Vec<Line>,
    /// Zones whose entry and dwell time are recorded.
    #[serde(default)]
    pub zones: Vec<Zone>,
    /// Frames wider than this are scaled down inside GStreamer (aspect ratio kept); 0 keeps the native size.
    #[serde(default = "default_max_frame_width")]
    pub max_frame_width: u32,
    /// Motion gating: the detector runs only while something moves or is being followed.
    #[serde(default)]
    pub motion: Motion,
}

/// A camera's motion stage. Each analysed frame is reduced to a small grey picture and compared with a
/// background that follows slow light changes; the detector runs when a patch of the picture changes,
/// while objects are being followed, and at least every `keepalive_secs` whatever happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Motion {
    /// Off: the detector runs on every analysed frame.
    pub enabled: bool,
    /// With nothing moving and nothing followed, the detector still runs this often (catches anything
    /// that crept in too slowly to count as motion).
    pub keepalive_secs: f64,
    /// Smallest change of grey level (0–255) a pixel must show, above its own usual flicker, to count as
    /// moving; lower is more sensitive.
    pub threshold: u8,
    /// Smallest moving patch, as a fraction of the frame, that wakes the detector.
    pub min_area: f64,
    /// Areas to ignore (swaying trees, a flag, a clock overlay): polygons `[[x, y], ...]` in fractions of
    /// the frame.
    pub masks: Vec<Vec<[f64; 2]>>,
}

impl Default for Motion {
    fn default() -> Self {
        Self { enabled: true, keepalive_secs: 2.0, threshold: 12, min_area: 0.002, masks: Vec::new() }
    }
}

fn default_rtsp_latency_ms() -> u32 {
    DEFAULT_RTSP_LATENCY_MS
}
fn default_camera_reconnect_max_secs() -> f64 {
    30.0
}
fn default_detect_fps() -> f64 {
    DEFAULT_DETECT_FPS
}
fn default_max_frame_width() -> u32 {
    DEFAULT_MAX_FRAME_WIDTH
}
