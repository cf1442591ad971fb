//! Configuration of the checkpoint edge agent.
//!
//! Loading happens in two phases (see `load` and `validate`): the TOML is parsed strictly (unknown keys are
//! errors) section by section, then semantic checks run on whatever parsed. Every problem carries the path of
//! the value at fault, e.g. `cameras[1].url: unsupported scheme "ftp"`, and all of them are reported at once.
//!
//! This crate does no network or media I/O and depends on neither tokio, GStreamer nor an MQTT client.

pub mod edit;
mod load;
pub mod secret;
pub mod settings;
mod validate;

use std::fmt;
use std::path::PathBuf;

pub use load::{expand_credentials, load_file, parse_str, CREDENTIALS_PREFIX};
pub use secret::{CameraUrl, Secret};
pub use settings::*;
pub use validate::{check_camera_id, check_topic_level, is_gat1400_id, validate, ALERT_KINDS, RULE_LEVELS};

/// One problem in a configuration, with the path of the value at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where: `cameras[1].url`, `mqtt.port`, or `line 3, column 7` for syntax errors.
    pub path: String,
    /// What is wrong, in words an operator can act on. Never contains a secret.
    pub message: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} has {} problem(s):\n{}", issues.len(), render(issues))]
    Invalid { path: PathBuf, issues: Vec<Issue> },
}

impl ConfigError {
    /// The individual problems (one for a read failure).
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            ConfigError::Read { path, source } => vec![Issue::new(path.display().to_string(), source.to_string())],
            ConfigError::Invalid { issues, .. } => issues.clone(),
        }
    }
}

fn render(issues: &[Issue]) -> String {
    issues.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n")
}
