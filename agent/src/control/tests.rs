//! The policy state machine over scripted documents.

use super::*;
use std::path::Path;

const CONFIG: &str = r#"
[site]
city = "xining"
district = "chengzhong"
town = "nanchuan"
village = "xiaozhuang"
checkpoint = "east-gate"

[[rules]]
id = "local"
kind = "key_region"
prefixes = ["鄂A"]

[[cameras]]
id = "gate"
url = "rtsp://10.0.0.5/stream"
detect_fps = 5
"#;

fn local(dir: &Path) -> Config {
    edge_config::parse_str(&format!("[storage]\nstate_dir = \"{}\"\n{CONFIG}", dir.display())).unwrap()
}

fn doc(version: u64, extra_rule: &str, cameras: &str) -> Vec<u8> {
    format!(
        r#"{{"schema":"edge-agent/policy/v1","version":{version},"issued_at":"2026-11-29T08:00:00+08:00","issued_by":"nanchuan",
        "rules":[{{"id":"wanted","kind":"watch_list","plates":["苏ED51712"],"entries":[{{"plate":"京PL3N67","until":"2020-01-01T00:00:00Z","reason":"old"}}]{extra_rule}}}],
        "cameras":{{{cameras}}}}}"#
    )
    .into_bytes()
}

fn applied(d: Decision) -> (Config, Vec<Option<Provenance>>) {
    match d {
        Decision::Apply(c, p) => (*c, p),
        Decision::Keep => panic!("nothing applied"),
    }
}

#[test]
fn topics_follow_the_grid_down_to_each_level() {
    let dir = tempfile::tempdir().unwrap();
    let site = local(dir.path()).site;
    assert_eq!(Level::City.topic("checkpoint", &site), "checkpoint/policy/xining");
    assert_eq!(Level::Town.topic("checkpoint", &site), "checkpoint/policy/xining/chengzhong/nanchuan");
    assert_eq!(Level::Checkpoint.topic("checkpoint", &site), "checkpoint/policy/xining/chengzhong/nanchuan/xiaozhuang/east-gate");
}

#[test]
fn a_town_document_is_merged_namespaced_persisted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = Policy::load(local(dir.path()));
    let (config, provenance) = applied(policy.offer(Level::Town, &doc(1, "", r#""gate":{"detect_fps":3}"#)));
    let ids: Vec<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["local", "town:wanted"]);
    assert_eq!(provenance, [None, Some(Provenance { level: "town", version: 1 })]);
    assert_eq!(config.cameras[0].detect_fps, 3.0);
    let reported = policy.reported(Utc::now());
    let town = &reported.levels["town"];
    assert_eq!((town.version, town.status, town.expired_entries), (Some(1), Outcome::Applied, 1));
    assert_eq!(reported.levels["city"].status, Outcome::None);
    assert_eq!(reported.rules, ["local", "town:wanted"]);
    // A restart (with the uplink down) restores it from the state directory.
    let restored = Policy::load(local(dir.path()));
    let (config, _) = applied(restored.decision());
    assert_eq!(config.rules.len(), 2);
    assert_eq!(restored.reported(Utc::now()).levels["town"].version, Some(1));
}

#[test]
fn an_invalid_document_is_rejected_with_paths_and_the_previous_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = Policy::load(local(dir.path()));
    applied(policy.offer(Level::Town, &doc(1, "", "")));
    let bad = doc(2, r#","tolerance":5"#, r#""gate":{"detect_fps":500}"#);
    assert!(matches!(policy.offer(Level::Town, &bad), Decision::Keep));
    let town = &policy.reported(Utc::now()).levels["town"];
    assert_eq!((town.version, town.status, town.last_version), (Some(1), Outcome::Rejected, Some(2)));
    assert!(town.errors.iter().any(|e| e.starts_with("rules[0].tolerance:")), "{:?}", town.errors);
    assert!(town.errors.iter().any(|e| e.starts_with("cameras.gate.detect_fps:")), "{:?}", town.errors);
    let (config, _) = applied(policy.decision());
    assert_eq!(config.rules[1].id, "town:wanted");
    assert_eq!(config.cameras[0].detect_fps, 5.0);
    // Garbage is rejected the same way.
    assert!(matches!(policy.offer(Level::Town, b"{\"version\": \"x\"}"), Decision::Keep));
    assert_eq!(policy.reported(Utc::now()).levels["town"].version, Some(1));
}

#[test]
fn an_old_or_equal_version_is_stale_and_a_withdrawal_removes_the_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = Policy::load(local(dir.path()));
    applied(policy.offer(Level::Village, &doc(5, "", "")));
    assert!(matches!(policy.offer(Level::Village, &doc(5, "", "")), Decision::Keep));
    assert!(matches!(policy.offer(Level::Village, &doc(4, "", "")), Decision::Keep));
    let village = &policy.reported(Utc::now()).levels["village"];
    assert_eq!((village.version, village.status, village.last_version), (Some(5), Outcome::Stale, Some(4)));
    let (config, _) = applied(policy.offer(Level::Village, b""));
    assert_eq!(config.rules.len(), 1);
    assert_eq!(policy.reported(Utc::now()).levels["village"].status, Outcome::Withdrawn);
    assert!(Policy::load(local(dir.path())).in_force.is_empty(), "the withdrawn document is not restored");
}

#[test]
fn with_trusted_keys_only_signed_documents_are_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen();
    let (stranger, _) = keygen();
    let mut config = local(dir.path());
    config.control.trusted_keys = vec![public];
    let mut policy = Policy::load(config);
    assert!(matches!(policy.offer(Level::City, &doc(1, "", "")), Decision::Keep), "unsigned");
    assert!(matches!(policy.offer(Level::City, &sign(&doc(1, "", ""), &stranger).unwrap()), Decision::Keep), "unknown key");
    assert!(policy.reported(Utc::now()).levels["city"].errors[0].starts_with("signature:"));
    applied(policy.offer(Level::City, &sign(&doc(1, "", ""), &secret).unwrap()));
    assert_eq!(policy.reported(Utc::now()).levels["city"].status, Outcome::Applied);
}

#[test]
fn the_report_counts_entries_expired_at_the_moment_it_is_made_and_says_when_the_next_expires() {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = Policy::load(local(dir.path()));
    let document = String::from_utf8(doc(1, "", "")).unwrap().replace("2020-01-01T00:00:00Z", "2026-12-01T12:00:00Z");
    applied(policy.offer(Level::Town, document.as_bytes()));
    let source = policy.report_source();
    let before: DateTime<Utc> = "2026-12-01T11:59:59Z".parse().unwrap();
    let after: DateTime<Utc> = "2026-12-01T12:00:01Z".parse().unwrap();
    // Made once, sent twice: each time with that moment's count and time.
    assert_eq!((source.at(before).levels["town"].expired_entries, source.at(before).ts.as_str()), (0, "2026-12-01T11:59:59.000Z"));
    assert_eq!((source.at(after).levels["town"].expired_entries, source.at(after).ts.as_str()), (1, "2026-12-01T12:00:01.000Z"));
    assert_eq!(source.next_expiry(before), Some("2026-12-01T12:00:00Z".parse().unwrap()));
    assert_eq!(source.next_expiry(after), None);
}
