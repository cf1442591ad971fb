//! Work-group notifications: alerts pushed to the village's and town's WeCom and DingTalk groups, or to a
//! webhook on the platform's gateway, a PBX/SMS box or a siren controller.
//!
//! Design: a notification is durable like an MQTT message. Each alert a channel takes (its filters, quiet
//! hours, cooldown, mutes) is appended to a second outbox, `notify.redb` in the state directory, with the
//! channel's id as its topic; it is deleted once the service accepted it, refused it for good, or it grew
//! older than the channel's `max_age_secs` (counted as expired: an hours-old push is noise). So a robot
//! that is down, or a dead uplink, delays notifications and loses none, and the queue survives a restart.
//! Each channel has its own thread (blocking HTTP through `ureq`), so one slow service never holds up the
//! others, and its own token bucket of `per_minute` requests: when the alerts waiting would cost more
//! requests than the bucket holds, they go out as one summary ("5 条告警：…") instead of being throttled
//! away. A service's "too fast" answer empties the bucket. Every result is counted per channel
//! ([`ChannelStats`], in `/metrics` and on the duty desk).

mod format;
mod send;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use edge_config::{Notify, NotifyKind, Secret};
use tokio_util::sync::CancellationToken;

pub use format::{kind_label, Context};
pub(crate) use send::http_agent;
use send::{Outcome, Transport};

use crate::outbox::{now_ms, Bounds, Kind, Message, Outbox, OutboxHandle, OutboxWriter};
use crate::payload::Alert;
use crate::snapshots::SnapshotStore;

/// How often a channel looks for new notifications.
const POLL: Duration = Duration::from_millis(250);
/// Notifications read from the queue at a time (a summary lists at most these).
const BATCH: usize = 50;
/// Back-off after a failed request: doubling from 2 s to 60 s.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);
/// The notification queue's bounds: a burst of pictures is small; a week-long outage is not kept.
const QUEUE_MAX_BYTES: u64 = 32 << 20;

/// What happened to a channel's notifications, since the agent started.
#[derive(Debug, Default)]
pub struct ChannelStats {
    /// Requests the service accepted (messages, pictures and summaries).
    pub sent: AtomicU64,
    /// Alerts delivered, alone or in a summary.
    pub delivered: AtomicU64,
    /// Summaries sent (each for several alerts).
    pub summaries: AtomicU64,
    /// Requests the service refused for good (its `errcode`), and ones that failed and were retried.
    pub rejected: AtomicU64,
    pub retried: AtomicU64,
    /// "Too fast" answers.
    pub rate_limited: AtomicU64,
    /// Notifications dropped because they were older than `max_age_secs` when they could be sent.
    pub expired: AtomicU64,
    /// Alerts not queued: quiet hours, the channel's cooldown, a mute.
    pub quiet: AtomicU64,
    pub cooled: AtomicU64,
    pub muted: AtomicU64,
    last: Mutex<Option<LastResult>>,
}

/// A channel's last request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    pub at: DateTime<Utc>,
    /// `ok`, `rejected`, `rate_limited` or `failed`.
    pub outcome: &'static str,
    /// The service's `errcode` and `errmsg` (or the error), when not ok.
    pub code: Option<i64>,
    pub message: Option<String>,
}

impl ChannelStats {
    pub fn last(&self) -> Option<LastResult> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn record(&self, outcome: &Outcome) {
        let (name, code, message) = match outcome {
            Outcome::Ok => ("ok", None, None),
            Outcome::Rejected { code, message } => ("rejected", Some(*code), Some(message.clone())),
            Outcome::RateLimited { code, message } => ("rate_limited", Some(*code), Some(message.clone())),
            Outcome::Failed(e) => ("failed", None, Some(e.clone())),
        };
        let counter = match outcome {
            Outcome::Ok => &self.sent,
            Outcome::Rejected { .. } => &self.rejected,
            Outcome::RateLimited { .. } => &self.rate_limited,
            Outcome::Failed(_) => &self.retried,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastResult { at: Utc::now(), outcome: name, code, message });
    }
}

