//! Which files `analyze` reads: images and videos named on the command line, or found in directories.

use std::path::{Path, PathBuf};

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mkv", "mov", "avi", "ts", "m2ts", "h264", "264", "h265", "265", "hevc", "webm", "flv", "mjpeg", "mjpg", "ogv"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image,
    Video,
}

fn kind_of(path: &Path) -> Option<Kind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Some(Kind::Image)
    } else if VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        Some(Kind::Video)
    } else {
        None
    }
}

/// Expands directories (recursively, sorted); files named explicitly are kept whatever their extension.
pub fn expand(paths: &[PathBuf], failures: &mut Vec<String>) -> Vec<(PathBuf, Kind)> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, failures);
            found.sort();
            out.extend(found.into_iter().filter_map(|p| kind_of(&p).map(|k| (p, k))));
        } else if path.exists() {
            // Unknown extensions are tried as video: GStreamer detects the container from the content.
            out.push((path.clone(), kind_of(path).unwrap_or(Kind::Video)));
        } else {
            failures.push(format!("{}: no such file or directory", path.display()));
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, failures: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            failures.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out, failures);
        } else {
            out.push(path);
        }
    }
}
