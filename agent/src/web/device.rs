//! Device cookies (OWASP's "Slow brute force / device cookies" scheme): a browser that once signed in to
//! an account gets a long-lived cookie for that account, signed with a key only this agent has. It is no
//! credential — the password is still needed — but it tells the sign-in limits apart: someone guessing the
//! operator's password from another address blocks new browsers on that account, never the operator's own
//! browser, which is limited only by its own failures.
//!
//! The cookie is `edge_device_{tag}={nonce}.{mac}`: `tag` names the account (the first 8 bytes of its
//! SHA-256, so several operators can share one duty PC), `nonce` 16 random bytes and `mac` the HMAC-SHA256
//! of the account name and the nonce under the key in `{state_dir}/device-key` (0600, made on first use;
//! deleting it forgets every device).

use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::session::random_token;

/// How long a device stays recognised after its last sign-in.
pub const DEVICE_COOKIE_DAYS: u64 = 180;

/// The key that signs device cookies.
pub struct DeviceKeys {
    key: Vec<u8>,
}

impl std::fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKeys(***)")
    }
}

/// A recognised device: the nonce of its cookie (what its failures are counted under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device(pub String);

impl DeviceKeys {
    /// The key in `path`, made (and written, 0600) when there is none or it is unreadable.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        if let Some(key) = std::fs::read_to_string(path).ok().and_then(|t| hex::decode(t.trim()).ok()).filter(|k| k.len() == 32) {
            return Ok(Self { key });
        }
        let text = random_token(32);
        super::write_secret(path, &text)?;
        Ok(Self { key: hex::decode(text).unwrap_or_default() })
    }

    /// A key that is not kept (when the state directory cannot hold one): devices are recognised until
    /// the agent restarts.
    pub fn ephemeral() -> Self {
        Self { key: hex::decode(random_token(32)).unwrap_or_default() }
    }

    fn mac(&self, account: &str, nonce: &str) -> Option<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(b"edge-device/v1\n");
        mac.update(account.as_bytes());
        mac.update(b"\n");
        mac.update(nonce.as_bytes());
        Some(mac)
    }

    /// A new cookie value for `account`.
    pub fn issue(&self, account: &str) -> Option<String> {
        let nonce = random_token(16);
        let tag = hex::encode(self.mac(account, &nonce)?.finalize().into_bytes());
        Some(format!("{nonce}.{tag}"))
    }

    /// The device, when `value` is a cookie this agent issued for `account`.
    pub fn verify(&self, value: &str, account: &str) -> Option<Device> {
        let (nonce, tag) = value.split_once('.')?;
        if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let tag = hex::decode(tag).ok()?;
        self.mac(account, nonce)?.verify_slice(&tag).ok()?;
        Some(Device(nonce.to_string()))
    }
}

/// The cookie's name for `account`.
pub fn cookie_name(account: &str) -> String {
    let digest = Sha256::digest(account.as_bytes());
    format!("edge_device_{}", hex::encode(&digest[..8]))
}

/// The device cookie a request carries for `account`, if any is valid.
pub fn presented(keys: &DeviceKeys, headers: &HeaderMap, account: &str) -> Option<Device> {
    let name = cookie_name(account);
    super::cookies(headers).filter(|(k, _)| *k == name).find_map(|(_, v)| keys.verify(v, account))
}

/// The `Set-Cookie` value for a new device cookie.
pub fn set_cookie(account: &str, value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={}{secure}", cookie_name(account), DEVICE_COOKIE_DAYS * 86_400)
}

/// Where the key lives.
pub fn key_file(state_dir: &Path) -> PathBuf {
    state_dir.join("device-key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_cookie_is_valid_only_for_its_account_and_this_agents_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = DeviceKeys::load_or_create(&key_file(dir.path())).unwrap();
        let cookie = keys.issue("duty").unwrap();
        let device = keys.verify(&cookie, "duty").expect("recognised");
        assert_eq!(device.0, cookie.split_once('.').unwrap().0);
        assert!(keys.verify(&cookie, "other").is_none(), "another account");
        let again = DeviceKeys::load_or_create(&key_file(dir.path())).unwrap();
        assert!(again.verify(&cookie, "duty").is_some(), "the key is kept across restarts");
        assert!(DeviceKeys::ephemeral().verify(&cookie, "duty").is_none(), "another agent's key");
        let (nonce, tag) = cookie.split_once('.').unwrap();
        let forged = format!("{nonce}.{}", tag.replace(&tag[..1], if &tag[..1] == "0" { "1" } else { "0" }));
        assert!(keys.verify(&forged, "duty").is_none(), "a changed signature");
        assert!(keys.verify("garbage", "duty").is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(key_file(dir.path())).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_cookie_is_found_among_others_by_its_accounts_name() {
        let keys = DeviceKeys::ephemeral();
        let value = keys.issue("值班员").unwrap();
        let mut headers = HeaderMap::new();
        use axum::http::header;
        let line = format!("edge_session=abc; {}={value}; {}=x.y", cookie_name("值班员"), cookie_name("other"));
        headers.insert(header::COOKIE, line.parse().unwrap());
        assert!(presented(&keys, &headers, "值班员").is_some());
        assert!(presented(&keys, &headers, "other").is_none());
        assert!(set_cookie("duty", &value, true).contains("HttpOnly; SameSite=Strict; Max-Age=15552000; Secure"));
    }
}
