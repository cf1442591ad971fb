//! One policy document from the platform: parsed strictly (unknown fields are errors, sizes are capped),
//! every problem reported with its path, and its Ed25519 signature checked over canonical bytes.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use edge_config::{Issue, PlateMode, Rule};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `schema` of a policy document.
pub const POLICY_SCHEMA: &str = "edge-agent/policy/v1";
/// Largest document accepted (a 20,000-plate watch list is about 300 KB).
pub const MAX_DOCUMENT_BYTES: usize = 2 << 20;

/// Switches a document may set on a camera of this checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSwitches {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub detect_fps: Option<f64>,
    #[serde(default)]
    pub plates: Option<PlateMode>,
}

/// The document as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    schema: String,
    version: u64,
    issued_at: String,
    issued_by: String,
    #[serde(default)]
    rules: Vec<Value>,
    #[serde(default)]
    cameras: BTreeMap<String, CameraSwitches>,
    #[serde(default)]
    signature: Option<String>,
    /// The signer's public key (hex), covered by the signature.
    #[serde(default)]
    signed_by: Option<String>,
}

/// A document that parsed; [`Document::rules`] keep the ids the platform gave them.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub version: u64,
    pub issued_at: String,
    pub issued_by: String,
    pub rules: Vec<Rule>,
    pub cameras: BTreeMap<String, CameraSwitches>,
    /// The bytes as received (what is persisted).
    pub bytes: Vec<u8>,
}

/// Why a document was not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Problems with their paths in the document.
    Invalid(Vec<Issue>),
    /// Not signed by a trusted key.
    Signature(String),
}

impl Refused {
    pub fn issues(&self) -> Vec<Issue> {
        match self {
            Refused::Invalid(issues) => issues.clone(),
            Refused::Signature(reason) => vec![Issue::new("signature", reason.clone())],
        }
    }
}

/// The JSON text a signature covers: the document without `signature`, object keys sorted, no spaces.
pub fn canonical(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                out.push('{');
                let mut keys: Vec<&String> = map.keys().filter(|k| *k != "signature").collect();
                keys.sort();
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    // Only the top level's `signature` is left out.
    match value {
        Value::Object(_) => write(value, &mut out),
        other => out.push_str(&other.to_string()),
    }
    out
}

/// Parses and checks a document; with `trusted_keys` (hex Ed25519 public keys) it must be signed by one.
pub fn parse(bytes: &[u8], trusted_keys: &[String]) -> Result<Document, Refused> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Refused::Invalid(vec![Issue::new("(document)", format!("{} bytes, at most {MAX_DOCUMENT_BYTES} accepted", bytes.len()))]));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| Refused::Invalid(vec![Issue::new("(document)", format!("not JSON: {e}"))]))?;
    if !value.is_object() {
        return Err(Refused::Invalid(vec![Issue::new("(document)", "a policy document is a JSON object")]));
    }
    let raw: Raw = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        Refused::Invalid(vec![Issue::new(if path == "." { "(document)".to_string() } else { path }, e.into_inner().to_string())])
    })?;
    if !trusted_keys.is_empty() {
        verify(&value, raw.signature.as_deref(), raw.signed_by.as_deref(), trusted_keys).map_err(Refused::Signature)?;
    }
    let mut issues = Vec::new();
    if raw.schema != POLICY_SCHEMA {
        issues.push(Issue::new("schema", format!("{:?}: expected {POLICY_SCHEMA:?}", raw.schema)));
    }
    if raw.version == 0 {
        issues.push(Issue::new("version", "must be 1 or more"));
    }
    if chrono::DateTime::parse_from_rfc3339(&raw.issued_at).is_err() {
        issues.push(Issue::new("issued_at", format!("{:?} is not an RFC 3339 time", raw.issued_at)));
    }
    if raw.issued_by.trim().is_empty() || raw.issued_by.chars().count() > 100 || raw.issued_by.chars().any(char::is_control) {
        issues.push(Issue::new("issued_by", "1 to 100 characters on one line"));
    }
    // Camera ids name topics: a malformed one is refused here rather than ignored as "not this checkpoint's".
    for id in raw.cameras.keys() {
        if let Err(why) = edge_config::check_camera_id(id) {
            issues.push(Issue::new(format!("cameras.{id}"), format!("not a camera id: {why}")));
        }
    }
    let mut rules = Vec::new();
    for (i, rule) in raw.rules.iter().enumerate() {
        match serde_path_to_error::deserialize::<_, Rule>(rule) {
            Ok(r) => rules.push(r),
            Err(e) => {
                let inner = e.path().to_string();
                let path = if inner == "." { format!("rules[{i}]") } else { format!("rules[{i}].{inner}") };
                issues.push(Issue::new(path, e.into_inner().to_string()));
            }
        }
    }
    if !issues.is_empty() {
        return Err(Refused::Invalid(issues));
    }
    Ok(Document { version: raw.version, issued_at: raw.issued_at, issued_by: raw.issued_by, rules, cameras: raw.cameras, bytes: bytes.to_vec() })
}

