//! Never losing an event: broker outages, the agent killed mid-run, TLS and authentication, a full outbox.
//! Every test runs the real agent against a real Mosquitto started here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const LINE: &str = "loop_file = true\n\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

/// Every event message the agent made, from its local event log, in order.
fn logged_events(state: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(state.join("events")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.push((v["id"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap()));
        }
    }
    out
}

/// Event messages received, in arrival order.
fn received_events(sub: &Subscriber) -> Vec<(String, u64)> {
    sub.messages()
        .iter()
        .filter(|m| m.topic.ends_with("/events"))
        .map(|m| {
            let v = m.json();
            (v["id"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap())
        })
        .collect()
}

/// Checks that every logged message arrived, and that first arrivals keep the order they were made in.
fn assert_all_delivered_in_order(logged: &[(String, u64)], received: &[(String, u64)]) {
    let got: BTreeSet<&(String, u64)> = received.iter().collect();
    let missing: Vec<&(String, u64)> = logged.iter().filter(|e| !got.contains(e)).collect();
    assert!(missing.is_empty(), "{} of {} events never arrived: {missing:?}", missing.len(), logged.len());
    let mut seen = BTreeSet::new();
    let first_arrivals: Vec<&(String, u64)> = received.iter().filter(|e| seen.insert((*e).clone())).collect();
    let logged_refs: Vec<&(String, u64)> = logged.iter().collect();
    assert_eq!(first_arrivals, logged_refs, "events arrived out of order (duplicates are fine, reordering is not)");
}

fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn broker_outage_loses_no_events() {
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), &format!("{BASE}/+/events"), "platform-consumer");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], "");
    let mut agent = Agent::start(&cfg);
    let state = dir.path().join("state");

    wait_until(Duration::from_secs(60), "first events delivered", || received_events(&sub).len() >= 3);
    broker.stop();
    let down_at = Instant::now();
    let logged_before = logged_events(&state).len();
    std::thread::sleep(Duration::from_secs(20));
    let made_while_down = logged_events(&state).len() - logged_before;
    assert!(made_while_down >= 3, "the agent kept making events while the broker was down ({made_while_down})");
    broker.restart();
    assert!(down_at.elapsed() >= Duration::from_secs(20));

    // Let it catch up, then stop and compare against everything the agent logged.
    wait_until(Duration::from_secs(60), "backlog delivered", || {
        let logged = logged_events(&state);
        let got: BTreeSet<(String, u64)> = received_events(&sub).into_iter().collect();
        logged.len() > logged_before + made_while_down && logged.iter().all(|e| got.contains(e))
    });
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));
    let logged = logged_events(&state);
    std::thread::sleep(Duration::from_secs(1));
    assert_all_delivered_in_order(&logged, &received_events(&sub));
    for m in sub.messages().iter().filter(|m| m.topic.ends_with("/events")) {
        assert_valid("event.v1.json", &m.json());
    }
    assert!(agent.log().contains("MQTT connection lost"), "{}", agent.log());
}

