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
//! The **quiet gate** ladder runs the agent on streams of a mostly still road (sensor noise, the light
//! rising slowly) where something passes every 30 s — a car in, a person, the car out, a person — with
//! motion gating on (the default). A count is sustained there when every stream is decoded at ≥ 95 % of
//! 25 fps over a 60 s window with no restarts, and every stream produced the same passings (type and
//! plate of each `end` event) as a reference run with gating off.
//!
//! Each ladder runs twice: with event clips on (the default; every passing cut into a clip, the worst
//! case) and off, so the cost of recording is measured against the same streams. `EDGE_BENCH_CLIPS=on` or
//! `=off` runs one of the two.
//!
//! `EDGE_BENCH_MAX_STREAMS` caps the ladders (default 64) and `EDGE_BENCH_MIN_STREAMS` starts them higher; `EDGE_BENCH_ONLY=busy`, `=quiet` or `=decode`
//! runs one of them; `EDGE_BENCH_CAMERA` adds TOML lines to every camera of the busy ladder (for example
//! `plates = "vehicles"`).
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
use testkit::cpu_time;
use testkit::rtsp::{Feed, RtspServer, ServerSpec};

const SOURCE_FPS: f64 = 25.0;
const DETECT_FPS: f64 = 5.0;
/// Time after every stream delivers frames before measuring (decoders and the detector settle).
const WARM_UP: Duration = Duration::from_secs(6);
const WINDOW: Duration = Duration::from_secs(15);
const QUIET_WINDOW: Duration = Duration::from_secs(60);
/// Both sides run at this lower priority, so the RTSP server in this process, standing in for cameras that
/// are separate devices in the field, keeps serving when the measured side saturates the CPU.
const NICENESS: i32 = 10;
const CHILD_ENV: &str = "EDGE_BENCH_DECODE_ONLY";
/// Whether the agent records clips in the ladder being climbed.
static CLIPS_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The `[clips]` section of the agent's config for the current ladder.
fn clip_settings() -> &'static str {
    if CLIPS_ON.load(Ordering::Relaxed) {
        "[clips]\nkeep = \"passings\"\n\n"
    } else {
        "[clips]\nenabled = false\n\n"
    }
}

/// What one rung of a ladder measured.
#[derive(Clone)]
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
    /// `new` events' latency over the run: p50 and p99 in ms, and how many.
    latency: Option<(f64, f64, u64)>,
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
            if self.restarts > 0 { format!(", {} restarts", self.restarts) } else { String::new() }
                + &self.latency.filter(|l| l.2 > 0).map(|(p50, p99, n)| format!(", new-event latency p50 {p50:.0} ms p99 {p99:.0} ms ({n} events)")).unwrap_or_default(),
            if self.sustained() { "sustained" } else { "NOT sustained" }
        )
    }
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

