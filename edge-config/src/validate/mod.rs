//! Phase two: checks that need more than types. Every problem is collected with its path; nothing stops at
//! the first one.

use std::collections::HashMap;

mod cameras;
mod notify;

pub use notify::{ALERT_KINDS, RULE_LEVELS};

use crate::settings::{Config, Events, Models, Mqtt, Site, Storage};
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
    validate_storage(&config.storage, issues);
    validate_events(&config.events, issues);
    if config.metrics.enabled && config.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
        issues.push(Issue::new("metrics.listen", format!("{:?} is not an address:port such as 127.0.0.1:9810", config.metrics.listen)));
    }
    cameras::validate_cameras(&config.cameras, issues);
    validate_web(&config.web, issues);
    validate_rules(config, issues);
    validate_control(&config.control, issues);
    notify::validate_notify(config, issues);
    validate_clips(&config.clips, issues);
    if let Some(g) = &config.gat1400 {
        validate_gat1400(g, config, issues);
    }
    let period = config.reports.counts_period_secs;
    if period == 0 || 86_400 % period != 0 {
        issues.push(Issue::new("reports.counts_period_secs", format!("{period}: must divide a day (3600 = hourly, 900 = quarter-hourly)")));
    }
}

fn validate_web(w: &crate::settings::Web, issues: &mut Vec<Issue>) {
    if !w.enabled {
        return;
    }
    if w.outcomes.is_empty() {
        issues.push(Issue::new("web.outcomes", "must list at least one outcome"));
    }
    let mut ids = std::collections::HashSet::new();
    for (i, o) in w.outcomes.iter().enumerate() {
        if o.id.is_empty() || !o.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            issues.push(Issue::new(format!("web.outcomes[{i}].id"), format!("{:?}: lower-case letters, digits and '_'", o.id)));
        }
        if !ids.insert(o.id.as_str()) {
            issues.push(Issue::new(format!("web.outcomes[{i}].id"), format!("{:?} is listed twice", o.id)));
        }
    }
    if w.listen.parse::<std::net::SocketAddr>().is_err() {
        issues.push(Issue::new("web.listen", format!("{:?} is not an address:port such as 0.0.0.0:8080", w.listen)));
    }
    if !(1..=24 * 30).contains(&w.session_hours) {
        issues.push(Issue::new("web.session_hours", format!("{} is out of range 1..=720", w.session_hours)));
    }
    if !["zh", "en"].contains(&w.language.as_str()) {
        issues.push(Issue::new("web.language", format!("{:?}: expected \"zh\" or \"en\"", w.language)));
    }
    if w.tls_cert_file.is_some() != w.tls_key_file.is_some() {
        issues.push(Issue::new("web.tls_cert_file", "HTTPS needs both tls_cert_file and tls_key_file"));
    }
}

