//! Event clips: each camera's compressed stream kept in a short ring ([`ring`], written by the
//! [`recorder`] without decoding), and a clip cut from it ([`cut`]) for every alert or every passing, from
//! `pre_capture` before the object was first seen to `post_capture` after it was last seen, kept in the
//! [`store`] and announced on `{prefix}/{site}/{camera}/clips` once complete.
//!
//! The sinks tell the clip thread what happens ([`Note`]): an event started (its ring keeps what it may
//! need), an alert was raised on it, it ended. `post_capture` after the end — once the ring has recorded
//! that far — the thread cuts the clip if it is wanted and lets the ring go otherwise. Nothing here runs on
//! a camera thread but the recorder's probe, which only hands buffers on.

pub mod cut;
pub mod recorder;
pub mod ring;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use edge_config::{ClipKeep, Clips as ClipSettings, Site};

use crate::outbox::{Kind, Message, OutboxHandle};
use crate::payload::{self, Clip, Grid, CLIP_SCHEMA};
use crate::storage::Storage;
use crate::topics::Topics;
use crate::web::{Feed, FeedItem};
pub use ring::{ClipRing, RingStatus};
pub use store::ClipStore;

/// How often the clip thread looks at what waits (and how late a clip can be at most beyond it).
const TICK: Duration = Duration::from_millis(250);
/// How often retention runs.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// What the sinks tell the clip thread.
#[derive(Debug, Clone)]
pub enum Note {
    /// An object was first seen.
    Started { camera: String, event: String, at: DateTime<Utc> },
    /// A rule raised an alert on it.
    Alert { camera: String, event: String, alert: String },
    /// It was last seen at `at`; `merged`: it was the same vehicle as another chain (no passing of its own).
    Ended { camera: String, event: String, at: DateTime<Utc>, merged: bool },
    /// An alert about no one event (crowding): a clip around the moment it fired.
    Around { camera: String, alert: String, at: DateTime<Utc> },
}

/// Counters since the agent started.
#[derive(Debug, Default)]
pub struct ClipCounters {
    pub kept_total: AtomicU64,
    pub kept_bytes_total: AtomicU64,
    /// Clips that could not be cut (no video recorded for the time, a remux error).
    pub failed_total: AtomicU64,
    /// Clips not kept because the state disk is below its floor.
    pub refused_total: AtomicU64,
    /// Wanted clips of cameras that have none (MJPEG, raw video, a failed recorder).
    pub unavailable_total: AtomicU64,
}

/// What is known of the clips, for stats, `/metrics` and the desk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClipsReport {
    pub kept_total: u64,
    pub failed_total: u64,
    pub refused_total: u64,
    pub unavailable_total: u64,
    pub deleted_total: u64,
    pub waiting: usize,
    pub bytes: u64,
    pub count: usize,
    pub cameras: Vec<RingReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RingReport {
    pub camera: String,
    /// `waiting`, `recording`, `unavailable` or `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub ring_bytes: u64,
    pub ring_fragments: usize,
}

struct Shared {
    settings: ClipSettings,
    ring_root: PathBuf,
    rings: Mutex<HashMap<String, Arc<ClipRing>>>,
    store: ClipStore,
    counters: ClipCounters,
    waiting: AtomicU64,
    /// Bytes and count of the store at the last sweep (measuring on every report would walk the disk).
    usage: Mutex<(u64, usize)>,
    storage: Option<Arc<Storage>>,
    outbox_max_bytes: u64,
}

/// The clips of every camera; cheap to clone.
#[derive(Clone)]
pub struct ClipsHandle {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Note>,
}

/// Where the clip thread sends what it cut.
pub struct Outputs {
    pub outbox: OutboxHandle,
    pub topics: Topics,
    pub site: Site,
    pub feed: Option<Feed>,
    /// The state disk's floor: below it no clip is kept or sent.
    pub storage: Option<Arc<Storage>>,
    /// `storage.outbox_max_bytes`: a clip the platform asks for must leave room for the events.
    pub outbox_max_bytes: u64,
}

/// A pending clip.
struct Pending {
    camera: String,
    event: Option<String>,
    alerts: Vec<String>,
    from: DateTime<Utc>,
    /// Set once the object has left: the end of the clip.
    to: Option<DateTime<Utc>>,
    wanted: bool,
}

