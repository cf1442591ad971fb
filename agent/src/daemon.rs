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
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edge_config::{Camera, Config};
use tokio_util::sync::CancellationToken;

use crate::events::{BuilderSettings, EventBuilder, EventContext, EventOut, FrameTime};
use crate::eventlog::EventLog;
use crate::inference::{Analysed, Detector, DetectorHandle, DetectorInfo};
use crate::mqtt::Topics;
use crate::outbox::{Bounds, Kind, Message, Outbox, OutboxHandle, OutboxWriter};
use crate::snapshots::SnapshotStore;
use crate::mqtt::{self, MqttLink, StatusFn};
use crate::payload::{self, AgentInfo, AgentState, CameraStats, CameraStatus, DetectedObject, DetectedPlate, Grid};
use crate::source::{self, Frame, Mode, SourceSettings, SupervisorSettings};
use crate::metrics::{self, CameraList};
use crate::rules::{self, CameraRules, SharedRules};
use crate::web::{self, Feed};
use crate::stats::{CameraRecord, CameraState};
use crate::systemd::Notifier;

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
        let mut signals = Signals::install()?;
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
            _ = signals.stop() => {
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
        serve(config_path, config, detector, signals).await
    })
}

async fn serve(config_path: &Path, config: Config, detector: Detector, mut signals: Signals) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let started_instant = Instant::now();
    let notifier = Arc::new(Notifier::from_env());
    let detector_info = detector.info().clone();
    let cameras: CameraList = Arc::new(RwLock::new(Vec::new()));

    let status_fn = status_builder(&config, AgentInfo::current(started), cameras.clone());
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
    let snapshot_store = SnapshotStore::new(&config.storage.state_dir, config.storage.snapshot_retention_days);
    let alert_log = Arc::new(EventLog::named(&config.storage.state_dir, "alerts", config.storage.event_log_retention_days));
    let audit_log = Arc::new(EventLog::named(&config.storage.state_dir, "audit", web::AUDIT_RETENTION_DAYS));
    let retention_task = tokio::spawn(apply_retention(snapshot_store.clone(), vec![event_log.clone(), alert_log.clone(), audit_log.clone()]));
    let rules = rules::shared(&config.rules);
    let feed = config.web.enabled.then(Feed::new);
    if let Some(feed) = &feed {
        let (events, alerts, audit) = (event_log.clone(), alert_log.clone(), audit_log.clone());
        let f = feed.clone();
        tokio::task::spawn_blocking(move || restore_feed(&f, &events, &alerts, &audit)).await.ok();
    }
    let sources_cancel = CancellationToken::new();
    let Some(detector_handle) = detector.handle() else { bail!("detector stopped before cameras started") };
    let mut fleet = Fleet {
        deps: CameraDeps {
            site: config.site.clone(),
            topics: topics.clone(),
            detector: detector_handle,
            plates_loaded: detector_info.plates,
            link: link.clone(),
            detections_interval: config.mqtt.as_ref().map(|m| Duration::from_millis(m.detections_interval_ms)).filter(|d| !d.is_zero()),
            outbox: outbox.clone(),
            log: event_log.clone(),
            alert_log: alert_log.clone(),
            store: snapshot_store.clone(),
            rules: rules.clone(),
            feed: feed.clone(),
            camera_names: Arc::new(RwLock::new(web::camera_names(&config))),
            cancel: sources_cancel.clone(),
        },
        running: Vec::new(),
        list: cameras.clone(),
    };
    fleet.apply(&config).await?;
    if config.cameras.is_empty() {
        tracing::warn!("no cameras configured: running idle; add [[cameras]] to the config and reload (SIGHUP)");
    }

    let stats_task = match (&link, &config.mqtt) {
        (Some(link), Some(settings)) => Some(tokio::spawn(publish_stats(
            link.clone(),
            outbox.clone(),
            config.site.path(),
            cameras.clone(),
            detector_info,
            Duration::from_secs(settings.stats_interval_secs),
            started_instant,
        ))),
        _ => None,
    };
    let rates_task = tokio::spawn(sample_rates(cameras.clone()));

    let sources = metrics::Sources {
        cameras: cameras.clone(),
        outbox: outbox.clone(),
        link: link.as_ref().map(|l| l.state().clone()),
        health: Arc::new(std::sync::Mutex::new(metrics::Health::default())),
        started: started_instant,
        reloads: Arc::new(metrics::ReloadCounters::default()),
    };
    let http_cancel = CancellationToken::new();
    let metrics_task = if config.metrics.enabled {
        let served = metrics::serve(&config.metrics.listen, sources.clone(), http_cancel.clone()).await;
        endpoint("metrics endpoint", |addr| format!("http://{addr}/metrics and /healthz"), served)
    } else {
        None
    };
    let web_task = match &feed {
        Some(feed) => start_web(&config, fleet.deps.camera_names.clone(), feed.clone(), cameras.clone(), snapshot_store.clone(), audit_log.clone(), http_cancel.clone()).await,
        None => None,
    };
    let check = metrics::HealthCheck { sources: sources.clone(), mqtt_task: mqtt.as_ref().map(|(_, task)| task.abort_handle()) };
    let watchdog_task = tokio::spawn(watchdog(check, notifier.clone()));
    notifier.ready(&fleet.summary());
    tracing::info!(cameras = fleet.running.len(), watchdog = ?notifier.watchdog(), systemd = notifier.is_active(), "agent ready");

    loop {
        match signals.next().await {
            Signal::Stop => break,
            Signal::Reload => {
                notifier.reloading();
                match reload(config_path, &config, &mut fleet).await {
                    Ok(()) => sources.reloads.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    Err(()) => sources.reloads.rejected.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
                if let Some(link) = &link {
                    link.status_changed();
                }
                notifier.ready(&fleet.summary());
            }
        }
    }
    notifier.stopping();
    tracing::info!("shutting down: stopping cameras");
    watchdog_task.abort();
    rates_task.abort();
    http_cancel.cancel();
    sources_cancel.cancel();
    fleet.stop_all().await;
    drop(fleet);
    tracing::info!("stopping detector");
    let detector_done = tokio::task::spawn_blocking(move || detector.shutdown());
    if tokio::time::timeout(STEP_DEADLINE, detector_done).await.is_err() {
        tracing::warn!("detector threads still running after the shutdown deadline");
    }
    if let Some(task) = stats_task {
        task.abort();
    }
    for task in [metrics_task, web_task].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
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
    drop(sources);
    drop(outbox);
    drop(link);
    tokio::task::spawn_blocking(move || outbox_writer.stop()).await.ok();
    tracing::info!(undelivered = left, "stopped");
    Ok(())
}

