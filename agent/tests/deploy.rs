//! Deployment: the systemd unit passes systemd's own checks, and the Debian package installs, runs its
//! config check and purges cleanly on this machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn unit_passes_systemd_analyze_verify_and_security_rating() {
    // `verify` also checks that the commands exist, so point them at the binary this test built.
    let unit = std::fs::read_to_string(repo().join("systemd/edge-agent.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("ExecReload="));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge-agent.service");
    std::fs::write(&path, unit.replace("/usr/bin/edge-agent", common::bin())).unwrap();

    let (ok, text) = run(Command::new("systemd-analyze").arg("verify").arg(&path));
    assert!(ok, "systemd-analyze verify rejected the unit:\n{text}");
    assert!(!text.contains(&path.display().to_string()), "verify warned about the unit:\n{text}");

    let (_, text) = run(Command::new("systemd-analyze").args(["security", "--offline=yes", "--no-pager"]).arg(&path));
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("no rating:\n{text}"));
    let score: f64 = line.split(':').nth(1).and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap();
    assert!(score <= 2.5, "exposure {score} above 2.5:\n{text}");
    assert!(line.contains("OK"), "{line}");
}

/// Purges the package when dropped, so a failing test does not leave it installed.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "edge-agent"]).output();
    }
}

/// Installing a package needs root: the test is ignored in a plain `cargo test` (a visible skip) and
/// `make test` runs it with `--ignored` when it runs as root, as CI does.
#[test]
#[ignore = "needs root: make test runs it as root"]
fn deb_builds_installs_checks_its_config_keeps_edits_on_upgrade_and_purges() {
    assert!(nix_root(), "installing a package needs root");
    let cargo_deb = repo().join(".deps/cargo-deb/bin/cargo-deb");
    assert!(cargo_deb.is_file(), "{} missing: run `make deps`", cargo_deb.display());
    let out = tempfile::tempdir().unwrap();
    // The binary this test run built (target/debug), packaged as is: the release build is `make deb`.
    let (ok, text) = run(Command::new(&cargo_deb).current_dir(repo()).args(["-p", "edge-agent", "--profile", "dev", "--no-build", "--no-strip", "--fast", "-o"]).arg(out.path()));
    assert!(ok, "cargo deb failed:\n{text}");
    let deb = std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|e| e == "deb")).unwrap();

    let (_, info) = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for dep in ["libgstreamer1.0-0", "gstreamer1.0-plugins-good", "gstreamer1.0-libav"] {
        assert!(info.contains(dep), "Depends lacks {dep}:\n{info}");
    }
    let (_, contents) = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for file in ["./usr/bin/edge-agent", "./lib/systemd/system/edge-agent.service", "./etc/edge-agent/agent.toml", "./usr/lib/edge-agent/libonnxruntime.so"] {
        assert!(contents.contains(file), "{file} not packaged:\n{contents}");
    }

    let _ = Command::new("dpkg").args(["--purge", "edge-agent"]).output();
    let guard = Installed;
    let (ok, text) = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(ok, "dpkg -i failed:\n{text}");
    let (ok, text) = run(Command::new("getent").args(["passwd", "edge-agent"]));
    assert!(ok, "service user not created: {text}");
    assert!(Path::new("/var/lib/edge-agent").is_dir());

    // Out of the box the config is valid, once the models are provisioned (from a "USB stick").
    let installed = |args: &[&str]| {
        let mut cmd = Command::new("/usr/bin/edge-agent");
        cmd.args(args).env_remove("ORT_DYLIB_PATH").env_remove("EDGE_AGENT_MODELS_DIR").current_dir("/");
        run(&mut cmd)
    };
    let shared_models = testkit::shared_dir().join("models");
    let (ok, text) = installed(&["models", "fetch", "--from", shared_models.to_str().unwrap(), "--config", "/etc/edge-agent/agent.toml"]);
    assert!(ok, "models fetch failed:\n{text}");
    let (ok, text) = installed(&["check-config", "/etc/edge-agent/agent.toml"]);
    assert!(ok, "installed check-config failed:\n{text}");
    // The packaged ONNX Runtime is found without any environment.
    let image = testkit::data("scenes/hy_test_img.jpg");
    let (ok, text) = installed(&["analyze", "--config", "/etc/edge-agent/agent.toml", "--json", image.to_str().unwrap()]);
    assert!(ok && text.contains("苏ED51712"), "installed analyze failed:\n{text}");

    // An operator's edit survives reinstalling (upgrading) the package.
    let edited = format!("{}\n# edited by the operator\n", std::fs::read_to_string("/etc/edge-agent/agent.toml").unwrap());
    std::fs::write("/etc/edge-agent/agent.toml", &edited).unwrap();
    let (ok, text) = run(Command::new("dpkg").args(["-i", "--force-confold"]).arg(&deb));
    assert!(ok, "reinstall failed:\n{text}");
    assert_eq!(std::fs::read_to_string("/etc/edge-agent/agent.toml").unwrap(), edited, "conffile overwritten on upgrade");

    let (ok, text) = run(Command::new("dpkg").args(["--purge", "edge-agent"]));
    assert!(ok, "purge failed:\n{text}");
    drop(guard);
    for gone in ["/usr/bin/edge-agent", "/etc/edge-agent", "/var/lib/edge-agent", "/lib/systemd/system/edge-agent.service", "/usr/lib/edge-agent"] {
        assert!(!Path::new(gone).exists(), "{gone} left after purge");
    }
    let (_, status) = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "edge-agent"]));
    assert!(!status.contains("installed"), "still known to dpkg: {status}");
}

fn nix_root() -> bool {
    run(Command::new("id").arg("-u")).1.trim() == "0"
}
