//! Policy from the platform against a real Mosquitto with password users and the README's ACL: the
//! platform may write the policy tree, each agent may read only its own policy path and write only its own
//! site subtree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const SITE: &str = "xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const TOWN: &str = "checkpoint/policy/xining/chengzhong/nanchuan";
const LINE_DOWN_IS_IN: &str = "loop_file = true\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

/// The example ACL of the README, for the site above.
fn acl() -> String {
    "user platform\ntopic write checkpoint/policy/#\ntopic write checkpoint/+/+/+/+/+/commands\ntopic read checkpoint/#\n\n\
     user agent-east-gate\n\
     topic read checkpoint/policy/xining\n\
     topic read checkpoint/policy/xining/chengzhong\n\
     topic read checkpoint/policy/xining/chengzhong/nanchuan\n\
     topic read checkpoint/policy/xining/chengzhong/nanchuan/xiaozhuang\n\
     topic read checkpoint/policy/xining/chengzhong/nanchuan/xiaozhuang/east-gate\n\
     topic readwrite checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/#\n"
        .to_string()
}

/// Mosquitto with password users `platform` and `agent-east-gate` and the ACL.
fn broker() -> Broker {
    Broker::start_custom(|dir, port| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let passwd = dir.join("passwd");
        for (i, (user, pw)) in [("platform", "platform-pw"), ("agent-east-gate", "agent-pw")].iter().enumerate() {
            let mut cmd = Command::new("/usr/bin/mosquitto_passwd");
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            assert!(cmd.arg(&passwd).args([user, pw]).status().unwrap().success());
        }
        let acl_file = dir.join("acl");
        std::fs::write(&acl_file, acl()).unwrap();
        for f in [&passwd, &acl_file] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        format!("listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n", passwd.display(), acl_file.display())
    })
}

/// Publishes (retained, QoS 1) as `user`.
fn publish(port: u16, user: &str, password: &str, topic: &str, payload: &str) {
    mosquitto_pub(port, user, password, &["-r", "-t", topic, "-m", payload]);
}

/// `mosquitto_pub` (QoS 1) as `user` with `args` (topic, message, retain flag).
fn mosquitto_pub(port: u16, user: &str, password: &str, args: &[&str]) {
    let out = Command::new("/usr/bin/mosquitto_pub").args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", password, "-q", "1"]).args(args).output().unwrap();
    assert!(out.status.success(), "mosquitto_pub: {}", String::from_utf8_lossy(&out.stderr));
}

fn town_doc(version: u64, tolerance: u8) -> String {
    format!(
        r#"{{"schema":"edge-agent/policy/v1","version":{version},"issued_at":"2026-11-29T08:00:00+08:00","issued_by":"nanchuan-town",
        "rules":[{{"id":"wanted","kind":"watch_list","plates":[],"entries":[{{"plate":"苏ED51712","until":"2099-01-01T00:00:00Z","reason":"盗抢车辆"}}],"tolerance":{tolerance},"severity":"critical"}}]}}"#
    )
}

