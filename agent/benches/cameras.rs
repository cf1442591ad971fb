//! `make bench` (cameras): how many 1280x720 H.264 RTSP streams (25 fps, a slow pan across the street scene)
//! the agent sustains at 5 detect-fps each on this machine, with its CPU and resident memory, next to the
//! decode-only ceiling measured in the same run: the same streams from the same server, decoded by bare
//! GStreamer pipelines (`rtspsrc ! decodebin ! fakesink`) in a separate process.
//!
//! A count of streams is *sustained* when, over the measured window, every stream is decoded at ≥ 95 % of its
//! 25 fps (no growing lag: a decoder that falls behind the live stream shows up as a lower rate here) and,
//! for the agent, analysed at ≥ 95 % of 5 fps, with no pipeline restarts. Each side climbs a ladder of stream
//! counts until the first count it does not sustain.
//!
//! `EDGE_BENCH_MAX_STREAMS` caps the ladders (default 64); `EDGE_BENCH_ONLY=agent` or `=decode` runs one side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::rtsp::{Feed, RtspServer, ServerSpec};

const SOURCE_FPS: f64 = 25.0;
const DETECT_FPS: f64 = 5.0;
/// Time after every stream delivers frames before measuring (decoders and the detector settle).
const WARM_UP: Duration = Duration::from_secs(6);
const WINDOW: Duration = Duration::from_secs(15);
/// Both sides run at this lower priority, so the RTSP server in this process, standing in for cameras that
/// are separate devices in the field, keeps serving when the measured side saturates the CPU.
const NICENESS: i32 = 10;
const CHILD_ENV: &str = "EDGE_BENCH_DECODE_ONLY";

/// What one rung of a ladder measured.
struct Rung {
    streams: usize,
    /// Lowest per-stream decoded rate over the window.
    min_fps_in: f64,
    /// Lowest per-stream analysed rate (agent only).
    min_fps_analysed: Option<f64>,
    /// CPU time over wall time, in percent of one core.
    cpu_percent: f64,
    rss_mib: f64,
    restarts: u64,
}

impl Rung {
    fn sustained(&self) -> bool {
        self.min_fps_in >= 0.95 * SOURCE_FPS && self.min_fps_analysed.is_none_or(|f| f >= 0.95 * DETECT_FPS) && self.restarts == 0
    }

    fn line(&self) -> String {
        let analysed = self.min_fps_analysed.map(|f| format!(", analysed ≥ {f:5.2} fps")).unwrap_or_default();
        format!(
            "  {:>2} streams: decoded ≥ {:5.2} fps{analysed}, CPU {:5.0} % of a core, RSS {:6.1} MiB{}  {}",
            self.streams,
            self.min_fps_in,
            self.cpu_percent,
            self.rss_mib,
            if self.restarts > 0 { format!(", {} restarts", self.restarts) } else { String::new() },
            if self.sustained() { "sustained" } else { "NOT sustained" }
        )
    }
}

/// User plus system CPU time of a process, from `/proc/PID/stat` (clock ticks of 1/100 s on Linux).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap();
    kib / 1024.0
}

fn cpu_percent(pid: u32, cpu_before: Duration, wall_before: Instant) -> f64 {
    (cpu_time(pid) - cpu_before).as_secs_f64() / wall_before.elapsed().as_secs_f64() * 100.0
}

