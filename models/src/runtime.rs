//! ONNX Runtime, loaded at run time (`ort` with `load-dynamic`), and sessions checked against their tensor
//! contract before anything runs on them.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::ModelError;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }
}

/// How to build a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOptions {
    pub provider: Provider,
    /// Fail instead of falling back to the CPU when the provider cannot be used.
    pub require_provider: bool,
}

/// Candidates for `libonnxruntime.so` when neither the config nor `ORT_DYLIB_PATH` names one: where the
/// Debian package installs it, then next to the executable.
fn default_library_candidates() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/usr/lib/edge-agent/libonnxruntime.so")];
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        out.push(dir.join("libonnxruntime.so"));
        out.push(dir.join("../lib/edge-agent/libonnxruntime.so"));
    }
    out
}

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());
static LOADED_FROM: OnceLock<PathBuf> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns its environment. `configured` (from the config file)
/// wins over `ORT_DYLIB_PATH`, which wins over the packaged library. Later calls return the first
/// environment whatever they pass.
///
/// All sessions share one global thread pool of `intra_threads` threads. With a pool per session, every
/// model's threads busy-wait after each run and steal the cores from the next model: on two cores the plate
/// chain took 83 ms a frame that way and 41 ms with one shared pool. The shared pool keeps ONNX Runtime's
/// short spin before its threads sleep; without it each operator waits for threads to wake and the models
/// ran 40–60 % slower.
pub fn environment(configured: Option<&Path>, intra_threads: usize) -> Result<&'static Environment, ModelError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let candidates: Vec<PathBuf> = match (configured, std::env::var_os("ORT_DYLIB_PATH")) {
        (Some(p), _) => vec![p.to_path_buf()],
        (None, Some(p)) if !p.is_empty() => vec![PathBuf::from(p)],
        _ => default_library_candidates(),
    };
    let path = candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| ModelError::RuntimeMissing { tried: candidates.clone() })?;
    let builder = ort::init_from(&path).map_err(|e| ModelError::RuntimeLoad { path: path.clone(), reason: e.to_string() })?;
    let load_err = |e: ort::Error| ModelError::RuntimeLoad { path: path.clone(), reason: e.to_string() };
    let pool = ort::environment::GlobalThreadPoolOptions::default()
        .with_intra_threads(intra_threads.max(1))
        .and_then(|p| p.with_inter_threads(1))
        .and_then(|p| p.with_spin_control(true))
        .map_err(load_err)?;
    let env = builder.with_name("edge-agent").with_telemetry(false).with_global_thread_pool(pool).build().map_err(load_err)?;
    let _ = LOADED_FROM.set(path);
    Ok(ENVIRONMENT.get_or_init(|| env))
}

/// The library the environment was loaded from, once loaded.
pub fn library_path() -> Option<&'static Path> {
    LOADED_FROM.get().map(PathBuf::as_path)
}

/// A session plus what it was built from, so errors can name the file.
pub struct LoadedSession {
    pub session: Session,
    pub path: PathBuf,
    /// The provider that actually runs it (CPU after a fallback).
    pub provider: Provider,
}

