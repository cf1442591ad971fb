//! The state directory's disk: the free-space floor, what the agent gives up to stay above it, and the one
//! storage verdict every report shows (the retained status, `/healthz`, the duty desk, `stats`,
//! `/metrics`).
//!
//! Below `storage.min_free_mb` the agent deletes its own oldest local snapshots first, then the oldest days
//! of its local logs and the history index built from them (never today's), until it is a quarter of the
//! floor above it; if it still cannot get above the floor it refuses new snapshots — never events or
//! alerts, which are small and are what the checkpoint is for. Above the floor again, snapshots come back by
//! themselves. Separately, the outbox writer may be unable to commit at all (the disk is full to the last
//! byte, or failing): then events wait in memory ([`crate::outbox::writer`]) and the verdict says so.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::eventlog::EventLog;
use crate::history::History;
use crate::outbox::{Fault, WriterCounters};
use crate::snapshots::SnapshotStore;

/// Free bytes on the file system holding `dir` (what an unprivileged process may still write).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// How the state directory's disk is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageState {
    Ok,
    /// Below the floor after deleting what the agent may delete (new snapshots are refused), or too full
    /// for the outbox to commit.
    Full,
    /// The outbox cannot write for another reason (a failing disk).
    IoError,
}

impl StorageState {
    fn code(self) -> u8 {
        match self {
            StorageState::Ok => 0,
            StorageState::Full => 1,
            StorageState::IoError => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StorageState::Ok => "ok",
            StorageState::Full => "full",
            StorageState::IoError => "io_error",
        }
    }
}

/// What the storage verdict says, for the reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageReport {
    pub state: StorageState,
    /// Free bytes when last measured.
    pub free_bytes: Option<u64>,
    pub min_free_bytes: u64,
    /// Messages the outbox holds in memory because it cannot write them.
    pub held: u64,
    /// What is wrong, for people.
    pub problem: Option<String>,
}

/// Counters of what the floor made the agent do.
#[derive(Debug, Default)]
pub struct StorageCounters {
    /// New snapshots not kept (neither locally nor in the outbox) because the disk was below the floor.
    pub snapshots_refused_total: AtomicU64,
    /// Local snapshot files deleted to get above the floor, and their bytes.
    pub snapshots_deleted_total: AtomicU64,
    pub snapshot_bytes_deleted_total: AtomicU64,
    /// Days of local logs (and their history index entries) deleted to get above the floor.
    pub log_days_deleted_total: AtomicU64,
}

/// The state directory's disk, shared by everything that reports on it.
#[derive(Debug)]
pub struct Storage {
    dir: PathBuf,
    min_free_bytes: u64,
    /// `u64::MAX` until measured.
    free_bytes: AtomicU64,
    below_floor: AtomicBool,
    /// The state at the last [`Storage::check`] (see [`StorageState::code`]).
    checked: std::sync::atomic::AtomicU8,
    writer: Arc<WriterCounters>,
    pub counters: StorageCounters,
}

/// What the agent may delete to stay above the floor.
pub struct Reclaimable {
    pub snapshots: SnapshotStore,
    /// Kept clips: the first to go (the largest files, and each event keeps its snapshot).
    pub clips: Option<crate::clips::ClipsHandle>,
    /// The local logs whose oldest days may go (events, alerts, counts), with the history index built
    /// from the first.
    pub logs: Vec<Arc<EventLog>>,
    pub history: Option<Arc<History>>,
}

