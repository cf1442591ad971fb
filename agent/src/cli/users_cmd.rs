//! `edge-agent users add|list|remove`: the duty desk's accounts. The password is read from standard input
//! (first line), so it never appears in the shell history or the process list.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::web::users::{Role, UsersFile};

#[derive(Debug, Subcommand)]
pub enum UsersAction {
    /// Add an account, or set a new password and role for an existing one. Reads the password from stdin.
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "viewer")]
        role: Role,
    },
    /// List the accounts and their roles.
    List,
    /// Remove an account (its open sessions end at their expiry).
    Remove { name: String },
}

pub fn run(action: &UsersAction, file: &Path) -> anyhow::Result<ExitCode> {
    let mut users = UsersFile::load(file)?;
    match action {
        UsersAction::List => {
            println!("accounts in {}:", file.display());
            for u in &users.users {
                println!("  {:<24} {}", u.name, u.role.as_str());
            }
            return Ok(ExitCode::SUCCESS);
        }
        UsersAction::Add { name, role } => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("password for {name}: ");
                let _ = std::io::stderr().flush();
            }
            let mut password = String::new();
            stdin.lock().read_line(&mut password)?;
            users.set(name, *role, password.trim_end_matches(['\r', '\n']))?;
            println!("{name} ({}) saved in {}", role.as_str(), file.display());
        }
        UsersAction::Remove { name } => {
            users.remove(name)?;
            println!("{name} removed from {}", file.display());
        }
    }
    users.save(file)?;
    give_to_directory_owner(file);
    Ok(ExitCode::SUCCESS)
}

/// Run as root for the service, the file must belong to the service user who owns the state directory.
fn give_to_directory_owner(file: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Some(owner) = file.parent().and_then(|d| std::fs::metadata(d).ok()) else { return };
    let Ok(meta) = std::fs::metadata(file) else { return };
    if meta.uid() != owner.uid() {
        if let Err(e) = std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())) {
            eprintln!("warning: cannot give {} to the directory's owner: {e}", file.display());
        }
    }
}
