//! Values that must never reach a log line, an error message or a payload in clear.
//!
//! A camera URL often carries the camera's user name and password (`rtsp://admin:pw@10.0.0.5/...`) and some
//! vendors put tokens in the query string. [`CameraUrl`] keeps the raw text for GStreamer and shows everyone
//! else a redacted form; [`Secret`] is for plain secrets such as passwords.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Query parameters whose values are treated as credentials, matched case-insensitively as substrings.
const SECRET_QUERY_KEYS: &[&str] = &["pass", "pwd", "token", "secret", "auth", "key", "sig"];

/// Shown in place of anything secret.
pub const REDACTED: &str = "***";

/// A string that prints as `***` (Debug and Display) and serialises as `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text, for the one place that needs it (a connection handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// A camera source URL. Display, Debug and Serialize show [`CameraUrl::redacted`]; only
/// [`CameraUrl::expose`] returns the text with credentials, for handing to GStreamer.
#[derive(Clone, PartialEq, Eq)]
pub struct CameraUrl {
    raw: String,
    redacted: String,
}

impl CameraUrl {
    pub fn new(raw: impl Into<String>) -> Self {
        let raw = raw.into();
        let redacted = redact_url(&raw);
        Self { raw, redacted }
    }

    /// The URL with user name, password and credential-like query values replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The URL exactly as configured, credentials included. Never log this.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URI GStreamer opens: the configured URL, with a bare device path (`/dev/video0`) turned into
    /// `v4l2:///dev/video0`. Contains credentials; never log this.
    pub fn uri(&self) -> String {
        if self.raw.starts_with("/dev/") {
            format!("v4l2://{}", self.raw)
        } else {
            self.raw.clone()
        }
    }

    /// The scheme in lower case (`rtsp`, `file`, `v4l2`, ...), or `None` when the text has no `scheme:` prefix.
    pub fn scheme(&self) -> Option<String> {
        url::Url::parse(&self.uri()).ok().map(|u| u.scheme().to_ascii_lowercase())
    }

    /// Whether the URL carries a user name or password.
    pub fn has_credentials(&self) -> bool {
        url::Url::parse(&self.raw).is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
    }

    /// Replaces every occurrence of this URL's secrets in `text` (an error message from GStreamer, say)
    /// with `***`, so that text can be logged.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.raw, &self.redacted);
        if let Ok(parsed) = url::Url::parse(&self.raw) {
            let mut secrets: Vec<String> = Vec::new();
            if let Some(pw) = parsed.password() {
                secrets.push(pw.to_string());
                if let Ok(decoded) = percent_decode(pw) {
                    secrets.push(decoded);
                }
            }
            for (key, value) in parsed.query_pairs() {
                if is_secret_key(&key) && !value.is_empty() {
                    secrets.push(value.into_owned());
                }
            }
            // Longest first so that a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
            for secret in secrets.iter().filter(|s| s.len() >= 2) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CameraUrl({:?})", self.redacted)
    }
}

impl fmt::Display for CameraUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl<'de> Deserialize<'de> for CameraUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(CameraUrl::new)
    }
}

impl Serialize for CameraUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted)
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_QUERY_KEYS.iter().any(|k| key.contains(k))
}

fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
}

/// Redacts user info and credential-like query values. Text that does not parse as a URL is shown only up to
/// its scheme, since we cannot tell where a secret might be in it.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) => {
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // Both calls fail only for URLs that cannot have credentials at all (no host), which were
                // then never set, so ignoring the result is correct.
                let _ = parsed.set_username(REDACTED);
                let _ = parsed.set_password(None);
            }
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_key(&k) { REDACTED.to_string() } else { v.into_owned() };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            // The url crate percent-encodes `*`; show the marker as operators expect it.
            parsed.to_string().replace("%2A%2A%2A", REDACTED)
        }
        Err(_) => match raw.split_once("://") {
            Some((scheme, rest)) if !rest.contains('@') => format!("{scheme}://{rest}"),
            Some((scheme, _)) => format!("{scheme}://{REDACTED}"),
            None if raw.starts_with('/') && !raw.contains('@') => raw.to_string(),
            None => REDACTED.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_in_every_printed_form() {
        let url = CameraUrl::new("rtsp://admin:hunter2@10.0.0.5:554/Streaming/Channels/101");
        assert_eq!(url.redacted(), "rtsp://***@10.0.0.5:554/Streaming/Channels/101");
        assert!(!format!("{url}").contains("hunter2"));
        assert!(!format!("{url:?}").contains("hunter2"));
        assert!(!format!("{url:?}").contains("admin"));
        assert_eq!(url.expose(), "rtsp://admin:hunter2@10.0.0.5:554/Streaming/Channels/101");
        assert!(url.has_credentials());
    }

    #[test]
    fn query_tokens_are_redacted() {
        let url = CameraUrl::new("http://cam.local/video.mjpg?user=op&password=s3cret&res=hd");
        assert!(!url.redacted().contains("s3cret"));
        assert!(url.redacted().contains("res=hd"));
    }

    #[test]
    fn scrub_removes_password_from_foreign_text() {
        let url = CameraUrl::new("rtsp://admin:p%40ss@cam/stream");
        let msg = "Could not open rtsp://admin:p%40ss@cam/stream (auth p@ss rejected)";
        let scrubbed = url.scrub(msg);
        assert!(!scrubbed.contains("p%40ss"), "{scrubbed}");
        assert!(!scrubbed.contains("p@ss"), "{scrubbed}");
    }

    #[test]
    fn unparseable_urls_with_at_sign_hide_everything_after_scheme() {
        assert_eq!(CameraUrl::new("rtsp://user:pw@[bad").redacted(), "rtsp://***");
        let odd = CameraUrl::new("rtsp://ad min:pw@@host");
        assert!(!odd.redacted().contains("pw") && !odd.redacted().contains("min"), "{}", odd.redacted());
        assert_eq!(CameraUrl::new("garbage").redacted(), "***");
    }

    #[test]
    fn secret_prints_stars() {
        let s = Secret::new("pw");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "pw");
    }
}
