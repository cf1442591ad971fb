//! Changes to the configuration file made from the duty desk, written so the file stays the operator's:
//! only the keys changed are touched, every comment and the layout elsewhere are kept (`toml_edit`). The
//! result is checked with the same rules as `check-config` before anyone writes it.

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::settings::{Config, Line, Zone};
use crate::Issue;

/// A camera's geometry as the desk draws it: lines, zones and motion masks, in fractions of the frame.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    #[serde(default)]
    pub lines: Vec<Line>,
    #[serde(default)]
    pub zones: Vec<Zone>,
    #[serde(default)]
    pub masks: Vec<Vec<[f64; 2]>>,
}

/// Why an edit was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    #[error("the configuration file is not valid TOML: {0}")]
    Syntax(String),
    #[error("no camera {0:?} in the configuration file")]
    NoCamera(String),
    #[error("a camera {0:?} is already configured")]
    Exists(String),
    #[error("{}", .0.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Issue>),
}

fn point(p: [f64; 2]) -> Value {
    let round = |v: f64| (v.clamp(0.0, 1.0) * 1000.0).round() / 1000.0;
    Value::Array(Array::from_iter([round(p[0]), round(p[1])]))
}

fn points(ps: &[[f64; 2]]) -> Value {
    Value::Array(Array::from_iter(ps.iter().map(|p| point(*p))))
}

fn camera_table<'a>(doc: &'a mut DocumentMut, camera: &str) -> Result<&'a mut Table, EditError> {
    doc.get_mut("cameras")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|cams| cams.iter_mut().find(|t| t.get("id").and_then(Item::as_str) == Some(camera)))
        .ok_or_else(|| EditError::NoCamera(camera.to_string()))
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse().map_err(|e: toml_edit::TomlError| EditError::Syntax(e.to_string()))
}

/// Checks `text` as `check-config` would.
pub fn check(text: &str) -> Result<Config, EditError> {
    crate::parse_str(text).map_err(EditError::Invalid)
}

/// `text` with camera `camera`'s lines, zones and motion masks replaced by `g`; checked.
pub fn set_geometry(text: &str, camera: &str, g: &Geometry) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let table = camera_table(&mut doc, camera)?;
    let aot = |items: Vec<Table>| {
        let mut a = ArrayOfTables::new();
        for t in items {
            a.push(t);
        }
        Item::ArrayOfTables(a)
    };
    let lines: Vec<Table> = g
        .lines
        .iter()
        .map(|l| {
            let mut t = Table::new();
            t["id"] = value(l.id.clone());
            t["points"] = Item::Value(points(&l.points));
            t["in_side"] = Item::Value(point(l.in_side));
            t
        })
        .collect();
    let zones: Vec<Table> = g
        .zones
        .iter()
        .map(|z| {
            let mut t = Table::new();
            t["id"] = value(z.id.clone());
            t["points"] = Item::Value(points(&z.points));
            t
        })
        .collect();
    for (key, items) in [("lines", lines), ("zones", zones)] {
        if items.is_empty() {
            table.remove(key);
            continue;
        }
        // A line or zone that keeps its id keeps its table, with the comments above and beside it.
        let old: Vec<Table> = table.get(key).and_then(Item::as_array_of_tables).map(|a| a.iter().cloned().collect()).unwrap_or_default();
        let merged: Vec<Table> = items
            .into_iter()
            .map(|new| {
                let id = new.get("id").and_then(Item::as_str).map(str::to_string);
                match old.iter().find(|t| t.get("id").and_then(Item::as_str).map(str::to_string) == id) {
                    Some(kept) => {
                        let mut kept = kept.clone();
                        for (k, v) in new.iter() {
                            match (kept.get_mut(k), v.as_value()) {
                                // The new value, with the old one's spacing and trailing comment.
                                (Some(Item::Value(old)), Some(v)) => {
                                    let decor = old.decor().clone();
                                    *old = v.clone();
                                    *old.decor_mut() = decor;
                                }
                                _ => kept[k] = v.clone(),
                            }
                        }
                        kept
                    }
                    None => new,
                }
            })
            .collect();
        table[key] = aot(merged);
    }
    let masks = Value::Array(Array::from_iter(g.masks.iter().map(|m| points(m))));
    match table.get_mut("motion").and_then(Item::as_table_like_mut) {
        Some(motion) => {
            if g.masks.is_empty() {
                motion.remove("masks");
            } else {
                motion.insert("masks", Item::Value(masks));
            }
        }
        None if !g.masks.is_empty() => {
            let mut motion = Table::new();
            motion["masks"] = Item::Value(masks);
            table["motion"] = Item::Table(motion);
        }
        None => {}
    }
    let out = doc.to_string();
    check(&out)?;
    Ok(out)
}

