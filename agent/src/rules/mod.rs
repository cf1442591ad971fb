//! Alert rules, evaluated on each camera's events (and, for crowding, on who is in which zone each frame).
//!
//! Design: the configured `[[rules]]` are compiled once, when the config is loaded or reloaded, into a
//! [`RuleSet`]: plates and prefixes normalised, after-hours windows in minutes, types and directions as
//! enums. The set is shared and replaced as a whole on reload ([`SharedRules`]); the memory of what already
//! alerted — cooldowns, events already alerted on, how long a zone has been crowded — lives per camera in
//! [`CameraRules`], on the camera's own thread, so evaluation takes no locks beyond reading the current rule
//! set. Everything is synchronous and takes the time as an argument, so tests script it.
//!
//! Cooldown keys: a watch-list rule cools down per *listed* plate (a misread and an exact read of the same
//! car alert once), a key-region rule per plate read, after-hours per plate or else per object, crowding
//! per zone. On top, one object never triggers the same rule twice.

mod camera;
mod watch;

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use edge_config::{Rule, RuleKind, Severity};
use models::plates::normalise_plate;
use models::{ObjectClass, ObjectKind};
use serde::{Deserialize, Serialize};

use crate::events::geometry::Direction;
use crate::events::voting::VotedPlate;
use crate::topics::Origin;
pub use camera::CameraRules;
pub use watch::WatchIndex;

/// The rules in force, replaceable at run time.
pub type SharedRules = Arc<RwLock<Arc<RuleSet>>>;

pub fn shared(rules: &[Rule]) -> SharedRules {
    Arc::new(RwLock::new(Arc::new(RuleSet::compile(rules))))
}

/// The current rules (a cheap clone of the `Arc`).
pub fn current(rules: &SharedRules) -> Arc<RuleSet> {
    rules.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Replaces the rules in force (with where each came from, see [`RuleSet::compile_with`]); returns whether
/// they differ from the ones before.
pub fn replace(shared: &SharedRules, rules: &[Rule], provenance: &[Option<Provenance>]) -> bool {
    let now = current(shared);
    if now.source() == rules && now.provenance == provenance {
        return false;
    }
    *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(RuleSet::compile_with(rules, provenance));
    true
}

/// Where a rule came from when it is not the local config's: the platform's policy level and document
/// version. Alerts carry both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub level: &'static str,
    pub version: u64,
}

/// A listed plate, normalised, with its expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub plate: String,
    pub until: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// The kinds of rule, as alerts name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleType {
    WatchList,
    KeyRegion,
    Crowding,
    AfterHours,
    /// Camera health ([`crate::health`]): built in, not configured as rules.
    CameraOffline,
    CameraFrozen,
    CameraCovered,
    CameraMoved,
}

impl RuleType {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::WatchList => "watch_list",
            RuleType::KeyRegion => "key_region",
            RuleType::Crowding => "crowding",
            RuleType::AfterHours => "after_hours",
            RuleType::CameraOffline => "camera_offline",
            RuleType::CameraFrozen => "camera_frozen",
            RuleType::CameraCovered => "camera_covered",
            RuleType::CameraMoved => "camera_moved",
        }
    }

    /// Whether it is about the camera itself rather than something it saw.
    pub fn is_health(self) -> bool {
        matches!(self, RuleType::CameraOffline | RuleType::CameraFrozen | RuleType::CameraCovered | RuleType::CameraMoved)
    }
}

/// What an enabled rule checks, parsed and normalised.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    WatchList {
        plates: WatchIndex,
        tolerance: u8,
    },
    KeyRegion {
        prefixes: Vec<String>,
    },
    Crowding {
        zone: String,
        min_people: u32,
        min_secs: f64,
    },
    AfterHours {
        /// Minutes after local midnight; the window `[from, to)` may pass midnight.
        from: u32,
        to: u32,
        /// Empty = both kinds.
        kinds: Vec<ObjectKind>,
        direction: Option<Direction>,
    },
}

