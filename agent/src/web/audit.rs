//! The audit log: what people did at the duty desk — sign-ins, failed sign-ins (counted per address),
//! sign-outs, the first-run set-up, account changes and acknowledgements — one JSON line per record in
//! `{state_dir}/audit/YYYY-MM-DD.jsonl`, fsynced. Each record carries `prev`, the SHA-256 of the line
//! before it (across days), and `head` holds the hash of the last line, so a deleted, inserted or edited
//! line breaks the chain: `edge-agent audit verify` finds where. Retention removes whole old days; the
//! chain then starts at the oldest day kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::eventlog::EventLog;
use crate::payload::DispositionSource;

/// What a disposition says besides who and when (absent for a plain acknowledgement of an earlier version).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Disposal {
    /// The outcome's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DispositionSource>,
}

/// How long the audit log is kept.
pub const AUDIT_RETENTION_DAYS: u32 = 365;
/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Acknowledge,
    /// An alert was disposed of (outcome, note; `source`: the duty desk or the platform).
    Dispose,
    SignIn,
    /// Failed sign-ins from one address since the last such record (`count`); no user names.
    SignInFailures,
    /// An account kept out of reach of browsers that never signed in to it, after `count` failures from
    /// them (last from `address`); `by` names the account when it exists.
    SignInBlocked,
    SignOut,
    /// The first operator account was created through the set-up page.
    SetUp,
    /// The set-up code was invalidated after too many wrong attempts.
    SetUpLocked,
    UserAdded,
    UserRemoved,
    /// An operator muted the work-group notifications of `rule` (or all) from `camera` (or all) for
    /// `count` minutes (0: lifted the mute), from the duty desk.
    Mute,
    /// Someone watched a clip (`clip`; `alert`: the first alert it shows).
    ClipViewed,
    /// An admin changed the configuration file from the desk (`camera`; `detail`: what changed, camera
    /// addresses without passwords).
    ConfigChanged,
    RoleChanged,
    PasswordChanged,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub action: AuditAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who did it (for account changes: the account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The client's address (sign-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Dispositions: outcome, note, source.
    #[serde(flatten)]
    pub disposal: Disposal,
    pub at: String,
    /// SHA-256 (hex) of the previous line; filled in by [`AuditLog::append`].
    #[serde(default)]
    pub prev: String,
}

impl AuditRecord {
    pub fn new(action: AuditAction, at: DateTime<Utc>) -> Self {
        Self {
            action,
            alert: None,
            rule: None,
            camera: None,
            clip: None,
            detail: None,
            by: None,
            role: None,
            address: None,
            count: None,
            disposal: Disposal::default(),
            at: crate::payload::timestamp(at),
            prev: String::new(),
        }
    }
}

fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

/// The chained, fsynced audit log.
pub struct AuditLog {
    log: Arc<EventLog>,
    /// Hash of the last line written.
    last: Mutex<String>,
}

impl AuditLog {
    /// Opens the log in `state_dir/audit`, continuing the chain from the last line on disk.
    pub fn open(state_dir: &Path) -> Self {
        let log = Arc::new(EventLog::named(state_dir, "audit", AUDIT_RETENTION_DAYS));
        let last = day_files(log.dir()).last().and_then(|f| std::fs::read_to_string(f).ok()).and_then(|t| t.lines().last().map(hash)).unwrap_or_else(|| GENESIS.to_string());
        Self { log, last: Mutex::new(last) }
    }

    /// The day files, for retention and the duty desk's history.
    pub fn log(&self) -> &Arc<EventLog> {
        &self.log
    }

    /// Appends `record` chained to the previous line, fsynced, and updates `head`.
    pub fn append(&self, mut record: AuditRecord) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        record.prev = last.clone();
        let line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        let at = chrono::DateTime::parse_from_rfc3339(&record.at).map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc));
        self.log.append_synced(at, line.as_bytes())?;
        *last = hash(&line);
        crate::files::write_atomic(&self.log.dir().join("head"), format!("{last}\n").as_bytes())
    }

    /// Records from the last `days` days, oldest first.
    pub fn recent(&self, days: u32) -> Vec<AuditRecord> {
        self.log.recent_lines(Utc::now(), days).iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

/// The day files of an audit directory, oldest first.
fn day_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "jsonl")).collect()).unwrap_or_default();
    files.sort();
    files
}

/// Where the chain breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("{file}, line {line}: not an audit record ({reason})")]
    Unreadable { file: String, line: usize, reason: String },
    #[error("{file}, line {line}: the chain is broken: the line before it was edited, deleted or inserted")]
    Broken { file: String, line: usize },
    #[error("{file}: the last line does not match {head}: it was edited, or lines were removed from the end")]
    Head { file: String, head: String },
}

/// Checks the chain of every day file in `dir`; returns how many records it holds.
pub fn verify(dir: &Path) -> Result<usize, VerifyError> {
    let mut prev: Option<String> = None;
    let mut count = 0;
    let mut last_file = String::new();
    for file in day_files(dir) {
        last_file = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| VerifyError::Unreadable { file: last_file.clone(), line: 0, reason: e.to_string() })?;
        for (i, line) in text.lines().enumerate() {
            let record: AuditRecord = serde_json::from_str(line).map_err(|e| VerifyError::Unreadable { file: last_file.clone(), line: i + 1, reason: e.to_string() })?;
            // The oldest record kept anchors the chain (older days may have expired).
            if prev.as_ref().is_some_and(|p| *p != record.prev) {
                return Err(VerifyError::Broken { file: last_file.clone(), line: i + 1 });
            }
            prev = Some(hash(line));
            count += 1;
        }
    }
    let head_path = dir.join("head");
    if let (Some(last), Ok(head)) = (prev, std::fs::read_to_string(&head_path)) {
        if head.trim() != last {
            return Err(VerifyError::Head { file: last_file, head: head_path.display().to_string() });
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign_in(log: &AuditLog, who: &str, at: &str) {
        let mut r = AuditRecord::new(AuditAction::SignIn, at.parse().unwrap_or_default());
        r.by = Some(who.into());
        log.append(r).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn the_chain_verifies_across_days_and_reopening_and_an_edit_breaks_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = AuditLog::open(dir.path());
        sign_in(&log, "duty", "2026-11-27T22:00:00Z");
        sign_in(&log, "duty", "2026-11-28T08:00:00Z");
        let log = AuditLog::open(dir.path());
        sign_in(&log, "guest", "2026-11-28T09:00:00Z");
        let audit = dir.path().join("audit");
        assert_eq!(verify(&audit), Ok(3));
        let day = audit.join("2026-11-28.jsonl");
        let text = std::fs::read_to_string(&day).unwrap_or_default();
        std::fs::write(&day, text.replacen("\"duty\"", "\"wang\"", 1)).unwrap_or_default();
        assert_eq!(verify(&audit), Err(VerifyError::Broken { file: day.display().to_string(), line: 2 }));
        // Editing the last line is caught by the head.
        std::fs::write(&day, text.replace("\"guest\"", "\"other\"")).unwrap_or_default();
        assert!(matches!(verify(&audit), Err(VerifyError::Head { .. })));
    }
}
