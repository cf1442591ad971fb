//! Work-group notifications against a local receiver that checks each request as WeCom and DingTalk
//! document them ([`common::receiver`]): an alert on a clip reaches the WeCom group as markdown and its
//! picture and the DingTalk group signed, after the receiver was down for 20 s; a burst of 30 alerts stays
//! within 20 requests a minute as one summary; a muted rule sends nothing; a camera whose stream stops
//! raises `camera_offline`, and "back online" when it returns; the duty desk shows each channel's last
//! result and mutes a rule; a private gateway is reached over HTTPS with its own CA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::receiver::{free_port, Receiver, Request, Rules};
use common::{config, file_url, Agent, Cam};
use edge_agent::notify::{Context, Notifier, Setup};
use testkit::broker::{Broker, Subscriber};
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
    channels(&wecom(port))
}

/// The channels of `notify` (TOML), running.
fn channels(notify: &str) -> (Notifier, edge_agent::notify::NotifyHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n\n{notify}");
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

#[test]
fn the_desk_shows_each_channels_last_result_and_an_operator_mutes_a_rule_which_stats_report() {
    let receiver = Receiver::start(0, rules());
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    // The DingTalk channel has the wrong secret: the service refuses it with its own code.
    let extra = format!(
        "[[rules]]\nid = \"stolen\"\nkind = \"watch_list\"\nplates = [\"苏ED51712\"]\nseverity = \"critical\"\n\n{}[[notify]]\nid = \"town-dingtalk\"\nkind = \"dingtalk\"\nurl = \"http://127.0.0.1:{}/robot/send\"\nkey = \"dingtalk-token\"\nsecret = \"SECwrong\"\n",
        wecom(receiver.port),
        receiver.port
    );
    let clip = common::scenes::car_crossing(true);
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate-in", url: file_url(&clip), extra: "" }], &extra);
    assert!(common::users_add(&cfg, "duty", "operator", "village-gate-2026").status.success());
    assert!(common::users_add(&cfg, "watcher", "viewer", "village-view-2026").status.success());
    let mut agent = Agent::start(&cfg);
    let addr = common::web_addr(&agent);
    let browser = Browser::start(1024, 768);
    browser.sign_in(&addr, "duty", "village-gate-2026");
    // Refreshed with the cameras' health every 5 s.
    browser.wait_for(
        "the WeCom channel sending and the DingTalk channel refused, with the service's code",
        Duration::from_secs(120),
        "const ok = document.querySelector('[data-channel=\"village-wecom\"]'); const bad = document.querySelector('[data-channel=\"town-dingtalk\"]');\
         return !document.getElementById('notify').hidden && ok && ok.dataset.outcome === 'ok' && ok.textContent.includes('发送正常') && !ok.classList.contains('bad')\
           && bad && bad.dataset.outcome === 'rejected' && bad.classList.contains('bad') && bad.textContent.includes('被拒收') && bad.title.includes('310000')",
    );
    // The operator mutes the rule for an hour on every camera.
    browser.wait_for("the rule in the mute form", Duration::from_secs(10), "return [...document.getElementById('m-rule').options].some((o) => o.value === 'stolen')");
    browser.eval("document.getElementById('m-rule').value = 'stolen'; document.getElementById('m-minutes').value = '60';");
    browser.click("#m-go");
    browser.wait_for(
        "the mute on the page",
        Duration::from_secs(10),
        "const m = document.querySelector('.muted[data-rule=\"stolen\"]'); return m && m.dataset.camera === '' && m.textContent.includes('已静音') && m.textContent.includes('全部摄像头')",
    );
    // The stats message carries the channels' counters and the mute.
    let stats = sub.wait_for(Duration::from_secs(20), "stats with the mute", |m| m.topic.ends_with("/stats") && m.json()["notify"]["mutes"][0]["rule"] == "stolen");
    let stats = stats.json();
    testkit::schemas::assert_valid("stats.v1.json", &stats);
    let channels = stats["notify"]["channels"].as_array().unwrap();
    let wecom = channels.iter().find(|c| c["id"] == "village-wecom").unwrap();
    let dingtalk = channels.iter().find(|c| c["id"] == "town-dingtalk").unwrap();
    assert!(wecom["ok_total"].as_u64().unwrap() >= 1 && wecom["delivered_total"] == 1, "{wecom}");
    assert_eq!((&dingtalk["rejected_total"], &dingtalk["delivered_total"]), (&1.into(), &0.into()), "{dingtalk}");
    assert_eq!(dingtalk["last"]["code"], 310_000, "{dingtalk}");
    // /metrics counts the same.
    let (_, page) = common::http_get(&agent.metrics_addr(), "/metrics");
    assert_eq!(common::metric(&page, "edge_agent_notify_requests_total{channel=\"town-dingtalk\",result=\"rejected\"}"), Some(1.0), "{page}");
    assert_eq!(common::metric(&page, "edge_agent_notify_alerts_total{channel=\"village-wecom\",outcome=\"delivered\"}"), Some(1.0), "{page}");
    // A viewer may look but not mute; the operator's mute is in the audit log.
    let viewer = common::web_login(&addr, "watcher", "village-view-2026");
    let refused = common::http_raw(&addr, "POST", "/api/notify/mute", &[&format!("Cookie: {viewer}"), "Content-Type: application/json"], r#"{"minutes": 60}"#);
    assert!(refused.starts_with("HTTP/1.1 403") && refused.contains("only operators mute"), "{refused}");
    // An unmute from the page lifts it.
    browser.click(".muted[data-rule=\"stolen\"] button");
    browser.wait_for("the mute gone", Duration::from_secs(10), "return document.querySelector('.muted') === null");
    agent.stop_timed();
    let audit: String = walk(&dir.path().join("state")).iter().filter(|p| p.to_string_lossy().contains("audit")).map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
    let mutes: Vec<&str> = audit.lines().filter(|l| l.contains("\"action\":\"mute\"")).collect();
    assert_eq!(mutes.len(), 2, "{audit}");
    assert!(mutes[0].contains("\"rule\":\"stolen\"") && mutes[0].contains("\"count\":60") && mutes[0].contains("\"by\":\"duty\""), "{}", mutes[0]);
    assert!(mutes[1].contains("\"count\":0"), "{}", mutes[1]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_private_gateway_is_reached_over_https_with_its_own_ca_and_the_webhook_is_signed() {
    let certs = tempfile::tempdir().unwrap();
    let tls = testkit::tls::generate(certs.path());
    let receiver = Receiver::start_tls(rules(), &tls.server_cert, &tls.server_key);
    let url = format!("https://127.0.0.1:{}/alerts", receiver.port);
    // The same gateway without its CA: the system's roots do not know the certificate.
    let (notifier, handle, _dir) = channels(&format!(
        "[[notify]]\nid = \"gateway\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"gateway-secret\"\nca_file = \"{}\"\n\n[[notify]]\nid = \"untrusted\"\nkind = \"webhook\"\nurl = \"{url}\"\n",
        tls.ca.display()
    ));
    handle.offer(&alert(1, "stolen"));
    let all = receiver.wait_for(Duration::from_secs(20), |r| !r.is_empty());
    std::thread::sleep(Duration::from_secs(3));
    let report = handle.report();
    notifier.stop(Duration::from_secs(5));
    assert_eq!(receiver.requests().len(), 1, "{all:?}");
    let request = &all[0];
    // The alert payload as on MQTT.
    assert_eq!((&request.body["schema"], &request.body["id"]), (&"edge-agent/alert/v1".into(), &"0193d9c0-0000-7000-8000-000000000001".into()));
    // X-Edge-Agent-Signature: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body)).
    let ts = request.header("x-edge-agent-timestamp").unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"gateway-secret").unwrap();
    hmac::Mac::update(&mut mac, format!("{ts}.").as_bytes());
    hmac::Mac::update(&mut mac, &request.raw);
    assert_eq!(request.header("x-edge-agent-signature"), Some(format!("sha256={}", hex::encode(hmac::Mac::finalize(mac).into_bytes())).as_str()));
    let gateway = report.channels.iter().find(|c| c.id == "gateway").unwrap();
    let untrusted = report.channels.iter().find(|c| c.id == "untrusted").unwrap();
    assert_eq!((gateway.ok_total, gateway.delivered_total), (1, 1));
    assert!(untrusted.ok_total == 0 && untrusted.failed_total >= 1, "{untrusted:?}");
    let last = untrusted.last.as_ref().unwrap();
    assert_eq!(last.outcome, "failed");
    assert!(last.message.as_deref().unwrap_or("").to_lowercase().contains("certificate"), "{last:?}");
}
