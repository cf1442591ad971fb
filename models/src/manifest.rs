//! The models the agent knows, with their SHA-256 digests, and installing them from a local directory (a USB
//! stick on an air-gapped checkpoint PC) with verification. A file whose digest does not match is never
//! installed and never accepted by `verify`.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One model file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelEntry {
    /// Short name used on the command line.
    pub name: &'static str,
    /// File name in the models directory.
    pub file: &'static str,
    pub sha256: &'static str,
    pub size: u64,
    /// What the agent uses it for.
    pub role: &'static str,
    pub license: &'static str,
    /// Where it comes from upstream (for provenance; the digest is of the copy named here).
    pub upstream: &'static str,
    /// A PyPI wheel that ships the file: (`package==version`, member path inside the wheel).
    pub wheel: Option<(&'static str, &'static str)>,
}

/// Every model the agent can use. Digests are those of the copies in the project's shared model set
/// (`MODELS.md` there), which are the files tests and benchmarks run on.
pub const MANIFEST: &[ModelEntry] = &[
    ModelEntry {
        name: "yolox-nano",
        file: "yolox_nano_416.onnx",
        sha256: "695e750a5d5754bb5a8d5325643b59282191a7e7a564e435a415fd3c578eab14",
        size: 3_660_092,
        role: "person and vehicle detector (COCO-80, 416x416)",
        license: "Apache-2.0",
        upstream: "https://github.com/Kazuhito00/YOLOX-ONNX-TFLite-Sample/raw/main/model/yolox_nano.onnx",
        wheel: None,
    },
    ModelEntry {
        name: "plate-det-320",
        file: "plate_det_y5fu_320.onnx",
        sha256: "2a985dc63a5cc947ec36d18503d6fc0fd54525b9dba17f2fe29a71e86b44456d",
        size: 2_343_161,
        role: "licence-plate detector with corners, 320x320",
        license: "Apache-2.0",
        upstream: "https://github.com/szad670401/HyperLPR/raw/58ad4ef/resource/models/onnx/y5fu_320x_sim.onnx",
        wheel: None,
    },
    ModelEntry {
        name: "plate-det-640",
        file: "plate_det_y5fu_640.onnx",
        sha256: "0306de937471b87f56eb3f5620815e7e7058f8ab7428e0734fc64627cc4d716c",
        size: 3_930_791,
        role: "licence-plate detector with corners, 640x640 (small or far plates)",
        license: "Apache-2.0",
        upstream: "https://github.com/szad670401/HyperLPR/raw/58ad4ef/resource/models/onnx/y5fu_640x_sim.onnx",
        wheel: None,
    },
    ModelEntry {
        name: "plate-color",
        file: "plate_color_cls_96.onnx",
        sha256: "fe123688d3bf08b9ef029fcd57f3ac4644ac2e5ef8b9e7a676aacd5fad152142",
        size: 1_604_473,
        role: "plate colour classifier, 96x96",
        license: "Apache-2.0",
        upstream: "https://github.com/szad670401/HyperLPR/raw/58ad4ef/resource/models/onnx/litemodel_cls_96x_r1.onnx",
        wheel: None,
    },
    ModelEntry {
        name: "plate-reader",
        file: "ppocr_v4_rec.onnx",
        sha256: "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        size: 10_857_958,
        role: "PP-OCRv4 text recogniser (CTC) reading plate text",
        license: "Apache-2.0",
        upstream: "https://pypi.org/project/rapidocr-onnxruntime/1.4.4/",
        wheel: Some(("rapidocr_onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx")),
    },
];

/// Finds an entry by name or file name.
pub fn entry(name_or_file: &str) -> Option<&'static ModelEntry> {
    MANIFEST.iter().find(|e| e.name == name_or_file || e.file == name_or_file)
}

/// Why a model file is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: missing")]
    Missing { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: SHA-256 mismatch (expected {expected}, found {actual}); the file is corrupt or not the {name} model")]
    Digest { path: PathBuf, name: &'static str, expected: &'static str, actual: String },
    #[error("{path}: not a wheel (zip archive): {reason}")]
    Wheel { path: PathBuf, reason: String },
    #[error("{path}: has no {member} (the {name} model ships in {package})")]
    NotInWheel { path: PathBuf, member: &'static str, name: &'static str, package: &'static str },
    #[error("{name}: no wheel ships this model; fetch it from a directory or its upstream URL")]
    NoWheel { name: &'static str },
}

/// The SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, std::io::Error> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks the copy of `entry` in `dir`.
pub fn verify(dir: &Path, entry: &'static ModelEntry) -> Result<PathBuf, ManifestError> {
    let path = dir.join(entry.file);
    // A link in place of a model is not an installed model (and is never followed: `models fetch` runs as
    // root in a directory the service user may write to).
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Err(ManifestError::Missing { path });
    }
    let actual = sha256_file(&path).map_err(|source| ManifestError::Io { path: path.clone(), source })?;
    if actual != entry.sha256 {
        return Err(ManifestError::Digest { path, name: entry.name, expected: entry.sha256, actual });
    }
    Ok(path)
}

/// What [`install_from_dir`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The file was copied and verified.
    Copied(PathBuf),
    /// A verified copy was already there.
    AlreadyPresent(PathBuf),
}