impl ClipsHandle {
    /// Starts the clip thread.
    pub fn start(settings: ClipSettings, state_dir: &Path, out: Outputs) -> std::io::Result<Self> {
        let ring_root = settings.ring_dir.clone().unwrap_or_else(|| state_dir.join("clips").join("ring"));
        std::fs::create_dir_all(&ring_root)?;
        let store = ClipStore::new(state_dir, settings.retention_days, settings.max_mb << 20);
        let shared = Arc::new(Shared {
            settings,
            ring_root,
            rings: Mutex::new(HashMap::new()),
            store,
            counters: ClipCounters::default(),
            waiting: AtomicU64::new(0),
            usage: Mutex::new((0, 0)),
            storage: out.storage.clone(),
            outbox_max_bytes: out.outbox_max_bytes,
        });
        let (tx, rx) = mpsc::channel();
        let worker = Worker { shared: shared.clone(), out, pending: HashMap::new() };
        std::thread::Builder::new().name("clips".into()).spawn(move || worker.run(rx))?;
        Ok(Self { shared, tx })
    }

    pub fn settings(&self) -> &ClipSettings {
        &self.shared.settings
    }

    /// The ring of `camera` (made on first use).
    pub fn ring(&self, camera: &str) -> Option<Arc<ClipRing>> {
        let mut rings = self.shared.rings.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = rings.get(camera) {
            return Some(r.clone());
        }
        let s = &self.shared.settings;
        let keep = f64::from(s.pre_capture_secs + 2 * s.fragment_secs + 2);
        match ClipRing::new(camera, self.shared.ring_root.join(camera), keep, s.ring_max_mb << 20, s.fragment_secs) {
            Ok(ring) => {
                let ring = Arc::new(ring);
                rings.insert(camera.to_string(), ring.clone());
                Some(ring)
            }
            Err(e) => {
                tracing::error!(camera, dir = %self.shared.ring_root.display(), error = %e, "cannot make the clip ring: no clips for this camera");
                None
            }
        }
    }

    /// A camera was removed: its ring goes (clips still waiting for it are not cut).
    pub fn remove_ring(&self, camera: &str) {
        let ring = self.shared.rings.lock().unwrap_or_else(|e| e.into_inner()).remove(camera);
        if let Some(ring) = ring {
            if let Err(e) = std::fs::remove_dir_all(ring.dir()) {
                tracing::debug!(camera, error = %e, "the removed camera's ring was already gone");
            }
        }
    }

    pub fn note(&self, note: Note) {
        let _ = self.tx.send(note);
    }

    pub fn store(&self) -> &ClipStore {
        &self.shared.store
    }