/// Builds a session for `path` with the given options. A missing file, a file ONNX Runtime rejects and an
/// unusable provider each give their own error.
pub fn load_session(env: &Environment, path: &Path, options: &SessionOptions) -> Result<LoadedSession, ModelError> {
    if !path.is_file() {
        return Err(ModelError::NotFound { path: path.to_path_buf() });
    }
    let load_err = |reason: String| ModelError::Load { path: path.to_path_buf(), reason };
    let builder = || -> Result<ort::session::builder::SessionBuilder, ModelError> {
        Session::builder(env)
            .map_err(|e| load_err(e.to_string()))?
            .with_log_level(LogLevel::Error)
            .map_err(|e| load_err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| load_err(e.to_string()))
    };
    match options.provider {
        Provider::Cpu => {
            let session = builder()?.commit_from_file(path).map_err(|e| load_err(e.to_string()))?;
            Ok(LoadedSession { session, path: path.to_path_buf(), provider: Provider::Cpu })
        }
        Provider::Cuda => {
            let cuda = ort::ep::CUDA::default().build().error_on_failure();
            let attempt = builder()?
                .with_execution_providers([cuda])
                .map_err(|e| ModelError::Provider { path: path.to_path_buf(), provider: "cuda", reason: e.to_string() })
                .and_then(|mut b| b.commit_from_file(path).map_err(|e| ModelError::Provider { path: path.to_path_buf(), provider: "cuda", reason: e.to_string() }));
            match attempt {
                Ok(session) => Ok(LoadedSession { session, path: path.to_path_buf(), provider: Provider::Cuda }),
                Err(e) if !options.require_provider => {
                    tracing::warn!(model = %path.display(), error = %e, "CUDA unavailable, running on the CPU");
                    let session = builder()?.commit_from_file(path).map_err(|e| load_err(e.to_string()))?;
                    Ok(LoadedSession { session, path: path.to_path_buf(), provider: Provider::Cpu })
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// One dimension of a tensor in a contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Must be exactly this size.
    Fixed(i64),
    /// Any size, or dynamic in the model (batch, width).
    Any,
}

/// An input or output tensor a model adapter relies on. All our models use `f32` tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec {
    /// Tensor name; `None` accepts whatever the model calls its only tensor on that side.
    pub name: Option<&'static str>,
    pub dims: &'static [Dim],
}

/// What an adapter expects of its model file, checked when the model loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorContract {
    /// The adapter's name, used in errors (`YOLOX`, `plate detector`).
    pub model: &'static str,
    pub input: TensorSpec,
    pub output: TensorSpec,
}

/// Names and shapes of the tensors a contract resolved to in a real session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTensors {
    pub input: String,
    pub input_shape: Vec<i64>,
    pub output: String,
    pub output_shape: Vec<i64>,
}

impl TensorContract {
    /// Checks `session` against this contract and returns the real tensor names and shapes (`-1` for dynamic
    /// dimensions). The error names the file and the first mismatch.
    pub fn check(&self, session: &Session, path: &Path) -> Result<ResolvedTensors, ModelError> {
        let mismatch = |m: String| ModelError::Contract { path: path.to_path_buf(), model: self.model, mismatch: m };
        let pick = |side: &str, outlets: Vec<(String, ValueType)>, spec: &TensorSpec| -> Result<(String, Vec<i64>), ModelError> {
            let found = match spec.name {
                Some(name) => outlets.iter().find(|(n, _)| n == name).cloned().ok_or_else(|| {
                    let names: Vec<&str> = outlets.iter().map(|(n, _)| n.as_str()).collect();
                    mismatch(format!("expected {side} tensor {name:?}, the model has {names:?}"))
                })?,
                None if outlets.len() == 1 => outlets[0].clone(),
                None => {
                    let names: Vec<&str> = outlets.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(mismatch(format!("expected exactly one {side} tensor, the model has {names:?}")));
                }
            };
            let (name, ty) = found;
            let ValueType::Tensor { ty: elem, shape, .. } = ty else {
                return Err(mismatch(format!("{side} {name:?} is not a tensor")));
            };
            if elem != TensorElementType::Float32 {
                return Err(mismatch(format!("{side} {name:?} has element type {elem:?}, expected f32")));
            }
            let dims: Vec<i64> = shape.iter().copied().collect();
            if dims.len() != spec.dims.len() {
                return Err(mismatch(format!("{side} {name:?} has shape {dims:?}, expected rank {} ({})", spec.dims.len(), describe(spec.dims))));
            }
            for (i, (have, want)) in dims.iter().zip(spec.dims).enumerate() {
                if let Dim::Fixed(w) = want {
                    if have != w {
                        return Err(mismatch(format!("{side} {name:?} has shape {dims:?}, expected {} (dimension {i} is {have}, not {w})", describe(spec.dims))));
                    }
                }
            }
            Ok((name, dims))
        };
        let inputs = session.inputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
        let outputs = session.outputs().iter().map(|o| (o.name().to_string(), o.dtype().clone())).collect();
        let (input, input_shape) = pick("input", inputs, &self.input)?;
        let (output, output_shape) = pick("output", outputs, &self.output)?;
        Ok(ResolvedTensors { input, input_shape, output, output_shape })
    }
}

fn describe(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Any => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(","))
}
