//! Policy from the platform: one retained document per grid level (city, district, town, village,
//! checkpoint) on `{prefix}/policy/{city}[/{district}[/{town}[/{village}[/{checkpoint}]]]]`, merged with the
//! local config and applied without a restart, persisted so a checkpoint that boots with the uplink down
//! screens against the lists it last received, and reported back on `{prefix}/{site}/policy` (retained).
//!
//! Design: [`Policy`] is a state machine without I/O besides its own files: `offer(level, bytes)` decides
//! (applied, rejected with path errors, stale) and returns the merged config to apply; the daemon applies it
//! like a reload and publishes [`Policy::reported`]. Rules from a level are renamed `{level}:{id}` so levels
//! cannot clash with each other or the local rules, and alerts carry their level and document version.
//! Camera switches (`enabled`, `detect_fps`, `plates`) apply to this checkpoint's cameras, the most specific
//! level last.

pub mod command;
pub mod document;

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use edge_config::{Config, Issue, Site};
use serde::Serialize;

use crate::rules::Provenance;
pub use document::{canonical, keygen, parse, public_key, sign, CameraSwitches, Document, Refused, MAX_DOCUMENT_BYTES, POLICY_SCHEMA};

/// `schema` of the reported document.
pub const REPORTED_SCHEMA: &str = "edge-agent/policy-reported/v1";

/// A level of the grid a policy document comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    City,
    District,
    Town,
    Village,
    Checkpoint,
}

impl Level {
    pub const ALL: [Level; 5] = [Level::City, Level::District, Level::Town, Level::Village, Level::Checkpoint];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::City => "city",
            Level::District => "district",
            Level::Town => "town",
            Level::Village => "village",
            Level::Checkpoint => "checkpoint",
        }
    }

    /// `{prefix}/policy/` and this site's path down to this level.
    pub fn topic(self, prefix: &str, site: &Site) -> String {
        let levels = site.levels();
        let path: Vec<&str> = levels[..=self as usize].iter().map(|(_, v)| *v).collect();
        format!("{prefix}/policy/{}", path.join("/"))
    }
}

/// What happened to the last document of a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// No document yet.
    None,
    Applied,
    /// The last one was invalid or not trusted: the previous one (if any) stays in force.
    Rejected,
    /// The last one had an old or equal version and was ignored.
    Stale,
    /// The platform withdrew the document (an empty retained message).
    Withdrawn,
}

/// One level's state, as reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelReport {
    /// The version in force (`null`: none).
    pub version: Option<u64>,
    pub status: Outcome,
    pub issued_by: Option<String>,
    pub applied_at: Option<String>,
    /// The version of the last document that was rejected or stale.
    pub last_version: Option<u64>,
    /// Problems of the last rejected document, `path: message`.
    pub errors: Vec<String>,
    /// Watch-list entries of the document in force whose `until` has passed.
    pub expired_entries: usize,
}

impl LevelReport {
    fn empty() -> Self {
        Self { version: None, status: Outcome::None, issued_by: None, applied_at: None, last_version: None, errors: Vec::new(), expired_entries: 0 }
    }
}

/// The retained `{prefix}/{site}/policy` document.
#[derive(Debug, Clone, Serialize)]
pub struct Reported {
    pub schema: &'static str,
    pub site: String,
    pub ts: String,
    pub levels: BTreeMap<&'static str, LevelReport>,
    /// Ids of every rule in force, local ones as configured, the platform's as `{level}:{id}`.
    pub rules: Vec<String>,
}

/// What an offer leads to.
#[derive(Debug)]
pub enum Decision {
    /// Apply this config (local config merged with every level in force), with each rule's provenance.
    Apply(Box<Config>, Vec<Option<Provenance>>),
    /// Nothing changes (rejected, stale).
    Keep,
}

/// The policy of every level, with the local config it merges into.
pub struct Policy {
    local: Config,
    dir: PathBuf,
    in_force: BTreeMap<Level, Document>,
    reports: BTreeMap<Level, LevelReport>,
}

impl Policy {
    /// Starts from the local config and the documents persisted in `{state_dir}/policy`; documents that no
    /// longer parse, verify or merge are reported as rejected and left out.
    pub fn load(local: Config) -> Self {
        let dir = local.storage.state_dir.join("policy");
        let mut policy = Self { local, dir, in_force: BTreeMap::new(), reports: Level::ALL.iter().map(|l| (*l, LevelReport::empty())).collect() };
        for level in Level::ALL {
            let Ok(bytes) = std::fs::read(policy.file(level)) else { continue };
            match policy.check(level, &bytes) {
                Ok(doc) => {
                    tracing::info!(level = level.as_str(), version = doc.version, "policy restored from the state directory");
                    policy.accept(level, doc, false);
                }
                Err(refused) => policy.reject(level, None, &refused.issues()),
            }
        }
        policy
    }