/// Starts the duty desk page; a failure is logged and the agent runs on without it.
async fn start_web(
    config: &Config,
    camera_names: web::CameraNames,
    feed: Feed,
    cameras: CameraList,
    snapshots: SnapshotStore,
    audit: Arc<EventLog>,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let w = &config.web;
    let state = web::WebState {
        feed,
        cameras,
        camera_names,
        snapshots,
        audit,
        users_file: users_file(config),
        sessions: Arc::default(),
        session_ttl: Duration::from_secs(u64::from(w.session_hours) * 3600),
        language: w.language.clone(),
        site_name: config.site.name.clone().unwrap_or_else(|| config.site.path()),
        retention_days: config.storage.snapshot_retention_days,
        secure_cookie: w.tls_cert_file.is_some(),
        setup_code: Arc::default(),
    };
    let tls = w.tls_cert_file.clone().zip(w.tls_key_file.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    endpoint("duty desk", |addr| format!("{scheme}://{addr}/"), web::serve(&w.listen, state, tls, cancel).await)
}

/// Logs where an optional HTTP endpoint listens, or why it did not start: the agent runs on without it.
fn endpoint(
    name: &str,
    url: impl Fn(std::net::SocketAddr) -> String,
    served: anyhow::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)>,
) -> Option<tokio::task::JoinHandle<()>> {
    match served {
        Ok((addr, task)) => {
            tracing::info!(address = %addr, "{name} listening on {}", url(addr));
            Some(task)
        }
        Err(e) => {
            tracing::error!(error = %e, "{name} not started; the agent runs without it");
            None
        }
    }
}

