//! Checks that need the file system: model files, the ONNX Runtime library, password files. They run in
//! `check-config` (and so in the systemd unit's `ExecStartPre=`) and before the daemon starts, and report
//! like the config validator: `path: message`.

use edge_config::{Config, Issue};
use models::COCO_LABELS;

/// Everything about `config` that can be wrong on this machine.
pub fn environment_issues(config: &Config) -> Vec<Issue> {
    let mut issues = Vec::new();
    let models = &config.models;
    let detector = models.detector_path();
    if !detector.is_file() {
        issues.push(Issue::new("models.detector.file", format!("model file {} not found", detector.display())));
    }
    for (i, label) in models.detector.labels.iter().enumerate() {
        if !COCO_LABELS.contains(&label.as_str()) {
            issues.push(Issue::new(
                format!("models.detector.labels[{i}]"),
                format!("{label:?} is not a label the detector knows (COCO: person, bicycle, car, motorcycle, bus, truck, ...)"),
            ));
        }
    }
    if plates_in_use(config) {
        for (key, path) in models.plate_paths() {
            if !path.is_file() {
                issues.push(Issue::new(key, format!("model file {} not found (set models.plates.enabled = false to run without plates)", path.display())));
            }
        }
    }
    if let Some(lib) = &models.onnxruntime_library {
        if !lib.is_file() {
            issues.push(Issue::new("models.onnxruntime_library", format!("{} not found", lib.display())));
        }
    }
    if let Some(mqtt) = &config.mqtt {
        let tls = mqtt.tls.iter().flat_map(|t| {
            [("mqtt.tls.ca_file", Some(&t.ca_file)), ("mqtt.tls.client_cert_file", t.client_cert_file.as_ref()), ("mqtt.tls.client_key_file", t.client_key_file.as_ref())]
        });
        let files = [("mqtt.password_file", mqtt.password_file.as_ref())].into_iter().chain(tls);
        for (key, path) in files.filter_map(|(k, p)| p.map(|p| (k, p))) {
            if path.starts_with(edge_config::CREDENTIALS_PREFIX) {
                let why = "names a systemd credential, but $CREDENTIALS_DIRECTORY is not set (add LoadCredential= to the unit)";
                issues.push(Issue::new(key, format!("{} {why}", path.display())));
            } else if let Err(e) = std::fs::File::open(path) {
                issues.push(Issue::new(key, format!("{}: {e}", path.display())));
            }
        }
    }
    for (i, n) in config.notify.iter().enumerate().filter(|(_, n)| n.enabled) {
        let files = [("key_file", n.key_file.as_ref()), ("secret_file", n.secret_file.as_ref()), ("ca_file", n.ca_file.as_ref())];
        for (key, path) in files.into_iter().filter_map(|(k, p)| p.map(|p| (k, p))) {
            if let Err(e) = std::fs::File::open(path) {
                issues.push(Issue::new(format!("notify[{i}].{key}"), format!("{}: {e}", path.display())));
            }
        }
        for (key, name) in [("key_env", n.key_env.as_ref()), ("secret_env", n.secret_env.as_ref())].into_iter().filter_map(|(k, v)| v.map(|v| (k, v))) {
            if std::env::var_os(name).is_none() {
                issues.push(Issue::new(format!("notify[{i}].{key}"), format!("environment variable {name} is not set")));
            }
        }
    }
    for (i, camera) in config.cameras.iter().enumerate() {
        if camera.url.scheme().as_deref() == Some("file") {
            if let Some(path) = file_path(camera.url.expose()) {
                // A named pipe (fed by another program) is a file source too.
                if !path.exists() {
                    issues.push(Issue::new(format!("cameras[{i}].url"), format!("file {} does not exist", path.display())));
                } else if path.is_dir() {
                    issues.push(Issue::new(format!("cameras[{i}].url"), format!("{} is a directory, not a video file", path.display())));
                }
            }
        }
    }
    issues
}

/// Settings that work but expose the checkpoint: reported as warnings by `check-config` and at start.
pub fn security_warnings(config: &Config) -> Vec<Issue> {
    let mut warnings = Vec::new();
    if let Some(mqtt) = config.mqtt.as_ref().filter(|m| m.tls.is_none() && !is_loopback(&m.host)) {
        warnings.push(Issue::new(
            "mqtt",
            format!("plain MQTT to {}:{}: the broker password, events and snapshots cross the network unencrypted; configure [mqtt.tls]", mqtt.host, mqtt.port),
        ));
    }
    let web = &config.web;
    if web.enabled && web.tls_cert_file.is_none() {
        let host = web.listen.rsplit_once(':').map_or(web.listen.as_str(), |(h, _)| h).trim_matches(['[', ']']);
        if !is_loopback(host) {
            warnings.push(Issue::new(
                "web.listen",
                format!("the duty desk is served on {} over plain HTTP: passwords and pictures cross the office network unencrypted; set web.tls_cert_file and web.tls_key_file, or listen on 127.0.0.1", web.listen),
            ));
        }
    }
    warnings
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The soft limit on open files of this process (from `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Fewest open files the agent wants: cameras (sockets, decoder threads' pipes), snapshots, MQTT, the
/// outbox and up to 256 duty desk connections.
pub const MIN_OPEN_FILES: u64 = 4096;

/// The local path of a `file://` URL.
pub fn file_path(url: &str) -> Option<std::path::PathBuf> {
    url::Url::parse(url).ok()?.to_file_path().ok()
}

/// Whether any enabled camera reads plates.
pub fn plates_in_use(config: &Config) -> bool {
    // With no cameras yet (a fresh install), plates are loaded so cameras added by a reload can read them.
    config.models.plates.enabled && (config.cameras.is_empty() || config.cameras.iter().any(|c| c.enabled && c.plates != edge_config::PlateMode::Off))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n\n{extra}");
        edge_config::parse_str(&text).unwrap()
    }

    #[test]
    fn plaintext_mqtt_off_this_pc_and_a_plain_http_desk_on_all_interfaces_are_warned_about() {
        let warned = |extra: &str| security_warnings(&config(extra)).into_iter().map(|i| i.path).collect::<Vec<_>>();
        assert_eq!(warned("[mqtt]\nhost = \"10.1.2.3\"\n"), ["mqtt", "web.listen"], "defaults: plain MQTT, page on 0.0.0.0 over HTTP");
        assert_eq!(warned("[mqtt]\nhost = \"127.0.0.1\"\n[web]\nlisten = \"127.0.0.1:8080\"\n"), Vec::<String>::new());
        assert_eq!(warned("[web]\nlisten = \"[::1]:8080\"\n"), Vec::<String>::new());
        assert_eq!(warned("[web]\nenabled = false\n"), Vec::<String>::new());
        assert_eq!(warned("[web]\nlisten = \"192.168.1.20:8080\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n"), Vec::<String>::new());
        assert!(open_files_limit().is_some_and(|n| n > 0));
    }
}
