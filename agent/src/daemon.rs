//! `edge-agent run`: wires the stages together and runs them until SIGTERM/SIGINT.
//!
//! ```text
//! camera threads (GStreamer, one per camera) ─▶ detector threads (ONNX Runtime) ─▶ camera thread
//!     └─▶ MQTT link (detections, QoS 0)             stats task ─▶ MQTT link        MQTT task owns the event loop
//! ```
//!
//! Shutdown is a protocol: sources stop first (EOS, pipeline to Null), then the detector threads, then the
//! MQTT task publishes the retained `stopped` status, waits for its acknowledgement and disconnects. Each
//! step has a deadline and anything still running after it is logged.

use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edge_config::{Camera, Config};
use tokio_util::sync::CancellationToken;

use crate::events::{BuilderSettings, EventBuilder, EventContext, EventOut, FrameInput, FrameTime};
use crate::eventlog::EventLog;
use crate::inference::{Analysed, Detector, DetectorHandle, DetectorInfo};
use crate::mqtt::Topics;
use crate::outbox::{Bounds, Kind, Message, Outbox, OutboxHandle, OutboxWriter};
use crate::snapshots::SnapshotStore;
use crate::mqtt::{self, MqttLink, StatusFn};
use crate::payload::{self, AgentInfo, AgentState, CameraStats, CameraStatus, DetectedObject, DetectedPlate, Grid};
use crate::source::{self, Frame, Mode, SourceSettings, SupervisorSettings};
use crate::stats::{CameraRecord, CameraState};

/// Caps glibc's malloc arenas before any thread starts, unless the operator set `MALLOC_ARENA_MAX`.
///
/// glibc gives each new thread that allocates its own arena, up to eight per core. Every camera
/// reconnect starts fresh GStreamer streaming threads, so without a cap resident memory climbs by
/// about a megabyte per reconnect until the arena limit is reached (measured: 129 → 147 MB over
/// 15 reconnects, flat afterwards); with two arenas it stays within 5 % of the first reconnect.
#[allow(unsafe_code)] // the one FFI call in the agent: an allocator setting glibc offers no safe wrapper for
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only adjusts allocator parameters; it is called before other threads exist.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

/// Time each shutdown step may take before the daemon moves on and says what is still running.
const STEP_DEADLINE: Duration = Duration::from_secs(10);

/// Loads the config, checks the machine, and runs the agent until a termination signal.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("edge-agent-io")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Signals are handled from the first moment, so a stop during start-up is clean too.
        let mut shutdown = Shutdown::install()?;
        let config = edge_config::load_file(config_path)?;
        let issues = crate::checks::environment_issues(&config);
        if !issues.is_empty() {
            let lines: Vec<String> = issues.iter().map(|i| format!("  {i}")).collect();
            bail!("config file {} cannot be used on this machine:\n{}", config_path.display(), lines.join("\n"));
        }
        source::pipeline::init().map_err(anyhow::Error::msg)?;
        let mut models = config.models.clone();
        models.plates.enabled = crate::checks::plates_in_use(&config);
        let floor = config.events.track_low_score;
        let loading = tokio::task::spawn_blocking(move || Detector::start(&models, 1, Some(floor)));
        let detector = tokio::select! {
            loaded = loading => loaded.context("detector loading panicked")?.context("cannot load the detector")?,
            _ = shutdown.wait() => {
                tracing::info!("stopped during start-up");
                return Ok(());
            }
        };
        let info = detector.info().clone();
        tracing::info!(
            model = %info.model.display(),
            plates = info.plates,
            provider = info.provider.name(),
            input = format!("{}x{}", info.input_size.0, info.input_size.1),
            runtime = %models::runtime::library_path().map(|p| p.display().to_string()).unwrap_or_default(),
            "detector loaded"
        );
        serve(config, detector, shutdown).await
    })
}

