//! Helpers for the agent's integration tests: the real binary, real config files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod scenes;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edge-agent")
}

/// The agent binary with the test ONNX Runtime and models.
pub fn command() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env("ORT_DYLIB_PATH", testkit::ort_library());
    cmd.env("EDGE_AGENT_MODELS_DIR", testkit::shared_dir().join("models"));
    cmd.env("RUST_LOG", "info,ort=error");
    cmd.env_remove("JOURNAL_STREAM");
    cmd
}

pub fn run(args: &[&str]) -> Output {
    command().args(args).output().expect("run edge-agent")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A camera line for [`config`].
pub struct Cam<'a> {
    pub id: &'a str,
    pub url: String,
    pub extra: &'a str,
}

pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// Writes an agent config into `dir` and returns its path.
pub fn config(dir: &Path, broker_port: Option<u16>, cameras: &[Cam], extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from(
        "[site]\ncity = \"xining\"\ndistrict = \"chengzhong\"\ntown = \"nanchuan\"\nvillage = \"xiaozhuang\"\ncheckpoint = \"east-gate\"\nname = \"小庄村东口\"\n\n",
    );
    if let Some(port) = broker_port {
        text.push_str(&format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_secs = 5\nstats_interval_secs = 1\ndetections_interval_ms = 200\n\n"
        ));
    }
    text.push_str(&format!("[models]\ndir = \"{}\"\n\n", testkit::shared_dir().join("models").display()));
    text.push_str(&format!("[storage]\nstate_dir = \"{}\"\n\n", dir.join("state").display()));
    text.push_str(extra);
    for c in cameras {
        text.push_str(&format!("\n[[cameras]]\nid = \"{}\"\nurl = \"{}\"\n{}\n", c.id, c.url, c.extra));
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running daemon whose log goes to a file.
pub struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    pub fn start(config: &Path) -> Self {
        Self::spawn(command(), config)
    }

    /// Starts the agent at a lower CPU priority (`nice -n niceness`), so that servers standing in for
    /// cameras in the same machine are not starved by it.
    pub fn start_nice(config: &Path, niceness: i32) -> Self {
        let template = command();
        let mut cmd = Command::new("nice");
        cmd.args(["-n", &niceness.to_string()]).arg(bin());
        for (key, value) in template.get_envs() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        Self::spawn(cmd, config)
    }

    fn spawn(mut cmd: Command, config: &Path) -> Self {
        let log = config.with_extension("log");
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start edge-agent run");
        Self { child: Some(child), log }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `KILL`, `HUP`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").args(["-s", name, &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Whether the agent is still running.
    pub fn wait_or_none(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Waits for exit; returns the exit code (None if killed by a signal).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(Instant::now() < deadline, "agent did not exit within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

