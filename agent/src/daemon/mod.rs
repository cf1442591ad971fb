//! `edge-agent run`: wires the stages together and runs them until SIGTERM/SIGINT.
//!
//! ```text
//! camera threads (GStreamer, one per camera) ─▶ detector threads (ONNX Runtime) ─▶ camera thread
//!   camera.rs: detect → events → rules ─▶ sink.rs: outbox (disk) ─▶ MQTT task ─▶ broker
//!                                          └─▶ local logs, snapshots, duty desk feed (after the commit)
//! topology.rs: start / reload / stop the cameras      reports.rs: status, stats, watchdog, retention
//! ```
//!
//! Start-up order: signals, config, detector, outbox, MQTT, local record, cameras, reports, HTTP endpoints,
//! then READY=1. Shutdown is the reverse and a protocol: sources stop first (EOS, pipeline to Null), then
//! the detector threads, then the outbox is flushed and the MQTT task publishes the retained `stopped`
//! status, waits for its acknowledgement and disconnects. Each step has a deadline, and all of them
//! together [`STOP_DEADLINE`]; anything still running after its step is logged and left behind: a camera
//! thread stuck in GStreamer keeps its detector and outbox handles, so the detector is not waited for then,
//! and the outbox writer stops on an explicit message (committing what was queued, or giving up what a
//! failing disk would not take) rather than when the last handle is gone. Whatever was left behind makes the
//! process exit with status 2. A second SIGTERM or SIGINT exits at once (status 2), and a watchdog thread
//! ends the process if the steps themselves hang past the deadline, so systemd's `TimeoutStopSec` never has
//! to.

mod camera;
mod commands;
mod policy;
mod reports;
mod signals;
mod sink;
mod startup;
mod topology;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use edge_config::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::inference::Detector;
use crate::metrics::{self, CameraList};
use crate::mqtt::MqttLink;
use crate::outbox::{OutboxHandle, OutboxWriter};
use crate::storage::Storage;
use crate::systemd::Notifier;
use crate::topics::Topics;
use crate::web;
use signals::{Signal, Signals};
use startup::{local_record, open_outbox, start_clips, start_endpoints, start_gat1400, start_mqtt, start_reports};
use topology::{CameraDeps, Fleet};

/// Time each shutdown step (and a camera stopped on reload) may take before the daemon moves on and says
/// what is still running.
const STEP_DEADLINE: Duration = Duration::from_secs(10);
/// Time the whole shutdown may take (the unit's `TimeoutStopSec` is 30 s).
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Exit status when the agent stopped but had to leave something behind.
pub const EXIT_ABANDONED: u8 = 2;

/// How the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything stopped in order.
    Clean,
    /// Something was left behind (a stuck thread, messages a failing disk would not take).
    Abandoned,
}

/// Caps glibc's malloc arenas before any thread starts, unless the operator set `MALLOC_ARENA_MAX`.
///
/// glibc gives each new thread that allocates its own arena, up to eight per core. Every camera
/// reconnect starts fresh GStreamer streaming threads, so without a cap resident memory climbs by
/// about a megabyte per reconnect until the arena limit is reached (measured: 129 → 147 MB over
/// 15 reconnects, flat afterwards); with two arenas it stays within 5 % of the first reconnect.
///
/// Allocations of 16 MiB and more (each duty desk password check allocates 19 MiB for Argon2id) are always
/// mapped and so returned to the system when freed: glibc's moving threshold would otherwise keep them in
/// the heap after the first one, and a burst of sign-ins would leave tens of megabytes resident.
#[allow(unsafe_code)] // the one FFI call in the agent: an allocator setting glibc offers no safe wrapper for
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only adjusts allocator parameters; it is called before other threads exist.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 16 << 20) };
        }
    }
}