/// The duty desk's accounts file: `web.users_file`, else `users.json` in the state directory.
pub fn users_file(config: &Config) -> std::path::PathBuf {
    config.web.users_file.clone().unwrap_or_else(|| config.storage.state_dir.join("users.json"))
}

/// Refills the duty desk's recent list from the logs on disk after a restart: the last day's events, the
/// alerts still within retention and their acknowledgements.
fn restore_feed(feed: &Feed, events: &EventLog, alerts: &EventLog, audit: &EventLog) {
    let now = chrono::Utc::now();
    let acks: std::collections::HashMap<String, serde_json::Value> = audit
        .recent_lines(now, 31)
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["alert"].as_str()?.to_string(), serde_json::json!({"by": v["by"], "at": v["at"]}))))
        .collect();
    let mut items: Vec<(String, serde_json::Value)> = Vec::new();
    for line in events.recent_lines(now, 2).iter().rev().take(200) {
        if let Ok(e) = serde_json::from_str::<serde_json::Value>(line) {
            items.push((e["ts"].as_str().unwrap_or_default().to_string(), serde_json::json!({"type": "event", "event": e})));
        }
    }
    for line in alerts.recent_lines(now, 2).iter().rev().take(100) {
        if let Ok(a) = serde_json::from_str::<serde_json::Value>(line) {
            let ack = a["id"].as_str().and_then(|id| acks.get(id)).cloned().unwrap_or(serde_json::Value::Null);
            items.push((a["ts"].as_str().unwrap_or_default().to_string(), serde_json::json!({"type": "alert", "alert": a, "ack": ack})));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, item) in items {
        feed.publish(item);
    }
}

/// Re-reads the config after SIGHUP. An invalid file (or one this machine cannot run) is rejected with every
/// problem logged, and the running cameras stay as they are. Otherwise cameras are diffed: unchanged ones
/// keep running untouched, changed ones restart, new ones start and removed ones stop. Sections read only at
/// start are compared and a restart is asked for when they differ.
async fn reload(path: &Path, initial: &Config, fleet: &mut Fleet) -> Result<(), ()> {
    tracing::info!(config = %path.display(), "SIGHUP: reloading configuration");
    let new = match edge_config::load_file(path) {
        Ok(c) => c,
        Err(e) => {
            for line in e.to_string().lines() {
                tracing::error!("{line}");
            }
            tracing::error!(config = %path.display(), "new configuration rejected; keeping the running one");
            return Err(());
        }
    };
    let issues = crate::checks::environment_issues(&new);
    if !issues.is_empty() {
        for issue in &issues {
            tracing::error!("{}: {issue}", path.display());
        }
        tracing::error!(config = %path.display(), "new configuration rejected; keeping the running one");
        return Err(());
    }
    let restart_only = [
        ("site", new.site != initial.site),
        ("mqtt", new.mqtt != initial.mqtt),
        ("models", new.models != initial.models),
        ("storage", new.storage != initial.storage),
        ("metrics", new.metrics != initial.metrics),
        ("web", new.web != initial.web),
    ];
    for (section, _) in restart_only.iter().filter(|(_, changed)| *changed) {
        tracing::warn!(section, "[{section}] changed: it is read only at start, restart the agent to apply it (systemctl restart edge-agent)");
    }
    *fleet.deps.camera_names.write().unwrap_or_else(|p| p.into_inner()) = web::camera_names(&new);
    if new.rules != *rules::current(&fleet.deps.rules) {
        *fleet.deps.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new.rules.clone());
        tracing::info!(rules = new.rules.len(), "alert rules updated");
    }
    match fleet.apply(&new).await {
        Ok(()) => {
            tracing::info!("configuration reloaded");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed part-way");
            Err(())
        }
    }
}

