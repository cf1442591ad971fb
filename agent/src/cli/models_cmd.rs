//! `edge-agent models list | verify | fetch`: what is installed, digest checks, and offline provisioning.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use models::manifest::{self, ModelEntry, MANIFEST};
use sha2::Digest;

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// List the known models and whether each is installed and intact.
    List,
    /// Check the SHA-256 of installed models; exits 1 if any named (default: all installed) is missing or
    /// does not match.
    Verify {
        /// Model names or file names (default: every installed model, and the detector).
        names: Vec<String>,
    },
    /// Install models into the models directory, verifying each digest before it becomes visible.
    /// Exactly one source: `--from DIR`, `--wheel FILE` or `--online`.
    Fetch {
        /// Directory to copy from (a USB stick, a mounted share).
        #[arg(long, value_name = "DIR", group = "source")]
        from: Option<PathBuf>,
        /// A downloaded PyPI wheel that ships a model (the OCR reader: rapidocr_onnxruntime-1.4.4).
        #[arg(long, value_name = "FILE", group = "source")]
        wheel: Option<PathBuf>,
        /// Download: each model from its upstream URL (the OCR reader from its PyPI wheel), or from
        /// `--mirror`.
        #[arg(long, group = "source")]
        online: bool,
        /// With --online: a web server holding the model files by name (`URL/yolox_nano_416.onnx`), e.g.
        /// one on the county network, used instead of the upstream URLs.
        #[arg(long, value_name = "URL", requires = "online")]
        mirror: Option<String>,
        /// With --online: the PyPI (or PyPI mirror) base URL whose JSON API finds the wheel.
        #[arg(long, value_name = "URL", default_value = "https://pypi.org", requires = "online")]
        pypi: String,
        /// Model names or file names (default: with --from, all known models in DIR and the detector;
        /// with --wheel, the models that wheel ships; with --online, all).
        names: Vec<String>,
    },
}

