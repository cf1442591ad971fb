//! Event clips against the real thing: the daemon records its cameras' streams (a file, an RTSP server)
//! into the ring, cuts a clip around an alert, publishes it to a real Mosquitto, and sends it in chunks
//! when the platform asks; retention and the storage floor bound what is kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, file_url, Agent, Cam};
use edge_agent::source::{Mode, Next, Pipeline, SourceSettings};
use edge_agent::stats::{CameraRecord, CameraState};
use serde_json::Value;
use sha2::Digest;
use testkit::broker::{Broker, Subscriber};
use testkit::clips::{cached, load_rgb, render, ClipSpec, Codec, Sprite};
use testkit::rtsp::{Feed, RtspServer, ServerSpec};
use testkit::schemas::assert_valid;

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
const PRE: u32 = 5;
const POST: u32 = 2;
const WATCH_RULE: &str = "[[rules]]\nid = \"stolen\"\nkind = \"watch_list\"\nplates = [\"苏ED51712\"]\nseverity = \"critical\"\n\n";
/// The width of the scene's time bar grows by this many pixels a second.
const BAR_PX_PER_S: f64 = 100.0;

/// An empty road for 8 s, then 苏ED51712 driving in over 3 s, then the road again; a white bar along the
/// bottom grows 100 px a second, so each frame shows its own time.
fn timed_car_scene() -> PathBuf {
    cached("car_after_road_timed_1080p.mp4", |p| {
        let seconds = 14.0;
        let scene = load_rgb(&testkit::data("scenes/hy_test_img.jpg"));
        let car = testkit::clips::crop(&scene, 560, 300, 1360, 740);
        let width = (seconds * BAR_PX_PER_S) as u32;
        let bar = image::RgbImage::from_pixel(width, 24, image::Rgb([255, 255, 255]));
        // The bar along the bottom edge, which the car never reaches.
        let sprites = vec![
            Sprite { image: car, from: (280.0, -320.0), to: (280.0, 330.0), start_s: 8.0, end_s: 11.0 },
            Sprite { image: bar, from: (-(width as f64), 1056.0), to: (0.0, 1056.0), start_s: 0.0, end_s: seconds },
        ];
        let spec = ClipSpec { width: 1920, height: 1080, fps: 25, seconds, background: testkit::clips::grey(1920, 1080, 110), sprites, codec: Codec::H264, noise: 0, drift: 0.0 };
        render(&spec, p)
    })
}

/// The scene time each frame of `path` shows (its time bar), in order.
fn frame_times(path: &Path) -> Vec<f64> {
    edge_agent::source::pipeline::init().unwrap();
    let url = edge_config::CameraUrl::new(file_url(path));
    let record = Arc::new(CameraRecord::new("probe", 25.0, CameraState::Connecting));
    let mut pipeline = Pipeline::open(SourceSettings::new("probe", url, 25.0, 0, Mode::Offline), record).unwrap();
    let mut times = Vec::new();
    loop {
        match pipeline.next(Duration::from_secs(10)).unwrap() {
            Next::Frame(frame) => {
                let view = frame.view().unwrap();
                let row = view.row(1068);
                let lit = (0..view.width() as usize).take_while(|x| row[x * 3] > 200).count();
                times.push(lit as f64 / BAR_PX_PER_S);
            }
            Next::Eos => return times,
            Next::Timeout => panic!("decoding {} stalled", path.display()),
        }
    }
}

fn at(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap().parse().unwrap()
}

fn seconds(a: &Value, b: &Value) -> f64 {
    (at(b) - at(a)).num_milliseconds() as f64 / 1000.0
}

fn clip_file(state: &Path, clip: &Value) -> PathBuf {
    let day = at(&clip["started_at"]).format("%Y-%m-%d").to_string();
    state.join("clips").join(day).join(format!("{}.mp4", clip["id"].as_str().unwrap()))
}

/// Where the MP4's boxes start: the index (`moov`) must come before the media (`mdat`) for a browser to
/// play it while it loads.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut boxes = Vec::new();
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        boxes.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        if size < 8 {
            break;
        }
        i += size;
    }
    boxes
}

