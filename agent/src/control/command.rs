//! Commands from the platform on `{prefix}/{site}/commands` (not retained): parsed strictly, refused when
//! expired, answered once per id (a repeated id gets the same result again and is never executed twice),
//! signed like policy when `control.trusted_keys` is set. Results go through the outbox to
//! `{prefix}/{site}/results`, so a result is not lost when the uplink drops right after.

use std::collections::VecDeque;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const COMMAND_SCHEMA: &str = "edge-agent/command/v1";
pub const RESULT_SCHEMA: &str = "edge-agent/result/v1";
/// Largest command accepted.
pub const MAX_COMMAND_BYTES: usize = 64 << 10;
/// Results remembered (for repeated ids).
const REMEMBERED: usize = 1024;

/// What the platform can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A current JPEG of one camera (`args.camera`), published like event snapshots.
    Snapshot,
    /// Stop and start one camera's pipeline (`args.camera`).
    RestartCamera,
    /// Publish the status and the policy report now.
    Republish,
    /// Versions, uptime, cameras, outbox, disk, policy versions.
    Diagnostics,
    /// Record a disposition decided at the platform (`args.alert`, `args.outcome`, optional `args.note`
    /// and `args.by`); the duty desk shows it as disposed by the platform.
    DisposeAlert,
    /// Silence the work-group notifications for `args.minutes` (0 lifts it): of one rule (`args.rule`),
    /// one camera (`args.camera`), or all. Alerts still reach MQTT and the duty desk.
    Mute,
    /// Send a kept clip (`args.clip`, the id its `clips` message gave) through the outbox in chunks on
    /// `{prefix}/{site}/{camera}/clips/{clip}/{n}`; the result says how many and the whole file's SHA-256.
    Clip,
}

impl Action {
    /// The command's name, as in `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Snapshot => "snapshot",
            Action::RestartCamera => "restart_camera",
            Action::Republish => "republish",
            Action::Diagnostics => "diagnostics",
            Action::DisposeAlert => "dispose_alert",
            Action::Mute => "mute",
            Action::Clip => "clip",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    schema: String,
    id: String,
    command: String,
    #[serde(default)]
    args: serde_json::Map<String, Value>,
    expires_at: String,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    signed_by: Option<String>,
}

/// A command that parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: String,
    pub action: Action,
    /// `args.camera`, for the commands that take one.
    pub camera: Option<String>,
    /// `dispose_alert`: the alert, the outcome, a note and who decided.
    pub alert: Option<String>,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub by: Option<String>,
    /// `mute`: which rule (all when absent) and for how long.
    pub rule: Option<String>,
    pub minutes: Option<u32>,
    /// `clip`: which clip.
    pub clip: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Done,
    Failed,
    Rejected,
    Expired,
}

/// `{prefix}/{site}/results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandResult {
    pub schema: String,
    pub id: String,
    pub site: String,
    pub command: Option<String>,
    pub status: Status,
    pub detail: String,
    pub at: String,
    /// What the command produced: the snapshot's topic, the diagnostics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl CommandResult {
    pub fn new(id: &str, site: &str, command: Option<&str>, status: Status, detail: impl Into<String>, data: Option<Value>) -> Self {
        Self {
            schema: RESULT_SCHEMA.into(),
            id: id.into(),
            site: site.into(),
            command: command.map(str::to_string),
            status,
            detail: detail.into(),
            at: crate::payload::now(),
            data,
        }
    }
}

/// Parses a command; `Err((id, why))` when it is refused (the id, if the message had one, to answer).
pub fn parse(bytes: &[u8], trusted_keys: &[String]) -> Result<Command, (String, Option<String>, String)> {
    if bytes.len() > MAX_COMMAND_BYTES {
        return Err((String::new(), None, format!("{} bytes, at most {MAX_COMMAND_BYTES} accepted", bytes.len())));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| (String::new(), None, format!("not JSON: {e}")))?;
    let id = value["id"].as_str().unwrap_or_default().chars().take(64).collect::<String>();
    let name = value["command"].as_str().map(str::to_string);
    let refuse = |why: String| (id.clone(), name.clone(), why);
    let raw: Raw = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        refuse(format!("{path}: {}", e.into_inner()))
    })?;
    if !trusted_keys.is_empty() {
        super::document::verify(&value, raw.signature.as_deref(), raw.signed_by.as_deref(), trusted_keys).map_err(refuse)?;
    }
    if raw.schema != COMMAND_SCHEMA {
        return Err(refuse(format!("schema: {:?}: expected {COMMAND_SCHEMA:?}", raw.schema)));
    }
    // The id names the topic a `snapshot` is published on: it must be one topic level.
    edge_config::check_topic_level(&raw.id).map_err(|why| refuse(format!("id: {why}")))?;
    let action: Action = serde_json::from_value(Value::String(raw.command.clone()))
        .map_err(|_| refuse(format!("command: unknown command {:?} (snapshot, restart_camera, republish, diagnostics, dispose_alert, mute, clip)", raw.command)))?;
    let expires_at = DateTime::parse_from_rfc3339(&raw.expires_at).map_err(|_| refuse(format!("expires_at: {:?} is not an RFC 3339 time", raw.expires_at)))?.with_timezone(&Utc);
    let arg = |k: &str| raw.args.get(k).and_then(Value::as_str).map(str::to_string);
    let (allowed, required): (&[&str], &[&str]) = match action {
        Action::Snapshot | Action::RestartCamera => (&["camera"], &["camera"]),
        Action::DisposeAlert => (&["alert", "outcome", "note", "by"], &["alert", "outcome"]),
        Action::Republish | Action::Diagnostics => (&[], &[]),
        Action::Mute => (&["rule", "camera", "minutes"], &[]),
        Action::Clip => (&["clip"], &["clip"]),
    };
    if let Some(k) = raw.args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(refuse(format!("args.{k}: unknown argument for {}", raw.command)));
    }
    if let Some(k) = required.iter().find(|k| arg(k).is_none()) {
        return Err(refuse(format!("args.{k}: required (a string)")));
    }
    // A clip id is a topic level of its chunks' topics.
    if let Some(clip) = arg("clip") {
        edge_config::check_topic_level(&clip).map_err(|why| refuse(format!("args.clip: {why}")))?;
    }
    // A camera id is a topic level of the snapshot's topic.
    if let Some(camera) = arg("camera") {
        edge_config::check_camera_id(&camera).map_err(|why| refuse(format!("args.camera: {camera:?} {why}")))?;
    }
    let minutes = match (action, raw.args.get("minutes")) {
        (Action::Mute, Some(v)) => Some(v.as_u64().filter(|m| *m <= 1440).ok_or_else(|| refuse(format!("args.minutes: {v}: a whole number of minutes, 0 to 1440")))? as u32),
        (Action::Mute, None) => return Err(refuse("args.minutes: required (a whole number of minutes, 0 lifts the mute)".into())),
        _ => None,
    };
    Ok(Command {
        id: raw.id,
        action,
        camera: arg("camera"),
        alert: arg("alert"),
        outcome: arg("outcome"),
        note: arg("note"),
        by: arg("by"),
        rule: arg("rule"),
        minutes,
        clip: arg("clip"),
        expires_at,
    })
}

