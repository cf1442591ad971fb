//! Signed-in sessions: random 256-bit tokens in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` under
//! TLS), ended by sign-out, expiry, or a change to the account — removed, given another role or another
//! password — including the live event stream, which ends at once. Account changes made with `edge-agent
//! users` are noticed by watching the users file, and are written to the audit log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::audit::{AuditAction, AuditLog, AuditRecord};
use super::users::{User, UsersFile};

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub role: super::users::Role,
    /// The password hash it signed in with: a new password ends the session.
    pub hash: String,
    pub expires: Instant,
    /// Cancelled when the session ends early (sign-out, account change); open streams watch it.
    pub ended: CancellationToken,
}

/// The sessions of one server, by token.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<Mutex<HashMap<String, Session>>>);

/// A random token of `bytes` bytes, hex.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill(&mut b[..]);
    hex::encode(b)
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `user`; returns its token.
    pub fn start(&self, user: &User, ttl: Duration) -> String {
        let token = random_token(32);
        let session = Session { user: user.name.clone(), role: user.role, hash: user.hash.clone(), expires: Instant::now() + ttl, ended: CancellationToken::new() };
        self.map().insert(token.clone(), session);
        token
    }

    /// The live session for `token`.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.map();
        let now = Instant::now();
        map.retain(|_, s| {
            let live = s.expires > now;
            if !live {
                s.ended.cancel();
            }
            live
        });
        map.get(token).cloned()
    }

    /// Ends the session for `token`.
    pub fn end(&self, token: &str) -> Option<Session> {
        let s = self.map().remove(token)?;
        s.ended.cancel();
        Some(s)
    }

    /// Ends every session whose account no longer exists as it signed in (removed, other role, other
    /// password); returns how many.
    pub fn revoke_changed(&self, users: &UsersFile) -> usize {
        let mut map = self.map();
        let before = map.len();
        map.retain(|_, s| {
            let same = users.users.iter().any(|u| u.name == s.user && u.role == s.role && u.hash == s.hash);
            if !same {
                s.ended.cancel();
            }
            same
        });
        before - map.len()
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What changed between two versions of the users file, as audit records.
pub fn account_changes(before: &UsersFile, after: &UsersFile, at: chrono::DateTime<chrono::Utc>) -> Vec<AuditRecord> {
    let mut changes = Vec::new();
    let record = |action, user: &User| {
        let mut r = AuditRecord::new(action, at);
        r.by = Some(user.name.clone());
        r.role = Some(user.role.as_str().to_string());
        r
    };
    for u in &after.users {
        match before.users.iter().find(|b| b.name == u.name) {
            None => changes.push(record(AuditAction::UserAdded, u)),
            Some(b) if b.role != u.role => changes.push(record(AuditAction::RoleChanged, u)),
            Some(b) if b.hash != u.hash => changes.push(record(AuditAction::PasswordChanged, u)),
            Some(_) => {}
        }
    }
    for b in before.users.iter().filter(|b| !after.users.iter().any(|u| u.name == b.name)) {
        changes.push(record(AuditAction::UserRemoved, b));
    }
    changes
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    std::fs::symlink_metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}

/// Watches the users file (every second): on a change, ends the sessions of changed accounts and audits
/// the changes.
pub async fn watch_users(path: PathBuf, sessions: Sessions, audit: Arc<AuditLog>, cancel: CancellationToken) {
    let load = |p: &Path| UsersFile::load(p).ok();
    let mut seen = stamp(&path);
    let mut known = load(&path).unwrap_or_default();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        seen = now;
        let Some(current) = load(&path) else { continue };
        let ended = sessions.revoke_changed(&current);
        let changes = account_changes(&known, &current, chrono::Utc::now());
        if ended > 0 || !changes.is_empty() {
            tracing::info!(sessions_ended = ended, changes = changes.len(), "duty desk accounts changed");
        }
        let audit = audit.clone();
        tokio::task::spawn_blocking(move || {
            for c in changes {
                if let Err(e) = audit.append(c) {
                    tracing::error!(error = %e, "cannot write the audit log");
                }
            }
        });
        known = current;
    }
}
