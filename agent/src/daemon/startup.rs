//! The start-up steps of `daemon::Agent::start`, one function each: the outbox, the MQTT link, the local
//! record, the periodic reports and the HTTP endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use edge_config::Config;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::reports;
use super::sink::LocalRecord;
use super::topology::Fleet;
use super::users_file;
use crate::eventlog::EventLog;
use crate::history::History;
use crate::inference::DetectorInfo;
use crate::metrics::{self, CameraList};
use crate::mqtt::{self, MqttLink};
use crate::outbox::{Bounds, Outbox, OutboxHandle, OutboxWriter};
use crate::payload::AgentInfo;
use crate::snapshots::SnapshotStore;
use crate::storage::{Reclaimable, Storage};
use crate::web::{self, AuditLog, Feed};

/// Opens the outbox in the state directory and starts its writer.
pub fn open_outbox(config: &Config) -> anyhow::Result<(OutboxWriter, OutboxHandle)> {
    let path = config.storage.state_dir.join("outbox.redb");
    let outbox = Outbox::open(&path).with_context(|| "cannot open the outbox")?;
    let pending = outbox.stats().map(|s| s.depth).unwrap_or(0);
    tracing::info!(path = %path.display(), pending, "outbox open");
    let bounds = Bounds {
        max_bytes: config.storage.outbox_max_bytes,
        max_age_ms: config.storage.outbox_max_age_hours * 3_600_000,
        snapshot_max_age_ms: u64::from(config.storage.snapshot_retention_days) * 86_400_000,
        held_max_bytes: Bounds::HELD_MAX_BYTES,
    };
    Ok(OutboxWriter::start(outbox, bounds)?)
}

/// Starts the MQTT task when a broker is configured.
pub fn start_mqtt(
    config: &Config,
    cameras: &CameraList,
    outbox: &OutboxHandle,
    storage: &Arc<Storage>,
    cancel: &CancellationToken,
    inbound: Option<mqtt::Inbound>,
    gat1400: Option<crate::gat1400::Gat1400Handle>,
) -> anyhow::Result<Option<(MqttLink, JoinHandle<()>)>> {
    let Some(settings) = &config.mqtt else {
        tracing::warn!("no [mqtt] section in the config: running standalone, events are kept in the outbox and the local event log");
        return Ok(None);
    };
    let status = reports::status_builder(config, AgentInfo::current(chrono::Utc::now()), cameras.clone(), storage.clone(), outbox.clone(), gat1400.clone());
    let started = mqtt::start(settings, &config.site, status, Some(outbox.clone()), cancel.clone(), Duration::from_secs(5), inbound)?;
    if let Some(gat) = &gat1400 {
        let link = started.0.clone();
        gat.on_change(move || link.status_changed());
    }
    Ok(Some(started))
}

/// The local logs, snapshot store and duty desk feed (refilled from the logs), the storage verdict over
/// the state directory's disk; and the audit log.
pub async fn local_record(config: &Config, disk: Arc<Storage>) -> (LocalRecord, Arc<AuditLog>) {
    let storage = &config.storage;
    let events = Arc::new(EventLog::new(&storage.state_dir, storage.event_log_retention_days));
    let local = LocalRecord {
        storage: Some(disk),
        history: open_history(&storage.state_dir, events.clone()).await,
        events,
        alerts: Arc::new(EventLog::named(&storage.state_dir, "alerts", storage.event_log_retention_days)),
        counts: Arc::new(EventLog::named(&storage.state_dir, "counts", storage.event_log_retention_days)),
        snapshots: SnapshotStore::new(&storage.state_dir, storage.snapshot_retention_days),
        feed: config.web.enabled.then(Feed::new),
        notify: None,
        clips: None,
        gat1400: None,
    };
    let audit = Arc::new(AuditLog::open(&storage.state_dir));
    if let Some(feed) = &local.feed {
        let (feed, events, alerts, audit) = (feed.clone(), local.events.clone(), local.alerts.clone(), audit.clone());
        tokio::task::spawn_blocking(move || feed.restore(&events, &alerts, &audit)).await.ok();
    }
    (local, audit)
}

/// The history index, caught up with the event log; without it the agent runs on and the desk's search
/// answers that it is unavailable.
async fn open_history(state_dir: &std::path::Path, log: Arc<EventLog>) -> Option<Arc<History>> {
    let path = state_dir.join("history.redb");
    let opened = tokio::task::spawn_blocking(move || {
        let mut history = History::open(&path)?;
        let added = history.catch_up(&log, chrono::Utc::now())?;
        if added > 1000 {
            history.compact()?;
        }
        Ok::<_, crate::history::HistoryError>((history, added))
    })
    .await;
    match opened {
        Ok(Ok((history, added))) => {
            tracing::info!(passings = history.len().unwrap_or(0), indexed_from_logs = added, "history index open");
            Some(Arc::new(history))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "history index unavailable: the duty desk's search is off until it can be opened");
            None
        }
        Err(_) => None,
    }
}

/// The GA/T 1400 uplink, when configured; one that cannot start (its queue cannot be opened, its password
/// cannot be read) is logged and the agent runs on without it.
pub fn start_gat1400(config: &Config, cancel: &CancellationToken) -> Option<(crate::gat1400::Uplink, crate::gat1400::Gat1400Handle)> {
    match crate::gat1400::Uplink::start(config.gat1400.as_ref(), config.storage.state_dir.clone(), cancel) {
        Ok(started) => started,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "GA/T 1400 uplink unavailable: the agent runs without it");
            None
        }
    }
}

