//! The plate-type table: `edge-agent analyze` over the real-scene dev set (`plates-scenes`, 43 photos with
//! hand-checked labels) and the shared HyperLPR scenes, scored per plate type — plates, found, exact text,
//! colour right, reads of plates marked unreadable, and false plates — printed and asserted.

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
}

fn label(text: &str, colour: &str, rows: u64) -> Label {
    Label { text: text.into(), colour: colour.into(), rows }
}

/// The photos of `plates-scenes` with its `labels.json`, and the four HyperLPR scenes labelled here (as the
/// shared data README describes them; `hy_1.jpg`'s double-row plate is 23 pixels wide and its upper row
/// cannot be made out, so it counts as unreadable).
fn photos() -> Vec<Photo> {
    let dir = testkit::data("plates-scenes");
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let mut out: Vec<Photo> = labels
        .as_object()
        .unwrap()
        .iter()
        .map(|(file, l)| Photo {
            path: dir.join(file).to_str().unwrap().to_owned(),
            plates: l["plates"].as_array().unwrap().iter().map(|p| label(p["text"].as_str().unwrap(), p["color"].as_str().unwrap(), p["rows"].as_u64().unwrap())).collect(),
            unreadable: l["unreadable"].as_u64().unwrap() as usize,
        })
        .collect();
    let scene = |f: &str| testkit::data(&format!("scenes/{f}")).to_str().unwrap().to_owned();
    out.push(Photo { path: scene("hy_test_img.jpg"), plates: vec![label("苏ED51712", "green", 1)], unreadable: 0 });
    out.push(Photo { path: scene("hy_a.jpg"), plates: vec![label("粤ZP560港", "black", 1)], unreadable: 0 });
    out.push(Photo { path: scene("hy_2.jpg"), plates: vec![label("藏DT5022", "blue", 1)], unreadable: 0 });
    out.push(Photo { path: scene("hy_1.jpg"), plates: vec![], unreadable: 1 });
    out
}

/// The row of the table a plate belongs to.
fn plate_type(l: &Label) -> &'static str {
    let last = l.text.chars().last().unwrap_or(' ');
    match (l.colour.as_str(), l.rows, last) {
        (_, _, '学') => "learner 学 (yellow)",
        (_, _, '挂') => "trailer 挂 (yellow)",
        (_, _, '警') => "police 警 (white)",
        (_, _, '港' | '澳') => "Hong Kong/Macau 港/澳 (black)",
        (_, _, '领' | '使') => "consulate/embassy 领/使 (black)",
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
}

#[test]
fn plate_type_table_on_the_real_scene_dev_set() {
    let photos = photos();
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

    let mut table: BTreeMap<&str, Row> = BTreeMap::new();
    let (mut of_unreadable, mut false_plates, mut misses) = (Vec::new(), Vec::new(), Vec::new());
    for photo in &photos {
        let mut left = reads.get(&photo.path).cloned().unwrap_or_default();
        for l in &photo.plates {
            let row = table.entry(plate_type(l)).or_default();
            row.plates += 1;
            // The read sharing most characters with the label (at least 5 in place) is this plate's read.
            let best = left.iter().enumerate().map(|(i, (t, _))| (agreement(t, &l.text), i)).max();
            match best {
                Some((n, i)) if n >= 5 => {
                    let (text, colour) = left.remove(i);
                    row.found += 1;
                    row.exact += usize::from(text == l.text);
                    row.colour += usize::from(colour == l.colour);
                    if text != l.text || colour != l.colour {
                        misses.push(format!("{}: {} {} read as {text} {colour}", photo.path, l.text, l.colour));
                    }
                }
                _ => misses.push(format!("{}: {} {} not found", photo.path, l.text, l.colour)),
            }
        }
        // Reads left over are plates labelled unreadable (as many as there are), or false plates.
        for (i, (text, colour)) in left.into_iter().enumerate() {
            let line = format!("{}: {text} {colour}", photo.path);
            if i < photo.unreadable {
                of_unreadable.push(line);
            } else {
                false_plates.push(line);
            }
        }
    }

    println!("| plate type | plates | found | exact text | colour right |");
    println!("|---|---|---|---|---|");
    let mut total = Row::default();
    for (name, r) in &table {
        println!("| {name} | {} | {} | {} | {} |", r.plates, r.found, r.exact, r.colour);
        total.plates += r.plates;
        total.found += r.found;
        total.exact += r.exact;
        total.colour += r.colour;
    }
    println!("| **all** | {} | {} | {} | {} |", total.plates, total.found, total.exact, total.colour);
    println!("photos: {}; reads of plates labelled unreadable: {}; false plates: {}", photos.len(), of_unreadable.len(), false_plates.len());
    for l in of_unreadable.iter().chain(&false_plates).chain(&misses) {
        println!("  {l}");
    }

    assert_eq!(total.plates, 49);
    assert_eq!((total.found, total.exact, total.colour), (49, 49, 49), "misses:\n{}", misses.join("\n"));
    assert!(false_plates.is_empty(), "false plates:\n{}", false_plates.join("\n"));
    // Two photos show a plate labelled unreadable that the reader reads in full: `easypr_11` (province
    // hidden behind the windscreen pillar) and `easypr_13` (blown out by glare); see the README.
    assert!(of_unreadable.len() <= 2, "reads of unreadable plates:\n{}", of_unreadable.join("\n"));
}