#[test]
fn sigkill_five_times_loses_nothing_that_was_committed() {
    // The broker goes away in each round so that a backlog is on disk when the agent is killed.
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), &format!("{BASE}/+/events"), "platform-consumer");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], "");
    let outbox_path = dir.path().join("state/outbox.redb");
    let mut must_arrive: BTreeSet<(String, u64)> = BTreeSet::new();
    for round in 0..5u64 {
        if !broker.is_running() {
            broker.restart();
        }
        let mut agent = Agent::start(&cfg);
        wait_until(Duration::from_secs(60), "the agent to connect", || agent.log().contains("connected to MQTT broker"));
        let made = agent.log().matches(" event camera=").count();
        wait_until(Duration::from_secs(60), "the agent to make events", || agent.log().matches(" event camera=").count() >= made + 2);
        broker.stop();
        let made = agent.log().matches(" event camera=").count();
        wait_until(Duration::from_secs(60), "events made while the broker is away", || agent.log().matches(" event camera=").count() > made);
        std::thread::sleep(Duration::from_millis(200 * round));
        agent.signal("KILL");
        agent.wait(Duration::from_secs(10));
        assert!(agent.log().contains("outbox open"), "{}", agent.log());
        // What is on disk now must be delivered by a later run.
        let outbox = edge_agent::outbox::Outbox::open(&outbox_path).unwrap_or_else(|e| panic!("outbox does not open after kill {round}: {e}"));
        let pending: Vec<_> = outbox.read_after(0, usize::MAX, usize::MAX).unwrap().into_iter().filter(|(_, m)| m.topic.ends_with("/events")).collect();
        assert!(!pending.is_empty(), "round {round}: nothing was waiting when the agent was killed");
        for (_, m) in &pending {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            must_arrive.insert((v["id"].as_str().unwrap().to_string(), v["seq"].as_u64().unwrap()));
        }
    }
    // A last, clean run delivers the rest.
    broker.restart();
    let mut agent = Agent::start(&cfg);
    wait_until(Duration::from_secs(60), "the last run to connect", || agent.log().contains("connected to MQTT broker"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<(String, u64)> = received_events(&sub).into_iter().collect();
        let missing: Vec<_> = must_arrive.iter().filter(|e| !got.contains(e)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{} committed events never arrived: {missing:?}\nreceived {}\nlast run:\n{}", missing.len(), got.len(), agent.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0), "{}", agent.log());
    // Every event message committed before a kill arrived; so did every other one the agent logged.
    let logged = logged_events(&dir.path().join("state"));
    let got: BTreeSet<(String, u64)> = received_events(&sub).into_iter().collect();
    let lost: Vec<_> = logged.iter().filter(|e| !got.contains(e)).collect();
    assert!(lost.is_empty(), "lost after SIGKILL: {lost:?}");
    eprintln!("{} events logged; {} were waiting on disk at one of the 5 kills, all delivered", logged.len(), must_arrive.len());
}

/// A broker with a TLS listener (server certificate, client certificates required, password file) and a
/// plain one for the test's subscriber.
fn tls_broker() -> (Broker, testkit::tls::TlsFiles, u16) {
    let mut files = None;
    let plain = testkit::broker::free_port();
    let broker = Broker::start_custom(|dir, tls_port| {
        let f = testkit::tls::generate(dir);
        let passwd = testkit::tls::password_file(dir, "gate-agent", "s3cret-pw");
        let conf = format!(
            "per_listener_settings true\n\
             listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\npassword_file {}\nallow_anonymous false\n\
             listener {plain} 127.0.0.1\nallow_anonymous true\n",
            f.ca.display(),
            f.server_cert.display(),
            f.server_key.display(),
            passwd.display()
        );
        files = Some(f);
        conf
    });
    (broker, files.unwrap(), plain)
}

fn tls_config(dir: &Path, port: u16, ca: &Path, files: &testkit::tls::TlsFiles, password: &str) -> std::path::PathBuf {
    let cfg = config(dir, Some(port), &[Cam { id: "gate-in", url: file_url(&testkit::clips::street_pan()), extra: "loop_file = true" }], "");
    let pw = dir.join("mqtt-password");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("host = \"127.0.0.1\"", &format!("host = \"localhost\"\nusername = \"gate-agent\"\npassword_file = \"{}\"\nreconnect_max_secs = 4", pw.display()))
        .replace(
            "[models]",
            &format!(
                "[mqtt.tls]\nca_file = \"{}\"\nclient_cert_file = \"{}\"\nclient_key_file = \"{}\"\n\n[models]",
                ca.display(),
                files.client_cert.display(),
                files.client_key.display()
            ),
        );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[test]
fn tls_with_server_and_client_certificates_and_a_password_works() {
    let (broker, files, plain) = tls_broker();
    let sub = Subscriber::connect(plain, "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_config(dir.path(), broker.port(), &files.ca, &files, "s3cret-pw");
    let mut agent = Agent::start(&cfg);
    let status = sub.wait_for(Duration::from_secs(60), "online over TLS", |m| m.topic == format!("{BASE}/status") && m.json()["state"] == "online");
    assert_valid("status.v1.json", &status.json());
    assert!(agent.log().contains("connected to MQTT broker") && agent.log().contains("tls=true"), "{}", agent.log());
    assert!(!agent.log().contains("s3cret-pw"), "password in the log");
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    drop(broker);
}

/// Runs the agent for `secs` against a broker it cannot use and returns its log.
fn failing_run(cfg: &Path, secs: u64) -> String {
    let mut agent = Agent::start(cfg);
    std::thread::sleep(Duration::from_secs(secs));
    assert!(agent.wait_or_none(), "the agent must keep running: {}", agent.log());
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    agent.log()
}

fn attempts(log: &str) -> usize {
    log.lines().filter(|l| l.contains("cannot connect to MQTT broker")).count()
}

#[test]
fn tls_and_auth_mistakes_give_clear_errors_and_keep_retrying_with_backoff() {
    let (broker, files, plain) = tls_broker();
    let dir = tempfile::tempdir().unwrap();

    // Untrusted CA: the broker's certificate does not chain to the configured CA.
    let cfg = tls_config(&dir.path().join("untrusted"), broker.port(), &files.other_ca, &files, "s3cret-pw");
    let log = failing_run(&cfg, 8);
    assert!(log.contains("is not trusted: it does not chain to mqtt.tls.ca_file"), "{log}");
    let n = attempts(&log);
    assert!((2..=6).contains(&n), "{n} attempts in 8 s: expected a few, backing off\n{log}");

    // Wrong password.
    let cfg = tls_config(&dir.path().join("password"), broker.port(), &files.ca, &files, "wrong");
    let log = failing_run(&cfg, 8);
    assert!(log.contains("rejected the credentials"), "{log}");
    assert!(!log.contains("wrong\n") && !log.contains("password=wrong"), "password in the log");
    assert!((1..=3).contains(&attempts(&log)), "credential failures back off for at least 10 s:\n{log}");

    // Plain MQTT to the TLS port.
    let cfg = config(&dir.path().join("plain"), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&testkit::clips::street_pan()), extra: "loop_file = true" }], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("port = ", "reconnect_max_secs = 4\nport = ");
    std::fs::write(&cfg, text).unwrap();
    let log = failing_run(&cfg, 8);
    assert!(log.contains("closed the connection during the MQTT handshake: if this is a TLS port, configure [mqtt.tls]"), "{log}");
    let n = attempts(&log);
    assert!((2..=7).contains(&n), "{n} attempts in 8 s\n{log}");

    // TLS to the plain port.
    let cfg = tls_config(&dir.path().join("tls-to-plain"), plain, &files.ca, &files, "s3cret-pw");
    let log = failing_run(&cfg, 6);
    assert!(log.contains("does not seem to speak TLS"), "{log}");
}

#[test]
fn a_full_outbox_evicts_the_oldest_and_the_agent_keeps_running() {
    let mut broker = Broker::start();
    let port = broker.port();
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(port), &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: LINE }], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[storage]\n", "[storage]\noutbox_max_bytes = 65536\n");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start(&cfg);
    wait_until(Duration::from_secs(90), "evictions", || agent.log().contains("evicted the oldest"));
    // The agent still runs; once the broker is back its stats count the evictions.
    broker.restart();
    let sub = Subscriber::connect(port, &format!("{BASE}/stats"));
    let stats = sub.wait_for(Duration::from_secs(30), "stats with evictions", |m| m.json()["outbox"]["evicted_total"].as_u64().unwrap_or(0) > 0);
    assert_valid("stats.v1.json", &stats.json());
    assert!(stats.json()["outbox"]["bytes"].as_u64().unwrap() <= 65536);
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));
    let evictions: BTreeMap<&str, usize> = [("warnings", agent.log().matches("evicted the oldest").count())].into();
    assert!(evictions["warnings"] >= 1);
}

