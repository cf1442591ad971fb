//! The settings as written in `agent.toml`. These are plain data: the runtime state built from them lives in
//! the agent. Every field has a doc comment, units are in the names and defaults are in the `default_*`
//! functions and `Default` impls below, nowhere else.
//!
//! Reload: fields marked *(restart)* are read once at start; everything else is applied on `SIGHUP`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::{CameraUrl, Secret};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where this checkpoint sits in the town's grid; becomes the `{site}` part of every MQTT topic. *(restart)*
    pub site: Site,
    /// The town platform's MQTT broker. Without this section the agent runs standalone. *(restart)*
    #[serde(default)]
    pub mqtt: Option<Mqtt>,
    /// Model files, ONNX Runtime and inference threads. *(restart)*
    #[serde(default)]
    pub models: Models,
    /// Where the agent keeps its state (outbox, snapshots). *(restart)*
    #[serde(default)]
    pub storage: Storage,
    /// Tracking and the events it produces.
    #[serde(default)]
    pub events: Events,
    /// The Prometheus `/metrics` and `/healthz` endpoint. *(restart)*
    #[serde(default)]
    pub metrics: Metrics,
    /// The duty desk's alert feed web page. *(restart)*
    #[serde(default)]
    pub web: Web,
    /// Alert rules, evaluated on every event.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Policy from the platform: signing keys. *(restart)*
    #[serde(default)]
    pub control: Control,
    /// Reports up the grid: flow counts. *(restart)*
    #[serde(default)]
    pub reports: Reports,
    /// The cameras this agent watches.
    #[serde(default)]
    pub cameras: Vec<Camera>,
}

/// The checkpoint's place in the grid hierarchy the platform is organised by. Each level is one MQTT topic
/// level, so the topic path always has exactly five levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// City (市), e.g. `xining`.
    pub city: String,
    /// District or county (区/县), e.g. `chengzhong`.
    pub district: String,
    /// Town or street office (镇/街道), e.g. `nanchuan`.
    pub town: String,
    /// Village or community (村/社区), e.g. `xiaozhuang`.
    pub village: String,
    /// The checkpoint itself (卡口), e.g. `east-gate`.
    pub checkpoint: String,
    /// Human-readable name for the duty desk, e.g. `小庄村东口`. Not used in topics.
    #[serde(default)]
    pub name: Option<String>,
}

impl Site {
    /// The five levels in order, city first.
    pub fn levels(&self) -> [(&'static str, &str); 5] {
        [("city", &self.city), ("district", &self.district), ("town", &self.town), ("village", &self.village), ("checkpoint", &self.checkpoint)]
    }

    /// The fixed-depth topic path, e.g. `xining/chengzhong/nanchuan/xiaozhuang/east-gate`.
    pub fn path(&self) -> String {
        self.levels().map(|(_, v)| v).join("/")
    }
}

/// Connection to the MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker TCP port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// MQTT client id. Default: `edge-agent-` followed by the site path with `/` replaced by `.`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// First topic level(s) before the site path.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// MQTT keep-alive interval.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// How often `{prefix}/{site}/stats` is published.
    #[serde(default = "default_stats_interval_secs")]
    pub stats_interval_secs: u64,
    /// Minimum time between two `detections` messages of one camera; 0 turns the topic off.
    #[serde(default = "default_detections_interval_ms")]
    pub detections_interval_ms: u64,
    /// User name for the broker, if it requires one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the broker. Prefer `password_file` or `password_env` so the secret stays out of this file.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the broker password (first line), e.g. a systemd credential.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the broker password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// TLS to the broker; without this section the connection is plain TCP.
    #[serde(default)]
    pub tls: Option<MqttTls>,
    /// QoS 1 messages (events, snapshots, alerts) awaiting PUBACK at any time.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// Longest wait between reconnection attempts (the wait doubles from 0.5 s up to this, with jitter).
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
}

