//! The requests to each service, as they document them, and what their answers mean.
//!
//! - WeCom group robot: `POST {url}?key=KEY`, `{"msgtype":"markdown","markdown":{"content":…}}`, then for the
//!   picture `{"msgtype":"image","image":{"base64":…,"md5":…}}` (the MD5 of the raw JPEG, at most 2 MB).
//!   Answers `{"errcode":0,"errmsg":"ok"}`; 45009 is its rate limit.
//! - DingTalk group robot: `POST {url}?access_token=T[&timestamp=ms&sign=S]`, S the URL-encoded base64 of
//!   HMAC-SHA256(secret, `timestamp + "\n" + secret`); `{"msgtype":"markdown","markdown":{"title","text"}}`.
//!   Answers `{"errcode":0,"errmsg":"ok"}`; 130101 is its rate limit ("send too fast").
//! - Webhook: `POST {url}` with the JSON; with a secret, `X-Edge-Agent-Timestamp: ms` and
//!   `X-Edge-Agent-Signature: sha256=HEX` of HMAC-SHA256(secret, `timestamp + "." + body`).

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Digest as _;
use sha2::Sha256;

/// WeCom's limit on an image message's picture.
pub const WECOM_IMAGE_MAX_BYTES: usize = 2 << 20;
/// The services' "too many messages" codes.
pub const WECOM_RATE_LIMITED: i64 = 45009;
pub const DINGTALK_RATE_LIMITED: i64 = 130_101;

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The service refused this message (its `errcode`/`errmsg`, or an HTTP status): sending it again will
    /// not help.
    Rejected {
        code: i64,
        message: String,
    },
    /// The service said to slow down.
    RateLimited {
        code: i64,
        message: String,
    },
    /// Not answered, or a server error: try again later.
    Failed(String),
}

/// One channel's HTTP side.
pub struct Transport {
    agent: ureq::Agent,
}

impl Transport {
    pub fn new(timeout: Duration, ca: Option<&[u8]>) -> Result<Self, String> {
        Ok(Self { agent: http_agent(timeout, ca)? })
    }

    /// Posts `body` (JSON) to `url` with `headers`; reads the answer as the robots write it.
    pub fn post(&self, url: &str, body: &[u8], headers: &[(&str, String)]) -> Outcome {
        let mut request = self.agent.post(url).header("Content-Type", "application/json; charset=utf-8");
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(without_query(&e.to_string(), url)),
        };
        let status = response.status().as_u16();
        let mut text = String::new();
        let _ = response.body_mut().as_reader().take(64 << 10).read_to_string(&mut text);
        answer(status, &text)
    }
}

/// A blocking HTTP client that answers every status (no status is an error), within `timeout`; with `ca`
/// (PEM), trusting only those roots (a gateway on a private network).
pub(crate) fn http_agent(timeout: Duration, ca: Option<&[u8]>) -> Result<ureq::Agent, String> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(pem) = ca {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err("no certificate in the CA file".into());
        }
        tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    Ok(ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).tls_config(tls.build()).build().into())
}

/// `message` without the query of `url` (it holds the key or token), should an error quote the address.
fn without_query(message: &str, url: &str) -> String {
    match url.split_once('?') {
        Some((_, query)) if !query.is_empty() => message.replace(query, "…"),
        _ => message.to_string(),
    }
}

/// What a status and body mean: a robot's `errcode` when the body has one, else the HTTP status.
pub fn answer(status: u16, body: &str) -> Outcome {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|v| v.get("errcode")).and_then(serde_json::Value::as_i64);
    let message = parsed.as_ref().and_then(|v| v.get("errmsg")).and_then(|m| m.as_str()).map_or_else(|| body.chars().take(200).collect(), str::to_string);
    match (status, code) {
        (200..=299, None | Some(0)) => Outcome::Ok,
        (_, Some(c)) if c == WECOM_RATE_LIMITED || c == DINGTALK_RATE_LIMITED => Outcome::RateLimited { code: c, message },
        (429, _) => Outcome::RateLimited { code: 429, message },
        (200..=299, Some(c)) => Outcome::Rejected { code: c, message },
        (500..=599, _) => Outcome::Failed(format!("HTTP {status}: {message}")),
        (s, c) => Outcome::Rejected { code: c.unwrap_or(i64::from(s)), message: format!("HTTP {s}: {message}") },
    }
}

/// WeCom's markdown message.
pub fn wecom_markdown(content: &str) -> Vec<u8> {
    serde_json::json!({ "msgtype": "markdown", "markdown": { "content": content } }).to_string().into_bytes()
}

