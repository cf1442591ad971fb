//! Local copies of event snapshots for the duty desk, kept for a limited number of days.
//!
//! Layout: `{state_dir}/snapshots/{YYYY-MM-DD}/{event_id}.jpg` (UTC day of the snapshot). Retention removes
//! whole day folders older than the limit, so a sweep is cheap however many pictures there are.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

/// Why a snapshot could not be stored.
#[derive(Debug, thiserror::Error)]
#[error("snapshot store {path}: {source}")]
pub struct StoreError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    retention_days: u32,
}

impl SnapshotStore {
    pub fn new(state_dir: &Path, retention_days: u32) -> Self {
        Self { dir: state_dir.join("snapshots"), retention_days }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Where the snapshot of `event_id` taken at `at` lives.
    pub fn path(&self, event_id: &str, at: DateTime<Utc>) -> PathBuf {
        self.dir.join(at.format("%Y-%m-%d").to_string()).join(format!("{event_id}.jpg"))
    }

    /// Writes a snapshot (to a temporary name, then renamed).
    pub fn save(&self, event_id: &str, at: DateTime<Utc>, jpeg: &[u8]) -> Result<PathBuf, StoreError> {
        let path = self.path(event_id, at);
        let err = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StoreError { path: p, source }
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err(parent))?;
        }
        let tmp = path.with_extension("jpg.partial");
        std::fs::write(&tmp, jpeg).map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
        Ok(path)
    }

    /// Finds a stored snapshot by event id (any day).
    pub fn find(&self, event_id: &str) -> Option<PathBuf> {
        let name = format!("{event_id}.jpg");
        std::fs::read_dir(&self.dir).ok()?.flatten().map(|d| d.path().join(&name)).find(|p| p.is_file())
    }

    /// Deletes the oldest snapshots (by day, then by name: event ids are time-ordered UUIDv7s) until at least
    /// `bytes` are freed or none is left; returns how many files and bytes.
    pub fn delete_oldest(&self, bytes: u64) -> Result<(usize, u64), StoreError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError { path, source }
        };
        let (mut files, mut freed) = (0, 0u64);
        for (_, day) in crate::files::day_folders(&self.dir) {
            let mut pictures: Vec<PathBuf> = std::fs::read_dir(&day).map_err(err(&day))?.flatten().map(|e| e.path()).collect();
            pictures.sort();
            for picture in pictures {
                if freed >= bytes {
                    return Ok((files, freed));
                }
                let len = std::fs::metadata(&picture).map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(&picture).map_err(err(&picture))?;
                files += 1;
                freed += len;
            }
            // An emptied day goes too (it may still be written to: then it is made again).
            let _ = std::fs::remove_dir(&day);
        }
        Ok((files, freed))
    }

    /// Deletes day folders older than the retention period (relative to `now`); returns how many.
    pub fn sweep(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(0) };
        let oldest_kept = now.date_naive() - chrono::Days::new(self.retention_days.saturating_sub(1) as u64);
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(day) = NaiveDate::parse_from_str(&name, "%Y-%m-%d") else { continue };
            if day < oldest_kept {
                std::fs::remove_dir_all(entry.path()).map_err(|source| StoreError { path: entry.path(), source })?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_removes_only_expired_days() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), 7);
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap().with_timezone(&Utc);
        for days_ago in [0u64, 6, 7, 30] {
            store.save(&format!("e{days_ago}"), now - chrono::Days::new(days_ago), b"jpeg").unwrap();
        }
        assert_eq!(store.sweep(now).unwrap(), 2);
        assert!(store.find("e0").is_some() && store.find("e6").is_some());
        assert!(store.find("e7").is_none() && store.find("e30").is_none());
    }
}
