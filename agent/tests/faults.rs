//! Faults a village PC meets in the field, against the real agent, a real Mosquitto and real GStreamer: a
//! command whose id cannot be part of a topic, a message the broker refuses, a camera thread that hangs,
//! and stop signals while something is stuck. None of them may silence the checkpoint or keep it from
//! stopping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const LINE: &str = "loop_file = true\n\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

fn cmd(id: &str, name: &str, args: &str) -> String {
    format!(r#"{{"schema":"edge-agent/command/v1","id":{},"command":"{name}","args":{{{args}}},"expires_at":"2099-01-01T00:00:00Z"}}"#, Value::String(id.into()))
}

/// Publishes a command (QoS 1) with `mosquitto_pub`.
fn publish_command(port: u16, body: &str) {
    let out = Command::new("/usr/bin/mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", &format!("{BASE}/commands"), "-s"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(body.as_bytes())?;
            child.wait_with_output()
        });
    assert!(out.unwrap().status.success(), "mosquitto_pub failed");
}

/// Signs a command with the platform's key (`edge-agent policy sign`).
fn signed(dir: &Path, key: &Path, body: &str) -> String {
    let file = dir.join(format!("command-{}.json", testkit::broker::free_port()));
    std::fs::write(&file, body).unwrap();
    let out = common::command().args(["policy", "sign", "--key"]).arg(key).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn result(sub: &Subscriber, id: &str) -> Value {
    let m = sub.wait_for(Duration::from_secs(30), &format!("the result of {id:?}"), |m| m.topic == format!("{BASE}/results") && m.json()["id"] == id);
    let v = m.json();
    assert_valid("result.v1.json", &v);
    v
}

fn events_received(sub: &Subscriber) -> usize {
    sub.messages().iter().filter(|m| m.topic.ends_with("/events")).count()
}

fn wait_until(agent: &Agent, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn command_ids_that_cannot_be_topic_levels_are_refused_with_the_reason_and_events_keep_flowing() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let public = String::from_utf8(common::command().args(["policy", "keygen", "--out"]).arg(&keys).output().unwrap().stdout).unwrap().trim().to_string();
    let key = keys.join("policy.key");
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let cfg = config(
        dir.path(),
        Some(broker.port()),
        &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }],
        &format!("[control]\ntrusted_keys = [\"{public}\"]\n\n"),
    );
    let agent = Agent::start(&cfg);
    sub.wait_for(Duration::from_secs(60), "the camera online", |m| m.topic.ends_with("/status") && m.json()["cameras"][0]["state"] == "online");
    wait_until(&agent, Duration::from_secs(60), "first events", || events_received(&sub) >= 2);

    let long = "x".repeat(200);
    for (id, why) in [("snap#1", "'#'"), ("snap+1", "'+'"), (long.as_str(), "200 bytes long, at most 64")] {
        publish_command(broker.port(), &signed(dir.path(), &key, &cmd(id, "snapshot", r#""camera":"gate-in""#)));
        let answered_id: String = id.chars().take(64).collect();
        let r = result(&sub, &answered_id);
        assert_eq!(r["status"], "rejected", "{r}");
        let detail = r["detail"].as_str().unwrap();
        assert!(detail.starts_with("id: ") && detail.contains(why), "{id:?}: {detail}");
    }
    // The agent goes on: a good command is answered with its snapshot, and events keep arriving.
    let before = events_received(&sub);
    publish_command(broker.port(), &signed(dir.path(), &key, &cmd("snap-1", "snapshot", r#""camera":"gate-in""#)));
    let r = result(&sub, "snap-1");
    assert_eq!(r["status"], "done", "{r}");
    sub.wait_for(Duration::from_secs(30), "the snapshot", |m| m.topic == format!("{BASE}/gate-in/snapshots/snap-1"));
    wait_until(&agent, Duration::from_secs(60), "events after the refused commands", || events_received(&sub) >= before + 2);
    assert!(!sub.messages().iter().any(|m| m.topic.contains("snap#") || m.topic.contains("snap+")), "nothing was published on a topic built from a bad id");
    assert!(!agent.log().contains("dead letters"), "a refused command leaves nothing to dead-letter:\n{}", agent.log());
}

#[test]
fn a_message_the_broker_refuses_is_dead_lettered_and_the_next_ones_arrive() {
    // Mosquitto drops the connection of a client that sends a packet over its max_packet_size.
    const LIMIT: usize = 40_000;
    let broker = Broker::start_with(&format!("allow_anonymous true\nmax_packet_size {LIMIT}\n"));
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    // Event snapshots small enough for the broker; the snapshot command's full frame is not.
    let small = "[events]\nsnapshot_max_width = 320\nsnapshot_max_bytes = 15000\n\n";
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], small);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("keep_alive_secs = 5", "keep_alive_secs = 5\nreconnect_max_secs = 2");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg);
    sub.wait_for(Duration::from_secs(60), "the camera online", |m| m.topic.ends_with("/status") && m.json()["cameras"][0]["state"] == "online");
    wait_until(&agent, Duration::from_secs(60), "first events", || events_received(&sub) >= 2);

    publish_command(broker.port(), &cmd("big-1", "snapshot", r#""camera":"gate-in""#));
    let r = result(&sub, "big-1");
    assert_eq!(r["status"], "done", "{r}");
    let bytes = r["data"]["bytes"].as_u64().unwrap() as usize;
    assert!(bytes > LIMIT, "the frame snapshot ({bytes} bytes) must be over the broker's limit for this test to mean anything");
    // The broker refuses it three times; then it is moved aside, named in the retained status.
    let named = |m: &testkit::broker::Message| m.topic == format!("{BASE}/status") && m.json()["dead_letters"]["total"].as_u64().unwrap_or(0) >= 1;
    wait_until(&agent, Duration::from_secs(90), "a status naming the dead letter", || sub.messages().iter().any(named));
    let status = sub.messages().into_iter().find(named).unwrap().json();
    assert_valid("status.v1.json", &status);
    let last = &status["dead_letters"]["last"];
    assert_eq!(last["topic"], format!("{BASE}/gate-in/snapshots/big-1"), "{status}");
    assert!(last["reason"].as_str().unwrap().contains("the broker closed the connection each of the 3 times"), "{status}");
    // What comes after it is delivered.
    let before = events_received(&sub);
    publish_command(broker.port(), &cmd("diag-1", "diagnostics", ""));
    let diag = result(&sub, "diag-1");
    assert_eq!(diag["data"]["outbox"]["dead_letters"][0]["topic"], format!("{BASE}/gate-in/snapshots/big-1"), "{diag}");
    wait_until(&agent, Duration::from_secs(60), "events after the dead letter", || events_received(&sub) >= before + 2);
    assert!(!sub.messages().iter().any(|m| m.topic.ends_with("/snapshots/big-1")), "the refused message never arrived");
    let stats = sub.wait_for(Duration::from_secs(30), "stats counting it", |m| m.topic.ends_with("/stats") && m.json()["outbox"]["dead_letters_total"].as_u64() >= Some(1));
    assert_valid("stats.v1.json", &stats.json());
    let metrics = common::http_get(&agent.metrics_addr(), "/metrics").1;
    assert_eq!(common::metric(&metrics, "edge_agent_outbox_dead_letters_total"), Some(1.0), "{metrics}");
    assert!(agent.log().contains("message moved to the dead letters"), "{}", agent.log());
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0), "{}", agent.log());
}

/// A camera whose source blocks its thread for good: a file source on a FIFO nobody writes to (the open
/// never returns, as on a dead network mount).
fn stuck_camera(dir: &Path) -> String {
    let fifo = dir.join("camera.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    format!("file://{}", fifo.display())
}

#[test]
fn sigterm_with_a_stuck_camera_stops_within_the_deadline_and_says_what_was_left() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), &format!("{BASE}/status"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        Some(broker.port()),
        &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }, Cam { id: "stuck", url: stuck_camera(dir.path()), extra: "" }],
        "",
    );
    let mut agent = Agent::start(&cfg);
    sub.wait_for(Duration::from_secs(60), "the good camera online", |m| {
        m.json()["cameras"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == "gate-in" && c["state"] == "online"))
    });
    let (code, took, log) = agent.stop_timed();
    assert!(took < Duration::from_secs(22), "stopping took {took:?}, over the 20 s deadline:\n{log}");
    assert_eq!(code, Some(2), "something was left behind, so the exit status says so:\n{log}");
    assert!(log.contains("cameras still running after the stop deadline") && log.contains("stuck"), "{log}");
    assert!(log.contains("left_behind=") && log.contains("camera threads stuck"), "{log}");
    // The clean parts of the stop still happened: the platform heard `stopped`.
    sub.wait_for(Duration::from_secs(5), "the stopped status", |m| m.json()["state"] == "stopped");
}

#[test]
fn a_second_stop_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[Cam { id: "stuck", url: stuck_camera(dir.path()), extra: "" }], "");
    let mut agent = Agent::start(&cfg);
    agent.wait_log("agent ready", 1, Duration::from_secs(90));
    agent.signal("TERM");
    agent.wait_log("shutting down", 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    agent.signal("INT");
    let code = agent.wait(Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(3), "a second signal took {:?}", started.elapsed());
    assert_eq!(code, Some(2), "{}", agent.log());
    assert!(agent.log().contains("second stop signal: exiting at once"), "{}", agent.log());
}
