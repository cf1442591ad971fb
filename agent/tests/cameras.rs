//! Cameras that keep working: a real RTSP server (gst-rtsp-server) killed and restarted, silent, with
//! authentication, changing resolution; H.265, HTTP MJPEG and UDP; decoder choice. The agent's camera
//! states are read from its retained status on a real Mosquitto.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use serde_json::Value;
use testkit::broker::{Broker, Message, Subscriber};
use testkit::rtsp::{Codec, Feed, MjpegServer, RtspServer, ServerSpec};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";

/// The camera entry of a status message.
fn camera(m: &Message, id: &str) -> Option<Value> {
    if m.topic != format!("{BASE}/status") {
        return None;
    }
    m.json()["cameras"].as_array()?.iter().find(|c| c["id"] == id).cloned()
}

/// The latest status entry of camera `id`.
fn latest(sub: &Subscriber, id: &str) -> Option<Value> {
    sub.messages().iter().rev().find_map(|m| camera(m, id))
}

fn wait_state(sub: &Subscriber, id: &str, state: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(c) = latest(sub, id).filter(|c| c["state"] == state) {
            return c;
        }
        assert!(Instant::now() < deadline, "camera {id} not {state} within {timeout:?}; latest: {:?}", latest(sub, id));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Open file descriptors, threads and resident memory (KiB) of a process.
fn resources(pid: i32) -> (usize, usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<u64>().ok()).unwrap();
    (fds, field("Threads:") as usize, field("VmRSS:"))
}