#[test]
fn without_a_broker_events_are_still_recorded_locally() {
    let dir = tempfile::tempdir().unwrap();
    let line = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";
    let cfg = config(dir.path(), None, &[Cam { id: "gate-in", url: file_url(&common::scenes::car_crossing(true)), extra: line }], "");
    let mut agent = Agent::start(&cfg);
    let state = dir.path().join("state");
    wait_until(Duration::from_secs(60), "an end event in the local log", || logged_events(&state).iter().any(|(_, seq)| *seq >= 2) && agent.log().contains("phase=End"));
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0), "{}", agent.log());
    assert!(agent.log().contains("running standalone"), "{}", agent.log());
    // The chain is in the event log, schema-valid, and waiting in the outbox for a broker configured later.
    let mut files: Vec<_> = std::fs::read_dir(state.join("events")).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    let lines: Vec<Value> = std::fs::read_to_string(&files[0]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for l in &lines {
        assert_valid("event.v1.json", l);
    }
    assert_eq!(lines.last().unwrap()["phase"], "end");
    assert_eq!(lines.last().unwrap()["plate"]["text"], "苏ED51712");
    let outbox = edge_agent::outbox::Outbox::open(&state.join("outbox.redb")).unwrap();
    let waiting = outbox.read_after(0, usize::MAX, usize::MAX).unwrap();
    assert_eq!(waiting.iter().filter(|(_, m)| m.topic == format!("{BASE}/gate-in/events")).count(), lines.len());
    assert!(waiting.iter().any(|(_, m)| m.topic.starts_with(&format!("{BASE}/gate-in/snapshots/"))));
}
