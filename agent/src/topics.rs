//! Topic names of contract v1. `{prefix}/{site}` where `{site}` is the fixed-depth grid path
//! `city/district/town/village/checkpoint`, so every level of the platform can subscribe with wildcards.
//! Every topic the agent publishes to is built here, and [`Origin`] says which site and camera a message
//! is about.

use edge_config::Site;

/// Longest topic name MQTT can carry (its length is a 16-bit field), in bytes.
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Why a string cannot be an MQTT topic name (MQTT 3.1.1 §4.7): the broker would refuse it, so a message
/// on it could never be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic is empty")]
    Empty,
    #[error("the topic contains {0:?}: a topic name may not hold the wildcards '+' and '#' or the character NUL")]
    Forbidden(char),
    #[error("the topic is {0} bytes long, MQTT allows at most 65535")]
    TooLong(usize),
}

/// Checks that `topic` can be published to.
pub fn check_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong(topic.len()));
    }
    match topic.chars().find(|c| matches!(c, '+' | '#' | '\0')) {
        Some(c) => Err(TopicError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Where one camera's messages come from: the site and the camera. Which topics they go to is the
/// publishing side's business ([`Topics`], given to `payload` by the sink).
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub site: Site,
    pub camera: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, site: &Site) -> Self {
        Self { base: format!("{prefix}/{}", site.path()) }
    }

    /// `{prefix}/{site}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Retained report of the policy in force (see `crate::control`).
    pub fn policy_reported(&self) -> String {
        format!("{}/policy", self.base)
    }

    /// Flow counts of one camera, one message per closed period (QoS 1, through the outbox).
    pub fn counts(&self, camera: &str) -> String {
        format!("{}/{camera}/counts", self.base)
    }

    /// Alerts of one camera disposed of (QoS 1, through the outbox).
    pub fn dispositions(&self, camera: &str) -> String {
        format!("{}/{camera}/dispositions", self.base)
    }

    /// Commands from the platform (not retained).
    pub fn commands(&self) -> String {
        format!("{}/commands", self.base)
    }

    /// Results of commands (QoS 1, through the outbox).
    pub fn results(&self) -> String {
        format!("{}/results", self.base)
    }

    /// Retained agent status, with last will `offline`.
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// Periodic per-camera counters.
    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }

    /// Per-frame detections of one camera (QoS 0, rate-limited).
    pub fn detections(&self, camera: &str) -> String {
        format!("{}/{camera}/detections", self.base)
    }

    /// Events of one camera (QoS 1).
    pub fn events(&self, camera: &str) -> String {
        format!("{}/{camera}/events", self.base)
    }

    /// `{prefix}/{site}/{camera}/alerts`: rule matches (QoS 1, through the outbox).
    pub fn alerts(&self, camera: &str) -> String {
        format!("{}/{camera}/alerts", self.base)
    }

    /// `{prefix}/{site}/{camera}/snapshots/{event_id}`: the JPEG of one event.
    pub fn snapshot(&self, camera: &str, event_id: &str) -> String {
        format!("{}/{camera}/snapshots/{event_id}", self.base)
    }

    /// `{prefix}/{site}/{camera}/clips`: a clip kept (QoS 1, through the outbox).
    pub fn clips(&self, camera: &str) -> String {
        format!("{}/{camera}/clips", self.base)
    }

    /// `{prefix}/{site}/{camera}/clips/{clip}/{n}`: chunk `n` (from 0) of a clip the platform asked for.
    pub fn clip_chunk(&self, camera: &str, clip: &str, n: usize) -> String {
        format!("{}/{camera}/clips/{clip}/{n}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_without_wildcards_nul_or_excess_length_are_publishable() {
        assert_eq!(check_topic("checkpoint/a/b/c/d/e/gate/snapshots/0193-ab"), Ok(()));
        assert_eq!(check_topic("a/#"), Err(TopicError::Forbidden('#')));
        assert_eq!(check_topic("a/b+c"), Err(TopicError::Forbidden('+')));
        assert_eq!(check_topic("a/\0"), Err(TopicError::Forbidden('\0')));
        assert_eq!(check_topic(""), Err(TopicError::Empty));
        assert_eq!(check_topic(&"x".repeat(MAX_TOPIC_BYTES)), Ok(()));
        assert_eq!(check_topic(&"x".repeat(MAX_TOPIC_BYTES + 1)), Err(TopicError::TooLong(MAX_TOPIC_BYTES + 1)));
    }

    #[test]
    fn topics_follow_the_grid_path() {
        let site = Site { city: "xining".into(), district: "chengzhong".into(), town: "nanchuan".into(), village: "xiaozhuang".into(), checkpoint: "east-gate".into(), name: None };
        let t = Topics::new("checkpoint", &site);
        assert_eq!(t.status(), "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/status");
        assert_eq!(t.detections("in-1"), "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/in-1/detections");
        assert_eq!(t.snapshot("in-1", "e1"), "checkpoint/xining/chengzhong/nanchuan/xiaozhuang/east-gate/in-1/snapshots/e1");
    }
}