    fn file(&self, level: Level) -> PathBuf {
        self.dir.join(format!("{}.json", level.as_str()))
    }

    /// Parses, verifies and test-merges a document for `level`.
    fn check(&self, level: Level, bytes: &[u8]) -> Result<Document, Refused> {
        let doc = parse(bytes, &self.local.control.trusted_keys)?;
        let mut trial = self.in_force.clone();
        trial.insert(level, doc.clone());
        let (merged, _) = merge(&self.local, &trial);
        let issues = edge_config::validate(&merged);
        let local_rules = self.local.rules.len();
        let ours: Vec<Issue> = issues.into_iter().filter_map(|i| map_issue(i, level, &trial, local_rules, &merged)).collect();
        if ours.is_empty() {
            Ok(doc)
        } else {
            Err(Refused::Invalid(ours))
        }
    }

    fn accept(&mut self, level: Level, doc: Document, persist: bool) {
        if persist {
            if let Err(e) = crate::files::write_atomic(&self.file(level), &doc.bytes) {
                tracing::error!(level = level.as_str(), error = %e, "cannot keep the policy document in the state directory");
            }
        }
        let report = LevelReport {
            version: Some(doc.version),
            status: Outcome::Applied,
            issued_by: Some(doc.issued_by.clone()),
            applied_at: Some(crate::payload::now()),
            last_version: None,
            errors: Vec::new(),
            expired_entries: 0,
        };
        self.reports.insert(level, report);
        self.in_force.insert(level, doc);
    }

    fn reject(&mut self, level: Level, version: Option<u64>, issues: &[Issue]) {
        let r = self.reports.entry(level).or_insert_with(LevelReport::empty);
        r.status = Outcome::Rejected;
        r.last_version = version;
        r.errors = issues.iter().map(ToString::to_string).collect();
    }

    /// A document (or an empty withdrawal) arrived for `level`.
    pub fn offer(&mut self, level: Level, bytes: &[u8]) -> Decision {
        if bytes.is_empty() {
            if self.in_force.remove(&level).is_none() {
                return Decision::Keep;
            }
            let _ = std::fs::remove_file(self.file(level));
            let last = self.reports.get(&level).and_then(|r| r.version);
            self.reports.insert(level, LevelReport { status: Outcome::Withdrawn, last_version: last, ..LevelReport::empty() });
            tracing::warn!(level = level.as_str(), "policy withdrawn by the platform");
            return self.decision();
        }
        let in_force = self.in_force.get(&level).map(|d| d.version);
        match self.check(level, bytes) {
            Ok(doc) if in_force.is_some_and(|v| doc.version <= v) => {
                tracing::info!(level = level.as_str(), version = doc.version, in_force = in_force.unwrap_or_default(), "stale policy document ignored");
                let r = self.reports.entry(level).or_insert_with(LevelReport::empty);
                r.status = Outcome::Stale;
                r.last_version = Some(doc.version);
                r.errors.clear();
                Decision::Keep
            }
            Ok(doc) => {
                tracing::info!(level = level.as_str(), version = doc.version, issued_by = %doc.issued_by, rules = doc.rules.len(), "policy applied");
                self.accept(level, doc, true);
                self.decision()
            }
            Err(refused) => {
                let version = serde_json::from_slice::<serde_json::Value>(bytes).ok().and_then(|v| v["version"].as_u64());
                let issues = refused.issues();
                for issue in &issues {
                    tracing::warn!(level = level.as_str(), "policy rejected: {issue}");
                }
                self.reject(level, version, &issues);
                Decision::Keep
            }
        }
    }

    /// The local config changed (reload): merges again and returns the config in force. Levels that no
    /// longer fit are dropped and reported.
    pub fn set_local(&mut self, local: Config) -> (Config, Vec<Option<Provenance>>) {
        self.local = local;
        for level in Level::ALL {
            let Some(doc) = self.in_force.remove(&level) else { continue };
            match self.check(level, &doc.bytes) {
                Ok(doc) => {
                    self.in_force.insert(level, doc);
                }
                Err(refused) => self.reject(level, None, &refused.issues()),
            }
        }
        self.effective()
    }

    /// The config in force now and the provenance of its rules.
    pub fn effective(&self) -> (Config, Vec<Option<Provenance>>) {
        merge(&self.local, &self.in_force)
    }

    /// [`Policy::effective`], as a decision to apply.
    pub fn decision(&self) -> Decision {
        let (merged, provenance) = self.effective();
        Decision::Apply(Box::new(merged), provenance)
    }

    /// The reported document, at `now` (expired watch-list entries counted).
    pub fn reported(&self, now: DateTime<Utc>) -> Reported {
        self.report_source().at(now)
    }