/// What every camera thread shares.
struct CameraDeps {
    site: edge_config::Site,
    topics: Topics,
    detector: DetectorHandle,
    plates_loaded: bool,
    link: Option<MqttLink>,
    /// Minimum time between two `detections` messages; `None` when the topic is off or there is no broker.
    detections_interval: Option<Duration>,
    outbox: OutboxHandle,
    log: Arc<EventLog>,
    alert_log: Arc<EventLog>,
    store: SnapshotStore,
    rules: SharedRules,
    /// The duty desk's live feed, when the page is served.
    feed: Option<Feed>,
    /// Camera display names for the duty desk.
    camera_names: web::CameraNames,
    /// Parent of every camera's own token: cancelled at shutdown.
    cancel: CancellationToken,
}

/// A camera thread and the settings it was started with.
struct RunningCamera {
    camera: Camera,
    events: edge_config::Events,
    record: Arc<CameraRecord>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

/// The cameras the agent runs, reconciled with the config at start and on every reload.
struct Fleet {
    deps: CameraDeps,
    running: Vec<RunningCamera>,
    list: CameraList,
}

impl Fleet {
    /// Brings the running cameras in line with `config`.
    async fn apply(&mut self, config: &Config) -> anyhow::Result<()> {
        let mut old: Vec<RunningCamera> = std::mem::take(&mut self.running);
        let mut next = Vec::with_capacity(config.cameras.len());
        let mut to_stop = Vec::new();
        let mut to_start = Vec::new();
        for camera in &config.cameras {
            let existing = old.iter().position(|r| r.camera.id == camera.id).map(|i| old.swap_remove(i));
            match existing {
                Some(r) if r.camera == *camera && r.events == config.events => next.push(Some(r)),
                Some(r) => {
                    tracing::info!(camera = %camera.id, "camera settings changed: restarting it");
                    to_stop.push(r);
                    to_start.push(next.len());
                    next.push(None);
                }
                None => {
                    to_start.push(next.len());
                    next.push(None);
                }
            }
        }
        for r in old {
            tracing::info!(camera = %r.camera.id, "camera removed from the config: stopping it");
            to_stop.push(r);
        }
        stop_cameras(to_stop).await;
        let plates_wanted = crate::checks::plates_in_use(config);
        if plates_wanted && !self.deps.plates_loaded {
            tracing::warn!("a camera now reads plates but the plate models were not loaded at start: restart the agent to read plates");
        }
        for i in to_start {
            let camera = &config.cameras[i];
            next[i] = Some(self.start(camera, &config.events)?);
        }
        self.running = next.into_iter().flatten().collect();
        *self.list.write().unwrap_or_else(|p| p.into_inner()) = self.running.iter().map(|r| r.record.clone()).collect();
        Ok(())
    }

    /// Starts one camera's thread (or only records it as disabled).
    fn start(&self, camera: &Camera, events: &edge_config::Events) -> anyhow::Result<RunningCamera> {
        let state = if camera.enabled { CameraState::Connecting } else { CameraState::Disabled };
        let record = Arc::new(CameraRecord::new(&camera.id, camera.detect_fps, state));
        let cancel = self.deps.cancel.child_token();
        let mut running = RunningCamera { camera: camera.clone(), events: events.clone(), record: record.clone(), cancel: cancel.clone(), thread: None };
        if !camera.enabled {
            tracing::info!(camera = %camera.id, "camera disabled in config");
            return Ok(running);
        }
        let deps = &self.deps;
        let ctx = EventContext {
            site: deps.site.path(),
            grid: Grid::from(&deps.site),
            camera: camera.id.clone(),
            snapshot_topic_base: Some(deps.topics.snapshots(&camera.id)),
        };
        let worker = CameraWorker {
            site: deps.site.path(),
            record: record.clone(),
            detector: deps.detector.clone(),
            link: deps.link.clone(),
            detections_interval: deps.detections_interval,
            last_sent: None,
            last_had_objects: false,
            plates: if deps.plates_loaded { camera.plates } else { edge_config::PlateMode::Off },
            builder: EventBuilder::new(ctx, BuilderSettings::from_config(events, camera.detect_fps), &camera.lines, &camera.zones),
            lost_timeout_s: events.lost_timeout_secs,
            started: Instant::now(),
            rules: deps.rules.clone(),
            camera_rules: CameraRules::new(&camera.id),
            sink: EventSink {
                camera: camera.id.clone(),
                site: deps.site.path(),
                grid: Grid::from(&deps.site),
                topics: deps.topics.clone(),
                outbox: deps.outbox.clone(),
                log: deps.log.clone(),
                alert_log: deps.alert_log.clone(),
                store: deps.store.clone(),
                feed: deps.feed.clone(),
                pending: Vec::new(),
            },
        };
        let settings = supervisor_settings(camera);
        let notify = deps.link.clone();
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
        running.thread = Some(thread);
        Ok(running)
    }