/// Loads the config, checks the machine, and runs the agent until a termination signal.
pub fn run(config_path: &Path) -> anyhow::Result<Stopped> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name("edge-agent-io").enable_all().build().context("cannot start the async runtime")?;
    let stopped = runtime.block_on(async {
        // Signals are handled from the first moment, so a stop during start-up is clean too.
        let mut signals = Signals::install()?;
        let config = load_checked(config_path)?;
        for warning in crate::checks::security_warnings(&config) {
            tracing::warn!("{warning}");
        }
        match crate::checks::open_files_limit() {
            Some(n) if n < crate::checks::MIN_OPEN_FILES => {
                tracing::warn!(limit = n, wanted = crate::checks::MIN_OPEN_FILES, "the open-file limit is low: raise it (LimitNOFILE= in the unit, ulimit -n)")
            }
            _ => {}
        }
        crate::source::pipeline::init().map_err(anyhow::Error::msg)?;
        let Some(detector) = load_detector(&config, &mut signals).await? else {
            tracing::info!("stopped during start-up");
            return Ok(Stopped::Clean);
        };
        let mut agent = Agent::start(&config, config_path, detector).await?;
        agent.serve(config_path, &config, &mut signals).await;
        exit_on_second_signal(signals);
        Ok(agent.shutdown().await)
    });
    // Blocking tasks still running (a flush a failing disk never answers) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_millis(500));
    stopped
}

/// From the first stop signal on: a second one exits at once, and so does a shutdown that overruns
/// [`STOP_DEADLINE`] (a thread-level backstop, independent of the async runtime).
fn exit_on_second_signal(mut signals: Signals) {
    tokio::spawn(async move {
        loop {
            if let Signal::Stop = signals.next().await {
                tracing::error!("second stop signal: exiting at once, leaving the shutdown unfinished");
                std::process::exit(i32::from(EXIT_ABANDONED));
            }
        }
    });
    let backstop = std::thread::Builder::new().name("stop-deadline".into()).spawn(|| {
        std::thread::sleep(STOP_DEADLINE + Duration::from_secs(5));
        tracing::error!(deadline_s = STOP_DEADLINE.as_secs(), "shutdown overran its deadline: exiting now");
        std::process::exit(i32::from(EXIT_ABANDONED));
    });
    if let Err(e) = backstop {
        tracing::warn!(error = %e, "cannot start the stop-deadline thread");
    }
}

/// The config, validated and checked against this machine.
fn load_checked(path: &Path) -> anyhow::Result<Config> {
    let config = edge_config::load_file(path)?;
    let issues = crate::checks::environment_issues(&config);
    if !issues.is_empty() {
        let lines: Vec<String> = issues.iter().map(|i| format!("  {i}")).collect();
        bail!("config file {} cannot be used on this machine:\n{}", path.display(), lines.join("\n"));
    }
    Ok(config)
}

/// Loads the models on a blocking thread; `None` when a stop signal came first.
async fn load_detector(config: &Config, signals: &mut Signals) -> anyhow::Result<Option<Detector>> {
    let mut models = config.models.clone();
    models.plates.enabled = crate::checks::plates_in_use(config);
    let floor = config.events.track_low_score;
    let loading = tokio::task::spawn_blocking(move || Detector::start(&models, models.sessions(crate::inference::cpu_cores()), Some(floor)));
    let detector = tokio::select! {
        loaded = loading => loaded.context("detector loading panicked")?.context("cannot load the detector")?,
        _ = signals.stop() => return Ok(None),
    };
    let info = detector.info();
    tracing::info!(
        model = %info.model.display(),
        plates = info.plates,
        provider = info.provider.name(),
        input = format!("{}x{}", info.input_size.0, info.input_size.1),
        runtime = %models::runtime::library_path().map(|p| p.display().to_string()).unwrap_or_default(),
        "detector loaded"
    );
    Ok(Some(detector))
}

/// The running agent: every task and handle, in the order they stop.
struct Agent {
    notifier: Arc<Notifier>,
    /// Reloads asked for by the duty desk after it changed the configuration file; answered with whether
    /// the new configuration applied.
    reloads: tokio::sync::mpsc::Receiver<tokio::sync::oneshot::Sender<bool>>,
    /// The work-group notification channels: stopped after the cameras.
    channels: Option<crate::notify::Notifier>,
    /// The GA/T 1400 uplink: stopped after the cameras.
    gat1400: Option<crate::gat1400::Uplink>,
    fleet: Fleet,
    detector: Detector,
    outbox_writer: OutboxWriter,
    outbox: OutboxHandle,
    mqtt: Option<(MqttLink, JoinHandle<()>)>,
    mqtt_cancel: CancellationToken,
    /// The platform's policy, merged into the local config.
    policy: policy::PolicyLink,
    /// Commands already answered.
    answered: crate::control::command::Answered,
    /// Records dispositions (the duty desk's and the platform's); `None` without the duty desk.
    disposer: Option<Arc<web::Disposer>>,
    sources: metrics::Sources,
    /// Stats, rates, watchdog and retention: aborted at shutdown.
    background: Vec<JoinHandle<()>>,
    /// The HTTP endpoints: cancelled and awaited at shutdown.
    http: Vec<JoinHandle<()>>,
    http_cancel: CancellationToken,
    cameras_cancel: CancellationToken,
}