/// One enabled rule, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveRule {
    pub id: String,
    pub severity: Severity,
    /// Cameras it applies to; empty = all.
    pub cameras: Vec<String>,
    pub cooldown_secs: u64,
    pub check: Check,
    /// `None` for the local config's rules.
    pub provenance: Option<Provenance>,
}

impl ActiveRule {
    pub fn kind(&self) -> RuleType {
        match self.check {
            Check::WatchList { .. } => RuleType::WatchList,
            Check::KeyRegion { .. } => RuleType::KeyRegion,
            Check::Crowding { .. } => RuleType::Crowding,
            Check::AfterHours { .. } => RuleType::AfterHours,
        }
    }

    fn applies_to(&self, camera: &str) -> bool {
        self.cameras.is_empty() || self.cameras.iter().any(|c| c == camera)
    }
}

/// The rules in force, compiled from the config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    source: Vec<Rule>,
    provenance: Vec<Option<Provenance>>,
    rules: Vec<ActiveRule>,
}

impl RuleSet {
    /// Compiles validated rules; disabled rules are left out. Values were parsed into their types when the
    /// rules were loaded, so compiling cannot fail.
    pub fn compile(rules: &[Rule]) -> Self {
        Self::compile_with(rules, &[])
    }

    /// Like [`RuleSet::compile`], with the provenance of each rule (missing entries: local rules).
    pub fn compile_with(rules: &[Rule], provenance: &[Option<Provenance>]) -> Self {
        let active = rules.iter().enumerate().filter(|(_, r)| r.enabled).map(|(i, r)| ActiveRule {
            id: r.id.clone(),
            severity: r.severity,
            cameras: r.cameras.clone(),
            cooldown_secs: r.cooldown_secs,
            check: compile_check(&r.kind),
            provenance: provenance.get(i).cloned().flatten(),
        });
        Self { source: rules.to_vec(), provenance: provenance.to_vec(), rules: active.collect() }
    }

    /// The configured rules this set was compiled from.
    pub fn source(&self) -> &[Rule] {
        &self.source
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ActiveRule> {
        self.rules.iter()
    }

    /// Whether any rule counts people in zones (the camera then reports who is in its zones every frame).
    pub fn has_crowding(&self) -> bool {
        self.rules.iter().any(|r| r.kind() == RuleType::Crowding)
    }
}

fn compile_check(kind: &RuleKind) -> Check {
    match kind {
        RuleKind::WatchList { plates, entries, tolerance } => {
            let plates = plates.iter().map(|p| Listed { plate: normalise_plate(p), until: None, reason: None });
            let entries = entries.iter().map(|e| Listed { plate: normalise_plate(&e.plate), until: e.until, reason: e.reason.clone() });
            Check::WatchList { plates: WatchIndex::new(plates.chain(entries).collect(), *tolerance), tolerance: *tolerance }
        }
        RuleKind::KeyRegion { prefixes } => Check::KeyRegion { prefixes: prefixes.iter().map(|p| normalise_plate(p)).collect() },
        RuleKind::Crowding { zone, min_people, min_secs } => Check::Crowding { zone: zone.clone(), min_people: *min_people, min_secs: *min_secs },
        RuleKind::AfterHours { from, to, types, direction } => Check::AfterHours { from: from.minutes(), to: to.minutes(), kinds: types.clone(), direction: *direction },
    }
}

/// How a read matched a listed plate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlateMatch {
    /// The listed plate, normalised.
    pub entry: String,
    /// 0 for an exact match, 1 for one differing character.
    pub distance: u8,
    /// The differing position (0-based, in characters) for a tolerant match.
    pub position: Option<usize>,
}

/// Whether a match stands given the read's uncertain characters. An exact match always does. A one-off
/// match spends the one doubt a read may carry on the differing character, so it stands only when the read
/// is sure of every other one: a read with an uncertain character elsewhere (a province the crop does not
/// show, a foreign plate's) is not stretched to a listed plate.
pub fn trusted(m: &PlateMatch, uncertain_positions: &[usize]) -> bool {
    m.distance == 0 || uncertain_positions.iter().all(|&u| Some(u) == m.position)
}