/// `text` with a new camera; checked.
pub fn add_camera(text: &str, id: &str, url: &str, name: Option<&str>) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    if camera_table(&mut doc, id).is_ok() {
        return Err(EditError::Exists(id.to_string()));
    }
    let mut t = Table::new();
    t["id"] = value(id);
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        t["name"] = value(name);
    }
    t["url"] = value(url);
    match doc.get_mut("cameras") {
        Some(Item::ArrayOfTables(cams)) => cams.push(t),
        Some(_) => return Err(EditError::Invalid(vec![Issue::new("cameras", "is not an array of tables ([[cameras]])")])),
        None => {
            let mut cams = ArrayOfTables::new();
            cams.push(t);
            doc["cameras"] = Item::ArrayOfTables(cams);
        }
    }
    let out = doc.to_string();
    check(&out)?;
    Ok(out)
}

/// `text` with camera `id`'s URL replaced; checked.
pub fn set_camera_url(text: &str, id: &str, url: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    camera_table(&mut doc, id)?["url"] = value(url);
    let out = doc.to_string();
    check(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"# 小庄村东口 — installed 2026-11-30
[site]
city = "xining"
district = "chengzhong"
town = "nanchuan"
village = "xiaozhuang"
checkpoint = "east-gate"

# The gate camera, on the pole by the shop.
[[cameras]]
id = "gate"
url = "rtsp://10.0.0.5/stream1"   # main stream
detect_fps = 5

# Painted on the road.
[[cameras.lines]]
id = "gate"
points = [[0.0, 0.5], [1.0, 0.5]] # first guess
in_side = [0.5, 0.9]

[[cameras.lines]]
id = "old"
points = [[0.0, 0.2], [1.0, 0.2]]
in_side = [0.5, 0.9]

[cameras.motion]
threshold = 14 # dusty road

# The side door.
[[cameras]]
id = "side"
url = "rtsp://10.0.0.6/stream1"
"#;

    #[test]
    fn geometry_is_replaced_and_every_comment_and_other_key_stays() {
        let g = Geometry {
            lines: vec![Line { id: "gate".into(), points: [[0.0, 0.7512], [1.0, 0.75]], in_side: [0.5, 0.95] }],
            zones: vec![Zone { id: "yard".into(), points: vec![[0.1, 0.1], [0.4, 0.1], [0.4, 0.3]] }],
            masks: vec![vec![[0.8, 0.0], [1.0, 0.0], [1.0, 0.2]]],
        };
        let out = set_geometry(FILE, "gate", &g).unwrap();
        for kept in [
            "# 小庄村东口 — installed 2026-11-30",
            "# The gate camera, on the pole by the shop.",
            "# main stream",
            "threshold = 14 # dusty road",
            "# The side door.",
            "# Painted on the road.",
            "# first guess",
        ] {
            assert!(out.contains(kept), "{kept:?} kept in:\n{out}");
        }
        let config = check(&out).unwrap();
        let gate = config.cameras.iter().find(|c| c.id == "gate").unwrap();
        assert_eq!(gate.lines.len(), 1, "the line not drawn again is gone");
        assert!(!out.contains("\"old\""));
        assert_eq!((gate.lines[0].id.as_str(), gate.lines[0].points[0][1]), ("gate", 0.751));
        assert_eq!(gate.zones[0].points.len(), 3);
        assert_eq!(gate.motion.masks.len(), 1);
        assert_eq!(gate.motion.threshold, 14);
        assert!(config.cameras.iter().find(|c| c.id == "side").unwrap().lines.is_empty());
        // Clearing takes them out again.
        let cleared = set_geometry(&out, "gate", &Geometry::default()).unwrap();
        let gate = check(&cleared).unwrap().cameras.into_iter().find(|c| c.id == "gate").unwrap();
        assert!(gate.lines.is_empty() && gate.zones.is_empty() && gate.motion.masks.is_empty());
        assert!(cleared.contains("threshold = 14 # dusty road"));
    }

    #[test]
    fn what_check_config_refuses_is_not_written() {
        let two_points = Geometry { zones: vec![Zone { id: "z".into(), points: vec![[0.1, 0.1], [0.2, 0.2]] }], ..Geometry::default() };
        let err = set_geometry(FILE, "gate", &two_points).unwrap_err();
        assert!(matches!(&err, EditError::Invalid(issues) if issues.iter().any(|i| i.path.starts_with("cameras[0].zones[0]"))), "{err}");
        assert_eq!(set_geometry(FILE, "nope", &Geometry::default()).unwrap_err(), EditError::NoCamera("nope".into()));
    }

    #[test]
    fn cameras_are_added_and_their_url_fixed() {
        let out = add_camera(FILE, "back", "rtsp://admin:pw@10.0.0.7/stream1", Some("后门")).unwrap();
        let config = check(&out).unwrap();
        assert_eq!(config.cameras.len(), 3);
        assert!(out.contains("# The side door."));
        assert_eq!(add_camera(&out, "back", "rtsp://x/", None).unwrap_err(), EditError::Exists("back".into()));
        assert!(matches!(add_camera(FILE, "bad id!", "rtsp://x/", None), Err(EditError::Invalid(_))));
        let fixed = set_camera_url(&out, "back", "rtsp://admin:pw@10.0.0.8/stream1").unwrap();
        assert!(fixed.contains("10.0.0.8") && !fixed.contains("10.0.0.7"));
    }
}
