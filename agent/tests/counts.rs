//! Flow counts end to end: a looping clip of a car driving in across a line, counted in 2-second periods,
//! with the broker stopped across several period boundaries; every period arrives afterwards, once, and the
//! counts agree exactly with the `end` events published in each period.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const CAMERA: &str = "loop_file = true\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

fn counts(sub: &Subscriber) -> Vec<Value> {
    sub.messages().iter().filter(|m| m.topic == format!("{BASE}/gate/counts")).map(|m| m.json()).collect()
}

#[test]
fn counts_of_periods_closed_during_an_outage_arrive_afterwards_once_and_agree_with_the_end_events() {
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), &format!("{BASE}/gate/#"), "platform-counts");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate", url: file_url(&clip), extra: CAMERA }], "[reports]\ncounts_period_secs = 2\n\n");
    let mut agent = Agent::start(&cfg);
    sub.wait_for(Duration::from_secs(90), "a first end event", |m| m.topic.ends_with("/events") && m.json()["phase"] == "end");
    sub.wait_for(Duration::from_secs(30), "a first period", |m| m.topic.ends_with("/counts"));
    // The uplink is down across several periods.
    broker.stop();
    std::thread::sleep(Duration::from_secs(7));
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&sub).len() < 8 {
        assert!(Instant::now() < deadline, "counts after the outage: {:?}", counts(&sub));
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));
    std::thread::sleep(Duration::from_secs(2));

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
        if e["phase"] != "end" {
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
