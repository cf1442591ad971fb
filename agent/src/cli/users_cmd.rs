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
    /// Remove an account (its open sessions end at once).
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
            let password = read_password(name)?;
            users.set(name, *role, password.trim_end_matches(['\r', '\n']))?;
            println!("{name} ({}) saved in {}", role.as_str(), file.display());
        }
        UsersAction::Remove { name } => {
            users.remove(name)?;
            println!("{name} removed from {}", file.display());
        }
    }
    users.save(file)?;
    Ok(ExitCode::SUCCESS)
}

/// The first line of standard input; on a terminal, asked for and read without echo (`stty -echo`).
fn read_password(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let stty = |arg: &str| std::process::Command::new("stty").arg(arg).stdin(std::process::Stdio::inherit()).status().is_ok_and(|s| s.success());
    let hidden = terminal && stty("-echo");
    if terminal {
        eprint!("password for {name}: ");
        let _ = std::io::stderr().flush();
    }
    let mut password = String::new();
    let read = stdin.lock().read_line(&mut password);
    if hidden {
        stty("echo");
        eprintln!();
    }
    read?;
    Ok(password)
}
