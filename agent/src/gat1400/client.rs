//! The device side of GA/T 1400's HTTP interface: every request carries `User-Identify: <DeviceID>` and a
//! VIID JSON body; a `401` with a digest challenge is answered once with the digest of the password
//! ([`super::digest`]). Blocking (`ureq`): it runs on the uplink's own thread.

use std::io::Read;
use std::time::Duration;

use edge_config::Secret;
use serde_json::{json, Value};

use super::digest::{self, Challenge};

/// The content type sent; the standard's servers answer with it or `application/json`.
pub const CONTENT_TYPE: &str = "application/VIID+JSON;charset=UTF-8";

/// Why a request did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No answer, a timeout or a server error: try again later.
    Unreachable(String),
    /// The server does not accept this device's user and password.
    Unauthorised(String),
    /// The server wants the device registered (again) before it takes this request.
    NotRegistered,
    /// The server refused the request itself (its status code and reason): sending it again will not help.
    Refused(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Unreachable(e) => write!(f, "unreachable: {e}"),
            Fault::Unauthorised(e) => write!(f, "unauthorised: {e}"),
            Fault::NotRegistered => f.write_str("not registered"),
            Fault::Refused(e) => write!(f, "refused: {e}"),
        }
    }
}

/// One answer.
struct Answer {
    status: u16,
    challenge: Option<Challenge>,
    body: String,
}

pub struct Client {
    agent: ureq::Agent,
    base: String,
    pub device_id: String,
    user: String,
    password: Secret,
    /// Requests made with the current nonce (`nc`).
    nc: u32,
}

