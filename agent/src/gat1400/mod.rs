//! The GA/T 1400 (视图库) uplink: pass records for platforms built to the standard.
//!
//! Design: each passing's `end` (merged chains skipped) becomes one `MotorVehicle` or `Person` record with
//! its pictures ([`record`]), made once and appended to the uplink's own queue, `gat1400.redb` in the state
//! directory: the outbox's machinery (group commits, bounds by bytes and age, dead letters) with its own
//! delivery state, so the MQTT uplink and this one never wait for each other. One thread registers with the
//! platform (digest), keeps the registration alive, and uploads the queue oldest first in batches. A record
//! is deleted only when the server answers its `StatusCode` "0"; one the server refuses is moved to the
//! dead letters with the server's reason and the ones behind it go on; an unreachable server or a lost
//! registration delays everything and loses nothing (retries back off from 2 s to 60 s; a wrong password
//! is retried every 30 s to 5 min, it will not fix itself). The state (`registering`, `registered`,
//! `unauthorised`, `unreachable`) is in the retained status, `stats` and `/metrics`.

mod client;
pub mod digest;
pub mod record;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use edge_config::Gat1400;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use client::{Fault, CONTENT_TYPE};
pub use record::{Record, RecordKind};

use crate::events::{Extras, ObjectEvent};
use crate::outbox::{Bounds, Kind, Message, Outbox, OutboxHandle, OutboxWriter};

/// How often the queue is looked at while it is empty.
const POLL: Duration = Duration::from_millis(250);
/// Back-off while the server is unreachable, and while it refuses the password.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);
const UNAUTHORISED_FIRST: Duration = Duration::from_secs(30);
const UNAUTHORISED_MAX: Duration = Duration::from_secs(300);
/// Bytes of records read for one request (pictures make a record 100–500 KB).
const REQUEST_MAX_BYTES: usize = 8 << 20;
/// A clock further than this from the platform's is logged as a warning (pass times would be off).
const CLOCK_WARN_S: i64 = 5;

/// The uplink's link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkState {
    /// Not yet answered.
    Registering,
    Registered,
    /// The server refuses the device's user and password (or the device).
    Unauthorised,
    /// No answer, or a server error.
    Unreachable,
}

impl LinkState {
    pub const ALL: [LinkState; 4] = [LinkState::Registering, LinkState::Registered, LinkState::Unauthorised, LinkState::Unreachable];

    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Registering => "registering",
            LinkState::Registered => "registered",
            LinkState::Unauthorised => "unauthorised",
            LinkState::Unreachable => "unreachable",
        }
    }
}

/// Counters since the agent started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records queued, accepted (`StatusCode` "0"), refused (dead-lettered with the server's reason), and
    /// not made (the queue would not take them).
    pub queued: AtomicU64,
    pub accepted: AtomicU64,
    pub refused: AtomicU64,
    pub not_queued: AtomicU64,
    pub registrations: AtomicU64,
}

/// What the status and reports show.
#[derive(Debug, Clone)]
struct Shared {
    state: LinkState,
    /// What is wrong, for people.
    problem: Option<String>,
    /// The platform's clock minus ours, seconds (at the last registration).
    clock_offset_s: Option<i64>,
    /// The last refusal's reason.
    last_refusal: Option<String>,
}

/// The uplink as the rest of the agent sees it. Cheap to clone.
#[derive(Clone)]
pub struct Gat1400Handle {
    settings: Arc<Gat1400>,
    queue: OutboxHandle,
    counters: Arc<Counters>,
    shared: Arc<Mutex<Shared>>,
    /// Called when the link state changes (the retained status is published again).
    on_change: Arc<Mutex<Option<ChangeHook>>>,
}

/// What is called when the link state changes.
type ChangeHook = Box<dyn Fn() + Send + Sync>;

/// The uplink's report in `stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Gat1400Report {
    pub state: &'static str,
    pub problem: Option<String>,
    /// Records waiting in the queue, and its oldest's age.
    pub waiting: u64,
    pub oldest_age_s: Option<f64>,
    pub queued_total: u64,
    pub accepted_total: u64,
    /// Refused by the server: moved to the queue's dead letters with the reason (`last_refusal`).
    pub refused_total: u64,
    /// Dropped from the queue by its bounds (bytes, age) before they could be sent.
    pub evicted_total: u64,
    pub not_queued_total: u64,
    pub registrations_total: u64,
    pub clock_offset_s: Option<i64>,
    pub last_refusal: Option<String>,
}

