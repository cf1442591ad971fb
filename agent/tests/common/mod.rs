//! Helpers for the agent's integration tests: the real binary, real config files.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod receiver;
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
    let mut text =
        String::from("[site]\ncity = \"xining\"\ndistrict = \"chengzhong\"\ntown = \"nanchuan\"\nvillage = \"xiaozhuang\"\ncheckpoint = \"east-gate\"\nname = \"小庄村东口\"\n\n");
    if let Some(port) = broker_port {
        text.push_str(&format!("[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nkeep_alive_secs = 5\nstats_interval_secs = 1\ndetections_interval_ms = 200\n\n"));
    }
    text.push_str(&format!("[models]\ndir = \"{}\"\n\n", testkit::shared_dir().join("models").display()));
    text.push_str(&format!("[storage]\nstate_dir = \"{}\"\n\n", dir.join("state").display()));
    // A free port per agent, so tests running side by side do not collide; see `Agent::metrics_addr`.
    text.push_str("[metrics]\nlisten = \"127.0.0.1:0\"\n\n");
    if !extra.contains("[web]") {
        text.push_str("[web]\nlisten = \"127.0.0.1:0\"\n\n");
    }
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
    /// Starts the agent with extra environment variables.
    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, config)
    }

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
        let child = cmd.args(["run", "--config"]).arg(config).stdout(Stdio::null()).stderr(file).spawn().expect("start edge-agent run");
        Self { child: Some(child), log }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal by name (`TERM`, `KILL`, `HUP`) with kill(1).
    /// Waits until the log contains `needle` (appearing after `skip` occurrences), panicking with the log
    /// after `timeout`.
    pub fn wait_log(&self, needle: &str, occurrences: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log().matches(needle).count() < occurrences {
            assert!(Instant::now() < deadline, "{needle:?} not logged {occurrences} time(s) within {timeout:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The address the metrics endpoint bound to, from the start-up log.
    pub fn metrics_addr(&self) -> String {
        self.wait_log("metrics endpoint listening", 1, Duration::from_secs(60));
        let log = self.log();
        let line = log.lines().find(|l| l.contains("metrics endpoint listening")).unwrap();
        let start = line.find("address=").unwrap() + "address=".len();
        line[start..].split_whitespace().next().unwrap().to_string()
    }

    /// Sends SIGTERM and waits (up to a minute) for the exit: the exit code, how long it took and the log.
    pub fn stop_timed(&mut self) -> (Option<i32>, Duration, String) {
        let started = Instant::now();
        self.signal("TERM");
        let code = self.wait(Duration::from_secs(60));
        (code, started.elapsed(), self.log())
    }

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

/// Sends one raw HTTP/1.1 request (`Connection: close` added) and returns the whole response, headers
/// included, without following redirects.
pub fn http_raw(addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> String {
    http_on(std::net::TcpStream::connect(addr).unwrap(), addr, method, path, headers, body)
}

/// [`http_raw`] on a connection the caller opened (from another source address, say).
pub fn http_on(mut stream: std::net::TcpStream, addr: &str, method: &str, path: &str, headers: &[&str], body: &str) -> String {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    write!(stream, "{head}\r\n{body}").unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// A form POST (`application/x-www-form-urlencoded`); returns the raw response.
pub fn post_form(addr: &str, path: &str, body: &str) -> String {
    http_raw(addr, "POST", path, &["Content-Type: application/x-www-form-urlencoded"], body)
}

/// A plain HTTP/1.1 GET; returns the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    http_get_with(addr, path, &[])
}

/// A GET with extra headers (a session cookie); returns the status code and the body.
pub fn http_get_with(addr: &str, path: &str, headers: &[&str]) -> (u16, String) {
    let text = http_raw(addr, "GET", path, headers, "");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of one sample (`name{labels}`) on a Prometheus text page.
pub fn metric(page: &str, sample: &str) -> Option<f64> {
    page.lines().find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' ')).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

/// A small HTTP file server on loopback (one thread per request, `Connection: close`), serving `root`.
pub struct FileServer {
    pub port: u16,
}

impl FileServer {
    pub fn start(root: PathBuf) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut request = String::new();
                    let _ = reader.read_line(&mut request);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                    let mut stream = stream;
                    match std::fs::read(root.join(&path)) {
                        Ok(body) if !path.contains("..") => {
                            let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                            let _ = stream.write_all(&body);
                        }
                        _ => {
                            let _ = write!(stream, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                        }
                    }
                });
            }
        });
        Self { port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Signs in to the duty desk and returns the session cookie (`edge_session=...`).
pub fn web_login(addr: &str, user: &str, password: &str) -> String {
    let out = post_form(addr, "/login", &format!("user={user}&password={password}"));
    let line = out.lines().find(|l| l.to_lowercase().starts_with("set-cookie:")).unwrap_or_else(|| panic!("login failed: {out}"));
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "session cookie attributes: {line}");
    line.split_once(':').unwrap().1.trim().split(';').next().unwrap().to_string()
}

/// `edge-agent users add NAME --role ROLE --config CFG` with the password on standard input.
pub fn users_add(cfg: &Path, name: &str, role: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child =
        command().args(["users", "add", name, "--role", role, "--config"]).arg(cfg).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

/// The duty desk's address, from the agent's log.
pub fn web_addr(agent: &Agent) -> String {
    agent.wait_log("duty desk listening", 1, Duration::from_secs(90));
    let log = agent.log();
    let line = log.lines().find(|l| l.contains("duty desk listening")).unwrap();
    let start = line.find("address=").unwrap() + "address=".len();
    line[start..].split_whitespace().next().unwrap().to_string()
}
