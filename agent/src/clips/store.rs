//! Kept clips: `{state_dir}/clips/{YYYY-MM-DD}/{id}.mp4` with the clip's record beside it (`{id}.json`,
//! the `clips` payload). Deleted after `clips.retention_days`, and oldest first while all of them take
//! more than `clips.max_mb` or the state disk is below its floor.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};

use crate::payload::Clip;

/// What retention and the floor deleted, since the agent started.
#[derive(Debug, Default)]
pub struct StoreCounters {
    pub deleted_total: AtomicU64,
    pub deleted_bytes_total: AtomicU64,
}

#[derive(Debug)]
pub struct ClipStore {
    dir: PathBuf,
    retention_days: u32,
    max_bytes: u64,
    pub counters: StoreCounters,
}

impl ClipStore {
    pub fn new(state_dir: &Path, retention_days: u32, max_bytes: u64) -> Self {
        Self { dir: state_dir.join("clips"), retention_days, max_bytes, counters: StoreCounters::default() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a clip being cut is written before it is complete.
    pub fn partial(&self, id: &str, at: DateTime<Utc>) -> std::io::Result<PathBuf> {
        let day = self.dir.join(at.format("%Y-%m-%d").to_string());
        std::fs::create_dir_all(&day)?;
        Ok(day.join(format!("{id}.mp4.partial")))
    }

    /// Makes a cut clip complete: its record is written, then the file takes its name.
    pub fn keep(&self, partial: &Path, clip: &Clip) -> std::io::Result<PathBuf> {
        let mp4 = partial.with_extension("");
        let record = mp4.with_extension("json");
        crate::files::write_atomic(&record, &serde_json::to_vec(clip).map_err(std::io::Error::other)?)?;
        std::fs::rename(partial, &mp4)?;
        Ok(mp4)
    }

    fn days(&self) -> Vec<(NaiveDate, PathBuf)> {
        crate::files::day_folders(&self.dir)
    }

    /// A complete clip: its file and record.
    pub fn find(&self, id: &str) -> Option<(PathBuf, Clip)> {
        if id.is_empty() || id.contains(['/', '.', '\\']) {
            return None;
        }
        self.days().into_iter().rev().find_map(|(_, day)| {
            let mp4 = day.join(format!("{id}.mp4"));
            let clip = std::fs::read(mp4.with_extension("json")).ok().and_then(|b| serde_json::from_slice(&b).ok())?;
            mp4.is_file().then_some((mp4, clip))
        })
    }

    /// Every complete clip's file, oldest first (by day, then by id: ids are time-ordered UUIDv7s).
    fn files(&self) -> Vec<(NaiveDate, PathBuf, u64)> {
        let mut out = Vec::new();
        for (date, day) in self.days() {
            let Ok(entries) = std::fs::read_dir(&day) else { continue };
            let mut files: Vec<(PathBuf, u64)> =
                entries.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "mp4")).map(|e| (e.path(), e.metadata().map(|m| m.len()).unwrap_or(0))).collect();
            files.sort();
            out.extend(files.into_iter().map(|(p, b)| (date, p, b)));
        }
        out
    }

    /// Bytes all complete clips take, and how many there are.
    pub fn usage(&self) -> (u64, usize) {
        let files = self.files();
        (files.iter().map(|f| f.2).sum(), files.len())
    }

    fn delete(&self, mp4: &Path, bytes: u64) {
        let _ = std::fs::remove_file(mp4.with_extension("json"));
        match std::fs::remove_file(mp4) {
            Ok(()) => {
                self.counters.deleted_total.fetch_add(1, Ordering::Relaxed);
                self.counters.deleted_bytes_total.fetch_add(bytes, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(path = %mp4.display(), error = %e, "cannot delete an old clip"),
        }
    }

    /// Deletes clips older than the retention and, oldest first, beyond the bytes bound; also empty day
    /// folders and leftovers of cuts that never finished. Returns how many clips went.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let before = self.counters.deleted_total.load(Ordering::Relaxed);
        let oldest_kept = (now - chrono::Days::new(u64::from(self.retention_days))).date_naive();
        let files = self.files();
        let mut total: u64 = files.iter().map(|f| f.2).sum();
        for (date, path, bytes) in files {
            if date < oldest_kept || total > self.max_bytes {
                self.delete(&path, bytes);
                total = total.saturating_sub(bytes);
            }
        }
        for (date, day) in self.days() {
            if let Ok(entries) = std::fs::read_dir(&day) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stale = e.metadata().and_then(|m| m.modified()).ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age.as_secs() > 600);
                    if (name.ends_with(".partial") || name.ends_with(".moov")) && stale {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            if date < oldest_kept {
                let _ = std::fs::remove_dir(&day);
            }
        }
        (self.counters.deleted_total.load(Ordering::Relaxed) - before) as usize
    }

    /// Deletes the oldest clips until `bytes` are freed (the state disk is below its floor); returns how
    /// many clips and bytes.
    pub fn delete_oldest(&self, bytes: u64) -> (usize, u64) {
        let (mut n, mut freed) = (0, 0);
        for (_, path, size) in self.files() {
            if freed >= bytes {
                break;
            }
            self.delete(&path, size);
            n += 1;
            freed += size;
        }
        (n, freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clip(id: &str) -> Clip {
        Clip {
            schema: crate::payload::CLIP_SCHEMA.into(),
            id: id.into(),
            site: "a/b/c/d/e".into(),
            grid: Default::default(),
            camera: "gate".into(),
            event_id: Some(id.into()),
            alert_ids: vec![],
            started_at: String::new(),
            ended_at: String::new(),
            duration_s: 1.0,
            bytes: 1000,
            sha256: String::new(),
            content_type: "video/mp4".into(),
            codec: "h264".into(),
            pre_capture_s: 5,
            post_capture_s: 5,
            ts: String::new(),
        }
    }

    #[test]
    fn clips_are_kept_for_their_days_and_within_their_bytes_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = ClipStore::new(dir.path(), 3, 2500);
        let now: DateTime<Utc> = "2026-12-03T12:00:00Z".parse().unwrap();
        for (days_ago, id) in [(5u64, "a"), (2, "b"), (1, "c"), (0, "d"), (0, "e")] {
            let partial = store.partial(id, now - chrono::Days::new(days_ago)).unwrap();
            std::fs::write(&partial, vec![0u8; 1000]).unwrap();
            store.keep(&partial, &clip(id)).unwrap();
        }
        assert_eq!(store.find("d").map(|(_, c)| c.id), Some("d".into()));
        assert!(store.find("../d").is_none());
        assert_eq!(store.sweep(now), 3, "a is past its days; then b and c go for the bytes");
        assert!(store.find("a").is_none() && store.find("b").is_none() && store.find("c").is_none());
        assert_eq!(store.usage(), (2000, 2));
        assert_eq!(store.delete_oldest(1), (1, 1000));
        assert!(store.find("d").is_none() && store.find("e").is_some());
        assert_eq!(store.counters.deleted_total.load(Ordering::Relaxed), 4);
    }
}
