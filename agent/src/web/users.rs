//! Duty-desk accounts: a JSON file of names, roles and Argon2id password hashes, managed with
//! `edge-agent users add|list|remove` (or created once through the first-run set-up page). There is no
//! default account and no default password.

use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// What a signed-in person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees the feed, the snapshots and the audit log.
    Viewer,
    /// Also acknowledges alerts.
    Operator,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// Argon2id PHC string.
    pub hash: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct UsersFile {
    pub users: Vec<User>,
}

/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a users file: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("user names are 1-32 letters, digits, '.', '-' or '_'; {0:?} is not")]
    BadName(String),
    #[error("passwords need at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.chars().count()) && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl UsersFile {
    /// Reads the file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| UsersError::Parse { path: path.to_path_buf(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(UsersError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the file (owner-only permissions, temporary name then rename).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| UsersError::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.partial");
        let text = serde_json::to_string_pretty(self).map_err(|e| UsersError::Parse { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds the user, or sets a new password and role for an existing one.
    pub fn set(&mut self, name: &str, role: Role, password: &str) -> Result<(), UsersError> {
        if !valid_name(name) {
            return Err(UsersError::BadName(name.to_string()));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(UsersError::ShortPassword);
        }
        let mut salt_bytes = [0u8; 16];
        rand::rng().fill(&mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| UsersError::Hash(e.to_string()))?;
        let hash = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| UsersError::Hash(e.to_string()))?.to_string();
        self.users.retain(|u| u.name != name);
        self.users.push(User { name: name.to_string(), role, hash });
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<(), UsersError> {
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        if self.users.len() == before {
            return Err(UsersError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// The user, if the password is right. Takes the same time whether or not the name exists.
    pub fn check(&self, name: &str, password: &str) -> Option<&User> {
        // A fixed hash to verify against for unknown names, so timing does not reveal which names exist.
        const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$8ZiX6kHcU0qtaEdmYdYcqwMFqY6V1bJq6oBtK4Hq7dw";
        let user = self.users.iter().find(|u| u.name == name);
        let hash = user.map_or(DUMMY, |u| u.hash.as_str());
        let ok = PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok());
        user.filter(|_| ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_checked_and_replaced() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("users.json");
        let mut f = UsersFile::load(&path).expect("empty");
        assert!(f.users.is_empty());
        f.set("wang.li", Role::Operator, "correct horse").expect("add");
        assert!(matches!(f.set("x", Role::Viewer, "short"), Err(UsersError::ShortPassword)));
        assert!(matches!(f.set("bad name", Role::Viewer, "long enough"), Err(UsersError::BadName(_))));
        f.save(&path).expect("save");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("correct horse") && text.contains("$argon2id$"));
        let f = UsersFile::load(&path).expect("load");
        assert_eq!(f.check("wang.li", "correct horse").map(|u| u.role), Some(Role::Operator));
        assert!(f.check("wang.li", "wrong").is_none());
        assert!(f.check("nobody", "correct horse").is_none());
    }
}
