//! A GA/T 1400 (视图库) server for tests, strict about what the standard requires so the agent is held to
//! the protocol rather than to our own reading of it:
//!
//! - every request carries `User-Identify` with a 20-digit device id and (for a body) a VIID JSON content
//!   type (`application/VIID+JSON`, `application/*+JSON`, `application/json`, any charset);
//! - `POST /VIID/System/Register` without credentials is answered `401` with a fresh random nonce
//!   (`WWW-Authenticate: Digest realm, qop="auth", nonce, opaque, algorithm=MD5`); the retry must answer it
//!   with an RFC 2617/7616 MD5 digest over the request's own method and URI, a nonce this server issued
//!   and has not seen that `nc` of, `qop=auth`, a `cnonce` and the opaque; anything else is `401` again;
//! - keepalives and uploads from a device that is not registered (a restarted server) are `401`;
//! - `POST /VIID/MotorVehicles` and `/VIID/Persons` take the list envelopes; each object's ids have their
//!   lengths and parts (a 48-digit object id whose first 41 digits are its `SourceID`, of the device, `02`
//!   and a valid shot time), times, codes and boxes are checked, every picture's base64 must decode to a
//!   JPEG of the `Width` × `Height` it claims; a person must carry no face fields or face pictures. Each
//!   object gets its own `ResponseStatusObject` ("0", or "8" with what is wrong), and what was wrong is
//!   kept in [`Gat1400Server::violations`].

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use md5::Digest as _;
use serde_json::{json, Value};

/// Who may register.
#[derive(Debug, Clone)]
pub struct Account {
    pub device_id: String,
    pub user: String,
    pub password: String,
    pub realm: String,
}

/// One registration attempt.
#[derive(Debug, Clone)]
pub struct RegisterAttempt {
    pub at: Instant,
    /// Whether it carried an `Authorization` header, and whether that was right.
    pub with_digest: bool,
    pub accepted: bool,
}

/// A record the server took (`StatusCode` "0"), as it came.
#[derive(Debug, Clone)]
pub struct Taken {
    pub path: String,
    pub object: Value,
    pub at: Instant,
}

/// What the server has seen.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub registers: Vec<RegisterAttempt>,
    pub keepalives: usize,
    pub unregisters: usize,
    pub time_requests: usize,
    /// Every record accepted, duplicates included.
    pub taken: Vec<Taken>,
    /// Records refused on purpose ([`Gat1400Server::refuse_plate`]), by id.
    pub refused: Vec<String>,
    /// What did not follow the protocol.
    pub violations: Vec<String>,
    /// Upload requests answered (any result).
    pub uploads: usize,
}

struct State {
    account: Account,
    /// Nonces issued, with the `nc` values used.
    nonces: HashMap<String, HashSet<String>>,
    opaque: String,
    registered: bool,
    refuse_plates: HashSet<String>,
    seen: Seen,
}

