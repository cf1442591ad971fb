//! Work-group notifications against a local receiver that checks each request as WeCom and DingTalk
//! document them ([`common::receiver`]): an alert on a clip reaches the WeCom group as markdown and its
//! picture and the DingTalk group signed, after the receiver was down for 20 s; a burst of 30 alerts stays
//! within 20 requests a minute as one summary; a muted rule sends nothing; a camera whose stream stops
//! raises `camera_offline`, and "back online" when it returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::receiver::{free_port, Receiver, Request, Rules};
use common::{config, file_url, Agent, Cam};
use edge_agent::notify::{Context, Notifier, Setup};
use testkit::rtsp::{RtspServer, ServerSpec};

fn rules() -> Rules {
    Rules { dingtalk_secret: "SECtest-secret".into(), per_minute: 20 }
}

fn wecom(port: u16) -> String {
    format!("[[notify]]\nid = \"village-wecom\"\nkind = \"wecom\"\nurl = \"http://127.0.0.1:{port}/cgi-bin/webhook/send\"\nkey = \"wecom-test-key\"\n\n")
}

fn markdown_of(r: &Request) -> String {
    r.body["markdown"]["content"].as_str().or(r.body["markdown"]["text"].as_str()).unwrap_or("").to_string()
}

#[test]
fn an_alert_on_a_clip_reaches_wecom_with_its_picture_and_dingtalk_signed_after_the_receiver_was_down() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[rules]]\nid = \"stolen\"\nkind = \"watch_list\"\nplates = [\"苏ED51712\"]\nseverity = \"critical\"\n\n{}[[notify]]\nid = \"town-dingtalk\"\nkind = \"dingtalk\"\nurl = \"http://127.0.0.1:{port}/robot/send\"\nkey = \"dingtalk-token\"\nsecret = \"{}\"\n",
        wecom(port),
        rules().dingtalk_secret
    );
    let clip = common::scenes::car_crossing(true);
    let cfg = config(dir.path(), None, &[Cam { id: "gate-in", url: file_url(&clip), extra: "" }], &extra);
    let mut agent = Agent::start(&cfg);
    agent.wait_log(" alert camera=", 1, Duration::from_secs(90));
    // The robots are unreachable for 20 s: the notifications wait in their queue.
    std::thread::sleep(Duration::from_secs(20));
    let receiver = Receiver::start(port, rules());
    let all = receiver.wait_for(Duration::from_secs(90), |r| r.iter().filter(|q| q.errcode == 0).count() >= 3);
    agent.stop_timed();
    let wecom_text: Vec<&Request> = all.iter().filter(|r| r.path == "/cgi-bin/webhook/send" && r.body["msgtype"] == "markdown").collect();
    let wecom_image: Vec<&Request> = all.iter().filter(|r| r.path == "/cgi-bin/webhook/send" && r.body["msgtype"] == "image").collect();
    let dingtalk: Vec<&Request> = all.iter().filter(|r| r.path == "/robot/send").collect();
    assert!(all.iter().all(|r| r.errcode == 0), "the receiver refused some: {:?}", all.iter().map(|r| (&r.path, r.errcode)).collect::<Vec<_>>());
    assert_eq!(wecom_text.len(), 1, "{all:?}");
    assert_eq!(wecom_image.len(), 1, "the picture follows the text");
    assert_eq!(dingtalk.len(), 1);
    assert_eq!(wecom_text[0].query("key"), Some("wecom-test-key"));
    for text in [markdown_of(wecom_text[0]), markdown_of(dingtalk[0])] {
        for part in ["布控车辆", "苏ED51712", "小庄村东口", "gate-in", "规则：stolen"] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
    }
    // The key never reaches the agent's log.
    assert!(!agent.log().contains("wecom-test-key") && !agent.log().contains("SECtest-secret"), "a secret in the log");
}

/// An alert payload as the sinks make it, for `rule`.
fn alert(i: usize, rule: &str) -> edge_agent::payload::Alert {
    serde_json::from_value(serde_json::json!({
        "schema": "edge-agent/alert/v1", "id": format!("0193d9c0-0000-7000-8000-{i:012}"), "site": "xining/chengzhong/nanchuan/xiaozhuang/east-gate",
        "camera": "gate-in", "ts": edge_agent::payload::now(), "rule": rule, "kind": "watch_list", "severity": "critical",
        "event_id": null, "event_ids": [], "type": "vehicle", "label": "car", "direction": "in",
        "plate": { "text": format!("京PL3N{:02}", i % 100), "confidence": 0.9, "color": "blue" }, "matched": null,
        "prefix": null, "zone": null, "count": null, "duration_s": null, "snapshot_topic": null
    }))
    .unwrap()
}

fn channel(port: u16) -> (Notifier, edge_agent::notify::NotifyHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n\n{}", wecom(port));
    let cfg = edge_config::parse_str(&text).unwrap();
    let setup = Setup {
        state_dir: dir.path().to_path_buf(),
        context: Context { checkpoint: "小庄村东口".into(), cameras: Default::default() },
        snapshots: edge_agent::snapshots::SnapshotStore::new(dir.path(), 7),
    };
    let (notifier, handle) = Notifier::start(&cfg.notify, setup, &tokio_util::sync::CancellationToken::new()).unwrap().unwrap();
    (notifier, handle, dir)
}