#[test]
fn rtsp_server_killed_and_restarted_ten_times_comes_back_without_leaking() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), &format!("{BASE}/status"));
    let mut server = RtspServer::start(ServerSpec::still(640, 360));
    let dir = tempfile::tempdir().unwrap();
    let cap = 2.0;
    let extra = format!("reconnect_max_secs = {cap}\nplates = \"off\"");
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate", url: server.url(None), extra: &extra }], "");
    let mut agent = Agent::start(&cfg);
    wait_state(&sub, "gate", "online", Duration::from_secs(60));

    let mut after_first = None;
    let mut worst = Duration::ZERO;
    let rounds: u32 = std::env::var("RECONNECT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    for round in 1..=rounds {
        server.kill();
        let down = wait_state(&sub, "gate", "unreachable", Duration::from_secs(30));
        assert!(down["last_error"].is_string(), "{down}");
        server.restart(ServerSpec::still(640, 360));
        let back_from = Instant::now();
        wait_state(&sub, "gate", "online", Duration::from_secs(30));
        let took = back_from.elapsed();
        worst = worst.max(took);
        // Back within the back-off cap (plus jitter and the time to set up the stream).
        assert!(took < Duration::from_secs_f64(cap * 1.2 + 5.0), "round {round}: back online after {took:?}");
        if round == 1 {
            std::thread::sleep(Duration::from_secs(2));
            after_first = Some(resources(agent.pid()));
        }
        if std::env::var_os("RECONNECT_ROUNDS").is_some() {
            eprintln!("round {round}: {:?}", resources(agent.pid()));
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    let (fd1, th1, rss1) = after_first.unwrap();
    let (fd10, th10, rss10) = resources(agent.pid());
    eprintln!("after 1st reconnect: {fd1} fds, {th1} threads, {rss1} KiB; after 10th: {fd10} fds, {th10} threads, {rss10} KiB; slowest return {worst:?}");
    // Tolerances: a handful of descriptors and threads (GStreamer's own pools), 10 % of memory
    // (measured: under 3 % with the daemon's malloc arena cap, 14 % without it).
    assert!(fd10 <= fd1 + 4, "file descriptors grew from {fd1} to {fd10}");
    assert!(th10 <= th1 + 3, "threads grew from {th1} to {th10}");
    assert!(rss10 <= rss1 + rss1 / 10, "resident memory grew from {rss1} to {rss10} KiB");
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn stalled_unauthorized_unreachable_and_corrupt_cameras_do_not_affect_a_healthy_one() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let healthy = RtspServer::start(ServerSpec::still(640, 360));
    let silent = RtspServer::start(ServerSpec { feed: Feed::Silent { image: testkit::data("scenes/hy_test_img.jpg"), width: 640, height: 360 }, credentials: None });
    let guarded = RtspServer::start(ServerSpec { credentials: Some(("admin".into(), "right-pass".into())), ..ServerSpec::still(640, 360) });
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("truncated.mp4");
    let clip = std::fs::read(testkit::clips::street_pan()).unwrap();
    std::fs::write(&corrupt, &clip[..clip.len() / 3]).unwrap();
    let closed = testkit::broker::free_port();
    let cams = [
        // A still picture: with motion gating the detector would only look every keep-alive; this test wants
        // every sampled frame analysed.
        Cam { id: "healthy", url: healthy.url(None), extra: "plates = \"off\"\n[cameras.motion]\nenabled = false" },
        Cam { id: "silent", url: silent.url(None), extra: "stall_timeout_secs = 4\nreconnect_max_secs = 4" },
        Cam { id: "wrongpw", url: guarded.url(Some(("admin", "wrong-pass"))), extra: "" },
        Cam { id: "nohost", url: format!("rtsp://127.0.0.1:{closed}/stream"), extra: "" },
        Cam { id: "corrupt", url: file_url(&corrupt), extra: "" },
    ];
    let cfg = config(dir.path(), Some(broker.port()), &cams, "");
    let mut agent = Agent::start(&cfg);

    let stalled = wait_state(&sub, "silent", "stalled", Duration::from_secs(60));
    assert!(stalled["last_error"].as_str().unwrap().contains("no first frame"), "{stalled}");
    let unauthorized = wait_state(&sub, "wrongpw", "unauthorized", Duration::from_secs(60));
    assert!(unauthorized["last_error"].as_str().unwrap().to_lowercase().contains("unauthorized"), "{unauthorized}");
    wait_state(&sub, "nohost", "unreachable", Duration::from_secs(60));
    let corrupt_state = wait_state(&sub, "corrupt", "failed", Duration::from_secs(60));
    assert!(
        corrupt_state["last_error"].as_str().unwrap().contains("no playable streams") || corrupt_state["last_error"].as_str().unwrap().contains("truncated"),
        "{corrupt_state}"
    );

    // Meanwhile the healthy camera is online and analysed at its full rate.
    let ok = wait_state(&sub, "healthy", "online", Duration::from_secs(30));
    assert_eq!(ok["frame_size"], serde_json::json!([640, 360]));
    let rate = |m: &Message| {
        m.topic == format!("{BASE}/stats") && m.json()["cameras"].as_array().unwrap().iter().any(|c| c["id"] == "healthy" && c["fps_analysed"].as_f64().unwrap_or(0.0) >= 4.0)
    };
    let stats = sub.wait_for(Duration::from_secs(30), "the healthy camera analysed at ~5 fps", rate);
    assert_valid("stats.v1.json", &stats.json());
    // The stall restarts the silent camera (it is retried, not abandoned).
    std::thread::sleep(Duration::from_secs(6));
    let restarts = sub
        .messages()
        .iter()
        .rev()
        .filter(|m| m.topic.ends_with("/stats"))
        .find_map(|m| m.json()["cameras"].as_array().unwrap().iter().find(|c| c["id"] == "silent").map(|c| c["restarts"].as_u64().unwrap()));
    assert!(restarts.unwrap_or(0) >= 2, "silent camera restarted: {restarts:?}");
    // Authentication failures back off rather than hammer the camera.
    let log = agent.log();
    let tries = log.lines().filter(|l| l.contains("opening camera camera=wrongpw")).count();
    assert!(tries <= 3, "{tries} attempts on a camera rejecting the password in ~20 s");
    assert!(!log.contains("wrong-pass") && !log.contains("right-pass"), "credentials in the log");
    for m in sub.messages() {
        assert!(!String::from_utf8_lossy(&m.payload).contains("wrong-pass"), "credentials published on {}", m.topic);
    }
    for m in sub.messages().iter().filter(|m| m.topic.ends_with("/status")) {
        assert_valid("status.v1.json", &m.json());
    }
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn a_resolution_change_mid_run_is_handled() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let mut server = RtspServer::start(ServerSpec::still(640, 360));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &[Cam { id: "gate", url: server.url(None), extra: "reconnect_max_secs = 2\nplates = \"off\"" }], "");
    let mut agent = Agent::start(&cfg);
    let before = wait_state(&sub, "gate", "online", Duration::from_secs(60));
    assert_eq!(before["frame_size"], serde_json::json!([640, 360]));
    server.restart(ServerSpec::still(960, 540));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if latest(&sub, "gate").is_some_and(|c| c["state"] == "online" && c["frame_size"] == serde_json::json!([960, 540])) {
            break;
        }
        assert!(Instant::now() < deadline, "new size not picked up: {:?}", latest(&sub, "gate"));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Detections keep coming, in the new frame size.
    let m = sub.wait_for(Duration::from_secs(20), "detections at 960 wide", |m| m.topic.ends_with("/gate/detections") && m.json()["frame"]["width"] == 960);
    assert_eq!(m.json()["frame"]["height"], 540, "the whole new size, not only the width: {}", m.json()["frame"]);
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}

