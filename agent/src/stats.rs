//! Per-camera counters and health, shared between the camera threads that write them and the tasks that
//! report them. Counters only ever grow; reports are differences between two snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// What a camera is doing right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraState {
    /// Opening the source (first time or after a failure).
    Connecting,
    /// Frames are arriving.
    Online,
    /// The source is open but no frame came for too long; it is being restarted.
    Stalled,
    /// The camera rejected the credentials.
    Unauthorized,
    /// The camera (host, port or file) could not be reached.
    Unreachable,
    /// The source failed in a way retrying will not fix soon (corrupt file, unsupported stream); retried
    /// with the longest back-off.
    Failed,
    /// A file source played to its end.
    Ended,
    /// The camera is switched off in the config.
    Disabled,
    /// The agent stopped the camera (shutdown).
    Stopped,
}

impl CameraState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Online => "online",
            CameraState::Stalled => "stalled",
            CameraState::Unauthorized => "unauthorized",
            CameraState::Unreachable => "unreachable",
            CameraState::Failed => "failed",
            CameraState::Ended => "ended",
            CameraState::Disabled => "disabled",
            CameraState::Stopped => "stopped",
        }
    }
}

/// The health of one camera: state, why, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: CameraState,
    /// The last error, already scrubbed of credentials.
    pub last_error: Option<String>,
    pub since: chrono::DateTime<chrono::Utc>,
    /// Frame size of the running pipeline, once known.
    pub frame_size: Option<(u32, u32)>,
    /// The video decoder in use (`avdec_h264 (software)`), once known.
    pub decoder: Option<String>,
}

/// Counters of one camera. All monotonic.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames out of the decoder.
    pub frames_in: AtomicU64,
    /// Frames that passed the detect-rate gate.
    pub frames_sampled: AtomicU64,
    /// Frames the detector analysed.
    pub frames_analysed: AtomicU64,
    /// Sampled frames the motion stage let go without inference (nothing moving, nothing followed).
    pub frames_gated: AtomicU64,
    /// Vehicles not searched for a plate: settled, not due ([`crate::events::plate_search`]), or too small.
    pub plate_searches_skipped: AtomicU64,
    /// Objects detected (after label filtering).
    pub detections: AtomicU64,
    /// Sum and count of inference times, microseconds.
    pub inference_us_total: AtomicU64,
    pub inference_runs: AtomicU64,
    /// Largest inference time since the last report, microseconds (reset by the reporter).
    pub inference_us_max: AtomicU64,
    /// Plates read.
    pub plates: AtomicU64,
    /// Time in the plate chain, microseconds, and how many frames it ran on.
    pub plate_us_total: AtomicU64,
    pub plate_runs: AtomicU64,
    /// Pipeline (re)starts.
    pub restarts: AtomicU64,
    /// Messages not sent: detections the MQTT queue had no room for, events and alerts the outbox refused.
    pub messages_dropped: AtomicU64,
    /// Batches the outbox took but did not commit while the camera ran (a long storage failure, or the
    /// camera stopped first): delivered upstream when committed, but not in the local record.
    pub local_records_skipped: AtomicU64,
    /// Inference times by histogram bucket ([`INFERENCE_BUCKETS_S`], plus one for larger), not cumulative.
    pub inference_buckets: [AtomicU64; INFERENCE_BUCKETS_S.len() + 1],
    /// From a frame's arrival out of the pipeline to the `new` event it completed being committed to the
    /// outbox (handed to MQTT): by bucket ([`LATENCY_BUCKETS_S`], plus one for larger), and the sum in µs.
    pub event_latency_buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    pub event_latency_us_total: AtomicU64,
}

/// The histogram bucket of `took` among upper `bounds` in seconds (`bounds.len()` for larger).
fn bucket(bounds: &[f64], took: Duration) -> usize {
    bounds.iter().position(|&b| took.as_secs_f64() <= b).unwrap_or(bounds.len())
}

/// Upper bounds (seconds) of the `new`-event latency histogram buckets exported on `/metrics`.
pub const LATENCY_BUCKETS_S: [f64; 12] = [0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0];

/// Upper bounds (seconds) of the inference-latency histogram buckets exported on `/metrics`.
pub const INFERENCE_BUCKETS_S: [f64; 10] = [0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0];