/// TLS settings (rustls; the broker's host name is verified against its certificate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that require client authentication (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// Where model files are and how they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// Directory with the model files; relative paths are relative to the config file.
    #[serde(default = "default_models_dir")]
    pub dir: PathBuf,
    /// Path of `libonnxruntime.so`. Default: `$ORT_DYLIB_PATH`, then the packaged library.
    #[serde(default)]
    pub onnxruntime_library: Option<PathBuf>,
    /// Where inference runs: `cpu` or `cuda` (falls back to `cpu` with a warning when CUDA is unavailable).
    #[serde(default)]
    pub execution_provider: ExecutionProvider,
    /// Threads one inference may use. 1 (the default) with one detector session per core analyses several
    /// cameras' frames side by side and spends far less CPU than threads that wait on each other.
    #[serde(default = "default_intra_threads")]
    pub intra_threads: usize,
    /// Detector threads, each with its own copy of the models, each analysing one frame at a time: 0 (the
    /// default) is one per CPU core, at most 4 (one with `execution_provider = "cuda"`).
    #[serde(default)]
    pub detector_sessions: usize,
    /// The person/vehicle detector.
    #[serde(default)]
    pub detector: Detector,
    /// Licence-plate recognition.
    #[serde(default)]
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
#[serde(deny_unknown_fields)]
pub struct Detector {
    /// Model file name, relative to `models.dir`, or an absolute path.
    #[serde(default = "default_detector_file")]
    pub file: PathBuf,
    /// Minimum score (objectness × class probability) for a detection to count.
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    /// IoU above which two boxes of one class are the same object (per-class NMS).
    #[serde(default = "default_nms_iou_threshold")]
    pub nms_iou_threshold: f32,
    /// COCO labels the agent keeps; everything else the model sees is ignored.
    #[serde(default = "default_detector_labels")]
    pub labels: Vec<String>,
}

/// Licence-plate recognition: detector, reader and colour classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plates {
    /// Read plates at all (cameras can still turn it off one by one).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Plate detector run on vehicle regions, relative to `models.dir`.
    #[serde(default = "default_plate_region_detector")]
    pub region_detector: PathBuf,
    /// Plate detector run on whole frames (cameras with `plates = "frame"`): the 640 model finds small plates.
    #[serde(default = "default_plate_frame_detector")]
    pub frame_detector: PathBuf,
    /// Text recogniser (PP-OCRv4) reading the plates.
    #[serde(default = "default_plate_reader")]
    pub reader: PathBuf,
    /// Colour classifier (blue/green/yellow); the pixels decide black and white.
    #[serde(default = "default_plate_colour")]
    pub colour_classifier: PathBuf,
    /// Minimum plate-detector score.
    #[serde(default = "default_plate_score_threshold")]
    pub score_threshold: f32,
    /// A read whose least certain character is below this probability is rejected, not published.
    #[serde(default = "default_plate_min_char_confidence")]
    pub min_char_confidence: f32,
    /// Largest number of vehicles searched for plates per frame (largest first).
    #[serde(default = "default_plate_max_vehicles")]
    pub max_vehicles_per_frame: usize,
    /// Plates read per model run: 2 is fastest per plate on a 2-core CPU; raise it on a GPU.
    #[serde(default = "default_plate_reader_batch")]
    pub reader_batch: usize,
    /// A vehicle's plate is settled once this many reads agree with its voted text (each at least 0.9
    /// confident); a settled vehicle is not searched again. 0 searches every vehicle in every frame.
    #[serde(default = "default_plate_settle_reads")]
    pub settle_reads: u32,
    /// Vehicles narrower than this (pixels of the analysed frame) are not searched: too small for a
    /// readable plate.
    #[serde(default = "default_plate_min_vehicle_width")]
    pub min_vehicle_width_px: u32,
}

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

/// Local state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// Directory for the outbox, snapshots and other state; relative paths are relative to the config file.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Local snapshot copies (for the duty desk) are deleted after this many days.
    #[serde(default = "default_snapshot_retention_days")]
    pub snapshot_retention_days: u32,
    /// The outbox holds at most this many bytes of undelivered messages; beyond it the oldest are evicted.
    #[serde(default = "default_outbox_max_bytes")]
    pub outbox_max_bytes: u64,
    /// Undelivered messages older than this are evicted.
    #[serde(default = "default_outbox_max_age_hours")]
    pub outbox_max_age_hours: u64,
    /// Local event log (`events/YYYY-MM-DD.jsonl`) files are deleted after this many days.
    #[serde(default = "default_snapshot_retention_days")]
    pub event_log_retention_days: u32,
    /// Free space the agent keeps on the state directory's file system, in MiB. Below it the agent deletes
    /// its own oldest local snapshots, then the oldest days of its local logs and history, and if that is
    /// not enough refuses new snapshots (never events or alerts) until space comes back.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
}