fn validate_rules(config: &Config, issues: &mut Vec<Issue>) {
    use crate::settings::RuleKind;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, rule) in config.rules.iter().enumerate() {
        let at = |field: &str| format!("rules[{i}].{field}");
        if let Err(msg) = check_topic_level(&rule.id) {
            issues.push(Issue::new(at("id"), format!("{:?} {msg}", rule.id)));
        }
        if let Some(first) = seen.insert(&rule.id, i) {
            issues.push(Issue::new(at("id"), format!("{:?} is already used by rules[{first}]", rule.id)));
        }
        for (j, cam) in rule.cameras.iter().enumerate() {
            if !config.cameras.iter().any(|c| &c.id == cam) {
                issues.push(Issue::new(at(&format!("cameras[{j}]")), format!("no camera with id {cam:?}")));
            }
        }
        match &rule.kind {
            RuleKind::WatchList { plates, entries, tolerance } => {
                if plates.is_empty() && entries.is_empty() {
                    issues.push(Issue::new(at("plates"), "must list at least one plate"));
                }
                let listed =
                    plates.iter().enumerate().map(|(j, p)| (format!("plates[{j}]"), p)).chain(entries.iter().enumerate().map(|(j, e)| (format!("entries[{j}].plate"), &e.plate)));
                for (path, p) in listed {
                    let n = p.chars().filter(|c| !c.is_whitespace() && *c != '·' && *c != '-').count();
                    if !(7..=8).contains(&n) {
                        issues.push(Issue::new(at(&path), format!("{p:?} is not a plate number (7 or 8 characters, e.g. 苏ED51712)")));
                    }
                }
                for (j, e) in entries.iter().enumerate() {
                    if e.reason.as_deref().is_some_and(|r| r.chars().count() > 200 || r.chars().any(char::is_control)) {
                        issues.push(Issue::new(at(&format!("entries[{j}].reason")), "at most 200 characters, on one line"));
                    }
                }
                if *tolerance > 1 {
                    issues.push(Issue::new(at("tolerance"), format!("{tolerance}: 0 (exact) or 1 (one misread character) only; more would match other people's plates")));
                }
            }
            RuleKind::KeyRegion { prefixes } => {
                if prefixes.is_empty() {
                    issues.push(Issue::new(at("prefixes"), "must list at least one prefix, e.g. \"鄂A\""));
                }
                for (j, p) in prefixes.iter().enumerate() {
                    if !(1..=2).contains(&p.chars().count()) {
                        issues.push(Issue::new(at(&format!("prefixes[{j}]")), format!("{p:?}: a province character, optionally followed by the city letter")));
                    }
                }
            }
            RuleKind::Crowding { zone, min_people, min_secs } => {
                let cams: Vec<&crate::settings::Camera> = config.cameras.iter().filter(|c| rule.cameras.is_empty() || rule.cameras.contains(&c.id)).collect();
                if !cams.iter().any(|c| c.zones.iter().any(|z| &z.id == zone)) {
                    issues.push(Issue::new(at("zone"), format!("no camera this rule applies to has a zone {zone:?}")));
                }
                if *min_people < 1 {
                    issues.push(Issue::new(at("min_people"), "must be at least 1"));
                }
                if !(*min_secs >= 0.0 && *min_secs <= 86_400.0) {
                    issues.push(Issue::new(at("min_secs"), format!("{min_secs} is out of range 0..=86400")));
                }
            }
            RuleKind::AfterHours { from, to, .. } => {
                if from == to {
                    issues.push(Issue::new(at("to"), "the window is empty (from = to)"));
                }
            }
        }
    }
}

fn validate_storage(s: &Storage, issues: &mut Vec<Issue>) {
    if s.outbox_max_bytes < 64 << 10 {
        issues.push(Issue::new("storage.outbox_max_bytes", format!("{} is below the 64 KiB minimum", s.outbox_max_bytes)));
    }
    if !(1..=24 * 365).contains(&s.outbox_max_age_hours) {
        issues.push(Issue::new("storage.outbox_max_age_hours", format!("{} is out of range 1..=8760", s.outbox_max_age_hours)));
    }
    for (key, days) in [("storage.snapshot_retention_days", s.snapshot_retention_days), ("storage.event_log_retention_days", s.event_log_retention_days)] {
        if !(1..=3650).contains(&days) {
            issues.push(Issue::new(key, format!("{days} is out of range 1..=3650")));
        }
    }
}

fn validate_events(e: &Events, issues: &mut Vec<Issue>) {
    if !(1..=30).contains(&e.confirm_frames) {
        issues.push(Issue::new("events.confirm_frames", format!("{} is out of range 1..=30", e.confirm_frames)));
    }
    if !(e.plate_memory_secs >= 0.0 && e.plate_memory_secs <= 600.0) {
        issues.push(Issue::new("events.plate_memory_secs", format!("{} is out of range [0, 600]", e.plate_memory_secs)));
    }
    if !(e.lost_timeout_secs > 0.0 && e.lost_timeout_secs <= 60.0) {
        issues.push(Issue::new("events.lost_timeout_secs", format!("{} is out of range (0, 60]", e.lost_timeout_secs)));
    }
    if !(e.track_low_score > 0.0 && e.track_low_score <= e.track_high_score && e.track_high_score < 1.0) {
        issues.push(Issue::new("events.track_low_score", format!("need 0 < track_low_score ({}) <= track_high_score ({}) < 1", e.track_low_score, e.track_high_score)));
    }
    if e.snapshot_max_bytes < 8 * 1024 {
        issues.push(Issue::new("events.snapshot_max_bytes", format!("{} is below the 8192-byte minimum", e.snapshot_max_bytes)));
    }
    if !(64..=3840).contains(&e.snapshot_max_width) {
        issues.push(Issue::new("events.snapshot_max_width", format!("{} is out of range 64..=3840", e.snapshot_max_width)));
    }
    if !(0.0..=2.0).contains(&e.snapshot_context) {
        issues.push(Issue::new("events.snapshot_context", format!("{} is out of range 0..=2", e.snapshot_context)));
    }
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

/// A camera id: one topic level of letters, digits, '-' and '_' (it names the camera's topics).
pub fn check_camera_id(id: &str) -> Result<(), String> {
    check_topic_level(id)?;
    match id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        Some(c) => Err(format!("contains {c:?}; use letters, digits, '-' and '_'")),
        None => Ok(()),
    }
}

