//! Rules over scripted events and zone counts.

use super::*;
use crate::events::{FrameSize, ObjectEvent, Phase};
use edge_config::{ClockTime, Rule, RuleKind, Severity};
use models::plates::PlateColour;
use models::BBox;

fn rule(id: &str, kind: RuleKind) -> Rule {
    Rule { id: id.into(), kind, severity: Severity::Critical, cameras: vec![], cooldown_secs: 600, enabled: true }
}

fn origin(camera: &str) -> Arc<Origin> {
    let site = edge_config::Site { city: "a".into(), district: "b".into(), town: "c".into(), village: "d".into(), checkpoint: "e".into(), name: None };
    Arc::new(Origin { site, camera: camera.into() })
}

/// Memory of camera `gate`.
fn gate() -> CameraRules {
    CameraRules::new(origin("gate"))
}

fn clock(text: &str) -> ClockTime {
    ClockTime::parse(text).expect("a time of day HH:MM")
}

fn compiled(rules: &[Rule]) -> RuleSet {
    RuleSet::compile(rules)
}

fn event(id: &str, phase: Phase, kind: &'static str, plate: Option<&str>, direction: Option<Direction>) -> ObjectEvent {
    let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default();
    ObjectEvent {
        origin: origin("gate"),
        id: id.into(),
        seq: 1,
        class: if kind == "person" { ObjectClass::PERSON } else { ObjectClass::CAR },
        phase,
        track_id: 1,
        started_at: t,
        ended_at: None,
        at: t,
        direction,
        crossings: vec![],
        zones: vec![],
        score: 0.9,
        bbox: BBox::default(),
        frame: FrameSize { width: 1920, height: 1080 },
        plate: plate.map(|t| VotedPlate {
            text: t.into(),
            confidence: 0.95,
            min_char_confidence: 0.9,
            color: PlateColour::Blue,
            rows: 1,
            reads: 3,
            votes: 3,
            uncertain_positions: vec![],
        }),
        snapshot: None,
        from_plate: false,
        merged_into: None,
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
fn a_one_off_match_needs_every_other_character_sure() {
    let rules = vec![rule("stolen", RuleKind::WatchList { plates: vec!["皖L55EBC".into()], entries: vec![], tolerance: 1 })];
    let with_doubts = |id: &str, text: &str, uncertain: Vec<usize>| {
        let mut e = event(id, Phase::New, "vehicle", Some(text), None);
        if let Some(p) = e.plate.as_mut() {
            p.uncertain_positions = uncertain;
        }
        e
    };
    // A foreign plate read with a province it does not show (position 0 uncertain) and one more character
    // off: no alert.
    assert!(gate().on_event(&compiled(&rules), &with_doubts("e1", "皖LS5EBC", vec![0]), at(0, NOON)).is_empty());
    // The differing character is the uncertain one: the one tolerated doubt, so it alerts.
    let found = gate().on_event(&compiled(&rules), &with_doubts("e2", "皖LS5EBC", vec![2]), at(0, NOON));
    assert_eq!(found.first().and_then(|f| f.matched.as_ref()).map(|m| (m.distance, m.position)), Some((1, Some(2))));
    // An exact match alerts whatever the doubts.
    assert_eq!(gate().on_event(&compiled(&rules), &with_doubts("e3", "皖L55EBC", vec![0, 3]), at(0, NOON)).len(), 1);
    // Sure of every character: the one-off match alerts as before.
    assert_eq!(gate().on_event(&compiled(&rules), &with_doubts("e4", "皖LS5EBC", vec![]), at(0, NOON)).len(), 1);
}

#[test]
fn watch_list_alerts_once_per_listed_plate_within_the_cooldown() {
    let rules = vec![rule("stolen", RuleKind::WatchList { plates: vec!["京PL3N67".into()], entries: vec![], tolerance: 1 })];
    let mut cam = gate();
    // The first pass: a misread on `new`, the exact plate on `update`: one alert.
    let found = cam.on_event(&compiled(&rules), &event("e1", Phase::New, "vehicle", Some("京PL3B67"), None), at(0, NOON));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].matched.as_ref().map(|m| m.distance), Some(1));
    assert_eq!(found[0].event_id.as_deref(), Some("e1"));
    assert!(cam.on_event(&compiled(&rules), &event("e1", Phase::Update, "vehicle", Some("京PL3N67"), None), at(1, NOON)).is_empty());
    cam.on_event(&compiled(&rules), &event("e1", Phase::End, "vehicle", Some("京PL3N67"), None), at(3, NOON));
    // The same car back five minutes later: still cooling down.
    assert!(cam.on_event(&compiled(&rules), &event("e2", Phase::New, "vehicle", Some("京PL3N67"), None), at(300, NOON)).is_empty());
    // After the cooldown it alerts again, referencing the new event.
    let again = cam.on_event(&compiled(&rules), &event("e3", Phase::New, "vehicle", Some("京PL3N67"), None), at(601, NOON));
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event_id.as_deref(), Some("e3"));
    // Other plates and plate-less vehicles never alert.
    assert!(cam.on_event(&compiled(&rules), &event("e4", Phase::New, "vehicle", Some("苏ED51712"), None), at(700, NOON)).is_empty());
    assert!(cam.on_event(&compiled(&rules), &event("e5", Phase::New, "vehicle", None, None), at(700, NOON)).is_empty());
}

