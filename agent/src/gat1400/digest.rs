//! HTTP digest access authentication (RFC 7616, the MD5 of RFC 2617) as GA/T 1400 registration uses it:
//! the server answers `401` with `WWW-Authenticate: Digest realm="…", nonce="…", qop="auth"`, and the
//! request is sent again with `Authorization: Digest …` whose `response` proves the password without
//! sending it.

use md5::Digest as _;

/// A server's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// Whether the server offers `qop=auth` (else the RFC 2069 form, without `nc` and `cnonce`).
    pub qop_auth: bool,
    pub algorithm: Option<String>,
}

/// Parses a `WWW-Authenticate` header value; `None` unless it is a digest challenge with MD5 (or no
/// algorithm, which means MD5).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let params = parse_params(params);
    let get = |k: &str| params.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let algorithm = get("algorithm");
    if algorithm.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
        return None;
    }
    let qop_auth = get("qop").is_some_and(|q| q.split(',').any(|o| o.trim().eq_ignore_ascii_case("auth")));
    Some(Challenge { realm: get("realm")?, nonce: get("nonce")?, opaque: get("opaque"), qop_auth, algorithm })
}

/// `key=value` and `key="quoted, value"` pairs separated by commas.
pub fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect::<String>().trim().to_string();
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
        out.push((key, value));
    }
    out
}

fn md5_hex(text: &str) -> String {
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

/// The `response` of RFC 7616 §3.4.1 for MD5: with `qop=auth`, MD5(HA1:nonce:nc:cnonce:auth:HA2), else
/// MD5(HA1:nonce:HA2); HA1 = MD5(user:realm:password), HA2 = MD5(method:uri).
pub fn response(user: &str, realm: &str, password: &str, method: &str, uri: &str, nonce: &str, qop: Option<(&str, &str)>) -> String {
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// The `Authorization` header for `method uri` answering `challenge`, the `nc`-th use of its nonce.
pub fn authorization(challenge: &Challenge, user: &str, password: &str, method: &str, uri: &str, nc: u32, cnonce: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut header =
        format!("Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", algorithm=MD5", quote(user), quote(&challenge.realm), quote(&challenge.nonce), quote(uri));
    let nc = format!("{nc:08x}");
    let r = if challenge.qop_auth {
        header.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{}\"", quote(cnonce)));
        response(user, &challenge.realm, password, method, uri, &challenge.nonce, Some((&nc, cnonce)))
    } else {
        response(user, &challenge.realm, password, method, uri, &challenge.nonce, None)
    };
    header.push_str(&format!(", response=\"{r}\""));
    if let Some(o) = &challenge.opaque {
        header.push_str(&format!(", opaque=\"{}\"", quote(o)));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_2617_example_gives_its_response() {
        // RFC 2617 §3.5: Mufasa / Circle Of Life at testrealm@host.com.
        let r = response("Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", Some(("00000001", "0a4f113b")));
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn a_challenge_is_read_with_quotes_commas_and_any_case() {
        let c = parse_challenge(r#"Digest realm="viid, town", qop="auth,auth-int", nonce="abc123", opaque="5ccc", algorithm=MD5"#).unwrap();
        assert_eq!((c.realm.as_str(), c.nonce.as_str(), c.opaque.as_deref(), c.qop_auth), ("viid, town", "abc123", Some("5ccc"), true));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge(r#"Digest realm="x", nonce="n", algorithm=SHA-256"#).is_none());
        let header = authorization(&c, "dev", "pw", "POST", "/VIID/System/Register", 1, "c0ffee");
        let params = parse_params(header.trim_start_matches("Digest "));
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!((get("nc"), get("qop"), get("realm"), get("uri")), (Some("00000001"), Some("auth"), Some("viid, town"), Some("/VIID/System/Register")));
        let expected = response("dev", "viid, town", "pw", "POST", "/VIID/System/Register", "abc123", Some(("00000001", "c0ffee")));
        assert_eq!(get("response"), Some(expected.as_str()));
    }
}