/// A channel's counters and last result as the `stats` message and the duty desk show them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChannelReport {
    pub id: String,
    pub kind: NotifyKind,
    /// Requests by result: accepted, refused for good, "too fast", failed and retried.
    pub ok_total: u64,
    pub rejected_total: u64,
    pub rate_limited_total: u64,
    pub failed_total: u64,
    /// Alerts delivered (alone or in one of `summaries_total` summaries), dropped as too old, or not
    /// queued (quiet hours, cooldown, muted).
    pub delivered_total: u64,
    pub summaries_total: u64,
    pub expired_total: u64,
    pub quiet_total: u64,
    pub cooldown_total: u64,
    pub muted_total: u64,
    /// The last request: when, how it ended and, when not ok, the service's `errcode` and `errmsg`.
    pub last: Option<LastReport>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LastReport {
    pub at: String,
    pub outcome: &'static str,
    pub code: Option<i64>,
    pub message: Option<String>,
}

/// A mute in force, for the reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MuteReport {
    pub rule: Option<String>,
    pub camera: Option<String>,
    pub until: String,
}

/// Every channel, the queue and the mutes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NotifyReport {
    pub channels: Vec<ChannelReport>,
    /// Notifications waiting in their queue, all channels.
    pub waiting: u64,
    pub mutes: Vec<MuteReport>,
}

/// A mute: alerts of `rule` (or every rule) from `camera` (or every camera) are not notified until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mute {
    pub rule: Option<String>,
    pub camera: Option<String>,
    pub until: DateTime<Utc>,
}

impl Mute {
    fn covers(&self, alert: &Alert, now: DateTime<Utc>) -> bool {
        now < self.until && self.rule.as_deref().is_none_or(|r| r == alert.rule) && self.camera.as_deref().is_none_or(|c| c == alert.camera)
    }
}

/// One configured channel, with its secrets read.
struct Channel {
    settings: Notify,
    key: Option<Secret>,
    secret: Option<Secret>,
    stats: Arc<ChannelStats>,
    /// When each (rule, camera) was last queued, for the channel's cooldown.
    cooled: Mutex<HashMap<(String, String), Instant>>,
}

impl Channel {
    /// Whether the channel takes `alert` at all (its filters).
    fn wants(&self, alert: &Alert) -> bool {
        let s = &self.settings;
        let level = alert.level.as_deref().unwrap_or("local");
        let severity = match alert.severity.as_ref() {
            "critical" => edge_config::Severity::Critical,
            "warning" => edge_config::Severity::Warning,
            _ => edge_config::Severity::Info,
        };
        // A camera's "back" message goes wherever its "gone" message went, whatever its own severity.
        let recovered = alert.health.as_ref().is_some_and(|h| h.state == crate::payload::HealthState::Cleared);
        s.enabled
            && (s.rules.is_empty() || s.rules.contains(&alert.rule))
            && (s.kinds.is_empty() || s.kinds.iter().any(|k| k == alert.kind.as_str()))
            && (recovered || severity >= s.min_severity)
            && (s.cameras.is_empty() || s.cameras.contains(&alert.camera))
            && (s.levels.is_empty() || s.levels.iter().any(|l| l == level))
    }

    fn in_quiet_hours(&self) -> bool {
        let (Some(from), Some(to)) = (self.settings.quiet_from, self.settings.quiet_to) else { return false };
        crate::rules::in_window(crate::rules::Now::current().local_minute, from.minutes(), to.minutes())
    }

    /// The channel's cooldown: whether (rule, camera) was queued within `cooldown_secs`; if not, starts it.
    fn cooling(&self, alert: &Alert) -> bool {
        let secs = self.settings.cooldown_secs;
        if secs == 0 || alert.health.is_some() {
            return false;
        }
        let mut cooled = self.cooled.lock().unwrap_or_else(|p| p.into_inner());
        let key = (alert.rule.clone(), alert.camera.clone());
        let now = Instant::now();
        if cooled.get(&key).is_some_and(|t| now.duration_since(*t) < Duration::from_secs(secs)) {
            return true;
        }
        cooled.insert(key, now);
        false
    }
}