/// The local observability endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Serve `/metrics` (Prometheus text format) and `/healthz`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address and port to listen on. Loopback by default: put a reverse proxy or the Prometheus agent on
    /// the same PC rather than opening it to the network. Port 0 picks a free port (logged at start).
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true, listen: default_metrics_listen() }
    }
}

pub fn default_metrics_listen() -> String {
    "127.0.0.1:9810".into()
}

/// The local alert feed for duty staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Web {
    /// Serve the alert feed page.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address and port; `0.0.0.0:8080` for the village office network, `127.0.0.1:8080` for this PC only.
    #[serde(default = "default_web_listen")]
    pub listen: String,
    /// Accounts file (`edge-agent users add`). Default: `users.json` in the state directory.
    #[serde(default)]
    pub users_file: Option<PathBuf>,
    /// A signed-in session ends after this many hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// Interface language by default: `zh` or `en` (each user can switch).
    #[serde(default = "default_language")]
    pub language: String,
    /// HTTPS: PEM certificate chain and private key. Without both, plain HTTP (use it on a closed network only).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Host names (besides this PC's own name, `localhost` and IP addresses) the page may be reached by,
    /// e.g. a DNS name the village office uses for this PC. Requests for any other name are refused.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// What duty staff can record when they dispose of an alert.
    #[serde(default = "default_outcomes")]
    pub outcomes: Vec<Outcome>,
}

/// One outcome of an alert: an id for the platform and labels for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub id: String,
    pub zh: String,
    pub en: String,
}

pub fn default_outcomes() -> Vec<Outcome> {
    [
        ("released", "核实放行", "Released after checking"),
        ("turned_back", "劝返", "Turned back"),
        ("registered", "登记", "Registered"),
        ("handed_over", "上报", "Handed over"),
        ("false_alarm", "误报", "False alarm"),
    ]
    .iter()
    .map(|(id, zh, en)| Outcome { id: (*id).into(), zh: (*zh).into(), en: (*en).into() })
    .collect()
}

impl Default for Web {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_web_listen(),
            users_file: None,
            session_hours: default_session_hours(),
            language: default_language(),
            tls_cert_file: None,
            tls_key_file: None,
            allowed_hosts: Vec::new(),
            outcomes: default_outcomes(),
        }
    }
}

pub fn default_web_listen() -> String {
    "0.0.0.0:8080".into()
}
pub fn default_session_hours() -> u32 {
    12
}
pub fn default_language() -> String {
    "zh".into()
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert rule. `kind` chooses what it looks for; the other keys are common to all kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Name reported in alerts: letters, digits, `-` and `_`.
    pub id: String,
    /// What the rule looks for.
    #[serde(flatten)]
    pub kind: RuleKind,
    #[serde(default)]
    pub severity: Severity,
    /// Cameras the rule applies to; empty = all.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// After an alert, the same plate (or object, or zone) does not alert again under this rule for this long.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

pub fn default_cooldown_secs() -> u64 {
    600
}

/// The keys every rule has, whatever its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleCommon {
    id: String,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    cameras: Vec<String>,
    #[serde(default = "default_cooldown_secs")]
    cooldown_secs: u64,
    #[serde(default = "default_true")]
    enabled: bool,
}

// By hand because serde cannot combine `flatten` with `deny_unknown_fields`: the common keys are split off
// and the rest must be exactly the keys of the rule's kind.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut common = toml::Table::new();
        for key in ["id", "severity", "cameras", "cooldown_secs", "enabled"] {
            if let Some(v) = table.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let c: RuleCommon = common.try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        let kind: RuleKind = table.try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(Rule { id: c.id, kind, severity: c.severity, cameras: c.cameras, cooldown_secs: c.cooldown_secs, enabled: c.enabled })
    }
}