#[test]
fn a_burst_of_thirty_alerts_stays_within_twenty_requests_a_minute_as_a_summary_and_a_muted_rule_sends_nothing() {
    let receiver = Receiver::start(0, rules());
    let (notifier, handle, _dir) = channel(receiver.port);
    for i in 0..30 {
        handle.offer(&alert(i, "stolen"));
    }
    // Every alert is delivered, alone or in a summary.
    let delivered = |all: &[Request]| -> usize {
        all.iter()
            .filter(|r| r.errcode == 0 && r.body["msgtype"] == "markdown")
            .map(|r| {
                let text = markdown_of(r);
                text.split(" 条告警").next().and_then(|head| head.rsplit('>').next()).and_then(|n| n.trim().parse().ok()).unwrap_or(1)
            })
            .sum()
    };
    let all = receiver.wait_for(Duration::from_secs(30), |r| delivered(r) >= 30);
    assert_eq!(delivered(&all), 30, "{:?}", all.iter().map(markdown_of).collect::<Vec<_>>());
    assert!(all.len() <= 20, "{} requests within a minute", all.len());
    assert!(all.iter().all(|r| r.errcode == 0), "rate limit hit: {:?}", all.iter().map(|r| r.errcode).collect::<Vec<_>>());
    assert!(all.iter().any(|r| markdown_of(r).contains("条告警")), "no summary");

    handle.mute(Some("stolen".into()), None, 10);
    for i in 30..35 {
        handle.offer(&alert(i, "stolen"));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(receiver.requests().len(), all.len(), "a muted rule was notified");
    let (_, _, stats) = handle.channels().into_iter().next().unwrap();
    assert_eq!(stats.muted.load(std::sync::atomic::Ordering::Relaxed), 5);
    // Another rule is not muted.
    handle.offer(&alert(40, "other"));
    let after = receiver.wait_for(Duration::from_secs(10), |r| r.len() > all.len());
    assert_eq!(after.len(), all.len() + 1);
    notifier.stop(Duration::from_secs(5));
}

#[test]
fn a_camera_whose_stream_stops_raises_camera_offline_and_then_back_online() {
    let receiver = Receiver::start(0, rules());
    let mut server = RtspServer::start(ServerSpec::still(640, 360));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[health]\noffline_secs = 8\nclear_secs = 2\nfrozen_secs = 3600\n\n[[notify]]\nid = \"gateway\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/alerts\"\nkinds = [\"camera_offline\"]\n",
        receiver.port
    );
    let cfg = config(dir.path(), None, &[Cam { id: "gate-in", url: server.url(None), extra: "" }], &extra);
    assert!(common::users_add(&cfg, "duty", "operator", "village-gate-2026").status.success());
    let mut agent = Agent::start(&cfg);
    agent.wait_log("camera online", 1, Duration::from_secs(60));
    server.kill();
    let states = |all: &[Request]| all.iter().map(|r| r.body["health"]["state"].as_str().unwrap_or("").to_string()).collect::<Vec<_>>();
    let raised = receiver.wait_for(Duration::from_secs(60), |r| !r.is_empty());
    assert_eq!(states(&raised), ["raised"], "{raised:?}");
    assert_eq!(raised[0].body["kind"], "camera_offline");
    testkit::schemas::assert_valid("alert.v1.json", &raised[0].body);
    // The duty desk shows the camera as a red tile: what is wrong, since when.
    let addr = common::web_addr(&agent);
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let (status, body) = common::http_get_with(&addr, "/api/cameras", &[&format!("Cookie: {cookie}")]);
    assert_eq!(status, 200, "{body}");
    let cameras: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(cameras["cameras"][0]["problems"][0]["kind"], "camera_offline", "{body}");
    assert_eq!(cameras["cameras"][0]["problems"][0]["since"], raised[0].body["health"]["since"], "{body}");
    server.restart(ServerSpec::still(640, 360));
    let back = receiver.wait_for(Duration::from_secs(90), |r| r.len() >= 2);
    let (_, body) = common::http_get_with(&addr, "/api/cameras", &[&format!("Cookie: {cookie}")]);
    agent.stop_timed();
    assert_eq!(states(&back), ["raised", "cleared"], "{back:?}");
    let cameras: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(cameras["cameras"][0].get("problems").is_none(), "the tile is still red after the camera came back: {body}");
}

#[test]
fn check_config_names_each_bad_notify_key_and_says_where_alerts_go() {
    let dir = tempfile::tempdir().unwrap();
    let bad = config(
        dir.path(),
        None,
        &[],
        "[[notify]]\nid = \"town\"\nkind = \"dingtalk\"\nkinds = [\"stolen_car\"]\nquiet_from = \"23:00\"\n\n[[notify]]\nid = \"town\"\nkind = \"webhook\"\nper_minute = 0\n",
    );
    let out = common::run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    for line in [
        "notify[0].key: missing: the robot's access_token",
        "notify[0].kinds[0]: \"stolen_car\": expected one of",
        "notify[0].quiet_from: quiet hours need both",
        "notify[1].id: \"town\" is already used by notify[0]",
        "notify[1].url: a webhook needs its url",
        "notify[1].per_minute: 0 is out of range",
    ] {
        assert!(err.contains(line), "{line:?} missing from {err}");
    }
    let good = config(dir.path(), None, &[], &wecom(1));
    let out = common::run(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        common::stdout(&out).contains("note: notify \"village-wecom\" (wecom): the alerts it takes — plates, and for WeCom the pictures — leave the checkpoint for 127.0.0.1"),
        "{}",
        common::stdout(&out)
    );
}