/// Checks a signature against the trusted keys. A document that names its signer (`signed_by`, which
/// `edge-agent policy sign` sets) says which failed: a key that is not trusted, or a document (or
/// signature) changed after it was signed. Without `signed_by` the two cannot be told apart and the
/// message says so.
pub(super) fn verify(value: &Value, signature: Option<&str>, signed_by: Option<&str>, trusted_keys: &[String]) -> Result<(), String> {
    let signature = signature.ok_or("not signed, and control.trusted_keys requires a signature")?;
    let bytes: [u8; 64] = hex::decode(signature).ok().and_then(|b| b.try_into().ok()).ok_or("not an Ed25519 signature (128 hex characters)")?;
    let signature = Signature::from_bytes(&bytes);
    let message = canonical(value);
    let key = |hex_key: &str| hex::decode(hex_key.trim()).ok()?.try_into().ok().and_then(|k: [u8; 32]| VerifyingKey::from_bytes(&k).ok());
    if let Some(signer) = signed_by {
        let short = &signer[..signer.len().min(16)];
        if !trusted_keys.iter().any(|k| k.trim().eq_ignore_ascii_case(signer)) {
            return Err(format!("signed by key {short}…, which is not one of control.trusted_keys"));
        }
        let Some(signer_key) = key(signer) else { return Err(format!("signed_by: {short}… is not an Ed25519 public key (64 hex characters)")) };
        return signer_key
            .verify(message.as_bytes(), &signature)
            .map_err(|_| format!("the signature of trusted key {short}… does not match the document: it was changed after it was signed, or the signature was altered"));
    }
    if trusted_keys.iter().filter_map(|k| key(k)).any(|k| k.verify(message.as_bytes(), &signature).is_ok()) {
        return Ok(());
    }
    Err("the signature verifies with none of control.trusted_keys: the document was changed after it was signed, or it was signed with a key that is not trusted (documents signed with `edge-agent policy sign` name their key in signed_by, which tells the two apart)".into())
}

/// A new signing key: (secret, public), hex.
pub fn keygen() -> (String, String) {
    let mut secret = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut secret);
    let key = SigningKey::from_bytes(&secret);
    (hex::encode(secret), hex::encode(key.verifying_key().to_bytes()))
}

/// The public key (hex) of a secret key (hex).
pub fn public_key(secret_hex: &str) -> Result<String, String> {
    let secret: [u8; 32] = hex::decode(secret_hex.trim()).ok().and_then(|b| b.try_into().ok()).ok_or("not an Ed25519 secret key (64 hex characters)")?;
    Ok(hex::encode(SigningKey::from_bytes(&secret).verifying_key().to_bytes()))
}

