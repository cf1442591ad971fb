use std::path::PathBuf;

/// Why a model could not be loaded or run. Every variant names the file or the runtime at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("ONNX Runtime library not found; set models.onnxruntime_library or ORT_DYLIB_PATH (tried: {})", display_paths(.tried))]
    RuntimeMissing { tried: Vec<PathBuf> },
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },
    #[error("model file {path} not found")]
    NotFound { path: PathBuf },
    #[error("model file {path} cannot be loaded by ONNX Runtime (corrupt, truncated or not an ONNX model?): {reason}")]
    Load { path: PathBuf, reason: String },
    #[error("model file {path} does not match the {model} tensor contract: {mismatch}")]
    Contract { path: PathBuf, model: &'static str, mismatch: String },
    #[error("execution provider {provider} is not usable for {path}: {reason}")]
    Provider { path: PathBuf, provider: &'static str, reason: String },
    #[error("inference with {path} failed: {reason}")]
    Inference { path: PathBuf, reason: String },
    #[error("input image for {model} rejected: {source}")]
    Image { model: &'static str, source: crate::image::ImageError },
}

fn display_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nothing".into();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
