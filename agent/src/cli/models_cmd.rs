//! `edge-agent models list | verify | fetch`: what is installed, digest checks, and offline provisioning.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use models::manifest::{self, ModelEntry, MANIFEST};

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List the known models and whether each is installed and intact.
    List,
    /// Check the SHA-256 of installed models; exits 1 if any named (default: all installed) is missing or
    /// does not match.
    Verify {
        /// Model names or file names (default: every installed model, and the detector).
        names: Vec<String>,
    },
    /// Install models into the models directory, verifying each digest before it becomes visible.
    Fetch {
        /// Directory to copy from (a USB stick, a mounted share).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Model names or file names (default: all known models present in DIR, and the detector).
        names: Vec<String>,
    },
}

/// Runs the command against `dir`.
pub fn run(action: &ModelsAction, dir: &Path) -> anyhow::Result<ExitCode> {
    match action {
        ModelsAction::List => {
            println!("models directory: {}", dir.display());
            for e in MANIFEST {
                let state = match manifest::verify(dir, e) {
                    Ok(_) => "ok".to_string(),
                    Err(manifest::ManifestError::Missing { .. }) => "missing".to_string(),
                    Err(manifest::ManifestError::Digest { .. }) => "CORRUPT (digest mismatch)".to_string(),
                    Err(err) => format!("unreadable: {err}"),
                };
                println!("{:<14} {:<26} {:<28} {}", e.name, e.file, state, e.role);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Verify { names } => {
            let entries = select(names, |e| dir.join(e.file).exists() || e.name == "yolox-nano")?;
            let mut bad = 0;
            for e in entries {
                match manifest::verify(dir, e) {
                    Ok(path) => println!("ok       {}", path.display()),
                    Err(err) => {
                        bad += 1;
                        eprintln!("error: {err}");
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ModelsAction::Fetch { from, names } => {
            if !from.is_dir() {
                anyhow::bail!("--from {}: not a directory", from.display());
            }
            let entries = select(names, |e| from.join(e.file).exists() || e.name == "yolox-nano")?;
            let mut bad = 0;
            for e in entries {
                match manifest::install_from_dir(from, dir, e) {
                    Ok(manifest::Installed::Copied(path)) => println!("installed {} ({})", path.display(), e.name),
                    Ok(manifest::Installed::AlreadyPresent(path)) => println!("ok        {} ({}, already installed)", path.display(), e.name),
                    Err(err) => {
                        bad += 1;
                        eprintln!("error: {err}");
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn select(names: &[String], default: impl Fn(&ModelEntry) -> bool) -> anyhow::Result<Vec<&'static ModelEntry>> {
    if names.is_empty() {
        return Ok(MANIFEST.iter().filter(|e| default(e)).collect());
    }
    names
        .iter()
        .map(|n| {
            manifest::entry(n).ok_or_else(|| {
                let known: Vec<&str> = MANIFEST.iter().map(|e| e.name).collect();
                anyhow::anyhow!("unknown model {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}
