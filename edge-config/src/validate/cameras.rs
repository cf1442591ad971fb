//! Checks of `[[cameras]]`: ids, URLs, rates, lines, zones and motion masks.

use std::collections::HashMap;

use super::{check_camera_id, check_topic_level, RESERVED_CAMERA_IDS};
use crate::settings::{Camera, SUPPORTED_URL_SCHEMES};
use crate::Issue;

fn in_unit_square(p: &[f64; 2]) -> bool {
    (0.0..=1.0).contains(&p[0]) && (0.0..=1.0).contains(&p[1])
}

/// Twice the signed area of triangle abc.
fn cross(a: [f64; 2], b: [f64; 2], c: [f64; 2]) -> f64 {
    (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
}

fn segments_cross(a: [f64; 2], b: [f64; 2], c: [f64; 2], d: [f64; 2]) -> bool {
    let (d1, d2) = (cross(c, d, a), cross(c, d, b));
    let (d3, d4) = (cross(a, b, c), cross(a, b, d));
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

fn validate_geometry(i: usize, cam: &Camera, issues: &mut Vec<Issue>) {
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (j, line) in cam.lines.iter().enumerate() {
        let at = |f: &str| format!("cameras[{i}].lines[{j}].{f}");
        if let Err(msg) = check_topic_level(&line.id) {
            issues.push(Issue::new(at("id"), format!("{:?} {msg}", line.id)));
        }
        if let Some(prev) = ids.insert(&line.id, at("id")) {
            issues.push(Issue::new(at("id"), format!("duplicate id {:?} (also {prev})", line.id)));
        }
        let [a, b] = line.points;
        if !in_unit_square(&a) || !in_unit_square(&b) {
            issues.push(Issue::new(at("points"), "coordinates must be fractions of the frame, 0 to 1"));
        }
        let len = ((b[0] - a[0]).powi(2) + (b[1] - a[1]).powi(2)).sqrt();
        if len < 0.02 {
            issues.push(Issue::new(at("points"), format!("the line is degenerate ({len:.3} of the frame long, at least 0.02 needed)")));
        } else {
            let distance = cross(a, b, line.in_side).abs() / len;
            if distance < 0.01 {
                issues.push(Issue::new(at("in_side"), "the point lies on the line; pick a point clearly on the village side"));
            }
        }
        if !in_unit_square(&line.in_side) {
            issues.push(Issue::new(at("in_side"), "coordinates must be fractions of the frame, 0 to 1"));
        }
    }
    for (j, zone) in cam.zones.iter().enumerate() {
        let at = |f: &str| format!("cameras[{i}].zones[{j}].{f}");
        if let Err(msg) = check_topic_level(&zone.id) {
            issues.push(Issue::new(at("id"), format!("{:?} {msg}", zone.id)));
        }
        if let Some(prev) = ids.insert(&zone.id, at("id")) {
            issues.push(Issue::new(at("id"), format!("duplicate id {:?} (also {prev})", zone.id)));
        }
        validate_polygon(&at("points"), "zone", &zone.points, issues);
    }
}

/// A polygon in fractions of the frame: at least three corners inside the frame, some area, edges that do
/// not cross.
fn validate_polygon(at: &str, what: &str, pts: &[[f64; 2]], issues: &mut Vec<Issue>) {
    if pts.len() < 3 {
        issues.push(Issue::new(at, format!("a {what} needs at least 3 corners, found {}", pts.len())));
        return;
    }
    if pts.iter().any(|p| !in_unit_square(p)) {
        issues.push(Issue::new(at, "coordinates must be fractions of the frame, 0 to 1"));
    }
    let area: f64 = (0..pts.len())
        .map(|k| {
            let (p, q) = (pts[k], pts[(k + 1) % pts.len()]);
            p[0] * q[1] - q[0] * p[1]
        })
        .sum::<f64>()
        .abs()
        / 2.0;
    if area < 1e-4 {
        issues.push(Issue::new(at, format!("the {what} is degenerate (area {area:.5} of the frame)")));
    }
    let n = pts.len();
    let crossing = (0..n).any(|e1| (e1 + 2..n).any(|e2| (e2 + 1) % n != e1 && segments_cross(pts[e1], pts[(e1 + 1) % n], pts[e2], pts[(e2 + 1) % n])));
    if crossing {
        issues.push(Issue::new(at, format!("the {what}'s edges cross each other; list the corners in order around it")));
    }
}

pub(super) fn validate_cameras(cameras: &[Camera], issues: &mut Vec<Issue>) {
    // No cameras is valid (a freshly installed package); `check-config` and the daemon say so.
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, cam) in cameras.iter().enumerate() {
        let at = |field: &str| format!("cameras[{i}].{field}");
        if let Err(msg) = check_camera_id(&cam.id) {
            issues.push(Issue::new(at("id"), format!("{:?} {msg}", cam.id)));
        }
        if RESERVED_CAMERA_IDS.contains(&cam.id.as_str()) {
            issues.push(Issue::new(at("id"), format!("{:?} is reserved for the site's own topics", cam.id)));
        }
        if let Some(first) = seen.insert(cam.id.as_str(), i) {
            issues.push(Issue::new(at("id"), format!("duplicate camera id {:?} (also cameras[{first}])", cam.id)));
            seen.insert(cam.id.as_str(), first);
        }
        if let Err(msg) = check_camera_url(cam) {
            issues.push(Issue::new(at("url"), msg));
        }
        if !(cam.detect_fps > 0.0 && cam.detect_fps <= 60.0) {
            issues.push(Issue::new(at("detect_fps"), format!("{} is out of range (0, 60]", cam.detect_fps)));
        }
        validate_geometry(i, cam, issues);
        if let Some(t) = cam.stall_timeout_secs {
            if !(1.0..=3600.0).contains(&t) {
                issues.push(Issue::new(at("stall_timeout_secs"), format!("{t} is out of range 1..=3600")));
            }
        }
        if !(cam.reconnect_max_secs >= 1.0 && cam.reconnect_max_secs <= 3600.0) {
            issues.push(Issue::new(at("reconnect_max_secs"), format!("{} is out of range 1..=3600", cam.reconnect_max_secs)));
        }
        if cam.latency_ms > 10_000 {
            issues.push(Issue::new(at("latency_ms"), format!("{} is above 10000", cam.latency_ms)));
        }
        if cam.max_frame_width != 0 && !(160..=7680).contains(&cam.max_frame_width) {
            issues.push(Issue::new(at("max_frame_width"), format!("{} is out of range 160..=7680 (or 0 for native)", cam.max_frame_width)));
        }
        validate_motion(i, &cam.motion, issues);
    }
}

fn validate_motion(i: usize, m: &crate::Motion, issues: &mut Vec<Issue>) {
    let at = |f: &str| format!("cameras[{i}].motion.{f}");
    if !(m.keepalive_secs >= 0.2 && m.keepalive_secs <= 60.0) {
        issues.push(Issue::new(at("keepalive_secs"), format!("{} is out of range 0.2..=60", m.keepalive_secs)));
    }
    if !(3..=100).contains(&m.threshold) {
        issues.push(Issue::new(at("threshold"), format!("{} is out of range 3..=100", m.threshold)));
    }
    if !(m.min_area > 0.0 && m.min_area <= 0.5) {
        issues.push(Issue::new(at("min_area"), format!("{} is out of range (0, 0.5]", m.min_area)));
    }
    for (j, mask) in m.masks.iter().enumerate() {
        validate_polygon(&format!("cameras[{i}].motion.masks[{j}]"), "mask", mask, issues);
    }
}

fn check_camera_url(cam: &Camera) -> Result<(), String> {
    let shown = cam.url.redacted();
    if cam.url.expose().starts_with("/dev/") && !cam.url.expose().starts_with("/dev/video") {
        return Err(format!("{shown:?}: a device camera is /dev/videoN"));
    }
    let parsed = url::Url::parse(&cam.url.uri()).map_err(|e| format!("{shown:?} is not a valid URL: {e}"))?;
    let scheme = parsed.scheme();
    if !SUPPORTED_URL_SCHEMES.contains(&scheme) {
        return Err(format!("{shown:?}: unsupported scheme {scheme:?}, expected one of {}", SUPPORTED_URL_SCHEMES.join(", ")));
    }
    match scheme {
        "v4l2" => {
            if !parsed.path().starts_with("/dev/video") {
                return Err(format!("{shown:?}: a USB camera is v4l2:///dev/videoN or /dev/videoN"));
            }
        }
        "file" => {
            if parsed.path().is_empty() || parsed.path() == "/" {
                return Err(format!("{shown:?}: a file URL needs an absolute path, e.g. file:///srv/clips/gate.mp4"));
            }
            if parsed.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                return Err(format!("{shown:?}: file URLs must be local (file:///path), not on host {:?}", parsed.host_str().unwrap_or_default()));
            }
        }
        _ => {
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("{shown:?}: missing host"));
            }
        }
    }
    Ok(())
}