/// The decode-only rung: `n` pipelines on the one server's stream, set up one by one.
fn measure_decode_only(servers: &[RtspServer], n: usize) -> Rung {
    let out = Command::new("nice")
        .args(["-n", &NICENESS.to_string()])
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{} {n}", servers[0].url(None)))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    assert!(out.status.success() && v.len() == 3, "decode-only child failed: {text}");
    Rung { streams: n, min_fps_in: v[0], min_fps_analysed: None, cpu_percent: v[1], rss_mib: v[2], restarts: 0, latency: None }
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

/// What a rung of the quiet ladder needs besides the busy one's figures: each camera's passings.
type Passings = HashMap<String, Seen>;

/// One camera's passings: its `end` events as (type, plate), sorted, and what its events said (phase,
/// track, times, boxes; printed for a camera whose passings differ, to tell a passing split in two from one
/// missed).
#[derive(Debug, Clone, Default)]
struct Seen {
    ends: Vec<(String, Option<String>)>,
    trace: Vec<String>,
}

fn passings(sub: &Subscriber, ids: &[String]) -> Passings {
    let mut by: Passings = ids.iter().map(|id| (id.clone(), Seen::default())).collect();
    for m in sub.messages() {
        let Some(cam) = m.topic.strip_suffix("/events").and_then(|t| t.rsplit('/').next()) else { continue };
        let Some(seen) = by.get_mut(cam) else { continue };
        let e = m.json();
        let time = |k: &str| e[k].as_str().map_or("-".to_string(), |t| t.get(11..23).unwrap_or(t).to_string());
        if e["phase"] == "new" || e["phase"] == "end" {
            seen.trace.push(format!(
                "{} {} #{} {}..{} box {} plate {} {}",
                e["phase"].as_str().unwrap_or_default(),
                e["label"].as_str().unwrap_or_default(),
                e["track_id"],
                time("started_at"),
                time("ended_at"),
                e["box"],
                e["plate"]["text"],
                e.get("merged_into").map(|m| format!("merged into {m}")).unwrap_or_default()
            ));
        }
        if e["phase"] == "end" {
            seen.ends.push((e["type"].as_str().unwrap_or_default().to_string(), e["plate"]["text"].as_str().map(str::to_string)));
        }
    }
    for seen in by.values_mut() {
        seen.ends.sort();
    }
    by
}

/// The busy rung: camera `i` reads server `i`.
fn measure_agent(servers: &[RtspServer], n: usize) -> Rung {
    let extra = std::env::var("EDGE_BENCH_CAMERA").map(|e| format!("\n{e}")).unwrap_or_default();
    let urls: Vec<String> = servers.iter().map(|s| s.url(None)).collect();
    measure(&urls, n, &format!("detect_fps = {DETECT_FPS}{extra}"), WINDOW, None).0
}

/// The quiet ladder's rung: the figures over a 60 s window, then each camera's passings `passed_s` after
/// the cameras came up (after the last passing, before the clip ends: an ended RTSP stream only makes the
/// cameras reconnect).
fn measure_quiet(servers: &[RtspServer], n: usize, motion: bool, passed_s: f64) -> (Rung, Passings) {
    let extra = format!("detect_fps = {DETECT_FPS}\n[cameras.motion]\nenabled = {motion}");
    let urls: Vec<String> = servers.iter().map(|s| s.url(None)).collect();
    measure(&urls, n, &extra, QUIET_WINDOW, Some(Duration::from_secs_f64(passed_s))).1.expect("a quiet rung reports its passings")
}

/// Camera `i` of `n` reads `urls[i % urls.len()]`.
fn measure(urls: &[String], n: usize, extra: &str, window: Duration, clip: Option<Duration>) -> (Rung, Option<(Rung, Passings)>) {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port(), "checkpoint/#");
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (1..=n).map(|i| format!("cam{i:02}")).collect();
    let extra = extra.to_string();
    let cams: Vec<common::Cam> = ids.iter().enumerate().map(|(i, id)| common::Cam { id, url: urls[i % urls.len()].clone(), extra: &extra }).collect();
    let cfg = common::config(dir.path(), Some(broker.port()), &cams, clip_settings());
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
            eprintln!("  agent: only {up} of {n} cameras online and analysed within 90 s; the end of its log:");
            let log = agent.log();
            for line in log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev() {
                eprintln!("    {line}");
            }
            agent.signal("TERM");
            agent.wait(Duration::from_secs(30));
            let failed = Rung { streams: n, min_fps_in: 0.0, min_fps_analysed: Some(0.0), cpu_percent: 0.0, rss_mib: 0.0, restarts: 0, latency: None };
            return (failed.clone(), clip.map(|_| (failed, HashMap::new())));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let up = Instant::now();
    std::thread::sleep(WARM_UP);
    let (before, cpu0, wall0) = (counters(&sub), cpu_time(pid), Instant::now());
    std::thread::sleep(window);
    let (after, secs) = (counters(&sub), wall0.elapsed().as_secs_f64());
    let cpu = cpu_percent(pid, cpu0, wall0);
    let rss = rss_mib(pid);
    // Stats are published each second, so the counters lag the window edges alike; the rate over the
    // window is exact to within one interval.
    let rate = |f: fn(&(u64, u64, u64, String)) -> u64| ids.iter().map(|id| (f(&after[id]) - f(&before[id])) as f64 / secs).fold(f64::INFINITY, f64::min);
    let restarts = ids.iter().map(|id| after[id].2 - before[id].2).sum();
    let latency = latency_percentiles(&common::http_get(&agent.metrics_addr(), "/metrics").1);
    let mut rung = Rung { streams: n, min_fps_in: rate(|c| c.0), min_fps_analysed: Some(rate(|c| c.1)), cpu_percent: cpu, rss_mib: rss, restarts, latency };
    let quiet = clip.map(|clip| {
        std::thread::sleep(clip.saturating_sub(up.elapsed()));
        // The analysed rate is not a criterion here (the detector sleeps while nothing moves).
        rung.min_fps_analysed = None;
        (rung.clone(), passings(&sub, &ids))
    });
    agent.signal("TERM");
    agent.wait(Duration::from_secs(30));
    (rung, quiet)
}

