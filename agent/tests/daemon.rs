//! The daemon end to end: a real Mosquitto started by the test, a clip built from the shared stills played
//! as a camera, the real detector; payloads validated against the JSON Schemas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{config, file_url, Agent, Cam};
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const WAIT: Duration = Duration::from_secs(60);

fn status_is(m: &testkit::broker::Message, state: &str) -> bool {
    m.topic == format!("{BASE}/status") && m.json()["state"] == state
}

#[test]
fn daemon_publishes_status_stats_and_detections_and_stops_cleanly() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = testkit::clips::street_pan();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&clip), extra: "loop_file = true" }], "");
    let mut agent = Agent::start(&cfg);

    let online = sub.wait_for(WAIT, "status online", |m| status_is(m, "online") && m.json()["cameras"][0]["state"] == "online");
    assert!(online.retain || sub.messages().iter().any(|m| m.topic == online.topic), "status must be retained");
    assert_valid("status.v1.json", &online.json());
    let status = online.json();
    assert_eq!(status["site"], "xining/chengzhong/nanchuan/xiaozhuang/east-gate");
    assert_eq!(status["grid"]["village"], "xiaozhuang");
    assert_eq!(status["cameras"][0]["frame_size"], serde_json::json!([1280, 720]));

    let detections = sub.wait_for(WAIT, "detections with a car", |m| {
        m.topic == format!("{BASE}/gate-in/detections") && m.json()["detections"].as_array().unwrap().iter().any(|d| d["label"] == "car")
    });
    assert_valid("detections.v1.json", &detections.json());

    let stats = sub.wait_for(WAIT, "stats with analysed frames", |m| m.topic == format!("{BASE}/stats") && m.json()["cameras"][0]["frames_analysed"].as_u64().unwrap_or(0) >= 3);
    assert_valid("stats.v1.json", &stats.json());
    let cam = &stats.json()["cameras"][0];
    assert_eq!(cam["id"], "gate-in");
    assert!(cam["frames_in"].as_u64().unwrap() > cam["frames_analysed"].as_u64().unwrap(), "25 fps in, 5 fps analysed: {cam}");
    assert!(cam["inference_ms"]["mean"].as_f64().unwrap() > 0.0, "{cam}");

    // A retained status is what a subscriber joining later sees first.
    let late = Subscriber::connect(broker.port(), &format!("{BASE}/status"));
    let retained = late.wait_for(Duration::from_secs(5), "retained status", |m| m.retain);
    assert_eq!(retained.json()["state"], "online");

    agent.signal("TERM");
    let stopped = sub.wait_for(Duration::from_secs(20), "status stopped", |m| status_is(m, "stopped"));
    assert_valid("status.v1.json", &stopped.json());
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0), "{}", agent.log());
    let after = Subscriber::connect(broker.port(), &format!("{BASE}/status"));
    let retained = after.wait_for(Duration::from_secs(5), "retained status after stop", |m| m.retain);
    assert_eq!(retained.json()["state"], "stopped", "a clean stop must not leave the last will");
}

#[test]
fn sigkill_leaves_the_offline_last_will_retained() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = testkit::clips::street_pan();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&clip), extra: "loop_file = true" }], "");
    let mut agent = Agent::start(&cfg);
    sub.wait_for(WAIT, "status online", |m| status_is(m, "online"));
    agent.signal("KILL");
    agent.wait(Duration::from_secs(10));
    let offline = sub.wait_for(Duration::from_secs(30), "last will", |m| status_is(m, "offline"));
    assert_valid("status.v1.json", &offline.json());
    let later = Subscriber::connect(broker.port(), &format!("{BASE}/status"));
    let retained = later.wait_for(Duration::from_secs(5), "retained status", |m| m.retain);
    assert_eq!(retained.json()["state"], "offline");
}

