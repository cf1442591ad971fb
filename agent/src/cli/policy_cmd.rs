//! `edge-agent policy keygen|sign|verify`: keys and signed documents for the platform's policy (see
//! `crate::control`), for platform engineers and tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::control;

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Make an Ed25519 signing key: DIR/policy.key (secret, owner-only) and DIR/policy.pub; prints the public
    /// key for `control.trusted_keys`.
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a policy document with a secret key; prints the signed document.
    Sign {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        document: PathBuf,
    },
    /// Check a document as an agent would: schema, fields, and (with --trusted-key) its signature.
    Verify {
        /// A trusted public key (hex); repeatable.
        #[arg(long = "trusted-key", value_name = "HEX")]
        trusted_keys: Vec<String>,
        document: PathBuf,
    },
}

pub fn run(action: &PolicyAction) -> anyhow::Result<ExitCode> {
    match action {
        PolicyAction::Keygen { out } => {
            let (secret, public) = control::keygen();
            std::fs::create_dir_all(out).with_context(|| format!("{}", out.display()))?;
            write_new(&out.join("policy.key"), &secret, 0o600)?;
            write_new(&out.join("policy.pub"), &public, 0o644)?;
            println!("{public}");
            eprintln!("secret key in {} (keep it on the platform, never on a checkpoint); public key in {}", out.join("policy.key").display(), out.join("policy.pub").display());
            Ok(ExitCode::SUCCESS)
        }
        PolicyAction::Sign { key, document } => {
            let secret = std::fs::read_to_string(key).with_context(|| format!("{}", key.display()))?;
            let bytes = std::fs::read(document).with_context(|| format!("{}", document.display()))?;
            let signed = control::sign(&bytes, &secret).map_err(|e| anyhow::anyhow!("{}: {e}", document.display()))?;
            std::io::stdout().write_all(&signed)?;
            println!();
            Ok(ExitCode::SUCCESS)
        }
        PolicyAction::Verify { trusted_keys, document } => {
            let bytes = std::fs::read(document).with_context(|| format!("{}", document.display()))?;
            match control::parse(&bytes, trusted_keys) {
                Ok(doc) => {
                    let signed = if trusted_keys.is_empty() { "signature not checked" } else { "signed by a trusted key" };
                    println!("{}: OK (version {}, {} rule(s), issued by {}; {signed})", document.display(), doc.version, doc.rules.len(), doc.issued_by);
                    Ok(ExitCode::SUCCESS)
                }
                Err(refused) => {
                    for issue in refused.issues() {
                        eprintln!("{}: {issue}", document.display());
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// Writes a new file (never over an existing one or through a link).
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).with_context(|| format!("{}", path.display()))?;
    writeln!(f, "{text}")?;
    Ok(())
}
