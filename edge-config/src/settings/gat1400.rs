//! `[gat1400]`: a second uplink to a video image information database (视图库) built to GA/T 1400. The
//! agent registers as a device and uploads one `MotorVehicle` (or `Person`) record per passing, with its
//! pictures. MQTT stays the primary contract; this section is for towns whose platform speaks only the
//! standard. Absent: no such uplink.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A picture a record may carry (`SubImageInfoObject.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gat1400Image {
    /// The whole frame (`14`, 场景图), scaled to `scene_width`.
    Scene,
    /// The vehicle with some context around it (`01`, 车辆大图): the event's snapshot.
    Vehicle,
    /// The plate, cut from the frame at full resolution (`02`, 车牌彩色小图).
    Plate,
    /// The person with some context (`10`, 人员图): the event's snapshot. Never a face crop.
    Person,
}

impl Gat1400Image {
    /// The standard's image type code.
    pub fn code(self) -> &'static str {
        match self {
            Gat1400Image::Vehicle => "01",
            Gat1400Image::Plate => "02",
            Gat1400Image::Person => "10",
            Gat1400Image::Scene => "14",
        }
    }
}

/// One camera's place at the checkpoint, as the platform knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gat1400Camera {
    /// The camera's own 20-digit device id on the platform; default: the agent's `device_id`.
    #[serde(default)]
    pub device_id: Option<String>,
    /// Lane number (`LaneNo`) of the records of this camera.
    #[serde(default)]
    pub lane_no: Option<u32>,
    /// Direction codes for this camera (see `direction_in`).
    #[serde(default)]
    pub direction_in: Option<String>,
    #[serde(default)]
    pub direction_out: Option<String>,
}

/// The GA/T 1400 uplink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gat1400 {
    /// The platform's address, `http://host:port` (requests go to `{server}/VIID/...`).
    pub server: String,
    /// This agent's 20-digit device id (`User-Identify`, `RegisterObject.DeviceID`): administrative area
    /// (8), industry (2), type (2), subtype (2), sequence (6), as the platform issued it.
    pub device_id: String,
    /// The checkpoint's 20-digit tollgate id (`TollgateID`), when the platform has one for it.
    #[serde(default)]
    pub tollgate_id: Option<String>,
    /// The digest user name; default: `device_id`.
    #[serde(default)]
    pub user: Option<String>,
    /// The digest password. Prefer `password_file` (e.g. a systemd credential) or `password_env`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// PEM file with the CA certificate(s) of an HTTPS server on a private network.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Vehicle passings go as `MotorVehicle` records.
    #[serde(default = "super::default_true")]
    pub vehicles: bool,
    /// People passings go as `Person` records (never with face fields or face crops).
    #[serde(default)]
    pub people: bool,
    /// The pictures each record carries, when the passing has them.
    #[serde(default = "default_images")]
    pub images: Vec<Gat1400Image>,
    /// Width of the scene picture, pixels (the frame is scaled down to it).
    #[serde(default = "default_scene_width")]
    pub scene_width: u32,
    /// Largest JPEG of a scene picture, bytes (quality, then size, is lowered to fit).
    #[serde(default = "default_scene_max_bytes")]
    pub scene_max_bytes: usize,
    /// Direction codes (行驶方向) of passings `in` and `out` of the checkpoint: 1 east→west, 2 west→east,
    /// 3 south→north, 4 north→south, 5 SE→NW, 6 NW→SE, 7 NE→SW, 8 SW→NE, 9 other. Passings with no
    /// direction are sent as 9.
    #[serde(default = "default_direction")]
    pub direction_in: String,
    #[serde(default = "default_direction")]
    pub direction_out: String,
    /// Per camera: its device id, lane and direction codes.
    #[serde(default)]
    pub cameras: BTreeMap<String, Gat1400Camera>,
    /// Seconds between keepalives while nothing else is sent (the standard's devices use 60–90).
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// Seconds one request may take.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Records per upload request (one `MotorVehicleListObject`).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// The record queue's bounds: bytes (pictures included) and age; beyond them the oldest go, counted.
    #[serde(default = "default_queue_max_mb")]
    pub queue_max_mb: u64,
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: u64,
    #[serde(default = "super::default_true")]
    pub enabled: bool,
}

fn default_images() -> Vec<Gat1400Image> {
    vec![Gat1400Image::Scene, Gat1400Image::Vehicle, Gat1400Image::Plate, Gat1400Image::Person]
}
fn default_scene_width() -> u32 {
    1280
}
fn default_scene_max_bytes() -> usize {
    300_000
}
fn default_direction() -> String {
    "9".into()
}
fn default_keepalive_secs() -> u64 {
    60
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_batch() -> usize {
    8
}
fn default_queue_max_mb() -> u64 {
    512
}
fn default_max_age_hours() -> u64 {
    168
}

/// The direction codes the standard defines.
pub const GAT1400_DIRECTIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9"];

impl Gat1400 {
    /// The device id records of `camera` carry.
    pub fn camera_device_id<'a>(&'a self, camera: &str) -> &'a str {
        self.cameras.get(camera).and_then(|c| c.device_id.as_deref()).unwrap_or(&self.device_id)
    }

    /// The direction code of a passing of `camera` going `direction`.
    pub fn direction_code<'a>(&'a self, camera: &str, direction: Option<super::Direction>) -> &'a str {
        let c = self.cameras.get(camera);
        match direction {
            Some(super::Direction::In) => c.and_then(|c| c.direction_in.as_deref()).unwrap_or(&self.direction_in),
            Some(super::Direction::Out) => c.and_then(|c| c.direction_out.as_deref()).unwrap_or(&self.direction_out),
            None => "9",
        }
    }

    pub fn wants(&self, image: Gat1400Image) -> bool {
        self.images.contains(&image)
    }
}
