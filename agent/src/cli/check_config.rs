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