/// The handle the sinks offer alerts to, and the desk and commands mute through. Cheap to clone.
#[derive(Clone)]
pub struct NotifyHandle {
    channels: Arc<Vec<Arc<Channel>>>,
    queue: OutboxHandle,
    mutes: Arc<Mutex<Vec<Mute>>>,
}

impl NotifyHandle {
    /// Queues `alert` on every channel that takes it now. Never blocks on a service.
    pub fn offer(&self, alert: &Alert) {
        let now = Utc::now();
        let mut messages = Vec::new();
        for channel in self.channels.iter() {
            if !channel.wants(alert) {
                continue;
            }
            let stats = &channel.stats;
            if self.is_muted(alert, now) {
                stats.muted.fetch_add(1, Ordering::Relaxed);
            } else if channel.in_quiet_hours() {
                stats.quiet.fetch_add(1, Ordering::Relaxed);
            } else if channel.cooling(alert) {
                stats.cooled.fetch_add(1, Ordering::Relaxed);
            } else if let Ok(bytes) = serde_json::to_vec(alert) {
                messages.push(Message::new(Kind::Alert, channel.settings.id.clone(), bytes));
            }
        }
        if messages.is_empty() {
            return;
        }
        if let Err(rejected) = self.queue.append_batch(messages) {
            tracing::error!(error = %rejected.reason, alerts = rejected.messages.len(), "notifications not queued");
        }
    }

    /// Mutes notifications of `rule` (or all) from `camera` (or all) for `minutes` (0 lifts matching mutes).
    pub fn mute(&self, rule: Option<String>, camera: Option<String>, minutes: u32) -> Option<DateTime<Utc>> {
        let now = Utc::now();
        let mut mutes = self.mutes.lock().unwrap_or_else(|p| p.into_inner());
        mutes.retain(|m| m.until > now && !(m.rule == rule && m.camera == camera));
        if minutes == 0 {
            tracing::info!(rule = rule.as_deref().unwrap_or("*"), camera = camera.as_deref().unwrap_or("*"), "notifications unmuted");
            return None;
        }
        let until = now + chrono::Duration::minutes(i64::from(minutes));
        tracing::info!(rule = rule.as_deref().unwrap_or("*"), camera = camera.as_deref().unwrap_or("*"), minutes, "notifications muted");
        mutes.push(Mute { rule, camera, until });
        Some(until)
    }

    /// The mutes in force.
    pub fn mutes(&self) -> Vec<Mute> {
        let now = Utc::now();
        self.mutes.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|m| m.until > now).cloned().collect()
    }

    fn is_muted(&self, alert: &Alert, now: DateTime<Utc>) -> bool {
        self.mutes.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|m| m.covers(alert, now))
    }

    /// Each channel's id, kind and counters.
    pub fn channels(&self) -> Vec<(String, NotifyKind, Arc<ChannelStats>)> {
        self.channels.iter().map(|c| (c.settings.id.clone(), c.settings.kind, c.stats.clone())).collect()
    }

    /// The channels' counters and last results, the queue and the mutes.
    pub fn report(&self) -> NotifyReport {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let channels = self
            .channels
            .iter()
            .map(|c| {
                let s = &c.stats;
                ChannelReport {
                    id: c.settings.id.clone(),
                    kind: c.settings.kind,
                    ok_total: load(&s.sent),
                    rejected_total: load(&s.rejected),
                    rate_limited_total: load(&s.rate_limited),
                    failed_total: load(&s.retried),
                    delivered_total: load(&s.delivered),
                    summaries_total: load(&s.summaries),
                    expired_total: load(&s.expired),
                    quiet_total: load(&s.quiet),
                    cooldown_total: load(&s.cooled),
                    muted_total: load(&s.muted),
                    last: s.last().map(|l| LastReport { at: crate::payload::timestamp(l.at), outcome: l.outcome, code: l.code, message: l.message }),
                }
            })
            .collect();
        let mutes = self.mutes().into_iter().map(|m| MuteReport { rule: m.rule, camera: m.camera, until: crate::payload::timestamp(m.until) }).collect();
        NotifyReport { channels, waiting: self.waiting(), mutes }
    }

    /// Notifications waiting, over all channels.
    pub fn waiting(&self) -> u64 {
        self.queue.outbox().stats().map_or(0, |s| s.depth)
    }
}

