//! A local HTTP receiver standing in for the WeCom and DingTalk group robots and a webhook: it checks each
//! request the way the services document it and answers as they do (`{"errcode":0,"errmsg":"ok"}`, their
//! own error codes for a bad signature, a bad image and too many messages a minute); over HTTP, or HTTPS
//! with a certificate of the test CA like a private gateway.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Digest as _;
use serde_json::Value;
use sha2::Sha256;
use tokio_rustls::rustls;

/// One request as received, with what the receiver made of it.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body as sent.
    pub raw: Vec<u8>,
    pub at: Instant,
    /// The receiver's answer: 0 when it accepted the request, else the service's error code.
    pub errcode: i64,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The services' rules the receiver enforces.
#[derive(Debug, Clone)]
pub struct Rules {
    /// DingTalk's signing secret.
    pub dingtalk_secret: String,
    /// Messages a minute per robot before the rate-limit answer.
    pub per_minute: usize,
}

pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The service's answer to one request: its error code (0: accepted).
fn judge(rules: &Rules, path: &str, query: &[(String, String)], body: &Value, recent: usize) -> i64 {
    let q = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    if recent >= rules.per_minute {
        return if path.contains("robot") { 130_101 } else { 45009 };
    }
    if path.starts_with("/cgi-bin/webhook/send") {
        if q("key").is_none() {
            return 93000;
        }
        match body["msgtype"].as_str() {
            Some("markdown") if body["markdown"]["content"].as_str().is_some_and(|c| !c.is_empty() && c.len() <= 4096) => 0,
            Some("image") => {
                let Ok(jpeg) = base64::engine::general_purpose::STANDARD.decode(body["image"]["base64"].as_str().unwrap_or("")) else { return 40009 };
                let md5 = hex::encode(md5::Md5::digest(&jpeg));
                if jpeg.len() > 2 << 20 || !jpeg.starts_with(&[0xFF, 0xD8]) {
                    40009
                } else if body["image"]["md5"].as_str() != Some(md5.as_str()) {
                    301019
                } else {
                    0
                }
            }
            _ => 40008,
        }
    } else if path.starts_with("/robot/send") {
        let (Some(_), Some(ts), Some(sign)) = (q("access_token"), q("timestamp"), q("sign")) else { return 310_000 };
        let Ok(ts) = ts.parse::<u64>() else { return 310_000 };
        // The timestamp must be within an hour of the service's clock.
        if now_ms().abs_diff(ts) > 3_600_000 {
            return 310_000;
        }
        let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(rules.dingtalk_secret.as_bytes(), format!("{ts}\n{}", rules.dingtalk_secret).as_bytes()));
        if sign != expected {
            return 310_000;
        }
        match body["msgtype"].as_str() {
            Some("markdown") if body["markdown"]["title"].is_string() && body["markdown"]["text"].is_string() => 0,
            _ => 40035,
        }
    } else {
        0
    }
}

/// Reads one request from `stream`, judges it and answers.
fn serve<S: Read + Write>(stream: S, rules: &Rules, seen: &Mutex<Vec<Request>>) -> Option<S> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.trim().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length: usize = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let raw = body;
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let mut all = seen.lock().unwrap();
    let minute_ago = Instant::now() - Duration::from_secs(60);
    let recent = all.iter().filter(|r: &&Request| r.path == path && r.at > minute_ago && r.errcode == 0).count();
    let errcode = judge(rules, path, &query, &body, recent);
    all.push(Request { path: path.to_string(), query, headers, body, raw, at: Instant::now(), errcode });
    drop(all);
    let answer = format!("{{\"errcode\":{errcode},\"errmsg\":\"{}\"}}", if errcode == 0 { "ok" } else { "refused by the test receiver" });
    let mut stream = reader.into_inner();
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}", answer.len()).ok()?;
    stream.flush().ok()?;
    Some(stream)
}

impl Receiver {
    /// Listens on `port` (0: a free one).
    pub fn start(port: u16, rules: Rules) -> Self {
        Self::listen(port, rules, None)
    }

    /// Listens over HTTPS with the certificate and key (PEM files), as a private gateway would.
    pub fn start_tls(rules: Rules, cert: &Path, key: &Path) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config =
            rustls::ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions().unwrap().with_no_client_auth().with_single_cert(certs, key).unwrap();
        Self::listen(0, rules, Some(Arc::new(config)))
    }

    fn listen(port: u16, rules: Rules, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                match &tls {
                    None => {
                        serve(stream, &rules, &seen);
                    }
                    Some(config) => {
                        // A client that does not trust the certificate gives up in the handshake: nothing is recorded.
                        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else { continue };
                        if let Some(mut tls) = serve(rustls::StreamOwned::new(conn, stream), &rules, &seen) {
                            tls.conn.send_close_notify();
                            let _ = tls.flush();
                        }
                    }
                }
            }
        });
        Self { port, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the requests so far.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        let until = Instant::now() + timeout;
        loop {
            let all = self.requests();
            if done(&all) || Instant::now() > until {
                return all;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A free loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
