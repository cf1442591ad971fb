//! `make soak`: the agent for an hour (`EDGE_SOAK_MINUTES`, default 60) with 8 RTSP cameras
//! (`EDGE_SOAK_CAMERAS`) of the quiet gate — something passes every 30 s, and each camera's 170 s stream
//! ends and is reconnected to, as a camera that reboots would be — while the broker (persistent, like the
//! platform's) is stopped for 30 s twice, at a third and two thirds of the run.
//!
//! Every minute it samples the agent's resident memory, threads and open files; at the end it prints the
//! samples, how much each grew from the first sample after warm-up to the last, and whether every passing
//! the agent recorded locally (an `end` event that is not merged into another chain) arrived at the
//! platform's subscriber (by event id; re-deliveries after a broker restart are counted, not lost), the
//! passings per camera (a camera that went silent shows), and the last errors the agent logged.
//! Without `EDGE_SOAK_MINUTES` it says how to run itself and exits (it is not part of `make bench`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::broker::{Broker, Subscriber};
use testkit::rtsp::{Feed, RtspServer, ServerSpec};

const BASE: &str = "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate";
/// Samples before this are warm-up (models loading, allocator arenas filling, every camera's first loop).
const WARM_UP: Duration = Duration::from_secs(5 * 60);
const OUTAGE: Duration = Duration::from_secs(30);

/// One sample of the agent process.
struct Sample {
    at: Duration,
    rss_mib: f64,
    threads: usize,
    fds: usize,
    received: usize,
}

fn sample(pid: i32, started: Instant, received: usize) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let count = |dir: &str| std::fs::read_dir(format!("/proc/{pid}/{dir}")).map(|d| d.count()).unwrap_or(0);
    Sample { at: started.elapsed(), rss_mib: field("VmRSS:") / 1024.0, threads: count("task"), fds: count("fd"), received }
}