fn agent_config(dir: &Path, port: u16, extra: &str) -> std::path::PathBuf {
    let clip = common::scenes::car_crossing(true);
    let cfg = config(dir, Some(port), &[Cam { id: "gate", url: file_url(&clip), extra: LINE_DOWN_IS_IN }], extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace("host = \"127.0.0.1\"", "host = \"127.0.0.1\"\nusername = \"agent-east-gate\"\npassword = \"agent-pw\"");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// The latest policy report of the site that satisfies `pred`.
fn wait_report(sub: &Subscriber, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let m = sub.wait_for(Duration::from_secs(30), what, |m| m.topic == format!("checkpoint/{SITE}/policy") && pred(&m.json()));
    let report = m.json();
    assert_valid("policy-reported.v1.json", &report);
    report
}

fn platform_sub(port: u16) -> Subscriber {
    Subscriber::connect_as(port, "checkpoint/#", "platform", "platform-pw")
}

#[test]
fn a_town_watch_list_raises_alerts_invalid_and_stale_documents_are_refused_and_the_acl_holds() {
    let broker = broker();
    let port = broker.port();
    let sub = platform_sub(port);
    let doc = town_doc(1, 1);
    assert_valid("policy.v1.json", &serde_json::from_str(&doc).unwrap());
    publish(port, "platform", "platform-pw", TOWN, &doc);
    // The village listed the same car until yesterday: that entry no longer matches.
    let village = r#"{"schema":"edge-agent/policy/v1","version":1,"issued_at":"2026-11-29T08:00:00+08:00","issued_by":"xiaozhuang",
        "rules":[{"id":"lapsed","kind":"watch_list","entries":[{"plate":"苏ED51712","until":"2020-01-01T00:00:00Z","reason":"已撤控"}]}]}"#;
    publish(port, "platform", "platform-pw", "checkpoint/policy/xining/chengzhong/nanchuan/xiaozhuang", village);
    let dir = tempfile::tempdir().unwrap();
    let _agent = Agent::start(&agent_config(dir.path(), port, ""));

    let report = wait_report(&sub, "town policy applied", |r| r["levels"]["town"]["status"] == "applied");
    assert_eq!(report["levels"]["town"]["version"], 1);
    assert_eq!(report["levels"]["city"]["status"], "none");
    assert!(report["rules"].as_array().unwrap().iter().any(|r| r == "town:wanted"), "{report}");
    let alert = sub.wait_for(Duration::from_secs(60), "the town's watch-list alert", |m| m.topic.ends_with("/gate/alerts")).json();
    assert_valid("alert.v1.json", &alert);
    assert_eq!((alert["rule"].as_str(), alert["level"].as_str(), alert["policy_version"].as_u64()), (Some("town:wanted"), Some("town"), Some(1)));
    assert_eq!(alert["reason"], "盗抢车辆");
    assert_eq!(alert["plate"]["text"], "苏ED51712");
    let report = wait_report(&sub, "the village's expired entry counted", |r| r["levels"]["village"]["status"] == "applied");
    assert_eq!(report["levels"]["village"]["expired_entries"], 1, "{report}");
    // Both rules saw the same car; only the town's entry is in force, so the village's never alerts.
    std::thread::sleep(Duration::from_secs(3));
    let alerts: Vec<Value> = sub.messages().iter().filter(|m| m.topic.ends_with("/gate/alerts")).map(|m| m.json()).collect();
    assert!(alerts.iter().all(|a| a["rule"] != "village:lapsed"), "an expired entry matched: {alerts:?}");

    // An invalid document is refused with its paths; version 1 stays in force.
    publish(port, "platform", "platform-pw", TOWN, &town_doc(2, 5));
    let report = wait_report(&sub, "version 2 rejected", |r| r["levels"]["town"]["status"] == "rejected");
    assert_eq!((report["levels"]["town"]["version"].as_u64(), report["levels"]["town"]["last_version"].as_u64()), (Some(1), Some(2)));
    assert!(report["levels"]["town"]["errors"][0].as_str().unwrap().starts_with("rules[0].tolerance:"), "{report}");
    // Garbage and an oversized message are refused without harm.
    publish(port, "platform", "platform-pw", TOWN, "{not json");
    let big = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(big.path(), format!("{{\"pad\":\"{}\"}}", "x".repeat(3 << 20))).unwrap();
    mosquitto_pub(port, "platform", "platform-pw", &["-r", "-t", TOWN, "-f", big.path().to_str().unwrap()]);
    // An old version is stale.
    publish(port, "platform", "platform-pw", TOWN, &town_doc(1, 0));
    let report = wait_report(&sub, "version 1 again: stale", |r| r["levels"]["town"]["status"] == "stale");
    assert_eq!(report["levels"]["town"]["version"], 1);
    assert!(report["rules"].as_array().unwrap().iter().any(|r| r == "town:wanted"));

    // The ACL: the agent's account can write its own subtree, not another site's.
    publish(port, "agent-east-gate", "agent-pw", &format!("checkpoint/{SITE}/acl-probe"), "mine");
    publish(port, "agent-east-gate", "agent-pw", "checkpoint/xining/chengzhong/nanchuan/other/west-gate/acl-probe", "theirs");
    sub.wait_for(Duration::from_secs(10), "the agent's own probe", |m| m.topic.ends_with("east-gate/acl-probe"));
    std::thread::sleep(Duration::from_secs(1));
    assert!(!sub.messages().iter().any(|m| m.topic.contains("west-gate")), "the agent's account wrote to another site");
}

#[test]
fn signed_policy_is_required_with_trusted_keys_and_persists_across_a_restart_without_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let public = String::from_utf8(common::command().args(["policy", "keygen", "--out"]).arg(&keys).output().unwrap().stdout).unwrap().trim().to_string();
    let stranger = dir.path().join("stranger");
    common::command().args(["policy", "keygen", "--out"]).arg(&stranger).output().unwrap();
    let unsigned = dir.path().join("town.json");
    std::fs::write(&unsigned, town_doc(3, 0)).unwrap();
    let sign = |key: &Path| String::from_utf8(common::command().args(["policy", "sign", "--key"]).arg(key).arg(&unsigned).output().unwrap().stdout).unwrap();
    let signed = sign(&keys.join("policy.key"));
    let forged = sign(&stranger.join("policy.key"));
    let verify = common::command().args(["policy", "verify", "--trusted-key", &public]).arg(&unsigned).output().unwrap();
    assert_eq!(verify.status.code(), Some(1), "an unsigned document does not verify");

    let mut broker = broker();
    let port = broker.port();
    let sub = platform_sub(port);
    let cfg = agent_config(dir.path(), port, &format!("[control]\ntrusted_keys = [\"{public}\"]\n\n"));
    publish(port, "platform", "platform-pw", TOWN, &forged);
    let mut agent = Agent::start(&cfg);
    let report = wait_report(&sub, "the forged document rejected", |r| r["levels"]["town"]["status"] == "rejected");
    assert!(report["levels"]["town"]["errors"][0].as_str().unwrap().starts_with("signature:"), "{report}");
    publish(port, "platform", "platform-pw", TOWN, &signed);
    wait_report(&sub, "the signed document applied", |r| r["levels"]["town"]["version"] == 3);
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));

    // The uplink is down when the checkpoint boots: the persisted policy still screens.
    broker.stop();
    let agent = Agent::start(&cfg);
    agent.wait_log("policy restored", 1, Duration::from_secs(60));
    let alerts = dir.path().join("state/alerts");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let text: String = std::fs::read_dir(&alerts).map(|d| d.flatten().filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect()).unwrap_or_default();
        if text.contains("\"rule\":\"town:wanted\"") {
            assert!(text.contains("\"policy_version\":3"), "{text}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alert from the persisted policy; log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Publishes a command (QoS 1, not retained) as the platform.
fn command(port: u16, body: &str) {
    mosquitto_pub(port, "platform", "platform-pw", &["-t", &format!("checkpoint/{SITE}/commands"), "-m", body]);
}

fn cmd(id: &str, name: &str, args: &str, expires_at: &str) -> String {
    format!(r#"{{"schema":"edge-agent/command/v1","id":"{id}","command":"{name}","args":{{{args}}},"expires_at":"{expires_at}"}}"#)
}

#[test]
fn commands_are_answered_once_through_the_outbox_and_expired_unknown_or_malformed_ones_are_refused() {
    let broker = broker();
    let port = broker.port();
    let sub = platform_sub(port);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&agent_config(dir.path(), port, ""));
    sub.wait_for(Duration::from_secs(60), "camera online", |m| m.topic.ends_with("/status") && m.json()["cameras"][0]["state"] == "online");
    let result = |id: &str| {
        let m = sub.wait_for(Duration::from_secs(30), &format!("result of {id}"), |m| m.topic == format!("checkpoint/{SITE}/results") && m.json()["id"] == id);
        let v = m.json();
        assert_valid("result.v1.json", &v);
        v
    };
    let later = "2099-01-01T00:00:00Z";
    let c = cmd("snap-1", "snapshot", r#""camera":"gate""#, later);
    assert_valid("command.v1.json", &serde_json::from_str(&c).unwrap());
    command(port, &c);
    let snap = result("snap-1");
    assert_eq!(snap["status"], "done", "{snap}");
    let topic = snap["data"]["topic"].as_str().unwrap().to_string();
    assert_eq!(topic, format!("checkpoint/{SITE}/gate/snapshots/snap-1"));
    let jpeg = sub.wait_for(Duration::from_secs(10), "the snapshot", |m| m.topic == topic);
    assert!(jpeg.payload.starts_with(&[0xFF, 0xD8]), "a JPEG");

    command(port, &cmd("diag-1", "diagnostics", "", later));
    let diag = result("diag-1");
    assert_eq!(diag["data"]["cameras"][0]["id"], "gate", "{diag}");
    assert!(diag["data"]["outbox"]["depth"].is_u64() && diag["data"]["version"].is_string(), "{diag}");

    let statuses = sub.messages().iter().filter(|m| m.topic.ends_with("/status")).count();
    command(port, &cmd("re-1", "republish", "", later));
    assert_eq!(result("re-1")["status"], "done");
    sub.wait_for(Duration::from_secs(10), "a fresh status", |_| sub.messages().iter().filter(|m| m.topic.ends_with("/status")).count() > statuses);

    // A repeated id is answered again and not run twice.
    command(port, &cmd("restart-1", "restart_camera", r#""camera":"gate""#, later));
    let first = result("restart-1");
    assert_eq!(first["status"], "done", "{first}");
    command(port, &cmd("restart-1", "restart_camera", r#""camera":"gate""#, later));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sub.messages().iter().filter(|m| m.topic.ends_with("/results") && m.json()["id"] == "restart-1").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "the repeated id was not answered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let answers: Vec<Value> = sub.messages().iter().filter(|m| m.topic.ends_with("/results") && m.json()["id"] == "restart-1").map(|m| m.json()).collect();
    assert_eq!(answers[0], answers[1], "the same result again");
    assert_eq!(agent.log().matches("camera restarted on request").count(), 1, "run twice");

    command(port, &cmd("old-1", "restart_camera", r#""camera":"gate""#, "2020-01-01T00:00:00Z"));
    assert_eq!(result("old-1")["status"], "expired");
    command(port, &cmd("bad-1", "format_disk", "", later));
    let bad = result("bad-1");
    assert_eq!((bad["status"].as_str(), bad["command"].as_str()), (Some("rejected"), Some("format_disk")));
    command(port, &cmd("bad-2", "snapshot", r#""camera":"gate","quality":100"#, later));
    assert!(result("bad-2")["detail"].as_str().unwrap().contains("args.quality"));
    command(port, "{\"id\": 42");
    let garbled = result("");
    assert_eq!(garbled["status"], "rejected");
    assert_eq!(agent.log().matches("camera restarted on request").count(), 1, "only the valid, fresh, first restart ran");
}

#[test]
fn the_policy_report_counts_entries_expired_when_it_is_sent_and_goes_out_again_when_one_expires() {
    let broker = broker();
    let port = broker.port();
    let sub = platform_sub(port);
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(12)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let doc = town_doc(1, 0).replace("2099-01-01T00:00:00Z", &soon);
    publish(port, "platform", "platform-pw", TOWN, &doc);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(&agent_config(dir.path(), port, ""));
    let first = wait_report(&sub, "the document applied", |r| r["levels"]["town"]["version"] == 1);
    assert_eq!(first["levels"]["town"]["expired_entries"], 0, "{first}");
    // Nobody asks: when the entry's time passes, the retained report says so, with its own time.
    let expired = sub.wait_for(Duration::from_secs(40), "the report after the entry expired", |m| {
        m.topic == format!("checkpoint/{SITE}/policy") && m.json()["levels"]["town"]["expired_entries"] == 1
    });
    let expired = expired.json();
    assert_valid("policy-reported.v1.json", &expired);
    assert!(expired["ts"].as_str().unwrap() > soon.as_str(), "made after the entry expired: {expired}");
    // `republish` sends it again made anew, not the old bytes.
    command(port, &cmd("re-1", "republish", "", "2099-01-01T00:00:00Z"));
    let reports = || sub.messages().into_iter().filter(|m| m.topic == format!("checkpoint/{SITE}/policy")).map(|m| m.json()).collect::<Vec<_>>();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reports().iter().any(|r| r["ts"].as_str() > expired["ts"].as_str()) {
        assert!(std::time::Instant::now() < deadline, "no fresh report after republish: {:?}", reports());
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = reports().pop().unwrap();
    assert_eq!(last["levels"]["town"]["expired_entries"], 1, "{last}");
    assert!(agent.log().contains("a watch-list entry in force expired"), "{}", agent.log());
}
