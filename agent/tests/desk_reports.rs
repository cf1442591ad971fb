//! The duty desk's reports in a real Chromium: today's flow chart agrees with the `end` events a clip
//! produced, the history search finds passings by part of a plate (live ones and ones indexed from the logs
//! of an earlier run), narrows by direction and pages; and alerts not yet disposed of stay counted in the
//! title and the banner after a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{config, file_url, web_addr, Agent, Cam};
use serde_json::{json, Value};
use testkit::broker::{Broker, Subscriber};

const LINE_DOWN_IS_IN: &str = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

/// An `end` event of an earlier run, as the event log holds it.
fn earlier_end(id: &str, ts: &str, plate: &str, direction: &str) -> String {
    json!({
        "schema": "edge-agent/event/v1", "id": id, "seq": 3, "site": "s", "camera": "gate", "type": "vehicle", "phase": "end", "label": "truck",
        "track_id": 1, "started_at": ts, "ended_at": ts, "ts": ts, "direction": direction, "crossings": [], "zones": [], "score": 0.9,
        "box": [0, 0, 1, 1], "frame": {"width": 1280, "height": 720}, "plate": {"text": plate, "color": "yellow", "confidence": 0.9, "reads": 3}, "snapshot": null,
    })
    .to_string()
}

/// An alert of an earlier run that nobody disposed of.
fn earlier_alert(ts: &str) -> String {
    json!({
        "schema": "edge-agent/alert/v1", "id": "0193a3c2-0000-7000-8000-00000000a1e7", "site": "s", "camera": "gate", "ts": ts, "rule": "watched",
        "kind": "watch_list", "severity": "critical", "event_id": null, "event_ids": [], "type": "vehicle", "label": "car", "direction": "in",
        "plate": {"text": "苏EA0001", "color": "blue", "confidence": 0.9, "reads": 3},
    })
    .to_string()
}

