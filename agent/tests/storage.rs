//! The state directory's disk filling up while a camera runs, on a real file system: a tmpfs of a few
//! dozen megabytes mounted as the state directory (so these tests need root; `make test` runs them as root,
//! as CI does). Nothing the agent recorded locally may be missing upstream, passings made during and after
//! the full disk arrive without a restart, the problem shows in the status, `/healthz` and the duty desk
//! while it lasts, and a stop with the disk full ends within the deadline; the GA/T 1400 uplink's records
//! made while the disk is full arrive once it has space again, once each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const LINE: &str = "loop_file = true\n\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

/// A tmpfs mounted for the length of a test.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size_mb: u64) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0755"), "tmpfs"]).arg(dir).status().unwrap().success();
        assert!(ok, "cannot mount a tmpfs on {} (these tests need root)", dir.display());
        Self { dir: dir.to_path_buf() }
    }

    fn free(&self) -> u64 {
        edge_agent::storage::free_bytes(&self.dir).unwrap()
    }

    /// Writes a file of `bytes` real bytes (or until the disk is full).
    fn ballast(&self, name: &str, bytes: u64) -> PathBuf {
        let path = self.dir.join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 1 << 20];
        let mut written = 0u64;
        while written < bytes {
            let n = chunk.len().min((bytes - written) as usize);
            match f.write_all(&chunk[..n]) {
                Ok(()) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("ballast: {e}"),
            }
        }
        let _ = f.sync_all();
        path
    }

    /// Fills the disk to the last byte.
    fn fill(&self, name: &str) -> PathBuf {
        let path = self.ballast(name, u64::MAX);
        // Whatever the page-sized chunks left.
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            while f.write_all(&[0u8; 512]).is_ok() {}
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    // The effective user id, from /proc.
    std::fs::read_to_string("/proc/self/status").unwrap_or_default().lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn wait_until(agent: &Agent, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; agent log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every event message the agent logged locally, as (id, seq, ts).
fn logged_events(state: &Path) -> Vec<(String, u64, String)> {
    let mut files: Vec<_> = std::fs::read_dir(state.join("events")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .map(|v| (v["id"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap(), v["ts"].as_str().unwrap_or_default().to_string()))
        .collect()
}

fn received_events(sub: &Subscriber) -> Vec<Value> {
    sub.messages().iter().filter(|m| m.topic.ends_with("/events")).map(|m| m.json()).collect()
}

fn last_status(sub: &Subscriber) -> Option<Value> {
    sub.messages().iter().rev().find(|m| m.topic == format!("{BASE}/status")).map(|m| m.json())
}

fn healthz(agent: &Agent) -> (u16, Value) {
    let (code, body) = common::http_get(&agent.metrics_addr(), "/healthz");
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn metric(agent: &Agent, name: &str) -> f64 {
    common::metric(&common::http_get(&agent.metrics_addr(), "/metrics").1, name).unwrap_or(-1.0)
}

fn start(dir: &Path, disk_mb: u64, broker: &Broker) -> (SmallDisk, PathBuf) {
    let disk = SmallDisk::mount(&dir.join("state"), disk_mb);
    // The clip ring on another disk (as on a tmpfs): what fills this one is the outbox's alone.
    let ring = format!("[clips]\nring_dir = \"{}\"\n", dir.join("ring").display());
    let cfg = config(dir, Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], &ring);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[storage]\n", "[storage]\nmin_free_mb = 8\n");
    std::fs::write(&cfg, text).unwrap();
    (disk, cfg)
}

#[test]
#[ignore = "needs root: mounts a tmpfs as the state directory (make test runs it as root)"]
fn a_full_disk_delays_reports_loses_none_and_everything_resumes_without_a_restart() {
    assert!(is_root(), "run as root");
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), "checkpoint/#", "platform-consumer");
    let dir = tempfile::tempdir().unwrap();
    let (disk, cfg) = start(dir.path(), 64, &broker);
    assert!(common::users_add(&cfg, "duty", "operator", "duty-pass-1").status.success());
    let mut agent = Agent::start(&cfg);
    let web = common::web_addr(&agent);
    let cookie = common::web_login(&web, "duty", "duty-pass-1");
    wait_until(&agent, Duration::from_secs(90), "first events", || received_events(&sub).len() >= 3);
    assert_eq!(healthz(&agent).0, 200, "{:?}", healthz(&agent));

    // Below the floor: the agent deletes its own old snapshots, then refuses new ones; events go on.
    let below = disk.ballast("ballast-1", disk.free().saturating_sub(4 << 20));
    wait_until(&agent, Duration::from_secs(30), "the status saying the disk is full", || last_status(&sub).is_some_and(|s| s["storage"]["state"] == "full"));
    let status = last_status(&sub).unwrap();
    assert_valid("status.v1.json", &status);
    assert!(status["storage"]["problem"].as_str().unwrap().contains("below the floor"), "{status}");
    wait_until(&agent, Duration::from_secs(30), "/healthz saying so", || healthz(&agent).0 == 503);
    let (_, health) = healthz(&agent);
    assert_eq!(health["status"], "failing", "{health}");
    assert!(health["problems"][0].as_str().unwrap().starts_with("storage full"), "{health}");
    let (_, desk) = common::http_get_with(&web, "/api/cameras", &[&format!("Cookie: {cookie}")]);
    let desk: Value = serde_json::from_str(&desk).unwrap();
    assert_eq!(desk["agent"]["storage"], "full", "the duty desk shows it: {desk}");
    let before = received_events(&sub).len();
    wait_until(&agent, Duration::from_secs(60), "a passing while below the floor", || received_events(&sub)[before..].iter().any(|e| e["phase"] == "end"));
    let end = received_events(&sub)[before..].iter().find(|e| e["phase"] == "end").cloned().unwrap();
    assert!(end["snapshot"].is_null(), "no snapshot is kept below the floor: {end}");

    // Full to the last byte while the uplink is down too (so the backlog must grow): the outbox cannot
    // commit, passings wait in memory, the camera goes on.
    broker.stop();
    let full_at = chrono::Utc::now();
    let rest = disk.fill("ballast-2");
    wait_until(&agent, Duration::from_secs(90), "events held in memory", || metric(&agent, "edge_agent_outbox_held_messages") >= 2.0);
    wait_until(&agent, Duration::from_secs(30), "/healthz saying the outbox cannot write", || {
        let (code, health) = healthz(&agent);
        code == 503 && health["problems"].to_string().contains("the outbox cannot write")
    });
    wait_until(&agent, Duration::from_secs(30), "the duty desk saying records wait in memory and the uplink is down", || {
        let (_, desk) = common::http_get_with(&web, "/api/cameras", &[&format!("Cookie: {cookie}")]);
        let desk: Value = serde_json::from_str(&desk).unwrap_or(Value::Null);
        desk["agent"]["held"].as_u64().unwrap_or(0) >= 1 && desk["agent"]["uplink"] == "disconnected"
    });
    std::thread::sleep(Duration::from_secs(5));

    // Space and the uplink come back: everything held is committed and delivered, in order, with no
    // restart.
    std::fs::remove_file(&rest).unwrap();
    std::fs::remove_file(&below).unwrap();
    wait_until(&agent, Duration::from_secs(30), "the held events committed", || metric(&agent, "edge_agent_outbox_held_messages") == 0.0);
    broker.restart();
    let back_at = chrono::Utc::now();
    wait_until(&agent, Duration::from_secs(60), "the status saying the disk is fine", || last_status(&sub).is_some_and(|s| s["storage"]["state"] == "ok"));
    wait_until(&agent, Duration::from_secs(30), "/healthz ok again", || healthz(&agent).0 == 200);
    assert_eq!(metric(&agent, "edge_agent_outbox_held_messages"), 0.0);
    wait_until(&agent, Duration::from_secs(60), "a passing made after space came back", || {
        received_events(&sub).iter().any(|e| e["phase"] == "end" && e["ts"].as_str().is_some_and(|t| t > back_at.to_rfc3339().as_str()))
    });
    let full_ts = full_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let back_ts = back_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let made_while_full = received_events(&sub).iter().filter(|e| e["ts"].as_str().is_some_and(|t| t > full_ts.as_str() && t < back_ts.as_str())).count();
    assert!(made_while_full >= 2, "events made while the disk was full were delivered afterwards ({made_while_full})");
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0), "{}", agent.log());

    // Nothing recorded locally is missing upstream; nothing arrived twice out of order.
    let got: BTreeSet<(String, u64)> = received_events(&sub).iter().map(|e| (e["id"].as_str().unwrap().to_string(), e["seq"].as_u64().unwrap())).collect();
    let logged = logged_events(&dir.path().join("state"));
    let missing: Vec<_> = logged.iter().filter(|(id, seq, _)| !got.contains(&(id.clone(), *seq))).collect();
    assert!(missing.is_empty(), "{} of {} locally recorded events never arrived: {missing:?}", missing.len(), logged.len());
    assert!(logged.iter().any(|(_, _, ts)| ts.as_str() > full_ts.as_str() && ts.as_str() < back_ts.as_str()), "the local record caught up with what was held");
    assert!(agent.log().contains("outbox writable again"), "{}", agent.log());
    if std::env::var_os("EDGE_TEST_SHOW_LOG").is_some() {
        eprintln!("{}", agent.log());
    }
}

