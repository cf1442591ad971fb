//! Writing the agent's own state files.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old file or the new one, never half of
/// one: a fresh temporary file beside it (created exclusively, never through a link), fsynced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".").suffix(".partial").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The `YYYY-MM-DD` folders in `dir` (snapshots, clips), oldest first; nothing when `dir` is missing.
pub fn day_folders(dir: &Path) -> Vec<(chrono::NaiveDate, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut days: Vec<(chrono::NaiveDate, PathBuf)> =
        entries.flatten().filter_map(|e| chrono::NaiveDate::parse_from_str(&e.file_name().to_string_lossy(), "%Y-%m-%d").ok().map(|d| (d, e.path()))).collect();
    days.sort();
    days
}
