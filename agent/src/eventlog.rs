//! The local event record: every event message as one JSON line in `{state_dir}/events/YYYY-MM-DD.jsonl`
//! (UTC days), kept for a limited number of days. With no broker configured this is how a checkpoint runs
//! standalone; with one, it is the duty desk's local history.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

pub struct EventLog {
    dir: PathBuf,
    retention_days: u32,
    open: Mutex<Option<(NaiveDate, File)>>,
}

impl EventLog {
    pub fn new(state_dir: &Path, retention_days: u32) -> Self {
        Self::named(state_dir, "events", retention_days)
    }

    /// A log of the same form in another folder of the state directory (`alerts`, `audit`).
    pub fn named(state_dir: &Path, folder: &str, retention_days: u32) -> Self {
        Self { dir: state_dir.join(folder), retention_days, open: Mutex::new(None) }
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// The lines of the last `days` days' files, oldest first (for the duty desk's history after a restart).
    pub fn recent_lines(&self, now: DateTime<Utc>, days: u32) -> Vec<String> {
        let mut lines = Vec::new();
        for back in (0..days).rev() {
            let day = now.date_naive() - chrono::Days::new(u64::from(back));
            if let Ok(text) = std::fs::read_to_string(self.file_for(day)) {
                lines.extend(text.lines().filter(|l| !l.trim().is_empty()).map(str::to_string));
            }
        }
        lines
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `day`'s events.
    pub fn file_for(&self, day: NaiveDate) -> PathBuf {
        self.dir.join(format!("{}.jsonl", day.format("%Y-%m-%d")))
    }

    /// Appends one line (the file is flushed; the outbox is what guarantees delivery, this is the record).
    pub fn append(&self, at: DateTime<Utc>, line: &[u8]) -> std::io::Result<()> {
        self.write(at, line, false)
    }

    /// Appends one line and waits until it is on disk (the audit log).
    pub fn append_synced(&self, at: DateTime<Utc>, line: &[u8]) -> std::io::Result<()> {
        self.write(at, line, true)
    }

    fn write(&self, at: DateTime<Utc>, line: &[u8], sync: bool) -> std::io::Result<()> {
        let day = at.date_naive();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.as_ref().is_none_or(|(d, _)| *d != day) {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new().create(true).append(true).open(self.file_for(day))?;
            *open = Some((day, file));
        }
        if let Some((_, file)) = open.as_mut() {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line);
            buf.push(b'\n');
            file.write_all(&buf)?;
            if sync {
                file.sync_data()?;
            }
        }
        Ok(())
    }

    /// The days that have a file, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut days: Vec<NaiveDate> =
            entries.flatten().filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".jsonl").and_then(|stem| NaiveDate::parse_from_str(stem, "%Y-%m-%d").ok())).collect();
        days.sort();
        days
    }

    /// Deletes one day's file (the free-space floor); false when there was none.
    pub fn delete_day(&self, day: NaiveDate) -> std::io::Result<bool> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.as_ref().is_some_and(|(d, _)| *d == day) {
            *open = None;
        }
        match std::fs::remove_file(self.file_for(day)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes day files older than the retention period; returns how many.
    pub fn sweep(&self, now: DateTime<Utc>) -> std::io::Result<usize> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Ok(0) };
        let oldest_kept = oldest_kept_day(now, self.retention_days);
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".jsonl") else { continue };
            if NaiveDate::parse_from_str(stem, "%Y-%m-%d").is_ok_and(|d| d < oldest_kept) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The first (UTC) day a retention of `days` keeps at `now`: today counts as one.
pub fn oldest_kept_day(now: DateTime<Utc>, days: u32) -> NaiveDate {
    now.date_naive() - chrono::Days::new(u64::from(days.saturating_sub(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_to_their_day_and_old_days_expire() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path(), 2);
        let now: DateTime<Utc> = "2026-11-28T12:00:00Z".parse().unwrap();
        log.append(now - chrono::Days::new(3), b"{\"a\":1}").unwrap();
        log.append(now, b"{\"b\":2}").unwrap();
        log.append(now, b"{\"c\":3}").unwrap();
        assert_eq!(std::fs::read_to_string(log.file_for(now.date_naive())).unwrap(), "{\"b\":2}\n{\"c\":3}\n");
        assert_eq!(log.sweep(now).unwrap(), 1);
        assert!(!log.file_for((now - chrono::Days::new(3)).date_naive()).exists());
    }
}
