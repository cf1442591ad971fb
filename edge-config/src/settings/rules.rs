//! `[[rules]]`: alert rules, evaluated on every event.

use serde::{Deserialize, Serialize};

use super::default_true;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert rule. `kind` chooses what it looks for; the other keys are common to all kinds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Name reported in alerts: letters, digits, `-` and `_`.
    pub id: String,
    /// What the rule looks for.
    #[serde(flatten)]
    pub kind: RuleKind,
    #[serde(default)]
    pub severity: Severity,
    /// Cameras the rule applies to; empty = all.
    #[serde(default)]
    pub cameras: Vec<String>,
    /// After an alert, the same plate (or object, or zone) does not alert again under this rule for this long.
    #[serde(default = "default_cooldown_secs")]
    pub cooldown_secs: u64,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_cooldown_secs() -> u64 {
    600
}

/// The keys every rule has, whatever its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleCommon {
    id: String,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    cameras: Vec<String>,
    #[serde(default = "default_cooldown_secs")]
    cooldown_secs: u64,
    #[serde(default = "default_true")]
    enabled: bool,
}

// By hand because serde cannot combine `flatten` with `deny_unknown_fields`: the common keys are split off
// and the rest must be exactly the keys of the rule's kind.
impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let mut common = toml::Table::new();
        for key in ["id", "severity", "cameras", "cooldown_secs", "enabled"] {
            if let Some(v) = table.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let c: RuleCommon = common.try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        let kind: RuleKind = table.try_into().map_err(|e: toml::de::Error| D::Error::custom(e.message()))?;
        Ok(Rule { id: c.id, kind, severity: c.severity, cameras: c.cameras, cooldown_secs: c.cooldown_secs, enabled: c.enabled })
    }
}

/// The kinds of rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleKind {
    /// Plates to look out for. `tolerance = 1` also matches a read that differs from a listed plate in exactly
    /// one character at the same position (one misread character; a missing or extra character never matches).
    WatchList {
        #[serde(default)]
        plates: Vec<String>,
        /// Listed plates with an expiry and a reason shown to duty staff.
        #[serde(default)]
        entries: Vec<WatchEntry>,
        #[serde(default)]
        tolerance: u8,
    },
    /// Plates whose registration area needs follow-up: prefixes such as `鄂` (a province) or `鄂A` (a city).
    KeyRegion { prefixes: Vec<String> },
    /// At least `min_people` people inside `zone` for at least `min_secs` seconds.
    Crowding { zone: String, min_people: u32, min_secs: f64 },
    /// People or vehicles appearing between `from` and `to` (local time, `HH:MM`; the window may pass midnight).
    AfterHours {
        from: String,
        to: String,
        /// `person` and/or `vehicle`; empty = both.
        #[serde(default)]
        types: Vec<String>,
        /// Only objects going this way (`in` or `out`); unset = any, alerting as soon as the object appears.
        #[serde(default)]
        direction: Option<String>,
    },
}

/// A watch-list entry that expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEntry {
    pub plate: String,
    /// RFC 3339 time after which the entry no longer matches.
    #[serde(default)]
    pub until: Option<String>,
    /// Why the vehicle is listed, shown to duty staff (at most 200 characters).
    #[serde(default)]
    pub reason: Option<String>,
}