/// The kinds of rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Plates to look out for. `tolerance = 1` also matches a read that differs from a listed plate in exactly
    /// one character at the same position (one misread character; a missing or extra character never matches).
    WatchList {
        #[serde(default)]
        plates: Vec<String>,
        /// Listed plates with an expiry and a reason shown to duty staff.
        #[serde(default)]
        entries: Vec<WatchEntry>,
        #[serde(default)]
        tolerance: u8,
    },
    /// Plates whose registration area needs follow-up: prefixes such as `鄂` (a province) or `鄂A` (a city).
    KeyRegion { prefixes: Vec<String> },
    /// At least `min_people` people inside `zone` for at least `min_secs` seconds.
    Crowding { zone: String, min_people: u32, min_secs: f64 },
    /// People or vehicles appearing between `from` and `to` (local time, `HH:MM`; the window may pass midnight).
    AfterHours {
        from: String,
        to: String,
        /// `person` and/or `vehicle`; empty = both.
        #[serde(default)]
        types: Vec<String>,
        /// Only objects going this way (`in` or `out`); unset = any, alerting as soon as the object appears.
        #[serde(default)]
        direction: Option<String>,
    },
}

/// A watch-list entry that expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEntry {
    pub plate: String,
    /// RFC 3339 time after which the entry no longer matches.
    #[serde(default)]
    pub until: Option<String>,
    /// Why the vehicle is listed, shown to duty staff (at most 200 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Policy from the platform (see the README, "Managing checkpoints from the platform").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// Take policy documents from the platform over MQTT (needs `[mqtt]`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Ed25519 public keys (64 hex characters each). When any is set, policy documents must be signed by one
    /// of them; otherwise they are trusted as the broker's ACL lets them through.
    #[serde(default)]
    pub trusted_keys: Vec<String>,
}

/// Reports up the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reports {
    /// Length of a flow-count period (people and vehicles by direction, plates, alerts per camera); must
    /// divide a day. Default: an hour.
    #[serde(default = "default_counts_period_secs")]
    pub counts_period_secs: u32,
}

impl Default for Reports {
    fn default() -> Self {
        Self { counts_period_secs: default_counts_period_secs() }
    }
}

pub fn default_counts_period_secs() -> u32 {
    3600
}

impl Default for Control {
    fn default() -> Self {
        Self { enabled: true, trusted_keys: Vec::new() }
    }
}

/// Tracking objects and turning them into events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Frames in a row an object must be seen before its `new` event.
    #[serde(default = "default_confirm_frames")]
    pub confirm_frames: u32,
    /// An object unseen for this long has left: its `end` event goes out.
    #[serde(default = "default_lost_timeout_secs")]
    pub lost_timeout_secs: f64,
    /// Detections at or above this score can start a track.
    #[serde(default = "default_track_high_score")]
    pub track_high_score: f32,
    /// Weaker detections (down to this score) only keep existing tracks alive (an object partly hidden).
    #[serde(default = "default_track_low_score")]
    pub track_low_score: f32,
    /// At most one `update` per object in this interval; later changes wait for the next slot or the `end`.
    #[serde(default = "default_update_interval_ms")]
    pub update_interval_ms: u64,
    /// Snapshots larger than this are re-encoded smaller.
    #[serde(default = "default_snapshot_max_bytes")]
    pub snapshot_max_bytes: usize,
    /// Snapshots wider than this are scaled down.
    #[serde(default = "default_snapshot_max_width")]
    pub snapshot_max_width: u32,
    /// Context around the object in a snapshot, as a fraction of its size on each side.
    #[serde(default = "default_snapshot_context")]
    pub snapshot_context: f32,
    /// A vehicle with a read plate that is lost inside the frame (stopped, hidden for a moment) is kept
    /// this long: if a vehicle with the same plate appears in that time, it continues the same passing.
    /// Its `end` goes out when the memory runs out. 0 turns the memory off.
    #[serde(default = "default_plate_memory_secs")]
    pub plate_memory_secs: f64,
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
#[serde(deny_unknown_fields)]
pub struct Motion {
    /// Off: the detector runs on every analysed frame.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// With nothing moving and nothing followed, the detector still runs this often (catches anything
    /// that crept in too slowly to count as motion).
    #[serde(default = "default_motion_keepalive_secs")]
    pub keepalive_secs: f64,
    /// Smallest change of grey level (0–255) a pixel must show, above its own usual flicker, to count as
    /// moving; lower is more sensitive.
    #[serde(default = "default_motion_threshold")]
    pub threshold: u8,
    /// Smallest moving patch, as a fraction of the frame, that wakes the detector.
    #[serde(default = "default_motion_min_area")]
    pub min_area: f64,
    /// Areas to ignore (swaying trees, a flag, a clock overlay): polygons `[[x, y], ...]` in fractions of
    /// the frame.
    #[serde(default)]
    pub masks: Vec<Vec<[f64; 2]>>,
}