    async fn stop_all(&mut self) {
        stop_cameras(std::mem::take(&mut self.running)).await;
    }

    /// One line for `systemctl status`.
    fn summary(&self) -> String {
        let enabled = self.running.iter().filter(|r| r.camera.enabled).count();
        format!("{enabled} camera(s) running, {} configured", self.running.len())
    }
}

/// Cancels the cameras and waits (up to the step deadline) for their threads.
async fn stop_cameras(cameras: Vec<RunningCamera>) {
    let mut threads = Vec::new();
    for mut r in cameras {
        r.cancel.cancel();
        if let Some(t) = r.thread.take() {
            threads.push((r.camera.id.clone(), t));
        }
    }
    let pending = join_threads(threads, STEP_DEADLINE).await;
    if !pending.is_empty() {
        tracing::warn!(cameras = ?pending, "cameras still running after the stop deadline");
    }
}

/// Feeds the systemd watchdog while the agent is healthy, and keeps `/healthz` and the status line current.
async fn watchdog(check: metrics::HealthCheck, notifier: Arc<Notifier>) {
    let period = notifier.watchdog().map_or(Duration::from_secs(10), |w| (w / 3).min(Duration::from_secs(10)));
    let mut ticker = tokio::time::interval(period);
    let mut last_status = "";
    loop {
        ticker.tick().await;
        let health = check.evaluate().await;
        if health.is_unhealthy() {
            if last_status != health.status {
                tracing::error!(problems = ?health.problems, "agent unhealthy: withholding watchdog keep-alives so systemd restarts it");
            }
        } else {
            notifier.keep_alive();
            if last_status == "unhealthy" {
                tracing::info!("agent healthy again");
            }
        }
        if last_status != health.status || health.status != "ok" {
            let summary = if health.problems.is_empty() { health.status.to_string() } else { format!("{}: {}", health.status, health.problems.join("; ")) };
            notifier.status(&summary);
        }
        last_status = health.status;
    }
}

/// Refreshes each camera's frame-rate gauges every few seconds.
async fn sample_rates(cameras: CameraList) {
    let mut previous: std::collections::HashMap<String, crate::stats::CounterSnapshot> = std::collections::HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        let list: Vec<Arc<CameraRecord>> = cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut now = std::collections::HashMap::new();
        for r in &list {
            let snap = r.snapshot();
            if let Some(before) = previous.get(&r.id) {
                r.set_rates(before, &snap);
            }
            now.insert(r.id.clone(), snap);
        }
        previous = now;
    }
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
    rules: SharedRules,
    camera_rules: CameraRules,
    sink: EventSink,
}

/// Where a camera's events go: the durable outbox (then MQTT), the local event log, and for snapshots the
/// local store.
struct EventSink {
    camera: String,
    site: String,
    grid: Grid,
    topics: Topics,
    outbox: OutboxHandle,
    log: Arc<EventLog>,
    alert_log: Arc<EventLog>,
    store: SnapshotStore,
    feed: Option<Feed>,
    /// Queued to the outbox, recorded locally once committed ([`EventSink::commit`]).
    pending: Vec<Local>,
}