/// Copies `entry` from `source_dir` into `dest_dir`, verifying the digest before the file becomes visible.
/// An already-correct copy is left alone.
pub fn install_from_dir(source_dir: &Path, dest_dir: &Path, entry: &'static ModelEntry) -> Result<Installed, ManifestError> {
    if let Ok(path) = verify(dest_dir, entry) {
        return Ok(Installed::AlreadyPresent(path));
    }
    let source = source_dir.join(entry.file);
    let bytes = std::fs::read(&source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ManifestError::Missing { path: source.clone() },
        _ => ManifestError::Io { path: source.clone(), source: e },
    })?;
    // The digest is checked on these bytes, before anything is written.
    install_bytes(&source, dest_dir, entry, &bytes).map(Installed::Copied)
}

/// Extracts `entry` from a PyPI wheel (a zip archive; the OCR reader ships in `rapidocr_onnxruntime`),
/// verifying it like [`install_from_dir`].
pub fn install_from_wheel(wheel: &Path, dest_dir: &Path, entry: &'static ModelEntry) -> Result<Installed, ManifestError> {
    let (package, member) = entry.wheel.ok_or(ManifestError::NoWheel { name: entry.name })?;
    if let Ok(path) = verify(dest_dir, entry) {
        return Ok(Installed::AlreadyPresent(path));
    }
    let file = File::open(wheel).map_err(|source| ManifestError::Io { path: wheel.to_path_buf(), source })?;
    let bad = |reason: String| ManifestError::Wheel { path: wheel.to_path_buf(), reason };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    match archive.by_name(member) {
        Ok(mut f) => f.read_to_end(&mut bytes).map_err(|e| bad(format!("{member}: {e}")))?,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ManifestError::NotInWheel { path: wheel.to_path_buf(), member, name: entry.name, package });
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    install_bytes(&wheel.join(member), dest_dir, entry, &bytes).map(Installed::Copied)
}

/// Installs `bytes` (read from `origin`, named in errors) as `entry` in `dest_dir`: the digest is checked
/// first, then the file is written under a fresh temporary name (created exclusively, so a file or link
/// planted there is never written through), fsynced and renamed over the model (replacing a link planted
/// there rather than following it), so a half-written or wrong model is never visible.
pub fn install_bytes(origin: &Path, dest_dir: &Path, entry: &'static ModelEntry, bytes: &[u8]) -> Result<PathBuf, ManifestError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual != entry.sha256 {
        return Err(ManifestError::Digest { path: origin.to_path_buf(), name: entry.name, expected: entry.sha256, actual });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ManifestError::Io { path, source }
    };
    std::fs::create_dir_all(dest_dir).map_err(io(dest_dir))?;
    let dest = dest_dir.join(entry.file);
    let (tmp, mut f) = create_exclusive(dest_dir, entry.file).map_err(io(dest_dir))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all()).and_then(|()| std::fs::rename(&tmp, &dest));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&dest)(e));
    }
    Ok(dest)
}

/// A new file `.{name}.{pid}-{n}.partial` in `dir`, created with `O_EXCL` (never an existing file or link).
fn create_exclusive(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut last = None;
    for n in 0..16u32 {
        let tmp = dir.join(format!(".{name}.{}-{}.partial", std::process::id(), nanos.wrapping_add(n)));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files_are_unique() {
        for (i, a) in MANIFEST.iter().enumerate() {
            for b in &MANIFEST[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.file, b.file);
            }
            assert_eq!(a.sha256.len(), 64);
        }
    }

    #[test]
    fn install_refuses_a_corrupt_source() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let e = entry("yolox-nano").unwrap();
        std::fs::write(src.path().join(e.file), b"not a model").unwrap();
        let err = install_from_dir(src.path(), dst.path(), e).unwrap_err();
        assert!(matches!(err, ManifestError::Digest { .. }), "{err}");
        assert!(err.to_string().contains("yolox_nano_416.onnx"), "{err}");
        assert!(!dst.path().join(e.file).exists());
    }

    fn wheel_with(path: &Path, member: &str, content: &[u8]) {
        let mut w = zip::ZipWriter::new(File::create(path).unwrap());
        w.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(content).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn wheel_member_is_extracted_and_verified() {
        let e = entry("plate-reader").unwrap();
        let (_, member) = e.wheel.unwrap();
        let model = testkit::shared_dir().join("models").join(e.file);
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("rapidocr_onnxruntime-1.4.4-py3-none-any.whl");
        wheel_with(&wheel, member, &std::fs::read(model).unwrap());
        let dest = dir.path().join("models");
        assert_eq!(install_from_wheel(&wheel, &dest, e).unwrap(), Installed::Copied(dest.join(e.file)));
        assert!(verify(&dest, e).is_ok());

        // A wheel with a different file at that path is refused and nothing is installed.
        let fake = dir.path().join("fake.whl");
        wheel_with(&fake, member, b"not the reader");
        let other = dir.path().join("other");
        let err = install_from_wheel(&fake, &other, e).unwrap_err();
        assert!(matches!(err, ManifestError::Digest { .. }), "{err}");
        assert!(!other.join(e.file).exists());
        // One without the member says which member it lacks.
        let empty = dir.path().join("empty.whl");
        wheel_with(&empty, "README", b"x");
        assert!(install_from_wheel(&empty, &other, e).unwrap_err().to_string().contains(member));
    }
}
