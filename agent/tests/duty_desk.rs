//! The duty desk end to end: a real Chromium logs in to the agent's page while a clip is analysed, sees
//! the vehicle event and the watch-list alert with its snapshot appear live, acknowledges the alert and
//! finds it in the audit log; alerts reach a real Mosquitto, also after an outage; retention deletes
//! expired snapshots and logs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::browser::Browser;
use common::{config, file_url, http_get, http_raw, post_form, web_addr, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::schemas::assert_valid;

const LINE_DOWN_IS_IN: &str = "[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";

const WATCH_RULE: &str = "[[rules]]\nid = \"watched\"\nkind = \"watch_list\"\nplates = [\"苏ED51712\"]\ntolerance = 1\nseverity = \"critical\"\n\n";

fn camera_extra() -> String {
    format!("loop_file = true\ndetect_fps = 5\n{LINE_DOWN_IS_IN}")
}

fn add_user(cfg: &std::path::Path, name: &str, role: &str, password: &str) {
    let out = common::users_add(cfg, name, role, password);
    assert!(out.status.success(), "users add: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn duty_staff_log_in_see_a_watch_list_alert_live_and_dispose_of_it() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let extra = format!("name = \"东口进村\"\n{}", camera_extra());
    let cams = [Cam { id: "gate", url: file_url(&clip), extra: &extra }];
    let extra_sections = format!("[web]\nlisten = \"127.0.0.1:0\"\n\n{WATCH_RULE}");
    // The agent starts without the camera, which is added (reload) once the page is open, so everything
    // the page shows about the car arrives live.
    let cfg = config(dir.path(), Some(broker.port()), &[], &extra_sections);
    add_user(&cfg, "duty", "operator", "village-gate-2026");
    add_user(&cfg, "guest", "viewer", "just-looking-1");
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);

    // Nothing without a session: pages redirect to the login, the API and snapshots answer 401.
    let home = http_raw(&addr, "GET", "/", &[], "");
    assert!(home.starts_with("HTTP/1.1 303") && home.contains("location: /login"), "{home}");
    assert_eq!(http_get(&addr, "/api/recent").0, 401);
    assert_eq!(http_get(&addr, "/api/stream").0, 401);
    assert_eq!(http_get(&addr, "/snapshots/0193a3c2-0000-7000-8000-000000000000").0, 401);
    let forged = http_raw(&addr, "GET", "/api/recent", &["Cookie: edge_session=0123456789abcdef"], "");
    assert!(forged.starts_with("HTTP/1.1 401"), "{forged}");
    // A wrong password does not sign in.
    let body = "user=duty&password=wrong-password";
    let wrong = post_form(&addr, "/login", body);
    assert!(wrong.contains("location: /login?error=1") && !wrong.to_lowercase().contains("set-cookie"), "{wrong}");

    // Phone-sized Chromium.
    let browser = Browser::start(412, 915);
    browser.go(&format!("http://{addr}/"));
    assert!(browser.current_url().ends_with("/login"), "{}", browser.current_url());
    browser.type_into("#user", "duty");
    browser.type_into("#password", "village-gate-2026");
    browser.click("#login");
    browser.wait_for("the feed page", Duration::from_secs(20), "return document.getElementById('feed') !== null && document.getElementById('user').textContent.includes('duty')");
    assert!(browser.eval("return document.documentElement.lang").as_str().unwrap().starts_with("zh"), "Chinese by default");
    assert!(browser.eval("return document.querySelector('[data-t=\"title\"]').textContent").as_str().unwrap().contains("卡口值班台"));
    assert!(browser.eval("return document.getElementById('retention').textContent").as_str().unwrap().contains("7 天"));
    assert_eq!(browser.eval("return document.querySelectorAll('#feed li').length"), 0);

    config(dir.path(), Some(broker.port()), &cams, &extra_sections);
    agent.signal("HUP");
    agent.wait_log("configuration reloaded", 1, Duration::from_secs(30));

    // The car drives through while the page is open: its event and the watch-list alert appear live.
    browser.wait_for(
        "a live vehicle event with the plate",
        Duration::from_secs(90),
        "return [...document.querySelectorAll('li.event .plate')].some(p => p.dataset.plate === '苏ED51712')",
    );
    browser.wait_for(
        "the added camera's health under its name",
        Duration::from_secs(20),
        "const c = document.querySelector('.cam[data-camera=\"gate\"]'); return c && c.textContent.includes('东口进村')",
    );
    browser.wait_for("the watch-list alert", Duration::from_secs(60), "return document.querySelector('li.alert .plate[data-plate=\"苏ED51712\"]') !== null");
    browser.wait_for(
        "the new-alert banner",
        Duration::from_secs(5),
        "return !document.getElementById('banner').hidden && document.getElementById('banner').textContent.includes('布控车辆')",
    );
    // Its snapshot is shown once the car has left and the picture exists.
    browser.wait_for(
        "the alert's snapshot",
        Duration::from_secs(60),
        "const img = document.querySelector('li.alert img.snap'); return img && img.complete && img.naturalWidth > 0",
    );
    let alert_id = browser.eval("return document.querySelector('li.alert').id.slice(3)").as_str().unwrap().to_string();
    // Not yet disposed of: counted in the title, and still after a reload.
    assert_eq!(browser.eval("return document.title"), "(1) 卡口值班台");
    browser.go(&format!("http://{addr}/"));
    browser.wait_for(
        "the open alert after a reload",
        Duration::from_secs(10),
        "return document.title === '(1) 卡口值班台' && document.getElementById('banner').textContent.includes('1 条告警待处置')",
    );
    // The Chinese page shows no raw English labels, and events without a picture yet say why.
    let feed = browser.eval("return document.getElementById('feed').innerText").as_str().unwrap().to_string();
    for english in ["car", "person", "vehicle", "watch_list", "critical", "new", "update", "end"] {
        assert!(!feed.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == english), "untranslated {english:?} on the Chinese page:\n{feed}");
    }
    assert!(feed.contains("小汽车"), "{feed}");

    // Dispose of it (turned back, with a note); the page shows the outcome and who, the audit log has it, and
    // the platform gets the disposition through the outbox.
    browser.eval("const s = document.querySelector('li.alert select.outcome'); s.value = 'turned_back'; return s.value");
    browser.type_into("li.alert input.note", "司机未带证件");
    browser.click("li.alert button.ack");
    browser.wait_for(
        "the disposition on the page",
        Duration::from_secs(10),
        "const a = document.querySelector('li.alert .acked-by'); return a && a.textContent.includes('duty') && a.textContent.includes('劝返') && a.textContent.includes('司机未带证件')",
    );
    browser.wait_for("no open alert left", Duration::from_secs(5), "return document.title === '卡口值班台' && document.getElementById('banner').hidden");
    let disposed = sub.wait_for(Duration::from_secs(20), "the disposition on MQTT", |m| m.topic.ends_with("/gate/dispositions")).json();
    assert_valid("disposition.v1.json", &disposed);
    assert_eq!(
        (disposed["outcome"].as_str(), disposed["note"].as_str(), disposed["by"].as_str(), disposed["source"].as_str()),
        (Some("turned_back"), Some("司机未带证件"), Some("duty"), Some("village"))
    );
    assert_eq!(disposed["alert_id"], alert_id.as_str());
    let audit = browser.eval_async("fetch('/api/audit').then(r => r.json()).then(done)");
    let entry = audit["entries"].as_array().unwrap().iter().find(|e| e["alert"] == alert_id.as_str()).unwrap_or_else(|| panic!("ack not in the audit log: {audit}"));
    assert_eq!(entry["by"], "duty");
    assert_eq!((entry["action"].as_str(), entry["outcome"].as_str()), (Some("dispose"), Some("turned_back")));
    assert!(entry["at"].as_str().is_some());
    let on_disk: String = std::fs::read_dir(dir.path().join("state/audit")).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
    assert!(on_disk.contains(&alert_id) && on_disk.contains("\"by\":\"duty\""), "{on_disk}");

    // English on request.
    browser.click("#lang");
    browser.wait_for("the English interface", Duration::from_secs(10), "return document.querySelector('[data-t=\"title\"]').textContent === 'Checkpoint duty desk'");
    browser.click("#lang");

    let shot = browser.save_screenshot("duty-desk.png");
    assert!(shot.starts_with(b"\x89PNG") && shot.len() > 10_000);

    // The same alert over MQTT, schema-valid, referencing the event and its snapshot topic.
    let m = sub.wait_for(Duration::from_secs(30), "the alert on MQTT", |m| m.topic.ends_with("/gate/alerts"));
    assert!(m.topic.starts_with("checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/gate/alerts"), "{}", m.topic);
    let alert: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_valid("alert.v1.json", &alert);
    assert_eq!(alert["id"], alert_id.as_str());
    assert_eq!(alert["kind"], "watch_list");
    assert_eq!(alert["plate"]["text"], "苏ED51712");
    assert_eq!(alert["severity"], "critical");
    let event_id = alert["event_id"].as_str().unwrap();
    assert!(sub.messages().iter().any(|m| m.topic.ends_with("/gate/events") && String::from_utf8_lossy(&m.payload).contains(event_id)), "the alert's event was published");
    // The clip loops: the car passes again and again, but the cooldown keeps it to one alert.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.messages().iter().filter(|m| m.topic.ends_with("/alerts")).count(), 1);

    // A viewer sees the feed but cannot acknowledge.
    let cookie = common::web_login(&addr, "guest", "just-looking-1");
    let recent = http_raw(&addr, "GET", "/api/recent", &[&format!("Cookie: {cookie}")], "");
    assert!(recent.starts_with("HTTP/1.1 200"), "{recent}");
    let ack = http_raw(&addr, "POST", &format!("/api/alerts/{alert_id}/ack"), &[&format!("Cookie: {cookie}")], "");
    assert!(ack.starts_with("HTTP/1.1 403"), "{ack}");
}

