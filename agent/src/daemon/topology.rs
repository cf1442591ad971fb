//! The cameras the agent runs: started from the config, reconciled with it on every reload (unchanged
//! cameras keep running, changed ones restart, new ones start, removed ones stop), and stopped with a
//! deadline.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use edge_config::{Camera, Config, PlateMode};
use tokio_util::sync::CancellationToken;

use super::camera::{CameraWorker, DetectionsOut};
use super::sink::{EventSink, LocalRecord};
use super::STEP_DEADLINE;
use crate::events::plate_search::PlateSearch;
use crate::events::{BuilderSettings, EventBuilder};
use crate::frame_loop::FrameLoop;
use crate::health::CameraHealth;
use crate::inference::DetectorHandle;
use crate::metrics::CameraList;
use crate::motion::DetectGate;
use crate::mqtt::MqttLink;
use crate::outbox::OutboxHandle;
use crate::rules::{self, CameraRules, SharedRules};
use crate::source::{self, Mode, SourceSettings, SupervisorSettings};
use crate::stats::{CameraRecord, CameraState};
use crate::topics::{Origin, Topics};
use crate::web;

/// How long a stopping camera waits for the outbox to commit its last events before its local record
/// gives them up (they stay in the outbox).
const CAMERA_COMMIT_WAIT: Duration = Duration::from_secs(2);

/// What every camera thread shares.
pub struct CameraDeps {
    pub site: edge_config::Site,
    pub topics: Topics,
    pub detector: DetectorHandle,
    pub plates_loaded: bool,
    pub link: Option<MqttLink>,
    /// Minimum time between two `detections` messages; `None` when the topic is off or there is no broker.
    pub detections_interval: Option<Duration>,
    pub outbox: OutboxHandle,
    pub local: LocalRecord,
    pub rules: SharedRules,
    /// Camera display names for the duty desk.
    pub camera_names: web::CameraNames,
    /// Parent of every camera's own token: cancelled at shutdown.
    pub cancel: CancellationToken,
    /// Length of a flow-count period.
    pub counts_period_secs: u32,
    /// `models.plates.settle_reads` and `min_vehicle_width_px`.
    pub plate_settle_reads: u32,
    pub plate_min_vehicle_width: u32,
    /// Camera health: thresholds, and which cameras are left out.
    pub health: edge_config::Health,
}

/// A camera thread and the settings it was started with.
struct RunningCamera {
    camera: Camera,
    events: edge_config::Events,
    record: Arc<CameraRecord>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// The cameras the agent runs.
pub struct Fleet {
    pub deps: CameraDeps,
    running: Vec<RunningCamera>,
    list: CameraList,
}

impl Fleet {
    pub fn new(deps: CameraDeps, list: CameraList) -> Self {
        Self { deps, running: Vec::new(), list }
    }

    /// Brings the running cameras in line with `config`.
    pub async fn apply(&mut self, config: &Config) -> anyhow::Result<()> {
        let mut old: Vec<RunningCamera> = std::mem::take(&mut self.running);
        let mut next = Vec::with_capacity(config.cameras.len());
        let mut to_stop = Vec::new();
        let mut to_start = Vec::new();
        for camera in &config.cameras {
            match old.iter().position(|r| r.camera.id == camera.id).map(|i| old.swap_remove(i)) {
                Some(r) if r.camera == *camera && r.events == config.events => next.push(Some(r)),
                existing => {
                    if let Some(r) = existing {
                        tracing::info!(camera = %camera.id, "camera settings changed: restarting it");
                        to_stop.push(r);
                    }
                    to_start.push(next.len());
                    next.push(None);
                }
            }
        }
        let removed: Vec<String> = old.iter().map(|r| r.camera.id.clone()).collect();
        for r in old {
            tracing::info!(camera = %r.camera.id, "camera removed from the config: stopping it");
            to_stop.push(r);
        }
        stop_cameras(to_stop).await;
        if let Some(clips) = &self.deps.local.clips {
            for id in &removed {
                clips.remove_ring(id);
            }
        }
        if crate::checks::plates_in_use(config) && !self.deps.plates_loaded {
            tracing::warn!("a camera now reads plates but the plate models were not loaded at start: restart the agent to read plates");
        }
        for i in to_start {
            next[i] = Some(self.start(&config.cameras[i], &config.events)?);
        }
        self.running = next.into_iter().flatten().collect();
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = self.running.iter().map(|r| r.record.clone()).collect();
        Ok(())
    }

