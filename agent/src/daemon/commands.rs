//! Running the platform's commands (`crate::control::command`) against the running agent, and queuing
//! their results through the outbox.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::topology::Fleet;
use crate::control::command::{self, Action, Answered, Command, CommandResult, Status};
use crate::control::Policy;
use crate::mqtt::MqttLink;
use crate::outbox::{Kind, Message, OutboxHandle};
use crate::topics::Topics;

/// How long a `snapshot` waits for the camera's next analysed frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(10);

/// What commands act on.
pub struct Context<'a> {
    pub fleet: &'a mut Fleet,
    pub outbox: &'a OutboxHandle,
    pub link: Option<&'a MqttLink>,
    pub policy: &'a Policy,
    pub topics: &'a Topics,
    pub site: &'a str,
    pub started: Instant,
    pub disposer: Option<&'a crate::web::Disposer>,
    pub storage: &'a crate::storage::Storage,
}

/// Answers one command message: runs it unless it was answered before (then the same result again),
/// expired or refused; the result goes to the outbox.
pub async fn handle(bytes: &[u8], trusted_keys: &[String], answered: &mut Answered, mut ctx: Context<'_>) {
    let result = match command::parse(bytes, trusted_keys) {
        Err((id, name, why)) => {
            tracing::warn!(command = name.as_deref().unwrap_or("-"), id = %id, reason = %why, "command refused");
            CommandResult::new(&id, ctx.site, name.as_deref(), Status::Rejected, why, None)
        }
        Ok(cmd) => match answered.get(&cmd.id) {
            Some(previous) => {
                tracing::info!(id = %cmd.id, "command already answered: sending the same result again");
                queue(ctx.outbox, ctx.topics, previous);
                return;
            }
            None if cmd.expires_at <= chrono::Utc::now() => CommandResult::new(&cmd.id, ctx.site, Some(cmd.action.as_str()), Status::Expired, "expired before it arrived", None),
            None => run(&cmd, &mut ctx).await,
        },
    };
    queue(ctx.outbox, ctx.topics, &result);
    answered.remember(result);
}

fn queue(outbox: &OutboxHandle, topics: &Topics, result: &CommandResult) {
    let Ok(bytes) = serde_json::to_vec(result) else { return };
    if let Err(rejected) = outbox.append(Message::new(Kind::Result, topics.results(), bytes)) {
        tracing::error!(id = %result.id, error = %rejected.reason, "command result not queued");
    }
}

async fn run(cmd: &Command, ctx: &mut Context<'_>) -> CommandResult {
    let (site, topics, outbox) = (ctx.site, ctx.topics, ctx.outbox);
    let done = |detail: String, data: Option<Value>| CommandResult::new(&cmd.id, site, Some(cmd.action.as_str()), Status::Done, detail, data);
    let failed = |detail: String| CommandResult::new(&cmd.id, site, Some(cmd.action.as_str()), Status::Failed, detail, None);
    tracing::info!(id = %cmd.id, command = cmd.action.as_str(), camera = cmd.camera.as_deref().unwrap_or("-"), "command from the platform");
    let camera = cmd.camera.as_deref().unwrap_or_default();
    match cmd.action {
        Action::Snapshot => {
            let Some(record) = ctx.fleet.record(camera) else { return failed(format!("no running camera {camera:?}")) };
            let frame = record.request_frame();
            match tokio::time::timeout(SNAPSHOT_WAIT, frame).await {
                Ok(Ok(jpeg)) => {
                    let topic = topics.snapshot(camera, &cmd.id);
                    let bytes = jpeg.len();
                    match outbox.append(Message::new(Kind::Snapshot, topic.clone(), jpeg)) {
                        Ok(()) => done(format!("snapshot of {camera} queued"), Some(json!({"topic": topic, "bytes": bytes, "content_type": "image/jpeg"}))),
                        Err(rejected) => failed(format!("snapshot not queued: {}", rejected.reason)),
                    }
                }
                _ => failed(format!("camera {camera} delivered no frame within {} s", SNAPSHOT_WAIT.as_secs())),
            }
        }
        Action::RestartCamera => match ctx.fleet.restart(camera).await {
            Ok(()) => done(format!("camera {camera} restarted"), None),
            Err(e) => failed(e),
        },
        Action::Republish => match ctx.link {
            Some(link) => {
                link.republish();
                link.request_stats();
                done("status, policy report and stats published".into(), None)
            }
            None => failed("no broker configured".into()),
        },
        Action::Diagnostics => done("diagnostics".into(), Some(diagnostics(ctx.fleet, outbox, ctx.link, ctx.policy, ctx.started, ctx.storage))),
        Action::DisposeAlert => dispose(cmd, ctx.disposer, site).await,
        Action::Clip => match &ctx.fleet.deps.local.clips {
            None => failed("clips are off (clips.enabled)".into()),
            Some(clips) => {
                let id = cmd.clip.as_deref().unwrap_or_default();
                match clips.send(id, outbox, topics) {
                    Ok(data) => done(format!("clip {id} queued in {} chunk(s)", data["chunks"]), Some(data)),
                    Err(why) => failed(why),
                }
            }
        },
        Action::Mute => match &ctx.fleet.deps.local.notify {
            None => failed("no notification channel is configured".into()),
            Some(notify) => {
                let what = format!("{} on {}", cmd.rule.as_deref().unwrap_or("every rule"), cmd.camera.as_deref().unwrap_or("every camera"));
                match notify.mute(cmd.rule.clone(), cmd.camera.clone(), cmd.minutes.unwrap_or(0)) {
                    Some(until) => done(format!("notifications of {what} muted"), Some(json!({ "until": crate::payload::timestamp(until) }))),
                    None => done(format!("notifications of {what} unmuted"), None),
                }
            }
        },
    }
}