/// A `ResponseStatusObject`'s code and text.
pub fn status_of(object: &Value) -> (String, String) {
    let code = match &object["StatusCode"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    (code, object["StatusString"].as_str().unwrap_or("").to_string())
}

impl Client {
    pub fn new(server: &str, device_id: &str, user: &str, password: Secret, timeout: Duration, ca: Option<&[u8]>) -> Result<Self, String> {
        let agent = crate::notify::http_agent(timeout, ca)?;
        Ok(Self { agent, base: server.trim_end_matches('/').to_string(), device_id: device_id.to_string(), user: user.to_string(), password, nc: 0 })
    }

    /// A POST with `body`, else a GET.
    fn send(&self, path: &str, body: Option<&[u8]>, authorization: Option<&str>) -> Result<Answer, Fault> {
        let url = format!("{}{path}", self.base);
        let result = match body {
            Some(body) => {
                let mut r = self.agent.post(&url).header("Content-Type", CONTENT_TYPE).header("Accept", CONTENT_TYPE).header("User-Identify", &self.device_id);
                if let Some(a) = authorization {
                    r = r.header("Authorization", a);
                }
                r.send(body)
            }
            None => {
                let mut r = self.agent.get(&url).header("Accept", CONTENT_TYPE).header("User-Identify", &self.device_id);
                if let Some(a) = authorization {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
        };
        let mut response = result.map_err(|e| Fault::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        let challenge = response.headers().get_all("WWW-Authenticate").iter().filter_map(|v| v.to_str().ok()).find_map(digest::parse_challenge);
        let mut text = String::new();
        let _ = response.body_mut().as_reader().take(1 << 20).read_to_string(&mut text);
        Ok(Answer { status, challenge, body: text })
    }

    /// Sends a request; a digest challenge is answered once with the password.
    fn exchange(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Value), Fault> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let mut answer = self.send(path, bytes.as_deref(), None)?;
        if answer.status == 401 {
            let Some(challenge) = answer.challenge.take() else { return Err(Fault::Unauthorised("401 without a digest challenge".into())) };
            self.nc = 1;
            let cnonce = hex::encode(rand::random::<[u8; 8]>());
            let authorization = digest::authorization(&challenge, &self.user, self.password.expose(), method, path, self.nc, &cnonce);
            answer = self.send(path, bytes.as_deref(), Some(&authorization))?;
            if answer.status == 401 {
                return Err(Fault::Unauthorised(format!("the server refused the digest for user {:?} (realm {:?})", self.user, challenge.realm)));
            }
        }
        let parsed: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
        match answer.status {
            200..=299 => Ok((answer.status, parsed)),
            500..=599 => Err(Fault::Unreachable(format!("HTTP {}: {}", answer.status, short(&answer.body)))),
            s => Err(Fault::Refused(format!("HTTP {s}: {}", short(&answer.body)))),
        }
    }

    /// `POST /VIID/System/Register` (digest).
    pub fn register(&mut self) -> Result<(), Fault> {
        let body = json!({ "RegisterObject": { "DeviceID": self.device_id } });
        // A registration refused with a status code is the platform not taking this device: as unauthorised.
        self.system("/VIID/System/Register", &body).map_err(|f| match f {
            Fault::Refused(reason) => Fault::Unauthorised(reason),
            f => f,
        })
    }

    /// `POST /VIID/System/UnRegister` (digest).
    pub fn unregister(&mut self) -> Result<(), Fault> {
        let body = json!({ "UnRegisterObject": { "DeviceID": self.device_id } });
        self.system("/VIID/System/UnRegister", &body)
    }

    /// `POST /VIID/System/Keepalive`; a `401` means the registration is gone.
    pub fn keepalive(&mut self) -> Result<(), Fault> {
        let body = json!({ "KeepaliveObject": { "DeviceID": self.device_id } });
        self.system("/VIID/System/Keepalive", &body).map_err(|f| match f {
            Fault::Unauthorised(_) => Fault::NotRegistered,
            f => f,
        })
    }

    /// A system request answered by one `ResponseStatusObject`.
    fn system(&mut self, path: &str, body: &Value) -> Result<(), Fault> {
        let (_, answer) = self.exchange("POST", path, Some(body))?;
        let (code, text) = status_of(&answer["ResponseStatusObject"]);
        match code.as_str() {
            "0" => Ok(()),
            "" => Err(Fault::Refused(format!("{path}: no ResponseStatusObject in the answer"))),
            c => Err(Fault::Refused(format!("{path}: StatusCode {c}: {text}"))),
        }
    }

    /// `GET /VIID/System/Time`: the server's clock minus ours, seconds.
    pub fn clock_offset(&mut self) -> Result<Option<i64>, Fault> {
        let (_, answer) = self.exchange("GET", "/VIID/System/Time", None)?;
        let local = answer["SystemTimeObject"]["LocalTime"].as_str().unwrap_or("");
        let parsed = chrono::NaiveDateTime::parse_from_str(local, "%Y%m%d%H%M%S").ok().and_then(|t| t.and_local_timezone(chrono::Local).single());
        Ok(parsed.map(|t| (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()))
    }

    /// Posts `envelope` to `path`; the result of each of `ids` (in order): `Ok`, the server's reason for
    /// refusing it, or `None` when the answer does not say.
    pub fn upload(&mut self, path: &str, envelope: &Value, ids: &[String]) -> Result<Vec<Option<Result<(), String>>>, Fault> {
        let (_, answer) = match self.exchange("POST", path, Some(envelope)) {
            Err(Fault::Unauthorised(_)) => return Err(Fault::NotRegistered),
            other => other?,
        };
        let list = &answer["ResponseStatusListObject"]["ResponseStatusObject"];
        let statuses: Vec<&Value> = match list {
            Value::Array(items) => items.iter().collect(),
            Value::Object(_) => vec![list],
            _ => return Err(Fault::Unreachable(format!("{path}: no ResponseStatusListObject in the answer: {}", short(&answer.to_string())))),
        };
        let mut results = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            // Matched by `Id` when the server gives it, else by position.
            let s = statuses.iter().find(|s| s["Id"].as_str() == Some(id.as_str())).or_else(|| statuses.get(i));
            results.push(s.map(|s| match status_of(s) {
                (c, _) if c == "0" => Ok(()),
                (c, text) => Err(format!("StatusCode {c}: {text}")),
            }));
        }
        Ok(results)
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}
