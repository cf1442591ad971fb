//! `make bench` (history): the duty desk's history search over a week of a busy gate — 50,000 passings on
//! four cameras — in the redb index (`history.rs`). Prints the time to build the index from the event logs
//! (what a first start or a lost index costs), the cost of indexing one passing live (a durable commit
//! each), the file size, and the median and slowest of 20 runs of each kind of query the page makes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use edge_agent::eventlog::EventLog;
use edge_agent::history::{Cursor, DirectionFilter, History, Query};
use testkit::synthetic::{median, plate};

const PASSINGS: usize = 50_000;
const DAYS: i64 = 7;
const CAMERAS: [&str; 4] = ["east-gate", "west-gate", "school", "market"];
/// Villagers' cars come back again and again.
const REGULARS: usize = 2_000;

/// The `i`-th passing of the week: three in four are vehicles (nine in ten of them with a plate read,
/// half of those regulars), directions 45 % in, 45 % out, 10 % no line.
fn passing(i: usize, at: DateTime<Utc>) -> String {
    let vehicle = i % 4 != 0;
    let plate = (vehicle && i % 10 != 0).then(|| if i % 2 == 0 { plate(i % REGULARS) } else { plate(REGULARS + i) });
    let direction = match i % 20 {
        0 | 1 => serde_json::Value::Null,
        n if n % 2 == 0 => "in".into(),
        _ => "out".into(),
    };
    let ts = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    serde_json::json!({
        "schema": "edge-agent/event/v1", "id": uuid::Uuid::now_v7().to_string(), "seq": 4, "site": "xiaozhuang/east-gate", "camera": CAMERAS[i % 4],
        "type": if vehicle { "vehicle" } else { "person" }, "phase": "end", "label": if vehicle { "car" } else { "person" }, "track_id": i,
        "started_at": ts, "ended_at": ts, "ts": ts, "direction": direction, "crossings": [], "zones": [], "score": 0.91, "box": [100.0, 200.0, 500.0, 600.0],
        "frame": {"width": 1280, "height": 720},
        "plate": plate.map(|p| serde_json::json!({"text": p, "color": "blue", "confidence": 0.93, "reads": 5})),
        "snapshot": {"id": "x", "topic": "t", "content_type": "image/jpeg"},
    })
    .to_string()
}

fn timed(name: &str, history: &History, q: &Query) {
    let mut ms = Vec::new();
    let mut page = None;
    for _ in 0..20 {
        let started = Instant::now();
        page = Some(history.search(q).unwrap());
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let page = page.unwrap();
    let slowest = ms.iter().copied().fold(0.0, f64::max);
    println!("  {name:<58} {:>7.2} ms median, {:>7.2} ms slowest   ({} shown of {})", median(ms), slowest, page.items.len(), page.total);
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let now: DateTime<Utc> = Utc::now();
    let start = now - Duration::days(DAYS);
    let step = Duration::milliseconds(DAYS * 86_400_000 / PASSINGS as i64);
    let log = EventLog::new(dir.path(), 30);
    let mut written = 0usize;
    for i in 0..PASSINGS {
        let at = start + step * i as i32;
        log.append(at, passing(i, at).as_bytes()).unwrap();
        written += 1;
    }
    let bytes: u64 = std::fs::read_dir(dir.path().join("events")).unwrap().map(|f| f.unwrap().metadata().unwrap().len()).sum();
    println!("history: {written} passings over {DAYS} days on {} cameras ({} MB of event log)", CAMERAS.len(), bytes / (1 << 20));

    let path = dir.path().join("history.redb");
    let mut history = History::open(&path).unwrap();
    let started = Instant::now();
    let added = history.catch_up(&log, now).unwrap();
    let built = started.elapsed().as_secs_f64();
    history.compact().unwrap();
    println!("  index built from the event logs: {added} passings in {built:.2} s, compacted in {:.2} s", started.elapsed().as_secs_f64() - built);

    println!("  index file after the build: {} MB", std::fs::metadata(&path).unwrap().len() / (1 << 20));
    // Live: one durable commit per passing, as the camera's sink does.
    let mut live_ms = Vec::new();
    for i in 0..500 {
        let line = passing(PASSINGS + i, now + Duration::milliseconds(i as i64));
        let started = Instant::now();
        history.add_events([line.as_bytes()]).unwrap();
        live_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!("  one passing indexed live (durable commit): {:.2} ms median", median(live_ms));
    println!("  index file: {} MB for {} passings", std::fs::metadata(&path).unwrap().len() / (1 << 20), history.len().unwrap());

    let page = |q: Query| Query { limit: 20, ..q };
    let regular = plate(6);
    let night_from = (now - Duration::days(1)).date_naive().and_hms_opt(22, 0, 0).unwrap().and_utc();
    println!("queries (20 a page, with the number matching in all):");
    timed("newest, no filter", &history, &page(Query::default()));
    timed(&format!("full plate ({regular})"), &history, &page(Query { plate: Some(regular.clone()), ..Query::default() }));
    timed(
        &format!("partial plate, 4 characters ({})", &regular[regular.len() - 4..]),
        &history,
        &page(Query { plate: Some(regular[regular.len() - 4..].to_string()), ..Query::default() }),
    );
    timed("partial plate, province and letter (苏E)", &history, &page(Query { plate: Some("苏E".into()), ..Query::default() }));
    timed("partial plate, province only (苏)", &history, &page(Query { plate: Some("苏".into()), ..Query::default() }));
    timed(
        "camera + vehicles + in, whole week",
        &history,
        &page(Query { camera: Some("school".into()), kind: Some("vehicle".into()), direction: Some(DirectionFilter::In), ..Query::default() }),
    );
    timed(
        "in after 22:00 yesterday (time range + direction)",
        &history,
        &page(Query {
            direction: Some(DirectionFilter::In),
            from_ms: Some(night_from.timestamp_millis()),
            to_ms: Some((night_from + Duration::hours(2)).timestamp_millis()),
            ..Query::default()
        }),
    );
    timed("no match (camera that does not exist), whole week", &history, &page(Query { camera: Some("nowhere".into()), ..Query::default() }));
    // The tenth page, reached by its cursor.
    let mut q = page(Query { kind: Some("vehicle".into()), ..Query::default() });
    for _ in 0..9 {
        let p = history.search(&q).unwrap();
        q.after = p.next.as_deref().and_then(Cursor::parse);
    }
    timed("vehicles, tenth page (by cursor)", &history, &q);

    let started = Instant::now();
    let expired = history.sweep(now, 6).unwrap();
    println!("retention: {expired} passings of the oldest day and their plate keys deleted in {:.2} s", started.elapsed().as_secs_f64());
}