#[test]
fn key_region_matches_province_or_city_prefixes() {
    let rules = vec![rule("wuhan", RuleKind::KeyRegion { prefixes: vec!["鄂A".into(), "皖".into()] })];
    let mut cam = gate();
    let f = cam.on_event(&compiled(&rules), &event("e1", Phase::Update, "vehicle", Some("鄂A12345"), None), at(0, NOON));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].prefix.as_deref(), Some("鄂A"));
    assert!(cam.on_event(&compiled(&rules), &event("e2", Phase::Update, "vehicle", Some("鄂B12345"), None), at(1, NOON)).is_empty());
    assert_eq!(cam.on_event(&compiled(&rules), &event("e3", Phase::Update, "vehicle", Some("皖A0C911"), None), at(2, NOON)).len(), 1);
    // The same plate again within the cooldown: quiet; a different plate: alerts.
    assert!(cam.on_event(&compiled(&rules), &event("e4", Phase::New, "vehicle", Some("鄂A12345"), None), at(60, NOON)).is_empty());
    assert_eq!(cam.on_event(&compiled(&rules), &event("e5", Phase::New, "vehicle", Some("鄂A99999"), None), at(61, NOON)).len(), 1);
    assert_eq!(match_region("鄂A12345", &["鄂".into(), "鄂A".into()]).map(String::as_str), Some("鄂A"));
}

#[test]
fn after_hours_window_passes_midnight_and_filters_type_and_direction() {
    assert!(in_window(23 * 60, 22 * 60, 6 * 60));
    assert!(in_window(5 * 60 + 59, 22 * 60, 6 * 60));
    assert!(!in_window(6 * 60, 22 * 60, 6 * 60));
    assert!(!in_window(NOON, 22 * 60, 6 * 60));
    assert!(in_window(NOON, 9 * 60, 17 * 60));

    let rules = vec![rule("night", RuleKind::AfterHours { from: clock("22:00"), to: clock("06:00"), types: vec![ObjectKind::Person], direction: None })];
    let mut cam = gate();
    assert!(cam.on_event(&compiled(&rules), &event("p1", Phase::New, "person", None, None), at(0, NOON)).is_empty(), "daytime");
    assert!(cam.on_event(&compiled(&rules), &event("v1", Phase::New, "vehicle", None, None), at(0, 23 * 60)).is_empty(), "vehicles not selected");
    let f = cam.on_event(&compiled(&rules), &event("p2", Phase::New, "person", None, None), at(0, 23 * 60));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].kind, RuleType::AfterHours);
    // Its update does not alert again; another person does (cooldown is per object without a plate).
    assert!(cam.on_event(&compiled(&rules), &event("p2", Phase::Update, "person", None, Some(Direction::In)), at(1, 23 * 60)).is_empty());
    assert_eq!(cam.on_event(&compiled(&rules), &event("p3", Phase::New, "person", None, None), at(2, 23 * 60)).len(), 1);

    let inbound = vec![rule("night-in", RuleKind::AfterHours { from: clock("22:00"), to: clock("06:00"), types: vec![], direction: Some(Direction::In) })];
    let mut cam = gate();
    assert!(cam.on_event(&compiled(&inbound), &event("v2", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, 60)).is_empty(), "direction unknown yet");
    assert!(cam.on_event(&compiled(&inbound), &event("v2", Phase::Update, "vehicle", Some("苏ED51712"), Some(Direction::Out)), at(1, 60)).is_empty());
    assert_eq!(cam.on_event(&compiled(&inbound), &event("v3", Phase::Update, "vehicle", Some("京PL3N67"), Some(Direction::In)), at(2, 60)).len(), 1);
}

