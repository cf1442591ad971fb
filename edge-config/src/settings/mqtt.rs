//! `[mqtt]`: the town platform's broker.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Site;
use crate::secret::Secret;

/// The first level of every topic when `[mqtt]` does not set one (or there is no `[mqtt]`).
pub const DEFAULT_TOPIC_PREFIX: &str = "checkpoint";

/// Connection to the MQTT broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mqtt {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker TCP port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// MQTT client id. Default: `edge-agent-` followed by the site path with `/` replaced by `.`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// First topic level(s) before the site path.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// MQTT keep-alive interval.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// How often `{prefix}/{site}/stats` is published.
    #[serde(default = "default_stats_interval_secs")]
    pub stats_interval_secs: u64,
    /// Minimum time between two `detections` messages of one camera; 0 turns the topic off.
    #[serde(default = "default_detections_interval_ms")]
    pub detections_interval_ms: u64,
    /// User name for the broker, if it requires one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the broker. Prefer `password_file` or `password_env` so the secret stays out of this file.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the broker password (first line), e.g. a systemd credential.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the broker password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// TLS to the broker; without this section the connection is plain TCP.
    #[serde(default)]
    pub tls: Option<MqttTls>,
    /// QoS 1 messages (events, snapshots, alerts) awaiting PUBACK at any time.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// Longest wait between reconnection attempts (the wait doubles from 0.5 s up to this, with jitter).
    #[serde(default = "default_reconnect_max_secs")]
    pub reconnect_max_secs: u64,
}

/// TLS settings (rustls; the broker's host name is verified against its certificate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file with the CA certificate(s) the broker's certificate must chain to.
    pub ca_file: PathBuf,
    /// PEM client certificate, for brokers that require client authentication (with `client_key_file`).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_topic_prefix() -> String {
    DEFAULT_TOPIC_PREFIX.to_string()
}
fn default_keep_alive_secs() -> u64 {
    30
}
fn default_stats_interval_secs() -> u64 {
    30
}
fn default_detections_interval_ms() -> u64 {
    1000
}
fn default_max_inflight() -> u16 {
    32
}
fn default_reconnect_max_secs() -> u64 {
    30
}

impl Mqtt {
    /// The client id to use, derived from the site when not configured.
    pub fn client_id_for(&self, site: &Site) -> String {
        self.client_id.clone().unwrap_or_else(|| format!("edge-agent-{}", site.path().replace('/', ".")))
    }
}
