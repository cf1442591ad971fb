//! Camera sources: a GStreamer pipeline per camera ([`pipeline`]) and the supervisor that keeps it running
//! ([`run_camera`]): reconnects with capped exponential back-off and jitter, restarts stalled streams, and
//! reports the camera's state. One camera's failure never touches another: each runs on its own thread.

pub(crate) mod decoder;
mod gate;
pub mod pipeline;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

pub use pipeline::{FailureKind, Frame, Mode, Next, Pipeline, SourceError, SourceSettings};

use crate::backoff::Backoff;
use crate::stats::{CameraRecord, CameraState};

/// How a supervised camera behaves.
#[derive(Debug, Clone)]
pub struct SupervisorSettings {
    pub source: SourceSettings,
    /// Play a file source again from the start when it ends.
    pub loop_file: bool,
    /// Restart the pipeline when no frame arrives for this long once it was online; `None` scales it to the
    /// stream (see [`SupervisorSettings::auto_stall_timeout`]).
    pub stall_timeout: Option<Duration>,
    /// Give up on a connection attempt when the first frame takes longer than this.
    pub connect_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl SupervisorSettings {
    pub fn new(source: SourceSettings) -> Self {
        let frame_gap = Duration::from_secs_f64(1.0 / source.detect_fps.max(0.01));
        Self {
            stall_timeout: None,
            connect_timeout: Duration::from_secs(20).max(frame_gap * 3),
            loop_file: false,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            source,
        }
    }
}

impl SupervisorSettings {
    /// Five frame intervals of what reaches the detector (the stream's rate, at most the detect rate), and
    /// never less than 10 s: a 1 fps camera is not restarted for being slow.
    pub fn auto_stall_timeout(&self, input_fps: Option<f64>) -> Duration {
        let rate = input_fps.map_or(self.source.detect_fps, |f| f.min(self.source.detect_fps)).max(0.01);
        Duration::from_secs_f64(5.0 / rate).max(Duration::from_secs(10))
    }
}

/// What a camera's frames are handed to.
pub trait FrameHandler {
    /// A frame arrived.
    fn frame(&mut self, frame: Frame);
    /// No frame for a moment (about every 200 ms while the stream is quiet, every second while the camera
    /// reconnects): the handler can notice that the camera is gone.
    fn idle(&mut self) {}
}

/// Runs a camera until `cancel` fires (or a non-looping file ends), handing `handler` every frame (and the
/// quiet moments between) and calling `on_state` whenever the camera's state changes. Blocks: run it on a
/// dedicated thread.
pub fn run_camera(mut settings: SupervisorSettings, record: Arc<CameraRecord>, cancel: CancellationToken, on_state: &(dyn Fn() + Send + Sync), handler: &mut impl FrameHandler) {
    let camera = settings.source.camera_id.clone();
    let url = settings.source.url.redacted().to_string();
    let is_file = settings.source.url.scheme().as_deref() == Some("file");
    let mut backoff = Backoff::new(settings.backoff_initial, settings.backoff_max);
    let set_state = |state: CameraState, error: Option<String>| {
        if record.set_state(state, error) {
            on_state();
        }
    };

    while !cancel.is_cancelled() {
        set_state(CameraState::Connecting, None);
        record.counters.restarts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        record.beat();
        tracing::info!(camera = %camera, url = %url, "opening camera");
        let failure = match Pipeline::open(settings.source.clone(), record.clone()) {
            Err(e) => Some(e),
            Ok(mut pipeline) => {
                let opened = Instant::now();
                let mut last_frame: Option<Instant> = None;
                loop {
                    record.beat();
                    if cancel.is_cancelled() {
                        pipeline.close();
                        set_state(CameraState::Stopped, None);
                        return;
                    }
                    match pipeline.next(Duration::from_millis(200)) {
                        Ok(Next::Frame(frame)) => {
                            if last_frame.is_none() {
                                tracing::info!(camera = %camera, width = frame.width(), height = frame.height(), "camera online");
                                record.set_frame_size(frame.width(), frame.height());
                                backoff.reset();
                            }
                            set_state(CameraState::Online, None);
                            last_frame = Some(Instant::now());
                            handler.frame(frame);
                        }
                        Ok(Next::Timeout) => {
                            handler.idle();
                            let stall = settings.stall_timeout.unwrap_or_else(|| settings.auto_stall_timeout(pipeline.input_fps()));
                            let limit = if last_frame.is_some() { stall } else { settings.connect_timeout };
                            let stalled = last_frame.unwrap_or(opened).elapsed() > limit;
                            if stalled {
                                let what = if last_frame.is_some() { "no frame" } else { "no first frame" };
                                tracing::warn!(camera = %camera, timeout_s = limit.as_secs_f64(), "{what} in time, restarting pipeline");
                                set_state(CameraState::Stalled, Some(format!("{what} for {:.0} s", limit.as_secs_f64())));
                                break None;
                            }
                        }
                        Ok(Next::Eos) if is_file && settings.loop_file => {
                            if !pipeline.rewind() {
                                break Some(SourceError { camera: camera.clone(), kind: FailureKind::Other, message: "cannot rewind file".into() });
                            }
                        }
                        Ok(Next::Eos) if is_file => {
                            tracing::info!(camera = %camera, "file source ended");
                            set_state(CameraState::Ended, None);
                            return;
                        }
                        Ok(Next::Eos) => {
                            break Some(SourceError { camera: camera.clone(), kind: FailureKind::Unreachable, message: "stream ended (camera closed the connection)".into() });
                        }
                        Err(e) => break Some(e),
                    }
                }
            }
        };
        if let Some(e) = failure {
            let state = match e.kind {
                FailureKind::Unauthorized => {
                    backoff.at_least(Duration::from_secs(15));
                    CameraState::Unauthorized
                }
                FailureKind::Unreachable => CameraState::Unreachable,
                FailureKind::BadInput | FailureKind::MissingPlugin => {
                    backoff.at_least(settings.backoff_max);
                    CameraState::Failed
                }
                FailureKind::HardwareDecoder if settings.source.decoder == edge_config::DecoderChoice::Auto => {
                    tracing::warn!(camera = %camera, error = %e.message, "hardware decoder failed; using software decoding from now on");
                    settings.source.decoder = edge_config::DecoderChoice::Software;
                    backoff.reset();
                    CameraState::Connecting
                }
                FailureKind::HardwareDecoder | FailureKind::Other => CameraState::Failed,
            };
            tracing::warn!(camera = %camera, state = state.as_str(), error = %e.message, "camera failed");
            set_state(state, Some(e.message));
        }
        let delay = backoff.next_delay();
        tracing::info!(camera = %camera, retry_in_s = format!("{:.1}", delay.as_secs_f64()), "reconnecting later");
        let until = Instant::now() + delay;
        while !cancel.is_cancelled() && Instant::now() < until {
            record.beat();
            handler.idle();
            sleep_unless_cancelled(until.saturating_duration_since(Instant::now()).min(Duration::from_secs(1)), &cancel);
        }
    }
    set_state(CameraState::Stopped, None);
}

/// Sleeps up to `duration`, waking early when `cancel` fires.
pub fn sleep_unless_cancelled(duration: Duration, cancel: &CancellationToken) {
    let end = Instant::now() + duration;
    while !cancel.is_cancelled() {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}