impl Gat1400Handle {
    /// Queues the record of a passing's `end` (`snapshot`: its picture and box; `extras`: scene and plate).
    /// Never blocks on the server.
    pub fn offer(&self, e: &ObjectEvent, snapshot: Option<&[u8]>, extras: &Extras) {
        if e.merged_into.is_some() {
            return;
        }
        let snap = snapshot.zip(e.snapshot.as_ref()).map(|(jpeg, info)| (jpeg, info.width, info.height, info.object_box));
        let Some(record) = record::build(&self.settings, e, &record::Pictures { snapshot: snap, extras }) else { return };
        let message = Message::new(Kind::Event, record.kind.topic().to_string(), record.object.to_string().into_bytes());
        match self.queue.append_batch(vec![message]) {
            Ok(_) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(rejected) => {
                self.counters.not_queued.fetch_add(1, Ordering::Relaxed);
                tracing::error!(event = %e.id, error = %rejected.reason, "GA/T 1400 record not queued");
            }
        }
    }

    /// Asks the event builder for the pictures the records carry besides the snapshot: the whole frame of
    /// the objects sent, and the plate.
    pub fn ask_pictures(&self, s: &mut crate::events::snapshot::SnapshotSettings) {
        let g = &self.settings;
        if g.wants(edge_config::Gat1400Image::Scene) {
            (s.scene_width, s.scene_max_bytes, s.scene_people, s.scene_vehicles) = (g.scene_width, g.scene_max_bytes, g.people, g.vehicles);
        }
        s.plate_crop = g.vehicles && g.wants(edge_config::Gat1400Image::Plate);
    }

    pub fn state(&self) -> LinkState {
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).state
    }

    /// What is wrong with the uplink, for `/healthz` and the duty desk (degraded: the records wait).
    pub fn problem(&self) -> Option<String> {
        let s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        match s.state {
            LinkState::Registered | LinkState::Registering => None,
            state => Some(format!("GA/T 1400 uplink {}{}", state.as_str(), s.problem.as_deref().map(|p| format!(": {p}")).unwrap_or_default())),
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records waiting to be sent.
    pub fn waiting(&self) -> u64 {
        self.queue.outbox().stats().map_or(0, |s| s.depth)
    }

    /// Calls `f` whenever the link state changes.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.on_change.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(f));
    }

    pub fn report(&self) -> Gat1400Report {
        let shared = self.shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let q = self.queue.outbox().stats().unwrap_or_default();
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let c = &self.counters;
        Gat1400Report {
            state: shared.state.as_str(),
            problem: shared.problem,
            waiting: q.depth,
            oldest_age_s: q.oldest_age_ms.map(|ms| crate::payload::round2(ms as f64 / 1000.0)),
            queued_total: load(&c.queued),
            accepted_total: load(&c.accepted),
            refused_total: load(&c.refused),
            evicted_total: q.evicted_total,
            not_queued_total: load(&c.not_queued),
            registrations_total: load(&c.registrations),
            clock_offset_s: shared.clock_offset_s,
            last_refusal: shared.last_refusal,
        }
    }

    fn set_state(&self, state: LinkState, problem: Option<String>) {
        let changed = {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            let changed = s.state != state;
            s.state = state;
            s.problem = problem.clone();
            changed
        };
        if changed {
            match state {
                LinkState::Registered => tracing::info!(server = %self.settings.server, "GA/T 1400: registered"),
                _ => tracing::warn!(server = %self.settings.server, state = state.as_str(), problem = problem.as_deref().unwrap_or("-"), "GA/T 1400 uplink"),
            }
            if let Some(f) = self.on_change.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                f();
            }
        }
    }
}

/// The running uplink: stopped with [`Uplink::stop`].
pub struct Uplink {
    senders: crate::outbox::senders::QueueSenders,
}