    /// Starts one camera's thread (or only records it as disabled).
    fn start(&self, camera: &Camera, events: &edge_config::Events) -> anyhow::Result<RunningCamera> {
        let state = if camera.enabled { CameraState::Connecting } else { CameraState::Disabled };
        let record = Arc::new(CameraRecord::new(&camera.id, camera.detect_fps, state).with_counts_period(self.deps.counts_period_secs));
        let cancel = self.deps.cancel.child_token();
        let mut running = RunningCamera { camera: camera.clone(), events: events.clone(), record: record.clone(), cancel: cancel.clone(), thread: None };
        if !camera.enabled {
            tracing::info!(camera = %camera.id, "camera disabled in config");
            return Ok(running);
        }
        let mut worker = self.worker(camera, events, record.clone());
        let mut settings = supervisor_settings(camera);
        settings.source.clips = self.deps.local.clips.as_ref().and_then(|c| c.ring(&camera.id));
        let notify = self.deps.link.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cam-{}", camera.id))
            .spawn(move || {
                let on_state = move || {
                    if let Some(link) = &notify {
                        link.status_changed();
                    }
                };
                source::run_camera(settings, record, cancel, &on_state, &mut worker);
                worker.stop(CAMERA_COMMIT_WAIT);
            })
            .with_context(|| format!("cannot start thread for camera {}", camera.id))?;
        running.thread = Some(thread);
        Ok(running)
    }

    /// The per-frame worker of one camera.
    fn worker(&self, camera: &Camera, events: &edge_config::Events, record: Arc<CameraRecord>) -> CameraWorker {
        let deps = &self.deps;
        let origin = Origin { site: deps.site.clone(), camera: camera.id.clone() };
        let mut settings = BuilderSettings::from_config(events, camera.detect_fps);
        if let Some(gat) = &deps.local.gat1400 {
            gat.ask_pictures(&mut settings.snapshot);
        }
        let builder = EventBuilder::new(origin.clone(), settings, &camera.lines, &camera.zones);
        let plates = if deps.plates_loaded { camera.plates } else { PlateMode::Off };
        let search = PlateSearch::new(plates, deps.plate_settle_reads, deps.plate_min_vehicle_width as f32);
        let detections = deps.link.clone().zip(deps.detections_interval).map(|(link, interval)| DetectionsOut::new(link, interval, deps.site.path()));
        let mut frames = FrameLoop::new(DetectGate::new(&camera.motion), search, builder).gaps_end_events(events.lost_timeout_secs);
        if deps.health.enabled && !deps.health.skip_cameras.contains(&camera.id) {
            frames = frames.with_health(CameraHealth::new(&deps.health, 0.0));
        }
        CameraWorker {
            record: record.clone(),
            detector: deps.detector.clone(),
            frames,
            started: Instant::now(),
            rules: deps.rules.clone(),
            camera_rules: CameraRules::new(Arc::new(origin)),
            sink: EventSink::new(&camera.id, deps.topics.clone(), deps.outbox.clone(), deps.local.clone(), record),
            detections,
            health_severity: deps.health.severity,
            overlay: crate::live::Overlay { lines: camera.lines.clone(), zones: camera.zones.clone(), masks: camera.motion.masks.clone() },
        }
    }

