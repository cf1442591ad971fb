//! Phase one: TOML text to typed settings. Each section, and each camera, is deserialised on its own so that
//! one mistake does not hide the next: every problem comes back with its path (`cameras[1].url`).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::settings::{Camera, Clips, Config, Control, Events, Gat1400, Health, Metrics, Models, Mqtt, Notify, Reports, Rule, Site, Storage, Web};
use crate::validate::validate_into;
use crate::{ConfigError, Issue};

const SECTIONS: &[&str] = &["site", "mqtt", "models", "storage", "events", "metrics", "web", "rules", "control", "reports", "notify", "health", "clips", "gat1400", "cameras"];

/// Reads, parses and validates a configuration file. Relative paths inside it are made relative to the
/// file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = parse_str(&text).map_err(|issues| ConfigError::Invalid { path: path.to_path_buf(), issues })?;
    resolve_relative_paths(&mut config, &base);
    Ok(config)
}

/// Parses and validates configuration text. All problems are returned at once.
pub fn parse_str(text: &str) -> Result<Config, Vec<Issue>> {
    let table: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => return Err(vec![syntax_issue(text, &e)]),
    };

    let mut issues = Vec::new();
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            issues.push(Issue::new(key, format!("unknown section, expected one of {}", SECTIONS.join(", "))));
        }
    }

    let site: Option<Site> = match table.get("site") {
        Some(v) => section(v.clone(), "site", &mut issues),
        None => {
            issues.push(Issue::new("site", "missing section: the checkpoint's city, district, town, village and checkpoint are required"));
            None
        }
    };
    let mqtt: Option<Option<Mqtt>> = match table.get("mqtt") {
        Some(v) => section(v.clone(), "mqtt", &mut issues).map(Some),
        None => Some(None),
    };
    let models: Option<Models> = optional_section(&table, "models", &mut issues);
    let storage: Option<Storage> = optional_section(&table, "storage", &mut issues);
    let events: Option<Events> = optional_section(&table, "events", &mut issues);
    let metrics: Option<Metrics> = optional_section(&table, "metrics", &mut issues);
    let web: Option<Web> = optional_section(&table, "web", &mut issues);
    let control: Option<Control> = optional_section(&table, "control", &mut issues);
    let reports: Option<Reports> = optional_section(&table, "reports", &mut issues);
    let rules: Option<Vec<Option<Rule>>> = array_section(&table, "rules", &mut issues);
    let notify: Option<Vec<Option<Notify>>> = array_section(&table, "notify", &mut issues);
    let health: Option<Health> = optional_section(&table, "health", &mut issues);
    let clips: Option<Clips> = optional_section(&table, "clips", &mut issues);
    let gat1400: Option<Option<Gat1400>> = optional_section(&table, "gat1400", &mut issues);
    let cameras: Option<Vec<Option<Camera>>> = array_section(&table, "cameras", &mut issues);

    // Check what did parse, even when something else did not, so one run shows everything.
    let camera_list: Vec<Camera> = cameras.iter().flatten().flatten().cloned().collect();
    let partial = Config {
        site: site.clone().unwrap_or_else(placeholder_site),
        mqtt: mqtt.clone().flatten(),
        models: models.clone().unwrap_or_default(),
        storage: storage.clone().unwrap_or_default(),
        events: events.clone().unwrap_or_default(),
        metrics: metrics.clone().unwrap_or_default(),
        web: web.clone().unwrap_or_default(),
        rules: rules.iter().flatten().flatten().cloned().collect(),
        control: control.clone().unwrap_or_default(),
        reports: reports.clone().unwrap_or_default(),
        notify: notify.iter().flatten().flatten().cloned().collect(),
        health: health.clone().unwrap_or_default(),
        clips: clips.clone().unwrap_or_default(),
        gat1400: gat1400.clone().flatten(),
        cameras: camera_list,
    };
    let mut semantic = Vec::new();
    validate_into(&partial, &mut semantic);
    // Cameras that failed to parse are missing from `partial`; map the remaining indices back.
    let index_map: Vec<usize> = cameras.iter().flatten().enumerate().filter(|(_, c)| c.is_some()).map(|(i, _)| i).collect();
    let rule_map: Vec<usize> = rules.iter().flatten().enumerate().filter(|(_, r)| r.is_some()).map(|(i, _)| i).collect();
    let notify_map: Vec<usize> = notify.iter().flatten().enumerate().filter(|(_, n)| n.is_some()).map(|(i, _)| i).collect();
    for mut issue in semantic {
        if site.is_none() && issue.path.starts_with("site") {
            continue;
        }
        if cameras.is_none() && issue.path == "cameras" {
            continue;
        }
        if rules.is_none() && issue.path == "rules" {
            continue;
        }
        for (list, map) in [("cameras", &index_map), ("rules", &rule_map), ("notify", &notify_map)] {
            issue.path = remap_index(&issue.path, list, map);
            issue.message = remap_index(&issue.message, list, map);
        }
        issues.push(issue);
    }

    let complete = rules.is_some() && notify.is_some() && health.is_some() && clips.is_some() && gat1400.is_some();
    match (issues.is_empty() && complete, site, mqtt, models, storage, events, metrics, web, control, reports) {
        (true, Some(site), Some(mqtt), Some(models), Some(storage), Some(events), Some(metrics), Some(web), Some(control), Some(reports)) => Ok(Config {
            site,
            mqtt,
            models,
            storage,
            events,
            metrics,
            web,
            rules: partial.rules,
            control,
            reports,
            notify: partial.notify,
            health: partial.health,
            clips: partial.clips,
            gat1400: partial.gat1400,
            cameras: partial.cameras,
        }),
        _ => Err(issues),
    }
}