fn publish(broker: &Broker, body: &str) {
    assert_valid("command.v1.json", &serde_json::from_str(body).unwrap());
    let out =
        std::process::Command::new("/usr/bin/mosquitto_pub").args(["-p", &broker.port().to_string(), "-q", "1", "-t", &format!("{BASE}/commands"), "-m", body]).output().unwrap();
    assert!(out.status.success());
}

fn clip_settings(keep: &str, extra: &str) -> String {
    format!("[clips]\nkeep = \"{keep}\"\npre_capture_secs = {PRE}\npost_capture_secs = {POST}\n{extra}\n")
}

#[test]
fn an_alerts_clip_starts_pre_capture_before_the_car_was_first_seen_and_the_platform_gets_it_by_command() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let scene = timed_car_scene();
    let cams = [Cam { id: "gate", url: file_url(&scene), extra: "loop_file = true" }];
    let cfg = config(dir.path(), Some(broker.port()), &cams, &format!("{WATCH_RULE}{}", clip_settings("alerts", "chunk_kb = 64")));
    let _agent = Agent::start(&cfg);

    let clip = sub.wait_for(Duration::from_secs(120), "the alert's clip", |m| m.topic == format!("{BASE}/gate/clips")).json();
    assert_valid("clip.v1.json", &clip);
    let alert = sub.wait_for(Duration::from_secs(5), "the alert", |m| m.topic.ends_with("/gate/alerts")).json();
    let event_id = alert["event_id"].as_str().unwrap();
    assert_eq!((clip["id"].as_str(), clip["event_id"].as_str()), (Some(event_id), Some(event_id)));
    assert_eq!(clip["alert_ids"], serde_json::json!([alert["id"]]));
    let events: Vec<Value> = sub.messages().iter().filter(|m| m.topic.ends_with("/gate/events")).map(|m| m.json()).filter(|e| e["id"] == event_id).collect();
    let end = events.iter().find(|e| e["phase"] == "end").expect("the event ended before its clip");
    assert_eq!((clip["codec"].as_str(), clip["content_type"].as_str(), clip["pre_capture_s"].as_u64()), (Some("h264"), Some("video/mp4"), Some(u64::from(PRE))));

    // The clip's own record: it starts at least the pre-capture before the first sighting, and ends at
    // least the post-capture after the last.
    let lead = seconds(&clip["started_at"], &end["started_at"]);
    let tail = seconds(&end["ended_at"], &clip["ended_at"]);
    assert!(lead >= f64::from(PRE) && lead < f64::from(PRE) + 3.0, "the clip starts {lead:.2} s before the car was first seen");
    assert!(tail >= f64::from(POST) - 0.1, "the clip ends {tail:.2} s after the car was last seen");

    // The file shows what the record says: its first frame (read off the scene's time bar) puts the first
    // sighting where the car really entered (8 s into the scene, the car's front visible soon after).
    let file = clip_file(&dir.path().join("state"), &clip);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes.len() as u64, clip["bytes"].as_u64().unwrap());
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), clip["sha256"].as_str().unwrap());
    let boxes = top_level_boxes(&bytes);
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(moov.is_some() && moov < mdat, "faststart: the index comes first ({boxes:?})");
    let times = frame_times(&file);
    let first = times[0];
    let sighting = first + lead;
    assert!((8.0..10.5).contains(&sighting), "the clip's first frame is {first:.2} s into the scene, which puts the first sighting at {sighting:.2} s");
    assert!(first <= sighting - f64::from(PRE) + 0.05);
    let shown = times.len() as f64 / 25.0;
    assert!((shown - clip["duration_s"].as_f64().unwrap()).abs() < 0.5, "{} frames for a clip of {} s", times.len(), clip["duration_s"]);
    assert!(times.windows(2).all(|w| w[1] >= w[0] - 0.05 || w[1] < 1.0), "frames in order (or the scene starting again): {times:?}");

    // The platform asks for it: the chunks arrive through the outbox and make up the same file.
    let id = clip["id"].as_str().unwrap();
    publish(&broker, &format!(r#"{{"schema":"edge-agent/command/v1","id":"clip-1","command":"clip","args":{{"clip":"{id}"}},"expires_at":"2099-01-01T00:00:00Z"}}"#));
    let result = sub.wait_for(Duration::from_secs(20), "the clip command's result", |m| m.topic.ends_with("/results") && m.json()["id"] == "clip-1").json();
    assert_valid("result.v1.json", &result);
    assert_eq!(result["status"], "done", "{result}");
    let chunks = result["data"]["chunks"].as_u64().unwrap() as usize;
    assert_eq!(chunks, bytes.len().div_ceil(64 << 10));
    assert!(chunks > 1);
    assert_eq!(result["data"]["topic"], format!("{BASE}/gate/clips/{id}"));
    let prefix = format!("{BASE}/gate/clips/{id}/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let parts = loop {
        let mut parts: Vec<(usize, Vec<u8>)> =
            sub.messages().into_iter().filter_map(|m| m.topic.strip_prefix(&prefix).and_then(|n| n.parse().ok()).map(|n| (n, m.payload))).collect();
        parts.sort_by_key(|p| p.0);
        parts.dedup_by_key(|p| p.0);
        if parts.len() == chunks || Instant::now() > deadline {
            break parts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), (0..chunks).collect::<Vec<_>>());
    let joined: Vec<u8> = parts.into_iter().flat_map(|p| p.1).collect();
    assert_eq!(hex::encode(sha2::Sha256::digest(&joined)), result["data"]["sha256"].as_str().unwrap());

    // A clip that is not kept is answered plainly.
    publish(
        &broker,
        r#"{"schema":"edge-agent/command/v1","id":"clip-2","command":"clip","args":{"clip":"01900000-0000-7000-8000-000000000000"},"expires_at":"2099-01-01T00:00:00Z"}"#,
    );
    let missing = sub.wait_for(Duration::from_secs(20), "the refused clip command", |m| m.topic.ends_with("/results") && m.json()["id"] == "clip-2").json();
    assert_eq!(missing["status"], "failed");
    assert!(missing["detail"].as_str().unwrap().contains("no clip"), "{missing}");
}

fn metric(agent: &Agent, sample: &str) -> f64 {
    common::metric(&common::http_get(&agent.metrics_addr(), "/metrics").1, sample).unwrap_or(-1.0)
}

fn wait_metric(agent: &Agent, sample: &str, at_least: f64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while metric(agent, sample) < at_least {
        assert!(Instant::now() < deadline, "{sample} stayed at {} (wanted ≥ {at_least}); log:\n{}", metric(agent, sample), agent.log());
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn kept_clips(state: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(days) = std::fs::read_dir(state.join("clips")) else { return Vec::new() };
    days.flatten()
        .filter(|d| d.file_name() != "ring")
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|f| f.path().extension().is_some_and(|x| x == "mp4"))
        .map(|f| (f.path(), f.metadata().unwrap().len()))
        .collect()
}

#[test]
fn clips_stay_within_their_bytes_oldest_first_and_are_not_kept_below_the_storage_floor() {
    let scene = common::scenes::two_cars();
    // Every passing kept, at most 4 MiB of clips: each is about 1.7 MB, so the oldest go.
    let dir = tempfile::tempdir().unwrap();
    let cams = [Cam { id: "gate", url: file_url(&scene), extra: "loop_file = true" }];
    let cfg = config(dir.path(), None, &cams, &clip_settings("passings", "max_mb = 4\nring_max_mb = 4"));
    let mut agent = Agent::start(&cfg);
    wait_metric(&agent, "edge_agent_clips_deleted_total", 1.0, Duration::from_secs(120));
    let kept = metric(&agent, "edge_agent_clips_total{result=\"kept\"}");
    assert!(kept >= 3.0, "{kept} clips kept");
    assert!(metric(&agent, "edge_agent_clip_ring_bytes{camera=\"gate\"}") <= f64::from(4u32 << 20));
    agent.stop_timed();
    let on_disk = kept_clips(&dir.path().join("state"));
    let bytes: u64 = on_disk.iter().map(|c| c.1).sum();
    assert!(bytes <= 4 << 20 && !on_disk.is_empty(), "{} clips of {bytes} bytes on disk", on_disk.len());
    // The ones deleted are the oldest: what is left are the newest kept (ids are time-ordered).
    let mut left: Vec<String> = on_disk.iter().map(|c| c.0.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    left.sort();
    let log = agent.log();
    let mut all_kept: Vec<String> =
        log.lines().filter(|l| l.contains("clip kept")).filter_map(|l| l.split("clip=").nth(1)).map(|rest| rest.split_whitespace().next().unwrap().to_string()).collect();
    all_kept.sort();
    assert!(all_kept.len() > left.len() && all_kept.ends_with(&left), "left {left:?} of {all_kept:?}");

    // A state disk below its floor: events go on, clips are refused and counted.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), None, &cams, &clip_settings("passings", ""));
    let text = std::fs::read_to_string(&cfg).unwrap().replace("[storage]\n", "[storage]\nmin_free_mb = 100000000\n");
    std::fs::write(&cfg, text).unwrap();
    let agent = Agent::start(&cfg);
    wait_metric(&agent, "edge_agent_clips_total{result=\"refused\"}", 1.0, Duration::from_secs(90));
    assert!(kept_clips(&dir.path().join("state")).is_empty());
    assert!(agent.log().contains("clip not kept: the disk is below its free-space floor"));
}

#[test]
fn an_rtsp_camera_is_recorded_and_an_mjpeg_camera_says_why_it_has_no_clips() {
    let server = RtspServer::start(ServerSpec { feed: Feed::File(common::scenes::car_crossing(true)), credentials: None });
    let mjpeg = common::scenes::camera_fault(common::scenes::Fault::Frozen);
    let dir = tempfile::tempdir().unwrap();
    let cams = [Cam { id: "rtsp-gate", url: server.url(None), extra: "" }, Cam { id: "mjpeg-gate", url: file_url(&mjpeg), extra: "loop_file = true" }];
    let cfg = config(dir.path(), None, &cams, &clip_settings("passings", ""));
    let agent = Agent::start(&cfg);
    wait_metric(&agent, "edge_agent_clips_total{result=\"kept\"}", 1.0, Duration::from_secs(90));
    assert_eq!(metric(&agent, "edge_agent_clip_recorder{camera=\"rtsp-gate\",state=\"recording\"}"), 1.0);
    assert_eq!(metric(&agent, "edge_agent_clip_recorder{camera=\"mjpeg-gate\",state=\"unavailable\"}"), 1.0);
    assert!(agent.log().contains("the camera sends MJPEG, which would have to be encoded again to be kept"));
    let clips = kept_clips(&dir.path().join("state"));
    assert!(!clips.is_empty());
    let times = clips.iter().map(|c| std::fs::read(c.0.with_extension("json")).unwrap()).map(|b| serde_json::from_slice::<Value>(&b).unwrap());
    for clip in times {
        assert_valid("clip.v1.json", &clip);
        assert_eq!(clip["camera"], "rtsp-gate");
    }
}

#[test]
fn the_desk_plays_an_alerts_clip_and_an_operator_sees_the_live_view_with_the_line_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let line = "loop_file = true\n\n[[cameras.lines]]\nid = \"gate\"\npoints = [[0.0, 0.75], [1.0, 0.75]]\nin_side = [0.5, 0.95]\n";
    let cams = [Cam { id: "gate", url: file_url(&common::scenes::car_crossing(true)), extra: line }];
    let cfg = config(dir.path(), None, &cams, &format!("{WATCH_RULE}{}", clip_settings("alerts", "")));
    assert!(common::users_add(&cfg, "duty", "operator", "village-gate-2026").status.success());
    assert!(common::users_add(&cfg, "watcher", "viewer", "village-view-2026").status.success());
    let mut agent = Agent::start(&cfg);
    let addr = common::web_addr(&agent);
    let browser = common::browser::Browser::start(1280, 900);
    browser.sign_in(&addr, "duty", "village-gate-2026");

    // The alert's row gets the clip once it is cut; it plays, for as long as the clip says.
    let clip_id = browser.wait_for(
        "the clip under the alert",
        Duration::from_secs(120),
        "const v = document.querySelector('li.alert .clip video'); return v ? v.closest('.clip').dataset.clip : null",
    );
    let clip_id = clip_id.as_str().unwrap().to_string();
    let duration = browser.eval_async(
        "const v = document.querySelector('li.alert .clip video');\
         const go = () => v.play().then(() => setTimeout(() => done({ duration: v.duration, time: v.currentTime, error: v.error && v.error.code }), 1500), (e) => done({ error: String(e) }));\
         if (v.readyState >= 1) go(); else v.addEventListener('loadedmetadata', go, { once: true });",
    );
    let file = kept_clips(&dir.path().join("state")).into_iter().find(|c| c.0.file_stem().is_some_and(|s| s.to_string_lossy() == clip_id)).expect("the clip's file").0;
    let record: Value = serde_json::from_slice(&std::fs::read(file.with_extension("json")).unwrap()).unwrap();
    let expected = record["duration_s"].as_f64().unwrap();
    assert!(duration["error"].is_null(), "{duration}");
    assert!((duration["duration"].as_f64().unwrap() - expected).abs() < 0.6, "the player says {duration}, the clip {expected} s");
    assert!(duration["time"].as_f64().unwrap() > 0.5, "it played: {duration}");
    browser.save_screenshot("desk-clip.png");

    // The live view: the camera's frame with the counting line across it at 75 % of its height.
    browser.click("#show-live");
    browser.wait_for("the live picture", Duration::from_secs(20), "const i = document.getElementById('live-img'); return i.naturalWidth > 0 && i.dataset.camera === 'gate'");
    let line_colour = browser.eval(
        "const i = document.getElementById('live-img'); const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;\
         const g = c.getContext('2d'); g.drawImage(i, 0, 0); const at = (fy) => Array.from(g.getImageData(Math.round(c.width * 0.1), Math.round(c.height * fy), 1, 1).data.slice(0, 3));\
         return { size: [c.width, c.height], line: at(0.75), above: at(0.6) };",
    );
    assert_eq!(line_colour["size"], serde_json::json!([960, 540]), "{line_colour}");
    let rgb = |k: &str| line_colour[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect::<Vec<_>>();
    let (on, off) = (rgb("line"), rgb("above"));
    assert!(on[0] > 200 && on[1] > 180 && on[2] < 90, "the line is drawn in yellow: {on:?}");
    assert!(off[2] > 60, "the road above it is not: {off:?}");
    browser.save_screenshot("desk-live.png");

    // A viewer may watch the clip (and that is on the record) but not the live view.
    let viewer = common::web_login(&addr, "watcher", "village-view-2026");
    let (status, _) = common::http_get_with(&addr, "/api/live/gate", &[&format!("Cookie: {viewer}")]);
    assert_eq!(status, 403);
    let ranged = common::http_raw(&addr, "GET", &format!("/clips/{clip_id}.mp4"), &[&format!("Cookie: {viewer}"), "Range: bytes=0-99"], "");
    assert!(ranged.starts_with("HTTP/1.1 206") && ranged.to_ascii_lowercase().contains("content-range: bytes 0-99/"), "{}", &ranged[..ranged.len().min(300)]);
    let (status, _) = common::http_get(&addr, &format!("/clips/{clip_id}.mp4"));
    assert_ne!(status, 200, "not without signing in");
    agent.stop_timed();
    let audit: String = std::fs::read_dir(dir.path().join("state/audit")).unwrap().flatten().map(|f| std::fs::read_to_string(f.path()).unwrap_or_default()).collect();
    let views: Vec<&str> = audit.lines().filter(|l| l.contains("\"action\":\"clip_viewed\"") && l.contains(&clip_id)).collect();
    assert!(views.iter().any(|l| l.contains("\"by\":\"duty\"")) && views.iter().any(|l| l.contains("\"by\":\"watcher\"")), "{audit}");
}