impl EventSink {
    fn emit(&mut self, out: EventOut) {
        let e = &out.event;
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
                if let Err(err) = self.outbox.append(Message::new(Kind::Event, self.topics.events(&self.camera), bytes.clone())) {
                    tracing::error!(camera = %self.camera, event = %e.id, error = %err, "event not queued");
                }
                let item = self.feed.as_ref().and_then(|_| serde_json::to_value(e).ok()).map(|v| serde_json::json!({"type": "event", "event": v}));
                let plate = e.plate.as_ref().map_or_else(|| "-".to_string(), |p| p.text.clone());
                let announce = Some(Announce { event: e.id.clone(), phase: e.phase, label: e.label, direction: e.direction, plate });
                self.pending.push(Local { log: self.log.clone(), line: bytes, item, announce });
            }
            Err(err) => tracing::error!(camera = %self.camera, error = %err, "cannot serialise event"),
        }
    }

    /// An alert goes to the outbox (then MQTT), the local alert log and the duty desk.
    fn alert(&mut self, finding: rules::Finding) {
        let alert = payload::Alert::from_finding(finding, &self.site, &self.grid, &self.camera, Some(&self.topics.snapshots(&self.camera)));
        tracing::warn!(
            camera = %self.camera,
            alert = %alert.id,
            rule = %alert.rule,
            kind = alert.kind,
            severity = alert.severity,
            event = alert.event_id.as_deref().unwrap_or("-"),
            plate = alert.plate.as_ref().map(|p| p.text.as_str()).unwrap_or("-"),
            "alert"
        );
        let Ok(bytes) = serde_json::to_vec(&alert) else { return };
        if let Err(err) = self.outbox.append(Message::new(Kind::Alert, self.topics.alerts(&self.camera), bytes.clone())) {
            tracing::error!(camera = %self.camera, alert = %alert.id, error = %err, "alert not queued");
        }
        let item = self.feed.as_ref().and_then(|_| serde_json::to_value(&alert).ok()).map(|v| serde_json::json!({"type": "alert", "alert": v, "ack": null}));
        self.pending.push(Local { log: self.alert_log.clone(), line: bytes, item, announce: None });
    }

    /// Waits until everything queued is committed to the outbox, then records it locally (event and alert
    /// logs, duty desk, the `event` journal line): the local record never shows something a crash could
    /// still take from the outbox.
    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(err) = self.outbox.flush() {
            tracing::error!(camera = %self.camera, error = %err, "outbox flush failed");
        }
        let now = chrono::Utc::now();
        for local in self.pending.drain(..) {
            if let Some(a) = &local.announce {
                tracing::info!(camera = %self.camera, event = %a.event, phase = ?a.phase, label = a.label, direction = ?a.direction, plate = a.plate.as_str(), "event");
            }
            if let Err(err) = local.log.append(now, &local.line) {
                tracing::warn!(camera = %self.camera, dir = %local.log.dir().display(), error = %err, "cannot write the local log");
            }
            if let (Some(feed), Some(item)) = (&self.feed, local.item) {
                feed.publish(item);
            }
        }
    }
}

/// A message committed to the outbox but not yet recorded locally.
struct Local {
    log: Arc<EventLog>,
    line: Vec<u8>,
    item: Option<serde_json::Value>,
    /// For events: the journal line, written once the event is committed.
    announce: Option<Announce>,
}

struct Announce {
    event: String,
    phase: payload::Phase,
    label: &'static str,
    direction: Option<crate::events::geometry::Direction>,
    plate: String,
}


