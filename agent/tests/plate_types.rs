//! The plate tables: `edge-agent analyze` over the real-scene dev set (`plates-scenes`, 43 photos with
//! hand-checked labels), the shared HyperLPR scenes and the hard-conditions set (`plates-field`: night glare,
//! dusk and backlight, dirt, rain, rarer types, foreign negatives), scored per plate type and per condition —
//! plates, found, exact text, colour right, false plates — with reads of plates marked unreadable, printed
//! and asserted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{run, stderr};
use serde_json::Value;

/// A labelled plate.
#[derive(Debug, Clone)]
struct Label {
    text: String,
    colour: String,
    rows: u64,
}

/// One photo: its readable plates and how many more are visible but unreadable.
struct Photo {
    path: String,
    plates: Vec<Label>,
    unreadable: usize,
    /// As labelled (`night`, `glare`, `dirty plate`, ...); none for the daytime sets.
    conditions: Vec<String>,
}

fn label(text: &str, colour: &str, rows: u64) -> Label {
    Label { text: text.into(), colour: colour.into(), rows }
}

/// The photos of a shared folder with a `labels.json` (`plates-scenes`, `plates-field`).
fn labelled(folder: &str) -> Vec<Photo> {
    let dir = testkit::data(folder);
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let strings = |v: &Value| v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    labels
        .as_object()
        .unwrap()
        .iter()
        .filter(|(file, _)| !file.starts_with('_'))
        .map(|(file, l)| Photo {
            path: dir.join(file).to_str().unwrap().to_owned(),
            plates: l["plates"].as_array().unwrap().iter().map(|p| label(p["text"].as_str().unwrap(), p["color"].as_str().unwrap(), p["rows"].as_u64().unwrap())).collect(),
            unreadable: l["unreadable"].as_u64().unwrap_or(0) as usize,
            conditions: strings(&l["conditions"]),
        })
        .collect()
}

/// The photos of `plates-scenes` and the four HyperLPR scenes labelled here (as the shared data README
/// describes them; `hy_1.jpg`'s double-row plate is 23 pixels wide and its upper row cannot be made out, so
/// it counts as unreadable).
fn photos() -> Vec<Photo> {
    let mut out = labelled("plates-scenes");
    let scene =
        |f: &str, plates: Vec<Label>, unreadable: usize| Photo { path: testkit::data(&format!("scenes/{f}")).to_str().unwrap().to_owned(), plates, unreadable, conditions: vec![] };
    out.push(scene("hy_test_img.jpg", vec![label("苏ED51712", "green", 1)], 0));
    out.push(scene("hy_a.jpg", vec![label("粤ZP560港", "black", 1)], 0));
    out.push(scene("hy_2.jpg", vec![label("藏DT5022", "blue", 1)], 0));
    out.push(scene("hy_1.jpg", vec![], 1));
    out
}

/// The condition row a photo belongs to: the hardest of its labelled conditions.
fn condition(photo: &Photo) -> &'static str {
    let has = |names: &[&str]| photo.conditions.iter().any(|c| names.contains(&c.as_str()));
    if has(&["negative"]) {
        "foreign (no Chinese plate)"
    } else if has(&["night", "low light"]) {
        "night"
    } else if has(&["dusk", "backlight"]) {
        "dusk / backlight"
    } else if has(&["dirty plate"]) {
        "dirty"
    } else if has(&["rain/wet"]) {
        "wet"
    } else {
        "day"
    }
}

/// The row of the table a plate belongs to.
fn plate_type(l: &Label) -> &'static str {
    let last = l.text.chars().last().unwrap_or(' ');
    if l.text.starts_with("WJ") {
        return "armed police WJ (white)";
    }
    match (l.colour.trim_end_matches('?'), l.rows, last) {
        (_, _, '学') => "learner 学 (yellow)",
        (_, _, '挂') => "trailer 挂 (yellow)",
        (_, _, '警') => "police 警 (white)",
        (_, _, '港' | '澳') => "Hong Kong/Macau 港/澳 (black)",
        (_, _, '领' | '使') => "consulate/embassy 领/使 (black)",
        ("green", 2, _) => "agricultural, double row (green)",
        ("green", ..) => "new energy, 8 characters (green)",
        ("yellow", 2, _) => "double row (yellow)",
        ("yellow", ..) => "single row (yellow)",
        ("blue", ..) => "standard (blue)",
        _ => "other",
    }
}

/// Characters in the same place: how a read is matched to the label it is a read of.
fn agreement(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).filter(|(x, y)| x == y).count()
}

#[derive(Default)]
struct Row {
    plates: usize,
    found: usize,
    exact: usize,
    colour: usize,
    false_plates: usize,
}

impl Row {
    fn add(&mut self, other: &Row) {
        self.plates += other.plates;
        self.found += other.found;
        self.exact += other.exact;
        self.colour += other.colour;
        self.false_plates += other.false_plates;
    }
}

/// The tables of one run of `analyze` over `photos`.
#[derive(Default)]
struct Score {
    by_type: BTreeMap<&'static str, Row>,
    by_condition: BTreeMap<&'static str, Row>,
    total: Row,
    of_unreadable: Vec<String>,
    false_plates: Vec<String>,
    misses: Vec<String>,
}

