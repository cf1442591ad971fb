//! The per-frame worker of one camera: the shared per-frame path ([`FrameLoop`]: gate, plate search,
//! events), then rules → sink. It runs on the camera's own thread and is fed one frame at a time by the
//! source supervisor.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_config::PlateMode;

use super::sink::{EventSink, Queue};
use crate::events::plate_search::PlateFocus;
use crate::events::{EventOut, FrameTime};
use crate::frame_loop::{FrameLoop, Turn};
use crate::inference::{Analysed, DetectorHandle, InferenceError};
use crate::mqtt::MqttLink;
use crate::outbox::OutboxHandle;
use crate::payload::{self, DetectedObject, DetectedPlate};
use crate::rules::{self, CameraRules, SharedRules};
use crate::source::Frame;
use crate::stats::CameraRecord;

/// Turns a frame into detections and plate reads.
pub trait Analyse: Send {
    fn analyse(&self, frame: Frame, plates: PlateMode, focus: PlateFocus) -> Result<Analysed, InferenceError>;
}

impl Analyse for DetectorHandle {
    fn analyse(&self, frame: Frame, plates: PlateMode, focus: PlateFocus) -> Result<Analysed, InferenceError> {
        self.detect_focused(frame, plates, focus)
    }
}

/// Best-effort per-frame `detections` messages (QoS 0, rate-limited).
pub struct DetectionsOut {
    pub link: MqttLink,
    /// Minimum time between two messages.
    pub interval: Duration,
    pub site: String,
    last_sent: Option<Instant>,
    last_had_objects: bool,
}

impl DetectionsOut {
    pub fn new(link: MqttLink, interval: Duration, site: String) -> Self {
        Self { link, interval, site, last_sent: None, last_had_objects: false }
    }
}

/// What a camera thread does with each frame.
pub struct CameraWorker<A: Analyse = DetectorHandle, Q: Queue = OutboxHandle> {
    pub record: Arc<CameraRecord>,
    pub detector: A,
    /// Gate, plate search and event builder; a gap of `events.lost_timeout_secs` ends what was in view.
    pub frames: FrameLoop,
    /// Tracking time runs on this monotonic clock (stream timestamps restart with the pipeline).
    pub started: Instant,
    pub rules: SharedRules,
    pub camera_rules: CameraRules,
    pub sink: EventSink<Q>,
    pub detections: Option<DetectionsOut>,
    /// Severity of camera health alerts.
    pub health_severity: edge_config::Severity,
    /// The camera's lines, zones and masks, drawn on the live view.
    pub overlay: crate::live::Overlay,
}

impl<A: Analyse, Q: Queue> crate::source::FrameHandler for CameraWorker<A, Q> {
    fn frame(&mut self, frame: Frame) {
        self.process(frame);
    }

    fn idle(&mut self) {
        CameraWorker::idle(self);
    }
}

