//! The agent's periodic reports: the retained status payload, the `stats` messages, the frame-rate
//! gauges, the systemd watchdog with `/healthz`, and the hourly retention sweep.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_config::Config;

use crate::eventlog::EventLog;
use crate::inference::DetectorInfo;
use crate::metrics::{self, CameraList, HealthStatus};
use crate::mqtt::{MqttLink, StatusFn};
use crate::outbox::OutboxHandle;
use crate::payload::{self, AgentInfo, AgentState, CameraStats, CameraStatus, Grid};
use crate::snapshots::SnapshotStore;
use crate::stats::{CameraRecord, CounterSnapshot};
use crate::storage::{Reclaimable, Storage};
use crate::systemd::Notifier;

/// The status payload builder handed to the MQTT task.
pub fn status_builder(
    config: &Config,
    agent: AgentInfo,
    records: CameraList,
    storage: Arc<Storage>,
    outbox: OutboxHandle,
    gat1400: Option<crate::gat1400::Gat1400Handle>,
) -> StatusFn {
    let site = config.site.path();
    let grid = Grid::from(&config.site);
    let name = config.site.name.clone();
    Arc::new(move |state: AgentState| {
        let live = state != AgentState::Offline;
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
            storage: live.then(|| payload::StorageStatus::from(&storage.report())),
            dead_letters: live.then(|| payload::DeadLetters::of(outbox.outbox())).flatten(),
            gat1400: gat1400.as_ref().filter(|_| live).map(|g| g.state().as_str()),
        };
        serde_json::to_vec(&status).unwrap_or_default()
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn publish_stats(
    link: MqttLink,
    outbox: OutboxHandle,
    storage: Arc<Storage>,
    site: String,
    records: CameraList,
    detector: DetectorInfo,
    interval: Duration,
    started: Instant,
    notify: Option<crate::notify::NotifyHandle>,
    clips: Option<crate::clips::ClipsHandle>,
    gat1400: Option<crate::gat1400::Gat1400Handle>,
) {
    let mut previous: HashMap<String, CounterSnapshot> = HashMap::new();
    let mut last_tick = Instant::now();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let detector_stats = payload::DetectorStats {
        model: detector.model.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        provider: detector.provider.name(),
        input: [detector.input_size.0, detector.input_size.1],
    };
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = link.stats_requested() => {}
        }
        let list: Vec<Arc<CameraRecord>> = records.read().unwrap_or_else(|p| p.into_inner()).clone();
        let now: HashMap<String, CounterSnapshot> = list.iter().map(|r| (r.id.clone(), r.snapshot())).collect();
        let cameras = list
            .iter()
            .filter_map(|r| {
                let after = now.get(&r.id)?;
                // A camera started since the last report counts from zero.
                let before = previous.get(&r.id).copied().unwrap_or_else(|| CounterSnapshot::zero(after.at - interval));
                Some(CameraStats::between(r, &before, after, r.take_inference_max()))
            })
            .collect();
        let interval_s = last_tick.elapsed().as_secs_f64();
        last_tick = Instant::now();
        let o = outbox.outbox().stats().unwrap_or_default();
        let w = outbox.counters();
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
                dead_letters: o.dead_letters,
                dead_letters_total: o.dead_letters_total,
                held: w.held_messages.load(Ordering::Relaxed),
                shed_snapshots_total: w.shed_snapshots_total.load(Ordering::Relaxed),
                lost_total: w.lost_total.load(Ordering::Relaxed),
            },
            mqtt: payload::LinkStats {
                connects_total: ls.connects_total.load(Ordering::Relaxed),
                connection_errors_total: ls.connection_errors_total.load(Ordering::Relaxed),
                sent_total: ls.sent_total.load(Ordering::Relaxed),
                acked_total: ls.acked_total.load(Ordering::Relaxed),
            },
            cameras,
            storage: Some(payload::StorageStats::from(&*storage)),
            notify: notify.as_ref().map(crate::notify::NotifyHandle::report),
            clips: clips.as_ref().map(crate::clips::ClipsHandle::report),
            gat1400: gat1400.as_ref().map(crate::gat1400::Gat1400Handle::report),
        };
        previous = now;
        if let Ok(bytes) = serde_json::to_vec(&stats) {
            if !link.publish_lossy(link.topics().stats(), bytes) {
                tracing::debug!("stats not published: broker not connected");
            }
        }
    }
}