pub struct Gat1400Server {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn md5_hex(s: &str) -> String {
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

impl Gat1400Server {
    /// Serves on `port` (0: a free one) until dropped.
    pub fn start(port: u16, account: Account) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the GA/T 1400 test server");
        listener.set_nonblocking(true).expect("nonblocking listener");
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
        let state = Arc::new(Mutex::new(State {
            account,
            nonces: HashMap::new(),
            opaque: hex::encode(rand::random::<[u8; 8]>()),
            registered: false,
            refuse_plates: HashSet::new(),
            seen: Seen::default(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Self { port, state, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it has seen so far.
    pub fn seen(&self) -> Seen {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).seen.clone()
    }

    /// Waits until `done` holds for what it has seen (or `timeout`), and returns that.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let until = Instant::now() + timeout;
        loop {
            let seen = self.seen();
            if done(&seen) || Instant::now() >= until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Records with this plate are refused (`StatusCode` "3", 设备错), as a platform refuses what it cannot
    /// store.
    pub fn refuse_plate(&self, plate: &str) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).refuse_plates.insert(plate.to_string());
    }

    /// Stops serving and frees the port.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Gat1400Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One HTTP request.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, path, headers, body })
}

fn respond(mut stream: &TcpStream, status: u16, extra: &[(&str, String)], body: &Value) {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let text = body.to_string();
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: application/VIID+JSON;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n", text.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}

fn local_time() -> String {
    chrono::Local::now().format("%Y%m%d%H%M%S").to_string()
}

fn status_object(url: &str, code: &str, text: &str, id: &str) -> Value {
    json!({ "RequestURL": url, "StatusCode": code, "StatusString": text, "Id": id, "LocalTime": local_time() })
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A `YYYYMMDDhhmmss` time that exists.
fn is_time(s: &str) -> bool {
    is_digits(s, 14) && chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").is_ok()
}

fn is_json_type(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&stream) else { return };
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let url = req.path.clone();
    let device = req.header("User-Identify").unwrap_or("").to_string();
    if !is_digits(&device, 20) {
        st.seen.violations.push(format!("{} {}: User-Identify {device:?} is not a 20-digit device id", req.method, req.path));
        respond(&stream, 400, &[], &json!({ "ResponseStatusObject": status_object(&url, "4", "User-Identify missing", "") }));
        return;
    }
    if req.method == "POST" && !req.header("Content-Type").is_some_and(is_json_type) {
        st.seen.violations.push(format!("{}: Content-Type {:?} is not a VIID JSON type", req.path, req.header("Content-Type")));
        respond(&stream, 400, &[], &json!({ "ResponseStatusObject": status_object(&url, "7", "not JSON", &device) }));
        return;
    }
    let body: Value = if req.body.is_empty() { Value::Null } else { serde_json::from_slice(&req.body).unwrap_or(Value::Null) };
    if req.method == "POST" && body.is_null() {
        st.seen.violations.push(format!("{}: the body is not JSON", req.path));
        respond(&stream, 400, &[], &json!({ "ResponseStatusObject": status_object(&url, "7", "Invalid JSON Format", &device) }));
        return;
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/VIID/System/Register") | ("POST", "/VIID/System/UnRegister") => {
            let unregister = req.path.ends_with("UnRegister");
            let object = if unregister { "UnRegisterObject" } else { "RegisterObject" };
            if body[object]["DeviceID"].as_str() != Some(device.as_str()) {
                st.seen.violations.push(format!("{}: {object}.DeviceID {} is not the User-Identify {device}", req.path, body[object]["DeviceID"]));
            }
            let authorization = req.header("Authorization").map(str::to_string);
            let ok = authorization.as_deref().is_some_and(|a| check_digest(&mut st, &req.method, &req.path, a, &device));
            if !unregister {
                st.seen.registers.push(RegisterAttempt { at: Instant::now(), with_digest: authorization.is_some(), accepted: ok });
            }
            if !ok {
                let nonce = hex::encode(rand::random::<[u8; 16]>());
                st.nonces.insert(nonce.clone(), HashSet::new());
                let challenge = format!("Digest realm=\"{}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{}\", algorithm=MD5", st.account.realm, st.opaque);
                respond(&stream, 401, &[("WWW-Authenticate", challenge)], &json!({}));
                return;
            }
            if unregister {
                st.seen.unregisters += 1;
                st.registered = false;
            } else {
                st.registered = true;
            }
            respond(&stream, 200, &[], &json!({ "ResponseStatusObject": status_object(&url, "0", "OK", &device) }));
        }
        ("GET", "/VIID/System/Time") => {
            st.seen.time_requests += 1;
            respond(
                &stream,
                200,
                &[],
                &json!({ "SystemTimeObject": { "VIIDServerID": st.account.device_id, "TimeMode": "1", "LocalTime": local_time(), "TimeZone": "Asia/Shanghai" } }),
            );
        }
        ("POST", "/VIID/System/Keepalive") => {
            if body["KeepaliveObject"]["DeviceID"].as_str() != Some(device.as_str()) {
                st.seen.violations.push(format!("keepalive: KeepaliveObject.DeviceID {} is not {device}", body["KeepaliveObject"]["DeviceID"]));
            }
            if !st.registered {
                unauthorised(&mut st, &stream);
                return;
            }
            st.seen.keepalives += 1;
            respond(&stream, 200, &[], &json!({ "ResponseStatusObject": status_object(&url, "0", "OK", &device) }));
        }
        ("POST", "/VIID/MotorVehicles") | ("POST", "/VIID/Persons") => {
            if !st.registered {
                unauthorised(&mut st, &stream);
                return;
            }
            st.seen.uploads += 1;
            let person = req.path == "/VIID/Persons";
            let (list, item) = if person { ("PersonListObject", "PersonObject") } else { ("MotorVehicleListObject", "MotorVehicleObject") };
            let Some(objects) = body[list][item].as_array().filter(|o| !o.is_empty()).cloned() else {
                st.seen.violations.push(format!("{}: no {list}.{item}[]", req.path));
                respond(&stream, 200, &[], &json!({ "ResponseStatusListObject": { "ResponseStatusObject": [status_object(&url, "8", "no objects", "")] } }));
                return;
            };
            let mut statuses = Vec::new();
            for object in objects {
                let id_field = if person { "PersonID" } else { "MotorVehicleID" };
                let id = object[id_field].as_str().unwrap_or("").to_string();
                let problems = if person { check_person(&object) } else { check_vehicle(&object) };
                let plate = object["PlateNo"].as_str().unwrap_or("");
                if !problems.is_empty() {
                    let text = problems.join("; ");
                    st.seen.violations.push(format!("{id}: {text}"));
                    statuses.push(status_object(&url, "8", &text, &id));
                } else if st.refuse_plates.contains(plate) {
                    st.seen.refused.push(id.clone());
                    statuses.push(status_object(&url, "3", "Device Error: the record cannot be stored", &id));
                } else {
                    st.seen.taken.push(Taken { path: req.path.clone(), object, at: Instant::now() });
                    statuses.push(status_object(&url, "0", "OK", &id));
                }
            }
            respond(&stream, 200, &[], &json!({ "ResponseStatusListObject": { "ResponseStatusObject": statuses } }));
        }
        _ => {
            st.seen.violations.push(format!("{} {}: not a resource of this server", req.method, req.path));
            respond(&stream, 404, &[], &json!({ "ResponseStatusObject": status_object(&url, "4", "Invalid Operation", &device) }));
        }
    }
}

/// A `401` with a fresh challenge (the device must register again).
fn unauthorised(st: &mut State, stream: &TcpStream) {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    st.nonces.insert(nonce.clone(), HashSet::new());
    let challenge = format!("Digest realm=\"{}\", qop=\"auth\", nonce=\"{nonce}\", opaque=\"{}\", algorithm=MD5", st.account.realm, st.opaque);
    respond(stream, 401, &[("WWW-Authenticate", challenge)], &json!({}));
}

/// `key=value` / `key="value"` pairs of an `Authorization: Digest …` header.
fn digest_params(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.strip_prefix("Digest ")?;
    let mut out = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect::<String>().trim().to_string();
        }
        out.insert(key, value);
    }
    Some(out)
}

/// Whether `header` is a right digest for `method uri` with a nonce this server issued (and an `nc` not
/// used with it before).
fn check_digest(st: &mut State, method: &str, uri: &str, header: &str, device: &str) -> bool {
    let Some(p) = digest_params(header) else {
        st.seen.violations.push(format!("Authorization is not a digest: {header}"));
        return false;
    };
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let (user, realm, nonce, qop, nc, cnonce, response) = (get("username"), get("realm"), get("nonce"), get("qop"), get("nc"), get("cnonce"), get("response"));
    let mut problems = Vec::new();
    if get("uri") != uri {
        problems.push(format!("uri {:?} is not the request's {uri:?}", get("uri")));
    }
    if realm != st.account.realm {
        problems.push(format!("realm {realm:?}"));
    }
    if qop != "auth" || !(nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit())) || cnonce.is_empty() {
        problems.push(format!("qop {qop:?}, nc {nc:?}, cnonce {cnonce:?}: qop=auth needs an 8-hex-digit nc and a cnonce"));
    }
    if get("opaque") != st.opaque {
        problems.push("opaque not returned".into());
    }
    if p.get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
        problems.push(format!("algorithm {:?}", get("algorithm")));
    }
    match st.nonces.get_mut(&nonce).map(|used| used.insert(nc.clone())) {
        None => problems.push(format!("nonce {nonce:?} was not issued by this server")),
        Some(false) => problems.push(format!("nc {nc} reused with nonce {nonce}")),
        Some(true) => {}
    }
    if !problems.is_empty() {
        st.seen.violations.push(format!("digest: {}", problems.join("; ")));
        return false;
    }
    // A wrong user or password is not a protocol violation: it is refused.
    let ha1 = md5_hex(&format!("{}:{}:{}", st.account.user, st.account.realm, st.account.password));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let expected = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    user == st.account.user && response == expected && device == st.account.device_id
}

fn str_of<'a>(o: &'a Value, k: &str) -> Option<&'a str> {
    o[k].as_str()
}