    pub fn report(&self) -> ClipsReport {
        let s = &self.shared;
        let c = &s.counters;
        let (bytes, count) = *s.usage.lock().unwrap_or_else(|e| e.into_inner());
        let mut cameras: Vec<RingReport> = s
            .rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|r| {
                let status = r.status();
                let (fragments, ring_bytes, _) = r.usage();
                RingReport { camera: r.camera.clone(), state: status.as_str(), reason: status.reason().map(str::to_string), ring_bytes, ring_fragments: fragments }
            })
            .collect();
        cameras.sort_by(|a, b| a.camera.cmp(&b.camera));
        ClipsReport {
            kept_total: c.kept_total.load(Ordering::Relaxed),
            failed_total: c.failed_total.load(Ordering::Relaxed),
            refused_total: c.refused_total.load(Ordering::Relaxed),
            unavailable_total: c.unavailable_total.load(Ordering::Relaxed),
            deleted_total: s.store.counters.deleted_total.load(Ordering::Relaxed),
            waiting: s.waiting.load(Ordering::Relaxed) as usize,
            bytes,
            count,
            cameras,
        }
    }

    /// The `clip` command: the clip's file through the outbox, as one batch of chunks on
    /// `{prefix}/{site}/{camera}/clips/{id}/{n}`. Returns what the result reports. Refused while the state
    /// disk is below its floor, and when the clip would take more than a quarter of the room left in the
    /// outbox: a clip must never push undelivered events out.
    pub fn send(&self, id: &str, outbox: &OutboxHandle, topics: &Topics) -> Result<serde_json::Value, String> {
        let Some((path, clip)) = self.shared.store.find(id) else { return Err(format!("no clip {id:?} is kept (not recorded, not complete yet, or deleted)")) };
        if self.shared.storage.as_ref().is_some_and(|s| s.refuses_snapshots()) {
            return Err("the state disk is below its free-space floor: the clip is not queued (ask again when it has room)".into());
        }
        let room = self.shared.outbox_max_bytes.saturating_sub(outbox.outbox().stats().map(|s| s.bytes).unwrap_or(0));
        if clip.bytes > room / 4 {
            return Err(format!(
                "the clip's {} bytes would take more than a quarter of the {room} bytes left in the outbox: not queued, so that no undelivered event is pushed out",
                clip.bytes
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read the clip: {e}"))?;
        let chunk = (self.shared.settings.chunk_kb as usize) << 10;
        let chunks = bytes.len().div_ceil(chunk);
        let messages: Vec<Message> = bytes.chunks(chunk).enumerate().map(|(n, part)| Message::new(Kind::Clip, topics.clip_chunk(&clip.camera, id, n), part.to_vec())).collect();
        // One batch: every chunk is queued, or none.
        outbox.append_batch(messages).map_err(|r| format!("the clip's chunks were not queued: {}", r.reason))?;
        tracing::info!(clip = id, chunks, bytes = bytes.len(), "clip queued for the platform");
        Ok(serde_json::json!({
            "topic": format!("{}/{id}", topics.clips(&clip.camera)),
            "chunks": chunks,
            "chunk_bytes": chunk,
            "bytes": bytes.len(),
            "sha256": clip.sha256,
            "content_type": "video/mp4",
            "duration_s": clip.duration_s,
        }))
    }
}

struct Worker {
    shared: Arc<Shared>,
    out: Outputs,
    pending: HashMap<String, Pending>,
}

impl Worker {
    fn run(mut self, rx: mpsc::Receiver<Note>) {
        let mut last_sweep: Option<std::time::Instant> = None;
        loop {
            match rx.recv_timeout(TICK) {
                Ok(note) => self.on_note(note),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(note) = rx.try_recv() {
                self.on_note(note);
            }
            self.due(Utc::now());
            if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
                self.sweep();
                last_sweep = Some(std::time::Instant::now());
            }
            self.shared.waiting.store(self.pending.values().filter(|p| p.wanted).count() as u64, Ordering::Relaxed);
        }
    }

    fn ring(&self, camera: &str) -> Option<Arc<ClipRing>> {
        self.shared.rings.lock().unwrap_or_else(|e| e.into_inner()).get(camera).cloned()
    }

    fn pre(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.shared.settings.pre_capture_secs))
    }

    fn post(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.shared.settings.post_capture_secs))
    }

    fn on_note(&mut self, note: Note) {
        let passings = self.shared.settings.keep == ClipKeep::Passings;
        match note {
            Note::Started { camera, event, at } => {
                let from = at - self.pre();
                if let Some(ring) = self.ring(&camera) {
                    ring.pin(&event, from);
                }
                self.pending.insert(event.clone(), Pending { camera, event: Some(event), alerts: Vec::new(), from, to: None, wanted: passings });
            }
            Note::Alert { event, alert, .. } => {
                if let Some(p) = self.pending.get_mut(&event) {
                    p.wanted = true;
                    p.alerts.push(alert);
                }
            }
            Note::Ended { event, at, merged, .. } => {
                let post = self.post();
                if let Some(p) = self.pending.get_mut(&event) {
                    p.to = Some(at + post);
                    if merged && p.alerts.is_empty() {
                        p.wanted = false;
                    }
                }
            }
            Note::Around { camera, alert, at } => {
                let from = at - self.pre();
                if let Some(ring) = self.ring(&camera) {
                    ring.pin(&alert, from);
                }
                self.pending.insert(alert.clone(), Pending { camera, event: None, alerts: vec![alert], from, to: Some(at + self.post()), wanted: true });
            }
        }
    }

    /// Cuts (or lets go) what has reached its end and been recorded that far.
    fn due(&mut self, now: DateTime<Utc>) {
        let grace = chrono::Duration::seconds(i64::from(2 * self.shared.settings.fragment_secs) + 10);
        let ready: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                let Some(to) = p.to else { return false };
                if now < to {
                    return false;
                }
                let ring = self.ring(&p.camera);
                let recording = ring.as_ref().is_some_and(|r| matches!(r.status(), RingStatus::Recording(_)));
                !p.wanted || !recording || ring.and_then(|r| r.recorded_until()).is_some_and(|u| u >= to) || now > to + grace
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let Some(p) = self.pending.remove(&id) else { continue };
            let ring = self.ring(&p.camera);
            if p.wanted {
                match &ring {
                    Some(r) if matches!(r.status(), RingStatus::Recording(_)) || r.recorded_until().is_some() => self.cut(&id, &p, r),
                    _ => {
                        self.shared.counters.unavailable_total.fetch_add(1, Ordering::Relaxed);
                        let why = ring.as_ref().map(|r| r.status().reason().unwrap_or("nothing recorded yet").to_string()).unwrap_or_else(|| "no ring".into());
                        tracing::info!(camera = %p.camera, clip = %id, reason = %why, "no clip for this event");
                    }
                }
            }
            if let Some(r) = ring {
                r.unpin(&id);
            }
        }
    }

    fn cut(&mut self, id: &str, p: &Pending, ring: &ClipRing) {
        let c = &self.shared.counters;
        let to = p.to.unwrap_or(p.from);
        if self.shared.storage.as_ref().is_some_and(|s| s.refuses_snapshots()) {
            c.refused_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = %p.camera, clip = id, "clip not kept: the disk is below its free-space floor");
            return;
        }
        let fragments = ring.covering(p.from, to);
        let (Some(first), Some(last)) = (fragments.first(), fragments.last()) else {
            c.failed_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(camera = %p.camera, clip = id, "no recorded video covers the clip (the camera was reconnecting or the ring was full)");
            return;
        };
        let codec = match ring.status() {
            RingStatus::Recording(codec) => codec,
            _ => "h264",
        };
        let kept = self.shared.store.partial(id, first.start).map_err(|e| format!("cannot make the clip's folder: {e}")).and_then(|partial| {
            let paths: Vec<PathBuf> = fragments.iter().map(|f| f.path.clone()).collect();
            let joined = cut::join(&paths, codec, &partial);
            let _ = std::fs::remove_file(partial.with_extension("moov"));
            joined?;
            let read = |e: std::io::Error| format!("cannot read the cut clip: {e}");
            let bytes = std::fs::metadata(&partial).map_err(read)?.len();
            let sha256 = models::manifest::sha256_file(&partial).map_err(read)?;
            let clip = Clip {
                schema: CLIP_SCHEMA.into(),
                id: id.to_string(),
                site: self.out.site.path(),
                grid: Grid::from(&self.out.site),
                camera: p.camera.clone(),
                event_id: p.event.clone(),
                alert_ids: p.alerts.clone(),
                started_at: payload::timestamp(first.start),
                ended_at: payload::timestamp(last.end),
                duration_s: payload::round2((last.end - first.start).num_milliseconds() as f64 / 1000.0),
                bytes,
                sha256,
                content_type: "video/mp4".into(),
                codec: codec.into(),
                pre_capture_s: self.shared.settings.pre_capture_secs,
                post_capture_s: self.shared.settings.post_capture_secs,
                ts: payload::now(),
            };
            self.shared.store.keep(&partial, &clip).map_err(|e| format!("cannot keep the clip: {e}"))?;
            Ok(clip)
        });
        match kept {
            Ok(clip) => {
                c.kept_total.fetch_add(1, Ordering::Relaxed);
                c.kept_bytes_total.fetch_add(clip.bytes, Ordering::Relaxed);
                {
                    let mut usage = self.shared.usage.lock().unwrap_or_else(|e| e.into_inner());
                    usage.0 += clip.bytes;
                    usage.1 += 1;
                }
                tracing::info!(camera = %clip.camera, clip = %clip.id, duration_s = clip.duration_s, bytes = clip.bytes, "clip kept");
                match serde_json::to_vec(&clip) {
                    Ok(bytes) => {
                        if let Err(r) = self.out.outbox.append(Message::new(Kind::Clip, self.out.topics.clips(&clip.camera), bytes)) {
                            tracing::error!(clip = %clip.id, error = %r.reason, "clip message not queued");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot serialise a clip"),
                }
                if let Some(feed) = &self.out.feed {
                    feed.publish(FeedItem::Clip { clip: Box::new(clip) });
                }
                if self.shared.usage.lock().unwrap_or_else(|e| e.into_inner()).0 > self.shared.settings.max_mb << 20 {
                    self.sweep();
                }
            }
            Err(why) => {
                c.failed_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %p.camera, clip = id, reason = %why, "clip not cut");
            }
        }
    }

    fn sweep(&self) {
        let store = &self.shared.store;
        let deleted = store.sweep(Utc::now());
        if deleted > 0 {
            tracing::info!(deleted, "old clips deleted (retention)");
        }
        *self.shared.usage.lock().unwrap_or_else(|e| e.into_inner()) = store.usage();
    }
}