async fn serve(config: Config, detector: Detector, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let started_instant = Instant::now();
    let detector_info = detector.info().clone();
    let records: Vec<Arc<CameraRecord>> = config
        .cameras
        .iter()
        .map(|c| {
            let state = if c.enabled { CameraState::Connecting } else { CameraState::Disabled };
            Arc::new(CameraRecord::new(&c.id, c.detect_fps, state))
        })
        .collect();

    let status_fn = status_builder(&config, AgentInfo::current(started), records.clone());
    let outbox_path = config.storage.state_dir.join("outbox.redb");
    let outbox = Outbox::open(&outbox_path).with_context(|| "cannot open the outbox")?;
    let pending = outbox.stats().map(|s| s.depth).unwrap_or(0);
    tracing::info!(path = %outbox_path.display(), pending, "outbox open");
    let bounds = Bounds { max_bytes: config.storage.outbox_max_bytes, max_age_ms: config.storage.outbox_max_age_hours * 3_600_000 };
    let (outbox_writer, outbox) = OutboxWriter::start(outbox, bounds)?;
    let event_log = Arc::new(EventLog::new(&config.storage.state_dir, config.storage.event_log_retention_days));
    let topics = Topics::new(config.mqtt.as_ref().map_or("checkpoint", |m| m.topic_prefix.as_str()), &config.site);
    let mqtt_cancel = CancellationToken::new();
    let mqtt = match &config.mqtt {
        Some(settings) => Some(mqtt::start(settings, &config.site, status_fn, Some(outbox.clone()), mqtt_cancel.clone(), Duration::from_secs(5))?),
        None => {
            tracing::warn!(log = %event_log.dir().display(), "no [mqtt] section in the config: running standalone, events are kept in the outbox and the local event log");
            None
        }
    };
    let link = mqtt.as_ref().map(|(link, _)| link.clone());
    let detections_interval = config
        .mqtt
        .as_ref()
        .map(|m| Duration::from_millis(m.detections_interval_ms))
        .filter(|d| !d.is_zero());

    let snapshot_store = SnapshotStore::new(&config.storage.state_dir, config.storage.snapshot_retention_days);
    let retention_task = tokio::spawn(apply_retention(snapshot_store.clone(), event_log.clone()));
    let sources_cancel = CancellationToken::new();
    let mut cameras: Vec<(String, JoinHandle<()>)> = Vec::new();
    for (camera, record) in config.cameras.iter().zip(&records) {
        if !camera.enabled {
            tracing::info!(camera = %camera.id, "camera disabled in config");
            continue;
        }
        let Some(handle) = detector.handle() else { bail!("detector stopped before cameras started") };
        let ctx = EventContext {
            site: config.site.path(),
            grid: Grid::from(&config.site),
            camera: camera.id.clone(),
            snapshot_topic_base: Some(topics.snapshots(&camera.id)),
        };
        let worker = CameraWorker {
            site: config.site.path(),
            record: record.clone(),
            detector: handle,
            link: link.clone(),
            detections_interval,
            last_sent: None,
            last_had_objects: false,
            plates: camera.plates,
            builder: EventBuilder::new(ctx, BuilderSettings::from_config(&config.events, camera.detect_fps), &camera.lines, &camera.zones),
            lost_timeout_s: config.events.lost_timeout_secs,
            started: Instant::now(),
            sink: EventSink { camera: camera.id.clone(), topics: topics.clone(), outbox: outbox.clone(), log: event_log.clone(), store: snapshot_store.clone() },
        };
        let settings = supervisor_settings(camera);
        let cancel = sources_cancel.clone();
        let record = record.clone();
        let notify = link.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cam-{}", camera.id))
            .spawn(move || {
                let mut worker = worker;
                let on_state = move || {
                    if let Some(link) = &notify {
                        link.status_changed();
                    }
                };
                source::run_camera(settings, record, cancel, &on_state, |frame| worker.process(frame));
                worker.finish();
            })
            .with_context(|| format!("cannot start thread for camera {}", camera.id))?;
        cameras.push((camera.id.clone(), thread));
    }

    let stats_task = match (&link, &config.mqtt) {
        (Some(link), Some(settings)) => Some(tokio::spawn(publish_stats(
            link.clone(),
            outbox.clone(),
            config.site.path(),
            records.clone(),
            detector_info,
            Duration::from_secs(settings.stats_interval_secs),
            started_instant,
        ))),
        _ => None,
    };

    shutdown.wait().await;
    tracing::info!("shutting down: stopping cameras");
    sources_cancel.cancel();
    let pending = join_threads(cameras, STEP_DEADLINE).await;
    if !pending.is_empty() {
        tracing::warn!(cameras = ?pending, "cameras still running after the shutdown deadline");
    }
    tracing::info!("stopping detector");
    let detector_done = tokio::task::spawn_blocking(move || detector.shutdown());
    if tokio::time::timeout(STEP_DEADLINE, detector_done).await.is_err() {
        tracing::warn!("detector threads still running after the shutdown deadline");
    }
    if let Some(task) = stats_task {
        task.abort();
    }
    retention_task.abort();
    // Everything the cameras produced is on disk before the link goes.
    let flush = outbox.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || flush.flush()).await {
        tracing::error!(error = %e, "cannot flush the outbox");
    }
    if let Some((_, task)) = mqtt {
        tracing::info!("stopping MQTT link");
        mqtt_cancel.cancel();
        if tokio::time::timeout(STEP_DEADLINE, task).await.is_err() {
            tracing::warn!("MQTT task still running after the shutdown deadline");
        }
    }
    let left = outbox.outbox().stats().map(|s| s.depth).unwrap_or(0);
    drop(outbox);
    drop(link);
    tokio::task::spawn_blocking(move || outbox_writer.stop()).await.ok();
    tracing::info!(undelivered = left, "stopped");
    Ok(())
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

