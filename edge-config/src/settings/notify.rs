//! `[[notify]]`: work-group notification channels (WeCom and DingTalk group robots, a generic webhook), and
//! `[health]`: camera health alerts. A notification sends a plate and a picture to a service outside the
//! checkpoint, so there is none unless a channel is configured.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::rules::{ClockTime, Severity};
use crate::secret::Secret;

/// What a channel talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A 企业微信 (WeCom) group robot: `POST {url}?key=KEY`, markdown text and the picture as an image.
    Wecom,
    /// A 钉钉 (DingTalk) group robot: `POST {url}?access_token=T&timestamp=ms&sign=S`, markdown text.
    Dingtalk,
    /// Any HTTP(S) endpoint: the alert payload as JSON (the MQTT schema), optionally signed.
    Webhook,
}

impl NotifyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Wecom => "wecom",
            NotifyKind::Dingtalk => "dingtalk",
            NotifyKind::Webhook => "webhook",
        }
    }

    /// The service's own endpoint, when it has one.
    pub fn default_url(self) -> Option<&'static str> {
        match self {
            NotifyKind::Wecom => Some("https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
            NotifyKind::Dingtalk => Some("https://oapi.dingtalk.com/robot/send"),
            NotifyKind::Webhook => None,
        }
    }
}

/// One notification channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Name in logs, stats and the duty desk: letters, digits, `-` and `_`.
    pub id: String,
    pub kind: NotifyKind,
    /// Endpoint. Default for `wecom` and `dingtalk`: the service's own; required for `webhook`.
    #[serde(default)]
    pub url: Option<String>,
    /// WeCom: the robot's `key`; DingTalk: the robot's `access_token`. Prefer `key_file` or `key_env`.
    #[serde(default)]
    pub key: Option<Secret>,
    /// File holding the key (first line), e.g. a systemd credential.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// DingTalk: the robot's signing secret (`SEC…`); webhook: the HMAC-SHA256 key of the
    /// `X-Edge-Agent-Signature` header. Prefer `secret_file` or `secret_env`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    #[serde(default)]
    pub secret_env: Option<String>,
    /// PEM file with the CA certificate(s) of an HTTPS endpoint on a private network (the platform's
    /// gateway); without it the public web roots are trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Only alerts of these rules (ids); empty = all.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only alerts of these kinds (`watch_list`, `camera_offline`, …); empty = all.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Only alerts at least this severe.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Only alerts from these cameras; empty = all.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// Only alerts of rules from these grid levels of the platform's policy (`city`, `district`, `town`,
    /// `village`) or `local` (the agent's own config); empty = all.
    #[serde(default)]
    pub levels: Vec<String>,
    /// Quiet hours (local time, may pass midnight): alerts found then are not notified (they still reach
    /// MQTT and the duty desk). Both or neither.
    #[serde(default)]
    pub quiet_from: Option<ClockTime>,
    #[serde(default)]
    pub quiet_to: Option<ClockTime>,
    /// A notification not sent within this long (the service or the uplink was down) is dropped, counted:
    /// an hours-old push is noise.
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
    /// Requests per minute the service allows (both robots: 20); a burst beyond it is sent as one summary.
    #[serde(default = "default_per_minute")]
    pub per_minute: u32,
    /// After a notification, the same rule on the same camera is not notified again on this channel for
    /// this long (0: off; each alert already has its rule's own cooldown).
    #[serde(default)]
    pub cooldown_secs: u64,
    /// How long a notification waits for its event's picture (taken when the object leaves the view).
    #[serde(default = "default_picture_wait_secs")]
    pub picture_wait_secs: u64,
    /// DingTalk: a base URL where the duty desk's pictures are reachable from the phones in the group
    /// (`{picture_url}/api/snapshots/{event_id}`); without it DingTalk messages carry no picture.
    #[serde(default)]
    pub picture_url: Option<String>,
    /// Seconds one request may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    #[serde(default = "super::default_true")]
    pub enabled: bool,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_max_age_secs() -> u64 {
    1800
}
fn default_per_minute() -> u32 {
    20
}
fn default_picture_wait_secs() -> u64 {
    15
}
fn default_timeout_secs() -> u64 {
    10
}

/// Camera health: each camera's picture and connection are watched, and a camera that goes blind raises an
/// alert (`camera_offline`, `camera_frozen`, `camera_covered`, `camera_moved`) and another when it recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub enabled: bool,
    /// No frame for this long: `camera_offline`.
    pub offline_secs: u64,
    /// Frames arrive but the picture has not changed at all (not even sensor noise) for this long.
    pub frozen_secs: u64,
    /// The picture has been near-uniform (black, white, covered, blurred shut) for this long.
    pub covered_secs: u64,
    /// The view has been shifted from the reference for this long.
    pub moved_secs: u64,
    /// The reference view is learnt over the camera's first this many seconds of a settled picture.
    pub reference_secs: u64,
    /// A condition must have been gone this long before the camera counts as recovered.
    pub clear_secs: u64,
    pub severity: Severity,
    /// Cameras left out (a camera that is meant to look at a uniform wall at night).
    pub skip_cameras: Vec<String>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            enabled: true,
            offline_secs: 60,
            frozen_secs: 60,
            covered_secs: 30,
            moved_secs: 60,
            reference_secs: 120,
            clear_secs: 10,
            severity: Severity::Warning,
            skip_cameras: Vec::new(),
        }
    }
}