/// The running channels: stopped with [`Notifier::stop`].
pub struct Notifier {
    senders: crate::outbox::senders::QueueSenders,
}

/// What the channels need besides their settings.
pub struct Setup {
    pub state_dir: PathBuf,
    pub context: Context,
    pub snapshots: SnapshotStore,
}

/// Reads a secret given inline, in a file (first line) or in the environment; `what` names the setting.
pub(crate) fn read_secret(inline: Option<&Secret>, file: Option<&Path>, env: Option<&str>, what: &str) -> anyhow::Result<Option<Secret>> {
    if let Some(s) = inline {
        return Ok(Some(s.clone()));
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("{what}_file {}", path.display()))?;
        let line = text.lines().next().unwrap_or("").trim().to_string();
        anyhow::ensure!(!line.is_empty(), "{what}_file {}: empty", path.display());
        return Ok(Some(Secret::new(line)));
    }
    if let Some(name) = env {
        let value = std::env::var(name).map_err(|_| anyhow::anyhow!("{what}_env: environment variable {name} is not set"))?;
        return Ok(Some(Secret::new(value.trim())));
    }
    Ok(None)
}

impl Notifier {
    /// Opens the notification queue and starts a thread per enabled channel. `None` without channels.
    pub fn start(settings: &[Notify], setup: Setup, cancel: &CancellationToken) -> anyhow::Result<Option<(Notifier, NotifyHandle)>> {
        let enabled: Vec<(usize, &Notify)> = settings.iter().enumerate().filter(|(_, n)| n.enabled).collect();
        if enabled.is_empty() {
            return Ok(None);
        }
        let mut channels = Vec::new();
        for (i, n) in &enabled {
            let at = format!("notify[{i}].");
            let key = read_secret(n.key.as_ref(), n.key_file.as_deref(), n.key_env.as_deref(), &format!("{at}key"))?;
            let secret = read_secret(n.secret.as_ref(), n.secret_file.as_deref(), n.secret_env.as_deref(), &format!("{at}secret"))?;
            channels.push(Arc::new(Channel { settings: (*n).clone(), key, secret, stats: Arc::default(), cooled: Mutex::default() }));
        }
        let path = setup.state_dir.join("notify.redb");
        let outbox = Outbox::open(&path)?;
        let max_age_ms = enabled.iter().map(|(_, n)| n.max_age_secs).max().unwrap_or(3600) * 1000;
        let bounds = Bounds { max_bytes: QUEUE_MAX_BYTES, max_age_ms, snapshot_max_age_ms: max_age_ms, held_max_bytes: QUEUE_MAX_BYTES };
        let (writer, queue) = OutboxWriter::start(outbox, bounds)?;
        let cancel = cancel.child_token();
        let setup = Arc::new(setup);
        let mutes: Arc<Mutex<Vec<Mute>>> = Arc::default();
        let mut threads = Vec::new();
        for channel in &channels {
            let ca = match &channel.settings.ca_file {
                Some(p) => Some(std::fs::read(p).with_context(|| format!("notify {:?}: ca_file {}", channel.settings.id, p.display()))?),
                None => None,
            };
            let transport =
                Transport::new(Duration::from_secs(channel.settings.timeout_secs), ca.as_deref()).map_err(|e| anyhow::anyhow!("notify {:?}: ca_file: {e}", channel.settings.id))?;
            let worker = Worker {
                channel: channel.clone(),
                transport,
                queue: queue.clone(),
                setup: setup.clone(),
                mutes: mutes.clone(),
                cancel: cancel.clone(),
                tokens: f64::from(channel.settings.per_minute),
                refilled: Instant::now(),
                settled: Default::default(),
            };
            let name = format!("notify-{}", channel.settings.id);
            threads.push(std::thread::Builder::new().name(name.chars().take(15).collect()).spawn(move || worker.run()).context("cannot start a notification thread")?);
            tracing::info!(channel = %channel.settings.id, kind = channel.settings.kind.as_str(), "notification channel started: alerts it takes leave the checkpoint for this service");
        }
        let handle = NotifyHandle { channels: Arc::new(channels), queue, mutes };
        Ok(Some((Notifier { senders: crate::outbox::senders::QueueSenders::new(threads, writer, cancel) }, handle)))
    }