    /// Stops one camera and starts it again with the same settings (the `restart_camera` command).
    pub async fn restart(&mut self, id: &str) -> Result<(), String> {
        let i = self.running.iter().position(|r| r.camera.id == id).ok_or_else(|| format!("no camera {id:?}"))?;
        let old = self.running.remove(i);
        let (camera, events) = (old.camera.clone(), old.events.clone());
        stop_cameras(vec![old]).await;
        let result = match self.start(&camera, &events) {
            Ok(r) => {
                tracing::info!(camera = %id, "camera restarted on request");
                self.running.insert(i, r);
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = self.running.iter().map(|r| r.record.clone()).collect();
        result
    }

    /// The record of a running camera.
    pub fn record(&self, id: &str) -> Option<Arc<CameraRecord>> {
        self.running.iter().find(|r| r.camera.id == id && r.camera.enabled).map(|r| r.record.clone())
    }

    /// Every camera's record.
    pub fn records(&self) -> Vec<Arc<CameraRecord>> {
        self.running.iter().map(|r| r.record.clone()).collect()
    }

    /// Stops every camera, waiting up to `deadline`; returns those still running then.
    pub async fn stop_all(&mut self, deadline: Duration) -> Vec<String> {
        stop_cameras_within(std::mem::take(&mut self.running), deadline).await
    }

    /// Cameras running.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// One line for `systemctl status`.
    pub fn summary(&self) -> String {
        let enabled = self.running.iter().filter(|r| r.camera.enabled).count();
        format!("{enabled} camera(s) running, {} configured", self.running.len())
    }
}

/// Re-reads the config after SIGHUP. An invalid file (or one this machine cannot run) is rejected with every
/// problem logged (`None`), and the running cameras stay as they are; sections read only at start are named
/// when they changed.
pub fn read_new(path: &Path, initial: &Config) -> Option<Config> {
    tracing::info!(config = %path.display(), "SIGHUP: reloading configuration");
    let new = match edge_config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("{line}");
            }
            tracing::error!(config = %path.display(), "new configuration rejected; keeping the running one");
            return None;
        }
    };
    let issues = crate::checks::environment_issues(&new);
    if !issues.is_empty() {
        for issue in &issues {
            tracing::error!("{}: {issue}", path.display());
        }
        tracing::error!(config = %path.display(), "new configuration rejected; keeping the running one");
        return None;
    }
    for section in initial.restart_required(&new) {
        tracing::warn!(section, "[{section}] changed: it is read only at start, restart the agent to apply it (systemctl restart edge-agent)");
    }
    Some(new)
}

/// Applies a config in force (after a reload or a policy change): camera names, rules in place, cameras
/// reconciled.
pub async fn apply(fleet: &mut Fleet, config: &Config, provenance: &[Option<crate::rules::Provenance>]) -> Result<(), ()> {
    *fleet.deps.camera_names.write().unwrap_or_else(|p| p.into_inner()) = web::camera_names(config);
    if rules::replace(&fleet.deps.rules, &config.rules, provenance) {
        tracing::info!(rules = config.rules.len(), "alert rules updated");
    }
    fleet.apply(config).await.map_err(|e| tracing::error!(error = %e, "applying the configuration failed part-way"))
}

/// Cancels the cameras and waits (up to the step deadline) for their threads.
async fn stop_cameras(cameras: Vec<RunningCamera>) {
    stop_cameras_within(cameras, STEP_DEADLINE).await;
}

/// Cancels the cameras and waits up to `deadline` for their threads; returns those still running then.
async fn stop_cameras_within(cameras: Vec<RunningCamera>, deadline: Duration) -> Vec<String> {
    let mut threads = Vec::new();
    for mut r in cameras {
        r.cancel.cancel();
        if let Some(t) = r.thread.take() {
            threads.push((r.camera.id.clone(), t));
        }
    }
    let pending = join_threads(threads, deadline).await;
    if !pending.is_empty() {
        tracing::warn!(cameras = ?pending, deadline_s = deadline.as_secs(), "cameras still running after the stop deadline: left behind");
    }
    pending
}

/// Joins threads, giving up after `deadline`; returns the names of those still running.
async fn join_threads(threads: Vec<(String, JoinHandle<()>)>, deadline: Duration) -> Vec<String> {
    let until = Instant::now() + deadline;
    let mut pending = Vec::new();
    for (name, thread) in threads {
        while !thread.is_finished() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if thread.is_finished() {
            if thread.join().is_err() {
                tracing::error!(camera = %name, "camera thread panicked");
            }
        } else {
            pending.push(name);
        }
    }
    pending
}

fn supervisor_settings(camera: &Camera) -> SupervisorSettings {
    let mut settings = SupervisorSettings::new(SourceSettings {
        transport: camera.transport,
        latency_ms: camera.latency_ms,
        decoder: camera.decoder,
        ..SourceSettings::new(camera.id.clone(), camera.url.clone(), camera.detect_fps, camera.max_frame_width, Mode::Live)
    });
    settings.loop_file = camera.loop_file;
    settings.stall_timeout = camera.stall_timeout_secs.map(Duration::from_secs_f64);
    if let Some(t) = settings.stall_timeout {
        // An operator who sets the stall timeout means it for the first frame too.
        settings.connect_timeout = t;
    }
    settings.backoff_max = Duration::from_secs_f64(camera.reconnect_max_secs);
    settings.backoff_initial = settings.backoff_initial.min(settings.backoff_max);
    settings
}