impl Agent {
    async fn start(config: &Config, config_path: &Path, detector: Detector) -> anyhow::Result<Self> {
        let started = Instant::now();
        let cameras: CameraList = Arc::new(RwLock::new(Vec::new()));
        let (outbox_writer, outbox) = open_outbox(config)?;
        let storage = Arc::new(Storage::new(&config.storage.state_dir, config.storage.min_free_mb.saturating_mul(1 << 20), outbox.counters().clone()));
        let mqtt_cancel = CancellationToken::new();
        // The persisted policy applies before any broker connection.
        let (mut policy, inbound) = policy::PolicyLink::load(config);
        let (effective, provenance) = policy.effective();
        let cameras_cancel = CancellationToken::new();
        let gat1400 = start_gat1400(config, &cameras_cancel);
        let mqtt = start_mqtt(config, &cameras, &outbox, &storage, &mqtt_cancel, inbound, gat1400.as_ref().map(|(_, h)| h.clone()))?;
        let link = mqtt.as_ref().map(|(link, _)| link.clone());
        policy.attach(link.clone());
        let (mut local, audit) = local_record(config, storage.clone()).await;
        local.gat1400 = gat1400.as_ref().map(|(_, h)| h.clone());
        let gat1400 = gat1400.map(|(uplink, _)| uplink);
        let channels = start_notifications(config, &local, &cameras_cancel);
        local.notify = channels.as_ref().map(|(_, handle)| handle.clone());
        local.clips = start_clips(config, &outbox, &Topics::new(config.topic_prefix(), &config.site), &local);
        let channels = channels.map(|(notifier, _)| notifier);
        let mut background = vec![tokio::spawn(reports::apply_retention(
            local.snapshots.clone(),
            vec![local.events.clone(), local.alerts.clone(), local.counts.clone(), audit.log().clone()],
            local.history.clone(),
        ))];
        let Some(handle) = detector.handle() else { bail!("detector stopped before cameras started") };
        let deps = CameraDeps {
            site: config.site.clone(),
            topics: Topics::new(config.topic_prefix(), &config.site),
            detector: handle,
            plates_loaded: detector.info().plates,
            link: link.clone(),
            detections_interval: config.mqtt.as_ref().map(|m| Duration::from_millis(m.detections_interval_ms)).filter(|d| !d.is_zero()),
            outbox: outbox.clone(),
            local: local.clone(),
            rules: Arc::new(RwLock::new(Arc::new(crate::rules::RuleSet::compile_with(&effective.rules, &provenance)))),
            camera_names: Arc::new(RwLock::new(web::camera_names(config))),
            cancel: cameras_cancel.clone(),
            counts_period_secs: config.reports.counts_period_secs,
            plate_settle_reads: config.models.plates.settle_reads,
            health: config.health.clone(),
            plate_min_vehicle_width: config.models.plates.min_vehicle_width_px,
        };
        let mut fleet = Fleet::new(deps, cameras.clone());
        fleet.apply(&effective).await?;
        if config.cameras.is_empty() {
            tracing::warn!("no cameras configured: running idle; add [[cameras]] to the config and reload (SIGHUP)");
        }
        background.extend(start_reports(config, link.as_ref(), &outbox, &local, &cameras, detector.info(), started));
        background.push(tokio::spawn(reports::publish_counts(cameras.clone(), outbox.clone(), fleet.deps.topics.clone(), config.site.path(), local.counts.clone())));
        let sources = metrics::Sources {
            cameras: cameras.clone(),
            outbox: outbox.clone(),
            storage: storage.clone(),
            link: link.as_ref().map(|l| l.state().clone()),
            health: Arc::new(std::sync::Mutex::new(metrics::Health::default())),
            started,
            reloads: Arc::new(metrics::ReloadCounters::default()),
            web_guard: config.web.enabled.then(|| Arc::new(web::guard::Guard::new())),
            notify: local.notify.clone(),
            clips: local.clips.clone(),
            gat1400: local.gat1400.clone(),
        };
        let http_cancel = CancellationToken::new();
        let disposer = local.feed.clone().map(|feed| {
            Arc::new(web::Disposer {
                feed,
                audit,
                outbox: Some(outbox.clone()),
                topics: fleet.deps.topics.clone(),
                site: config.site.path(),
                outcomes: config.web.outcomes.clone(),
            })
        });
        let (reload_tx, reloads) = tokio::sync::mpsc::channel(4);
        let setup = web::ConfigAccess { config_file: config_path.to_path_buf(), reload: reload_tx };
        let http = start_endpoints(config, &sources, &fleet, &local, disposer.clone(), setup, &http_cancel).await;
        let notifier = Arc::new(Notifier::from_env());
        let check = metrics::HealthCheck { sources: sources.clone(), mqtt_task: mqtt.as_ref().map(|(_, task)| task.abort_handle()) };
        background.push(tokio::spawn(reports::watchdog(check, notifier.clone())));
        let answered = crate::control::command::Answered::load(&config.storage.state_dir);
        Ok(Self {
            notifier,
            reloads,
            channels,
            gat1400,
            fleet,
            detector,
            outbox_writer,
            outbox,
            mqtt,
            mqtt_cancel,
            policy,
            answered,
            disposer,
            sources,
            background,
            http,
            http_cancel,
            cameras_cancel,
        })
    }