/// Milliseconds since the process started, for heartbeats.
fn process_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A camera's shared record: counters plus health.
#[derive(Debug)]
pub struct CameraRecord {
    pub id: String,
    pub detect_fps: f64,
    pub counters: CameraCounters,
    health: Mutex<Health>,
    /// When the camera's thread last went round its loop ([`CameraRecord::beat`]).
    heartbeat_ms: AtomicU64,
    /// Frames per second decoded and analysed over the last sampling interval (f64 bits).
    fps_in: AtomicU64,
    fps_analysed: AtomicU64,
    /// Asks for the next analysed frame as a JPEG (the `snapshot` command).
    frame_requests: JpegRequests,
    /// The duty desk's live view waiting for the next analysed frame, drawn on ([`crate::live`]).
    live_requests: JpegRequests,
    /// Flow counts of the open periods.
    pub flow: crate::counts::FlowCounter,
    /// What camera health has raised and not cleared, for the duty desk.
    problems: Mutex<Vec<CameraProblem>>,
}

/// Requests for a camera's next frame as a JPEG, answered by its thread.
#[derive(Debug, Default)]
struct JpegRequests(Mutex<Vec<tokio::sync::oneshot::Sender<Vec<u8>>>>);

impl JpegRequests {
    fn ask(&self) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        rx
    }

    /// The requests waiting; nothing is allocated when there are none.
    fn take(&self) -> Vec<tokio::sync::oneshot::Sender<Vec<u8>>> {
        let mut requests = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if requests.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut *requests)
        }
    }
}

/// A camera health condition raised now ([`crate::health`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CameraProblem {
    /// `camera_offline`, `camera_frozen`, `camera_covered` or `camera_moved`.
    pub kind: &'static str,
    pub since: chrono::DateTime<chrono::Utc>,
    pub detail: String,
}

impl CameraRecord {
    /// Camera health raised `kind` (with when it started and what was measured), or cleared it (`None`).
    pub fn set_problem(&self, kind: &'static str, raised: Option<(chrono::DateTime<chrono::Utc>, String)>) {
        let mut problems = self.problems.lock().unwrap_or_else(|p| p.into_inner());
        problems.retain(|p| p.kind != kind);
        if let Some((since, detail)) = raised {
            problems.push(CameraProblem { kind, since, detail });
        }
    }

    /// The camera health conditions raised now.
    pub fn problems(&self) -> Vec<CameraProblem> {
        self.problems.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Counts flow in periods of `secs` (default: an hour).
    pub fn with_counts_period(mut self, secs: u32) -> Self {
        self.flow = crate::counts::FlowCounter::new(secs);
        self
    }

    /// The next analysed frame of this camera, as a JPEG.
    pub fn request_frame(&self) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
        self.frame_requests.ask()
    }

    /// Requests waiting for a frame (the camera thread answers them).
    pub fn take_frame_requests(&self) -> Vec<tokio::sync::oneshot::Sender<Vec<u8>>> {
        self.frame_requests.take()
    }