/// What a camera thread does with each frame.
struct CameraWorker {
    site: String,
    record: Arc<CameraRecord>,
    detector: DetectorHandle,
    link: Option<MqttLink>,
    detections_interval: Option<Duration>,
    last_sent: Option<Instant>,
    last_had_objects: bool,
    plates: edge_config::PlateMode,
    builder: EventBuilder,
    lost_timeout_s: f64,
    /// Tracking time runs on this monotonic clock (stream timestamps restart with the pipeline).
    started: Instant,
    sink: EventSink,
}

/// Where a camera's events go: the durable outbox (then MQTT), the local event log, and for snapshots the
/// local store.
struct EventSink {
    camera: String,
    topics: Topics,
    outbox: OutboxHandle,
    log: Arc<EventLog>,
    store: SnapshotStore,
}

impl EventSink {
    fn emit(&self, out: EventOut) {
        let e = &out.event;
        tracing::info!(
            camera = %self.camera,
            event = %e.id,
            phase = ?e.phase,
            label = e.label,
            direction = ?e.direction,
            plate = e.plate.as_ref().map(|p| p.text.as_str()).unwrap_or("-"),
            "event"
        );
        // The snapshot goes first so it is delivered before the event that references it.
        if let Some(jpeg) = out.snapshot {
            let taken = e.snapshot.as_ref().and_then(|s| chrono::DateTime::parse_from_rfc3339(&s.taken_at).ok()).map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
            if let Err(err) = self.store.save(&e.id, taken, &jpeg) {
                tracing::warn!(camera = %self.camera, event = %e.id, error = %err, "cannot keep the snapshot locally");
            }
            let topic = format!("{}/{}", self.topics.snapshots(&self.camera), e.id);
            if let Err(err) = self.outbox.append(Message::new(Kind::Snapshot, topic, jpeg)) {
                tracing::error!(camera = %self.camera, event = %e.id, error = %err, "snapshot not queued");
            }
        }
        match serde_json::to_vec(e) {
            Ok(bytes) => {
                if let Err(err) = self.log.append(chrono::Utc::now(), &bytes) {
                    tracing::warn!(camera = %self.camera, error = %err, "cannot write the local event log");
                }
                if let Err(err) = self.outbox.append(Message::new(Kind::Event, self.topics.events(&self.camera), bytes)) {
                    tracing::error!(camera = %self.camera, event = %e.id, error = %err, "event not queued");
                }
            }
            Err(err) => tracing::error!(camera = %self.camera, error = %err, "cannot serialise event"),
        }
    }
}