/// Results already given, by id, kept across restarts in `{state_dir}/commands.json`.
pub struct Answered {
    file: PathBuf,
    results: VecDeque<CommandResult>,
}

impl Answered {
    pub fn load(state_dir: &std::path::Path) -> Self {
        let file = state_dir.join("commands.json");
        let results = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Self { file, results }
    }

    pub fn get(&self, id: &str) -> Option<&CommandResult> {
        self.results.iter().find(|r| r.id == id)
    }

    pub fn remember(&mut self, result: CommandResult) {
        if result.id.is_empty() {
            return;
        }
        self.results.push_back(result);
        while self.results.len() > REMEMBERED {
            self.results.pop_front();
        }
        let written = serde_json::to_vec(&self.results).map_err(std::io::Error::other).and_then(|b| crate::files::write_atomic(&self.file, &b));
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot keep the command results in the state directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(body: &str) -> Vec<u8> {
        format!(r#"{{"schema":"edge-agent/command/v1","id":"c1","expires_at":"2099-01-01T00:00:00Z",{body}}}"#).into_bytes()
    }

    #[test]
    fn commands_are_parsed_strictly() {
        let c = parse(&cmd(r#""command":"snapshot","args":{"camera":"gate"}"#), &[]).unwrap();
        assert_eq!((c.action, c.camera.as_deref()), (Action::Snapshot, Some("gate")));
        assert_eq!(parse(&cmd(r#""command":"diagnostics""#), &[]).unwrap().action, Action::Diagnostics);
        let refused = |body: &str| parse(&cmd(body), &[]).unwrap_err();
        assert!(refused(r#""command":"format_disk""#).2.contains("unknown command"));
        assert!(refused(r#""command":"snapshot""#).2.contains("args.camera"));
        assert!(refused(r#""command":"republish","args":{"x":1}"#).2.contains("args.x"));
        assert!(refused(r#""command":"republish","extra":1"#).2.contains("unknown field"));
        let (id, name, _) = refused(r#""command":"format_disk""#);
        assert_eq!((id.as_str(), name.as_deref()), ("c1", Some("format_disk")));
        assert!(parse(b"{", &[]).is_err());
        // The id and the camera become topic levels: wildcards, separators and excess length are refused.
        let with_id = |id: &str| format!(r#"{{"schema":"edge-agent/command/v1","id":{},"expires_at":"2099-01-01T00:00:00Z","command":"republish"}}"#, Value::String(id.into()));
        for (id, why) in [("a#b", "'#'"), ("a+b", "'+'"), ("a/b", "'/'"), ("a\u{0}b", "'\\0'")] {
            let (answered_id, _, reason) = parse(with_id(id).as_bytes(), &[]).unwrap_err();
            assert!(reason.starts_with("id: ") && reason.contains(why), "{id:?}: {reason}");
            assert_eq!(answered_id, id, "the result names the id it answers");
        }
        let long = "x".repeat(200);
        let (answered_id, _, reason) = parse(with_id(&long).as_bytes(), &[]).unwrap_err();
        assert!(reason.contains("200 bytes long, at most 64"), "{reason}");
        assert_eq!(answered_id.len(), 64, "the result carries the first 64 characters");
        assert!(refused(r#""command":"snapshot","args":{"camera":"gate/#"}"#).2.starts_with("args.camera: "));
        assert!(parse(&vec![b' '; MAX_COMMAND_BYTES + 1], &[]).is_err());
    }

    #[test]
    fn signed_commands_need_a_trusted_key() {
        let (secret, public) = super::super::keygen();
        let signed = super::super::sign(&cmd(r#""command":"republish""#), &secret).unwrap();
        assert!(parse(&signed, std::slice::from_ref(&public)).is_ok());
        assert!(parse(&cmd(r#""command":"republish""#), std::slice::from_ref(&public)).unwrap_err().2.contains("not signed"));
    }

    #[test]
    fn answered_results_are_remembered_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Answered::load(dir.path());
        a.remember(CommandResult::new("c1", "a/b/c/d/e", Some("republish"), Status::Done, "ok", None));
        let again = Answered::load(dir.path());
        assert_eq!(again.get("c1").map(|r| r.status), Some(Status::Done));
        assert!(again.get("c2").is_none());
    }
}
