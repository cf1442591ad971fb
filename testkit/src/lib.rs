//! Support for tests and benchmarks. Everything here drives real components: the shared models and images in
//! `../shared`, a real Mosquitto process, clips encoded by real GStreamer.
//!
//! Test support fails loudly: a missing broker binary or test image panics with a message saying what to
//! install, which is what a test wants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "media")]
pub mod clips;
#[cfg(feature = "gat1400")]
pub mod gat1400;
#[cfg(feature = "rtsp")]
pub mod rtsp;
#[cfg(feature = "schemas")]
pub mod schemas;
#[cfg(feature = "text")]
pub mod text;
#[cfg(feature = "broker")]
pub mod tls;

pub mod synthetic;

use std::path::PathBuf;

/// The workspace root (the folder with the top-level `Cargo.toml`).
pub fn workspace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared` beside the checkout, or `$EDGE_SHARED_DIR`.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("EDGE_SHARED_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_dir().join("../shared"),
    }
}

/// A model file from `../shared/models`.
pub fn model(name: &str) -> PathBuf {
    let path = shared_dir().join("models").join(name);
    assert!(path.is_file(), "test model {} is missing: tests need ../shared/models beside the checkout", path.display());
    path
}

/// A file from `../shared/data`.
pub fn data(relative: &str) -> PathBuf {
    let path = shared_dir().join("data").join(relative);
    assert!(path.exists(), "test data {} is missing: tests need ../shared/data beside the checkout", path.display());
    path
}

/// The ONNX Runtime library for tests: `$ORT_DYLIB_PATH`, else the one `make` unpacks into `.deps`.
pub fn ort_library() -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let path = workspace_dir().join(".deps/onnxruntime/libonnxruntime.so");
            assert!(path.is_file(), "ONNX Runtime not found at {}: run `make deps` (or `make test`) first", path.display());
            path
        }
    }
}

/// User plus system CPU time of a process (all its threads), from `/proc/PID/stat` (clock ticks of 1/100 s
/// on Linux).
pub fn cpu_time(pid: u32) -> std::time::Duration {
    let [user, system, ..] = stat_times(&pid.to_string());
    user + system
}

/// User plus system CPU time of this process's children that have been waited for (`cutime` + `cstime`).
pub fn children_cpu_time() -> std::time::Duration {
    let [.., user, system] = stat_times("self");
    user + system
}

/// utime, stime, cutime, cstime of `/proc/{pid}/stat`.
fn stat_times(pid: &str) -> [std::time::Duration; 4] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| std::time::Duration::from_millis(fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0) * 10);
    [ticks(11), ticks(12), ticks(13), ticks(14)]
}
