use super::*;

fn event(id: &str, camera: &str, kind: &str, phase: &str, ts: &str, direction: Option<&str>, plate: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema": "edge-agent/event/v1", "id": id, "seq": 3, "site": "s", "camera": camera, "type": kind, "phase": phase,
        "label": if kind == "person" { "person" } else { "car" }, "track_id": 1, "started_at": ts, "ended_at": ts, "ts": ts,
        "direction": direction, "crossings": [], "zones": [], "score": 0.9, "box": [0, 0, 1, 1], "frame": {"width": 1280, "height": 720},
        "plate": plate.map(|p| serde_json::json!({"text": p, "color": "blue", "confidence": 0.9, "reads": 3})),
        "snapshot": {"id": id, "content_type": "image/jpeg"},
    }))
    .unwrap()
}

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = History::open(&dir.path().join("history.redb")).unwrap_or_else(|e| panic!("{e}"));
    (dir, h)
}

fn ids(page: &Page) -> Vec<&str> {
    page.items.iter().map(|p| p.id.as_str()).collect()
}

fn search(h: &History, q: Query) -> Page {
    h.search(&Query { limit: if q.limit == 0 { 50 } else { q.limit }, ..q }).unwrap_or_else(|e| panic!("{e}"))
}

fn filled() -> (tempfile::TempDir, History) {
    let (dir, h) = open();
    let lines = [
        event("a", "gate", "vehicle", "end", "2026-11-29T08:00:00Z", Some("in"), Some("苏ED51712")),
        event("b", "gate", "vehicle", "end", "2026-11-29T09:00:00Z", Some("out"), Some("皖A12345")),
        event("c", "gate", "person", "end", "2026-11-29T10:00:00Z", None, None),
        event("d", "back", "vehicle", "end", "2026-11-29T22:30:00Z", Some("in"), Some("苏E12D51")),
        event("e", "back", "vehicle", "new", "2026-11-29T22:31:00Z", None, Some("苏EAAAAA")),
    ];
    assert_eq!(h.add_events(lines.iter().map(|l| l.as_slice())).unwrap(), 4, "end events only");
    (dir, h)
}

#[test]
fn a_partial_plate_finds_every_passing_whose_plate_contains_it_newest_first() {
    let (_dir, h) = filled();
    assert_eq!(ids(&search(&h, Query { plate: Some("苏E".into()), ..Query::default() })), ["d", "a"]);
    assert_eq!(ids(&search(&h, Query { plate: Some("d5".into()), ..Query::default() })), ["d", "a"], "anywhere in the plate, any case");
    assert_eq!(ids(&search(&h, Query { plate: Some("51712".into()), ..Query::default() })), ["a"]);
    assert_eq!(ids(&search(&h, Query { plate: Some("苏e·d5 1712".into()), ..Query::default() })), ["a"], "typed with a dot and a space");
    assert!(search(&h, Query { plate: Some("京".into()), ..Query::default() }).items.is_empty());
    // A plate with a repeated part is found once.
    let line = event("f", "gate", "vehicle", "end", "2026-11-29T11:00:00Z", None, Some("苏E11A11"));
    h.add_events([line.as_slice()]).unwrap();
    assert_eq!(search(&h, Query { plate: Some("11".into()), ..Query::default() }).total, 1);
}

#[test]
fn camera_type_direction_and_time_narrow_the_search() {
    let (_dir, h) = filled();
    let ms = |t: &str| DateTime::parse_from_rfc3339(t).map(|t| t.timestamp_millis()).ok();
    assert_eq!(ids(&search(&h, Query { camera: Some("gate".into()), ..Query::default() })), ["c", "b", "a"]);
    assert_eq!(ids(&search(&h, Query { kind: Some("person".into()), ..Query::default() })), ["c"]);
    assert_eq!(ids(&search(&h, Query { direction: Some(DirectionFilter::In), ..Query::default() })), ["d", "a"]);
    assert_eq!(ids(&search(&h, Query { direction: Some(DirectionFilter::None), ..Query::default() })), ["c"]);
    // "How many came in after 22:00?"
    let late = search(&h, Query { direction: Some(DirectionFilter::In), from_ms: ms("2026-11-29T22:00:00Z"), ..Query::default() });
    assert_eq!((late.total, ids(&late)), (1, vec!["d"]));
    let morning = Query { from_ms: ms("2026-11-29T08:00:00Z"), to_ms: ms("2026-11-29T09:00:00Z"), ..Query::default() };
    assert_eq!(ids(&search(&h, morning.clone())), ["a"], "from inclusive, to exclusive");
    assert_eq!(ids(&search(&h, Query { plate: Some("苏".into()), ..morning })), ["a"]);
}

#[test]
fn pages_follow_the_cursor_to_the_end() {
    let (_dir, h) = open();
    let lines: Vec<Vec<u8>> =
        (0..25).map(|i| event(&format!("e{i:02}"), "gate", "vehicle", "end", &format!("2026-11-29T08:{i:02}:00Z"), Some("in"), Some(&format!("苏E{i:05}")))).collect();
    h.add_events(lines.iter().map(|l| l.as_slice())).unwrap();
    for plate in [None, Some("苏E".to_string())] {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = search(&h, Query { plate: plate.clone(), after: after.clone(), limit: 10, ..Query::default() });
            assert_eq!(page.total, 25);
            seen.extend(page.items.iter().map(|p| p.id.clone()));
            match page.next {
                Some(c) => after = Cursor::parse(&c),
                None => break,
            }
        }
        let expected: Vec<String> = (0..25).rev().map(|i| format!("e{i:02}")).collect();
        assert_eq!(seen, expected, "plate {plate:?}");
    }
    assert_eq!(search(&h, Query { limit: 25, ..Query::default() }).next, None, "an exactly full last page has no next");
}

#[test]
fn retention_removes_old_passings_and_their_plate_keys_and_the_logs_refill_a_lost_index() {
    let (dir, h) = filled();
    let now: DateTime<Utc> = "2026-12-05T12:00:00Z".parse().unwrap();
    // Seven days kept: 11-29 is the oldest day.
    assert_eq!(h.sweep(now, 7).unwrap(), 0);
    assert_eq!(h.sweep(now, 6).unwrap(), 4);
    assert!(h.is_empty().unwrap());
    let txn = h.store.begin_read().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(txn.open_table(PLATE_SUFFIXES).unwrap().len().unwrap(), 0, "no suffix left behind");
    drop(txn);

    // The event log is the record: an empty index is rebuilt from it, and a second catch-up adds nothing.
    let log = EventLog::new(dir.path(), 7);
    let today: DateTime<Utc> = "2026-11-29T23:00:00Z".parse().unwrap();
    for l in
        [event("a", "gate", "vehicle", "end", "2026-11-29T08:00:00Z", Some("in"), Some("苏ED51712")), event("x", "gate", "vehicle", "update", "2026-11-29T08:00:00Z", None, None)]
    {
        log.append(today, &l).unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(h.catch_up(&log, today).unwrap(), 1);
    assert_eq!(h.catch_up(&log, today).unwrap(), 0);
    assert_eq!(ids(&search(&h, Query { plate: Some("D517".into()), ..Query::default() })), ["a"]);
}

#[test]
fn an_unreadable_index_is_moved_aside_and_made_again() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("history.redb");
    std::fs::write(&path, b"not a database at all, just some bytes that are long enough to look like a header........").unwrap();
    let h = History::open(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(h.is_empty().unwrap());
    assert!(std::fs::read_dir(dir.path()).map(|d| d.flatten().any(|f| f.file_name().to_string_lossy().contains("broken"))).unwrap());
}
