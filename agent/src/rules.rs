//! Alert rules, evaluated on each camera's events (and, for crowding, on who is in which zone each frame).
//!
//! Design: the rule set is shared and replaced as a whole on reload ([`SharedRules`]); the memory of what
//! already alerted — cooldowns, events already alerted on, how long a zone has been crowded — lives per
//! camera in [`CameraRules`], on the camera's own thread, so evaluation takes no locks beyond reading the
//! current rule set. Everything is synchronous and takes the time as an argument, so tests script it.
//!
//! Cooldown keys: a watch-list rule cools down per *listed* plate (a misread and an exact read of the same
//! car alert once), a key-region rule per plate read, after-hours per plate or else per object, crowding
//! per zone. On top, one object never triggers the same rule twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use edge_config::{Rule, RuleKind, Severity};

use crate::events::geometry::Direction;
use crate::payload::{Event, Phase};

/// The rules in force, replaceable at run time.
pub type SharedRules = Arc<RwLock<Arc<Vec<Rule>>>>;

pub fn shared(rules: &[Rule]) -> SharedRules {
    Arc::new(RwLock::new(Arc::new(rules.to_vec())))
}

/// The current rules (a cheap clone of the `Arc`).
pub fn current(rules: &SharedRules) -> Arc<Vec<Rule>> {
    rules.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Upper-case, without the separators people and OCR put in plates (`苏E·D5171 2` → `苏ED51712`).
pub fn normalise_plate(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace() && !matches!(c, '·' | '-' | '.' | '•')).flat_map(char::to_uppercase).collect()
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

/// Matches `read` against `list`: exact first; with `tolerance` 1, also a read of the same length that
/// differs in exactly one position. Insertions and deletions never match.
pub fn match_watch_list(read: &str, list: &[String], tolerance: u8) -> Option<PlateMatch> {
    let read: Vec<char> = normalise_plate(read).chars().collect();
    let mut best: Option<PlateMatch> = None;
    for entry in list {
        let norm = normalise_plate(entry);
        let listed: Vec<char> = norm.chars().collect();
        if listed.len() != read.len() {
            continue;
        }
        let differing: Vec<usize> = (0..read.len()).filter(|&i| read[i] != listed[i]).collect();
        let found = match differing.as_slice() {
            [] => PlateMatch { entry: norm, distance: 0, position: None },
            [p] if tolerance >= 1 => PlateMatch { entry: norm, distance: 1, position: Some(*p) },
            _ => continue,
        };
        if best.as_ref().is_none_or(|b| found.distance < b.distance) {
            best = Some(found);
        }
    }
    best
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

/// What a rule found; the daemon turns it into the alert payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: String,
    pub kind: &'static str,
    pub severity: Severity,
    /// The event that triggered it (crowding: the longest-present person's).
    pub event_id: Option<String>,
    /// Every event involved (crowding: the people in the zone).
    pub event_ids: Vec<String>,
    pub label: Option<&'static str>,
    pub object_type: Option<&'static str>,
    pub direction: Option<Direction>,
    /// Text, confidence and colour of the object's voted plate.
    pub plate: Option<(String, f32, models::plates::PlateColour)>,
    pub matched: Option<PlateMatch>,
    pub prefix: Option<String>,
    pub zone: Option<String>,
    pub count: Option<u32>,
    pub duration_s: Option<f64>,
}

impl Finding {
    fn for_event(rule: &Rule, kind: &'static str, e: &Event) -> Self {
        Self {
            rule: rule.id.clone(),
            kind,
            severity: rule.severity,
            event_id: Some(e.id.clone()),
            event_ids: vec![e.id.clone()],
            label: Some(e.label),
            object_type: Some(e.kind),
            direction: e.direction,
            plate: e.plate.as_ref().map(|p| (p.text.clone(), p.confidence, p.color)),
            matched: None,
            prefix: None,
            zone: None,
            count: None,
            duration_s: None,
        }
    }
}

/// One camera's rule memory.
#[derive(Debug, Default)]
pub struct CameraRules {
    camera: String,
    /// (rule, key) → when it last alerted.
    cooled: HashMap<(String, String), DateTime<Utc>>,
    /// (rule, event id) already alerted on; forgotten when the event ends.
    alerted: HashSet<(String, String)>,
    /// (rule, zone) → since when it has held at least `min_people`.
    crowded_since: HashMap<(String, String), DateTime<Utc>>,
}

impl CameraRules {
    pub fn new(camera: impl Into<String>) -> Self {
        Self { camera: camera.into(), ..Self::default() }
    }

    /// The rules that apply to this camera.
    fn applicable<'r>(&self, rules: &'r [Rule]) -> Vec<&'r Rule> {
        rules.iter().filter(|r| r.enabled && (r.cameras.is_empty() || r.cameras.contains(&self.camera))).collect()
    }

    /// Records an alert under `key` unless the rule is cooling down for it; returns whether to alert.
    fn fire(&mut self, rule: &Rule, key: &str, now: DateTime<Utc>) -> bool {
        let k = (rule.id.clone(), key.to_string());
        if let Some(last) = self.cooled.get(&k) {
            if (now - *last).num_milliseconds() < (rule.cooldown_secs as i64).saturating_mul(1000) {
                return false;
            }
        }
        self.cooled.insert(k, now);
        true
    }

    /// Evaluates the event-driven rules on one event message.
    pub fn on_event(&mut self, rules: &[Rule], e: &Event, now: Now) -> Vec<Finding> {
        let mut found = Vec::new();
        for rule in self.applicable(rules) {
            let done = (rule.id.clone(), e.id.clone());
            if self.alerted.contains(&done) {
                continue;
            }
            let finding = match &rule.kind {
                RuleKind::WatchList { plates, tolerance } => e.plate.as_ref().and_then(|p| match_watch_list(&p.text, plates, *tolerance)).and_then(|m| {
                    self.fire(rule, &m.entry, now.utc).then(|| Finding { matched: Some(m), ..Finding::for_event(rule, "watch_list", e) })
                }),
                RuleKind::KeyRegion { prefixes } => e.plate.as_ref().and_then(|p| match_region(&p.text, prefixes).map(|pre| (normalise_plate(&p.text), pre))).and_then(|(text, pre)| {
                    self.fire(rule, &text, now.utc).then(|| Finding { prefix: Some(normalise_plate(pre)), ..Finding::for_event(rule, "key_region", e) })
                }),
                RuleKind::AfterHours { from, to, types, direction } => {
                    let (Some(from), Some(to)) = (edge_config::parse_clock(from), edge_config::parse_clock(to)) else { continue };
                    let type_ok = types.is_empty() || types.iter().any(|t| t == e.kind);
                    let moment = match direction {
                        None => e.phase == Phase::New,
                        Some(d) => e.direction.is_some_and(|have| have.as_str() == d),
                    };
                    if type_ok && moment && in_window(now.local_minute, from, to) {
                        let key = e.plate.as_ref().map_or_else(|| e.id.clone(), |p| normalise_plate(&p.text));
                        self.fire(rule, &key, now.utc).then(|| Finding::for_event(rule, "after_hours", e))
                    } else {
                        None
                    }
                }
                RuleKind::Crowding { .. } => None,
            };
            if let Some(f) = finding {
                self.alerted.insert(done);
                found.push(f);
            }
        }
        if e.phase == Phase::End {
            self.alerted.retain(|(_, id)| id != &e.id);
        }
        found
    }

    /// Evaluates crowding on who is in which zone now: `people` lists, per zone, the event ids of the
    /// confirmed people inside (longest present first).
    pub fn on_zones(&mut self, rules: &[Rule], people: &[(String, Vec<String>)], now: Now) -> Vec<Finding> {
        let mut found = Vec::new();
        for rule in self.applicable(rules) {
            let RuleKind::Crowding { zone, min_people, min_secs } = &rule.kind else { continue };
            let inside: &[String] = people.iter().find(|(z, _)| z == zone).map(|(_, ids)| ids.as_slice()).unwrap_or_default();
            let key = (rule.id.clone(), zone.clone());
            if inside.len() < *min_people as usize {
                self.crowded_since.remove(&key);
                continue;
            }
            let since = *self.crowded_since.entry(key).or_insert(now.utc);
            let held = (now.utc - since).num_milliseconds() as f64 / 1000.0;
            if held >= *min_secs && self.fire(rule, zone, now.utc) {
                found.push(Finding {
                    rule: rule.id.clone(),
                    kind: "crowding",
                    severity: rule.severity,
                    event_id: inside.first().cloned(),
                    event_ids: inside.to_vec(),
                    label: Some("person"),
                    object_type: Some("person"),
                    direction: None,
                    plate: None,
                    matched: None,
                    prefix: None,
                    zone: Some(zone.clone()),
                    count: Some(inside.len() as u32),
                    duration_s: Some(crate::payload::round2(held)),
                });
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::voting::VotedPlate;
    use models::plates::PlateColour;
    use crate::payload::{FrameSize, Grid};

    fn rule(id: &str, kind: RuleKind) -> Rule {
        Rule { id: id.into(), kind, severity: Severity::Critical, cameras: vec![], cooldown_secs: 600, enabled: true }
    }

    fn event(id: &str, phase: Phase, kind: &'static str, plate: Option<&str>, direction: Option<Direction>) -> Event {
        Event {
            schema: crate::payload::EVENT_SCHEMA,
            id: id.into(),
            seq: 1,
            site: "a/b/c/d/e".into(),
            grid: Grid { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into() },
            camera: "gate".into(),
            kind,
            phase,
            label: if kind == "person" { "person" } else { "car" },
            track_id: 1,
            started_at: String::new(),
            ended_at: None,
            ts: String::new(),
            direction,
            crossings: vec![],
            zones: vec![],
            score: 0.9,
            bbox: [0.0; 4],
            frame: FrameSize { width: 1920, height: 1080 },
            plate: plate.map(|t| VotedPlate { text: t.into(), confidence: 0.95, min_char_confidence: 0.9, color: PlateColour::Blue, rows: 1, reads: 3, votes: 3 }),
            snapshot: None,
        }
    }

    fn at(secs: i64, local_minute: u32) -> Now {
        Now { utc: DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).unwrap_or_default(), local_minute }
    }

    const NOON: u32 = 12 * 60;

    #[test]
    fn watch_list_matches_exactly_and_with_one_misread_character_only_when_tolerant() {
        let list = vec!["苏ED51712".to_string(), "京PL3N67".to_string()];
        assert_eq!(match_watch_list("苏E·D51712", &list, 0), Some(PlateMatch { entry: "苏ED51712".into(), distance: 0, position: None }));
        // 8 read as B in the fifth position: only with tolerance.
        assert_eq!(match_watch_list("京PL3B67", &list, 0), None);
        assert_eq!(match_watch_list("京PL3B67", &list, 1), Some(PlateMatch { entry: "京PL3N67".into(), distance: 1, position: Some(4) }));
        // Two differences, a missing character, or an extra one never match.
        assert_eq!(match_watch_list("京PL3B68", &list, 1), None);
        assert_eq!(match_watch_list("京PL3N6", &list, 1), None);
        assert_eq!(match_watch_list("苏ED517120", &list, 1), None);
        // An exact match wins over a tolerant one.
        let close = vec!["京PL3N68".to_string(), "京PL3N67".to_string()];
        assert_eq!(match_watch_list("京PL3N67", &close, 1).map(|m| m.distance), Some(0));
    }

    #[test]
    fn watch_list_alerts_once_per_listed_plate_within_the_cooldown() {
        let rules = vec![rule("stolen", RuleKind::WatchList { plates: vec!["京PL3N67".into()], tolerance: 1 })];
        let mut cam = CameraRules::new("gate");
        // The first pass: a misread on `new`, the exact plate on `update`: one alert.
        let found = cam.on_event(&rules, &event("e1", Phase::New, "vehicle", Some("京PL3B67"), None), at(0, NOON));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].matched.as_ref().map(|m| m.distance), Some(1));
        assert_eq!(found[0].event_id.as_deref(), Some("e1"));
        assert!(cam.on_event(&rules, &event("e1", Phase::Update, "vehicle", Some("京PL3N67"), None), at(1, NOON)).is_empty());
        cam.on_event(&rules, &event("e1", Phase::End, "vehicle", Some("京PL3N67"), None), at(3, NOON));
        // The same car back five minutes later: still cooling down.
        assert!(cam.on_event(&rules, &event("e2", Phase::New, "vehicle", Some("京PL3N67"), None), at(300, NOON)).is_empty());
        // After the cooldown it alerts again, referencing the new event.
        let again = cam.on_event(&rules, &event("e3", Phase::New, "vehicle", Some("京PL3N67"), None), at(601, NOON));
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].event_id.as_deref(), Some("e3"));
        // Other plates and plate-less vehicles never alert.
        assert!(cam.on_event(&rules, &event("e4", Phase::New, "vehicle", Some("苏ED51712"), None), at(700, NOON)).is_empty());
        assert!(cam.on_event(&rules, &event("e5", Phase::New, "vehicle", None, None), at(700, NOON)).is_empty());
    }

    #[test]
    fn key_region_matches_province_or_city_prefixes() {
        let rules = vec![rule("wuhan", RuleKind::KeyRegion { prefixes: vec!["鄂A".into(), "皖".into()] })];
        let mut cam = CameraRules::new("gate");
        let f = cam.on_event(&rules, &event("e1", Phase::Update, "vehicle", Some("鄂A12345"), None), at(0, NOON));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].prefix.as_deref(), Some("鄂A"));
        assert!(cam.on_event(&rules, &event("e2", Phase::Update, "vehicle", Some("鄂B12345"), None), at(1, NOON)).is_empty());
        assert_eq!(cam.on_event(&rules, &event("e3", Phase::Update, "vehicle", Some("皖A0C911"), None), at(2, NOON)).len(), 1);
        // The same plate again within the cooldown: quiet; a different plate: alerts.
        assert!(cam.on_event(&rules, &event("e4", Phase::New, "vehicle", Some("鄂A12345"), None), at(60, NOON)).is_empty());
        assert_eq!(cam.on_event(&rules, &event("e5", Phase::New, "vehicle", Some("鄂A99999"), None), at(61, NOON)).len(), 1);
        assert_eq!(match_region("鄂A12345", &["鄂".into(), "鄂A".into()]).map(String::as_str), Some("鄂A"));
    }

    #[test]
    fn after_hours_window_passes_midnight_and_filters_type_and_direction() {
        assert!(in_window(23 * 60, 22 * 60, 6 * 60));
        assert!(in_window(5 * 60 + 59, 22 * 60, 6 * 60));
        assert!(!in_window(6 * 60, 22 * 60, 6 * 60));
        assert!(!in_window(NOON, 22 * 60, 6 * 60));
        assert!(in_window(NOON, 9 * 60, 17 * 60));

        let rules = vec![rule("night", RuleKind::AfterHours { from: "22:00".into(), to: "06:00".into(), types: vec!["person".into()], direction: None })];
        let mut cam = CameraRules::new("gate");
        assert!(cam.on_event(&rules, &event("p1", Phase::New, "person", None, None), at(0, NOON)).is_empty(), "daytime");
        assert!(cam.on_event(&rules, &event("v1", Phase::New, "vehicle", None, None), at(0, 23 * 60)).is_empty(), "vehicles not selected");
        let f = cam.on_event(&rules, &event("p2", Phase::New, "person", None, None), at(0, 23 * 60));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, "after_hours");
        // Its update does not alert again; another person does (cooldown is per object without a plate).
        assert!(cam.on_event(&rules, &event("p2", Phase::Update, "person", None, Some(Direction::In)), at(1, 23 * 60)).is_empty());
        assert_eq!(cam.on_event(&rules, &event("p3", Phase::New, "person", None, None), at(2, 23 * 60)).len(), 1);

        let inbound = vec![rule("night-in", RuleKind::AfterHours { from: "22:00".into(), to: "06:00".into(), types: vec![], direction: Some("in".into()) })];
        let mut cam = CameraRules::new("gate");
        assert!(cam.on_event(&inbound, &event("v2", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, 60)).is_empty(), "direction unknown yet");
        assert!(cam.on_event(&inbound, &event("v2", Phase::Update, "vehicle", Some("苏ED51712"), Some(Direction::Out)), at(1, 60)).is_empty());
        assert_eq!(cam.on_event(&inbound, &event("v3", Phase::Update, "vehicle", Some("京PL3N67"), Some(Direction::In)), at(2, 60)).len(), 1);
    }

    #[test]
    fn crowding_needs_enough_people_for_long_enough_then_cools_down() {
        let rules = vec![rule("crowd", RuleKind::Crowding { zone: "square".into(), min_people: 3, min_secs: 10.0 })];
        let mut cam = CameraRules::new("gate");
        let three = vec![("square".to_string(), vec!["a".to_string(), "b".into(), "c".into()])];
        let two = vec![("square".to_string(), vec!["a".to_string(), "b".into()])];
        assert!(cam.on_zones(&rules, &three, at(0, NOON)).is_empty());
        assert!(cam.on_zones(&rules, &three, at(9, NOON)).is_empty(), "not long enough");
        // Dropping below the count restarts the clock.
        assert!(cam.on_zones(&rules, &two, at(10, NOON)).is_empty());
        assert!(cam.on_zones(&rules, &three, at(11, NOON)).is_empty());
        let f = cam.on_zones(&rules, &three, at(21, NOON));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].count, Some(3));
        assert_eq!(f[0].zone.as_deref(), Some("square"));
        assert_eq!(f[0].event_ids.len(), 3);
        assert!(f[0].duration_s.is_some_and(|d| d >= 10.0));
        // Still crowded: cooling down, no repeat until the cooldown has passed.
        assert!(cam.on_zones(&rules, &three, at(300, NOON)).is_empty());
        assert_eq!(cam.on_zones(&rules, &three, at(622, NOON)).len(), 1);
        // Another zone, or a rule for another camera, stays quiet.
        assert!(cam.on_zones(&rules, &[("road".to_string(), vec!["x".into(); 5])], at(700, NOON)).is_empty());
        let elsewhere = vec![Rule { cameras: vec!["other".into()], ..rules[0].clone() }];
        assert!(CameraRules::new("gate").on_zones(&elsewhere, &three, at(0, NOON)).is_empty());
    }

    #[test]
    fn disabled_rules_and_zero_cooldown() {
        let mut r = rule("w", RuleKind::WatchList { plates: vec!["苏ED51712".into()], tolerance: 0 });
        r.enabled = false;
        let mut cam = CameraRules::new("gate");
        assert!(cam.on_event(&[r.clone()], &event("e1", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, NOON)).is_empty());
        r.enabled = true;
        r.cooldown_secs = 0;
        assert_eq!(cam.on_event(&[r.clone()], &event("e2", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, NOON)).len(), 1);
        assert_eq!(cam.on_event(&[r], &event("e3", Phase::New, "vehicle", Some("苏ED51712"), None), at(1, NOON)).len(), 1);
    }
}