/// WeCom's image message for `jpeg` (at most [`WECOM_IMAGE_MAX_BYTES`]).
pub fn wecom_image(jpeg: &[u8]) -> Vec<u8> {
    let md5 = hex::encode(md5::Md5::digest(jpeg));
    let data = base64::engine::general_purpose::STANDARD.encode(jpeg);
    serde_json::json!({ "msgtype": "image", "image": { "base64": data, "md5": md5 } }).to_string().into_bytes()
}

/// DingTalk's markdown message.
pub fn dingtalk_markdown(title: &str, text: &str) -> Vec<u8> {
    serde_json::json!({ "msgtype": "markdown", "markdown": { "title": title, "text": text } }).to_string().into_bytes()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: this never fails.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else { return Vec::new() };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// DingTalk's `sign` for `timestamp_ms`: base64 of HMAC-SHA256 keyed with the secret over
/// `timestamp + "\n" + secret`, URL-encoded.
pub fn dingtalk_sign(timestamp_ms: u64, secret: &str) -> String {
    let mac = hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes());
    url::form_urlencoded::byte_serialize(base64::engine::general_purpose::STANDARD.encode(mac).as_bytes()).collect()
}

/// The webhook's signature header value for `body` sent at `timestamp_ms`.
pub fn webhook_signature(timestamp_ms: u64, body: &[u8], secret: &str) -> String {
    let mut message = format!("{timestamp_ms}.").into_bytes();
    message.extend_from_slice(body);
    format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), &message)))
}

/// A JPEG small enough for WeCom: as it is, or scaled down (and re-encoded) until it fits.
pub fn fit_jpeg(jpeg: &[u8], max: usize) -> Option<Vec<u8>> {
    if jpeg.len() <= max {
        return Some(jpeg.to_vec());
    }
    let mut img = image::load_from_memory(jpeg).ok()?.into_rgb8();
    for _ in 0..6 {
        let (w, h) = ((img.width() * 3 / 4).max(1), (img.height() * 3 / 4).max(1));
        img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85).encode_image(&img).ok()?;
        if out.len() <= max {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_answers_mean_what_they_document() {
        assert_eq!(answer(200, r#"{"errcode":0,"errmsg":"ok"}"#), Outcome::Ok);
        assert!(matches!(answer(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#), Outcome::RateLimited { code: 45009, .. }));
        assert!(matches!(answer(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#), Outcome::RateLimited { code: 130_101, .. }));
        assert!(matches!(answer(200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#), Outcome::Rejected { code: 93000, .. }));
        assert!(matches!(answer(503, "busy"), Outcome::Failed(_)));
        assert!(matches!(answer(404, "no"), Outcome::Rejected { code: 404, .. }));
        assert_eq!(answer(204, ""), Outcome::Ok);
    }

    #[test]
    fn an_error_quoting_the_address_loses_its_key() {
        let url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-KEY";
        assert_eq!(without_query(&format!("connection failed: {url}"), url), "connection failed: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?…");
    }

    #[test]
    fn a_picture_over_the_limit_is_scaled_down_until_it_fits() {
        // Noise compresses badly: a 1600×1200 picture of it at quality 100 is several megabytes.
        let mut seed = 7u32;
        let img = image::RgbImage::from_fn(1600, 1200, |_, _| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            image::Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8])
        });
        let mut big = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut big, 100).encode_image(&img).unwrap();
        assert!(big.len() > WECOM_IMAGE_MAX_BYTES, "the test picture is only {} bytes", big.len());
        let fitted = fit_jpeg(&big, WECOM_IMAGE_MAX_BYTES).unwrap();
        assert!(fitted.len() <= WECOM_IMAGE_MAX_BYTES && fitted.starts_with(&[0xFF, 0xD8]));
        let small = image::load_from_memory(&fitted).unwrap();
        assert!(small.width() < 1600 && small.height() < 1200, "not scaled down: {}x{}", small.width(), small.height());
        // A picture within the limit is sent as it is.
        assert_eq!(fit_jpeg(&fitted, WECOM_IMAGE_MAX_BYTES).unwrap(), fitted);
        assert!(fit_jpeg(b"not a jpeg", 4).is_none());
    }

    #[test]
    fn the_dingtalk_signature_is_the_url_encoded_base64_hmac_of_timestamp_and_secret() {
        // Computed with OpenSSL: printf '1700000000000\nSECabc' | openssl dgst -sha256 -hmac SECabc -binary | base64
        assert_eq!(dingtalk_sign(1_700_000_000_000, "SECabc"), "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D");
    }
}
