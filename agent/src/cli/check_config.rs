//! `edge-agent check-config FILE`: the validator the systemd unit runs before starting the daemon.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// Prints every problem as `path: message` on stderr and returns exit code 1 if there is any.
pub fn run(path: &Path) -> ExitCode {
    let issues = match edge_config::load_file(path) {
        Ok(config) => {
            let issues = crate::checks::environment_issues(&config);
            if issues.is_empty() {
                for warning in crate::checks::security_warnings(&config) {
                    eprintln!("warning: {warning}");
                }
                let enabled = config.cameras.iter().filter(|c| c.enabled).count();
                println!(
                    "{}: OK (site {}, {} camera(s), {} enabled, MQTT {})",
                    path.display(),
                    config.site.path(),
                    config.cameras.len(),
                    enabled,
                    config.mqtt.as_ref().map_or("off".to_string(), |m| format!("{}:{}", m.host, m.port))
                );
                for n in config.notify.iter().filter(|n| n.enabled) {
                    let host = n.url.as_deref().or(n.kind.default_url()).and_then(|u| url::Url::parse(u).ok()).and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
                    println!("note: notify {:?} ({}): the alerts it takes — plates, and for WeCom the pictures — leave the checkpoint for {host}", n.id, n.kind.as_str());
                }
                if config.notify.iter().all(|n| !n.enabled) {
                    println!("note: no work-group notifications: alerts stay with MQTT and the duty desk");
                }
                if config.cameras.is_empty() {
                    println!("note: no cameras configured yet: the agent will run idle until [[cameras]] are added and it is reloaded");
                }
                return ExitCode::SUCCESS;
            }
            issues
        }
        Err(e) => e.issues(),
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}: {} problem(s)", path.display(), issues.len());
    for issue in &issues {
        let _ = writeln!(err, "{issue}");
    }
    ExitCode::from(1)
}