#[test]
fn crowding_needs_enough_people_for_long_enough_then_cools_down() {
    let rules = vec![rule("crowd", RuleKind::Crowding { zone: "square".into(), min_people: 3, min_secs: 10.0 })];
    let mut cam = gate();
    let three = vec![("square".to_string(), vec!["a".to_string(), "b".into(), "c".into()])];
    let two = vec![("square".to_string(), vec!["a".to_string(), "b".into()])];
    assert!(cam.on_zones(&compiled(&rules), &three, at(0, NOON)).is_empty());
    assert!(cam.on_zones(&compiled(&rules), &three, at(9, NOON)).is_empty(), "not long enough");
    // Dropping below the count restarts the clock.
    assert!(cam.on_zones(&compiled(&rules), &two, at(10, NOON)).is_empty());
    assert!(cam.on_zones(&compiled(&rules), &three, at(11, NOON)).is_empty());
    let f = cam.on_zones(&compiled(&rules), &three, at(21, NOON));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].count, Some(3));
    assert_eq!(f[0].zone.as_deref(), Some("square"));
    assert_eq!(f[0].event_ids.len(), 3);
    assert!(f[0].duration_s.is_some_and(|d| d >= 10.0));
    // Still crowded: cooling down, no repeat until the cooldown has passed.
    assert!(cam.on_zones(&compiled(&rules), &three, at(300, NOON)).is_empty());
    assert_eq!(cam.on_zones(&compiled(&rules), &three, at(622, NOON)).len(), 1);
    // Another zone, or a rule for another camera, stays quiet.
    assert!(cam.on_zones(&compiled(&rules), &[("road".to_string(), vec!["x".into(); 5])], at(700, NOON)).is_empty());
    let elsewhere = vec![Rule { cameras: vec!["other".into()], ..rules[0].clone() }];
    assert!(gate().on_zones(&compiled(&elsewhere), &three, at(0, NOON)).is_empty());
}

#[test]
fn disabled_rules_and_zero_cooldown() {
    let mut r = rule("w", RuleKind::WatchList { plates: vec!["苏ED51712".into()], entries: vec![], tolerance: 0 });
    r.enabled = false;
    let mut cam = gate();
    assert!(cam.on_event(&compiled(&[r.clone()]), &event("e1", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, NOON)).is_empty());
    r.enabled = true;
    r.cooldown_secs = 0;
    assert_eq!(cam.on_event(&compiled(&[r.clone()]), &event("e2", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, NOON)).len(), 1);
    assert_eq!(cam.on_event(&compiled(&[r]), &event("e3", Phase::New, "vehicle", Some("苏ED51712"), None), at(1, NOON)).len(), 1);
}

#[test]
fn rules_are_compiled_once_and_disabled_ones_are_left_out() {
    let good = rule("night", RuleKind::AfterHours { from: clock("22:30"), to: clock("06:00"), types: vec![ObjectKind::Vehicle], direction: Some(Direction::Out) });
    let mut off = rule("off", RuleKind::KeyRegion { prefixes: vec!["鄂 a".into()] });
    off.enabled = false;
    let set = compiled(&[good, off, rule("region", RuleKind::KeyRegion { prefixes: vec!["鄂 a".into()] })]);
    let ids: Vec<&str> = set.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["night", "region"]);
    assert_eq!(set.iter().next().map(|r| &r.check), Some(&Check::AfterHours { from: 22 * 60 + 30, to: 6 * 60, kinds: vec![ObjectKind::Vehicle], direction: Some(Direction::Out) }));
    assert_eq!(set.iter().nth(1).map(|r| &r.check), Some(&Check::KeyRegion { prefixes: vec!["鄂A".into()] }), "prefixes normalised at load");
    assert!(!set.has_crowding());
    let shared = shared(set.source());
    assert!(!replace(&shared, set.source(), &[]), "the same rules are not swapped");
    assert!(replace(&shared, &[], &[]));
    assert!(current(&shared).is_empty());
}

#[test]
fn expired_watch_list_entries_stop_matching_and_listed_reasons_reach_the_alert() {
    let entry = |plate: &str, until: &str, reason: &str| edge_config::WatchEntry {
        plate: plate.into(),
        until: Some(DateTime::parse_from_rfc3339(until).expect("an RFC 3339 time").with_timezone(&Utc)),
        reason: Some(reason.into()),
    };
    let rules = vec![rule(
        "wanted",
        RuleKind::WatchList {
            plates: vec![],
            entries: vec![entry("京PL3N67", "2027-01-16T00:00:00Z", "盗抢车辆"), entry("苏ED51712", "2027-01-15T07:00:00+08:00", "已过期")],
            tolerance: 0,
        },
    )];
    let provenance = vec![Some(Provenance { level: "town", version: 7 })];
    let set = RuleSet::compile_with(&rules, &provenance);
    let mut cam = gate();
    // at(0) is 2027-01-15T08:00:00Z: the second entry expired at 2027-01-14T23:00:00Z, the first has not.
    assert!(cam.on_event(&set, &event("e1", Phase::New, "vehicle", Some("苏ED51712"), None), at(0, NOON)).is_empty(), "expired entry");
    let f = cam.on_event(&set, &event("e2", Phase::New, "vehicle", Some("京PL3N67"), None), at(0, NOON));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].reason.as_deref(), Some("盗抢车辆"));
    assert_eq!(f[0].provenance, Some(Provenance { level: "town", version: 7 }));
}
