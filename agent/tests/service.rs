//! The agent as a service: systemd's notification protocol and watchdog, reload on SIGHUP, and the
//! `/metrics` and `/healthz` endpoint, against the real daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{config, file_url, http_get, metric, Agent, Cam};

fn looping_camera(id: &str) -> Cam<'_> {
    Cam { id, url: file_url(&testkit::clips::street_pan()), extra: "loop_file = true\ndetect_fps = 2\nplates = \"off\"" }
}

/// Scrapes until `check` holds, returning the page.
fn scrape_until(addr: &str, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, page) = http_get(addr, "/metrics");
        assert_eq!(status, 200, "{page}");
        if check(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}; last page:\n{page}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn online(page: &str, camera: &str) -> bool {
    metric(page, &format!("edge_agent_camera_state{{camera=\"{camera}\",state=\"online\"}}")) == Some(1.0)
}

fn restarts(page: &str, camera: &str) -> Option<f64> {
    metric(page, &format!("edge_agent_camera_restarts_total{{camera=\"{camera}\"}}"))
}

#[test]
fn metrics_are_scraped_and_frame_counters_increase() {
    let broker = testkit::broker::Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[looping_camera("gate")], "");
    let agent = Agent::start(&cfg);
    let addr = agent.metrics_addr();
    let first = scrape_until(&addr, "camera online and analysed", Duration::from_secs(60), |p| {
        online(p, "gate") && metric(p, "edge_agent_camera_frames_analysed_total{camera=\"gate\"}").unwrap_or(0.0) > 0.0
    });
    for name in [
        "edge_agent_camera_frames_decoded_total",
        "edge_agent_camera_frames_analysed_total",
        "edge_agent_camera_frames_dropped_total",
        "edge_agent_camera_fps",
        "edge_agent_camera_restarts_total",
        "edge_agent_camera_messages_dropped_total",
        "edge_agent_camera_state",
        "edge_agent_inference_seconds",
        "edge_agent_outbox_depth",
        "edge_agent_outbox_oldest_age_seconds",
        "edge_agent_outbox_evicted_total",
        "edge_agent_outbox_appended_total",
        "edge_agent_outbox_commits_total",
        "edge_agent_outbox_commit_errors_total",
        "edge_agent_mqtt_connected",
        "edge_agent_mqtt_connects_total",
        "edge_agent_mqtt_connection_errors_total",
        "edge_agent_config_reloads_total",
        "edge_agent_healthy",
    ] {
        assert!(first.contains(&format!("# TYPE {name} ")), "{name} missing:\n{first}");
    }
    assert!(first.contains("edge_agent_inference_seconds_bucket{camera=\"gate\",le=\"+Inf\"}"), "{first}");
    let decoded = |p: &str| metric(p, "edge_agent_camera_frames_decoded_total{camera=\"gate\"}").unwrap();
    let analysed = |p: &str| metric(p, "edge_agent_camera_frames_analysed_total{camera=\"gate\"}").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let second = scrape_until(&addr, "MQTT connected", Duration::from_secs(30), |p| metric(p, "edge_agent_mqtt_connected") == Some(1.0));
    assert!(decoded(&second) > decoded(&first), "decoded frames did not increase");
    assert!(analysed(&second) > analysed(&first), "analysed frames did not increase");
    let count = metric(&second, "edge_agent_inference_seconds_count{camera=\"gate\"}").unwrap();
    assert_eq!(count, analysed(&second), "histogram count is the analysed frames");

    // Health: fine while everything runs, and the broker going away only degrades it.
    let wait_health = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let (status, body) = http_get(&addr, "/healthz");
            if body.contains(&format!("\"status\":\"{want}\"")) {
                return (status, body);
            }
            assert!(Instant::now() < deadline, "/healthz never {want}: {status} {body}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let (status, _) = wait_health("ok");
    assert_eq!(status, 200);
    drop(broker);
    let (status, body) = wait_health("degraded");
    assert_eq!(status, 200, "a lost broker is not a reason for systemd to restart the agent");
    assert!(body.contains("MQTT broker not connected"), "{body}");
}

