//! Where a camera's events and alerts go: the durable outbox first (then MQTT), and once the outbox has
//! committed them, the local record — the event and alert logs, the snapshot store, the duty desk feed and
//! the `event` journal line. The local record never shows something a crash could still take from the
//! outbox.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::eventlog::EventLog;
use crate::events::{EventOut, ObjectEvent};
use crate::history::History;
use crate::outbox::{Kind, Message, OutboxError, OutboxHandle, Rejected};
use crate::payload;
use crate::rules::Finding;
use crate::snapshots::SnapshotStore;
use crate::stats::CameraRecord;
use crate::topics::Topics;
use crate::web::{Feed, FeedItem};

/// The durable queue in front of MQTT, as the sink uses it.
pub trait Queue: Send {
    /// Queues a message; hands it back when it cannot be queued.
    fn append(&self, message: Message) -> Result<(), Rejected>;
    /// Returns once everything queued so far is on disk.
    fn flush(&self) -> Result<(), OutboxError>;
}

impl Queue for OutboxHandle {
    fn append(&self, message: Message) -> Result<(), Rejected> {
        OutboxHandle::append(self, message)
    }

    fn flush(&self) -> Result<(), OutboxError> {
        OutboxHandle::flush(self)
    }
}

/// The local record of one camera.
#[derive(Clone)]
pub struct LocalRecord {
    pub events: Arc<EventLog>,
    pub alerts: Arc<EventLog>,
    /// Closed flow-count periods.
    pub counts: Arc<EventLog>,
    pub snapshots: SnapshotStore,
    /// The duty desk's live feed, when the page is served.
    pub feed: Option<Feed>,
    /// The searchable index of passings, when it could be opened.
    pub history: Option<Arc<History>>,
}

/// One camera's sink.
pub struct EventSink<Q: Queue = OutboxHandle> {
    camera: String,
    topics: Topics,
    queue: Q,
    local: LocalRecord,
    record: Arc<CameraRecord>,
    /// Queued to the outbox, recorded locally once committed ([`EventSink::commit`]).
    pending: Vec<Local>,
    /// When the frame being analysed arrived: `new` events it completes count their latency from it.
    pub frame_arrived: Option<std::time::Instant>,
}

/// A message queued to the outbox but not yet recorded locally.
struct Local {
    log: Arc<EventLog>,
    line: Vec<u8>,
    item: Option<FeedItem>,
    /// For events: the journal line, written once the event is committed.
    announce: Option<ObjectEvent>,
}

impl<Q: Queue> EventSink<Q> {
    pub fn new(camera: &str, topics: Topics, queue: Q, local: LocalRecord, record: Arc<CameraRecord>) -> Self {
        Self { camera: camera.to_string(), topics, queue, local, record, pending: Vec::new(), frame_arrived: None }
    }

    /// Queues a message; one the outbox hands back is logged and counted, never dropped silently.
    fn queue(&self, kind: Kind, topic: String, payload: Vec<u8>, what: &str, id: &str) -> bool {
        match self.queue.append(Message::new(kind, topic, payload)) {
            Ok(()) => true,
            Err(rejected) => {
                self.record.counters.messages_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    camera = %self.camera,
                    id,
                    topic = %rejected.message.topic,
                    bytes = rejected.message.payload.len(),
                    error = %rejected.reason,
                    "{what} not queued"
                );
                false
            }
        }
    }

    /// An event (and its snapshot) goes to the outbox; it is recorded locally at the next commit.
    pub fn emit(&mut self, out: EventOut) {
        let e = &out.event;
        self.record.flow.on_event(e);
        // The snapshot goes first so it is delivered before the event that references it.
        if let (Some(jpeg), Some(info)) = (out.snapshot, &e.snapshot) {
            if let Err(err) = self.local.snapshots.save(&e.id, info.taken_at, &jpeg) {
                tracing::warn!(camera = %self.camera, event = %e.id, error = %err, "cannot keep the snapshot locally");
            }
            self.queue(Kind::Snapshot, self.topics.snapshot(&self.camera, &e.id), jpeg, "snapshot", &e.id);
        }
        let wire = payload::Event::from(e);
        match serde_json::to_vec(&wire) {
            Ok(bytes) => {
                self.queue(Kind::Event, self.topics.events(&self.camera), bytes.clone(), "event", &e.id);
                let item = self.local.feed.as_ref().and_then(|_| FeedItem::event(&wire));
                self.pending.push(Local { log: self.local.events.clone(), line: bytes, item, announce: Some(out.event) });
            }
            Err(err) => tracing::error!(camera = %self.camera, error = %err, "cannot serialise event"),
        }
    }

    /// An alert goes to the outbox (then MQTT), the local alert log and the duty desk.
    pub fn alert(&mut self, finding: &Finding) {
        let alert = payload::Alert::from(finding);
        self.record.flow.on_alert(finding.at);
        tracing::warn!(
            camera = %self.camera,
            alert = %alert.id,
            rule = %alert.rule,
            kind = alert.kind.as_str(),
            severity = alert.severity,
            event = alert.event_id.as_deref().unwrap_or("-"),
            "alert"
        );
        // Plates are personal data: in the journal (kept by journald's rules, not the agent's retention)
        // only at debug level.
        tracing::debug!(alert = %alert.id, plate = alert.plate.as_ref().map(|p| p.text.as_str()).unwrap_or("-"), "alert plate");
        let Ok(bytes) = serde_json::to_vec(&alert) else { return };
        self.queue(Kind::Alert, self.topics.alerts(&self.camera), bytes.clone(), "alert", &alert.id);
        let item = self.local.feed.as_ref().and_then(|_| FeedItem::alert(&alert));
        self.pending.push(Local { log: self.local.alerts.clone(), line: bytes, item, announce: None });
    }

    /// Waits until everything queued is committed to the outbox, then records it locally.
    pub fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(err) = self.queue.flush() {
            tracing::error!(camera = %self.camera, error = %err, "outbox flush failed");
        }
        if let Some(arrived) = self.frame_arrived {
            for _ in self.pending.iter().filter(|l| l.announce.as_ref().is_some_and(|e| e.phase == crate::events::Phase::New)) {
                self.record.record_event_latency(arrived.elapsed());
            }
        }
        let now = chrono::Utc::now();
        let mut passings: Vec<Vec<u8>> = Vec::new();
        for local in self.pending.drain(..) {
            if let Some(e) = &local.announce {
                if e.phase == crate::events::Phase::End && e.merged_into.is_none() {
                    passings.push(local.line.clone());
                }
                tracing::info!(camera = %self.camera, event = %e.id, phase = ?e.phase, label = e.class.label(), direction = ?e.direction, plate_read = e.plate.is_some(), "event");
                tracing::debug!(event = %e.id, plate = e.plate.as_ref().map_or("-", |p| p.text.as_str()), "event plate");
            }
            if let Err(err) = local.log.append(now, &local.line) {
                tracing::warn!(camera = %self.camera, dir = %local.log.dir().display(), error = %err, "cannot write the local log");
            }
            if let (Some(feed), Some(item)) = (&self.local.feed, local.item) {
                feed.publish(item);
            }
        }
        if let (Some(history), false) = (&self.local.history, passings.is_empty()) {
            if let Err(err) = history.add_events(passings.iter().map(Vec::as_slice)) {
                tracing::warn!(camera = %self.camera, error = %err, "cannot index the passing for the history search");
            }
        }
    }
}