/// Matches `read` against `list`: exact first; with `tolerance` 1, also a read of the same length that
/// differs in exactly one position. Insertions and deletions never match. A one-off match through the same
/// index the rules use ([`WatchIndex`]).
pub fn match_watch_list(read: &str, list: &[String], tolerance: u8) -> Option<PlateMatch> {
    let listed = list.iter().map(|p| Listed { plate: normalise_plate(p), until: None, reason: None }).collect();
    WatchIndex::new(listed, tolerance).find(read, tolerance, Utc::now()).map(|(m, _)| m)
}

/// The longest configured prefix the plate starts with.
pub fn match_region<'a>(read: &str, prefixes: &'a [String]) -> Option<&'a String> {
    let read = normalise_plate(read);
    prefixes.iter().filter(|p| read.starts_with(&normalise_plate(p))).max_by_key(|p| p.chars().count())
}

/// Whether `minute` (after local midnight) lies in the window `[from, to)`, which may pass midnight.
pub fn in_window(minute: u32, from: u32, to: u32) -> bool {
    if from <= to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    }
}

/// When a rule is evaluated: the instant, and the local time of day for after-hours windows.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub utc: DateTime<Utc>,
    /// Minutes after local midnight.
    pub local_minute: u32,
}

impl Now {
    pub fn current() -> Self {
        use chrono::Timelike;
        let local = chrono::Local::now();
        Self { utc: local.with_timezone(&Utc), local_minute: local.hour() * 60 + local.minute() }
    }
}

/// What a rule found; `crate::payload::Alert` is its wire form.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// UUIDv7 of the alert.
    pub id: String,
    /// When it was found.
    pub at: DateTime<Utc>,
    /// The camera (and site) it was found on.
    pub origin: Arc<Origin>,
    pub rule: String,
    pub kind: RuleType,
    pub severity: Severity,
    /// The event that triggered it (crowding: the longest-present person's).
    pub event_id: Option<String>,
    /// Every event involved (crowding: the people in the zone).
    pub event_ids: Vec<String>,
    pub class: Option<ObjectClass>,
    pub direction: Option<Direction>,
    /// The object's voted plate.
    pub plate: Option<VotedPlate>,
    pub matched: Option<PlateMatch>,
    pub prefix: Option<String>,
    pub zone: Option<String>,
    pub count: Option<u32>,
    pub duration_s: Option<f64>,
    /// Watch list: why the plate is listed.
    pub reason: Option<String>,
    /// Set for rules from the platform's policy.
    pub provenance: Option<Provenance>,
    /// Camera health alerts: raised or cleared, since when, and what was measured.
    pub health: Option<HealthNote>,
}

/// A camera health alert's own facts.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthNote {
    /// `false`: the camera recovered (the matching "back" message).
    pub raised: bool,
    /// When the condition started (raised) or ended (cleared).
    pub since: DateTime<Utc>,
    pub detail: String,
}

impl Finding {
    /// A finding of `rule` with nothing about an event, a plate or a zone yet (a new id).
    pub fn new(origin: Arc<Origin>, rule: String, kind: RuleType, severity: Severity, at: DateTime<Utc>) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            at,
            origin,
            rule,
            kind,
            severity,
            event_id: None,
            event_ids: Vec::new(),
            class: None,
            direction: None,
            plate: None,
            matched: None,
            prefix: None,
            zone: None,
            count: None,
            duration_s: None,
            reason: None,
            provenance: None,
            health: None,
        }
    }

    /// The alert for a camera health change found at `at`, `ago_s` seconds after the condition started or
    /// ended.
    pub fn health(origin: Arc<Origin>, change: &crate::health::Change, at: DateTime<Utc>, ago_s: f64, severity: Severity) -> Self {
        let kind = change.condition.rule_type();
        let since = at - chrono::Duration::milliseconds((ago_s.max(0.0) * 1000.0) as i64);
        Self {
            health: Some(HealthNote { raised: change.raised, since, detail: change.detail.clone() }),
            ..Self::new(origin, kind.as_str().to_string(), kind, if change.raised { severity } else { Severity::Info }, at)
        }
    }
}

#[cfg(test)]
mod tests;