    /// What the report is made from, apart from the time: the report is built when it is sent, so its
    /// `ts` and expired entries are those of that moment.
    pub fn report_source(&self) -> ReportSource {
        let mut levels = BTreeMap::new();
        let mut untils = BTreeMap::new();
        for level in Level::ALL {
            levels.insert(level.as_str(), self.reports.get(&level).cloned().unwrap_or_else(LevelReport::empty));
            untils.insert(level.as_str(), self.in_force.get(&level).map(entry_untils).unwrap_or_default());
        }
        let (merged, _) = merge(&self.local, &self.in_force);
        ReportSource { site: self.local.site.path(), levels, untils, rules: merged.rules.iter().map(|r| r.id.clone()).collect() }
    }
}

/// The policy report without its time: [`ReportSource::at`] makes the document for a moment.
#[derive(Debug, Clone)]
pub struct ReportSource {
    site: String,
    levels: BTreeMap<&'static str, LevelReport>,
    /// The `until` of every watch-list entry in force, per level.
    untils: BTreeMap<&'static str, Vec<DateTime<Utc>>>,
    rules: Vec<String>,
}

impl ReportSource {
    /// The report as of `now`: entries whose `until` has passed by then are counted as expired.
    pub fn at(&self, now: DateTime<Utc>) -> Reported {
        let mut levels = self.levels.clone();
        for (level, r) in levels.iter_mut() {
            r.expired_entries = self.untils.get(level).map_or(0, |u| u.iter().filter(|u| **u <= now).count());
        }
        Reported { schema: REPORTED_SCHEMA, site: self.site.clone(), ts: crate::payload::timestamp(now), levels, rules: self.rules.clone() }
    }

    /// When the next entry in force expires after `now` (the report should go out again then).
    pub fn next_expiry(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.untils.values().flatten().filter(|u| **u > now).min().copied()
    }
}

/// The `until` times of a document's watch-list entries.
fn entry_untils(doc: &Document) -> Vec<DateTime<Utc>> {
    doc.rules
        .iter()
        .filter_map(|r| match &r.kind {
            edge_config::RuleKind::WatchList { entries, .. } => Some(entries),
            _ => None,
        })
        .flatten()
        .filter_map(|e| e.until)
        .collect()
}

/// The local config with every level's rules (renamed `{level}:{id}`) and camera switches.
pub fn merge(local: &Config, levels: &BTreeMap<Level, Document>) -> (Config, Vec<Option<Provenance>>) {
    let mut merged = local.clone();
    let mut provenance: Vec<Option<Provenance>> = vec![None; local.rules.len()];
    for (level, doc) in levels {
        for rule in &doc.rules {
            let mut r = rule.clone();
            r.id = format!("{}:{}", level.as_str(), rule.id);
            merged.rules.push(r);
            provenance.push(Some(Provenance { level: level.as_str(), version: doc.version }));
        }
        for (id, switches) in &doc.cameras {
            if let Some(camera) = merged.cameras.iter_mut().find(|c| c.id == *id) {
                if let Some(enabled) = switches.enabled {
                    camera.enabled = enabled;
                }
                if let Some(fps) = switches.detect_fps {
                    camera.detect_fps = fps;
                }
                if let Some(plates) = switches.plates {
                    camera.plates = plates;
                }
            }
        }
    }
    (merged, provenance)
}

/// An issue of the merged config, as a path in `level`'s document; `None` when it is not about that
/// document.
fn map_issue(issue: Issue, level: Level, levels: &BTreeMap<Level, Document>, local_rules: usize, merged: &Config) -> Option<Issue> {
    let mut start = local_rules;
    for (l, doc) in levels {
        if *l == level {
            for i in 0..doc.rules.len() {
                let merged = format!("rules[{}]", start + i);
                if issue.path == merged || issue.path.starts_with(&format!("{merged}.")) {
                    let path = issue.path.replacen(&merged, &format!("rules[{i}]"), 1);
                    return Some(Issue::new(path, issue.message.replace(&format!("{}:", level.as_str()), "")));
                }
            }
        }
        start += doc.rules.len();
    }
    // Camera switches: the camera's path in the document, when this document sets that field.
    let index: usize = issue.path.strip_prefix("cameras[")?.split(']').next()?.parse().ok()?;
    let field = issue.path.split("].").nth(1)?;
    let id = &merged.cameras.get(index)?.id;
    let switches = levels.get(&level)?.cameras.get(id)?;
    field_set(switches, field).then(|| Issue::new(format!("cameras.{id}.{field}"), issue.message))
}

fn field_set(s: &CameraSwitches, field: &str) -> bool {
    match field {
        "enabled" => s.enabled.is_some(),
        "detect_fps" => s.detect_fps.is_some(),
        "plates" => s.plates.is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
