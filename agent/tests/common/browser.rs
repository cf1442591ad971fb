//! A real Chromium, headless, driven through chromedriver's W3C WebDriver protocol.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
}

fn post(url: &str, body: Value) -> Value {
    let mut response = ureq::post(url)
        .config()
        .http_status_as_error(false)
        .build()
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let value = read(&mut response);
    if let Some(err) = value["value"]["error"].as_str() {
        panic!("WebDriver {url}: {err}: {}", value["value"]["message"]);
    }
    value
}

fn read(response: &mut ureq::http::Response<ureq::Body>) -> Value {
    let text = response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("WebDriver answer is not JSON ({e}): {text}"))
}

/// chromedriver on a free port. A port another test takes between the choice and the bind makes it exit:
/// it is started again on another port.
fn start_driver() -> (Child, String) {
    for _ in 0..5 {
        let port = testkit::broker::free_port();
        let mut driver =
            Command::new("chromedriver").arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("chromedriver (Debian package chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && driver.try_wait().ok().flatten().is_none() {
            if ureq::get(&format!("{base}/status")).call().is_ok() {
                return (driver, base);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = driver.kill();
        let _ = driver.wait();
    }
    panic!("chromedriver did not start");
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a phone-sized window.
    pub fn start(width: u32, height: u32) -> Self {
        let (driver, base) = start_driver();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", format!("--window-size={width},{height}"), "--lang=zh-CN"],
        }}}});
        let created = post(&format!("{base}/session"), caps);
        let session = created["value"]["sessionId"].as_str().expect("session id").to_string();
        Self { driver, base, session }
    }

    /// A screenshot of the page, also kept as `target/test-artifacts/{name}` (where the README's pictures
    /// come from).
    pub fn save_screenshot(&self, name: &str) -> Vec<u8> {
        let shot = self.screenshot();
        let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../test-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        std::fs::write(artifacts.join(name), &shot).unwrap();
        shot
    }

    /// Opens the duty desk at `addr` and signs in; returns once the feed page shows the user.
    pub fn sign_in(&self, addr: &str, user: &str, password: &str) {
        self.go(&format!("http://{addr}/"));
        self.type_into("#user", user);
        self.type_into("#password", password);
        self.click("#login");
        self.wait_for(
            "the feed page",
            Duration::from_secs(20),
            &format!("return document.getElementById('feed') !== null && document.getElementById('user').textContent.includes('{user}')"),
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{path}", self.base, self.session)
    }

    pub fn go(&self, url: &str) {
        post(&self.url("/url"), json!({ "url": url }));
    }

    pub fn current_url(&self) -> String {
        let mut r = ureq::get(&self.url("/url")).call().unwrap();
        read(&mut r)["value"].as_str().unwrap_or_default().to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = post(&self.url("/element"), json!({"using": "css selector", "value": css}));
        v["value"][ELEMENT].as_str().unwrap().to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        post(&self.url(&format!("/element/{id}/value")), json!({ "text": text }));
    }

    /// Clicks an element as a person would: scrolled to the middle of the window first (WebDriver counts an
    /// element under the page's sticky header as in view).
    pub fn click(&self, css: &str) {
        let id = self.find(css);
        let element = json!({ ELEMENT: id });
        post(&self.url("/execute/sync"), json!({"script": "arguments[0].scrollIntoView({block: 'center'})", "args": [element]}));
        post(&self.url(&format!("/element/{id}/click")), json!({}));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        post(&self.url("/execute/sync"), json!({"script": script, "args": []}))["value"].clone()
    }

    /// Runs an async script: the body gets `done` as its last argument.
    pub fn eval_async(&self, script: &str) -> Value {
        let wrapped = format!("const done = arguments[arguments.length - 1]; {script}");
        post(&self.url("/execute/async"), json!({"script": wrapped, "args": []}))["value"].clone()
    }

    /// Polls `script` until it returns something truthy; panics with `what` after `timeout`.
    pub fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(script);
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what} within {timeout:?}; page text:\n{}", self.eval("return document.body.innerText"));
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let mut r = ureq::get(&self.url("/screenshot")).call().unwrap();
        let v = read(&mut r);
        base64::engine::general_purpose::STANDARD.decode(v["value"].as_str().unwrap()).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
