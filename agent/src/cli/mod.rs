//! Command line: the contract used by operators, tests and benchmarks (see README).

pub mod analyze;
pub mod check_config;
pub mod models_cmd;
pub mod policy_cmd;
pub mod users_cmd;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use edge_config::Models;

#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about = "Video monitoring agent for village and town checkpoints")]
pub struct Cli {
    /// More log output (debug level). `RUST_LOG` overrides.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent (the daemon).
    Run {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file; prints every problem as `path: message` and exits 1 if any.
    CheckConfig {
        /// Configuration file.
        #[arg(value_name = "FILE")]
        config: PathBuf,
    },
    /// Analyse images, directories or video files offline with the daemon's pipeline; no MQTT.
    Analyze(analyze::AnalyzeArgs),
    /// Installed models: list, verify digests, or install from a directory.
    Models {
        #[command(subcommand)]
        action: models_cmd::ModelsAction,
        /// Models directory (default: the config's `models.dir`, else the standard locations).
        #[arg(long, global = true, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Configuration file to take `models.dir` from.
        #[arg(long, global = true, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Duty desk accounts: add (password on stdin), list, remove.
    Users {
        #[command(subcommand)]
        action: users_cmd::UsersAction,
        /// Configuration file to take the users file from (`web.users_file`, else `users.json` in the state
        /// directory). Default: /etc/edge-agent/agent.toml.
        #[arg(long, global = true, value_name = "FILE", default_value = "/etc/edge-agent/agent.toml")]
        config: PathBuf,
        /// The users file itself, instead of taking it from the config.
        #[arg(long, global = true, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Signing keys and documents for the platform's policy.
    Policy {
        #[command(subcommand)]
        action: policy_cmd::PolicyAction,
    },
    /// The duty desk's audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
        /// Configuration file to take the state directory from. Default: /etc/edge-agent/agent.toml.
        #[arg(long, global = true, value_name = "FILE", default_value = "/etc/edge-agent/agent.toml")]
        config: PathBuf,
        /// The audit directory itself (`{state_dir}/audit`), instead of taking it from the config.
        #[arg(long, global = true, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Checks that no record was edited, deleted or inserted (each record carries the hash of the one
    /// before it); exits 1 and names the first broken line if one was.
    Verify,
}

/// `edge-agent audit verify`.
pub fn audit(action: &AuditAction, dir: &Path) -> anyhow::Result<std::process::ExitCode> {
    match action {
        AuditAction::Verify => match crate::web::audit::verify(dir) {
            Ok(n) => {
                println!("{}: {n} record(s), the chain is intact", dir.display());
                Ok(std::process::ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(std::process::ExitCode::from(1))
            }
        },
    }
}

/// Environment variable naming the models directory when no config is given.
pub const MODELS_DIR_ENV: &str = "EDGE_AGENT_MODELS_DIR";

/// Model settings for commands that run without a config file: `$EDGE_AGENT_MODELS_DIR`, else the packaged
/// location, else `./var/models` (where `make` provisions models in a checkout). The ONNX Runtime library is
/// found the same way (`$ORT_DYLIB_PATH`, packaged, then `./.deps/onnxruntime`).
pub fn default_models() -> Models {
    let mut models = Models::default();
    if let Some(dir) = std::env::var_os(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        models.dir = PathBuf::from(dir);
    } else if !models.detector_path().is_file() {
        let local = Path::new("var/models");
        if local.join(&models.detector.file).is_file() {
            models.dir = std::env::current_dir().map(|d| d.join(local)).unwrap_or_else(|_| local.to_path_buf());
        }
    }
    models
}

/// Fills in the developer-checkout ONNX Runtime location when nothing else names one.
pub fn with_local_runtime(mut models: Models) -> Models {
    let packaged = Path::new("/usr/lib/edge-agent/libonnxruntime.so");
    if models.onnxruntime_library.is_none() && std::env::var_os("ORT_DYLIB_PATH").is_none() && !packaged.exists() {
        let local = Path::new(".deps/onnxruntime/libonnxruntime.so");
        if local.is_file() {
            models.onnxruntime_library = std::env::current_dir().ok().map(|d| d.join(local));
        }
    }
    models
}