/// Topic levels the agent uses itself: a city named like this would share topics with the policy tree, a
/// camera named like this with the site's own topics.
pub const RESERVED_CITY: &str = "policy";
pub const RESERVED_CAMERA_IDS: [&str; 5] = ["policy", "commands", "results", "status", "stats"];

fn validate_site(site: &Site, issues: &mut Vec<Issue>) {
    for (name, value) in site.levels() {
        if let Err(msg) = check_topic_level(value) {
            issues.push(Issue::new(format!("site.{name}"), format!("{value:?} {msg}")));
        }
    }
    if site.city == RESERVED_CITY {
        issues.push(Issue::new("site.city", format!("{RESERVED_CITY:?} is reserved for the policy topics ({{prefix}}/policy/...)")));
    }
}

fn validate_control(control: &crate::settings::Control, issues: &mut Vec<Issue>) {
    for (i, key) in control.trusted_keys.iter().enumerate() {
        if key.len() != 64 || !key.chars().all(|c| c.is_ascii_hexdigit()) {
            issues.push(Issue::new(format!("control.trusted_keys[{i}]"), "not an Ed25519 public key: 64 hex characters expected (edge-agent policy keygen)"));
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
    let password_sources = [mqtt.password.is_some(), mqtt.password_file.is_some(), mqtt.password_env.is_some()].iter().filter(|b| **b).count();
    if password_sources > 1 {
        issues.push(Issue::new("mqtt.password", "set only one of password, password_file and password_env"));
    }
    if password_sources > 0 && mqtt.username.is_none() {
        issues.push(Issue::new("mqtt.username", "a password is configured but no username"));
    }
    if let Some(tls) = &mqtt.tls {
        if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
            issues.push(Issue::new("mqtt.tls", "client_cert_file and client_key_file go together"));
        }
    }
    if !(1..=1000).contains(&mqtt.max_inflight) {
        issues.push(Issue::new("mqtt.max_inflight", format!("{} is out of range 1..=1000", mqtt.max_inflight)));
    }
    if !(1..=3600).contains(&mqtt.reconnect_max_secs) {
        issues.push(Issue::new("mqtt.reconnect_max_secs", format!("{} is out of range 1..=3600", mqtt.reconnect_max_secs)));
    }
}

fn validate_models(models: &Models, issues: &mut Vec<Issue>) {
    if models.detector_sessions > 16 {
        issues.push(Issue::new("models.detector_sessions", format!("{} is out of range 0..=16 (0: one per core)", models.detector_sessions)));
    }
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
    if plates.settle_reads > 64 {
        issues.push(Issue::new("models.plates.settle_reads", format!("{} is above 64 (0 turns settling off)", plates.settle_reads)));
    }
    if plates.min_vehicle_width_px > 2000 {
        issues.push(Issue::new("models.plates.min_vehicle_width_px", format!("{} is above 2000", plates.min_vehicle_width_px)));
    }
    if !(1..=64).contains(&plates.reader_batch) {
        issues.push(Issue::new("models.plates.reader_batch", format!("{} is out of range 1..=64", plates.reader_batch)));
    }
    if det.labels.is_empty() {
        issues.push(Issue::new("models.detector.labels", "must list at least one label"));
    }
}

/// Each `(key, value, range)` of section `section` outside its range is an issue.
pub(crate) fn check_ranges<T: PartialOrd + std::fmt::Display + Copy>(section: &str, items: &[(&str, T, std::ops::RangeInclusive<T>)], issues: &mut Vec<Issue>) {
    for (key, value, range) in items {
        if !range.contains(value) {
            issues.push(Issue::new(format!("{section}.{key}"), format!("{value} is out of range {}..={}", range.start(), range.end())));
        }
    }
}

fn validate_clips(c: &crate::settings::Clips, issues: &mut Vec<Issue>) {
    check_ranges(
        "clips",
        &[
            ("pre_capture_secs", c.pre_capture_secs, 0..=60),
            ("post_capture_secs", c.post_capture_secs, 0..=60),
            ("fragment_secs", c.fragment_secs, 1..=10),
            ("retention_days", c.retention_days, 1..=365),
            ("chunk_kb", c.chunk_kb, 16..=4096),
        ],
        issues,
    );
    if c.ring_max_mb < 4 {
        issues.push(Issue::new("clips.ring_max_mb", format!("{} is below the 4 MiB minimum", c.ring_max_mb)));
    }
    if c.max_mb < c.ring_max_mb.min(64) {
        issues.push(Issue::new("clips.max_mb", format!("{} MiB cannot hold a clip", c.max_mb)));
    }
}

/// Whether `id` is a GA/T 1400 device or tollgate id: 20 digits.
pub fn is_gat1400_id(id: &str) -> bool {
    id.len() == 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn validate_gat1400(g: &crate::settings::Gat1400, config: &Config, issues: &mut Vec<Issue>) {
    use crate::settings::GAT1400_DIRECTIONS;
    match url::Url::parse(&g.server) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.password().is_some() || u.username() != "" || u.query().is_some() {
                issues.push(Issue::new("gat1400.server", "put no credentials or query in the address: user and password have their own settings"));
            }
        }
        _ => issues.push(Issue::new("gat1400.server", format!("{:?} is not an http:// or https:// address such as http://10.1.2.3:8080", g.server))),
    }
    let id_issue = |key: String, id: &str| Issue::new(key, format!("{id:?}: a GA/T 1400 id is 20 digits (area 8, industry 2, type 2, subtype 2, sequence 6)"));
    if !is_gat1400_id(&g.device_id) {
        issues.push(id_issue("gat1400.device_id".into(), &g.device_id));
    }
    if let Some(t) = g.tollgate_id.as_deref().filter(|t| !is_gat1400_id(t)) {
        issues.push(id_issue("gat1400.tollgate_id".into(), t));
    }
    let passwords = [g.password.is_some(), g.password_file.is_some(), g.password_env.is_some()].iter().filter(|x| **x).count();
    match passwords {
        0 => issues.push(Issue::new("gat1400.password", "missing: the password the platform issued for this device; set password_file or password_env")),
        1 => {}
        _ => issues.push(Issue::new("gat1400.password", "set only one of password, password_file and password_env")),
    }
    let direction = |key: String, code: &str, issues: &mut Vec<Issue>| {
        if !GAT1400_DIRECTIONS.contains(&code) {
            issues.push(Issue::new(key, format!("{code:?}: a direction code is 1 to 9 (1 east→west … 9 other)")));
        }
    };
    direction("gat1400.direction_in".into(), &g.direction_in, issues);
    direction("gat1400.direction_out".into(), &g.direction_out, issues);
    for (id, c) in &g.cameras {
        if !config.cameras.iter().any(|k| &k.id == id) {
            issues.push(Issue::new(format!("gat1400.cameras.{id}"), format!("{id:?} is not a configured camera")));
        }
        if let Some(d) = c.device_id.as_deref().filter(|d| !is_gat1400_id(d)) {
            issues.push(id_issue(format!("gat1400.cameras.{id}.device_id"), d));
        }
        for (key, code) in [("direction_in", &c.direction_in), ("direction_out", &c.direction_out)] {
            if let Some(code) = code {
                direction(format!("gat1400.cameras.{id}.{key}"), code, issues);
            }
        }
    }
    if !g.vehicles && !g.people {
        issues.push(Issue::new("gat1400.vehicles", "neither vehicles nor people: nothing would be uploaded (set enabled = false instead)"));
    }
    check_ranges(
        "gat1400",
        &[
            ("keepalive_secs", g.keepalive_secs, 10..=600),
            ("timeout_secs", g.timeout_secs, 1..=120),
            ("max_age_hours", g.max_age_hours, 1..=24 * 90),
            ("queue_max_mb", g.queue_max_mb, 8..=65_536),
            ("batch", g.batch as u64, 1..=64),
            ("scene_width", u64::from(g.scene_width), 320..=3840),
        ],
        issues,
    );
}