#[test]
#[ignore = "needs root: mounts a tmpfs as the state directory (make test runs it as root)"]
fn sigterm_with_the_disk_full_stops_within_the_deadline_and_counts_what_it_could_not_keep() {
    assert!(is_root(), "run as root");
    let mut broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let (disk, cfg) = start(dir.path(), 32, &broker);
    let mut agent = Agent::start(&cfg);
    wait_until(&agent, Duration::from_secs(90), "first events", || received_events(&sub).len() >= 2);
    // With the uplink down the backlog must grow, so once the disk is full commits fail for good (a first
    // failure may still be followed by a commit that fits in pages the failed one left free).
    broker.stop();
    let _rest = disk.fill("ballast");
    let mut held_for = 0;
    wait_until(&agent, Duration::from_secs(120), "events held in memory for 3 s", || {
        held_for = if metric(&agent, "edge_agent_outbox_held_messages") >= 1.0 { held_for + 1 } else { 0 };
        held_for >= 15
    });
    let (code, took, log) = agent.stop_timed();
    assert!(took < Duration::from_secs(22), "stopping took {took:?}:\n{log}");
    assert_eq!(code, Some(2), "messages were lost, and the exit status says so:\n{log}");
    assert!(log.contains("outbox stopped with messages it could not write to disk: they are lost"), "{log}");
    assert!(log.contains("left_behind=") && log.contains("the disk would not take"), "{log}");
}