impl Default for Motion {
    fn default() -> Self {
        Self { enabled: true, keepalive_secs: default_motion_keepalive_secs(), threshold: default_motion_threshold(), min_area: default_motion_min_area(), masks: Vec::new() }
    }
}

pub fn default_motion_keepalive_secs() -> f64 {
    2.0
}
pub fn default_motion_threshold() -> u8 {
    12
}
pub fn default_motion_min_area() -> f64 {
    0.002
}
pub fn default_plate_settle_reads() -> u32 {
    5
}
pub fn default_plate_min_vehicle_width() -> u32 {
    96
}

pub const SUPPORTED_URL_SCHEMES: &[&str] = &["rtsp", "rtsps", "http", "https", "file", "v4l2"];

fn default_true() -> bool {
    true
}
pub fn default_mqtt_port() -> u16 {
    1883
}
/// The first level of every topic when `[mqtt]` does not set one (or there is no `[mqtt]`).
pub const DEFAULT_TOPIC_PREFIX: &str = "checkpoint";

pub fn default_topic_prefix() -> String {
    DEFAULT_TOPIC_PREFIX.to_string()
}
pub fn default_keep_alive_secs() -> u64 {
    30
}
pub fn default_stats_interval_secs() -> u64 {
    30
}
pub fn default_detections_interval_ms() -> u64 {
    1000
}
pub fn default_models_dir() -> PathBuf {
    PathBuf::from("/var/lib/edge-agent/models")
}
/// CPU cores to use for inference: the machine's, at most 4.
pub fn cpu_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(4)
}

pub fn default_intra_threads() -> usize {
    1
}
pub fn default_detector_file() -> PathBuf {
    PathBuf::from("yolox_nano_416.onnx")
}
pub fn default_score_threshold() -> f32 {
    0.3
}
pub fn default_nms_iou_threshold() -> f32 {
    0.45
}
/// The road users a checkpoint cares about.
pub fn default_detector_labels() -> Vec<String> {
    ["person", "bicycle", "car", "motorcycle", "bus", "truck"].map(String::from).to_vec()
}
pub fn default_plate_region_detector() -> PathBuf {
    PathBuf::from("plate_det_y5fu_320.onnx")
}
pub fn default_plate_frame_detector() -> PathBuf {
    PathBuf::from("plate_det_y5fu_640.onnx")
}
pub fn default_plate_reader() -> PathBuf {
    PathBuf::from("ppocr_v4_rec.onnx")
}
pub fn default_plate_colour() -> PathBuf {
    PathBuf::from("plate_color_cls_96.onnx")
}
pub fn default_plate_score_threshold() -> f32 {
    0.3
}
/// Measured on the dev crops: correct reads never went below 0.088, partial plates and signs never above
/// 0.002 (README, "Licence plates").
pub fn default_plate_min_char_confidence() -> f32 {
    0.02
}
pub fn default_plate_max_vehicles() -> usize {
    4
}
pub fn default_plate_reader_batch() -> usize {
    2
}
pub fn default_max_inflight() -> u16 {
    32
}
pub fn default_reconnect_max_secs() -> u64 {
    30
}
/// About a week of a busy village gate (events plus snapshots).
pub fn default_outbox_max_bytes() -> u64 {
    1 << 30
}
pub fn default_min_free_mb() -> u64 {
    256
}
pub fn default_outbox_max_age_hours() -> u64 {
    24 * 7
}
pub fn default_snapshot_retention_days() -> u32 {
    7
}
pub fn default_confirm_frames() -> u32 {
    3
}
pub fn default_plate_memory_secs() -> f64 {
    10.0
}