/// The checks every object shares: ids, box, pictures. `kind` is the object type inside its id.
fn check_common(o: &Value, id_field: &str, kind: &str, problems: &mut Vec<String>) {
    let id = str_of(o, id_field).unwrap_or("");
    let source = str_of(o, "SourceID").unwrap_or("");
    let device = str_of(o, "DeviceID").unwrap_or("");
    if !is_digits(device, 20) {
        problems.push(format!("DeviceID {device:?} is not 20 digits"));
    }
    if !is_digits(source, 41) || !source.starts_with(device) || &source[20..22] != "02" || !is_time(&source[22..36]) {
        problems.push(format!("SourceID {source:?} is not device id + 02 + YYYYMMDDhhmmss + 5 digits"));
    }
    if !is_digits(id, 48) || !id.starts_with(source) || id.get(41..43) != Some(kind) {
        problems.push(format!("{id_field} {id:?} is not SourceID + {kind} + 5 digits"));
    }
    if o["InfoKind"].as_i64().is_none_or(|k| !(0..=2).contains(&k)) {
        problems.push(format!("InfoKind {} is not 0, 1 or 2", o["InfoKind"]));
    }
    let coord = |k: &str| o[k].as_u64();
    match (coord("LeftTopX"), coord("LeftTopY"), coord("RightBtmX"), coord("RightBtmY")) {
        (Some(x1), Some(y1), Some(x2), Some(y2)) if x1 < x2 && y1 < y2 => {}
        _ => problems.push("LeftTopX/Y, RightBtmX/Y are not a box of non-negative integers".into()),
    }
    let images = o["SubImageList"]["SubImageInfoObject"].as_array().cloned().unwrap_or_default();
    if o.get("SubImageList").is_some() && images.is_empty() {
        problems.push("SubImageList without SubImageInfoObject".into());
    }
    for (i, img) in images.iter().enumerate() {
        let at = format!("SubImageInfoObject[{i}]");
        let image_id = str_of(img, "ImageID").unwrap_or("");
        if !is_digits(image_id, 41) || &image_id[20..22] != "02" || !is_time(&image_id[22..36]) {
            problems.push(format!("{at}.ImageID {image_id:?} is not 41 digits of device, 02, time, sequence"));
        }
        if !is_digits(str_of(img, "DeviceID").unwrap_or(""), 20) {
            problems.push(format!("{at}.DeviceID is not 20 digits"));
        }
        if !["01", "02", "10", "14"].contains(&str_of(img, "Type").unwrap_or("")) {
            problems.push(format!("{at}.Type {} is not a picture type this checkpoint may send (01, 02, 10, 14)", img["Type"]));
        }
        if str_of(img, "FileFormat") != Some("Jpeg") {
            problems.push(format!("{at}.FileFormat {} is not Jpeg", img["FileFormat"]));
        }
        if !str_of(img, "ShotTime").is_some_and(is_time) {
            problems.push(format!("{at}.ShotTime {} is not YYYYMMDDhhmmss", img["ShotTime"]));
        }
        if img["EventSort"].as_i64().is_none() {
            problems.push(format!("{at}.EventSort is not an integer"));
        }
        let data = str_of(img, "Data").unwrap_or("");
        match base64::engine::general_purpose::STANDARD.decode(data) {
            Ok(jpeg) if jpeg.starts_with(&[0xFF, 0xD8]) => match image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg) {
                Ok(decoded) if Some(u64::from(decoded.width())) == img["Width"].as_u64() && Some(u64::from(decoded.height())) == img["Height"].as_u64() => {}
                Ok(decoded) => {
                    problems.push(format!("{at}: the JPEG is {}x{}, not the Width {} x Height {} it claims", decoded.width(), decoded.height(), img["Width"], img["Height"]))
                }
                Err(e) => problems.push(format!("{at}: the JPEG does not decode: {e}")),
            },
            Ok(_) => problems.push(format!("{at}.Data is not a JPEG")),
            Err(e) => problems.push(format!("{at}.Data is not base64: {e}")),
        }
    }
}