impl CameraWorker {
    fn process(&mut self, frame: Frame) {
        let analysed = match self.detector.detect(frame, self.plates) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(camera = %self.record.id, error = %e, "frame not analysed");
                return;
            }
        };
        self.record.record_inference(analysed.inference, analysed.reported().count());
        if self.plates != edge_config::PlateMode::Off {
            self.record.record_plates(analysed.plate_time, analysed.plates.len());
        }
        self.publish_detections(&analysed);

        let stream_s = self.started.elapsed().as_secs_f64();
        // A gap longer than the lost timeout (stream restart, stall): whatever was in view is gone.
        if self.builder.last_time().is_some_and(|t| stream_s - t.stream_s > self.lost_timeout_s) {
            self.finish();
        }
        let input = FrameInput {
            time: FrameTime { stream_s, wall: chrono::Utc::now() },
            width: analysed.frame.width(),
            height: analysed.frame.height(),
            view: analysed.frame.view().ok(),
            detections: &analysed.detections,
            plates: &analysed.plates,
        };
        for out in self.builder.observe(&input) {
            self.sink.emit(out);
        }
    }

    /// Ends every open event (the camera stopped or had a gap).
    fn finish(&mut self) {
        for out in self.builder.finish() {
            self.sink.emit(out);
        }
    }

    /// Rate-limited per-frame detections: sent when objects are present, and once more when they leave.
    fn publish_detections(&mut self, analysed: &Analysed) {
        let (Some(link), Some(interval)) = (&self.link, self.detections_interval) else { return };
        let has_objects = analysed.reported().next().is_some() || !analysed.plates.is_empty();
        if !has_objects && !self.last_had_objects {
            return;
        }
        if self.last_sent.is_some_and(|t| t.elapsed() < interval) && has_objects {
            return;
        }
        let message = payload::Detections {
            schema: payload::DETECTIONS_SCHEMA,
            site: self.site.clone(),
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
        if link.publish_lossy(link.topics().detections(&self.record.id), bytes) {
            self.last_sent = Some(Instant::now());
            self.last_had_objects = has_objects;
        } else {
            self.record.counters.messages_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The status payload builder handed to the MQTT task.
fn status_builder(config: &Config, agent: AgentInfo, records: Vec<Arc<CameraRecord>>) -> StatusFn {
    let site = config.site.path();
    let grid = Grid::from(&config.site);
    let name = config.site.name.clone();
    Arc::new(move |state: AgentState| {
        let cameras = match state {
            AgentState::Offline => Vec::new(),
            _ => records.iter().map(|r| CameraStatus::of(r)).collect(),
        };
        let status = payload::Status {
            schema: payload::STATUS_SCHEMA,
            state,
            site: site.clone(),
            grid: grid.clone(),
            name: name.clone(),
            agent: agent.clone(),
            ts: payload::now(),
            cameras,
        };
        serde_json::to_vec(&status).unwrap_or_default()
    })
}

async fn publish_stats(
    link: MqttLink,
    outbox: OutboxHandle,
    site: String,
    records: Vec<Arc<CameraRecord>>,
    detector: DetectorInfo,
    interval: Duration,
    started: Instant,
) {
    let mut previous: Vec<_> = records.iter().map(|r| r.snapshot()).collect();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let detector_stats = payload::DetectorStats {
        model: detector.model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        provider: detector.provider.name(),
        input: [detector.input_size.0, detector.input_size.1],
    };
    loop {
        ticker.tick().await;
        let now: Vec<_> = records.iter().map(|r| r.snapshot()).collect();
        let cameras = records
            .iter()
            .zip(previous.iter().zip(&now))
            .map(|(r, (before, after))| CameraStats::between(r, before, after, r.take_inference_max()))
            .collect();
        let interval_s = now.first().zip(previous.first()).map_or(interval.as_secs_f64(), |(a, b)| a.at.duration_since(b.at).as_secs_f64());
        let o = outbox.outbox().stats().unwrap_or_default();
        let ls = link.state();
        let stats = payload::Stats {
            schema: payload::STATS_SCHEMA,
            site: site.clone(),
            ts: payload::now(),
            interval_s: payload::round2(interval_s),
            uptime_s: payload::round2(started.elapsed().as_secs_f64()),
            detector: detector_stats.clone(),
            outbox: payload::OutboxStats {
                depth: o.depth,
                bytes: o.bytes,
                oldest_age_s: o.oldest_age_ms.map(|ms| payload::round2(ms as f64 / 1000.0)),
                evicted_total: o.evicted_total,
            },
            mqtt: payload::LinkStats {
                connects_total: ls.connects_total.load(std::sync::atomic::Ordering::Relaxed),
                connection_errors_total: ls.connection_errors_total.load(std::sync::atomic::Ordering::Relaxed),
                sent_total: ls.sent_total.load(std::sync::atomic::Ordering::Relaxed),
                acked_total: ls.acked_total.load(std::sync::atomic::Ordering::Relaxed),
            },
            cameras,
        };
        previous = now;
        if let Ok(bytes) = serde_json::to_vec(&stats) {
            if !link.publish_lossy(link.topics().stats(), bytes) {
                tracing::debug!("stats not published: broker not connected");
            }
        }
    }
}

/// Applies the retention of local snapshots and event logs at start and every hour.
async fn apply_retention(store: SnapshotStore, log: Arc<EventLog>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let (s, l) = (store.clone(), log.clone());
        let swept = tokio::task::spawn_blocking(move || (s.sweep(chrono::Utc::now()), l.sweep(chrono::Utc::now()))).await;
        match swept {
            Ok((snapshots, logs)) => {
                match snapshots {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(days = n, dir = %store.dir().display(), "expired snapshots removed"),
                    Err(e) => tracing::warn!(error = %e, "snapshot retention failed"),
                }
                match logs {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, dir = %log.dir().display(), "expired event logs removed"),
                    Err(e) => tracing::warn!(error = %e, "event log retention failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}

/// SIGTERM and SIGINT, listened for from the moment the runtime starts.
struct Shutdown {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.term.recv() => tracing::info!("SIGTERM received"),
            _ = self.int.recv() => tracing::info!("SIGINT received"),
        }
    }
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
