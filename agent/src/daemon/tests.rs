//! The per-frame path (worker + sink) without GStreamer or a broker: a scripted detector and an in-memory
//! outbox stand in for the detector threads and the redb writer; the local logs and the duty desk feed are
//! the real ones, in a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use edge_config::{Line, PlateMode, Rule, RuleKind, Severity, Site};
use models::plates::{PlateColour, PlateRead, PlateRows};
use models::{BBox, BgrImage, Detection, ObjectClass};
use serde_json::Value;

use super::camera::{Analyse, CameraWorker};
use super::sink::{EventSink, LocalRecord, Queue};
use crate::eventlog::EventLog;
use crate::events::plate_search::{PlateFocus, PlateSearch};
use crate::events::{BuilderSettings, EventBuilder, FrameTime};
use crate::frame_loop::FrameLoop;
use crate::history::{History, Query};
use crate::inference::{Analysed, InferenceError};
use crate::motion::DetectGate;
use crate::outbox::writer::RejectedBatch;
use crate::outbox::{Kind, Message, OutboxError, Ticket};
use crate::rules::{self, CameraRules};
use crate::snapshots::SnapshotStore;
use crate::source::Frame;
use crate::stats::{CameraRecord, CameraState};
use crate::topics::{Origin, Topics};
use crate::web::{Feed, FeedItem};

/// Detections and plate reads to hand out, one entry per frame.
type Script = VecDeque<(Vec<Detection>, Vec<PlateRead>)>;

/// A detector that answers from a script.
struct ScriptedDetector(Mutex<Script>);

impl Analyse for ScriptedDetector {
    fn analyse(&self, frame: Frame, _plates: PlateMode, _focus: PlateFocus) -> Result<Analysed, InferenceError> {
        let Some((detections, plates)) = self.0.lock().unwrap().pop_front() else { return Err(InferenceError::Stopped) };
        Ok(Analysed {
            frame,
            detections,
            plates,
            inference: Duration::from_millis(20),
            plate_time: Duration::from_millis(5),
            latency: Duration::from_millis(25),
            plate_searches_skipped: 0,
            score_threshold: 0.5,
        })
    }
}

/// An outbox in memory: what was queued, how many batches, and whether it takes messages at all. While
/// `held` is set (a failing disk) batches are taken but not committed: their tickets are answered when it
/// is cleared and [`MemoryQueue::release`] is called; `shed` names topics a failing disk dropped.
#[derive(Clone, Default)]
struct MemoryQueue {
    messages: Arc<Mutex<Vec<Message>>>,
    batches: Arc<Mutex<usize>>,
    stopped: bool,
    held: Arc<Mutex<Option<Vec<HeldBatch>>>>,
}

/// A batch a failing disk holds, with the sender that answers its ticket.
type HeldBatch = (Vec<Message>, crossbeam_channel::Sender<Vec<bool>>);

impl MemoryQueue {
    /// Starts holding batches, as a writer whose disk is failing does.
    fn hold(&self) {
        *self.held.lock().unwrap() = Some(Vec::new());
    }

    /// Commits what was held, dropping snapshots whose topic `shed` accepts.
    fn release(&self, shed: impl Fn(&Message) -> bool) {
        let held = self.held.lock().unwrap().take().unwrap_or_default();
        for (messages, reply) in held {
            let kept: Vec<bool> = messages.iter().map(|m| !shed(m)).collect();
            self.messages.lock().unwrap().extend(messages.into_iter().filter(|m| !shed(m)));
            reply.send(kept).unwrap();
        }
    }
}

impl Queue for MemoryQueue {
    fn append_batch(&self, messages: Vec<Message>) -> Result<Ticket, RejectedBatch> {
        if self.stopped {
            return Err(RejectedBatch { messages, reason: OutboxError::Stopped });
        }
        *self.batches.lock().unwrap() += 1;
        let (reply, ticket) = Ticket::pair();
        match self.held.lock().unwrap().as_mut() {
            Some(held) => held.push((messages, reply)),
            None => {
                let kept = vec![true; messages.len()];
                self.messages.lock().unwrap().extend(messages);
                reply.send(kept).unwrap();
            }
        }
        Ok(ticket)
    }
}

