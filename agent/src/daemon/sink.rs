//! Where a camera's events and alerts go: the durable outbox first (then MQTT), and once the outbox has
//! committed them, the local record — the event and alert logs, the snapshot store, the duty desk feed, the
//! history index and the `event` journal line. The local record never shows something the outbox does not
//! have: what one frame produced goes to the outbox as one batch, and its local record waits for that
//! batch's commit. The camera never waits for a failing disk: a batch not committed within a moment stays
//! pending (in order) and is recorded when its commit comes, on a later frame.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::eventlog::EventLog;
use crate::events::{EventOut, ObjectEvent, Phase};
use crate::history::History;
use crate::outbox::writer::RejectedBatch;
use crate::outbox::{Kind, Message, OutboxHandle, Ticket, TicketState};
use crate::payload;
use crate::rules::Finding;
use crate::snapshots::SnapshotStore;
use crate::stats::CameraRecord;
use crate::storage::Storage;
use crate::topics::Topics;
use crate::web::{Feed, FeedItem};

/// How long a frame's batch is waited for when nothing older is pending (a healthy commit takes a few
/// milliseconds; a slower one is picked up on a later frame).
const COMMIT_WAIT: Duration = Duration::from_secs(1);
/// Batches whose local record may wait for their commit; beyond it the oldest local records are given up
/// (counted): the outbox still has their messages.
const MAX_WAITING: usize = 512;

/// The durable queue in front of MQTT, as the sink uses it.
pub trait Queue: Send {
    /// Queues the messages one frame produced; the ticket says when they are on disk. Hands them back when
    /// they cannot be queued.
    fn append_batch(&self, messages: Vec<Message>) -> Result<Ticket, RejectedBatch>;
}

impl Queue for OutboxHandle {
    fn append_batch(&self, messages: Vec<Message>) -> Result<Ticket, RejectedBatch> {
        OutboxHandle::append_batch(self, messages)
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
    /// The state directory's disk: below its floor new snapshots are refused.
    pub storage: Option<Arc<Storage>>,
    /// The work-group notification channels, when any is configured.
    pub notify: Option<crate::notify::NotifyHandle>,
    /// Event clips, when on.
    pub clips: Option<crate::clips::ClipsHandle>,
    /// The GA/T 1400 uplink, when configured: each passing's `end` becomes a record in its queue.
    pub gat1400: Option<crate::gat1400::Gat1400Handle>,
}

/// One camera's sink.
pub struct EventSink<Q: Queue = OutboxHandle> {
    camera: String,
    topics: Topics,
    queue: Q,
    local: LocalRecord,
    record: Arc<CameraRecord>,
    /// This frame's messages, and what to record locally once they are committed.
    batch: Vec<Message>,
    locals: Vec<Local>,
    /// Batches in the outbox's hands, oldest first, not yet recorded locally.
    waiting: VecDeque<Waiting>,
    /// When the frame being analysed arrived: `new` events it completes count their latency from it.
    pub frame_arrived: Option<Instant>,
}

/// What to record locally for one message of a batch, once it is committed.
struct Local {
    /// The message's place in its batch.
    index: usize,
    what: LocalKind,
}

enum LocalKind {
    /// A line for a local log (and the duty desk); for events, the journal line and the history index.
    Line { log: Arc<EventLog>, line: Vec<u8>, item: Option<Box<FeedItem>>, announce: Option<Box<ObjectEvent>>, notify: Option<Box<payload::Alert>> },
    /// The local copy of a snapshot.
    Snapshot { event_id: String, taken_at: DateTime<Utc>, jpeg: Vec<u8> },
}

/// A batch handed to the outbox.
struct Waiting {
    ticket: Ticket,
    locals: Vec<Local>,
    arrived: Option<Instant>,
}

impl<Q: Queue> EventSink<Q> {
    pub fn new(camera: &str, topics: Topics, queue: Q, local: LocalRecord, record: Arc<CameraRecord>) -> Self {
        Self { camera: camera.to_string(), topics, queue, local, record, batch: Vec::new(), locals: Vec::new(), waiting: VecDeque::new(), frame_arrived: None }
    }

    /// Adds a message to this frame's batch; returns its place.
    fn push(&mut self, kind: Kind, topic: String, payload: Vec<u8>) -> usize {
        self.batch.push(Message::new(kind, topic, payload));
        self.batch.len() - 1
    }