#[test]
fn alerts_survive_a_broker_outage() {
    let mut broker = Broker::start_persistent();
    let port = broker.port();
    let sub = Subscriber::connect_persistent(port, "checkpoint/+/+/+/+/+/+/alerts", "alert-consumer");
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let cams = [Cam { id: "gate", url: file_url(&clip), extra: "detect_fps = 5" }];
    let cfg = config(dir.path(), Some(port), &cams, &format!("[web]\nenabled = false\n\n{WATCH_RULE}"));
    let agent = Agent::start(&cfg);
    // The alert is made while the broker is down: it waits in the outbox.
    agent.wait_log("rule=watched", 1, Duration::from_secs(90));
    agent.wait_log("file source ended", 1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));
    broker.restart();
    let m = sub.wait_for(Duration::from_secs(60), "the alert after the outage", |m| m.topic.ends_with("/gate/alerts"));
    let alert: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_valid("alert.v1.json", &alert);
    assert_eq!(alert["plate"]["text"], "苏ED51712");
    drop(agent);
}

#[test]
fn retention_removes_expired_snapshots_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for day in ["2001-01-01", today.as_str()] {
        std::fs::create_dir_all(state.join("snapshots").join(day)).unwrap();
        std::fs::write(state.join("snapshots").join(day).join("0193a3c2-0000-7000-8000-000000000000.jpg"), b"jpeg").unwrap();
        for log in ["events", "alerts"] {
            std::fs::create_dir_all(state.join(log)).unwrap();
            std::fs::write(state.join(log).join(format!("{day}.jsonl")), b"{}\n").unwrap();
        }
    }
    let cfg = config(dir.path(), None, &[], "");
    // A shortened retention: one day.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[storage]\n", "[storage]\nsnapshot_retention_days = 1\nevent_log_retention_days = 1\n");
    std::fs::write(&cfg, text).unwrap();
    add_user(&cfg, "duty", "viewer", "village-gate-2026");
    let agent = Agent::start(&cfg);
    agent.wait_log("expired snapshots removed", 1, Duration::from_secs(60));
    agent.wait_log("expired logs removed", 2, Duration::from_secs(10));
    assert!(!state.join("snapshots/2001-01-01").exists());
    assert!(state.join("snapshots").join(&today).exists(), "today's snapshots are kept");
    for log in ["events", "alerts"] {
        assert!(!state.join(log).join("2001-01-01.jsonl").exists(), "{log}");
        assert!(state.join(log).join(format!("{today}.jsonl")).exists(), "{log}");
    }
    // The page states the retention in force.
    let addr = web_addr(&agent);
    assert_eq!(http_get(&addr, "/api/me").0, 401);
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let me = http_raw(&addr, "GET", "/api/me", &[&format!("Cookie: {cookie}")], "");
    assert!(me.contains("\"retention_days\":1"), "{me}");
}