impl Uplink {
    /// Opens the record queue in `state_dir` and starts the uplink's thread. `None` when not configured.
    pub fn start(settings: Option<&Gat1400>, state_dir: PathBuf, cancel: &CancellationToken) -> anyhow::Result<Option<(Uplink, Gat1400Handle)>> {
        let Some(g) = settings.filter(|g| g.enabled) else { return Ok(None) };
        let password = crate::notify::read_secret(g.password.as_ref(), g.password_file.as_deref(), g.password_env.as_deref(), "gat1400.password")?
            .ok_or_else(|| anyhow::anyhow!("gat1400.password: missing"))?;
        let ca = match &g.ca_file {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("gat1400.ca_file {}", p.display()))?),
            None => None,
        };
        let user = g.user.clone().unwrap_or_else(|| g.device_id.clone());
        let client = client::Client::new(&g.server, &g.device_id, &user, password, Duration::from_secs(g.timeout_secs), ca.as_deref())
            .map_err(|e| anyhow::anyhow!("gat1400.ca_file: {e}"))?;
        let outbox = Outbox::open(&state_dir.join("gat1400.redb"))?;
        let max_age_ms = g.max_age_hours * 3_600_000;
        let max_bytes = g.queue_max_mb << 20;
        let bounds = Bounds { max_bytes, max_age_ms, snapshot_max_age_ms: max_age_ms, held_max_bytes: (max_bytes / 8).max(16 << 20) };
        let (writer, queue) = OutboxWriter::start(outbox, bounds)?;
        let shared = Shared { state: LinkState::Registering, problem: None, clock_offset_s: None, last_refusal: None };
        let handle = Gat1400Handle { settings: Arc::new(g.clone()), queue, counters: Arc::default(), shared: Arc::new(Mutex::new(shared)), on_change: Arc::default() };
        let cancel = cancel.child_token();
        let worker = Worker { handle: handle.clone(), client, cancel: cancel.clone(), settled: Default::default(), single: 0, registered: false, last_contact: Instant::now() };
        let thread = std::thread::Builder::new().name("gat1400".into()).spawn(move || worker.run()).context("cannot start the GA/T 1400 thread")?;
        tracing::info!(server = %g.server, device = %g.device_id, vehicles = g.vehicles, people = g.people, "GA/T 1400 uplink started: pass records leave the checkpoint for this platform");
        Ok(Some((Uplink { senders: crate::outbox::senders::QueueSenders::new(vec![thread], writer, cancel) }, handle)))
    }

    /// Stops the thread (it unregisters when it can, within a second) and the queue's writer.
    pub fn stop(self, deadline: Duration) {
        self.senders.stop(deadline);
    }
}

/// The uplink's thread.
struct Worker {
    handle: Gat1400Handle,
    client: client::Client,
    cancel: CancellationToken,
    /// Records settled (accepted, refused): not sent again.
    settled: crate::outbox::senders::Settled,
    /// Requests left to send one record at a time (after the server refused a whole batch).
    single: usize,
    registered: bool,
    /// The last answer from the server (keepalives are sent when it is older than `keepalive_secs`).
    last_contact: Instant,
}

/// One record read from the queue.
struct Waiting {
    key: u64,
    id: String,
    object: Value,
}