#[test]
#[ignore = "needs root: mounts a tmpfs for the clip ring (make test runs it as root)"]
fn a_full_clip_disk_stops_the_recorder_only_and_it_records_again_when_space_is_back() {
    assert!(is_root(), "run as root");
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let ring = SmallDisk::mount(&dir.path().join("ring"), 16);
    let clips = format!("[clips]\nkeep = \"passings\"\npre_capture_secs = 2\npost_capture_secs = 1\nring_dir = \"{}\"\nring_max_mb = 4\n", dir.path().join("ring").display());
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], &clips);
    let agent = Agent::start(&cfg);
    let kept = || metric(&agent, "edge_agent_clips_total{result=\"kept\"}");
    wait_until(&agent, Duration::from_secs(90), "a first clip", || kept() >= 1.0);
    // The ring's disk fills up: the recorder fails, and nothing else does.
    let ballast = ring.fill("ballast");
    wait_until(&agent, Duration::from_secs(60), "the recorder failed", || metric(&agent, "edge_agent_clip_recorder{camera=\"gate-in\",state=\"failed\"}") == 1.0);
    let events = received_events(&sub).len();
    wait_until(&agent, Duration::from_secs(60), "events going on", || received_events(&sub).len() >= events + 4);
    assert_eq!(healthz(&agent).0, 200, "{:?}", healthz(&agent));
    // Space again: within its retry interval the recorder records, and clips are cut again.
    std::fs::remove_file(&ballast).unwrap();
    wait_until(&agent, Duration::from_secs(60), "recording again", || metric(&agent, "edge_agent_clip_recorder{camera=\"gate-in\",state=\"recording\"}") == 1.0);
    let before = kept();
    wait_until(&agent, Duration::from_secs(60), "a clip after the disk was freed", || kept() > before);
    assert!(agent.log().contains("clip recorder stopped; starting it again shortly"));
}