pub fn default_lost_timeout_secs() -> f64 {
    2.0
}
pub fn default_track_high_score() -> f32 {
    0.5
}
pub fn default_track_low_score() -> f32 {
    0.1
}
pub fn default_update_interval_ms() -> u64 {
    1000
}
pub fn default_snapshot_max_bytes() -> usize {
    200 * 1024
}
pub fn default_snapshot_max_width() -> u32 {
    640
}
pub fn default_snapshot_context() -> f32 {
    0.25
}
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/edge-agent")
}
pub fn default_rtsp_latency_ms() -> u32 {
    200
}
pub fn default_camera_reconnect_max_secs() -> f64 {
    30.0
}
pub fn default_detect_fps() -> f64 {
    5.0
}
pub fn default_max_frame_width() -> u32 {
    1920
}

impl Default for Models {
    fn default() -> Self {
        Self {
            dir: default_models_dir(),
            onnxruntime_library: None,
            execution_provider: ExecutionProvider::default(),
            intra_threads: default_intra_threads(),
            detector_sessions: 0,
            detector: Detector::default(),
            plates: Plates::default(),
        }
    }
}

impl Default for Plates {
    fn default() -> Self {
        Self {
            enabled: true,
            region_detector: default_plate_region_detector(),
            frame_detector: default_plate_frame_detector(),
            reader: default_plate_reader(),
            colour_classifier: default_plate_colour(),
            score_threshold: default_plate_score_threshold(),
            min_char_confidence: default_plate_min_char_confidence(),
            max_vehicles_per_frame: default_plate_max_vehicles(),
            reader_batch: default_plate_reader_batch(),
            settle_reads: default_plate_settle_reads(),
            min_vehicle_width_px: default_plate_min_vehicle_width(),
        }
    }
}

impl Default for Detector {
    fn default() -> Self {
        Self { file: default_detector_file(), score_threshold: default_score_threshold(), nms_iou_threshold: default_nms_iou_threshold(), labels: default_detector_labels() }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            snapshot_retention_days: default_snapshot_retention_days(),
            outbox_max_bytes: default_outbox_max_bytes(),
            outbox_max_age_hours: default_outbox_max_age_hours(),
            event_log_retention_days: default_snapshot_retention_days(),
            min_free_mb: default_min_free_mb(),
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self {
            confirm_frames: default_confirm_frames(),
            lost_timeout_secs: default_lost_timeout_secs(),
            plate_memory_secs: default_plate_memory_secs(),
            track_high_score: default_track_high_score(),
            track_low_score: default_track_low_score(),
            update_interval_ms: default_update_interval_ms(),
            snapshot_max_bytes: default_snapshot_max_bytes(),
            snapshot_max_width: default_snapshot_max_width(),
            snapshot_context: default_snapshot_context(),
        }
    }
}

impl Mqtt {
    /// The client id to use, derived from the site when not configured.
    pub fn client_id_for(&self, site: &Site) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("edge-agent-{}", site.path().replace('/', ".")))
    }
}

impl Models {
    /// Detector threads to start: `detector_sessions`, or for 0 one per CPU core (at most 4; one on CUDA).
    pub fn sessions(&self) -> usize {
        match (self.detector_sessions, self.execution_provider) {
            (0, ExecutionProvider::Cuda) => 1,
            (0, _) => cpu_cores(),
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

impl Config {
    /// The first level of every topic: `mqtt.topic_prefix`, or [`DEFAULT_TOPIC_PREFIX`] without `[mqtt]`
    /// (topics are still built for the local record and the platform's policy levels).
    pub fn topic_prefix(&self) -> &str {
        self.mqtt.as_ref().map_or(DEFAULT_TOPIC_PREFIX, |m| m.topic_prefix.as_str())
    }

    /// The sections of `new` that differ from `self` and are read only at start: applying them needs a
    /// restart. Built from an exhaustive destructure, so a new section must be sorted into "reloadable" or
    /// "restart" here before the crate compiles.
    pub fn restart_required(&self, new: &Config) -> Vec<&'static str> {
        let Config { site, mqtt, models, storage, events: _, metrics, web, rules: _, control, reports, cameras: _ } = self;
        let mut changed = Vec::new();
        for (name, differs) in [
            ("site", *site != new.site),
            ("mqtt", *mqtt != new.mqtt),
            ("models", *models != new.models),
            ("storage", *storage != new.storage),
            ("metrics", *metrics != new.metrics),
            ("web", *web != new.web),
            ("control", *control != new.control),
            ("reports", *reports != new.reports),
        ] {
            if differs {
                changed.push(name);
            }
        }
        changed
    }
}