/// Plate colour codes (GA 24.8 as GA/T 1400 uses them).
const PLATE_COLORS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "99"];

fn check_vehicle(o: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_common(o, "MotorVehicleID", "02", &mut problems);
    if let Some(t) = str_of(o, "TollgateID").filter(|t| !is_digits(t, 20)) {
        problems.push(format!("TollgateID {t:?} is not 20 digits"));
    }
    if !str_of(o, "PassTime").is_some_and(is_time) {
        problems.push(format!("PassTime {} is not YYYYMMDDhhmmss", o["PassTime"]));
    }
    let has_plate = str_of(o, "HasPlate");
    if !matches!(has_plate, Some("0") | Some("1")) {
        problems.push(format!("HasPlate {} is not \"0\" or \"1\"", o["HasPlate"]));
    }
    let plate = str_of(o, "PlateNo").unwrap_or("");
    if plate.is_empty() || plate.chars().count() > 15 {
        problems.push(format!("PlateNo {plate:?} is empty or longer than 15"));
    }
    if !str_of(o, "PlateColor").is_some_and(|c| PLATE_COLORS.contains(&c)) {
        problems.push(format!("PlateColor {} is not a colour code", o["PlateColor"]));
    }
    if !str_of(o, "PlateClass").is_some_and(|c| is_digits(c, 2)) {
        problems.push(format!("PlateClass {} is not a 2-digit code", o["PlateClass"]));
    }
    if !str_of(o, "Direction").is_some_and(|d| matches!(d, "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9")) {
        problems.push(format!("Direction {} is not 1 to 9", o["Direction"]));
    }
    if o["LaneNo"].as_u64().is_none() {
        problems.push(format!("LaneNo {} is not an integer", o["LaneNo"]));
    }
    if !str_of(o, "VehicleClass").is_some_and(|c| c.len() == 3 && c.is_ascii()) {
        problems.push(format!("VehicleClass {} is not a 3-character code", o["VehicleClass"]));
    }
    if !str_of(o, "VehicleColor").is_some_and(|c| PLATE_COLORS.contains(&c)) {
        problems.push(format!("VehicleColor {} is not a colour code", o["VehicleColor"]));
    }
    if let Some(r) = str_of(o, "PlateReliability") {
        if r.parse::<u32>().map_or(true, |r| r > 100) {
            problems.push(format!("PlateReliability {r:?} is not 0 to 100"));
        }
    }
    problems
}

fn check_person(o: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    check_common(o, "PersonID", "01", &mut problems);
    for key in ["PersonAppearTime", "PersonDisAppearTime", "LocationMarkTime"] {
        if !str_of(o, key).is_some_and(is_time) {
            problems.push(format!("{key} {} is not YYYYMMDDhhmmss", o[key]));
        }
    }
    // This checkpoint does no face recognition: no face fields, no face pictures.
    if let Some(map) = o.as_object() {
        for key in map.keys().filter(|k| k.contains("Face")) {
            problems.push(format!("{key}: a face field from a checkpoint that does no face recognition"));
        }
    }
    let images = o["SubImageList"]["SubImageInfoObject"].as_array().cloned().unwrap_or_default();
    if images.iter().any(|i| i["Type"] == "11") {
        problems.push("a face picture (Type 11)".into());
    }
    problems
}
