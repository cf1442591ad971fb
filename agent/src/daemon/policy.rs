//! The daemon's side of the platform's policy (`crate::control`): the subscription's messages in, the
//! merged config out to the cameras and rules, the report back up.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::control::{Decision, Level, Policy};
use crate::mqtt::{Inbound, MqttLink};
use crate::rules::Provenance;
use edge_config::Config;

/// Messages waiting for the daemon; the platform sends a handful of documents, not a stream.
const INBOUND_QUEUE: usize = 16;

/// A message from the platform.
pub enum FromPlatform {
    Policy(Level, Vec<u8>),
    Command(Vec<u8>),
}

/// The policy in force and where its documents (and the platform's commands) come from.
pub struct PolicyLink {
    pub policy: Policy,
    topics: Vec<(String, Level)>,
    commands_topic: String,
    reported_topic: String,
    inbound: Option<mpsc::Receiver<(String, Vec<u8>)>>,
    link: Option<MqttLink>,
}

impl PolicyLink {
    /// The persisted policy merged into `local`, and the subscription to hand to the MQTT task (when there is
    /// a broker and `[control]` is enabled).
    pub fn load(local: &Config) -> (Self, Option<Inbound>) {
        let prefix = local.topic_prefix();
        let topics: Vec<(String, Level)> = Level::ALL.iter().map(|l| (l.topic(prefix, &local.site), *l)).collect();
        let site_topics = crate::topics::Topics::new(prefix, &local.site);
        let (reported_topic, commands_topic) = (site_topics.policy_reported(), site_topics.commands());
        let (inbound, rx) = if local.mqtt.is_some() && local.control.enabled {
            let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
            let subscribed = topics.iter().map(|(t, _)| t.clone()).chain([commands_topic.clone()]).collect();
            (Some(Inbound { topics: subscribed, tx }), Some(rx))
        } else {
            (None, None)
        };
        let policy = Policy::load(local.clone());
        (Self { policy, topics, commands_topic, reported_topic, inbound: rx, link: None }, inbound)
    }

    /// The config in force (local merged with the policy) and the provenance of its rules.
    pub fn effective(&self) -> (Config, Vec<Option<Provenance>>) {
        self.policy.effective()
    }

    /// Publishes the report on the link from now on.
    pub fn attach(&mut self, link: Option<MqttLink>) {
        self.link = link;
        self.report();
    }

    /// Publishes the report (retained); it is made when it is sent, so its time and its count of expired
    /// entries are those of that moment.
    pub fn report(&self) {
        let Some(link) = &self.link else { return };
        let source = self.policy.report_source();
        link.set_retained(self.reported_topic.clone(), Arc::new(move || serde_json::to_vec(&source.at(chrono::Utc::now())).unwrap_or_default()));
    }

    /// How long until the next watch-list entry in force expires (the report should go out again then),
    /// a second late so the entry has certainly passed when the report is made.
    pub fn next_expiry_in(&self) -> Option<std::time::Duration> {
        let now = chrono::Utc::now();
        let at = self.policy.report_source().next_expiry(now)?;
        (at - now).to_std().ok().map(|d| d + std::time::Duration::from_secs(1))
    }

    /// The next message from the platform; never returns without a subscription.
    pub async fn next(&mut self) -> FromPlatform {
        loop {
            let message = match self.inbound.as_mut() {
                Some(rx) => rx.recv().await,
                None => None,
            };
            let Some((topic, payload)) = message else {
                self.inbound = None;
                std::future::pending::<()>().await;
                continue;
            };
            if topic == self.commands_topic {
                return FromPlatform::Command(payload);
            }
            if let Some((_, level)) = self.topics.iter().find(|(t, _)| *t == topic) {
                return FromPlatform::Policy(*level, payload);
            }
        }
    }

    /// Offers a document; returns the config to apply when it changes what is in force.
    pub fn offer(&mut self, level: Level, payload: &[u8]) -> Option<(Config, Vec<Option<Provenance>>)> {
        let decision = self.policy.offer(level, payload);
        self.report();
        match decision {
            Decision::Apply(config, provenance) => Some((*config, provenance)),
            Decision::Keep => None,
        }
    }

    /// The local config was reloaded: the merged config to apply.
    pub fn set_local(&mut self, local: Config) -> (Config, Vec<Option<Provenance>>) {
        let effective = self.policy.set_local(local);
        self.report();
        effective
    }
}
