//! The GA/T 1400 (视图库) uplink against a strict test server ([`testkit::gat1400`]): the agent registers
//! with a digest (a wrong password is `unauthorised` in the retained status and retried slowly); passings
//! on a clip arrive as `MotorVehicle` records with plate, colour code, direction and pictures that decode,
//! and one the server refuses is dead-lettered without holding up the next; the server down for 30 s with
//! an agent restart in between loses and duplicates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::{config, file_url, metric, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::gat1400::{free_port, Account, Gat1400Server};

const DEVICE: &str = "63010200001190000001";
const TOLLGATE: &str = "63010200001210000007";
const LINE: &str = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

fn account(password: &str) -> Account {
    Account { device_id: DEVICE.into(), user: "checkpoint-7".into(), password: password.into(), realm: "viid.nanchuan".into() }
}

/// The `[gat1400]` section for a server on `port`, with the password the agent uses.
fn section(port: u16, password: &str) -> String {
    format!("{}[gat1400.cameras.gate-in]\nlane_no = 2\n\n", section_without_cameras(port, password))
}

/// The same, for an agent without the camera.
fn section_without_cameras(port: u16, password: &str) -> String {
    format!(
        "[gat1400]\nserver = \"http://127.0.0.1:{port}\"\ndevice_id = \"{DEVICE}\"\ntollgate_id = \"{TOLLGATE}\"\nuser = \"checkpoint-7\"\npassword = \"{password}\"\ndirection_in = \"3\"\ndirection_out = \"4\"\nkeepalive_secs = 10\n\n"
    )
}

/// The vehicle passings in the agent's event log: `end`s of chains not merged into another.
fn passings(state: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(state.join("events")).into_iter().flatten().flatten() {
        for line in std::fs::read_to_string(entry.path()).unwrap_or_default().lines() {
            let Ok(e) = serde_json::from_str::<Value>(line) else { continue };
            if e["phase"] == "end" && e["type"] == "vehicle" && e["merged_into"].is_null() {
                out.push(e);
            }
        }
    }
    out
}

fn decode(image: &Value) -> image::DynamicImage {
    let jpeg = base64::engine::general_purpose::STANDARD.decode(image["Data"].as_str().unwrap()).unwrap();
    image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap()
}

#[test]
fn a_wrong_password_is_unauthorised_in_the_status_and_retried_slowly() {
    let broker = Broker::start();
    let server = Gat1400Server::start(0, account("right-password"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[], &section_without_cameras(server.port, "wrong-password"));
    assert!(common::users_add(&cfg, "duty", "operator", "village-gate-2026").status.success());
    let status = Subscriber::connect(broker.port(), "checkpoint/+/+/+/+/+/status");
    let mut agent = Agent::start(&cfg);
    let unauthorised = |m: &testkit::broker::Message| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["gat1400"] == "unauthorised");
    status.wait_for(Duration::from_secs(60), "status saying unauthorised", unauthorised);
    // Retried, but slowly: a wrong password does not fix itself and must not hammer the platform.
    std::thread::sleep(Duration::from_secs(40));
    let seen = server.seen();
    let tries: Vec<_> = seen.registers.iter().filter(|r| r.with_digest).collect();
    assert!(tries.iter().all(|r| !r.accepted));
    assert!((2..=3).contains(&tries.len()), "{} digest registrations in about 40 s", tries.len());
    for pair in tries.windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_secs(25), "retried after {:?}", pair[1].at - pair[0].at);
    }
    assert!(seen.violations.is_empty(), "{:?}", seen.violations);
    // The retained status says so to whoever looks later.
    let later = Subscriber::connect(broker.port(), "checkpoint/+/+/+/+/+/status");
    assert!(later.wait_for(Duration::from_secs(10), "the retained status", unauthorised).retain);
    let page = common::http_get(&agent.metrics_addr(), "/metrics").1;
    assert_eq!(metric(&page, "edge_agent_gat1400_state{state=\"unauthorised\"}"), Some(1.0));
    // /healthz says the agent needs attention, and the duty desk's banner says why.
    let (code, health) = common::http_get(&agent.metrics_addr(), "/healthz");
    assert_eq!(code, 200, "{health}");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "degraded");
    assert!(health["problems"].as_array().unwrap().iter().any(|p| p.as_str().unwrap().starts_with("GA/T 1400 uplink unauthorised")), "{health}");
    let addr = common::web_addr(&agent);
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let (_, body) = common::http_get_with(&addr, "/api/cameras", &[&format!("Cookie: {cookie}")]);
    let desk: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(desk["agent"]["gat1400"], "unauthorised", "{body}");
    agent.stop_timed();
    // The password never reaches the log.
    assert!(!agent.log().contains("wrong-password"), "the password is in the log");
}