/// Signs a document (JSON) with a secret key (hex): returns it with `signature` set.
pub fn sign(document: &[u8], secret_hex: &str) -> Result<Vec<u8>, String> {
    let secret: [u8; 32] = hex::decode(secret_hex.trim()).ok().and_then(|b| b.try_into().ok()).ok_or("not an Ed25519 secret key (64 hex characters)")?;
    let mut value: Value = serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
    let key = SigningKey::from_bytes(&secret);
    let Value::Object(map) = &mut value else { return Err("a policy document is a JSON object".into()) };
    // The signer is named inside what is signed, so a verifier can say which key it was.
    map.insert("signed_by".into(), Value::String(hex::encode(key.verifying_key().to_bytes())));
    let signature = key.sign(canonical(&value).as_bytes());
    if let Value::Object(map) = &mut value {
        map.insert("signature".into(), Value::String(hex::encode(signature.to_bytes())));
    }
    serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"schema":"edge-agent/policy/v1","version":3,"issued_at":"2026-11-29T08:00:00+08:00","issued_by":"南川镇平台",
        "rules":[{"id":"wanted","kind":"watch_list","plates":["苏ED51712"],"entries":[{"plate":"京PL3N67","until":"2026-12-31T00:00:00Z","reason":"盗抢"}],"tolerance":1,"severity":"critical"}],
        "cameras":{"gate-in":{"detect_fps":3,"plates":"vehicles"}}}"#;

    #[test]
    fn a_document_parses_into_rules_and_camera_switches() {
        let d = parse(DOC.as_bytes(), &[]).unwrap();
        assert_eq!((d.version, d.rules.len(), d.rules[0].id.as_str()), (3, 1, "wanted"));
        assert_eq!(d.cameras["gate-in"].detect_fps, Some(3.0));
    }

    #[test]
    fn problems_are_reported_with_their_paths_and_unknown_fields_are_rejected() {
        let bad = DOC.replace("\"tolerance\":1", "\"tolerance\":1,\"bogus\":2").replace("\"version\":3", "\"version\":3,\"extra\":true");
        let Err(Refused::Invalid(issues)) = parse(bad.as_bytes(), &[]) else { panic!("accepted") };
        assert_eq!(issues[0].path, "extra", "{issues:?}");
        assert!(issues[0].message.contains("unknown field"), "{issues:?}");
        let bad = DOC.replace("\"tolerance\":1", "\"tolerance\":1,\"bogus\":2");
        let Err(Refused::Invalid(issues)) = parse(bad.as_bytes(), &[]) else { panic!("accepted") };
        assert!(issues[0].path.starts_with("rules[0]") && issues[0].message.contains("bogus"), "{issues:?}");
        let Err(Refused::Invalid(issues)) = parse(b"[1,2]", &[]) else { panic!("accepted") };
        assert_eq!(issues[0].path, "(document)");
        let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(matches!(parse(&huge, &[]), Err(Refused::Invalid(_))));
        let bad_camera = DOC.replace("\"gate-in\":{", "\"gate/#\":{");
        let Err(Refused::Invalid(issues)) = parse(bad_camera.as_bytes(), &[]) else { panic!("accepted") };
        assert!(issues[0].path == "cameras.gate/#" && issues[0].message.contains("'/'"), "{issues:?}");
        let wrong = DOC.replace("policy/v1", "policy/v9").replace("\"version\":3", "\"version\":0");
        let Err(Refused::Invalid(issues)) = parse(wrong.as_bytes(), &[]) else { panic!("accepted") };
        assert_eq!(issues.iter().map(|i| i.path.as_str()).collect::<Vec<_>>(), ["schema", "version"]);
    }

    #[test]
    fn signatures_cover_the_canonical_document_and_only_trusted_keys_count() {
        let (secret, public) = keygen();
        let (_, other) = keygen();
        let signed = sign(DOC.as_bytes(), &secret).unwrap();
        assert!(parse(&signed, std::slice::from_ref(&public)).is_ok());
        assert!(parse(&signed, &[other.clone(), public.clone()]).is_ok(), "any trusted key");
        assert!(matches!(parse(&signed, std::slice::from_ref(&other)), Err(Refused::Signature(_))));
        assert!(matches!(parse(DOC.as_bytes(), std::slice::from_ref(&public)), Err(Refused::Signature(_))), "unsigned");
        // Reformatting does not matter; changing a value does.
        let value: Value = serde_json::from_slice(&signed).unwrap();
        assert!(parse(&serde_json::to_vec(&value).unwrap(), std::slice::from_ref(&public)).is_ok());
        let tampered = String::from_utf8(signed.clone()).unwrap().replace("苏ED51712", "苏ED51713");
        let Err(Refused::Signature(why)) = parse(tampered.as_bytes(), std::slice::from_ref(&public)) else { panic!("accepted") };
        assert!(why.contains("does not match the document: it was changed after it was signed"), "{why}");
        // Signed by a key the agent does not trust: said so, not "tampered".
        let Err(Refused::Signature(why)) = parse(&signed, std::slice::from_ref(&other)) else { panic!("accepted") };
        assert!(why.starts_with("signed by key ") && why.contains("not one of control.trusted_keys"), "{why}");
        // An altered signature on a trusted key's document is a mismatch too.
        let mut v: Value = serde_json::from_slice(&signed).unwrap();
        let sig = v["signature"].as_str().unwrap().to_string();
        v["signature"] = Value::String(format!("{}{}", if sig.starts_with('0') { "1" } else { "0" }, &sig[1..]));
        let Err(Refused::Signature(why)) = parse(&serde_json::to_vec(&v).unwrap(), std::slice::from_ref(&public)) else { panic!("accepted") };
        assert!(why.contains("does not match the document"), "{why}");
        // An older document without signed_by still verifies, and a failure says both causes are possible.
        v["signature"] = Value::String(sig);
        v.as_object_mut().unwrap().remove("signed_by");
        let legacy = SigningKey::from_bytes(&hex::decode(&secret).unwrap().try_into().unwrap()).sign(canonical(&v).as_bytes());
        v["signature"] = Value::String(hex::encode(legacy.to_bytes()));
        assert!(parse(&serde_json::to_vec(&v).unwrap(), std::slice::from_ref(&public)).is_ok());
        let Err(Refused::Signature(why)) = parse(&serde_json::to_vec(&v).unwrap(), std::slice::from_ref(&other)) else { panic!("accepted") };
        assert!(why.contains("changed after it was signed, or it was signed with a key that is not trusted"), "{why}");
        assert_eq!(public_key(&secret).unwrap(), public);
    }
}
