//! `{prefix}/{site}/{camera}/dispositions`: what duty staff or the platform did about an alert.

use serde::{Deserialize, Serialize};

pub const DISPOSITION_SCHEMA: &str = "edge-agent/disposition/v1";

/// Where a disposition was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DispositionSource {
    /// The village duty desk.
    Village,
    /// The platform, with a `dispose_alert` command.
    Platform,
}

impl DispositionSource {
    pub fn as_str(&self) -> &'static str {
        match self {
            DispositionSource::Village => "village",
            DispositionSource::Platform => "platform",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Disposition {
    pub schema: &'static str,
    pub id: String,
    pub site: String,
    pub camera: String,
    pub alert_id: String,
    pub event_id: Option<String>,
    pub rule: Option<String>,
    pub outcome: String,
    /// The outcome as the duty desk names it.
    pub outcome_label: String,
    pub note: Option<String>,
    pub by: String,
    /// The account's role on the desk (`operator`), or `platform`.
    pub role: &'static str,
    pub source: DispositionSource,
    pub at: String,
}