#[test]
fn sighup_reload_keeps_unchanged_cameras_starts_new_ones_and_rejects_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &[looping_camera("east")], "");
    let agent = Agent::start(&cfg);
    let addr = agent.metrics_addr();
    let page = scrape_until(&addr, "east online", Duration::from_secs(60), |p| online(p, "east"));
    assert_eq!(restarts(&page, "east"), Some(1.0));

    // Add a camera: the new one starts, the unchanged one is not touched.
    config(dir.path(), None, &[looping_camera("east"), looping_camera("west")], "");
    agent.signal("HUP");
    agent.wait_log("configuration reloaded", 1, Duration::from_secs(30));
    let page = scrape_until(&addr, "west online", Duration::from_secs(60), |p| online(p, "west"));
    assert_eq!(restarts(&page, "east"), Some(1.0), "the unchanged camera was restarted:\n{}", agent.log());
    assert!(online(&page, "east"));
    assert_eq!(agent.log().matches("camera=east url=").count(), 1, "east opened twice:\n{}", agent.log());
    let east_before = metric(&page, "edge_agent_camera_frames_decoded_total{camera=\"east\"}").unwrap();

    // An invalid file is rejected with its errors logged; both cameras keep running.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, good.replace("detect_fps = 2", "detect_fps = -3")).unwrap();
    agent.signal("HUP");
    agent.wait_log("new configuration rejected", 1, Duration::from_secs(30));
    assert!(agent.log().contains("cameras[0].detect_fps"), "the error names the field:\n{}", agent.log());
    std::thread::sleep(Duration::from_secs(2));
    let page = scrape_until(&addr, "still online", Duration::from_secs(10), |p| online(p, "east") && online(p, "west"));
    assert!(metric(&page, "edge_agent_camera_frames_decoded_total{camera=\"east\"}").unwrap() > east_before, "east stopped decoding");
    assert_eq!(restarts(&page, "east"), Some(1.0));
    assert_eq!(metric(&page, "edge_agent_config_reloads_total{result=\"rejected\"}"), Some(1.0));

    // Changing one camera restarts only that one; removing one stops it.
    config(dir.path(), None, &[Cam { extra: "loop_file = true\ndetect_fps = 3\nplates = \"off\"", ..looping_camera("east") }], "");
    agent.signal("HUP");
    agent.wait_log("configuration reloaded", 2, Duration::from_secs(30));
    let page = scrape_until(&addr, "east back online, west gone", Duration::from_secs(60), |p| online(p, "east") && !p.contains("camera=\"west\""));
    assert_eq!(restarts(&page, "east"), Some(1.0), "a changed camera starts afresh with its own counters");
    assert!(agent.log().contains("camera removed from the config: stopping it"), "{}", agent.log());
    assert_eq!(metric(&page, "edge_agent_config_reloads_total{result=\"applied\"}"), Some(2.0));
}

/// Reads notification datagrams until one contains `want`.
fn expect_notification(socket: &UnixDatagram, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                if message.contains(want) {
                    return message;
                }
                seen.push(message);
            }
            Err(_) => break,
        }
    }
    panic!("no {want:?} notification within {timeout:?}; got {seen:?}");
}

#[test]
fn systemd_notifications_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let cfg = config(dir.path(), None, &[looping_camera("gate")], "");
    // A 3 s watchdog: keep-alives must come at least every 1.5 s.
    let mut agent = Agent::start_env(&cfg, &[("NOTIFY_SOCKET", socket_path.to_str().unwrap()), ("WATCHDOG_USEC", "3000000")]);
    let ready = expect_notification(&socket, "READY=1", Duration::from_secs(60));
    assert!(ready.contains("STATUS=1 camera(s) running"), "{ready}");
    let start = Instant::now();
    for _ in 0..3 {
        expect_notification(&socket, "WATCHDOG=1", Duration::from_secs(3));
    }
    assert!(start.elapsed() < Duration::from_secs(6), "keep-alives too slow for a 3 s watchdog");
    agent.signal("HUP");
    expect_notification(&socket, "RELOADING=1", Duration::from_secs(10));
    expect_notification(&socket, "READY=1", Duration::from_secs(10));
    agent.signal("TERM");
    expect_notification(&socket, "STOPPING=1", Duration::from_secs(10));
    assert_eq!(agent.wait(Duration::from_secs(30)), Some(0));
}