#[test]
fn first_run_set_up_needs_the_code_from_the_root_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[], "");
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    // The code is in a file only its owner can read, and never in the log.
    let code_file = dir.path().join("state/setup-code");
    agent.wait_log("set-up code", 1, Duration::from_secs(10));
    let code = std::fs::read_to_string(&code_file).unwrap().trim().to_string();
    assert_eq!(code.len(), 32, "128 bits, hex: {code}");
    assert_eq!(std::fs::metadata(&code_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!agent.log().contains(&code), "the set-up code is in the log");
    let setup = |code: &str| {
        let body = format!("code={code}&user=duty&password=village-gate-2026");
        post_form(&addr, "/setup", &body)
    };
    // Without the code, no account.
    assert!(setup("not-the-code").contains("location: /setup?error=1"));
    assert!(!dir.path().join("state/users.json").exists());
    assert!(setup(&code).contains("location: /login"));
    let users = std::fs::read_to_string(dir.path().join("state/users.json")).unwrap();
    assert!(users.contains("\"duty\"") && users.contains("operator") && !users.contains("village-gate-2026"));
    // The set-up is closed once an account exists.
    assert!(setup(&code).contains("location: /login"));
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let me = http_raw(&addr, "GET", "/api/me", &[&format!("Cookie: {cookie}")], "");
    assert!(me.contains("\"role\":\"operator\""), "{me}");
}