impl<A: Analyse, Q: Queue> CameraWorker<A, Q> {
    /// Analyses one frame and passes what it completes on.
    pub fn process(&mut self, frame: Frame) {
        let stream_s = self.started.elapsed().as_secs_f64();
        let changes = self.frames.health_on_frame(&frame, stream_s);
        self.health_alerts(&changes, stream_s);
        let look = self.frames.look(&frame);
        let Turn::Analyse(focus) = self.frames.turn(look, stream_s) else {
            self.record.counters.frames_gated.fetch_add(1, Ordering::Relaxed);
            self.answer_frame_requests(&frame, &[], 0.0);
            return;
        };
        self.sink.frame_arrived = Some(frame.arrived);
        let analysed = match self.detector.analyse(frame, self.frames.plates(), focus) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(camera = %self.record.id, error = %e, "frame not analysed");
                return;
            }
        };
        self.on_analysed(&analysed, FrameTime { stream_s, wall: chrono::Utc::now() });
    }

    /// The frame's detections go to the counters, the `detections` topic and the event builder.
    pub fn on_analysed(&mut self, analysed: &Analysed, time: FrameTime) {
        self.record.record_inference(analysed.inference, analysed.reported().count());
        self.record.counters.plate_searches_skipped.fetch_add(u64::from(analysed.plate_searches_skipped), Ordering::Relaxed);
        if self.frames.plates() != PlateMode::Off {
            self.record.record_plates(analysed.plate_time, analysed.plates.len());
        }
        self.publish_detections(analysed);
        self.answer_frame_requests(&analysed.frame, &analysed.detections, analysed.score_threshold);
        let observed = self.frames.observe(analysed, time);
        if !observed.gap.is_empty() {
            self.emit_all(observed.gap, false);
        }
        self.emit_all(observed.events, true);
    }

    /// No frame for a moment: the camera may be offline; batches committed meanwhile are recorded.
    pub fn idle(&mut self) {
        let stream_s = self.started.elapsed().as_secs_f64();
        let changes = self.frames.health_on_idle(stream_s);
        self.health_alerts(&changes, stream_s);
        self.sink.commit();
    }

    /// Camera health changes become alerts, committed at once.
    fn health_alerts(&mut self, changes: &[crate::health::Change], stream_s: f64) {
        if changes.is_empty() {
            return;
        }
        let now = chrono::Utc::now();
        for change in changes {
            let finding = rules::Finding::health(self.camera_rules.origin().clone(), change, now, stream_s - change.since_s, self.health_severity);
            let raised = finding.health.as_ref().filter(|h| h.raised).map(|h| (h.since, h.detail.clone()));
            self.record.set_problem(finding.kind.as_str(), raised);
            self.sink.alert(&finding);
        }
        self.sink.commit();
    }

    /// Ends every open event (the camera stopped or had a gap).
    pub fn finish(&mut self) {
        let outs = self.frames.finish();
        self.emit_all(outs, false);
    }

    /// The camera is stopping: ends what is open and waits up to `deadline` for the outbox to commit it.
    pub fn stop(&mut self, deadline: Duration) {
        self.finish();
        self.sink.close(deadline);
    }

    /// Emits the builder's output, runs the rules on it (with `zones`, also crowding on who is in the zones
    /// now), and commits the lot once.
    fn emit_all(&mut self, outs: Vec<EventOut>, zones: bool) {
        let rules = rules::current(&self.rules);
        // The local time is read only when there are rules to evaluate (most frames produce no output).
        let now = (!rules.is_empty() && (!outs.is_empty() || zones)).then(rules::Now::current);
        for out in outs {
            let found = now.map(|now| self.camera_rules.on_event(&rules, &out.event, now)).unwrap_or_default();
            self.sink.emit(out);
            for f in &found {
                self.sink.alert(f);
            }
        }
        if let Some(now) = now.filter(|_| zones && rules.has_crowding()) {
            let people = self.frames.builder().people_in_zones();
            for f in self.camera_rules.on_zones(&rules, &people, now) {
                self.sink.alert(&f);
            }
        }
        self.sink.commit();
    }

    /// The `snapshot` command: the frame just analysed, as a JPEG; the live view: the same with what the
    /// agent sees drawn on it. Nothing is encoded when nobody asks.
    fn answer_frame_requests(&self, frame: &Frame, detections: &[models::yolox::Detection], min_score: f32) {
        let requests = self.record.take_frame_requests();
        if !requests.is_empty() {
            let Some(jpeg) = frame.view().ok().and_then(|v| crate::events::snapshot::frame_jpeg(&v, 1280, 400_000)) else { return };
            for r in requests {
                let _ = r.send(jpeg.clone());
            }
        }
        let live = self.record.take_live_requests();
        if !live.is_empty() {
            let seen: Vec<crate::live::Seen> = detections.iter().filter(|d| d.score >= min_score).map(|d| crate::live::Seen { bbox: d.bbox, kind: Some(d.class.kind()) }).collect();
            let Some(jpeg) = frame.view().ok().and_then(|v| crate::live::render(&v, &seen, &self.overlay)) else { return };
            for r in live {
                let _ = r.send(jpeg.clone());
            }
        }
    }

    /// Rate-limited per-frame detections: sent when objects are present, and once more when they leave.
    fn publish_detections(&mut self, analysed: &Analysed) {
        let Some(out) = self.detections.as_mut() else { return };
        let has_objects = analysed.reported().next().is_some() || !analysed.plates.is_empty();
        if !has_objects && !out.last_had_objects {
            return;
        }
        if out.last_sent.is_some_and(|t| t.elapsed() < out.interval) && has_objects {
            return;
        }
        let message = payload::Detections {
            schema: payload::DETECTIONS_SCHEMA,
            site: out.site.clone(),
            camera: self.record.id.clone(),
            ts: payload::now(),
            frame: payload::FrameInfo {
                seq: analysed.frame.seq,
                pts_ms: analysed.frame.pts.map(|p| p.as_millis() as u64),
                width: analysed.frame.width(),
                height: analysed.frame.height(),
            },
            inference_ms: payload::round2(analysed.inference.as_secs_f64() * 1000.0),
            detections: analysed.reported().map(DetectedObject::from).collect(),
            plates: analysed.plates.iter().map(DetectedPlate::from).collect(),
        };
        let Ok(bytes) = serde_json::to_vec(&message) else { return };
        if out.link.publish_lossy(out.link.topics().detections(&self.record.id), bytes) {
            out.last_sent = Some(Instant::now());
            out.last_had_objects = has_objects;
        } else {
            self.record.counters.messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