#[test]
fn h265_mjpeg_udp_and_decoder_choices_work() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let h265 = RtspServer::start(ServerSpec {
        feed: Feed::Still { image: testkit::data("scenes/coco_000000001000.jpg"), width: 640, height: 480, codec: Codec::H265 },
        credentials: None,
    });
    let h264 = RtspServer::start(ServerSpec::still(640, 360));
    let mjpeg = MjpegServer::start(&testkit::data("scenes/coco_000000000139.jpg"), 10);
    let cams = [
        Cam { id: "hevc", url: h265.url(None), extra: "plates = \"off\"" },
        Cam { id: "mjpeg", url: mjpeg.url(), extra: "plates = \"off\"" },
        Cam { id: "udp", url: h264.url(None), extra: "transport = \"udp\"\nplates = \"off\"" },
        Cam { id: "soft", url: h264.url(None), extra: "decoder = \"software\"\nplates = \"off\"" },
        Cam { id: "vaapi", url: h264.url(None), extra: "decoder = \"vaapi\"\nplates = \"off\"" },
    ];
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), Some(broker.port()), &cams, "");
    let mut agent = Agent::start(&cfg);
    let hevc = wait_state(&sub, "hevc", "online", Duration::from_secs(60));
    assert_eq!(hevc["frame_size"], serde_json::json!([640, 480]));
    assert!(hevc["decoder"].as_str().unwrap_or_default().contains("h265"), "{hevc}");
    let mj = wait_state(&sub, "mjpeg", "online", Duration::from_secs(60));
    assert_eq!(mj["frame_size"], serde_json::json!([640, 426]));
    assert!(mj["decoder"].as_str().unwrap_or_default().contains("jpeg"), "{mj}");
    wait_state(&sub, "udp", "online", Duration::from_secs(60));
    let soft = wait_state(&sub, "soft", "online", Duration::from_secs(60));
    assert!(soft["decoder"].as_str().unwrap_or_default().ends_with("(software)"), "{soft}");
    // No VA-API on this machine: a clear error naming what to install, and the others are unaffected.
    let va = wait_state(&sub, "vaapi", "failed", Duration::from_secs(60));
    assert!(va["last_error"].as_str().unwrap().contains("no such hardware video decoder is installed"), "{va}");
    // The person in the MJPEG stream is detected.
    sub.wait_for(Duration::from_secs(30), "a person from the MJPEG camera", |m| {
        m.topic.ends_with("/mjpeg/detections") && m.json()["detections"].as_array().unwrap().iter().any(|d| d["label"] == "person")
    });
    assert!(agent.log().contains("video decoder chosen"), "{}", agent.log());
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}