    /// Says the agent is ready, then reloads on SIGHUP and applies the platform's policy until a stop signal.
    async fn serve(&mut self, config_path: &Path, config: &Config, signals: &mut Signals) {
        self.notifier.ready(&self.fleet.summary());
        tracing::info!(cameras = self.fleet.len(), watchdog = ?self.notifier.watchdog(), systemd = self.notifier.is_active(), "agent ready");
        loop {
            let expiry = self.policy.next_expiry_in();
            tokio::select! {
                signal = signals.next() => match signal {
                    Signal::Stop => break,
                    Signal::Reload => { self.reload(config_path, config).await; }
                },
                Some(done) = self.reloads.recv() => {
                    let applied = self.reload(config_path, config).await;
                    let _ = done.send(applied);
                }
                message = self.policy.next() => match message {
                    policy::FromPlatform::Policy(level, payload) => {
                        if let Some((effective, provenance)) = self.policy.offer(level, &payload) {
                            let _ = topology::apply(&mut self.fleet, &effective, &provenance).await;
                            self.changed();
                        }
                    }
                    policy::FromPlatform::Command(payload) => self.command(config, &payload).await,
                },
                () = sleep_or_never(expiry) => {
                    tracing::info!("a watch-list entry in force expired: reporting the policy again");
                    self.policy.report();
                }
            }
        }
    }

    async fn reload(&mut self, config_path: &Path, config: &Config) -> bool {
        self.notifier.reloading();
        let applied = match topology::read_new(config_path, config) {
            Some(new) => {
                let (effective, provenance) = self.policy.set_local(new);
                topology::apply(&mut self.fleet, &effective, &provenance).await.inspect(|()| tracing::info!("configuration reloaded"))
            }
            None => Err(()),
        };
        let counter = if applied.is_ok() { &self.sources.reloads.ok } else { &self.sources.reloads.rejected };
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed();
        applied.is_ok()
    }

    async fn command(&mut self, config: &Config, payload: &[u8]) {
        let topics = Topics::new(config.topic_prefix(), &config.site);
        let ctx = commands::Context {
            fleet: &mut self.fleet,
            outbox: &self.outbox,
            link: self.mqtt.as_ref().map(|(l, _)| l),
            policy: &self.policy.policy,
            topics: &topics,
            site: &config.site.path(),
            started: self.sources.started,
            disposer: self.disposer.as_deref(),
            storage: &self.sources.storage,
        };
        commands::handle(payload, &config.control.trusted_keys, &mut self.answered, ctx).await;
        self.changed();
    }

    /// Cameras may have changed: the status and systemd hear of it.
    fn changed(&self) {
        if let Some((link, _)) = &self.mqtt {
            link.status_changed();
        }
        self.notifier.ready(&self.fleet.summary());
    }