impl Worker {
    fn run(mut self) {
        let mut retry = RETRY_FIRST;
        let mut unauthorised = UNAUTHORISED_FIRST;
        while !self.cancel.is_cancelled() {
            if !self.registered {
                match self.client.register() {
                    Ok(()) => {
                        self.registered = true;
                        self.last_contact = Instant::now();
                        self.handle.counters.registrations.fetch_add(1, Ordering::Relaxed);
                        self.handle.set_state(LinkState::Registered, None);
                        self.check_clock();
                        retry = RETRY_FIRST;
                        unauthorised = UNAUTHORISED_FIRST;
                    }
                    Err(Fault::Unauthorised(reason)) => {
                        self.handle.set_state(LinkState::Unauthorised, Some(reason));
                        self.sleep(unauthorised);
                        unauthorised = (unauthorised * 2).min(UNAUTHORISED_MAX);
                    }
                    Err(fault) => {
                        self.handle.set_state(LinkState::Unreachable, Some(fault.to_string()));
                        self.sleep(retry);
                        retry = (retry * 2).min(RETRY_MAX);
                    }
                }
                continue;
            }
            let batch = self.waiting();
            let outcome = if batch.is_empty() {
                if self.last_contact.elapsed() < Duration::from_secs(self.handle.settings.keepalive_secs) {
                    self.sleep(POLL);
                    continue;
                }
                self.client.keepalive()
            } else {
                self.upload(batch)
            };
            match outcome {
                Ok(()) => {
                    self.last_contact = Instant::now();
                    retry = RETRY_FIRST;
                }
                Err(Fault::NotRegistered) => {
                    tracing::info!("GA/T 1400: the server no longer knows this device: registering again");
                    self.registered = false;
                }
                Err(fault) => {
                    // Unreachable (or the keepalive refused): register again once the server answers.
                    self.handle.set_state(LinkState::Unreachable, Some(fault.to_string()));
                    self.registered = false;
                    self.sleep(retry);
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        // Unregister on the way out, briefly: a server that is down does not hold up the shutdown.
        if self.registered && self.client.unregister().is_ok() {
            tracing::info!("GA/T 1400: unregistered");
        }
    }

    fn sleep(&self, d: Duration) {
        crate::source::sleep_unless_cancelled(d, &self.cancel);
    }

    fn check_clock(&mut self) {
        match self.client.clock_offset() {
            Ok(Some(offset)) => {
                if offset.abs() > CLOCK_WARN_S {
                    tracing::warn!(offset_s = offset, "GA/T 1400: this clock differs from the platform's: pass times will be off (check NTP)");
                }
                self.handle.shared.lock().unwrap_or_else(|p| p.into_inner()).clock_offset_s = Some(offset);
            }
            Ok(None) => tracing::debug!("GA/T 1400: the platform's time answer has no LocalTime"),
            Err(e) => tracing::debug!(error = %e, "GA/T 1400: cannot read the platform's time"),
        }
    }

    /// The oldest records of one kind, up to the batch size (one while the server refuses batches).
    fn waiting(&mut self) -> Vec<(RecordKind, Waiting)> {
        let limit = if self.single > 0 { 1 } else { self.handle.settings.batch };
        let (mut after, mut out, mut gone, mut seen) = (0u64, Vec::new(), Vec::new(), BTreeSet::new());
        let mut kind: Option<RecordKind> = None;
        let mut bytes = 0usize;
        'read: while let Ok(batch) = self.handle.queue.outbox().read_after(after, 64, REQUEST_MAX_BYTES) {
            let Some(last) = batch.last().map(|(k, _)| *k) else { break };
            after = last;
            for (key, message) in batch {
                if self.settled.contains(key) {
                    seen.insert(key);
                    continue;
                }
                let parsed = RecordKind::from_topic(&message.topic).zip(serde_json::from_slice::<Value>(&message.payload).ok());
                let Some((k, object)) = parsed else {
                    tracing::error!(key, topic = %message.topic, "unreadable GA/T 1400 record dropped");
                    gone.push(key);
                    continue;
                };
                if kind.is_some_and(|kind| kind != k) || (!out.is_empty() && bytes + message.payload.len() > REQUEST_MAX_BYTES) {
                    break 'read;
                }
                kind = Some(k);
                bytes += message.payload.len();
                let id = object[k.id_field()].as_str().unwrap_or("").to_string();
                out.push((k, Waiting { key, id, object }));
                if out.len() >= limit {
                    break 'read;
                }
            }
        }
        if out.is_empty() {
            self.settled.forget_gone(&seen);
        }
        self.ack(gone);
        out
    }

    /// Deletes settled records (and never sends them again, even before the deletion commits).
    fn ack(&mut self, keys: Vec<u64>) {
        if !self.settled.ack(&self.handle.queue, keys) {
            tracing::warn!("GA/T 1400 queue busy: sent records are deleted later");
        }
    }

    /// Moves a refused record to the dead letters with the server's reason.
    fn refuse(&mut self, w: &Waiting, reason: String) {
        self.handle.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::error!(record = %w.id, reason = %reason, "GA/T 1400: the server refused the record: moved to the dead letters, the next go on");
        self.handle.shared.lock().unwrap_or_else(|p| p.into_inner()).last_refusal = Some(format!("{}: {reason}", w.id));
        self.settled.insert(w.key);
        if let Err((key, reason)) = self.handle.queue.dead_letter(w.key, reason) {
            tracing::warn!(key, reason = %reason, "GA/T 1400 queue busy: the refused record is deleted instead");
            self.ack(vec![key]);
        }
    }

    fn upload(&mut self, batch: Vec<(RecordKind, Waiting)>) -> Result<(), Fault> {
        let Some(kind) = batch.first().map(|(k, _)| *k) else { return Ok(()) };
        let records: Vec<Waiting> = batch.into_iter().map(|(_, w)| w).collect();
        let ids: Vec<String> = records.iter().map(|w| w.id.clone()).collect();
        let envelope = kind.envelope(records.iter().map(|w| w.object.clone()).collect());
        let path = format!("/VIID/{}", kind.topic());
        self.single = self.single.saturating_sub(1);
        let results = match self.client.upload(&path, &envelope, &ids) {
            Ok(results) => results,
            Err(Fault::Refused(reason)) if records.len() > 1 => {
                // The request as a whole was refused: find the record it was, one at a time.
                tracing::warn!(records = records.len(), reason = %reason, "GA/T 1400: the server refused a batch: sending its records one by one");
                self.single = records.len();
                return Ok(());
            }
            Err(Fault::Refused(reason)) => {
                if let Some(w) = records.first() {
                    self.refuse(w, reason);
                }
                return Ok(());
            }
            Err(fault) => return Err(fault),
        };
        if self.handle.state() != LinkState::Registered {
            self.handle.set_state(LinkState::Registered, None);
        }
        let mut accepted = Vec::new();
        let mut unanswered = 0;
        for (w, result) in records.iter().zip(results) {
            match result {
                Some(Ok(())) => accepted.push(w.key),
                Some(Err(reason)) => self.refuse(w, reason),
                None => unanswered += 1,
            }
        }
        self.handle.counters.accepted.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        self.ack(accepted);
        if unanswered > 0 {
            return Err(Fault::Unreachable(format!("{path}: the answer gave no status for {unanswered} record(s)")));
        }
        Ok(())
    }
}
