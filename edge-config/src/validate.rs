//! Phase two: checks that need more than types. Every problem is collected with its path; nothing stops at
//! the first one.

use std::collections::HashMap;

use crate::settings::{Camera, Config, Models, Mqtt, Site, SUPPORTED_URL_SCHEMES};
use crate::Issue;

/// Runs every semantic check on `config`.
pub fn validate(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    validate_into(config, &mut issues);
    issues
}

pub(crate) fn validate_into(config: &Config, issues: &mut Vec<Issue>) {
    validate_site(&config.site, issues);
    if let Some(mqtt) = &config.mqtt {
        validate_mqtt(mqtt, issues);
    }
    validate_models(&config.models, issues);
    validate_cameras(&config.cameras, issues);
}

/// A topic level: non-empty, no MQTT wildcards or separators, no white space or control characters.
pub fn check_topic_level(level: &str) -> Result<(), String> {
    if level.is_empty() {
        return Err("must not be empty".into());
    }
    if level.len() > 64 {
        return Err(format!("is {} bytes long, at most 64 allowed", level.len()));
    }
    if let Some(c) = level.chars().find(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control()) {
        return Err(format!("must not contain {c:?} (one topic level: no '/', '+', '#', spaces or control characters)"));
    }
    Ok(())
}

fn validate_site(site: &Site, issues: &mut Vec<Issue>) {
    for (name, value) in site.levels() {
        if let Err(msg) = check_topic_level(value) {
            issues.push(Issue::new(format!("site.{name}"), format!("{value:?} {msg}")));
        }
    }
}

fn validate_mqtt(mqtt: &Mqtt, issues: &mut Vec<Issue>) {
    if mqtt.host.trim().is_empty() {
        issues.push(Issue::new("mqtt.host", "must not be empty"));
    }
    if mqtt.port == 0 {
        issues.push(Issue::new("mqtt.port", "must be between 1 and 65535"));
    }
    let prefix = &mqtt.topic_prefix;
    if prefix.starts_with('/') || prefix.ends_with('/') {
        issues.push(Issue::new("mqtt.topic_prefix", format!("{prefix:?} must not start or end with '/'")));
    } else {
        for level in prefix.split('/') {
            if let Err(msg) = check_topic_level(level) {
                issues.push(Issue::new("mqtt.topic_prefix", format!("level {level:?} {msg}")));
            }
        }
    }
    if !(5..=3600).contains(&mqtt.keep_alive_secs) {
        issues.push(Issue::new("mqtt.keep_alive_secs", format!("{} is out of range 5..=3600", mqtt.keep_alive_secs)));
    }
    if !(1..=86_400).contains(&mqtt.stats_interval_secs) {
        issues.push(Issue::new("mqtt.stats_interval_secs", format!("{} is out of range 1..=86400", mqtt.stats_interval_secs)));
    }
    if let Some(id) = &mqtt.client_id {
        if id.is_empty() || id.len() > 128 {
            issues.push(Issue::new("mqtt.client_id", "must be 1 to 128 bytes long"));
        }
    }
    let password_sources =
        [mqtt.password.is_some(), mqtt.password_file.is_some(), mqtt.password_env.is_some()].iter().filter(|b| **b).count();
    if password_sources > 1 {
        issues.push(Issue::new("mqtt.password", "set only one of password, password_file and password_env"));
    }
    if password_sources > 0 && mqtt.username.is_none() {
        issues.push(Issue::new("mqtt.username", "a password is configured but no username"));
    }
}

fn validate_models(models: &Models, issues: &mut Vec<Issue>) {
    if !(1..=64).contains(&models.intra_threads) {
        issues.push(Issue::new("models.intra_threads", format!("{} is out of range 1..=64", models.intra_threads)));
    }
    let det = &models.detector;
    if det.file.as_os_str().is_empty() {
        issues.push(Issue::new("models.detector.file", "must not be empty"));
    }
    if !(det.score_threshold > 0.0 && det.score_threshold < 1.0) {
        issues.push(Issue::new("models.detector.score_threshold", format!("{} must be between 0 and 1", det.score_threshold)));
    }
    if !(det.nms_iou_threshold > 0.0 && det.nms_iou_threshold < 1.0) {
        issues.push(Issue::new("models.detector.nms_iou_threshold", format!("{} must be between 0 and 1", det.nms_iou_threshold)));
    }
    let plates = &models.plates;
    if !(plates.score_threshold > 0.0 && plates.score_threshold < 1.0) {
        issues.push(Issue::new("models.plates.score_threshold", format!("{} must be between 0 and 1", plates.score_threshold)));
    }
    if !(plates.min_char_confidence >= 0.0 && plates.min_char_confidence < 1.0) {
        issues.push(Issue::new("models.plates.min_char_confidence", format!("{} must be at least 0 and below 1", plates.min_char_confidence)));
    }
    if !(1..=32).contains(&plates.max_vehicles_per_frame) {
        issues.push(Issue::new("models.plates.max_vehicles_per_frame", format!("{} is out of range 1..=32", plates.max_vehicles_per_frame)));
    }
    if !(1..=64).contains(&plates.reader_batch) {
        issues.push(Issue::new("models.plates.reader_batch", format!("{} is out of range 1..=64", plates.reader_batch)));
    }
    if det.labels.is_empty() {
        issues.push(Issue::new("models.detector.labels", "must list at least one label"));
    }
}

fn validate_cameras(cameras: &[Camera], issues: &mut Vec<Issue>) {
    if cameras.is_empty() {
        issues.push(Issue::new("cameras", "no cameras configured: add at least one [[cameras]] table"));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, cam) in cameras.iter().enumerate() {
        let at = |field: &str| format!("cameras[{i}].{field}");
        if let Err(msg) = check_topic_level(&cam.id) {
            issues.push(Issue::new(at("id"), format!("{:?} {msg}", cam.id)));
        } else if let Some(c) = cam.id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
            issues.push(Issue::new(at("id"), format!("{:?} contains {c:?}; use letters, digits, '-' and '_'", cam.id)));
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
        if cam.max_frame_width != 0 && !(160..=7680).contains(&cam.max_frame_width) {
            issues.push(Issue::new(at("max_frame_width"), format!("{} is out of range 160..=7680 (or 0 for native)", cam.max_frame_width)));
        }
    }
}

fn check_camera_url(cam: &Camera) -> Result<(), String> {
    let shown = cam.url.redacted();
    let parsed = url::Url::parse(cam.url.expose()).map_err(|e| format!("{shown:?} is not a valid URL: {e}"))?;
    let scheme = parsed.scheme();
    if !SUPPORTED_URL_SCHEMES.contains(&scheme) {
        return Err(format!("{shown:?}: unsupported scheme {scheme:?}, expected one of {}", SUPPORTED_URL_SCHEMES.join(", ")));
    }
    match scheme {
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
