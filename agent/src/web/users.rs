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
    /// Also acknowledges alerts, mutes notifications and watches the live view.
    Operator,
    /// Also sets the checkpoint up: draws lines, zones and motion masks on the picture, adds and fixes
    /// cameras. Every change is in the audit log.
    Admin,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may act on alerts (operators and admins).
    pub fn operates(self) -> bool {
        matches!(self, Role::Operator | Role::Admin)
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
    #[error("{0}: is a symbolic link; refusing to follow it (the users file must be a plain file)")]
    Link(PathBuf),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Letters (Chinese names too) and digits, `.`, `-` and `_`: nothing that could forge a log line or
/// break out of HTML.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.chars().count()) && name.chars().all(|c| (c.is_alphanumeric() && !c.is_control()) || matches!(c, '.' | '-' | '_'))
}

impl UsersFile {
    /// Reads the file; a missing file is an empty list. A symbolic link is refused, never followed: `users`
    /// runs as root on a file in a directory the service user owns.
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let opened = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path);
        let mut text = String::new();
        match opened.and_then(|mut f| f.read_to_string(&mut text)) {
            Ok(_) => serde_json::from_str(&text).map_err(|e| UsersError::Parse { path: path.to_path_buf(), reason: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(UsersError::Link(path.to_path_buf())),
            Err(source) => Err(UsersError::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Writes the file: a fresh temporary file in the same directory (created exclusively, owner-only),
    /// given to the directory's owner through the open descriptor, fsynced, then renamed over the file (a
    /// link planted in its place is refused). Nothing is ever written through a link.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let io = |source| UsersError::Io { path: path.to_path_buf(), source };
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(UsersError::Link(path.to_path_buf()));
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| UsersError::Parse { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut tmp = tempfile::Builder::new().prefix(".users.").suffix(".partial").tempfile_in(dir).map_err(io)?;
        let owner = std::fs::metadata(dir).map_err(io)?;
        let file = tmp.as_file();
        if file.metadata().map_err(io)?.uid() != owner.uid() {
            std::os::unix::fs::fchown(file, Some(owner.uid()), Some(owner.gid())).map_err(io)?;
        }
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
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
