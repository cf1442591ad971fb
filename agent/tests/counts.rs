//! Reports up the grid end to end: a looping clip of a car driving in across a line, counted in 2-second
//! periods, with the broker stopped across several period boundaries while the duty officer disposes of the
//! car's watch-list alert; every period and the disposition arrive afterwards, once, and the counts agree
//! exactly with the `end` events published in each period.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{config, file_url, http_raw, web_addr, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const CAMERA: &str = "loop_file = true\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

fn counts(sub: &Subscriber) -> Vec<Value> {
    sub.messages().iter().filter(|m| m.topic == format!("{BASE}/gate/counts")).map(|m| m.json()).collect()
}

const WATCH_RULE: &str = "[[rules]]\nid = \"watched\"\nkind = \"watch_list\"\nplates = [\"苏ED51712\"]\nseverity = \"critical\"\n\n";

#[test]
fn counts_and_a_disposition_made_during_an_outage_arrive_afterwards_once_and_the_counts_agree_with_the_end_events() {
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), &format!("{BASE}/gate/#"), "platform-counts");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate", url: file_url(&clip), extra: CAMERA }], &format!("[reports]\ncounts_period_secs = 2\n\n{WATCH_RULE}"));
    assert!(common::users_add(&cfg, "duty", "operator", "village-gate-2026").status.success());
    let mut agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    sub.wait_for(Duration::from_secs(90), "a first end event", |m| m.topic.ends_with("/events") && m.json()["phase"] == "end");
    sub.wait_for(Duration::from_secs(30), "a first period", |m| m.topic.ends_with("/counts"));
    let alert = sub.wait_for(Duration::from_secs(30), "the watch-list alert", |m| m.topic.ends_with("/gate/alerts")).json();
    // The uplink is down across several periods, and the alert is disposed of meanwhile.
    broker.stop();
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let disposed = http_raw(
        &addr,
        "POST",
        &format!("/api/alerts/{}/dispose", alert["id"].as_str().unwrap()),
        &[&format!("Cookie: {cookie}"), "Content-Type: application/json"],
        r#"{"outcome":"registered","note":"已登记"}"#,
    );
    assert!(disposed.starts_with("HTTP/1.1 200"), "{disposed}");
    std::thread::sleep(Duration::from_secs(7));
    broker.restart();
    let disposition = sub.wait_for(Duration::from_secs(60), "the disposition after the outage", |m| m.topic == format!("{BASE}/gate/dispositions")).json();
    assert_valid("disposition.v1.json", &disposition);
    assert_eq!((disposition["alert_id"].as_str(), disposition["outcome"].as_str(), disposition["by"].as_str()), (alert["id"].as_str(), Some("registered"), Some("duty")));
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&sub).len() < 8 {
        assert!(Instant::now() < deadline, "counts after the outage: {:?}", counts(&sub));
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));
    std::thread::sleep(Duration::from_secs(2));

    let dispositions = sub.messages().iter().filter(|m| m.topic == format!("{BASE}/gate/dispositions")).count();
    assert_eq!(dispositions, 1, "the disposition arrived once");
    let counts = counts(&sub);
    for c in &counts {
        assert_valid("counts.v1.json", c);
    }
    // Once each, and no period missing.
    let starts: Vec<&str> = counts.iter().map(|c| c["period_start"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = starts.iter().copied().collect();
    assert_eq!(unique.len(), starts.len(), "a period arrived twice: {starts:?}");
    let times: Vec<chrono::DateTime<chrono::Utc>> = unique.iter().map(|s| s.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| (w[1] - w[0]).num_seconds() == 2), "a period is missing: {starts:?}");

    // The counts agree with the end events published in each period.
    let mut ends: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for m in sub.messages().iter().filter(|m| m.topic == format!("{BASE}/gate/events")) {
        let e = m.json();
        // An `end` merged into another chain is not a passing (the contract says so; the counts skip it).
        if e["phase"] != "end" || e.get("merged_into").is_some() {
            continue;
        }
        let ts: chrono::DateTime<chrono::Utc> = e["ts"].as_str().unwrap().parse().unwrap();
        let start = chrono::DateTime::from_timestamp(ts.timestamp() - ts.timestamp().rem_euclid(2), 0).unwrap();
        let key = start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let entry = ends.entry(key).or_default();
        match e["direction"].as_str() {
            Some("in") => entry.0 += 1,
            Some("out") => entry.1 += 1,
            _ => entry.2 += 1,
        }
    }
    let mut vehicles = 0;
    for c in &counts {
        let start = c["period_start"].as_str().unwrap();
        let v = &c["vehicles"];
        let got = (v["in"].as_u64().unwrap(), v["out"].as_u64().unwrap(), v["none"].as_u64().unwrap());
        assert_eq!(got, ends.get(start).copied().unwrap_or_default(), "period {start}");
        vehicles += got.0 + got.1 + got.2;
    }
    assert!(vehicles >= 1, "no vehicle counted: {counts:?}");
    // Kept locally too.
    let local = std::fs::read_dir(dir.path().join("state/counts")).unwrap().count();
    assert!(local >= 1);
}