    /// The next analysed frame with the detections, lines, zones and masks drawn on it (the live view).
    pub fn request_live(&self) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
        self.live_requests.ask()
    }

    /// Live views waiting (the camera thread answers them); empty, and nothing drawn, when nobody watches.
    pub fn take_live_requests(&self) -> Vec<tokio::sync::oneshot::Sender<Vec<u8>>> {
        self.live_requests.take()
    }

    pub fn new(id: impl Into<String>, detect_fps: f64, state: CameraState) -> Self {
        Self {
            id: id.into(),
            detect_fps,
            counters: CameraCounters::default(),
            health: Mutex::new(Health { state, last_error: None, since: chrono::Utc::now(), frame_size: None, decoder: None }),
            heartbeat_ms: AtomicU64::new(process_ms()),
            fps_in: AtomicU64::new(0),
            fps_analysed: AtomicU64::new(0),
            frame_requests: JpegRequests::default(),
            live_requests: JpegRequests::default(),
            flow: crate::counts::FlowCounter::new(edge_config::Reports::default().counts_period_secs),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// Called by the camera's thread every time round its loop: proof, for the service watchdog, that the
    /// thread is not stuck in the source, the detector or the event builder.
    pub fn beat(&self) {
        self.heartbeat_ms.store(process_ms(), Ordering::Relaxed);
    }

    /// Time since the last [`CameraRecord::beat`].
    pub fn since_beat(&self) -> Duration {
        Duration::from_millis(process_ms().saturating_sub(self.heartbeat_ms.load(Ordering::Relaxed)))
    }

    /// Stores the frame rates measured between two snapshots.
    pub fn set_rates(&self, before: &CounterSnapshot, after: &CounterSnapshot) {
        let secs = after.at.duration_since(before.at).as_secs_f64();
        if secs <= 0.0 {
            return;
        }
        let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs).to_bits();
        self.fps_in.store(rate(after.frames_in, before.frames_in), Ordering::Relaxed);
        self.fps_analysed.store(rate(after.frames_analysed, before.frames_analysed), Ordering::Relaxed);
    }

    /// Decoded and analysed frames per second over the last sampling interval.
    pub fn rates(&self) -> (f64, f64) {
        (f64::from_bits(self.fps_in.load(Ordering::Relaxed)), f64::from_bits(self.fps_analysed.load(Ordering::Relaxed)))
    }

    pub fn health(&self) -> Health {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets the state; returns whether it changed (so the caller can republish the status).
    pub fn set_state(&self, state: CameraState, error: Option<String>) -> bool {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let changed = h.state != state || (error.is_some() && h.last_error != error);
        if h.state != state {
            h.since = chrono::Utc::now();
        }
        h.state = state;
        if error.is_some() {
            h.last_error = error;
        }
        changed
    }

    pub fn set_decoder(&self, decoder: String) {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).decoder = Some(decoder);
    }

    pub fn set_frame_size(&self, width: u32, height: u32) {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).frame_size = Some((width, height));
    }

    pub fn record_inference(&self, took: Duration, detections: usize) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let c = &self.counters;
        c.frames_analysed.fetch_add(1, Ordering::Relaxed);
        c.detections.fetch_add(detections as u64, Ordering::Relaxed);
        c.inference_us_total.fetch_add(us, Ordering::Relaxed);
        c.inference_runs.fetch_add(1, Ordering::Relaxed);
        c.inference_us_max.fetch_max(us, Ordering::Relaxed);
        c.inference_buckets[bucket(&INFERENCE_BUCKETS_S, took)].fetch_add(1, Ordering::Relaxed);
    }

    /// A `new` event committed `took` after its frame arrived.
    pub fn record_event_latency(&self, took: Duration) {
        let c = &self.counters;
        c.event_latency_us_total.fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        c.event_latency_buckets[bucket(&LATENCY_BUCKETS_S, took)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_plates(&self, took: Duration, plates: usize) {
        let c = &self.counters;
        c.plates.fetch_add(plates as u64, Ordering::Relaxed);
        c.plate_us_total.fetch_add(took.as_micros().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        c.plate_runs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let c = &self.counters;
        CounterSnapshot {
            at: Instant::now(),
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_sampled: c.frames_sampled.load(Ordering::Relaxed),
            frames_analysed: c.frames_analysed.load(Ordering::Relaxed),
            frames_gated: c.frames_gated.load(Ordering::Relaxed),
            plate_searches_skipped: c.plate_searches_skipped.load(Ordering::Relaxed),
            detections: c.detections.load(Ordering::Relaxed),
            inference_us_total: c.inference_us_total.load(Ordering::Relaxed),
            inference_runs: c.inference_runs.load(Ordering::Relaxed),
            plates: c.plates.load(Ordering::Relaxed),
            plate_us_total: c.plate_us_total.load(Ordering::Relaxed),
            plate_runs: c.plate_runs.load(Ordering::Relaxed),
            restarts: c.restarts.load(Ordering::Relaxed),
            messages_dropped: c.messages_dropped.load(Ordering::Relaxed),
            local_records_skipped: c.local_records_skipped.load(Ordering::Relaxed),
        }
    }

    /// Takes the maximum inference time since the last call and resets it.
    pub fn take_inference_max(&self) -> Duration {
        Duration::from_micros(self.counters.inference_us_max.swap(0, Ordering::Relaxed))
    }
}

/// Counter values at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CounterSnapshot {
    pub at: Instant,
    pub frames_in: u64,
    pub frames_sampled: u64,
    pub frames_analysed: u64,
    pub frames_gated: u64,
    pub plate_searches_skipped: u64,
    pub detections: u64,
    pub inference_us_total: u64,
    pub inference_runs: u64,
    pub plates: u64,
    pub plate_us_total: u64,
    pub plate_runs: u64,
    pub restarts: u64,
    pub messages_dropped: u64,
    pub local_records_skipped: u64,
}

impl CounterSnapshot {
    /// All counters at zero, as of `at` (the baseline of a camera that just started).
    pub fn zero(at: Instant) -> Self {
        Self {
            at,
            frames_in: 0,
            frames_sampled: 0,
            frames_analysed: 0,
            frames_gated: 0,
            plate_searches_skipped: 0,
            detections: 0,
            inference_us_total: 0,
            inference_runs: 0,
            plates: 0,
            plate_us_total: 0,
            plate_runs: 0,
            restarts: 0,
            messages_dropped: 0,
            local_records_skipped: 0,
        }
    }

    /// Frames that reached the detector's queue but were replaced by a newer one before it was free.
    pub fn frames_dropped(&self) -> u64 {
        self.frames_sampled.saturating_sub(self.frames_analysed + self.frames_gated)
    }

    /// Frames the detect-rate limiter skipped on purpose.
    pub fn frames_skipped(&self) -> u64 {
        self.frames_in.saturating_sub(self.frames_sampled)
    }
}