#[test]
fn passings_arrive_as_motor_vehicles_with_their_pictures_and_a_refused_one_does_not_block_the_next() {
    let broker = Broker::start();
    let server = Gat1400Server::start(0, account("s3cret"));
    // The platform cannot store the first car's record.
    server.refuse_plate("苏ED51712");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::two_cars()), extra: LINE }], &section(server.port, "s3cret"));
    let status = Subscriber::connect(broker.port(), "checkpoint/+/+/+/+/+/status");
    let mut agent = Agent::start(&cfg);
    status.wait_for(Duration::from_secs(60), "status saying registered", |m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["gat1400"] == "registered"));
    let seen = server.wait_for(Duration::from_secs(120), |s| !s.refused.is_empty() && s.taken.iter().any(|t| t.object["PlateNo"] == "京PL3N67"));
    let page = common::http_get(&agent.metrics_addr(), "/metrics").1;
    agent.stop_timed();
    assert!(seen.violations.is_empty(), "the server found the protocol broken: {:#?}", seen.violations);
    let first = seen.registers.iter().position(|r| r.accepted).expect("registered");
    assert!(seen.registers[first].with_digest && first >= 1, "registered without answering the challenge: {:?}", seen.registers);
    assert!(seen.time_requests >= 1, "the clock was not checked");
    assert_eq!(seen.refused.len(), 1, "{:?}", seen.refused);
    let taken: Vec<&Value> = seen.taken.iter().map(|t| &t.object).collect();
    assert_eq!(taken.len(), 1, "one record for the second car: {taken:#?}");
    let v = taken[0];
    assert_eq!(v["PlateNo"], "京PL3N67");
    assert_eq!(v["HasPlate"], "1");
    assert_eq!(v["PlateColor"], "5", "a blue plate");
    assert_eq!(v["PlateClass"], "02", "a small car's plate");
    assert_eq!(v["Direction"], "3", "in, configured as south to north");
    assert_eq!(v["LaneNo"], 2);
    assert_eq!(v["VehicleClass"], "K33");
    assert_eq!((v["DeviceID"].as_str(), v["TollgateID"].as_str()), (Some(DEVICE), Some(TOLLGATE)));
    let images = v["SubImageList"]["SubImageInfoObject"].as_array().unwrap();
    let types: Vec<&str> = images.iter().map(|i| i["Type"].as_str().unwrap()).collect();
    assert_eq!(types, ["14", "01", "02"], "scene, vehicle and plate pictures");
    let scene = decode(&images[0]);
    assert_eq!((scene.width(), scene.height()), (1280, 720), "the whole 1080p frame scaled to scene_width");
    assert_eq!(v["SourceID"], images[0]["ImageID"], "the box refers to the scene");
    let (x1, x2) = (v["LeftTopX"].as_u64().unwrap(), v["RightBtmX"].as_u64().unwrap());
    assert!(x1 < x2 && x2 <= 1280);
    let plate = decode(&images[2]);
    assert!(plate.width() > plate.height() * 2 && plate.width() >= 60, "a plate crop is wide and flat: {}x{}", plate.width(), plate.height());
    // The refused record is in the dead letters with the server's reason, counted.
    assert_eq!(metric(&page, "edge_agent_gat1400_records_total{result=\"refused\"}"), Some(1.0));
    assert_eq!(metric(&page, "edge_agent_gat1400_records_total{result=\"accepted\"}"), Some(1.0));
    let letters = edge_agent::outbox::Outbox::open(&dir.path().join("state/gat1400.redb")).unwrap().dead_letters(10).unwrap();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].reason.contains("StatusCode 3"), "{}", letters[0].reason);
    assert!(!agent.log().contains("s3cret"), "the password is in the log");
}

