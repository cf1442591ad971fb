//! `[[notify]]` and `[health]`.

use std::collections::HashMap;

use crate::settings::{Config, NotifyKind};
use crate::Issue;

/// Alert kinds a channel may filter on.
pub const ALERT_KINDS: &[&str] = &["watch_list", "key_region", "crowding", "after_hours", "camera_offline", "camera_frozen", "camera_covered", "camera_moved"];
/// Where a rule comes from: the platform's policy levels, or this agent's own config.
pub const RULE_LEVELS: &[&str] = &["city", "district", "town", "village", "local"];

pub(super) fn validate_notify(config: &Config, issues: &mut Vec<Issue>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in config.notify.iter().enumerate() {
        let at = |field: &str| format!("notify[{i}].{field}");
        if n.id.is_empty() || n.id.len() > 64 || !n.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            issues.push(Issue::new(at("id"), format!("{:?}: 1 to 64 letters, digits, '-' or '_'", n.id)));
        }
        if let Some(first) = seen.insert(&n.id, i) {
            issues.push(Issue::new(at("id"), format!("{:?} is already used by notify[{first}]", n.id)));
        }
        match n.url.as_deref().or(n.kind.default_url()) {
            None => issues.push(Issue::new(at("url"), "a webhook needs its url (http:// or https://)")),
            Some(u) => match url::Url::parse(u) {
                Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => {
                    if parsed.password().is_some() || parsed.query().is_some() {
                        issues.push(Issue::new(at("url"), "put no credentials or query in the url: the key and secret have their own settings (key_file, secret_file)"));
                    }
                }
                _ => issues.push(Issue::new(at("url"), format!("{u:?} is not an http:// or https:// URL"))),
            },
        }
        let count = |a: bool, b: bool, c: bool| [a, b, c].iter().filter(|x| **x).count();
        let keys = count(n.key.is_some(), n.key_file.is_some(), n.key_env.is_some());
        let secrets = count(n.secret.is_some(), n.secret_file.is_some(), n.secret_env.is_some());
        if keys > 1 {
            issues.push(Issue::new(at("key"), "set only one of key, key_file and key_env"));
        }
        if secrets > 1 {
            issues.push(Issue::new(at("secret"), "set only one of secret, secret_file and secret_env"));
        }
        match n.kind {
            NotifyKind::Wecom | NotifyKind::Dingtalk if keys == 0 => {
                let what = if n.kind == NotifyKind::Wecom { "the robot's key (from its webhook address, key=…)" } else { "the robot's access_token" };
                issues.push(Issue::new(at("key"), format!("missing: {what}; set key_file or key_env")));
            }
            NotifyKind::Wecom if secrets > 0 => issues.push(Issue::new(at("secret"), "a WeCom group robot has no signing secret")),
            NotifyKind::Webhook if keys > 0 => issues.push(Issue::new(at("key"), "a webhook takes a secret (for its signature), not a key")),
            _ => {}
        }
        for (j, kind) in n.kinds.iter().enumerate() {
            if !ALERT_KINDS.contains(&kind.as_str()) {
                issues.push(Issue::new(at(&format!("kinds[{j}]")), format!("{kind:?}: expected one of {}", ALERT_KINDS.join(", "))));
            }
        }
        for (j, level) in n.levels.iter().enumerate() {
            if !RULE_LEVELS.contains(&level.as_str()) {
                issues.push(Issue::new(at(&format!("levels[{j}]")), format!("{level:?}: expected one of {}", RULE_LEVELS.join(", "))));
            }
        }
        for (j, rule) in n.rules.iter().enumerate() {
            if !config.rules.iter().any(|r| &r.id == rule) && !ALERT_KINDS[4..].contains(&rule.as_str()) {
                issues.push(Issue::new(at(&format!("rules[{j}]")), format!("no rule with id {rule:?}")));
            }
        }
        for (j, cam) in n.cameras.iter().enumerate() {
            if !config.cameras.iter().any(|c| &c.id == cam) {
                issues.push(Issue::new(at(&format!("cameras[{j}]")), format!("no camera with id {cam:?}")));
            }
        }
        match (n.quiet_from, n.quiet_to) {
            (Some(_), None) | (None, Some(_)) => issues.push(Issue::new(at("quiet_from"), "quiet hours need both quiet_from and quiet_to")),
            (Some(a), Some(b)) if a == b => issues.push(Issue::new(at("quiet_to"), "the quiet hours are empty (quiet_from = quiet_to)")),
            _ => {}
        }
        if !(1..=600).contains(&n.per_minute) {
            issues.push(Issue::new(at("per_minute"), format!("{} is out of range 1..=600", n.per_minute)));
        }
        if !(60..=86_400).contains(&n.max_age_secs) {
            issues.push(Issue::new(at("max_age_secs"), format!("{} is out of range 60..=86400", n.max_age_secs)));
        }
        if n.picture_wait_secs > 300 {
            issues.push(Issue::new(at("picture_wait_secs"), format!("{} is out of range 0..=300", n.picture_wait_secs)));
        }
        if !(1..=120).contains(&n.timeout_secs) {
            issues.push(Issue::new(at("timeout_secs"), format!("{} is out of range 1..=120", n.timeout_secs)));
        }
        if let Some(u) = &n.picture_url {
            if n.kind != NotifyKind::Dingtalk {
                issues.push(Issue::new(at("picture_url"), "only DingTalk takes pictures as links (WeCom gets the picture itself)"));
            } else if !url::Url::parse(u).is_ok_and(|p| matches!(p.scheme(), "http" | "https")) {
                issues.push(Issue::new(at("picture_url"), format!("{u:?} is not an http:// or https:// URL")));
            }
        }
    }
    let h = &config.health;
    super::check_ranges(
        "health",
        &[
            ("offline_secs", h.offline_secs, 5..=86_400),
            ("frozen_secs", h.frozen_secs, 2..=86_400),
            ("covered_secs", h.covered_secs, 2..=86_400),
            ("moved_secs", h.moved_secs, 2..=86_400),
            ("reference_secs", h.reference_secs, 2..=3_600),
            ("clear_secs", h.clear_secs, 1..=3_600),
        ],
        issues,
    );
    for (j, cam) in h.skip_cameras.iter().enumerate() {
        if !config.cameras.iter().any(|c| &c.id == cam) {
            issues.push(Issue::new(format!("health.skip_cameras[{j}]"), format!("no camera with id {cam:?}")));
        }
    }
}