/// An array of tables (`[[rules]]`), each parsed on its own so one bad entry does not hide the next.
fn array_section<T: DeserializeOwned>(table: &toml::Table, name: &str, issues: &mut Vec<Issue>) -> Option<Vec<Option<T>>> {
    match table.get(name) {
        None => Some(Vec::new()),
        Some(toml::Value::Array(items)) => Some(items.iter().enumerate().map(|(i, v)| section(v.clone(), &format!("{name}[{i}]"), issues)).collect()),
        Some(other) => {
            issues.push(Issue::new(name, format!("expected an array of tables ([[{name}]]), found {}", other.type_str())));
            None
        }
    }
}

fn optional_section<T: DeserializeOwned + Default>(table: &toml::Table, name: &str, issues: &mut Vec<Issue>) -> Option<T> {
    match table.get(name) {
        Some(v) => section(v.clone(), name, issues),
        None => Some(T::default()),
    }
}

fn section<T: DeserializeOwned>(value: toml::Value, prefix: &str, issues: &mut Vec<Issue>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let path = if inner == "." || inner.is_empty() { prefix.to_string() } else { format!("{prefix}.{inner}") };
            issues.push(Issue::new(path, e.into_inner().message().trim().to_string()));
            None
        }
    }
}

fn placeholder_site() -> Site {
    Site { city: "x".into(), district: "x".into(), town: "x".into(), village: "x".into(), checkpoint: "x".into(), name: None }
}

/// Rewrites `cameras[i]` (an index into the cameras that parsed) to the index in the file.
/// Rewrites `{list}[i]` indices (top-level lists only: not after a `.`, so `rules[0].cameras[1]` keeps its
/// inner index) from positions among the items that parsed back to positions in the file.
fn remap_index(text: &str, list: &str, index_map: &[usize]) -> String {
    let marker = format!("{list}[");
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(&marker) {
        let nested = pos > 0 && rest[..pos].ends_with('.');
        let (head, tail) = rest.split_at(pos + marker.len());
        out.push_str(head);
        let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse::<usize>().ok().and_then(|i| index_map.get(i)).filter(|_| !nested) {
            Some(orig) => out.push_str(&orig.to_string()),
            None => out.push_str(&digits),
        }
        rest = &tail[digits.len()..];
    }
    out.push_str(rest);
    out
}

fn syntax_issue(text: &str, error: &toml::de::Error) -> Issue {
    let location = error.span().map(|span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}")
    });
    let message = error.message().trim();
    match location {
        Some(loc) => Issue::new(loc, format!("TOML syntax: {message}")),
        None => Issue::new("(file)", format!("TOML syntax: {message}")),
    }
}

/// The prefix that stands for systemd's credentials directory in file paths (`LoadCredential=`).
pub const CREDENTIALS_PREFIX: &str = "$CREDENTIALS_DIRECTORY";

/// Replaces a leading `$CREDENTIALS_DIRECTORY` with the directory systemd passed, when it passed one. Left
/// as is otherwise, so `check-config` can say the credential is not available.
pub fn expand_credentials(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix(CREDENTIALS_PREFIX) else { return path.to_path_buf() };
    match std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(rest),
        None => path.to_path_buf(),
    }
}

fn resolve_relative_paths(config: &mut Config, base: &Path) {
    let resolve = |p: &mut PathBuf| {
        *p = expand_credentials(p);
        if p.is_relative() && !p.starts_with(CREDENTIALS_PREFIX) {
            *p = base.join(&*p);
        }
    };
    resolve(&mut config.models.dir);
    resolve(&mut config.storage.state_dir);
    for p in [config.web.users_file.as_mut(), config.web.tls_cert_file.as_mut(), config.web.tls_key_file.as_mut(), config.clips.ring_dir.as_mut()].into_iter().flatten() {
        resolve(p);
    }
    if let Some(lib) = config.models.onnxruntime_library.as_mut() {
        resolve(lib);
    }
    for n in &mut config.notify {
        for p in [n.key_file.as_mut(), n.secret_file.as_mut(), n.ca_file.as_mut()].into_iter().flatten() {
            resolve(p);
        }
    }
    if let Some(mqtt) = config.mqtt.as_mut() {
        if let Some(p) = mqtt.password_file.as_mut() {
            resolve(p);
        }
        if let Some(tls) = mqtt.tls.as_mut() {
            resolve(&mut tls.ca_file);
            for p in [tls.client_cert_file.as_mut(), tls.client_key_file.as_mut()].into_iter().flatten() {
                resolve(p);
            }
        }
    }
}
