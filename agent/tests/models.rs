//! `edge-agent models`: verify refuses corrupt files by name; fetch installs from a directory, a wheel and
//! over HTTP, verifying every digest before a file becomes visible.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::{run, stderr, stdout, FileServer};
use models::manifest::{entry, MANIFEST};

fn shared_models() -> std::path::PathBuf {
    testkit::shared_dir().join("models")
}

#[test]
fn fetch_from_a_directory_installs_and_verify_catches_a_corrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("models");
    let dest_s = dest.to_str().unwrap();
    let o = run(&["models", "fetch", "--from", shared_models().to_str().unwrap(), "--dir", dest_s]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    for e in MANIFEST {
        assert!(stdout(&o).contains(&format!("({})", e.name)), "{} not installed:\n{}", e.name, stdout(&o));
    }
    let o = run(&["models", "verify", "--dir", dest_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().filter(|l| l.starts_with("ok")).count(), MANIFEST.len());

    // One flipped byte in the middle of the reader.
    let reader = dest.join(entry("plate-reader").unwrap().file);
    let mut bytes = std::fs::read(&reader).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&reader, &bytes).unwrap();
    let o = run(&["models", "verify", "--dir", dest_s]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains(&reader.display().to_string()) && err.contains("SHA-256 mismatch"), "{err}");
    let list = run(&["models", "list", "--dir", dest_s]);
    assert!(stdout(&list).contains("CORRUPT"), "{}", stdout(&list));

    // Fetching again replaces the corrupt copy with a verified one.
    let o = run(&["models", "fetch", "--from", shared_models().to_str().unwrap(), "--dir", dest_s, "plate-reader"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(run(&["models", "verify", "--dir", dest_s]).status.success());
}

#[test]
fn fetch_from_a_corrupt_stick_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let stick = dir.path().join("stick");
    std::fs::create_dir_all(&stick).unwrap();
    let e = entry("yolox-nano").unwrap();
    std::fs::write(stick.join(e.file), b"truncated").unwrap();
    let dest = dir.path().join("models");
    let o = run(&["models", "fetch", "--from", stick.to_str().unwrap(), "--dir", dest.to_str().unwrap(), "yolox-nano"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&stick.join(e.file).display().to_string()), "{}", stderr(&o));
    assert!(!dest.join(e.file).exists());
}

#[test]
fn fetch_from_a_wheel_and_over_http_verifies_digests() {
    let dir = tempfile::tempdir().unwrap();
    // A wheel laid out like rapidocr_onnxruntime's, built here around the shared reader model.
    let reader = entry("plate-reader").unwrap();
    let (_, member) = reader.wheel.unwrap();
    let wheel = dir.path().join("rapidocr_onnxruntime-1.4.4-py3-none-any.whl");
    {
        let mut w = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
        w.start_file("rapidocr_onnxruntime/__init__.py", zip::write::SimpleFileOptions::default()).unwrap();
        w.start_file(member, zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(&std::fs::read(shared_models().join(reader.file)).unwrap()).unwrap();
        w.finish().unwrap();
    }
    let dest = dir.path().join("from-wheel");
    let o = run(&["models", "fetch", "--wheel", wheel.to_str().unwrap(), "--dir", dest.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(models::manifest::verify(&dest, reader).is_ok());

    // A mirror on the local network serving the model files by name.
    let server = FileServer::start(shared_models());
    let dest = dir.path().join("from-mirror");
    let o = run(&["models", "fetch", "--online", "--mirror", &server.url(), "--dir", dest.to_str().unwrap(), "yolox-nano", "plate-det-320"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(run(&["models", "verify", "--dir", dest.to_str().unwrap()]).status.success());

    // A mirror serving a wrong file: refused, naming the URL, nothing installed.
    let bad_root = dir.path().join("bad-mirror");
    std::fs::create_dir_all(&bad_root).unwrap();
    let e = entry("plate-color").unwrap();
    std::fs::write(bad_root.join(e.file), b"<html>captive portal</html>").unwrap();
    let bad = FileServer::start(bad_root);
    let dest = dir.path().join("from-bad");
    let o = run(&["models", "fetch", "--online", "--mirror", &bad.url(), "--dir", dest.to_str().unwrap(), "plate-color"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("{}/{}", bad.url(), e.file)) && stderr(&o).contains("SHA-256 mismatch"), "{}", stderr(&o));
    assert!(!dest.join(e.file).exists());
}