/// Runs the command against `dir`.
pub fn run(action: &ModelsAction, dir: &Path) -> anyhow::Result<ExitCode> {
    match action {
        ModelsAction::List => {
            println!("models directory: {}", dir.display());
            for e in MANIFEST {
                let state = match manifest::verify(dir, e) {
                    Ok(_) => "ok".to_string(),
                    Err(manifest::ManifestError::Missing { .. }) => "missing".to_string(),
                    Err(manifest::ManifestError::Digest { .. }) => "CORRUPT (digest mismatch)".to_string(),
                    Err(err) => format!("unreadable: {err}"),
                };
                println!("{:<14} {:<26} {:<28} {}", e.name, e.file, state, e.role);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Verify { names } => {
            let entries = select(names, |e| dir.join(e.file).exists() || e.name == "yolox-nano")?;
            let mut bad = 0;
            for e in entries {
                match manifest::verify(dir, e) {
                    Ok(path) => println!("ok       {}", path.display()),
                    Err(err) => {
                        bad += 1;
                        eprintln!("error: {err}");
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ModelsAction::Fetch { from, wheel, online, mirror, pypi, names } => {
            let source = match (from, wheel, online) {
                (Some(from), _, _) => {
                    if !from.is_dir() {
                        anyhow::bail!("--from {}: not a directory", from.display());
                    }
                    Source::Dir(from)
                }
                (_, Some(wheel), _) => Source::Wheel(wheel),
                (_, _, true) => Source::Online { mirror: mirror.as_deref().map(|m| m.trim_end_matches('/')), pypi: pypi.trim_end_matches('/') },
                _ => anyhow::bail!("say where to fetch from: --from DIR, --wheel FILE or --online"),
            };
            let entries = select(names, |e| match &source {
                Source::Dir(from) => from.join(e.file).exists() || e.name == "yolox-nano",
                Source::Wheel(_) => e.wheel.is_some(),
                Source::Online { .. } => true,
            })?;
            let mut bad = 0;
            for e in entries {
                match source.install(dir, e) {
                    Ok(manifest::Installed::Copied(path)) => println!("installed {} ({})", path.display(), e.name),
                    Ok(manifest::Installed::AlreadyPresent(path)) => println!("ok        {} ({}, already installed)", path.display(), e.name),
                    Err(err) => {
                        bad += 1;
                        eprintln!("error: {err:#}");
                    }
                }
            }
            Ok(if bad == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// Where `fetch` gets models from.
enum Source<'a> {
    Dir(&'a Path),
    Wheel(&'a Path),
    Online { mirror: Option<&'a str>, pypi: &'a str },
}

/// Largest download accepted (the biggest model is about 11 MB, the OCR wheel about 15 MB).
const DOWNLOAD_LIMIT: u64 = 256 << 20;

impl Source<'_> {
    fn install(&self, dir: &Path, e: &'static ModelEntry) -> anyhow::Result<manifest::Installed> {
        match self {
            Source::Dir(from) => Ok(manifest::install_from_dir(from, dir, e)?),
            Source::Wheel(wheel) => Ok(manifest::install_from_wheel(wheel, dir, e)?),
            Source::Online { mirror, pypi } => {
                if let Ok(path) = manifest::verify(dir, e) {
                    return Ok(manifest::Installed::AlreadyPresent(path));
                }
                match (mirror, e.wheel) {
                    (None, Some((spec, _))) => {
                        let wheel = download_wheel(pypi, spec)?;
                        Ok(manifest::install_from_wheel(wheel.path(), dir, e)?)
                    }
                    _ => {
                        let url = mirror.map_or_else(|| e.upstream.to_string(), |m| format!("{m}/{}", e.file));
                        println!("downloading {url}");
                        let bytes = download(&url)?;
                        Ok(manifest::Installed::Copied(manifest::install_bytes(Path::new(&url), dir, e, &bytes)?))
                    }
                }
            }
        }
    }
}

fn download(url: &str) -> anyhow::Result<Vec<u8>> {
    let mut response = ureq::get(url).call().map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    response.body_mut().with_config().limit(DOWNLOAD_LIMIT).read_to_vec().map_err(|e| anyhow::anyhow!("{url}: {e}"))
}

/// Finds `package==version`'s wheel through the PyPI JSON API, downloads it and checks it against the
/// digest PyPI publishes; returns it as a temporary file.
fn download_wheel(pypi: &str, spec: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    let (package, version) = spec.split_once("==").ok_or_else(|| anyhow::anyhow!("bad wheel spec {spec}"))?;
    let api = format!("{pypi}/pypi/{package}/{version}/json");
    println!("looking up {spec} at {api}");
    let meta: serde_json::Value = serde_json::from_slice(&download(&api)?).map_err(|e| anyhow::anyhow!("{api}: not PyPI JSON: {e}"))?;
    let wheel =
        meta["urls"].as_array().and_then(|files| files.iter().find(|f| f["packagetype"] == "bdist_wheel")).ok_or_else(|| anyhow::anyhow!("{api}: no wheel listed for {spec}"))?;
    let url = wheel["url"].as_str().ok_or_else(|| anyhow::anyhow!("{api}: wheel without a url"))?;
    println!("downloading {url}");
    let bytes = download(url)?;
    if let Some(expected) = wheel["digests"]["sha256"].as_str() {
        let actual = hex::encode(sha2::Sha256::digest(&bytes));
        anyhow::ensure!(actual == expected, "{url}: SHA-256 {actual} does not match PyPI's {expected}");
    }
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, &bytes)?;
    Ok(file)
}

fn select(names: &[String], default: impl Fn(&ModelEntry) -> bool) -> anyhow::Result<Vec<&'static ModelEntry>> {
    if names.is_empty() {
        return Ok(MANIFEST.iter().filter(|e| default(e)).collect());
    }
    names
        .iter()
        .map(|n| {
            manifest::entry(n).ok_or_else(|| {
                let known: Vec<&str> = MANIFEST.iter().map(|e| e.name).collect();
                anyhow::anyhow!("unknown model {n:?}; known: {}", known.join(", "))
            })
        })
        .collect()
}