#[test]
fn the_server_down_for_thirty_seconds_and_a_restart_in_between_lose_and_duplicate_nothing() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // The platform is down while the cars pass, and while the agent restarts.
    let cfg = config(dir.path(), None, &[Cam { id: "gate-in", url: file_url(&common::scenes::two_cars()), extra: LINE }], &section(port, "s3cret"));
    let mut agent = Agent::start(&cfg);
    agent.wait_log("phase=End", 2, Duration::from_secs(120));
    let down_since = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    agent.stop_timed();
    assert!(agent.log().contains("unreachable"), "the uplink did not say the server is unreachable");
    let expected = passings(&state);
    assert!(expected.len() >= 2, "{} passings", expected.len());
    // Started again without the camera: only the queue is left to deliver.
    let cfg = config(dir.path(), None, &[], &section_without_cameras(port, "s3cret"));
    let mut agent = Agent::start(&cfg);
    std::thread::sleep(Duration::from_secs(30).saturating_sub(down_since.elapsed()));
    let server = Gat1400Server::start(port, account("s3cret"));
    let seen = server.wait_for(Duration::from_secs(120), |s| s.taken.len() >= expected.len());
    // Nothing more comes later.
    std::thread::sleep(Duration::from_secs(5));
    let seen_after = server.seen();
    agent.stop_timed();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(seen_after.taken.len(), expected.len(), "records taken vs passings");
    let ids: HashSet<&str> = seen_after.taken.iter().map(|t| t.object["MotorVehicleID"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), expected.len(), "one distinct MotorVehicleID per passing");
    let plates: HashSet<&str> = seen_after.taken.iter().filter_map(|t| t.object["PlateNo"].as_str()).collect();
    let expected_plates: HashSet<&str> = expected.iter().filter_map(|e| e["plate"]["text"].as_str()).collect();
    assert_eq!(plates, expected_plates);
    assert!(server.seen().unregisters >= 1, "the agent did not unregister when it stopped:\n{}", agent.log());
}

#[test]
fn people_go_as_person_records_with_no_face_field_or_face_picture() {
    let server = Gat1400Server::start(0, account("s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let gat = section_without_cameras(server.port, "s3cret").replace("keepalive_secs = 10\n", "keepalive_secs = 10\nvehicles = false\npeople = true\n");
    let cfg = config(dir.path(), None, &[Cam { id: "gate-in", url: file_url(&common::scenes::people_walking()), extra: "" }], &gat);
    let mut agent = Agent::start(&cfg);
    let seen = server.wait_for(Duration::from_secs(120), |s| s.taken.len() >= 2);
    agent.stop_timed();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert!(seen.taken.len() >= 2, "{} person records", seen.taken.len());
    for t in &seen.taken {
        assert_eq!(t.path, "/VIID/Persons");
        let p = &t.object;
        assert_eq!(p["PersonID"].as_str().map(str::len), Some(48));
        assert!(p.as_object().unwrap().keys().all(|k| !k.contains("Face")), "{p}");
        let images = p["SubImageList"]["SubImageInfoObject"].as_array().unwrap();
        let types: Vec<&str> = images.iter().map(|i| i["Type"].as_str().unwrap()).collect();
        assert_eq!(types, ["14", "10"], "scene and person pictures, no face crop");
        let person = decode(&images[1]);
        assert!(person.height() > person.width(), "a person's picture stands upright: {}x{}", person.width(), person.height());
    }
}

/// A platform that takes connections and never answers (a hung server, a half-open link).
struct BlackHole {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn start(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { stop, thread: Some(thread) }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_platform_that_never_answers_holds_up_nothing_else_and_gets_the_record_once_it_answers() {
    let broker = Broker::start();
    let port = free_port();
    let hole = BlackHole::start(port);
    let dir = tempfile::tempdir().unwrap();
    let gat = section(port, "s3cret").replace("keepalive_secs = 10\n", "keepalive_secs = 10\ntimeout_secs = 2\n");
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], &gat);
    let events = Subscriber::connect(broker.port(), "checkpoint/+/+/+/+/+/+/events");
    let status = Subscriber::connect(broker.port(), "checkpoint/+/+/+/+/+/status");
    let mut agent = Agent::start(&cfg);
    // MQTT goes on: the passing's end is delivered while the platform hangs.
    events.wait_for(Duration::from_secs(90), "the end event", |m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["phase"] == "end"));
    status.wait_for(Duration::from_secs(30), "status saying unreachable", |m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["gat1400"] == "unreachable"));
    let page = common::http_get(&agent.metrics_addr(), "/metrics").1;
    assert!(metric(&page, "edge_agent_gat1400_waiting").unwrap_or(0.0) >= 1.0, "the record is not waiting");
    assert_eq!(metric(&page, "edge_agent_healthy"), Some(1.0), "a hung platform must not make the agent look stuck");
    // The platform answers again: the record arrives.
    drop(hole);
    let server = Gat1400Server::start(port, account("s3cret"));
    let seen = server.wait_for(Duration::from_secs(90), |s| !s.taken.is_empty());
    status.wait_for(Duration::from_secs(30), "status saying registered", |m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["gat1400"] == "registered"));
    agent.stop_timed();
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
    assert_eq!(seen.taken.len(), 1);
    assert_eq!(seen.taken[0].object["PlateNo"], "苏ED51712");
}