/// The passings the agent recorded locally: event id → camera, for `end` events not merged into another.
fn logged_passings(state: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(state.join("events")) else { return out };
    for file in dir.flatten() {
        for line in std::fs::read_to_string(file.path()).unwrap_or_default().lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            if v["phase"] == "end" && v.get("merged_into").is_none_or(Value::is_null) {
                out.insert(v["id"].as_str().unwrap_or_default().to_string(), v["camera"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    out
}

fn main() {
    let Some(minutes) = std::env::var("EDGE_SOAK_MINUTES").ok().and_then(|m| m.parse::<f64>().ok()) else {
        println!("soak: not run; `make soak` (or EDGE_SOAK_MINUTES=60 cargo bench -p edge-agent --bench soak) runs the hour-long soak");
        return;
    };
    let cameras: usize = std::env::var("EDGE_SOAK_CAMERAS").ok().and_then(|n| n.parse().ok()).unwrap_or(8);
    let length = Duration::from_secs_f64(minutes * 60.0);
    let clips: Vec<std::path::PathBuf> = [0.0, 10.0, 20.0].into_iter().map(common::scenes::quiet_gate_25fps).collect();
    let servers: Vec<RtspServer> = (0..cameras).map(|i| RtspServer::start(ServerSpec { feed: Feed::File(clips[i % clips.len()].clone()), credentials: None })).collect();
    let mut broker = Broker::start_persistent();
    let sub = Subscriber::connect_persistent(broker.port(), &format!("{BASE}/+/events"), "platform-soak");
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (1..=cameras).map(|i| format!("cam{i:02}")).collect();
    let extra = "detect_fps = 5".to_string();
    let cams: Vec<common::Cam> = ids.iter().zip(&servers).map(|(id, s)| common::Cam { id, url: s.url(None), extra: &extra }).collect();
    let cfg = common::config(dir.path(), Some(broker.port()), &cams, "");
    let mut agent = common::Agent::start(&cfg);
    let pid = agent.pid();
    agent.wait_log("agent ready", 1, Duration::from_secs(120));
    println!("soak: {cameras} RTSP cameras (quiet gate, 170 s streams reconnected at their end), {minutes} min, broker stopped for {} s at 1/3 and 2/3", OUTAGE.as_secs());

    let started = Instant::now();
    let received = || sub.messages().iter().filter(|m| m.topic.ends_with("/events")).count();
    let mut samples = vec![sample(pid, started, 0)];
    let outages = [length / 3, length * 2 / 3];
    let mut next_outage = 0;
    let mut next_sample = Duration::from_secs(60);
    while started.elapsed() < length {
        std::thread::sleep(Duration::from_secs(1));
        assert!(agent.wait_or_none(), "the agent exited:\n{}", agent.log());
        if next_outage < outages.len() && started.elapsed() >= outages[next_outage] {
            println!("  {:>5.1} min: broker stopped", started.elapsed().as_secs_f64() / 60.0);
            broker.stop();
            std::thread::sleep(OUTAGE);
            broker.restart();
            println!("  {:>5.1} min: broker back", started.elapsed().as_secs_f64() / 60.0);
            next_outage += 1;
        }
        if started.elapsed() >= next_sample {
            let s = sample(pid, started, received());
            println!(
                "  {:>5.1} min: RSS {:6.1} MiB, {:3} threads, {:3} open files, {} event messages received",
                s.at.as_secs_f64() / 60.0,
                s.rss_mib,
                s.threads,
                s.fds,
                s.received
            );
            samples.push(s);
            next_sample += Duration::from_secs(60);
        }
    }
    // Let the last passings end and arrive, then stop.
    std::thread::sleep(Duration::from_secs(20));
    agent.signal("TERM");
    let code = agent.wait(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(2));

    let logged = logged_passings(&dir.path().join("state"));
    let mut arrivals: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for m in sub.messages().iter().filter(|m| m.topic.ends_with("/events")) {
        let v = m.json();
        *arrivals.entry((v["id"].as_str().unwrap_or_default().to_string(), v["seq"].as_u64().unwrap_or(0))).or_insert(0) += 1;
    }
    let ended: BTreeSet<String> = sub
        .messages()
        .iter()
        .filter(|m| m.topic.ends_with("/events"))
        .map(|m| m.json())
        .filter(|v| v["phase"] == "end")
        .map(|v| v["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let missing: Vec<&String> = logged.keys().filter(|id| !ended.contains(*id)).collect();
    let redelivered: usize = arrivals.values().map(|n| n - 1).sum();
    let per_camera: BTreeMap<&str, usize> = logged.values().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.as_str()).or_insert(0) += 1;
        m
    });

    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at >= WARM_UP).collect();
    println!("soak results ({} samples, warm-up {} min excluded from the growth figures):", samples.len(), WARM_UP.as_secs() / 60);
    if let (Some(first), Some(last)) = (steady.first(), steady.last()) {
        let (lo, hi) = steady.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), s| (lo.min(s.rss_mib), hi.max(s.rss_mib)));
        let (tlo, thi) = steady.iter().fold((usize::MAX, 0), |(lo, hi), s| (lo.min(s.threads), hi.max(s.threads)));
        let (flo, fhi) = steady.iter().fold((usize::MAX, 0), |(lo, hi), s| (lo.min(s.fds), hi.max(s.fds)));
        println!(
            "  RSS {:.1} → {:.1} MiB (range {lo:.1}–{hi:.1}); threads {} → {} (range {tlo}–{thi}); open files {} → {} (range {flo}–{fhi}), from {:.0} to {:.0} min",
            first.rss_mib,
            last.rss_mib,
            first.threads,
            last.threads,
            first.fds,
            last.fds,
            first.at.as_secs_f64() / 60.0,
            last.at.as_secs_f64() / 60.0
        );
    }
    println!(
        "  passings recorded locally: {} ({per_camera:?}); arrived: {}; missing: {}; event messages re-delivered after broker restarts: {redelivered}",
        logged.len(),
        logged.len() - missing.len(),
        missing.len()
    );
    println!("  agent exit status after SIGTERM: {code:?}");
    let log = agent.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    println!("  errors the agent logged: {}", errors.len());
    for line in errors.iter().rev().take(10).rev() {
        println!("    {line}");
    }
    if !missing.is_empty() {
        println!("  missing passings: {missing:?}");
    }
    drop(servers);
}