#[test]
fn the_page_is_served_over_https_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let tls = testkit::tls::generate(dir.path());
    let web = format!("[web]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n\n", tls.server_cert.display(), tls.server_key.display());
    let cfg = config(dir.path(), None, &[], &web);
    add_user(&cfg, "duty", "operator", "village-gate-2026");
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    assert!(agent.log().contains(&format!("https://{addr}/")), "{}", agent.log());
    let port = addr.rsplit(':').next().unwrap();
    let ca = ureq::tls::Certificate::from_pem(&std::fs::read(&tls.ca).unwrap()).unwrap();
    let client = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[ca])).build())
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let mut page = client.get(&format!("https://localhost:{port}/login")).call().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.body_mut().read_to_string().unwrap().contains("卡口值班台"));
    let login =
        client.post(&format!("https://localhost:{port}/login")).header("Content-Type", "application/x-www-form-urlencoded").send("user=duty&password=village-gate-2026").unwrap();
    assert_eq!(login.status(), 303);
    let cookie = login.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // Plain HTTP to the HTTPS port gets no page.
    let plain = std::panic::catch_unwind(|| http_get(&addr, "/login"));
    assert!(plain.map(|(status, _)| status != 200).unwrap_or(true));
}

#[test]
fn an_alert_disposed_of_by_the_platform_shows_as_disposed_by_the_platform() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::scenes::car_crossing(true);
    let extra = camera_extra();
    let cams = [Cam { id: "gate", url: file_url(&clip), extra: &extra }];
    let cfg = config(dir.path(), Some(broker.port()), &cams, &format!("[web]\nlisten = \"127.0.0.1:0\"\n\n{WATCH_RULE}"));
    add_user(&cfg, "duty", "operator", "village-gate-2026");
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    let alert = sub.wait_for(Duration::from_secs(90), "the watch-list alert", |m| m.topic.ends_with("/gate/alerts")).json();
    let id = alert["id"].as_str().unwrap();
    let base = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
    let command = |cid: &str, outcome: &str| {
        let body = format!(
            r#"{{"schema":"edge-agent/command/v1","id":"{cid}","command":"dispose_alert","args":{{"alert":"{id}","outcome":"{outcome}","note":"镇派出所已接手","by":"南川镇值班长"}},"expires_at":"2099-01-01T00:00:00Z"}}"#
        );
        assert_valid("command.v1.json", &serde_json::from_str(&body).unwrap());
        let out = std::process::Command::new("/usr/bin/mosquitto_pub")
            .args(["-p", &broker.port().to_string(), "-q", "1", "-t", &format!("{base}/commands"), "-m", &body])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    command("d-0", "lost_in_space");
    let refused = sub.wait_for(Duration::from_secs(20), "the refused disposition", |m| m.topic.ends_with("/results") && m.json()["id"] == "d-0").json();
    assert_eq!(refused["status"], "rejected", "{refused}");
    command("d-1", "handed_over");
    let result = sub.wait_for(Duration::from_secs(20), "the result", |m| m.topic.ends_with("/results") && m.json()["id"] == "d-1").json();
    assert_valid("result.v1.json", &result);
    assert_eq!(result["status"], "done", "{result}");
    let disposed = sub.wait_for(Duration::from_secs(20), "the disposition", |m| m.topic.ends_with("/gate/dispositions")).json();
    assert_valid("disposition.v1.json", &disposed);
    assert_eq!((disposed["source"].as_str(), disposed["by"].as_str(), disposed["outcome_label"].as_str()), (Some("platform"), Some("南川镇值班长"), Some("上报")));
    // The duty desk shows it as disposed of, by the platform, and an operator can no longer change it.
    let cookie = common::web_login(&addr, "duty", "village-gate-2026");
    let (_, recent) = common::http_get_with(&addr, "/api/recent", &[&format!("Cookie: {cookie}")]);
    let body: Value = serde_json::from_str(&recent).unwrap_or(Value::Null);
    let item = body["items"].as_array().unwrap().iter().find(|i| i["type"] == "alert" && i["alert"]["id"] == id).unwrap_or_else(|| panic!("{body}")).clone();
    assert_eq!((item["ack"]["source"].as_str(), item["ack"]["outcome"].as_str()), (Some("platform"), Some("handed_over")));
    let again = http_raw(&addr, "POST", &format!("/api/alerts/{id}/dispose"), &[&format!("Cookie: {cookie}"), "Content-Type: application/json"], r#"{"outcome":"false_alarm"}"#);
    assert!(again.contains("handed_over"), "the first disposition stands: {again}");
    // On the page: disposed of, by the town platform's duty chief, with the outcome and note; no control left.
    let browser = Browser::start(412, 915);
    browser.sign_in(&addr, "duty", "village-gate-2026");
    let row = browser.wait_for(
        "the alert disposed of by the platform",
        Duration::from_secs(20),
        &format!("const li = document.getElementById('al-{id}'); const a = li && li.querySelector('.acked-by'); return a ? [a.textContent, li.querySelector('button.ack') === null] : null"),
    );
    let text = row[0].as_str().unwrap();
    assert!(text.contains("南川镇值班长（上级平台）") && text.contains("上报") && text.contains("镇派出所已接手"), "{text}");
    assert_eq!(row[1], true, "no dispose control on a disposed alert");
    assert_eq!(browser.eval("return document.title"), "卡口值班台", "nothing open");
}

#[test]
fn the_page_says_when_the_uplink_is_down_and_when_it_is_back() {
    // A broker that is down when the agent starts, then comes back.
    let mut broker = Broker::start();
    let port = broker.port();
    broker.stop();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(port), &[], "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("keep_alive_secs = 5", "keep_alive_secs = 5\nreconnect_max_secs = 2");
    std::fs::write(&cfg, text).unwrap();
    add_user(&cfg, "duty", "operator", "village-gate-2026");
    let agent = Agent::start(&cfg);
    let addr = web_addr(&agent);
    let browser = Browser::start(412, 915);
    browser.sign_in(&addr, "duty", "village-gate-2026");
    // The health check runs every 10 s and the page hears of it with the cameras' health every 5 s.
    browser.wait_for(
        "the notice that the platform is not connected",
        Duration::from_secs(40),
        "const n = document.getElementById('notice'); return !n.hidden && n.textContent.includes('未连接上级平台')",
    );
    broker.restart();
    browser.wait_for("the notice gone once the broker is back", Duration::from_secs(40), "return document.getElementById('notice').hidden");
    drop(agent);
}