impl Storage {
    pub fn new(dir: &Path, min_free_bytes: u64, writer: Arc<WriterCounters>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            min_free_bytes,
            free_bytes: AtomicU64::new(u64::MAX),
            below_floor: AtomicBool::new(false),
            checked: std::sync::atomic::AtomicU8::new(StorageState::Ok.code()),
            writer,
            counters: StorageCounters::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> StorageState {
        match self.writer.failure().map(|f| f.fault) {
            Some(Fault::NoSpace) => StorageState::Full,
            Some(_) => StorageState::IoError,
            None if self.below_floor.load(Ordering::Relaxed) => StorageState::Full,
            None => StorageState::Ok,
        }
    }

    /// Whether new snapshots are refused now (the disk is full).
    pub fn refuses_snapshots(&self) -> bool {
        self.state() == StorageState::Full
    }

    /// Counts a snapshot refused.
    pub fn refused_snapshot(&self) {
        self.counters.snapshots_refused_total.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self) -> StorageReport {
        let free = self.free_bytes.load(Ordering::Relaxed);
        let free_bytes = (free != u64::MAX).then_some(free);
        let held = self.writer.held_messages.load(Ordering::Relaxed);
        let state = self.state();
        let mb = |b: u64| b as f64 / (1 << 20) as f64;
        let problem = match (state, self.writer.failure()) {
            (StorageState::Ok, _) => None,
            (_, Some(f)) => Some(format!(
                "storage {}: the outbox cannot write to {} ({}): {held} message(s) held in memory, retrying{}",
                state.as_str(),
                self.dir.display(),
                f.reason,
                if state == StorageState::Full { "; new snapshots are not kept" } else { "" }
            )),
            (_, None) => Some(format!(
                "storage full: {:.1} MB free in {}, below the floor of {:.0} MB (storage.min_free_mb) after deleting the oldest local snapshots and logs: new snapshots are not kept, events and alerts are",
                mb(free_bytes.unwrap_or(0)),
                self.dir.display(),
                mb(self.min_free_bytes)
            )),
        };
        StorageReport { state, free_bytes, min_free_bytes: self.min_free_bytes, held, problem }
    }

    /// Measures the free space and, below the floor, deletes what may go; returns whether the state changed.
    /// Runs on a blocking thread every few seconds.
    pub fn check(&self, reclaimable: &Reclaimable, now: DateTime<Utc>) -> bool {
        match free_bytes(&self.dir) {
            Ok(mut free) => {
                if free < self.min_free_bytes {
                    free = self.reclaim(reclaimable, free, now);
                }
                self.free_bytes.store(free, Ordering::Relaxed);
                self.below_floor.store(free < self.min_free_bytes, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(dir = %self.dir.display(), error = %e, "cannot measure the free space"),
        }
        let free = self.free_bytes.load(Ordering::Relaxed);
        let after = self.state();
        // A change of state, or of whether the outbox can write (the status then says something new).
        let code = after.code() | (u8::from(self.writer.failure().is_some()) << 4);
        let before = self.checked.swap(code, Ordering::Relaxed);
        if code != before {
            match after {
                StorageState::Ok => tracing::info!(free_mb = free >> 20, dir = %self.dir.display(), "storage ok again: snapshots are kept again"),
                _ => tracing::error!(problem = self.report().problem.unwrap_or_default(), "storage problem"),
            }
        }
        code != before
    }

    /// Deletes the oldest clips, then the oldest local snapshots, then the oldest log days, until a quarter of the floor above it
    /// (or nothing more may go); returns the free bytes then.
    fn reclaim(&self, r: &Reclaimable, mut free: u64, now: DateTime<Utc>) -> u64 {
        let target = self.min_free_bytes + (self.min_free_bytes / 4).max(1 << 20);
        let measure = |fallback: u64| free_bytes(&self.dir).unwrap_or(fallback);
        if let Some(clips) = &r.clips {
            let (files, bytes) = clips.store().delete_oldest(target.saturating_sub(free));
            if files > 0 {
                tracing::warn!(files, mb = bytes >> 20, free_mb = free >> 20, floor_mb = self.min_free_bytes >> 20, "storage below its floor: deleted the oldest clips");
                free = measure(free + bytes);
            }
        }
        if free >= target {
            return free;
        }
        match r.snapshots.delete_oldest(target.saturating_sub(free)) {
            Ok((0, _)) => {}
            Ok((files, bytes)) => {
                self.counters.snapshots_deleted_total.fetch_add(files as u64, Ordering::Relaxed);
                self.counters.snapshot_bytes_deleted_total.fetch_add(bytes, Ordering::Relaxed);
                tracing::warn!(files, mb = bytes >> 20, free_mb = free >> 20, floor_mb = self.min_free_bytes >> 20, "storage below its floor: deleted the oldest local snapshots");
                free = measure(free + bytes);
            }
            Err(e) => tracing::warn!(error = %e, "storage below its floor: cannot delete old snapshots"),
        }
        let today = now.date_naive();
        while free < target {
            let Some(day) = r.logs.iter().filter_map(|l| l.days().into_iter().find(|d| *d < today)).min() else { break };
            for log in &r.logs {
                if let Err(e) = log.delete_day(day) {
                    tracing::warn!(dir = %log.dir().display(), %day, error = %e, "storage below its floor: cannot delete an old log day");
                }
            }
            if let Some(history) = &r.history {
                let next = (day + chrono::Days::new(1)).and_time(chrono::NaiveTime::MIN).and_utc();
                if let Err(e) = history.expire(next) {
                    tracing::warn!(error = %e, "storage below its floor: cannot remove old passings from the history index");
                }
            }
            self.counters.log_days_deleted_total.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%day, free_mb = free >> 20, floor_mb = self.min_free_bytes >> 20, "storage below its floor: deleted the oldest day of the local logs and history");
            free = measure(free);
        }
        free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_on_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn below_the_floor_the_oldest_snapshots_go_first_then_old_log_days_and_then_snapshots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = SnapshotStore::new(dir.path(), 30);
        let events = Arc::new(EventLog::new(dir.path(), 30));
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        for (days_ago, id) in [(3u64, "a"), (2, "b"), (0, "c")] {
            let at = now - chrono::Days::new(days_ago);
            snapshots.save(id, at, &vec![0u8; 1 << 20]).unwrap();
            events.append(at, b"{}").unwrap();
        }
        let reclaimable = Reclaimable { snapshots: snapshots.clone(), clips: None, logs: vec![events.clone()], history: None };
        // A floor above what this disk can ever have free: everything that may go goes, then it is full.
        let writer = Arc::new(WriterCounters::default());
        let storage = Storage::new(dir.path(), u64::MAX / 4, writer.clone());
        assert_eq!(storage.state(), StorageState::Ok);
        assert!(storage.check(&reclaimable, now), "the state changed");
        assert_eq!(storage.state(), StorageState::Full);
        assert!(storage.refuses_snapshots());
        assert!(snapshots.find("a").is_none() && snapshots.find("b").is_none() && snapshots.find("c").is_none());
        assert_eq!(storage.counters.snapshots_deleted_total.load(Ordering::Relaxed), 3);
        assert_eq!(events.days(), [now.date_naive()], "today's log stays");
        assert_eq!(storage.counters.log_days_deleted_total.load(Ordering::Relaxed), 2);
        let report = storage.report();
        assert!(report.problem.as_deref().is_some_and(|p| p.contains("below the floor") && p.contains("new snapshots are not kept")), "{report:?}");

        // A floor it is above: nothing is deleted and snapshots are kept again.
        snapshots.save("d", now, b"jpeg").unwrap();
        let storage_ok = Storage::new(dir.path(), 1, writer);
        storage_ok.check(&reclaimable, now);
        assert_eq!(storage_ok.state(), StorageState::Ok);
        assert!(snapshots.find("d").is_some());
        assert_eq!(storage_ok.report().problem, None);
    }
}