/// `dispose_alert`: the platform's disposition, shown on the duty desk as the platform's.
async fn dispose(cmd: &Command, disposer: Option<&crate::web::Disposer>, site: &str) -> CommandResult {
    let result = |status, detail: String, data| CommandResult::new(&cmd.id, site, Some("dispose_alert"), status, detail, data);
    let Some(disposer) = disposer else { return result(Status::Failed, "the duty desk is off on this checkpoint".into(), None) };
    let (alert, outcome) = (cmd.alert.as_deref().unwrap_or_default(), cmd.outcome.as_deref().unwrap_or_default());
    let by = cmd.by.as_deref().unwrap_or("platform");
    match disposer.dispose(alert, outcome, cmd.note.as_deref(), crate::web::DisposedBy::Platform { by }).await {
        Ok(ack) => result(Status::Done, format!("alert {alert} disposed of"), serde_json::to_value(&ack).ok()),
        Err(e @ (crate::web::DisposeError::UnknownOutcome(_) | crate::web::DisposeError::BadNote)) => result(Status::Rejected, e.to_string(), None),
        Err(e) => result(Status::Failed, e.to_string(), None),
    }
}

fn diagnostics(fleet: &Fleet, outbox: &OutboxHandle, link: Option<&MqttLink>, policy: &Policy, started: Instant, storage: &crate::storage::Storage) -> Value {
    let cameras: Vec<Value> = fleet
        .records()
        .iter()
        .map(|r| {
            let h = r.health();
            let (fps_in, fps_analysed) = r.rates();
            json!({"id": r.id, "state": h.state.as_str(), "since": crate::payload::timestamp(h.since), "last_error": h.last_error, "fps_in": crate::payload::round2(fps_in), "fps_analysed": crate::payload::round2(fps_analysed)})
        })
        .collect();
    let o = outbox.outbox().stats().unwrap_or_default();
    let dead: Vec<Value> = outbox
        .outbox()
        .dead_letters(10)
        .unwrap_or_default()
        .into_iter()
        .map(|d| json!({"topic": d.message.topic, "bytes": d.message.payload.len(), "reason": d.reason, "at": chrono::DateTime::<chrono::Utc>::from_timestamp_millis(d.dead_at_ms as i64).map(crate::payload::timestamp)}))
        .collect();
    let report = policy.reported(chrono::Utc::now());
    let policy_versions: serde_json::Map<String, Value> = report.levels.iter().map(|(l, r)| (l.to_string(), json!(r.version))).collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "onnxruntime": models::runtime::library_path().map(|p| p.display().to_string()),
        "uptime_s": crate::payload::round2(started.elapsed().as_secs_f64()),
        "cameras": cameras,
        "outbox": {
            "depth": o.depth,
            "bytes": o.bytes,
            "oldest_age_s": o.oldest_age_ms.map(|ms| ms as f64 / 1000.0),
            "held": outbox.counters().held_messages.load(std::sync::atomic::Ordering::Relaxed),
            "dead_letters_total": o.dead_letters_total,
            "dead_letters": dead,
        },
        "mqtt_connected": link.is_some_and(MqttLink::is_connected),
        "disk_free_bytes": crate::storage::free_bytes(storage.dir()).ok(),
        "storage": crate::payload::StorageStatus::from(&storage.report()),
        "policy": policy_versions,
    })
}
