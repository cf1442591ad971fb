//! Setting the checkpoint up by sight, in real Chromium against the daemon: an admin draws a counting line
//! on the frozen picture and saves it; the configuration file keeps its comments, the reload applies it
//! and the next passing has the direction the new line gives. A camera address is tested (the reason in
//! words when it fails, the first picture when it works) and saved. Operators and viewers change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::browser::Browser;
use common::{config, file_url, Agent, Cam};
use testkit::broker::{Broker, Subscriber};

/// The line the camera starts with: driving down the picture is coming *in*.
const LINE_DOWN_IS_IN: &str = "# The gate line, painted on the road by the shop.\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

#[test]
fn an_admin_draws_a_line_on_the_picture_and_the_next_passing_follows_it_while_the_file_keeps_its_comments() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("loop_file = true\ndetect_fps = 5\n{LINE_DOWN_IS_IN}");
    let cams = [Cam { id: "gate", url: file_url(&common::scenes::car_crossing(true)), extra: &extra }];
    let cfg = config(dir.path(), Some(broker.port()), &cams, "# Installed by the town's IT office.\n");
    for (name, role) in [("setup", "admin"), ("duty", "operator"), ("watcher", "viewer")] {
        assert!(common::users_add(&cfg, name, role, "village-gate-2026").status.success());
    }
    let agent = Agent::start(&cfg);
    let addr = common::web_addr(&agent);
    let first = sub.wait_for(Duration::from_secs(90), "a passing with the old line", |m| m.topic.ends_with("/gate/events") && m.json()["phase"] == "end").json();
    assert_eq!(first["direction"], "in", "{first}");

    let browser = Browser::start(1280, 1000);
    browser.sign_in(&addr, "setup", "village-gate-2026");
    browser.click("#show-setup");
    browser.wait_for(
        "the frozen picture with the configured line listed",
        Duration::from_secs(20),
        "return document.getElementById('g-frame').naturalWidth > 0 && !!document.querySelector('#g-items li[data-kind=\"line\"][data-id=\"gate\"]')",
    );
    // The admin redraws the line higher up, with the village side above it: driving down is now going out.
    browser.click("#g-items li[data-kind=\"line\"] .remove");
    browser.click("[data-tool=\"line\"]");
    browser.eval(
        "const c = document.getElementById('g-canvas'); const r = c.getBoundingClientRect();\
         for (const [fx, fy] of [[0.01, 0.6], [0.99, 0.6], [0.5, 0.3]]) c.dispatchEvent(new MouseEvent('click', { bubbles: true, clientX: r.left + fx * r.width, clientY: r.top + fy * r.height }));",
    );
    browser.wait_for("the new line listed", Duration::from_secs(5), "return document.querySelectorAll('#g-items li[data-kind=\"line\"]').length === 1");
    browser.save_screenshot("desk-setup.png");
    let saved_at = chrono::Utc::now();
    browser.click("#g-save");
    browser.wait_for("saved and applied", Duration::from_secs(30), "const r = document.getElementById('g-result'); return r.dataset.ok === '1' ? r.textContent : null");

    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# Installed by the town's IT office.") && text.contains("# The gate line, painted on the road by the shop."), "{text}");
    let config = edge_config::parse_str(&text).unwrap();
    let line = &config.cameras[0].lines[0];
    assert_eq!(line.id, "gate");
    assert!((line.points[0][1] - 0.6).abs() < 0.01 && (line.points[1][1] - 0.6).abs() < 0.01 && line.in_side[1] < 0.35, "{line:?}");

    // The next passing that starts after the reload crosses the new line going out.
    let deadline = Instant::now() + Duration::from_secs(60);
    let after = loop {
        let found = sub.messages().into_iter().filter(|m| m.topic.ends_with("/gate/events")).map(|m| m.json()).find(|e| {
            e["phase"] == "end"
                && e["started_at"].as_str().and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok()).is_some_and(|t| t > saved_at + chrono::Duration::seconds(1))
        });
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "no passing after the change; log:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(after["direction"], "out", "{after}");
    assert_eq!(after["crossings"][0]["line"], "gate");

    // Operators and viewers may not change the set-up.
    for user in ["duty", "watcher"] {
        let cookie = common::web_login(&addr, user, "village-gate-2026");
        let refused = common::http_raw(
            &addr,
            "POST",
            "/api/config/cameras/gate/geometry",
            &[&format!("Cookie: {cookie}"), "Content-Type: application/json"],
            r#"{"version":"x","lines":[]}"#,
        );
        assert!(refused.starts_with("HTTP/1.1 403") && refused.contains("only admins"), "{user}: {refused}");
        let refused = common::http_raw(&addr, "POST", "/api/cameras/test", &[&format!("Cookie: {cookie}"), "Content-Type: application/json"], r#"{"url":"rtsp://127.0.0.1:1/x"}"#);
        assert!(refused.starts_with("HTTP/1.1 403"), "{user}: {refused}");
    }
    // A change based on an older reading of the file (edited by hand since) is refused.
    let admin = common::web_login(&addr, "setup", "village-gate-2026");
    let stale =
        common::http_raw(&addr, "POST", "/api/config/cameras/gate/geometry", &[&format!("Cookie: {admin}"), "Content-Type: application/json"], r#"{"version":"0000","lines":[]}"#);
    assert!(stale.starts_with("HTTP/1.1 409") && stale.contains("changed since"), "{stale}");

    // A camera address that does not answer: the reason, in words.
    browser.eval("document.getElementById('c-id').value = 'gate-2'; document.getElementById('c-url').value = 'rtsp://admin:hunter22@127.0.0.1:1/Streaming/Channels/101';");
    browser.click("#c-test");
    let failed = browser.wait_for("the failed test", Duration::from_secs(40), "const r = document.getElementById('c-result'); return r.dataset.ok === '0' ? r.textContent : null");
    let failed = failed.as_str().unwrap();
    assert!(failed.contains("连接失败") && failed.contains("无法连接"), "{failed}");
    assert!(!failed.contains("hunter22"), "the password is never shown: {failed}");
    // One that works: codec, size and the first picture; then saved as a new camera.
    let good = file_url(&common::scenes::two_cars());
    browser.eval(&format!("document.getElementById('c-url').value = {};", serde_json::Value::String(good)));
    browser.click("#c-test");
    let ok = browser.wait_for("the working test", Duration::from_secs(40), "const r = document.getElementById('c-result'); return r.dataset.ok === '1' ? r.textContent : null");
    assert!(ok.as_str().unwrap().contains("H.264 1920×1080"), "{ok}");
    browser.wait_for("the first picture", Duration::from_secs(5), "const i = document.getElementById('c-picture'); return !i.hidden && i.naturalWidth === 960");
    browser.click("#c-save");
    browser.wait_for("the camera saved", Duration::from_secs(30), "return document.getElementById('c-result').textContent.includes('已保存并生效')");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let config = edge_config::parse_str(&text).unwrap();
    assert!(config.cameras.iter().any(|c| c.id == "gate-2"), "{text}");
    assert!(text.contains("# Installed by the town's IT office."));
    let (_, cameras) = common::http_get_with(&addr, "/api/cameras", &[&format!("Cookie: {admin}")]);
    assert!(cameras.contains("gate-2"), "{cameras}");

    // Every change is on the record, by whom, without the password.
    let audit: String = std::fs::read_dir(dir.path().join("state/audit")).unwrap().flatten().map(|f| std::fs::read_to_string(f.path()).unwrap_or_default()).collect();
    let changes: Vec<&str> = audit.lines().filter(|l| l.contains("\"action\":\"config_changed\"")).collect();
    assert_eq!(changes.len(), 2, "{audit}");
    assert!(changes.iter().all(|l| l.contains("\"by\":\"setup\"") && l.contains("\"role\":\"admin\"")), "{audit}");
    assert!(changes[0].contains("lines gate") && changes[1].contains("camera added"), "{audit}");
    assert!(!audit.contains("hunter22"));
}
