//! `[[rules]]`: alert rules, evaluated on every event. Values are parsed into their types here, once, at
//! load (a time of day, a kind of object, a direction, an expiry time): a bad one is reported with the path
//! of its key (`rules[1].from`) and nothing downstream parses strings again.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// What an object is to a checkpoint: the two kinds that events, rules and payloads distinguish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Person,
    /// Anything on wheels (and every other detector class the agent is configured to keep).
    Vehicle,
}

impl ObjectKind {
    /// `person` or `vehicle`, as in payloads and rule settings.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Person => "person",
            ObjectKind::Vehicle => "vehicle",
        }
    }
}

/// Which way an object crosses a line: `in` ends on the line's configured in-side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// A local time of day, written `HH:MM` (00:00 to 23:59).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    /// `HH:MM`, exactly five characters.
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60 && text.len() == 5).then_some(Self(h * 60 + m))
    }

    /// Minutes after local midnight.
    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a time of day HH:MM")))
    }
}

/// One alert rule. `kind` chooses what it looks for; the other keys are common to all kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleKeys")]
pub struct Rule {
    /// Name reported in alerts: letters, digits, `-` and `_`.
    pub id: String,
    /// What the rule looks for.
    #[serde(flatten)]
    pub kind: RuleKind,
    pub severity: Severity,
    /// Cameras the rule applies to; empty = all.
    pub cameras: Vec<String>,
    /// After an alert, the same plate (or object, or zone) does not alert again under this rule for this long.
    pub cooldown_secs: u64,
    pub enabled: bool,
}

fn default_cooldown_secs() -> u64 {
    600
}

/// The kinds of rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleKind {
    /// Plates to look out for. `tolerance = 1` also matches a read that differs from a listed plate in exactly
    /// one character at the same position (one misread character; a missing or extra character never matches).
    WatchList {
        plates: Vec<String>,
        /// Listed plates with an expiry and a reason shown to duty staff.
        entries: Vec<WatchEntry>,
        tolerance: u8,
    },
    /// Plates whose registration area needs follow-up: prefixes such as `鄂` (a province) or `鄂A` (a city).
    KeyRegion { prefixes: Vec<String> },
    /// At least `min_people` people inside `zone` for at least `min_secs` seconds.
    Crowding { zone: String, min_people: u32, min_secs: f64 },
    /// People or vehicles appearing between `from` and `to` (local time, `HH:MM`; the window may pass midnight).
    AfterHours {
        from: ClockTime,
        to: ClockTime,
        /// `person` and/or `vehicle`; empty = both.
        types: Vec<ObjectKind>,
        /// Only objects going this way (`in` or `out`); unset = any, alerting as soon as the object appears.
        direction: Option<Direction>,
    },
}

/// A watch-list entry that expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEntry {
    pub plate: String,
    /// RFC 3339 time after which the entry no longer matches.
    #[serde(default, deserialize_with = "rfc3339", serialize_with = "to_rfc3339")]
    pub until: Option<DateTime<Utc>>,
    /// Why the vehicle is listed, shown to duty staff (at most 200 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(deserializer)? else { return Ok(None) };
    DateTime::parse_from_rfc3339(&text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time such as 2026-12-01T00:00:00+08:00")))
}

fn to_rfc3339<S: Serializer>(until: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match until {
        Some(t) => serializer.serialize_some(&t.to_rfc3339()),
        None => serializer.serialize_none(),
    }
}

/// The tag naming a rule's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindTag {
    WatchList,
    KeyRegion,
    Crowding,
    AfterHours,
}

/// Every key a rule may have, each with its one type whatever the kind (no two kinds share a key name).
/// Deserialised by serde's own struct code, so a bad value is reported at its key (`rules[1].from`); which
/// keys belong to which kind is checked after (`TryFrom`). serde cannot do this with `flatten`, which
/// loses both `deny_unknown_fields` and the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleKeys {
    id: String,
    kind: KindTag,
    #[serde(default)]
    severity: Severity,
    #[serde(default)]
    cameras: Vec<String>,
    #[serde(default = "default_cooldown_secs")]
    cooldown_secs: u64,
    #[serde(default = "default_true")]
    enabled: bool,
    plates: Option<Vec<String>>,
    entries: Option<Vec<WatchEntry>>,
    tolerance: Option<u8>,
    prefixes: Option<Vec<String>>,
    zone: Option<String>,
    min_people: Option<u32>,
    min_secs: Option<f64>,
    from: Option<ClockTime>,
    to: Option<ClockTime>,
    types: Option<Vec<ObjectKind>>,
    direction: Option<Direction>,
}

impl TryFrom<RuleKeys> for Rule {
    type Error = String;

    fn try_from(k: RuleKeys) -> Result<Self, String> {
        let (name, own): (&str, &[&str]) = match k.kind {
            KindTag::WatchList => ("watch_list", &["plates", "entries", "tolerance"]),
            KindTag::KeyRegion => ("key_region", &["prefixes"]),
            KindTag::Crowding => ("crowding", &["zone", "min_people", "min_secs"]),
            KindTag::AfterHours => ("after_hours", &["from", "to", "types", "direction"]),
        };
        let present = [
            ("plates", k.plates.is_some()),
            ("entries", k.entries.is_some()),
            ("tolerance", k.tolerance.is_some()),
            ("prefixes", k.prefixes.is_some()),
            ("zone", k.zone.is_some()),
            ("min_people", k.min_people.is_some()),
            ("min_secs", k.min_secs.is_some()),
            ("from", k.from.is_some()),
            ("to", k.to.is_some()),
            ("types", k.types.is_some()),
            ("direction", k.direction.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(key, set)| *set && !own.contains(key)) {
            let expected = own.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
            return Err(format!("unknown field `{key}` for kind `{name}`, expected one of {expected}"));
        }
        fn required<T>(value: Option<T>, key: &str) -> Result<T, String> {
            value.ok_or_else(|| format!("missing field `{key}`"))
        }
        let kind = match k.kind {
            KindTag::WatchList => RuleKind::WatchList { plates: k.plates.unwrap_or_default(), entries: k.entries.unwrap_or_default(), tolerance: k.tolerance.unwrap_or(0) },
            KindTag::KeyRegion => RuleKind::KeyRegion { prefixes: required(k.prefixes, "prefixes")? },
            KindTag::Crowding => {
                RuleKind::Crowding { zone: required(k.zone, "zone")?, min_people: required(k.min_people, "min_people")?, min_secs: required(k.min_secs, "min_secs")? }
            }
            KindTag::AfterHours => RuleKind::AfterHours { from: required(k.from, "from")?, to: required(k.to, "to")?, types: k.types.unwrap_or_default(), direction: k.direction },
        };
        Ok(Rule { id: k.id, kind, severity: k.severity, cameras: k.cameras, cooldown_secs: k.cooldown_secs, enabled: k.enabled })
    }
}