#[test]
fn the_desk_charts_todays_flow_searches_the_history_and_keeps_open_alerts_counted() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    // What an earlier run left: 22 passings of 苏E trucks and one 皖B going out, an hour ago, and an alert
    // nobody disposed of. The history index does not exist yet: it is built from the log at start.
    let now = chrono::Utc::now();
    let earlier = |minutes: i64| (now - chrono::Duration::minutes(60 + minutes)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let mut lines: Vec<String> = (0..22).map(|i| earlier_end(&format!("0193a3c2-0000-7000-8000-0000000000{i:02}"), &earlier(i), &format!("苏EA{i:04}"), "in")).collect();
    lines.push(earlier_end("0193a3c2-0000-7000-8000-0000000000ff", &earlier(30), "皖B55555", "out"));
    let day = now.format("%Y-%m-%d").to_string();
    for (folder, text) in [("events", lines.join("\n")), ("alerts", earlier_alert(&earlier(5)))] {
        std::fs::create_dir_all(dir.path().join("state").join(folder)).unwrap();
        std::fs::write(dir.path().join("state").join(folder).join(format!("{day}.jsonl")), text + "\n").unwrap();
    }

    let clip = common::scenes::car_crossing(true);
    let extra = format!("detect_fps = 5\n{LINE_DOWN_IS_IN}");
    let cams = [Cam { id: "gate", url: file_url(&clip), extra: &extra }];
    let cfg = config(dir.path(), Some(broker.port()), &cams, "[reports]\ncounts_period_secs = 2\n\n");
    // A viewer: search and the chart need no operator.
    let out = common::users_add(&cfg, "guest", "viewer", "just-looking-1");
    assert!(out.status.success());
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    agent.wait_log("indexed_from_logs=23", 1, Duration::from_secs(30));
    let end = sub.wait_for(Duration::from_secs(90), "the car's end event", |m| m.topic.ends_with("/gate/events") && m.json()["phase"] == "end").json();
    assert_eq!(end["plate"]["text"], "苏ED51712");
    agent.wait_log("file source ended", 1, Duration::from_secs(60));
    // The clip's period closes (2 s, plus the grace) and is logged.
    sub.wait_for(Duration::from_secs(30), "the period with the car", |m| m.topic.ends_with("/gate/counts") && m.json()["vehicles"]["in"] == 1);

    let browser = Browser::start(1000, 1400);
    browser.sign_in(&addr, "guest", "just-looking-1");

    // The alert of the earlier run is still open after the restart: counted in the title and the banner.
    browser.wait_for("the open alert in the title", Duration::from_secs(10), "return document.title.startsWith('(1) ')");
    let banner = browser.eval("return document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent");
    assert!(banner.as_str().unwrap().contains("1 条告警待处置"), "{banner}");

    // Today's chart: exactly the clip's passing, in the hour of its end event.
    let ends: Vec<Value> = sub.messages().iter().filter(|m| m.topic.ends_with("/gate/events") && m.json()["phase"] == "end").map(|m| m.json()).collect();
    let vehicles_in = ends.iter().filter(|e| e["type"] == "vehicle" && e["direction"] == "in").count();
    assert_eq!((ends.len(), vehicles_in), (1, 1), "the clip has one passing: {ends:?}");
    browser.click("#show-chart");
    let totals = browser.wait_for(
        "the chart's totals",
        Duration::from_secs(10),
        "const t = document.getElementById('chart-totals'); return t.dataset.vehicles !== undefined ? Object.assign({}, t.dataset, {text: t.textContent}) : null",
    );
    assert_eq!(
        (totals["vehicles"].as_str(), totals["vehiclesIn"].as_str(), totals["people"].as_str(), totals["plates"].as_str()),
        (Some("1"), Some("1"), Some("0"), Some("1")),
        "{totals}"
    );
    assert!(totals["text"].as_str().unwrap().contains("车辆 1（进村 1 / 出村 0）"), "{totals}");
    let hour = browser.eval(&format!("return new Date('{}').getHours()", end["ts"].as_str().unwrap()));
    let bars = browser.eval("return [...document.querySelectorAll('#chart-svg g.hour')].map(g => [Number(g.dataset.hour), Number(g.dataset.vehicles), Number(g.dataset.people)])");
    let bars = bars.as_array().unwrap();
    assert_eq!(bars.len(), 24);
    for b in bars {
        let expected = if b[0] == hour { json!([hour, 1, 0]) } else { json!([b[0], 0, 0]) };
        assert_eq!(b, &expected, "hour bars: {bars:?}");
    }
    let height = browser.eval(&format!("return document.querySelector('#chart-svg g.hour[data-hour=\"{hour}\"] rect.vehicles').getAttribute('height')"));
    assert!(height.as_str().unwrap().parse::<f64>().unwrap() > 100.0, "the one bar is drawn full height: {height}");

    // History: part of a plate finds the live passing and the 22 of the earlier run, 20 a page.
    browser.click("#show-search");
    browser.type_into("#s-plate", "苏E");
    browser.click("#s-go");
    browser.wait_for(
        "the first page",
        Duration::from_secs(10),
        "return document.getElementById('s-summary').dataset.total === '23' && document.querySelectorAll('#s-results li').length === 20",
    );
    let first = browser.eval("return document.querySelector('#s-results li').dataset.plate");
    assert_eq!(first, "苏ED51712", "newest first: the live passing");
    browser.wait_for(
        "the live passing's snapshot",
        Duration::from_secs(10),
        "const img = document.querySelector('#s-results li img'); return img && img.complete && img.naturalWidth > 0",
    );
    browser.click("#s-more");
    browser.wait_for("the second page", Duration::from_secs(10), "return document.querySelectorAll('#s-results li').length === 23 && document.getElementById('s-more').hidden");
    let plates = browser.eval("return [...document.querySelectorAll('#s-results li')].map(li => li.dataset.plate)");
    let plates: Vec<&str> = plates.as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(plates.iter().all(|p| p.starts_with("苏E")) && !plates.contains(&"皖B55555"), "{plates:?}");
    let unique: std::collections::BTreeSet<&&str> = plates.iter().collect();
    assert_eq!(unique.len(), 23, "no passing twice across the pages");
    let text = browser.eval("return document.getElementById('search').innerText").as_str().unwrap().to_string();
    for english in ["car", "truck", "vehicle", "in", "out", "none"] {
        assert!(!text.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| w == english), "untranslated {english:?} in the search view:\n{text}");
    }
    assert!(text.contains("货车") && text.contains("进村") && text.contains("共 23 条"), "{text}");

    // Narrowed by direction: the one that went out.
    browser.eval("document.getElementById('s-plate').value = ''; document.getElementById('s-direction').value = 'out'; return 1");
    browser.click("#s-go");
    browser.wait_for("the one going out", Duration::from_secs(10), "return document.getElementById('s-summary').dataset.total === '1'");
    assert_eq!(browser.eval("return document.querySelector('#s-results li').dataset.plate"), "皖B55555");

    browser.eval("window.scrollTo(0, 0); return 1");
    browser.save_screenshot("duty-desk-reports.png");

    // Bad input is named, not a 500.
    let cookie = common::web_login(&addr, "guest", "just-looking-1");
    let (status, body) = common::http_get_with(&addr, "/api/history?direction=sideways", &[&format!("Cookie: {cookie}")]);
    assert_eq!(status, 400);
    assert!(body.contains("direction") && body.contains("sideways"), "{body}");
    let (status, body) = common::http_get_with(&addr, "/api/counts?from=yesterday", &[&format!("Cookie: {cookie}")]);
    assert_eq!(status, 400);
    assert!(body.contains("from"), "{body}");
    assert_eq!(common::http_get(&addr, "/api/history?plate=%E8%8B%8FE").0, 401, "no session, no search");
}