fn site() -> Site {
    Site { city: "xining".into(), district: "chengzhong".into(), town: "nanchuan".into(), village: "xiaozhuang".into(), checkpoint: "east-gate".into(), name: None }
}

struct Harness {
    worker: CameraWorker<ScriptedDetector, MemoryQueue>,
    queue: MemoryQueue,
    local: LocalRecord,
    record: Arc<CameraRecord>,
    _dir: tempfile::TempDir,
}

/// A worker for camera `gate` with a line at 75 % of the height (the village below it), `rules`, and a
/// script of frames.
fn harness(script: Script, rules: &[Rule], queue: MemoryQueue) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let topics = Topics::new("checkpoint", &site());
    let origin = Origin { site: site(), camera: "gate".into() };
    let line = Line { id: "gate".into(), points: [[0.0, 0.75], [1.0, 0.75]], in_side: [0.5, 0.95] };
    let mut settings = BuilderSettings::from_config(&edge_config::Events::default(), 5.0);
    settings.snapshots = false;
    let local = LocalRecord {
        events: Arc::new(EventLog::new(dir.path(), 7)),
        alerts: Arc::new(EventLog::named(dir.path(), "alerts", 7)),
        counts: Arc::new(EventLog::named(dir.path(), "counts", 7)),
        snapshots: SnapshotStore::new(dir.path(), 7),
        feed: Some(Feed::new()),
        history: History::open(&dir.path().join("history.redb")).ok().map(Arc::new),
        storage: None,
        notify: None,
        clips: None,
        gat1400: None,
    };
    let record = Arc::new(CameraRecord::new("gate", 5.0, CameraState::Online));
    // The scripted detector answers every frame: no gating.
    let gate = DetectGate::new(&edge_config::Motion { enabled: false, ..edge_config::Motion::default() });
    let builder = EventBuilder::new(origin.clone(), settings, &[line], &[]);
    let worker = CameraWorker {
        record: record.clone(),
        detector: ScriptedDetector(Mutex::new(script)),
        frames: FrameLoop::new(gate, PlateSearch::new(PlateMode::Vehicles, 5, 0.0), builder).gaps_end_events(3.0),
        started: Instant::now(),
        rules: rules::shared(rules),
        camera_rules: CameraRules::new(Arc::new(origin)),
        sink: EventSink::new("gate", topics, queue.clone(), local.clone(), record.clone()),
        detections: None,
        health_severity: edge_config::Severity::Warning,
        overlay: Default::default(),
    };
    Harness { worker, queue, local, record, _dir: dir }
}

/// A car driving down across the line over 15 frames, its plate read in each, then 15 empty frames.
fn car_driving_in(plate: &str) -> Script {
    let mut script: Script = (0..15)
        .map(|i| {
            let y2 = 500.0 + 35.0 * i as f32;
            let det = Detection { class: ObjectClass::CAR, score: 0.9, bbox: BBox::new(600.0, y2 - 400.0, 1300.0, y2) };
            let read = PlateRead {
                text: plate.into(),
                confidence: 0.97,
                char_confidences: vec![0.97; plate.chars().count()],
                min_char_confidence: 0.97,
                layout: "standard",
                colour: PlateColour::Blue,
                rows: PlateRows::Single,
                corners: [(900.0, y2 - 120.0), (1010.0, y2 - 120.0), (1010.0, y2 - 85.0), (900.0, y2 - 85.0)],
                bbox: BBox::new(900.0, y2 - 120.0, 1010.0, y2 - 85.0),
                detector_score: 0.9,
                region: Some(0),
            };
            (vec![det], vec![read])
        })
        .collect();
    script.extend((0..15).map(|_| (Vec::new(), Vec::new())));
    script
}

fn frame() -> Frame {
    Frame::from_image(BgrImage::new(1920, 1080, vec![0; 1920 * 1080 * 3]).unwrap())
}

/// Feeds every scripted frame at 5 fps through `on_analysed`, as the camera thread would.
fn run(h: &mut Harness) {
    let start: DateTime<Utc> = "2026-11-28T08:00:00Z".parse().unwrap();
    let mut i = 0;
    while let Ok(analysed) = h.worker.detector.analyse(frame(), PlateMode::Vehicles, PlateFocus::default()) {
        let time = FrameTime { stream_s: i as f64 * 0.2, wall: start + chrono::Duration::milliseconds(200 * i) };
        h.worker.on_analysed(&analysed, time);
        i += 1;
    }
    h.worker.finish();
}