    /// An event (and its snapshot) goes to the outbox; it is recorded locally once committed. While the disk
    /// is below its floor the snapshot is not kept and the event says it has none.
    pub fn emit(&mut self, mut out: EventOut) {
        if out.snapshot.is_some() && self.local.storage.as_ref().is_some_and(|s| s.refuses_snapshots()) {
            if let Some(storage) = &self.local.storage {
                storage.refused_snapshot();
            }
            tracing::debug!(camera = %self.camera, event = %out.event.id, "snapshot not kept: the disk is below its free-space floor");
            out.snapshot = None;
            out.event.snapshot = None;
            out.extras = crate::events::Extras::default();
        }
        let e = &out.event;
        self.record.flow.on_event(e);
        self.note_clip(e);
        if let (Some(gat), Phase::End) = (&self.local.gat1400, e.phase) {
            gat.offer(e, out.snapshot.as_deref(), &out.extras);
        }
        // The snapshot goes first so it is delivered before the event that references it.
        if let (Some(jpeg), Some(info)) = (out.snapshot, &e.snapshot) {
            let index = self.push(Kind::Snapshot, self.topics.snapshot(&self.camera, &e.id), jpeg.clone());
            self.locals.push(Local { index, what: LocalKind::Snapshot { event_id: e.id.clone(), taken_at: info.taken_at, jpeg } });
        }
        let wire = payload::Event::new(e, Some(&self.topics));
        match serde_json::to_vec(&wire) {
            Ok(bytes) => {
                let index = self.push(Kind::Event, self.topics.events(&self.camera), bytes.clone());
                let item = self.local.feed.as_ref().map(|_| FeedItem::event(wire)).map(Box::new);
                self.locals.push(Local { index, what: LocalKind::Line { log: self.local.events.clone(), line: bytes, item, announce: Some(Box::new(out.event)), notify: None } });
            }
            Err(err) => tracing::error!(camera = %self.camera, error = %err, "cannot serialise event"),
        }
    }

    /// The clip thread hears when an object starts and ends (it keeps the ring's video of it until then).
    fn note_clip(&self, e: &ObjectEvent) {
        let Some(clips) = &self.local.clips else { return };
        let (camera, event) = (self.camera.clone(), e.id.clone());
        match (e.phase, e.ended_at) {
            (Phase::New, _) => clips.note(crate::clips::Note::Started { camera, event, at: e.started_at }),
            (Phase::End, Some(at)) => clips.note(crate::clips::Note::Ended { camera, event, at, merged: e.merged_into.is_some() }),
            _ => {}
        }
    }

    /// An alert goes to the outbox (then MQTT), the local alert log and the duty desk.
    pub fn alert(&mut self, finding: &Finding) {
        let alert = payload::Alert::new(finding, Some(&self.topics));
        if let Some(clips) = &self.local.clips {
            let camera = self.camera.clone();
            match (&finding.event_id, &finding.health) {
                (Some(event), _) => clips.note(crate::clips::Note::Alert { camera, event: event.clone(), alert: alert.id.clone() }),
                (None, None) => clips.note(crate::clips::Note::Around { camera, alert: alert.id.clone(), at: finding.at }),
                (None, Some(_)) => {}
            }
        }
        self.record.flow.on_alert(finding.at);
        tracing::warn!(
            camera = %self.camera,
            alert = %alert.id,
            rule = %alert.rule,
            kind = alert.kind.as_str(),
            severity = %alert.severity,
            event = alert.event_id.as_deref().unwrap_or("-"),
            "alert"
        );
        // Plates are personal data: in the journal (kept by journald's rules, not the agent's retention)
        // only at debug level.
        tracing::debug!(alert = %alert.id, plate = alert.plate.as_ref().map(|p| p.text.as_str()).unwrap_or("-"), "alert plate");
        let Ok(bytes) = serde_json::to_vec(&alert) else { return };
        let index = self.push(Kind::Alert, self.topics.alerts(&self.camera), bytes.clone());
        let notify = self.local.notify.as_ref().map(|_| Box::new(alert.clone()));
        let item = self.local.feed.as_ref().map(|_| FeedItem::alert(alert)).map(Box::new);
        self.locals.push(Local { index, what: LocalKind::Line { log: self.local.alerts.clone(), line: bytes, item, announce: None, notify } });
    }

    /// Hands this frame's batch to the outbox and records locally what the outbox has committed. Waits a
    /// moment for this batch when nothing older is pending; never longer.
    pub fn commit(&mut self) {
        let mut wait = Duration::ZERO;
        if !self.batch.is_empty() {
            let messages = std::mem::take(&mut self.batch);
            let locals = std::mem::take(&mut self.locals);
            match self.queue.append_batch(messages) {
                Ok(ticket) => {
                    self.waiting.push_back(Waiting { ticket, locals, arrived: self.frame_arrived });
                    if self.waiting.len() == 1 {
                        wait = COMMIT_WAIT;
                    }
                }
                Err(rejected) => self.rejected(&rejected),
            }
            if self.waiting.len() > MAX_WAITING {
                self.waiting.pop_front();
                self.record.counters.local_records_skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %self.camera, "the outbox has not committed for a long time: the oldest waiting batch will not be recorded locally (it is still in the outbox)");
            }
        }
        self.settle(wait);
    }

