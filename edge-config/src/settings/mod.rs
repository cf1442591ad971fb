//! The settings as written in `agent.toml`, one file per section. These are plain data: the runtime state
//! built from them lives in the agent. Every field has a doc comment and units are in the names; a
//! section whose every key is optional takes its defaults from its one `impl Default` (container-level
//! `#[serde(default)]`), a section with required keys from private `default_*` functions beside it.
//!
//! Reload: fields marked *(restart)* are read once at start; everything else is applied on `SIGHUP`.

mod camera;
mod clips;
mod control;
mod events;
mod gat1400;
mod models;
mod mqtt;
mod notify;
mod rules;
mod storage;
mod web;

use serde::{Deserialize, Serialize};

pub use camera::{
    Camera, DecoderChoice, Line, Motion, PlateMode, RtspTransport, Zone, DEFAULT_DETECT_FPS, DEFAULT_MAX_FRAME_WIDTH, DEFAULT_RTSP_LATENCY_MS, SUPPORTED_URL_SCHEMES,
};
pub use clips::{ClipKeep, Clips};
pub use control::{Control, Reports};
pub use events::Events;
pub use gat1400::{Gat1400, Gat1400Camera, Gat1400Image, GAT1400_DIRECTIONS};
pub use models::{Detector, ExecutionProvider, Models, Plates};
pub use mqtt::{Mqtt, MqttTls, DEFAULT_TOPIC_PREFIX};
pub use notify::{Health, Notify, NotifyKind};
pub use rules::{ClockTime, Direction, ObjectKind, Rule, RuleKind, Severity, WatchEntry};
pub use storage::Storage;
pub use web::{Metrics, Outcome, Web};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where this checkpoint sits in the town's grid; becomes the `{site}` part of every MQTT topic. *(restart)*
    pub site: Site,
    /// The town platform's MQTT broker. Without this section the agent runs standalone. *(restart)*
    #[serde(default)]
    pub mqtt: Option<Mqtt>,
    /// Model files, ONNX Runtime and inference threads. *(restart)*
    #[serde(default)]
    pub models: Models,
    /// Where the agent keeps its state (outbox, snapshots). *(restart)*
    #[serde(default)]
    pub storage: Storage,
    /// Tracking and the events it produces.
    #[serde(default)]
    pub events: Events,
    /// The Prometheus `/metrics` and `/healthz` endpoint. *(restart)*
    #[serde(default)]
    pub metrics: Metrics,
    /// The duty desk's alert feed web page. *(restart)*
    #[serde(default)]
    pub web: Web,
    /// Alert rules, evaluated on every event.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Policy from the platform: signing keys. *(restart)*
    #[serde(default)]
    pub control: Control,
    /// Reports up the grid: flow counts. *(restart)*
    #[serde(default)]
    pub reports: Reports,
    /// Work-group notification channels (WeCom, DingTalk, webhook); none unless configured. *(restart)*
    #[serde(default)]
    pub notify: Vec<Notify>,
    /// Camera health alerts: offline, frozen, covered, moved. *(restart)*
    #[serde(default)]
    pub health: Health,
    /// Event clips: the pre-capture ring and the clips cut from it. *(restart)*
    #[serde(default)]
    pub clips: Clips,
    /// A GA/T 1400 (视图库) uplink: pass records with pictures to the platform's own standard; none unless
    /// configured. *(restart)*
    #[serde(default)]
    pub gat1400: Option<Gat1400>,
    /// The cameras this agent watches.
    #[serde(default)]
    pub cameras: Vec<Camera>,
}

/// The checkpoint's place in the grid hierarchy the platform is organised by. Each level is one MQTT topic
/// level, so the topic path always has exactly five levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// City (市), e.g. `xining`.
    pub city: String,
    /// District or county (区/县), e.g. `chengzhong`.
    pub district: String,
    /// Town or street office (镇/街道), e.g. `nanchuan`.
    pub town: String,
    /// Village or community (村/社区), e.g. `xiaozhuang`.
    pub village: String,
    /// The checkpoint itself (卡口), e.g. `east-gate`.
    pub checkpoint: String,
    /// Human-readable name for the duty desk, e.g. `小庄村东口`. Not used in topics.
    #[serde(default)]
    pub name: Option<String>,
}

impl Site {
    /// The five levels in order, city first.
    pub fn levels(&self) -> [(&'static str, &str); 5] {
        [("city", &self.city), ("district", &self.district), ("town", &self.town), ("village", &self.village), ("checkpoint", &self.checkpoint)]
    }

    /// The fixed-depth topic path, e.g. `xining/chengzhong/nanchuan/xiaozhuang/east-gate`.
    pub fn path(&self) -> String {
        self.levels().map(|(_, v)| v).join("/")
    }
}

pub(crate) fn default_true() -> bool {
    true
}

impl Config {
    /// The first level of every topic: `mqtt.topic_prefix`, or [`DEFAULT_TOPIC_PREFIX`] without `[mqtt]`
    /// (topics are still built for the local record and the platform's policy levels).
    pub fn topic_prefix(&self) -> &str {
        self.mqtt.as_ref().map_or(DEFAULT_TOPIC_PREFIX, |m| m.topic_prefix.as_str())
    }

    /// The sections of `new` that differ from `self` and are read only at start: applying them needs a
    /// restart. Built from an exhaustive destructure, so a new section must be sorted into "reloadable" or
    /// "restart" here before the crate compiles.
    pub fn restart_required(&self, new: &Config) -> Vec<&'static str> {
        let Config { site, mqtt, models, storage, events: _, metrics, web, rules: _, control, reports, notify, health, clips, gat1400, cameras: _ } = self;
        let mut changed = Vec::new();
        for (name, differs) in [
            ("site", *site != new.site),
            ("mqtt", *mqtt != new.mqtt),
            ("models", *models != new.models),
            ("storage", *storage != new.storage),
            ("metrics", *metrics != new.metrics),
            ("web", *web != new.web),
            ("control", *control != new.control),
            ("reports", *reports != new.reports),
            ("notify", *notify != new.notify),
            ("health", *health != new.health),
            ("clips", *clips != new.clips),
            ("gat1400", *gat1400 != new.gat1400),
        ] {
            if differs {
                changed.push(name);
            }
        }
        changed
    }
}
