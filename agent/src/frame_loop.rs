//! The per-frame path of one camera, the same for the daemon's camera workers and for `analyze`: the
//! motion gate looks at every frame as it arrives; when the frame's turn comes (every frame before it
//! finished) the gate decides whether the detector runs on it and the plate-search policy says what the
//! plate chain searches there; the analysed frame goes to the event builder.
//!
//! The two drivers differ only where frames come from and where events go. A camera worker
//! ([`crate::daemon::camera`]) takes one frame at a time from the camera and hands the events to the sink
//! (rules, outbox, local record); `analyze` reads a file ahead, lets the detector start on the frames that
//! [`FrameLoop::likely_analysed`] expects to run, and prints. A change to gating or plate search is made
//! here, once, for both.

use edge_config::PlateMode;

use crate::events::plate_search::{PlateFocus, PlateSearch};
use crate::events::{EventBuilder, EventOut, FrameTime};
use crate::health::{CameraHealth, Change};
use crate::inference::Analysed;
use crate::motion::{Decision, DetectGate, Look};
use crate::source::Frame;

/// One camera's gate, plate-search policy and event builder.
pub struct FrameLoop {
    gate: DetectGate,
    search: PlateSearch,
    builder: EventBuilder,
    /// A gap longer than this between two analysed frames (a stream restart, a stall) ends whatever was
    /// in view. `None`: gaps end nothing (a file's own timestamps).
    gap_ends_s: Option<f64>,
    /// Whether the camera still sees the gate (`None`: not watched).
    health: Option<CameraHealth>,
}

/// What becomes of a frame when its turn comes.
#[derive(Debug)]
pub enum Turn {
    /// The detector does not run on it (nothing moves, nothing followed needs a look).
    Skip,
    /// The detector runs on it, and the plate chain searches what the focus says.
    Analyse(PlateFocus),
}

/// The events one analysed frame completed.
#[derive(Default)]
pub struct Observed {
    /// Ended by a gap before the frame: what was in view then is gone.
    pub gap: Vec<EventOut>,
    /// The frame's own.
    pub events: Vec<EventOut>,
}

impl FrameLoop {
    pub fn new(gate: DetectGate, search: PlateSearch, builder: EventBuilder) -> Self {
        Self { gate, search, builder, gap_ends_s: None, health: None }
    }

    /// A gap of more than `seconds` between two analysed frames ends every open event.
    pub fn gaps_end_events(mut self, seconds: f64) -> Self {
        self.gap_ends_s = Some(seconds);
        self
    }

    /// Watches the camera's picture and connection ([`FrameLoop::health_on_frame`]).
    pub fn with_health(mut self, health: CameraHealth) -> Self {
        self.health = Some(health);
        self
    }

    /// Camera health for a frame that arrived at `stream_s`, before the gate: covered, frozen and moved are
    /// seen on every frame, analysed or not.
    pub fn health_on_frame(&mut self, frame: &Frame, stream_s: f64) -> Vec<Change> {
        let Some(health) = self.health.as_mut() else { return Vec::new() };
        health.on_frame(frame.view().ok().as_ref(), stream_s)
    }

    /// Camera health while no frame comes.
    pub fn health_on_idle(&mut self, stream_s: f64) -> Vec<Change> {
        self.health.as_mut().map(|h| h.on_idle(stream_s)).unwrap_or_default()
    }

    /// Where the camera looks for plates.
    pub fn plates(&self) -> PlateMode {
        self.search.mode()
    }

    pub fn builder(&self) -> &EventBuilder {
        &self.builder
    }

    pub fn builder_mut(&mut self) -> &mut EventBuilder {
        &mut self.builder
    }

    /// The motion stage looks at `frame` as it arrives (and learns from it), whether or not the detector
    /// will run on it.
    pub fn look(&mut self, frame: &Frame) -> Look {
        self.gate.look(frame.view().ok().as_ref())
    }

    /// Whether a frame at `stream_s` that the motion stage saw as `look` will probably be analysed when its
    /// turn comes, `planned_run_s` being the last frame before it expected to be. The guess takes the objects
    /// followed now (some may be gone by then); [`FrameLoop::turn`] decides.
    pub fn likely_analysed(&self, look: Look, stream_s: f64, planned_run_s: Option<f64>) -> bool {
        self.gate.would_decide(look, stream_s, self.builder.active() > 0, planned_run_s) != Decision::Skip
    }

    /// The frame's turn: whether the detector runs on it and, if so, what the plate chain searches, from
    /// what the builder knows up to the frame before.
    pub fn turn(&mut self, look: Look, stream_s: f64) -> Turn {
        let decision = self.gate.decide_on(look, stream_s, self.builder.active() > 0);
        if decision == Decision::Skip {
            return Turn::Skip;
        }
        Turn::Analyse(self.search.focus(&self.builder, decision, stream_s))
    }

    /// Feeds an analysed frame taken at `time` to the builder.
    pub fn observe(&mut self, analysed: &Analysed, time: FrameTime) -> Observed {
        let gap = match self.gap_ends_s {
            Some(limit) if self.builder.last_time().is_some_and(|t| time.stream_s - t.stream_s > limit) => self.builder.finish(),
            _ => Vec::new(),
        };
        Observed { gap, events: self.builder.observe(&analysed.input(time)) }
    }

    /// Ends every open event (the stream ended or the camera stops).
    pub fn finish(&mut self) -> Vec<EventOut> {
        self.builder.finish()
    }
}