/// Feeds the systemd watchdog while the agent is healthy, and keeps `/healthz` and the status line current.
pub async fn watchdog(check: metrics::HealthCheck, notifier: Arc<Notifier>) {
    let period = notifier.watchdog().map_or(Duration::from_secs(10), |w| (w / 3).min(Duration::from_secs(10)));
    let mut ticker = tokio::time::interval(period);
    let mut last_status = HealthStatus::Starting;
    loop {
        ticker.tick().await;
        let health = check.evaluate().await;
        if health.is_unhealthy() {
            if last_status != health.status {
                tracing::error!(problems = ?health.problems, "agent unhealthy: withholding watchdog keep-alives so systemd restarts it");
            }
        } else {
            notifier.keep_alive();
            if last_status == HealthStatus::Unhealthy {
                tracing::info!("agent healthy again");
            }
        }
        if last_status != health.status || health.status != HealthStatus::Ok {
            let status = health.status.as_str();
            let summary = if health.problems.is_empty() { status.to_string() } else { format!("{status}: {}", health.problems.join("; ")) };
            notifier.status(&summary);
        }
        last_status = health.status;
    }
}

/// Refreshes each camera's frame-rate gauges every few seconds.
pub async fn sample_rates(cameras: CameraList) {
    let mut previous: HashMap<String, CounterSnapshot> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticker.tick().await;
        let list: Vec<Arc<CameraRecord>> = cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut now = HashMap::new();
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

/// Applies the retention of local snapshots and logs (events, alerts, audit) at start and every hour; the
/// history index loses the passings the event log (the first of `logs`) no longer keeps.
pub async fn apply_retention(store: SnapshotStore, logs: Vec<Arc<EventLog>>, history: Option<Arc<crate::history::History>>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        ticker.tick().await;
        let (s, l, h) = (store.clone(), logs.clone(), history.clone());
        let swept = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now();
            let days = l.first().map_or(u32::MAX, |log| log.retention_days());
            match h.map(|h| h.sweep(now, days)) {
                Some(Ok(0)) | None => {}
                Some(Ok(n)) => tracing::info!(passings = n, retention_days = days, "expired passings removed from the history index"),
                Some(Err(e)) => tracing::warn!(error = %e, "history retention failed"),
            }
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

/// Measures the state directory's disk every few seconds, keeps it above its floor, and republishes the
/// status when the storage verdict changes.
pub async fn maintain_storage(storage: Arc<Storage>, reclaimable: Arc<Reclaimable>, link: Option<MqttLink>) {
    let mut ticker = tokio::time::interval(STORAGE_CHECK);
    loop {
        ticker.tick().await;
        let (s, r) = (storage.clone(), reclaimable.clone());
        let changed = tokio::task::spawn_blocking(move || s.check(&r, chrono::Utc::now())).await.unwrap_or(false);
        if changed {
            if let Some(link) = &link {
                link.status_changed();
            }
        }
    }
}

/// How often the disk is measured.
const STORAGE_CHECK: Duration = Duration::from_secs(5);

/// Closes flow-count periods (every second) and queues them through the outbox; each goes to the local
/// counts log once the outbox has committed it.
pub async fn publish_counts(cameras: CameraList, outbox: OutboxHandle, topics: crate::topics::Topics, site: String, log: Arc<EventLog>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut waiting: std::collections::VecDeque<(crate::outbox::Ticket, Vec<u8>)> = std::collections::VecDeque::new();
    loop {
        ticker.tick().await;
        let now = chrono::Utc::now();
        while let Some((ticket, _)) = waiting.front() {
            match ticket.wait(Duration::ZERO) {
                crate::outbox::TicketState::Pending => break,
                state => {
                    let Some((_, bytes)) = waiting.pop_front() else { break };
                    if matches!(state, crate::outbox::TicketState::Committed(_)) {
                        if let Err(e) = log.append(now, &bytes) {
                            tracing::warn!(error = %e, "cannot write the local counts log");
                        }
                    }
                }
            }
        }
        let list: Vec<Arc<CameraRecord>> = cameras.read().unwrap_or_else(|p| p.into_inner()).clone();
        for record in list {
            for (start, end, tally) in record.flow.close(now) {
                let counts = crate::counts::Counts {
                    schema: crate::counts::COUNTS_SCHEMA,
                    site: site.clone(),
                    camera: record.id.clone(),
                    period_start: payload::timestamp(start),
                    period_end: payload::timestamp(end),
                    tally,
                };
                let Ok(bytes) = serde_json::to_vec(&counts) else { continue };
                match outbox.append_batch(vec![crate::outbox::Message::new(crate::outbox::Kind::Counts, topics.counts(&record.id), bytes.clone())]) {
                    Ok(ticket) => waiting.push_back((ticket, bytes)),
                    Err(rejected) => tracing::error!(camera = %record.id, error = %rejected.reason, "counts not queued"),
                }
            }
        }
    }
}