fn queued(q: &MemoryQueue) -> Vec<(Kind, String, Value)> {
    q.messages.lock().unwrap().iter().map(|m| (m.kind, m.topic.clone(), serde_json::from_slice(&m.payload).unwrap_or(Value::Null))).collect()
}

#[test]
fn a_passing_car_becomes_one_event_chain_in_the_outbox_then_in_the_local_record() {
    let mut h = harness(car_driving_in("苏ED51712"), &[], MemoryQueue::default());
    run(&mut h);
    let messages = queued(&h.queue);
    assert!(messages.iter().all(|(k, t, _)| *k == Kind::Event && t == "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/gate/events"));
    let phases: Vec<&str> = messages.iter().map(|(_, _, v)| v["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"new"));
    assert_eq!(phases.last(), Some(&"end"));
    let end = &messages.last().unwrap().2;
    assert_eq!((end["plate"]["text"].as_str(), end["direction"].as_str(), end["type"].as_str()), (Some("苏ED51712"), Some("in"), Some("vehicle")));
    for (_, _, v) in &messages {
        testkit::schemas::assert_valid("event.v1.json", v);
    }
    // Every committed message is in the local log, in order; each frame's output went as one batch.
    let lines = h.local.events.recent_lines(Utc::now(), 1);
    let logged: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(logged, messages.iter().map(|(_, _, v)| v.clone()).collect::<Vec<_>>());
    // One car makes at most one message a frame, so one batch a message (and no empty batch for the frames
    // that made none).
    assert_eq!(*h.queue.batches.lock().unwrap(), messages.len(), "one batch per frame with output");
    let feed = h.local.feed.as_ref().unwrap();
    let shown = feed.recent().into_iter().filter(|i| matches!(i, FeedItem::Event { .. })).count();
    assert_eq!(shown, messages.len());
    assert!(h.record.counters.inference_runs.load(Ordering::Relaxed) >= 30);
    // The end event is counted in its period: one vehicle in, with its plate.
    let closed = h.record.flow.close(Utc::now() + chrono::Duration::days(1));
    let vehicles_in: u64 = closed.iter().map(|(_, _, t)| t.vehicles.inbound).sum();
    let plates: u64 = closed.iter().map(|(_, _, t)| t.plates_read).sum();
    assert_eq!((vehicles_in, plates), (1, 1));
    // And it is in the history index, found by part of its plate.
    let history = h.local.history.as_ref().unwrap();
    let found = history.search(&Query { plate: Some("D517".into()), limit: 10, ..Query::default() }).unwrap();
    assert_eq!(found.items.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), [end["id"].as_str().unwrap()]);
    assert_eq!(history.len().unwrap(), 1, "the end event only");
}

#[test]
fn a_watch_listed_plate_raises_one_alert_after_its_event_and_logs_it() {
    let rule = Rule {
        id: "stolen".into(),
        kind: RuleKind::WatchList { plates: vec!["苏ED51712".into()], entries: vec![], tolerance: 0 },
        severity: Severity::Critical,
        cameras: vec![],
        cooldown_secs: 600,
        enabled: true,
    };
    let mut h = harness(car_driving_in("苏ED51712"), &[rule], MemoryQueue::default());
    run(&mut h);
    let messages = queued(&h.queue);
    let alerts: Vec<usize> = messages.iter().enumerate().filter(|(_, (k, ..))| *k == Kind::Alert).map(|(i, _)| i).collect();
    assert_eq!(alerts.len(), 1, "one alert per passing");
    let (_, topic, alert) = &messages[alerts[0]];
    assert_eq!(topic, "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/gate/alerts");
    testkit::schemas::assert_valid("alert.v1.json", alert);
    assert_eq!(alert["kind"], "watch_list");
    assert_eq!(alert["label"], "car");
    assert_eq!(alert["type"], "vehicle");
    // The event it refers to was queued before it.
    let (_, _, event) = &messages[alerts[0] - 1];
    assert_eq!(alert["event_id"], event["id"]);
    assert_eq!(alert["snapshot_topic"].as_str().unwrap(), format!("checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/gate/snapshots/{}", event["id"].as_str().unwrap()));
    assert_eq!(h.local.alerts.recent_lines(Utc::now(), 1).len(), 1);
}

#[test]
fn a_message_the_outbox_refuses_is_counted_not_dropped_silently() {
    let queue = MemoryQueue { stopped: true, ..MemoryQueue::default() };
    let mut h = harness(car_driving_in("苏ED51712"), &[], queue);
    run(&mut h);
    assert!(h.queue.messages.lock().unwrap().is_empty());
    let dropped = h.record.counters.messages_dropped.load(Ordering::Relaxed);
    assert!(dropped >= 2, "every refused event counted: {dropped}");
}

#[test]
fn a_gap_longer_than_the_lost_timeout_ends_what_was_in_view() {
    let mut script = car_driving_in("苏ED51712");
    script.truncate(8);
    let mut h = harness(script, &[], MemoryQueue::default());
    let start: DateTime<Utc> = "2026-11-28T08:00:00Z".parse().unwrap();
    for i in 0..7 {
        let analysed = h.worker.detector.analyse(frame(), PlateMode::Vehicles, PlateFocus::default()).unwrap();
        h.worker.on_analysed(&analysed, FrameTime { stream_s: i as f64 * 0.2, wall: start + chrono::Duration::milliseconds(200 * i) });
    }
    assert!(queued(&h.queue).iter().all(|(_, _, v)| v["phase"] != "end"));
    // The stream comes back 10 s later: the car seen before the gap has ended.
    let analysed = h.worker.detector.analyse(frame(), PlateMode::Vehicles, PlateFocus::default()).unwrap();
    h.worker.on_analysed(&analysed, FrameTime { stream_s: 11.2, wall: start + chrono::Duration::seconds(11) });
    let ends = queued(&h.queue).into_iter().filter(|(_, _, v)| v["phase"] == "end").count();
    assert_eq!(ends, 1);
}

#[test]
fn the_local_record_waits_for_the_outbox_commit_and_the_camera_does_not() {
    let queue = MemoryQueue::default();
    queue.hold();
    let mut h = harness(car_driving_in("苏ED51712"), &[], queue);
    let started = Instant::now();
    run(&mut h);
    // The first batch is waited for a moment (COMMIT_WAIT), every later one not at all.
    assert!(started.elapsed() < Duration::from_secs(5), "the camera waited for a failing disk: {:?}", started.elapsed());
    assert!(h.local.events.recent_lines(Utc::now(), 1).is_empty(), "nothing is recorded locally before the outbox has it");
    assert!(h.local.feed.as_ref().unwrap().recent().is_empty(), "nor shown on the duty desk");
    assert_eq!(h.local.history.as_ref().unwrap().len().unwrap(), 0, "nor indexed");
    // The disk comes back: the next frame records everything, in order.
    h.queue.release(|_| false);
    h.worker.finish();
    let messages = queued(&h.queue);
    let logged: Vec<Value> = h.local.events.recent_lines(Utc::now(), 1).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(!messages.is_empty());
    assert_eq!(logged, messages.iter().map(|(_, _, v)| v.clone()).collect::<Vec<_>>());
    assert_eq!(h.local.history.as_ref().unwrap().len().unwrap(), 1);
}

#[test]
fn a_snapshot_the_outbox_dropped_is_not_kept_locally_either() {
    let queue = MemoryQueue::default();
    queue.hold();
    let mut h = harness(car_driving_in("苏ED51712"), &[], queue);
    *h.worker.frames.builder_mut() = {
        let origin = Origin { site: site(), camera: "gate".into() };
        let line = Line { id: "gate".into(), points: [[0.0, 0.75], [1.0, 0.75]], in_side: [0.5, 0.95] };
        EventBuilder::new(origin, BuilderSettings::from_config(&edge_config::Events::default(), 5.0), &[line], &[])
    };
    run(&mut h);
    h.queue.release(|m| m.kind == Kind::Snapshot);
    h.worker.stop(Duration::from_secs(2));
    let end = queued(&h.queue).into_iter().find(|(_, _, v)| v["phase"] == "end").expect("an end event");
    let id = end.2["id"].as_str().unwrap().to_string();
    assert!(end.2["snapshot"].is_object(), "the event still says it had a snapshot: {}", end.2);
    assert!(h.local.snapshots.find(&id).is_none(), "a snapshot the outbox does not have is not on the duty desk");
}