/// The decode-only side, run in a child process: `n` bare pipelines on `url`; prints the lowest decoded
/// rate, CPU and RSS as one line.
fn decode_only(url: &str, n: usize) {
    gst::init().unwrap();
    let counts: Vec<Arc<AtomicU64>> = (0..n).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let pipelines: Vec<gst::Element> = counts
        .iter()
        .map(|count| {
            let p = gst::parse::launch(&format!("rtspsrc location={url} protocols=tcp latency=200 ! decodebin ! fakesink name=sink sync=false")).unwrap();
            let sink = p.downcast_ref::<gst::Bin>().unwrap().by_name("sink").unwrap();
            let count = count.clone();
            sink.static_pad("sink").unwrap().add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                count.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
            p.set_state(gst::State::Playing).unwrap();
            // Staggered like cameras coming up one by one: the loopback test server sets sessions up
            // on one thread, and two dozen at the same instant overwhelm it (not the decoders).
            std::thread::sleep(Duration::from_millis(200));
            p
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.iter().any(|c| c.load(Ordering::Relaxed) == 0) {
        if Instant::now() >= deadline {
            // Reported as a rung that is not sustained: at this count the streams do not even start.
            let started = counts.iter().filter(|c| c.load(Ordering::Relaxed) > 0).count();
            eprintln!("  decode-only: only {started} of {n} streams delivered a frame within 60 s");
            println!("0 {} {}", cpu_percent(std::process::id(), Duration::ZERO, Instant::now() - Duration::from_secs(60)), rss_mib(std::process::id()));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(WARM_UP);
    let pid = std::process::id();
    let (cpu0, wall0) = (cpu_time(pid), Instant::now());
    let before: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    std::thread::sleep(WINDOW);
    let secs = wall0.elapsed().as_secs_f64();
    let min_fps = counts.iter().zip(&before).map(|(c, b)| (c.load(Ordering::Relaxed) - b) as f64 / secs).fold(f64::INFINITY, f64::min);
    println!("{min_fps} {} {}", cpu_percent(pid, cpu0, wall0), rss_mib(pid));
    for p in pipelines {
        let _ = p.set_state(gst::State::Null);
    }
}

fn measure_decode_only(server: &RtspServer, n: usize) -> Rung {
    let out = Command::new("nice")
        .args(["-n", &NICENESS.to_string()])
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{} {n}", server.url(None)))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(out.status.success() && v.len() == 3, "decode-only child failed: {text}");
    Rung { streams: n, min_fps_in: v[0], min_fps_analysed: None, cpu_percent: v[1], rss_mib: v[2], restarts: 0 }
}

/// Per-camera counters from the latest stats message.
fn counters(sub: &Subscriber) -> HashMap<String, (u64, u64, u64, String)> {
    let Some(m) = sub.messages().into_iter().rev().find(|m| m.topic.ends_with("/stats")) else { return HashMap::new() };
    let v = m.json();
    v["cameras"]
        .as_array()
        .map(|cams| {
            cams.iter()
                .map(|c: &Value| {
                    let n = |k: &str| c[k].as_u64().unwrap_or(0);
                    (c["id"].as_str().unwrap_or_default().to_owned(), (n("frames_in"), n("frames_analysed"), n("restarts"), c["state"].as_str().unwrap_or_default().to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn measure_agent(server: &RtspServer, n: usize) -> Rung {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (1..=n).map(|i| format!("cam{i:02}")).collect();
    let extra = format!("detect_fps = {DETECT_FPS}");
    let cams: Vec<common::Cam> = ids.iter().map(|id| common::Cam { id, url: server.url(None), extra: &extra }).collect();
    let cfg = common::config(dir.path(), Some(broker.port()), &cams, "");
    let mut agent = common::Agent::start_nice(&cfg, NICENESS);
    let pid = agent.pid() as u32;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let c = counters(&sub);
        if ids.iter().all(|id| c.get(id).is_some_and(|(_, analysed, _, state)| *analysed > 0 && state == "online")) {
            break;
        }
        if Instant::now() >= deadline {
            // Not sustained: at this count the cameras do not even all come up.
            let up = ids.iter().filter(|id| c.get(*id).is_some_and(|(_, a, _, s)| *a > 0 && s == "online")).count();
            eprintln!("  agent: only {up} of {n} cameras online and analysed within 90 s");
            agent.signal("TERM");
            agent.wait(Duration::from_secs(30));
            return Rung { streams: n, min_fps_in: 0.0, min_fps_analysed: Some(0.0), cpu_percent: 0.0, rss_mib: 0.0, restarts: 0 };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(WARM_UP);
    let (before, cpu0, wall0) = (counters(&sub), cpu_time(pid), Instant::now());
    std::thread::sleep(WINDOW);
    let (after, secs) = (counters(&sub), wall0.elapsed().as_secs_f64());
    let cpu = cpu_percent(pid, cpu0, wall0);
    let rss = rss_mib(pid);
    // Stats are published each second, so the counters lag the window edges alike; the rate over the
    // window is exact to within one interval.
    let rate = |f: fn(&(u64, u64, u64, String)) -> u64| ids.iter().map(|id| (f(&after[id]) - f(&before[id])) as f64 / secs).fold(f64::INFINITY, f64::min);
    let restarts = ids.iter().map(|id| after[id].2 - before[id].2).sum();
    let rung = Rung { streams: n, min_fps_in: rate(|c| c.0), min_fps_analysed: Some(rate(|c| c.1)), cpu_percent: cpu, rss_mib: rss, restarts };
    agent.signal("TERM");
    agent.wait(Duration::from_secs(30));
    rung
}

/// Climbs `ladder` until the first count not sustained; returns the highest sustained count.
fn climb(ladder: &[usize], clip: &std::path::Path, measure: impl Fn(&RtspServer, usize) -> Rung) -> usize {
    let mut best = 0;
    for &n in ladder {
        // A fresh server per rung, so the clip plays from its start for every count.
        let server = RtspServer::start(ServerSpec { feed: Feed::File(clip.to_path_buf()), credentials: None });
        let rung = measure(&server, n);
        println!("{}", rung.line());
        if !rung.sustained() {
            // Past the limit, sessions can be left half set up inside the server, and tearing it down
            // then blocks; the process is about to move on or exit, so leave it to the OS.
            std::mem::forget(server);
            break;
        }
        best = n;
    }
    best
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (url, n) = spec.split_once(' ').unwrap();
        decode_only(url, n.parse().unwrap());
        return;
    }
    // `cargo bench` passes `--bench`; there are no options of our own.
    let max: usize = std::env::var("EDGE_BENCH_MAX_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    // 40 s: enough for connecting, warming up and the window at every rung.
    let clip = testkit::clips::cached("street_pan_720p_40s.mp4", |p| testkit::clips::street_pan_720p(p, 40.0));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("1280x720 H.264 RTSP streams at {SOURCE_FPS} fps from gst-rtsp-server on loopback (TCP), {cores} cores; window {WINDOW:?}");

    let only = std::env::var("EDGE_BENCH_ONLY").unwrap_or_default();
    // The agent first: past the decode-only limit the test server can be left wedged (see `climb`).
    let mut agent = 0;
    if only != "decode" {
        println!("agent (edge-agent run, detect_fps {DETECT_FPS}, YOLOX-nano 416, plates on vehicles, events and snapshots):");
        let ladder: Vec<usize> = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16].into_iter().filter(|&n| n <= max).collect();
        agent = climb(&ladder, &clip, measure_agent);
    }
    let mut ceiling = 0;
    if only != "agent" {
        println!("decode-only ceiling (rtspsrc ! decodebin ! fakesink, one process):");
        let ladder: Vec<usize> = [1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64].into_iter().filter(|&n| n <= max).collect();
        ceiling = climb(&ladder, &clip, measure_decode_only);
    }

    println!("sustained: agent {agent} streams, decode-only ceiling {ceiling} streams");
    if ceiling > 0 && agent > 0 {
        println!("ratio agent / decode-only ceiling: {:.2}", agent as f64 / ceiling as f64);
    }
}