    /// Stops everything in order: cameras, detector, endpoints, outbox flush, MQTT, outbox writer; each step
    /// within its own deadline and all within [`STOP_DEADLINE`]. Says what was left behind.
    async fn shutdown(self) -> Stopped {
        let Self {
            notifier,
            reloads: _,
            channels,
            gat1400,
            mut fleet,
            detector,
            outbox_writer,
            outbox,
            mqtt,
            mqtt_cancel,
            policy,
            answered,
            disposer,
            sources,
            background,
            http,
            http_cancel,
            cameras_cancel,
        } = self;
        let until = Instant::now() + STOP_DEADLINE;
        let left = |step: Duration| until.saturating_duration_since(Instant::now()).min(step);
        let mut abandoned: Vec<String> = Vec::new();
        drop((policy, answered, disposer));
        notifier.stopping();
        tracing::info!(deadline_s = STOP_DEADLINE.as_secs(), "shutting down: stopping cameras");
        http_cancel.cancel();
        cameras_cancel.cancel();
        let stuck = fleet.stop_all(left(STEP_DEADLINE)).await;
        drop(fleet);
        if let Some(channels) = channels {
            let within = left(Duration::from_secs(3));
            let _ = tokio::task::spawn_blocking(move || channels.stop(within)).await;
        }
        if let Some(uplink) = gat1400 {
            let within = left(Duration::from_secs(3));
            let _ = tokio::task::spawn_blocking(move || uplink.stop(within)).await;
        }
        if stuck.is_empty() {
            tracing::info!("stopping detector");
            let detector_done = tokio::task::spawn_blocking(move || detector.shutdown());
            if tokio::time::timeout(left(Duration::from_secs(5)), detector_done).await.is_err() {
                tracing::warn!("detector threads still running after the shutdown deadline");
                abandoned.push("detector threads".into());
            }
        } else {
            // Its threads run until every camera has let go of them; the stuck ones have not.
            tracing::warn!("detector threads left running: cameras still running hold them");
            abandoned.push(format!("camera threads {}", stuck.join(", ")));
            drop(detector);
        }
        background.iter().for_each(JoinHandle::abort);
        for task in http {
            let _ = tokio::time::timeout(left(Duration::from_secs(2)), task).await;
        }
        // Everything the cameras produced is on disk before the link goes (unless the disk is failing).
        let flush = outbox.clone();
        let within = left(Duration::from_secs(3));
        match tokio::task::spawn_blocking(move || flush.flush_within(within)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot flush the outbox"),
            Err(e) => tracing::error!(error = %e, "outbox flush task failed"),
        }
        if let Some((link, task)) = mqtt {
            tracing::info!("stopping MQTT link");
            mqtt_cancel.cancel();
            if tokio::time::timeout(left(STEP_DEADLINE), task).await.is_err() {
                tracing::warn!("MQTT task still running after the shutdown deadline");
                abandoned.push("MQTT task".into());
            }
            drop(link);
        }
        let left_undelivered = outbox.outbox().stats().map(|s| s.depth).unwrap_or(0);
        drop((sources, outbox));
        let within = left(Duration::from_secs(3)).max(Duration::from_millis(200));
        let report = tokio::task::spawn_blocking(move || outbox_writer.stop(within)).await.ok();
        match report {
            Some(r) if r.finished && r.lost == 0 => {}
            Some(r) if r.finished => abandoned.push(format!("{} message(s) the disk would not take", r.lost)),
            Some(r) => abandoned.push(format!("the outbox writer, with {} message(s) not on disk", r.lost)),
            None => abandoned.push("the outbox writer".into()),
        }
        if abandoned.is_empty() {
            tracing::info!(undelivered = left_undelivered, "stopped");
            Stopped::Clean
        } else {
            tracing::error!(undelivered = left_undelivered, left_behind = %abandoned.join("; "), "stopped, leaving behind what did not stop in time");
            Stopped::Abandoned
        }
    }
}

/// The notification channels, when any is configured. One that cannot start (a key file missing) is
/// reported, and the agent runs without notifications rather than not at all.
fn start_notifications(config: &Config, local: &sink::LocalRecord, cancel: &CancellationToken) -> Option<(crate::notify::Notifier, crate::notify::NotifyHandle)> {
    let context = crate::notify::Context { checkpoint: config.site.name.clone().unwrap_or_else(|| config.site.checkpoint.clone()), cameras: web::camera_names(config) };
    let setup = crate::notify::Setup { state_dir: config.storage.state_dir.clone(), context, snapshots: local.snapshots.clone() };
    match crate::notify::Notifier::start(&config.notify, setup, cancel) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "notifications cannot start: alerts still go to MQTT and the duty desk");
            None
        }
    }
}

/// Sleeps for `d`, or forever without one.
async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// The duty desk's accounts file: `web.users_file`, else `users.json` in the state directory.
pub fn users_file(config: &Config) -> std::path::PathBuf {
    config.web.users_file.clone().unwrap_or_else(|| config.storage.state_dir.join("users.json"))
}