fn score(photos: &[Photo]) -> Score {
    let mut args = vec!["analyze", "--json"];
    args.extend(photos.iter().map(|p| p.path.as_str()));
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut reads: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for line in String::from_utf8(o.stdout).unwrap().lines().filter(|l| l.starts_with('{')) {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "plate" {
            reads.entry(v["file"].as_str().unwrap().to_owned()).or_default().push((v["plate"].as_str().unwrap().to_owned(), v["color"].as_str().unwrap().to_owned()));
        }
    }

    let mut s = Score::default();
    for photo in photos {
        let mut left = reads.get(&photo.path).cloned().unwrap_or_default();
        let cond = s.by_condition.entry(condition(photo)).or_default();
        for l in &photo.plates {
            let mut row = Row { plates: 1, ..Row::default() };
            // The read sharing most characters with the label (at least 5 in place) is this plate's read.
            let best = left.iter().enumerate().map(|(i, (t, _))| (agreement(t, &l.text), i)).max();
            match best {
                Some((n, i)) if n >= 5 => {
                    let (text, colour) = left.remove(i);
                    // A colour labelled with `?` (unsure even to the eye) counts as right when read so or when
                    // the reader says it does not know.
                    let colour_right = colour == l.colour || (l.colour.ends_with('?') && [l.colour.trim_end_matches('?'), "unknown"].contains(&colour.as_str()));
                    row.found = 1;
                    row.exact = usize::from(text == l.text);
                    row.colour = usize::from(colour_right);
                    if text != l.text || !colour_right {
                        s.misses.push(format!("{}: {} {} read as {text} {colour}", photo.path, l.text, l.colour));
                    }
                }
                _ => s.misses.push(format!("{}: {} {} not found", photo.path, l.text, l.colour)),
            }
            cond.add(&row);
            s.by_type.entry(plate_type(l)).or_default().add(&row);
            s.total.add(&row);
        }
        // Reads left over are plates labelled unreadable (as many as there are), or false plates.
        for (i, (text, colour)) in left.into_iter().enumerate() {
            let line = format!("{}: {text} {colour}", photo.path);
            if i < photo.unreadable {
                s.of_unreadable.push(line);
            } else {
                cond.false_plates += 1;
                s.total.false_plates += 1;
                s.false_plates.push(line);
            }
        }
    }
    s
}

impl Score {
    fn print(&self, photos: usize) {
        for (axis, rows) in [("plate type", &self.by_type), ("condition", &self.by_condition)] {
            println!("| {axis} | plates | found | exact text | colour right | false plates |");
            println!("|---|---|---|---|---|---|");
            for (name, r) in rows {
                println!("| {name} | {} | {} | {} | {} | {} |", r.plates, r.found, r.exact, r.colour, r.false_plates);
            }
            let t = &self.total;
            println!("| **all** | {} | {} | {} | {} | {} |\n", t.plates, t.found, t.exact, t.colour, t.false_plates);
        }
        println!("photos: {photos}; reads of plates labelled unreadable: {}; false plates: {}", self.of_unreadable.len(), self.false_plates.len());
        for l in self.of_unreadable.iter().chain(&self.false_plates).chain(&self.misses) {
            println!("  {l}");
        }
    }
}

#[test]
fn plate_type_table_on_the_real_scene_dev_set() {
    let photos = photos();
    let s = score(&photos);
    s.print(photos.len());
    let (total, misses, false_plates, of_unreadable) = (&s.total, &s.misses, &s.false_plates, &s.of_unreadable);
    assert_eq!(total.plates, 49);
    assert_eq!((total.found, total.exact, total.colour), (49, 49, 49), "misses:\n{}", misses.join("\n"));
    assert!(false_plates.is_empty(), "false plates:\n{}", false_plates.join("\n"));
    // Two photos show a plate labelled unreadable that the reader reads in full: `easypr_11` (province
    // hidden behind the windscreen pillar) and `easypr_13` (blown out by glare); see the README.
    assert!(of_unreadable.len() <= 2, "reads of unreadable plates:\n{}", of_unreadable.join("\n"));
}

#[test]
fn plate_tables_by_condition_on_the_hard_conditions_dev_set() {
    let photos = labelled("plates-field");
    let s = score(&photos);
    s.print(photos.len());
    // Every plate read exactly with its colour and nothing else read (2026-12-02). Before issue 26: 24 of
    // 27, the three double-row plates (yellow van, armed police WJ, agricultural) not found, a dirty yellow
    // read green, a glared blue read white, and the garage ceiling's two parking signs read as plates.
    let t = &s.total;
    assert_eq!(t.plates, 27);
    assert_eq!((t.found, t.exact, t.colour), (27, 27, 27), "misses:\n{}", s.misses.join("\n"));
    assert!(s.false_plates.is_empty(), "false plates:\n{}", s.false_plates.join("\n"));
    // A foreign plate never comes out as a Chinese one (with a province it does not show).
    assert_eq!(s.by_condition["foreign (no Chinese plate)"].false_plates, 0, "false plates:\n{}", s.false_plates.join("\n"));
}