/// The quiet ladder: a reference run with gating off, then the counts with gating on until one is not
/// sustained (or loses a passing). Returns the highest sustained count and the RSS of each rung.
fn climb_quiet(ladder: &[usize], clips: &[std::path::PathBuf], clip_s: f64) -> (usize, Vec<(usize, f64)>) {
    // One server per camera, as cameras are separate devices: camera `i` reads clip `i % clips.len()`.
    let serve = |n: usize| (0..n).map(|i| serve_file(&clips[i % clips.len()])).collect::<Vec<_>>();
    let servers = serve(clips.len());
    let (reference_rung, reference) = measure_quiet(&servers, clips.len(), false, clip_s);
    drop(servers);
    let expected = reference.values().next().map(|s| s.ends.clone()).unwrap_or_default();
    println!("{}   (reference, gating off; passings per stream: {expected:?})", reference_rung.line());
    let mut best = 0;
    let mut rss = Vec::new();
    for &n in ladder {
        let servers = serve(n);
        let (rung, got) = measure_quiet(&servers, n, true, clip_s);
        let mut lost = Vec::new();
        for (id, p) in got.iter().filter(|(_, p)| p.ends != expected) {
            lost.push(format!("{id}: {:?}", p.ends));
            println!("    {id}'s events:");
            for line in &p.trace {
                println!("      {line}");
            }
        }
        let ok = rung.sustained() && lost.is_empty() && !expected.is_empty();
        println!(
            "{}{}",
            rung.line().replace("NOT sustained", "").replace("sustained", ""),
            if ok { "sustained, every passing".to_string() } else { format!("NOT sustained; passings differ: {lost:?}") }
        );
        rss.push((n, rung.rss_mib));
        if !ok {
            std::mem::forget(servers);
            break;
        }
        best = n;
    }
    (best, rss)
}

