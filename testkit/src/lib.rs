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
