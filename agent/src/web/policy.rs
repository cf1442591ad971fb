//! What every request and response of the duty desk goes through:
//!
//! - **Host allow-list.** The `Host` header must name this PC: an IP address, `localhost`, the PC's host
//!   name (also with `.local`), or a name in `web.allowed_hosts`. A page on another site that resolves its
//!   own name to this PC (DNS rebinding) gets `421` and cannot reach the sign-in or set-up.
//! - **Same origin for changes.** A request that changes something (anything but GET/HEAD) with an
//!   `Origin` that is not this page's, or a `Sec-Fetch-Site` other than `same-origin`, gets `403`:
//!   another site cannot submit forms here, whatever the browser does with `SameSite` cookies. Clients that
//!   send neither (command-line tools) are not browsers and pass.
//! - **Security headers on every response**: `nosniff`, no framing, a strict CSP (no inline code, forms
//!   only to this page, no `<base>`), no referrer to other sites, HSTS under TLS, and `no-store` unless a route chose
//!   its own caching (the static script and style: `no-cache`).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::WebState;

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'";

/// The host names the page answers to by default: this PC's name (and `NAME.local`), `localhost`, and
/// `extra` (`web.allowed_hosts`). IP addresses are always allowed.
pub fn allowed_hosts(extra: &[String]) -> Vec<String> {
    let mut hosts = vec!["localhost".to_string()];
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let name = name.trim().to_ascii_lowercase();
        if !name.is_empty() {
            hosts.push(format!("{name}.local"));
            hosts.push(name);
        }
    }
    hosts.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
    hosts
}

/// The host part of a `Host` header (`name:port`, `1.2.3.4:port`, `[::1]:port`), lower case.
fn host_name(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        v.rsplit_once(':').map_or(v, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { v })
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    host.parse::<std::net::IpAddr>().is_ok() || allowed.iter().any(|a| a == host)
}

/// Whether a state-changing request comes from this page.
fn same_origin(headers: &HeaderMap, tls: bool) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // Browsers that send Fetch metadata say it themselves (and may send `Origin: null` on form posts).
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            let scheme = if tls { "https" } else { "http" };
            origin.eq_ignore_ascii_case(&format!("{scheme}://{host}"))
        }
        (Some(_), None) => false,
    }
}

/// The middleware.
pub async fn enforce(State(s): State<WebState>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(host_name).unwrap_or_default();
    let mut response = if !host_allowed(&host, &s.allowed_hosts) {
        (StatusCode::MISDIRECTED_REQUEST, "this page is served for this PC's own names and addresses only (web.allowed_hosts)\n").into_response()
    } else if !matches!(*request.method(), Method::GET | Method::HEAD) && !same_origin(request.headers(), s.tls) {
        (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response()
    } else {
        next.run(request).await
    };
    let h = response.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // Not `no-referrer`: with it Chromium sends `Origin: null` on the page's own form posts.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if s.tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_are_matched_by_name_without_the_port() {
        let allowed = vec!["localhost".to_string(), "gate-pc".to_string()];
        for (host, ok) in [
            ("gate-pc:8080", true),
            ("GATE-PC", true),
            ("192.168.1.20:8080", true),
            ("[fe80::1]:8080", true),
            ("localhost", true),
            ("evil.example.com", false),
            ("gate-pc.evil.example.com:8080", false),
            ("", false),
        ] {
            assert_eq!(host_allowed(&host_name(host), &allowed), ok, "{host}");
        }
    }

    #[test]
    fn changes_need_the_same_origin() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
            }
            h
        };
        assert!(same_origin(&headers(&[("host", "gate-pc:8080"), ("origin", "http://gate-pc:8080")]), false));
        assert!(!same_origin(&headers(&[("host", "gate-pc:8080"), ("origin", "http://evil.example")]), false));
        assert!(!same_origin(&headers(&[("host", "gate-pc:8080"), ("origin", "http://gate-pc:8080")]), true), "the scheme counts");
        assert!(!same_origin(&headers(&[("host", "gate-pc:8080"), ("sec-fetch-site", "cross-site")]), false));
        assert!(same_origin(&headers(&[("host", "gate-pc:8080"), ("sec-fetch-site", "same-origin")]), false));
        assert!(same_origin(&headers(&[("host", "gate-pc:8080"), ("origin", "null"), ("sec-fetch-site", "same-origin")]), false));
        assert!(!same_origin(&headers(&[("host", "gate-pc:8080"), ("origin", "null")]), false));
        assert!(same_origin(&headers(&[("host", "gate-pc:8080")]), false), "no browser headers: not a browser");
    }
}