/// p50 and p99 (ms) of the `new`-event latency histogram on a `/metrics` page, all cameras together,
/// interpolated within buckets; and the number of events.
fn latency_percentiles(page: &str) -> Option<(f64, f64, u64)> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in page.lines().filter(|l| l.starts_with("edge_agent_event_latency_seconds_bucket{")) {
        let le = line.split("le=\"").nth(1)?.split('"').next()?;
        let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
        let count: f64 = line.rsplit(' ').next()?.parse().ok()?;
        match buckets.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, c)) => *c += count,
            None => buckets.push((bound, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let at = |q: f64| {
        let target = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &buckets {
            if count >= target {
                if !bound.is_finite() {
                    return lower.0 * 1000.0;
                }
                let share = if count > lower.1 { (target - lower.1) / (count - lower.1) } else { 1.0 };
                return (lower.0 + (bound - lower.0) * share) * 1000.0;
            }
            lower = (bound, count);
        }
        lower.0 * 1000.0
    };
    Some((at(0.5), at(0.99), total as u64))
}

/// A loopback RTSP server playing `clip`.
fn serve_file(clip: &std::path::Path) -> RtspServer {
    RtspServer::start(ServerSpec { feed: Feed::File(clip.to_path_buf()), credentials: None })
}

/// Climbs `ladder` until the first count not sustained; returns the highest sustained count. Every rung
/// gets fresh servers, `servers(n)` of them for `n` streams, so the clip plays from its start for every
/// count.
fn climb(ladder: &[usize], clip: &std::path::Path, servers: fn(usize) -> usize, measure: impl Fn(&[RtspServer], usize) -> Rung) -> usize {
    let mut best = 0;
    for &n in ladder {
        let running: Vec<RtspServer> = (0..servers(n)).map(|_| serve_file(clip)).collect();
        let rung = measure(&running, n);
        println!("{}", rung.line());
        if !rung.sustained() {
            // Past the limit, sessions can be left half set up inside a server, and tearing it down
            // then blocks; the process is about to move on or exit, so leave it to the OS.
            std::mem::forget(running);
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
    let min: usize = std::env::var("EDGE_BENCH_MIN_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let rungs = |ladder: &[usize]| -> Vec<usize> { ladder.iter().copied().filter(|&n| n >= min && n <= max).collect() };
    // 40 s: enough for connecting, warming up and the window at every rung.
    let clip = testkit::clips::cached("street_pan_720p_40s.mp4", |p| testkit::clips::street_pan_720p(p, 40.0));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("1280x720 H.264 RTSP streams at {SOURCE_FPS} fps from gst-rtsp-server on loopback (TCP), {cores} cores; window {WINDOW:?}");

    let only = std::env::var("EDGE_BENCH_ONLY").unwrap_or_default();
    let runs = |what: &str| only.is_empty() || only == what || (what == "busy" && only == "agent");
    // The agent first: past the decode-only limit the test server can be left wedged (see `climb`).
    let clip_modes: Vec<bool> = match std::env::var("EDGE_BENCH_CLIPS").as_deref() {
        Ok("on") => vec![true],
        Ok("off") => vec![false],
        _ => vec![true, false],
    };
    let mut sustained: Vec<(bool, usize, usize)> = Vec::new();
    for clips_on in clip_modes {
        CLIPS_ON.store(clips_on, Ordering::Relaxed);
        println!("== event clips {} ==", if clips_on { "on (every passing kept)" } else { "off" });
        let mut quiet = 0;
        if runs("quiet") {
            // Three versions of the stream, their passings 10 s apart, so the cameras' passings do not all fall
            // on the same instant. The last passing ends at 146 s of the 170 s clip, which started at most 15 s
            // before the cameras were all up.
            let clip_s = 153.0;
            let quiet_clips: Vec<std::path::PathBuf> = [0.0, 10.0, 20.0].into_iter().map(common::scenes::quiet_gate_25fps).collect();
            println!("quiet gate (a still road with noise and light drift, something passing every 30 s; agent with motion gating, {:?} window):", QUIET_WINDOW);
            let ladder = rungs(&[8, 16, 24, 32]);
            let (best, rss) = climb_quiet(&ladder, &quiet_clips, clip_s);
            quiet = best;
            if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
                if last.0 > first.0 {
                    println!("  resident memory per added camera: {:.1} MiB", (last.1 - first.1) / (last.0 - first.0) as f64);
                }
            }
        }
        let mut agent = 0;
        if runs("busy") {
            println!("agent (edge-agent run, detect_fps {DETECT_FPS}, YOLOX-nano 416, plates on vehicles, events and snapshots):");
            let ladder = rungs(&[1, 2, 3, 4, 5, 6, 8, 10, 12, 16]);
            // One server per camera, as cameras are separate devices: a single gst-rtsp-server with one
            // shared media stops answering when a dozen clients set up sessions at the same instant.
            agent = climb(&ladder, &clip, |n| n, measure_agent);
        }
        sustained.push((clips_on, agent, quiet));
    }
    let mut ceiling = 0;
    if runs("decode") {
        println!("decode-only ceiling (rtspsrc ! decodebin ! fakesink, one process):");
        let ladder = rungs(&[1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 64]);
        ceiling = climb(&ladder, &clip, |_| 1, measure_decode_only);
    }

    for &(clips_on, agent, quiet) in &sustained {
        let label = if clips_on { "clips on" } else { "clips off" };
        println!("sustained ({label}): busy gate {agent} streams, quiet gate {quiet} streams, decode-only ceiling {ceiling} streams");
        if ceiling > 0 {
            println!("ratios to the decode-only ceiling ({label}): busy {:.2}, quiet {:.2}", agent as f64 / ceiling as f64, quiet as f64 / ceiling as f64);
        }
    }
    if let (Some(on), Some(off)) = (sustained.iter().find(|s| s.0), sustained.iter().find(|s| !s.0)) {
        let ratio = |a: usize, b: usize| if b > 0 { format!("{:.2}", a as f64 / b as f64) } else { "-".into() };
        println!("clips on / off: busy {}, quiet {}", ratio(on.1, off.1), ratio(on.2, off.2));
    }
}