/// The clip thread, when clips are on; without it (its directory cannot be made) the agent runs on without
/// clips.
pub fn start_clips(config: &Config, outbox: &OutboxHandle, topics: &crate::topics::Topics, local: &LocalRecord) -> Option<crate::clips::ClipsHandle> {
    if !config.clips.enabled {
        return None;
    }
    let out = crate::clips::Outputs {
        outbox: outbox.clone(),
        topics: topics.clone(),
        site: config.site.clone(),
        feed: local.feed.clone(),
        storage: local.storage.clone(),
        outbox_max_bytes: config.storage.outbox_max_bytes,
    };
    match crate::clips::ClipsHandle::start(config.clips.clone(), &config.storage.state_dir, out) {
        Ok(clips) => Some(clips),
        Err(e) => {
            tracing::error!(error = %e, "clips unavailable: the agent runs without them");
            None
        }
    }
}

/// The `stats` messages (with a broker), the frame-rate gauges and the storage floor.
pub fn start_reports(
    config: &Config,
    link: Option<&MqttLink>,
    outbox: &OutboxHandle,
    local: &LocalRecord,
    cameras: &CameraList,
    detector: &DetectorInfo,
    started: Instant,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(reports::sample_rates(cameras.clone()))];
    if let Some(storage) = &local.storage {
        let reclaimable = Reclaimable {
            snapshots: local.snapshots.clone(),
            clips: local.clips.clone(),
            logs: vec![local.events.clone(), local.alerts.clone(), local.counts.clone()],
            history: local.history.clone(),
        };
        tasks.push(tokio::spawn(reports::maintain_storage(storage.clone(), Arc::new(reclaimable), link.cloned())));
        if let (Some(link), Some(settings)) = (link, &config.mqtt) {
            let interval = Duration::from_secs(settings.stats_interval_secs);
            tasks.push(tokio::spawn(reports::publish_stats(
                link.clone(),
                outbox.clone(),
                storage.clone(),
                config.site.path(),
                cameras.clone(),
                detector.clone(),
                interval,
                started,
                local.notify.clone(),
                local.clips.clone(),
                local.gat1400.clone(),
            )));
        }
    }
    tasks
}

/// The metrics endpoint and the duty desk, each when enabled; one that cannot start is logged and the
/// agent runs on without it.
pub async fn start_endpoints(
    config: &Config,
    sources: &metrics::Sources,
    fleet: &Fleet,
    local: &LocalRecord,
    disposer: Option<Arc<web::Disposer>>,
    setup: web::ConfigAccess,
    cancel: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    if config.metrics.enabled {
        let served = metrics::serve(&config.metrics.listen, sources.clone(), cancel.clone()).await;
        tasks.extend(endpoint("metrics endpoint", |addr| format!("http://{addr}/metrics and /healthz"), served));
    }
    if let (Some(feed), Some(disposer)) = (&local.feed, disposer) {
        let w = &config.web;
        let state = web::WebState {
            feed: feed.clone(),
            cameras: sources.cameras.clone(),
            camera_names: fleet.deps.camera_names.clone(),
            snapshots: local.snapshots.clone(),
            audit: disposer.audit.clone(),
            users_file: users_file(config),
            sessions: web::Sessions::default(),
            session_ttl: Duration::from_secs(u64::from(w.session_hours) * 3600),
            language: w.language.clone(),
            site_name: config.site.name.clone().unwrap_or_else(|| config.site.path()),
            retention_days: config.storage.snapshot_retention_days,
            tls: w.tls_cert_file.is_some(),
            setup_code: Arc::default(),
            setup_code_file: config.storage.state_dir.join("setup-code"),
            guard: sources.web_guard.clone().unwrap_or_default(),
            devices: Arc::new(device_keys(&config.storage.state_dir)),
            allowed_hosts: Arc::new(web::allowed_hosts(&w.allowed_hosts)),
            disposer,
            counts_log: local.counts.clone(),
            history: local.history.clone(),
            storage: local.storage.clone(),
            health: Some(sources.health.clone()),
            notify: local.notify.clone(),
            clips: local.clips.clone(),
            gat1400: local.gat1400.clone(),
            config: Some(setup),
        };
        let tls = w.tls_cert_file.clone().zip(w.tls_key_file.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let served = web::serve(&w.listen, state, tls, cancel.clone()).await;
        tasks.extend(endpoint("duty desk", |addr| format!("{scheme}://{addr}/"), served));
    }
    tasks
}

/// The key for device cookies, kept in the state directory; without it (unwritable) devices are recognised
/// until the agent restarts.
fn device_keys(state_dir: &std::path::Path) -> web::device::DeviceKeys {
    let path = web::device::key_file(state_dir);
    web::device::DeviceKeys::load_or_create(&path).unwrap_or_else(|e| {
        tracing::warn!(file = %path.display(), error = %e, "cannot keep the device-cookie key: browsers are recognised until the agent restarts");
        web::device::DeviceKeys::ephemeral()
    })
}

/// Logs where an optional HTTP endpoint listens, or why it did not start.
fn endpoint(name: &str, url: impl Fn(std::net::SocketAddr) -> String, served: anyhow::Result<(std::net::SocketAddr, JoinHandle<()>)>) -> Option<JoinHandle<()>> {
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
