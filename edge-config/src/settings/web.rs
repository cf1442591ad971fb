//! `[web]` and `[metrics]`: the duty desk and the observability endpoint.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The local observability endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Metrics {
    /// Serve `/metrics` (Prometheus text format) and `/healthz`.
    pub enabled: bool,
    /// Address and port to listen on. Loopback by default: put a reverse proxy or the Prometheus agent on
    /// the same PC rather than opening it to the network. Port 0 picks a free port (logged at start).
    pub listen: String,
}

/// The local alert feed for duty staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Web {
    /// Serve the alert feed page.
    pub enabled: bool,
    /// Address and port; `0.0.0.0:8080` for the village office network, `127.0.0.1:8080` for this PC only.
    pub listen: String,
    /// Accounts file (`edge-agent users add`). Default: `users.json` in the state directory.
    pub users_file: Option<PathBuf>,
    /// A signed-in session ends after this many hours.
    pub session_hours: u32,
    /// Interface language by default: `zh` or `en` (each user can switch).
    pub language: String,
    /// HTTPS: PEM certificate chain and private key. Without both, plain HTTP (use it on a closed network only).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Host names (besides this PC's own name, `localhost` and IP addresses) the page may be reached by,
    /// e.g. a DNS name the village office uses for this PC. Requests for any other name are refused.
    pub allowed_hosts: Vec<String>,
    /// What duty staff can record when they dispose of an alert.
    pub outcomes: Vec<Outcome>,
}

/// One outcome of an alert: an id for the platform and labels for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub id: String,
    pub zh: String,
    pub en: String,
}

fn default_outcomes() -> Vec<Outcome> {
    [
        ("released", "核实放行", "Released after checking"),
        ("turned_back", "劝返", "Turned back"),
        ("registered", "登记", "Registered"),
        ("handed_over", "上报", "Handed over"),
        ("false_alarm", "误报", "False alarm"),
    ]
    .iter()
    .map(|(id, zh, en)| Outcome { id: (*id).into(), zh: (*zh).into(), en: (*en).into() })
    .collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Self { enabled: true, listen: "127.0.0.1:9810".into() }
    }
}

impl Default for Web {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "0.0.0.0:8080".into(),
            users_file: None,
            session_hours: 12,
            language: "zh".into(),
            tls_cert_file: None,
            tls_key_file: None,
            allowed_hosts: Vec::new(),
            outcomes: default_outcomes(),
        }
    }
}
