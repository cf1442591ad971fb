//! One camera's rule memory: cooldowns, events already alerted on, how long each zone has been crowded.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use models::ObjectClass;

use super::{in_window, match_region, normalise_plate, trusted, ActiveRule, Check, Finding, Now, RuleSet};
use crate::events::{ObjectEvent, Phase};
use crate::topics::Origin;

/// One camera's rule memory.
#[derive(Debug)]
pub struct CameraRules {
    origin: Arc<Origin>,
    /// (rule, key) → when it last alerted.
    cooled: HashMap<(String, String), DateTime<Utc>>,
    /// (rule, event id) already alerted on; forgotten when the event ends.
    alerted: HashSet<(String, String)>,
    /// (rule, zone) → since when it has held at least `min_people`.
    crowded_since: HashMap<(String, String), DateTime<Utc>>,
}

impl CameraRules {
    pub fn new(origin: Arc<Origin>) -> Self {
        Self { origin, cooled: HashMap::new(), alerted: HashSet::new(), crowded_since: HashMap::new() }
    }

    /// The camera (and site) the rules run on.
    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// The rules that apply to this camera.
    fn applicable<'r>(&self, rules: &'r RuleSet) -> impl Iterator<Item = &'r ActiveRule> + use<'r, '_> {
        rules.iter().filter(|r| r.applies_to(&self.origin.camera))
    }

    /// Records an alert under `key` unless the rule is cooling down for it; returns whether to alert.
    fn fire(&mut self, rule: &ActiveRule, key: &str, now: DateTime<Utc>) -> bool {
        let k = (rule.id.clone(), key.to_string());
        if let Some(last) = self.cooled.get(&k) {
            if (now - *last).num_milliseconds() < (rule.cooldown_secs as i64).saturating_mul(1000) {
                return false;
            }
        }
        self.cooled.insert(k, now);
        true
    }

    fn finding(&self, rule: &ActiveRule, now: Now) -> Finding {
        Finding { provenance: rule.provenance.clone(), ..Finding::new(self.origin.clone(), rule.id.clone(), rule.kind(), rule.severity, now.utc) }
    }

    fn for_event(&self, rule: &ActiveRule, e: &ObjectEvent, now: Now) -> Finding {
        Finding { event_id: Some(e.id.clone()), event_ids: vec![e.id.clone()], class: Some(e.class), direction: e.direction, plate: e.plate.clone(), ..self.finding(rule, now) }
    }

    /// Evaluates the event-driven rules on one event.
    pub fn on_event(&mut self, rules: &RuleSet, e: &ObjectEvent, now: Now) -> Vec<Finding> {
        let mut found = Vec::new();
        for rule in self.applicable(rules).collect::<Vec<_>>() {
            let done = (rule.id.clone(), e.id.clone());
            if self.alerted.contains(&done) {
                continue;
            }
            let finding = match &rule.check {
                Check::WatchList { plates, tolerance } => {
                    e.plate.as_ref().and_then(|p| plates.find(&p.text, *tolerance, now.utc).filter(|(m, _)| trusted(m, &p.uncertain_positions))).and_then(|(m, listed)| {
                        let reason = listed.reason.clone();
                        self.fire(rule, &m.entry, now.utc).then(|| Finding { matched: Some(m), reason, ..self.for_event(rule, e, now) })
                    })
                }
                Check::KeyRegion { prefixes } => e
                    .plate
                    .as_ref()
                    .and_then(|p| match_region(&p.text, prefixes).map(|pre| (normalise_plate(&p.text), pre.clone())))
                    .and_then(|(text, pre)| self.fire(rule, &text, now.utc).then(|| Finding { prefix: Some(pre), ..self.for_event(rule, e, now) })),
                Check::AfterHours { from, to, kinds, direction } => {
                    let type_ok = kinds.is_empty() || kinds.contains(&e.kind());
                    let moment = match direction {
                        None => e.phase == Phase::New,
                        Some(d) => e.direction == Some(*d),
                    };
                    if type_ok && moment && in_window(now.local_minute, *from, *to) {
                        let key = e.plate.as_ref().map_or_else(|| e.id.clone(), |p| normalise_plate(&p.text));
                        self.fire(rule, &key, now.utc).then(|| self.for_event(rule, e, now))
                    } else {
                        None
                    }
                }
                Check::Crowding { .. } => None,
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
    pub fn on_zones(&mut self, rules: &RuleSet, people: &[(String, Vec<String>)], now: Now) -> Vec<Finding> {
        let mut found = Vec::new();
        for rule in self.applicable(rules).collect::<Vec<_>>() {
            let Check::Crowding { zone, min_people, min_secs } = &rule.check else { continue };
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
                    event_id: inside.first().cloned(),
                    event_ids: inside.to_vec(),
                    class: Some(ObjectClass::PERSON),
                    zone: Some(zone.clone()),
                    count: Some(inside.len() as u32),
                    duration_s: Some(held),
                    ..self.finding(rule, now)
                });
            }
        }
        found
    }
}