    /// Stops the channels (a request in flight ends within its timeout) and the queue's writer.
    pub fn stop(self, deadline: Duration) {
        self.senders.stop(deadline);
    }
}

/// One channel's sending loop.
struct Worker {
    channel: Arc<Channel>,
    transport: Transport,
    queue: OutboxHandle,
    setup: Arc<Setup>,
    mutes: Arc<Mutex<Vec<Mute>>>,
    cancel: CancellationToken,
    /// The token bucket: requests that may be made now.
    tokens: f64,
    refilled: Instant,
    /// Notifications handled: not sent again.
    settled: crate::outbox::senders::Settled,
}

/// A notification waiting in the queue.
struct Waiting {
    key: u64,
    created_ms: u64,
    alert: Alert,
}

impl Worker {
    fn run(mut self) {
        let mut retry = RETRY_FIRST;
        while !self.cancel.is_cancelled() {
            let waiting = self.waiting();
            if waiting.is_empty() {
                std::thread::sleep(POLL);
                continue;
            }
            match self.deliver(waiting) {
                Step::Done => retry = RETRY_FIRST,
                Step::Wait(d) => self.sleep(d),
                Step::Retry => {
                    self.sleep(retry);
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn sleep(&self, d: Duration) {
        crate::source::sleep_unless_cancelled(d, &self.cancel);
    }

    /// The channel's notifications, oldest first; expired ones and ones muted since are dropped (counted).
    fn waiting(&mut self) -> Vec<Waiting> {
        let id = self.channel.settings.id.clone();
        let id = &id;
        let (mut after, mut out, mut gone, mut seen) = (0u64, Vec::new(), Vec::new(), std::collections::BTreeSet::new());
        let max_age_ms = self.channel.settings.max_age_secs * 1000;
        let now = now_ms();
        let muted = |alert: &Alert| self.mutes.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|m| m.covers(alert, Utc::now()));
        while out.len() < BATCH {
            let Ok(batch) = self.queue.outbox().read_after(after, 256, 8 << 20) else { break };
            let Some(last) = batch.last().map(|(k, _)| *k) else { break };
            after = last;
            for (key, message) in batch {
                if message.topic != *id {
                    continue;
                }
                if self.settled.contains(key) {
                    seen.insert(key);
                    continue;
                }
                if now.saturating_sub(message.created_ms) > max_age_ms {
                    self.channel.stats.expired.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(channel = %id, age_s = now.saturating_sub(message.created_ms) / 1000, "notification dropped: older than max_age_secs");
                    gone.push(key);
                    continue;
                }
                match serde_json::from_slice::<Alert>(&message.payload) {
                    Ok(alert) if muted(&alert) => {
                        self.channel.stats.muted.fetch_add(1, Ordering::Relaxed);
                        gone.push(key);
                    }
                    Ok(alert) => out.push(Waiting { key, created_ms: message.created_ms, alert }),
                    Err(e) => {
                        tracing::error!(channel = %id, key, error = %e, "unreadable notification dropped");
                        gone.push(key);
                    }
                }
                if out.len() >= BATCH {
                    break;
                }
            }
        }
        // What was deleted since is gone from the queue: forget it.
        if out.len() < BATCH {
            self.settled.forget_gone(&seen);
        }
        self.ack(gone);
        out
    }

    /// Deletes handled notifications (and never sends them again, even before the deletion commits).
    fn ack(&mut self, keys: Vec<u64>) {
        if !self.settled.ack(&self.queue, keys) {
            tracing::warn!(channel = %self.channel.settings.id, "notification queue busy: delivered notifications are deleted later");
        }
    }

    fn refill(&mut self) {
        let per_minute = f64::from(self.channel.settings.per_minute);
        let elapsed = self.refilled.elapsed().as_secs_f64();
        self.refilled = Instant::now();
        self.tokens = (self.tokens + elapsed * per_minute / 60.0).min(per_minute);
    }

    /// Seconds until the bucket holds `n` requests.
    fn time_for(&self, n: f64) -> Duration {
        let per_s = f64::from(self.channel.settings.per_minute) / 60.0;
        Duration::from_secs_f64(((n - self.tokens).max(0.0) / per_s).clamp(0.05, 60.0))
    }

    /// Requests one alert takes on this channel.
    fn cost(&self, w: &Waiting) -> f64 {
        match self.channel.settings.kind {
            NotifyKind::Wecom if w.alert.event_id.is_some() => 2.0,
            _ => 1.0,
        }
    }

    /// Sends what is waiting: one by one while the bucket holds them all, else one summary.
    fn deliver(&mut self, waiting: Vec<Waiting>) -> Step {
        self.refill();
        let total: f64 = waiting.iter().map(|w| self.cost(w)).sum();
        if waiting.len() > 1 && total > self.tokens {
            if self.tokens < 1.0 {
                return Step::Wait(self.time_for(1.0));
            }
            return self.send_summary(waiting);
        }
        let Some(first) = waiting.into_iter().next() else { return Step::Done };
        let cost = self.cost(&first);
        if self.tokens < cost {
            return Step::Wait(self.time_for(cost));
        }
        let picture = match self.picture(&first) {
            Picture::Wait => return Step::Wait(Duration::from_millis(500)),
            Picture::Ready(jpeg) => Some(jpeg),
            Picture::None => None,
        };
        self.send_one(first, picture)
    }

    /// The picture of the alert's event, once it is kept (an event's picture is taken when it ends).
    fn picture(&self, w: &Waiting) -> Picture {
        if self.channel.settings.kind != NotifyKind::Wecom {
            return Picture::None;
        }
        let Some(event) = &w.alert.event_id else { return Picture::None };
        if let Some(jpeg) = self.setup.snapshots.find(event).and_then(|p| std::fs::read(p).ok()) {
            return Picture::Ready(jpeg);
        }
        if now_ms().saturating_sub(w.created_ms) < self.channel.settings.picture_wait_secs * 1000 {
            Picture::Wait
        } else {
            Picture::None
        }
    }

    /// One request; updates the bucket and the counters.
    fn request(&mut self, url: &str, body: &[u8], headers: &[(&str, String)]) -> Outcome {
        self.tokens -= 1.0;
        let outcome = self.transport.post(url, body, headers);
        self.channel.stats.record(&outcome);
        match &outcome {
            Outcome::Ok => {}
            Outcome::RateLimited { code, message } => {
                self.tokens = 0.0;
                tracing::warn!(channel = %self.channel.settings.id, code, message = %message, "the service says to slow down");
            }
            Outcome::Rejected { code, message } => {
                tracing::error!(channel = %self.channel.settings.id, code, message = %message, "the service refused the notification: it is not sent again")
            }
            Outcome::Failed(e) => tracing::warn!(channel = %self.channel.settings.id, error = %e, "notification not sent; retrying later"),
        }
        outcome
    }

    /// The endpoint with the service's query (never logged: it holds the key).
    fn url(&self) -> String {
        let s = &self.channel.settings;
        let base = s.url.as_deref().or(s.kind.default_url()).unwrap_or_default();
        let key = self.channel.key.as_ref().map(|k| url::form_urlencoded::byte_serialize(k.expose().as_bytes()).collect::<String>());
        match (s.kind, key) {
            (NotifyKind::Wecom, Some(k)) => format!("{base}?key={k}"),
            (NotifyKind::Dingtalk, Some(t)) => match &self.channel.secret {
                Some(secret) => {
                    let ts = now_ms();
                    format!("{base}?access_token={t}&timestamp={ts}&sign={}", send::dingtalk_sign(ts, secret.expose()))
                }
                None => format!("{base}?access_token={t}"),
            },
            _ => base.to_string(),
        }
    }

    /// The text request for `text` (an alert or a summary).
    fn text_body(&self, title: &str, text: &str) -> Vec<u8> {
        match self.channel.settings.kind {
            NotifyKind::Dingtalk => send::dingtalk_markdown(title, text),
            _ => send::wecom_markdown(text),
        }
    }

    fn post(&mut self, body: &[u8]) -> Outcome {
        let url = self.url();
        let headers: Vec<(&str, String)> = match (&self.channel.settings.kind, &self.channel.secret) {
            (NotifyKind::Webhook, Some(secret)) => {
                let ts = now_ms();
                vec![("X-Edge-Agent-Timestamp", ts.to_string()), ("X-Edge-Agent-Signature", send::webhook_signature(ts, body, secret.expose()))]
            }
            _ => Vec::new(),
        };
        self.request(&url, body, &headers)
    }

    /// Whether a request is settled: `Ok(true)` accepted, `Ok(false)` refused for good, or what to do
    /// before trying it again.
    fn settled(&self, outcome: Outcome) -> Result<bool, Step> {
        match outcome {
            Outcome::Ok => Ok(true),
            Outcome::Rejected { .. } => Ok(false),
            Outcome::RateLimited { .. } => Err(Step::Wait(self.time_for(1.0))),
            Outcome::Failed(_) => Err(Step::Retry),
        }
    }

    fn send_one(&mut self, w: Waiting, picture: Option<Vec<u8>>) -> Step {
        let ctx = &self.setup.context;
        let body = match self.channel.settings.kind {
            NotifyKind::Webhook => serde_json::to_vec(&w.alert).unwrap_or_default(),
            NotifyKind::Dingtalk => {
                let link = self.channel.settings.picture_url.as_ref().zip(w.alert.event_id.as_ref()).map(|(base, id)| format!("{}/api/snapshots/{id}", base.trim_end_matches('/')));
                self.text_body(&format::title(&w.alert), &format::markdown(&w.alert, ctx, link.as_deref()))
            }
            NotifyKind::Wecom => self.text_body("", &format::markdown(&w.alert, ctx, None)),
        };
        let outcome = self.post(&body);
        match self.settled(outcome) {
            Err(step) => return step,
            // Refused for good (counted as rejected): neither sent again nor followed by the picture.
            Ok(false) => {
                self.ack(vec![w.key]);
                return Step::Done;
            }
            Ok(true) => {}
        }
        self.channel.stats.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(jpeg) = picture.and_then(|j| send::fit_jpeg(&j, send::WECOM_IMAGE_MAX_BYTES)) {
            // The picture is best effort once the text is out: a failure is counted, not retried.
            let body = send::wecom_image(&jpeg);
            let _ = self.post(&body);
        }
        self.ack(vec![w.key]);
        Step::Done
    }

    fn send_summary(&mut self, waiting: Vec<Waiting>) -> Step {
        let alerts: Vec<Alert> = waiting.iter().map(|w| w.alert.clone()).collect();
        let body = match self.channel.settings.kind {
            NotifyKind::Webhook => serde_json::to_vec(&serde_json::json!({ "schema": "edge-agent/alert-summary/v1", "count": alerts.len(), "alerts": alerts })).unwrap_or_default(),
            _ => {
                let text = format::summary(&alerts, &self.setup.context);
                self.text_body(&format!("{} 条告警", alerts.len()), &text)
            }
        };
        let outcome = self.post(&body);
        match self.settled(outcome) {
            Err(step) => return step,
            Ok(false) => {}
            Ok(true) => {
                self.channel.stats.summaries.fetch_add(1, Ordering::Relaxed);
                self.channel.stats.delivered.fetch_add(alerts.len() as u64, Ordering::Relaxed);
                tracing::info!(channel = %self.channel.settings.id, alerts = alerts.len(), "a burst of alerts sent as one summary");
            }
        }
        self.ack(waiting.into_iter().map(|w| w.key).collect());
        Step::Done
    }
}

/// What the loop does next.
enum Step {
    Done,
    Wait(Duration),
    Retry,
}

enum Picture {
    Wait,
    Ready(Vec<u8>),
    None,
}
