//! `make bench` (offline): `edge-agent analyze` on a 49 s 1280x720 H.264 clip at 25 fps with a vehicle in
//! view all the time (a pan across the street scene), analysed at 5 fps with plates on vehicles: as the
//! agent did before gating, plate scheduling and overlapping frames (`--motion off --plate-settle 0
//! --pipeline off`: detector and plate search of every vehicle on every analysed frame, one frame at a
//! time) and as it does now (the defaults), with plates off, with frames one at a time, and with the `auto`
//! plate mode for reference. The runs take turns (four rounds), so a machine that slows down
//! for a while slows every mode alike; each mode's best wall and CPU time count. Prints the ratios and
//! whether both runs produced the same `end` events with the same confident plates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Each mode runs this many times, taking turns; its best counts.
const ROUNDS: usize = 4;

/// A plate read at least this confident must come out the same; weaker ones are listed, not compared.
const CONFIDENT: f64 = 0.9;

/// `end` events as (label, plate text, plate confidence).
type Ends = Vec<(String, Option<(String, f64)>)>;
/// `end` events as (label, confident plate text).
type Confident = Vec<(String, Option<String>)>;

struct Mode {
    name: &'static str,
    args: &'static [&'static str],
    wall: Duration,
    cpu: Duration,
    ends: Ends,
    frames: String,
}

fn analyse(clip: &std::path::Path, mode: &mut Mode) {
    let cpu_before = testkit::children_cpu_time();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
        .args(["analyze", "--json", "--detect-fps", "5"])
        .args(mode.args)
        .arg(clip)
        .env("ORT_DYLIB_PATH", testkit::ort_library())
        .env("EDGE_AGENT_MODELS_DIR", testkit::shared_dir().join("models"))
        .output()
        .unwrap();
    let wall = started.elapsed();
    let cpu = testkit::children_cpu_time().saturating_sub(cpu_before);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if mode.ends.is_empty() || wall < mode.wall {
        mode.wall = wall;
        mode.ends = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["phase"] == "end" && e.get("merged_into").is_none())
            .map(|e| {
                let plate = e["plate"]["text"].as_str().map(|t| (t.to_string(), e["plate"]["confidence"].as_f64().unwrap_or(0.0)));
                (e["label"].as_str().unwrap_or_default().to_string(), plate)
            })
            .collect();
        mode.frames = String::from_utf8_lossy(&out.stderr).lines().find(|l| l.starts_with("detector ran on")).unwrap_or_default().to_string();
    }
    if mode.cpu.is_zero() || cpu < mode.cpu {
        mode.cpu = cpu;
    }
}

/// The events with only their confident plates, and the weak plates apart.
fn confident(ends: &Ends) -> (Confident, Vec<(String, f64)>) {
    let strong = ends.iter().map(|(label, p)| (label.clone(), p.as_ref().filter(|(_, c)| *c >= CONFIDENT).map(|(t, _)| t.clone()))).collect();
    let weak = ends.iter().filter_map(|(_, p)| p.clone().filter(|(_, c)| *c < CONFIDENT)).collect();
    (strong, weak)
}

fn main() {
    let clip = testkit::clips::cached("street_pan_720p_49s.mp4", |p| testkit::clips::street_pan_720p(p, 49.0));
    println!("offline: edge-agent analyze, 1280x720 H.264, 49 s at 25 fps, a vehicle always in view, detect 5 fps (modes take turns, best of {ROUNDS})");
    let mode = |name, args| Mode { name, args, wall: Duration::ZERO, cpu: Duration::ZERO, ends: Vec::new(), frames: String::new() };
    let mut modes = [
        mode("every frame, every vehicle searched (before)", &["--plates", "vehicles", "--motion", "off", "--plate-settle", "0", "--pipeline", "off"]),
        mode("plates off (for reference)", &["--plates", "off"]),
        mode("now, but one frame at a time", &["--plates", "vehicles", "--pipeline", "off"]),
        mode("gating, plate schedule, overlapping frames (now)", &["--plates", "vehicles"]),
        mode("now, plates = \"auto\" (the default)", &["--plates", "auto"]),
    ];
    for _ in 0..ROUNDS {
        for m in modes.iter_mut() {
            analyse(&clip, m);
        }
    }
    for m in &modes {
        println!("  {:52} {:6.2} s wall {:6.2} s CPU   {} end events   {}", m.name, m.wall.as_secs_f64(), m.cpu.as_secs_f64(), m.ends.len(), m.frames);
    }
    let [before, _, one_at_a_time, now, auto] = &modes;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!("  speed-up (before / now): {:.2}x wall, {:.2}x CPU", ratio(before.wall, now.wall), ratio(before.cpu, now.cpu));
    println!("  speed-up (before / auto): {:.2}x wall, {:.2}x CPU", ratio(before.wall, auto.wall), ratio(before.cpu, auto.cpu));
    let (b, b_weak) = confident(&before.ends);
    for m in [one_at_a_time, now, auto] {
        let (n, n_weak) = confident(&m.ends);
        let same = if b == n { "yes".to_string() } else { format!("NO: before {b:?}, now {n:?}") };
        println!("  {}: same end events and confident (>= {CONFIDENT}) plates as before: {same}; weak plates before {b_weak:?}, now {n_weak:?}", m.name);
    }
}