#[test]
fn bad_cameras_are_reported_and_do_not_stop_a_good_one() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, b"this is not a video file at all").unwrap();
    let closed_port = testkit::broker::free_port();
    let cams = [
        Cam { id: "good", url: file_url(&testkit::clips::street_pan()), extra: "loop_file = true" },
        Cam { id: "dead", url: format!("rtsp://admin:s3cretpw@127.0.0.1:{closed_port}/stream"), extra: "" },
        Cam { id: "corrupt", url: file_url(&corrupt), extra: "" },
    ];
    let cfg = config(dir.path(), Some(broker.port()), &cams, "");
    let mut agent = Agent::start(&cfg);

    sub.wait_for(WAIT, "detections from the good camera", |m| m.topic == format!("{BASE}/good/detections"));
    let status = sub.wait_for(WAIT, "status with both bad cameras failed", |m| {
        if !status_is(m, "online") {
            return false;
        }
        let s = m.json();
        let state = |id: &str| s["cameras"].as_array().unwrap().iter().find(|c| c["id"] == id).map(|c| c["state"].clone());
        state("good") == Some("online".into()) && state("dead") == Some("unreachable".into()) && state("corrupt") == Some("failed".into())
    });
    assert_valid("status.v1.json", &status.json());
    let cameras = status.json()["cameras"].clone();
    let corrupt_error = cameras.as_array().unwrap().iter().find(|c| c["id"] == "corrupt").unwrap()["last_error"].as_str().unwrap().to_string();
    assert!(corrupt_error.contains("Could not determine type of stream"), "{corrupt_error}");

    // The good camera keeps being analysed while the others fail.
    let before = sub.messages().iter().filter(|m| m.topic == format!("{BASE}/good/detections")).count();
    std::thread::sleep(Duration::from_secs(3));
    let after = sub.messages().iter().filter(|m| m.topic == format!("{BASE}/good/detections")).count();
    assert!(after > before, "good camera stopped publishing");

    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    let log = agent.log();
    assert!(log.contains("dead") && log.contains("unreachable"), "{log}");
    assert!(!log.contains("s3cretpw"), "camera password in the log:\n{log}");
    for m in sub.messages() {
        assert!(!String::from_utf8_lossy(&m.payload).contains("s3cretpw"), "camera password published on {}", m.topic);
    }
}

#[test]
fn daemon_publishes_the_plates_it_reads() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = testkit::clips::street_still_1080p();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "lane-1", url: file_url(&clip), extra: "loop_file = true" }], "");
    let mut agent = Agent::start(&cfg);
    let message = sub.wait_for(WAIT, "detections with a plate", |m| m.topic == format!("{BASE}/lane-1/detections") && !m.json()["plates"].as_array().unwrap().is_empty());
    assert_valid("detections.v1.json", &message.json());
    let plate = &message.json()["plates"][0];
    assert_eq!(plate["text"], "苏ED51712");
    assert_eq!(plate["color"], "green");
    let stats = sub.wait_for(WAIT, "stats counting plates", |m| m.topic == format!("{BASE}/stats") && m.json()["cameras"][0]["plates"].as_u64().unwrap_or(0) > 0);
    assert_valid("stats.v1.json", &stats.json());
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn daemon_publishes_event_chains_with_their_snapshots() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let line = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&clip), extra: line }], "");
    let mut agent = Agent::start(&cfg);

    let end = sub.wait_for(WAIT, "an end event", |m| m.topic == format!("{BASE}/gate-in/events") && m.json()["phase"] == "end");
    let end = end.json();
    let chain: Vec<serde_json::Value> = sub.messages().iter().filter(|m| m.topic == format!("{BASE}/gate-in/events")).map(|m| m.json()).filter(|e| e["id"] == end["id"]).collect();
    let phases: Vec<&str> = chain.iter().map(|e| e["phase"].as_str().unwrap()).collect();
    assert_eq!(phases.first(), Some(&"new"), "{phases:?}");
    assert_eq!(phases.last(), Some(&"end"), "{phases:?}");
    for e in &chain {
        assert_valid("event.v1.json", e);
    }
    assert_eq!(end["plate"]["text"], "苏ED51712");
    assert_eq!(end["direction"], "in");
    let events = sub.messages().iter().filter(|m| m.topic.ends_with("/events")).count();
    assert_eq!(events, chain.len(), "one car, one chain");

    // The snapshot the end event references arrived on its topic, byte for byte.
    let snap = &end["snapshot"];
    let topic = snap["topic"].as_str().unwrap().to_string();
    assert_eq!(topic, format!("{BASE}/gate-in/snapshots/{}", end["id"].as_str().unwrap()));
    let jpeg = sub.wait_for(Duration::from_secs(10), "the snapshot bytes", |m| m.topic == topic).payload;
    assert_eq!(jpeg.len() as u64, snap["bytes"].as_u64().unwrap());
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&jpeg)), snap["sha256"].as_str().unwrap());
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    // And a local copy is kept for the duty desk.
    let day = &snap["taken_at"].as_str().unwrap()[..10];
    let local = dir.path().join("state/snapshots").join(day).join(format!("{}.jpg", end["id"].as_str().unwrap()));
    assert_eq!(std::fs::read(&local).unwrap(), jpeg);

    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}