/// A `[gat1400]` section for a test server on `port`.
fn gat1400_section(port: u16) -> String {
    format!("[gat1400]\nserver = \"http://127.0.0.1:{port}\"\ndevice_id = \"63010200001190000001\"\npassword = \"s3cret\"\nkeepalive_secs = 10\n\n")
}

fn viid_account() -> testkit::gat1400::Account {
    testkit::gat1400::Account { device_id: "63010200001190000001".into(), user: "63010200001190000001".into(), password: "s3cret".into(), realm: "viid".into() }
}

#[test]
#[ignore = "needs root: mounts a tmpfs as the state directory (make test runs it as root)"]
fn a_full_disk_delays_gat1400_records_and_loses_none() {
    use testkit::gat1400::Gat1400Server;
    assert!(is_root(), "run as root");
    // The MQTT uplink stays up: what it delivers is the list of passings (the local logs cannot be written
    // while the disk is full, MQTT gets them afterwards).
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("state"), 64);
    let server = Gat1400Server::start(0, viid_account());
    let port = server.port;
    let extra = format!("[clips]\nring_dir = \"{}\"\n\n{}", dir.path().join("ring").display(), gat1400_section(port));
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[storage]\n", "[storage]\nmin_free_mb = 8\n");
    std::fs::write(&cfg, &text).unwrap();
    let mut agent = Agent::start(&cfg);
    let first = server.wait_for(Duration::from_secs(90), |s| !s.taken.is_empty());
    assert!(!first.taken.is_empty(), "no record before the disk filled; log:\n{}", agent.log());

    // The platform goes away and the disk fills to the last byte: records are still made (held in memory
    // by the queue's writer), the camera goes on.
    drop(server);
    let queued = |agent: &Agent| metric(agent, "edge_agent_gat1400_records_total{result=\"queued\"}");
    let rest = disk.fill("ballast");
    let before = queued(&agent);
    wait_until(&agent, Duration::from_secs(90), "records made while the disk is full", || queued(&agent) >= before + 2.0);
    assert_eq!(metric(&agent, "edge_agent_gat1400_records_total{result=\"not_queued\"}"), 0.0);

    // Space and the platform come back; the camera is taken out (a reload) so the count can settle.
    std::fs::remove_file(&rest).unwrap();
    let server = Gat1400Server::start(port, viid_account());
    let without_camera = text.split("\n[[cameras]]").next().unwrap().to_string();
    std::fs::write(&cfg, without_camera).unwrap();
    agent.signal("HUP");
    agent.wait_log("configuration reloaded", 1, Duration::from_secs(30));
    wait_until(&agent, Duration::from_secs(120), "both queues delivered", || {
        metric(&agent, "edge_agent_gat1400_waiting") == 0.0 && metric(&agent, "edge_agent_outbox_depth") == 0.0 && !server.seen().taken.is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let second = server.seen();
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0), "{}", agent.log());
    // The record queue itself met the full disk, and held what it could not write.
    assert!(agent.log().lines().any(|l| l.contains("outbox commit failed") && l.contains("gat1400.redb")), "{}", agent.log());
    assert!(first.violations.is_empty() && second.violations.is_empty(), "{:?} {:?}", first.violations, second.violations);

    // Every passing delivered over MQTT arrived once, by one MotorVehicleID each.
    let passings: Vec<Value> = received_events(&sub).into_iter().filter(|e| e["phase"] == "end" && e["type"] == "vehicle" && e["merged_into"].is_null()).collect();
    let taken: Vec<&Value> = first.taken.iter().chain(&second.taken).map(|t| &t.object).collect();
    let ids: BTreeSet<&str> = taken.iter().map(|o| o["MotorVehicleID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), passings.len(), "{} distinct records for {} passings", ids.len(), passings.len());
    assert_eq!(taken.len(), ids.len(), "a record arrived twice");
    assert!(passings.len() >= 4, "{} passings", passings.len());
}