impl CameraWorker {
    /// Emits the builder's output and runs the rules on it.
    /// Emits the builder's output, runs the rules on it (with `zones`, also crowding on who is in the zones
    /// now), and commits the lot once.
    fn emit_all(&mut self, outs: Vec<EventOut>, zones: bool) {
        let rules = rules::current(&self.rules);
        if !rules.is_empty() {
            let now = rules::Now::current();
            for out in outs {
                let found = self.camera_rules.on_event(&rules, &out.event, now);
                self.sink.emit(out);
                for f in found {
                    self.sink.alert(f);
                }
            }
            if zones && rules.iter().any(|r| matches!(r.kind, edge_config::RuleKind::Crowding { .. })) {
                let people = self.builder.people_in_zones();
                for f in self.camera_rules.on_zones(&rules, &people, now) {
                    self.sink.alert(f);
                }
            }
        } else {
            for out in outs {
                self.sink.emit(out);
            }
        }
        self.sink.commit();
    }

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
        let outs = self.builder.observe(&analysed.input(FrameTime { stream_s, wall: chrono::Utc::now() }));
        self.emit_all(outs, true);
    }

    /// Ends every open event (the camera stopped or had a gap).
    fn finish(&mut self) {
        let outs = self.builder.finish();
        self.emit_all(outs, false);
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
fn status_builder(config: &Config, agent: AgentInfo, records: CameraList) -> StatusFn {
    let site = config.site.path();
    let grid = Grid::from(&config.site);
    let name = config.site.name.clone();
    Arc::new(move |state: AgentState| {
        let cameras = match state {
            AgentState::Offline => Vec::new(),
            _ => records.read().unwrap_or_else(|p| p.into_inner()).iter().map(|r| CameraStatus::of(r)).collect(),
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
    records: CameraList,
    detector: DetectorInfo,
    interval: Duration,
    started: Instant,
) {
    let mut previous: std::collections::HashMap<String, crate::stats::CounterSnapshot> = std::collections::HashMap::new();
    let mut last_tick = Instant::now();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let detector_stats = payload::DetectorStats {
        model: detector.model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        provider: detector.provider.name(),
        input: [detector.input_size.0, detector.input_size.1],
    };
    loop {
        ticker.tick().await;
        let list: Vec<Arc<CameraRecord>> = records.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now: std::collections::HashMap<String, crate::stats::CounterSnapshot> = list.iter().map(|r| (r.id.clone(), r.snapshot())).collect();
        let cameras = list
            .iter()
            .filter_map(|r| {
                let after = now.get(&r.id)?;
                // A camera started since the last report counts from zero.
                let before = previous.get(&r.id).copied().unwrap_or_else(|| crate::stats::CounterSnapshot::zero(after.at - interval));
                Some(CameraStats::between(r, &before, after, r.take_inference_max()))
            })
            .collect();
        let interval_s = last_tick.elapsed().as_secs_f64();
        last_tick = Instant::now();
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

/// Applies the retention of local snapshots and logs (events, alerts, audit) at start and every hour.
async fn apply_retention(store: SnapshotStore, logs: Vec<Arc<EventLog>>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let (s, l) = (store.clone(), logs.clone());
        let swept = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now();
            (s.sweep(now), l.iter().map(|log| log.sweep(now)).collect::<Vec<_>>())
        })
        .await;
        match swept {
            Ok((snapshots, swept_logs)) => {
                match snapshots {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(days = n, dir = %store.dir().display(), retention_days = store.retention_days(), "expired snapshots removed"),
                    Err(e) => tracing::warn!(error = %e, "snapshot retention failed"),
                }
                for (log, result) in logs.iter().zip(swept_logs) {
                    match result {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(files = n, dir = %log.dir().display(), retention_days = log.retention_days(), "expired logs removed"),
                        Err(e) => tracing::warn!(error = %e, dir = %log.dir().display(), "log retention failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "retention task failed"),
        }
    }
}

/// What a signal asks the daemon to do.
enum Signal {
    Stop,
    Reload,
}

/// SIGTERM, SIGINT and SIGHUP, listened for from the moment the runtime starts.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => { tracing::info!("SIGTERM received"); Signal::Stop }
            _ = self.int.recv() => { tracing::info!("SIGINT received"); Signal::Stop }
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    /// Waits for a stop signal; a SIGHUP before the agent is running has nothing to reload and is ignored
    /// (the configuration is being read anyway).
    async fn stop(&mut self) {
        while let Signal::Reload = self.next().await {
            tracing::info!("SIGHUP during start-up ignored: the configuration is being loaded now");
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