    /// Waits up to `deadline` for every pending batch (the camera is stopping); what is still pending then
    /// is not recorded locally (the outbox may still commit it).
    pub fn close(&mut self, deadline: Duration) {
        self.commit();
        let until = Instant::now() + deadline;
        while !self.waiting.is_empty() && Instant::now() < until {
            self.settle(until.saturating_duration_since(Instant::now()).min(Duration::from_millis(100)));
        }
        if !self.waiting.is_empty() {
            let batches = self.waiting.len();
            self.record.counters.local_records_skipped.fetch_add(batches as u64, Ordering::Relaxed);
            tracing::warn!(camera = %self.camera, batches, "camera stopped with batches the outbox has not committed: they are not recorded locally");
            self.waiting.clear();
        }
    }

    /// Records locally every batch at the front that the outbox has committed.
    fn settle(&mut self, mut wait: Duration) {
        while let Some(front) = self.waiting.front() {
            match front.ticket.wait(wait) {
                TicketState::Committed(kept) => {
                    if let Some(done) = self.waiting.pop_front() {
                        self.record_locally(done, &kept);
                    }
                    wait = Duration::ZERO;
                }
                TicketState::Pending => return,
                TicketState::Lost => {
                    if let Some(lost) = self.waiting.pop_front() {
                        self.record.counters.messages_dropped.fetch_add(lost.locals.len() as u64, Ordering::Relaxed);
                        tracing::error!(camera = %self.camera, messages = lost.locals.len(), "the outbox stopped before committing a batch: not recorded");
                    }
                }
            }
        }
    }

    /// A batch the outbox did not take: counted, logged, and not recorded locally.
    fn rejected(&self, rejected: &RejectedBatch) {
        for message in &rejected.messages {
            self.record.counters.messages_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(camera = %self.camera, kind = ?message.kind, topic = %message.topic, bytes = message.payload.len(), error = %rejected.reason, "message not queued");
        }
    }

    /// The local record of a committed batch: only what the outbox kept.
    fn record_locally(&self, done: Waiting, kept: &[bool]) {
        if let Some(arrived) = done.arrived {
            for _ in done.locals.iter().filter(|l| matches!(&l.what, LocalKind::Line { announce: Some(e), .. } if e.phase == Phase::New)) {
                self.record.record_event_latency(arrived.elapsed());
            }
        }
        let now = Utc::now();
        let mut passings: Vec<Vec<u8>> = Vec::new();
        for local in done.locals {
            if !kept.get(local.index).copied().unwrap_or(false) {
                continue;
            }
            match local.what {
                LocalKind::Snapshot { event_id, taken_at, jpeg } => {
                    if let Err(err) = self.local.snapshots.save(&event_id, taken_at, &jpeg) {
                        tracing::warn!(camera = %self.camera, event = %event_id, error = %err, "cannot keep the snapshot locally");
                    }
                }
                LocalKind::Line { log, line, item, announce, notify } => {
                    if let (Some(channels), Some(alert)) = (&self.local.notify, notify) {
                        channels.offer(&alert);
                    }
                    if let Some(e) = &announce {
                        if e.phase == Phase::End && e.merged_into.is_none() {
                            passings.push(line.clone());
                        }
                        tracing::info!(camera = %self.camera, event = %e.id, phase = ?e.phase, label = e.class.label(), direction = ?e.direction, plate_read = e.plate.is_some(), "event");
                        tracing::debug!(event = %e.id, plate = e.plate.as_ref().map_or("-", |p| p.text.as_str()), "event plate");
                    }
                    if let Err(err) = log.append(now, &line) {
                        tracing::warn!(camera = %self.camera, dir = %log.dir().display(), error = %err, "cannot write the local log");
                    }
                    if let (Some(feed), Some(item)) = (&self.local.feed, item) {
                        feed.publish(*item);
                    }
                }
            }
        }
        if let (Some(history), false) = (&self.local.history, passings.is_empty()) {
            self.index(history, &passings, now);
        }
    }

    /// Adds passings to the history index; after a failed write, first catches the index up from the log.
    fn index(&self, history: &History, passings: &[Vec<u8>], now: DateTime<Utc>) {
        if history.is_stale() {
            match history.catch_up(&self.local.events, now) {
                Ok(n) => tracing::info!(camera = %self.camera, indexed_from_logs = n, "history index writable again: caught up from the event log"),
                Err(err) => {
                    tracing::debug!(camera = %self.camera, error = %err, "history index still not writable");
                    return;
                }
            }
        }
        if let Err(err) = history.add_events(passings.iter().map(Vec::as_slice)) {
            tracing::warn!(camera = %self.camera, error = %err, "cannot index the passing for the history search");
        }
    }
}
