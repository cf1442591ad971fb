//! The duty desk's live feed: what camera threads publish and every open page receives, as typed items
//! serialised here and nowhere else (`{"type": "event" | "alert" | "ack" | "cameras" | "clip" | "resync", ...}`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::audit::{AuditAction, AuditLog, Disposal};
use crate::eventlog::EventLog;
use crate::payload;

/// Items kept in memory for a page that opens (the rest is in the logs on disk).
const RECENT: usize = 300;

/// Who acknowledged an alert, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    pub at: String,
    #[serde(flatten)]
    pub disposal: Disposal,
}

/// One camera's health as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CameraHealth {
    pub id: String,
    pub name: Option<String>,
    pub state: &'static str,
    pub since: String,
    pub last_error: Option<String>,
    pub fps: f64,
    /// Camera health raised now: what is wrong, since when.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<CameraProblem>,
}

/// One camera health condition, for the page.
#[derive(Debug, Clone, Serialize)]
pub struct CameraProblem {
    pub kind: &'static str,
    pub since: String,
    pub detail: String,
}

/// What duty staff should know about the agent itself (the disk, the link to the platform); sent with
/// the cameras' health.
#[derive(Debug, Clone, Serialize)]
pub struct AgentNotice {
    /// `ok`, `full` or `io_error` (see the storage state in the status payload).
    pub storage: &'static str,
    /// Records the outbox holds in memory because the disk cannot take them.
    pub held: u64,
    /// `standalone`, `connected`, `disconnected` or `stalled`.
    pub uplink: &'static str,
    /// The agent's own words for what is wrong (cameras aside), for a tooltip.
    pub problems: Vec<String>,
    /// The GA/T 1400 uplink's state, when one is configured.
    pub gat1400: Option<&'static str>,
}

/// One item of the live feed. Events and alerts carry their MQTT payload (the page reads the same fields the
/// platform does); after a restart they are read back from the logs into the same types.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FeedItem {
    Event {
        event: Box<payload::Event>,
    },
    Alert {
        alert: Box<payload::Alert>,
        ack: Option<Ack>,
    },
    Ack {
        alert: String,
        ack: Ack,
    },
    Cameras {
        cameras: Vec<CameraHealth>,
        /// The agent itself, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        agent: Option<AgentNotice>,
        /// The notification channels' last results and the mutes, when any channel is configured.
        #[serde(skip_serializing_if = "Option::is_none")]
        notify: Option<crate::notify::NotifyReport>,
    },
    /// A clip was kept (its `clips` payload).
    Clip {
        clip: Box<payload::Clip>,
    },
    /// The page missed items and must reload the recent list.
    Resync,
}

impl FeedItem {
    pub fn event(event: impl Into<Box<payload::Event>>) -> Self {
        FeedItem::Event { event: event.into() }
    }

    pub fn alert(alert: impl Into<Box<payload::Alert>>) -> Self {
        FeedItem::Alert { alert: alert.into(), ack: None }
    }

    fn alert_id(&self) -> Option<&str> {
        match self {
            FeedItem::Alert { alert, .. } if !alert.id.is_empty() => Some(&alert.id),
            _ => None,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The live feed: a broadcast to open pages plus the recent items and open alerts for pages that open.
#[derive(Clone)]
pub struct Feed {
    tx: broadcast::Sender<Arc<str>>,
    recent: Arc<Mutex<VecDeque<FeedItem>>>,
    alerts: Arc<Mutex<HashMap<String, FeedItem>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self::new()
    }
}

impl Feed {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(512);
        Self { tx, recent: Arc::new(Mutex::new(VecDeque::new())), alerts: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Publishes an item to open pages and the recent list.
    pub fn publish(&self, item: FeedItem) {
        if let Some(id) = item.alert_id() {
            let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
            alerts.insert(id.to_string(), item.clone());
            if alerts.len() > 4 * RECENT {
                let oldest = alerts.keys().min().cloned();
                if let Some(k) = oldest {
                    alerts.remove(&k);
                }
            }
        }
        let text: Arc<str> = Arc::from(item.to_json());
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            recent.push_back(item);
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
        let _ = self.tx.send(text);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }

    pub(crate) fn recent(&self) -> Vec<FeedItem> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }

    /// Alerts not yet disposed of that are no longer in the recent list, oldest first.
    pub(crate) fn open_alerts_not_recent(&self) -> Vec<FeedItem> {
        let recent: std::collections::HashSet<String> = self.recent.lock().unwrap_or_else(|p| p.into_inner()).iter().filter_map(|i| i.alert_id().map(str::to_string)).collect();
        let mut open: Vec<FeedItem> = self
            .alerts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|i| matches!(i, FeedItem::Alert { ack: None, .. }) && i.alert_id().is_some_and(|id| !recent.contains(id)))
            .cloned()
            .collect();
        open.sort_by(|a, b| a.alert_id().cmp(&b.alert_id()));
        open
    }

    /// An alert still in memory, and its acknowledgement.
    pub(super) fn alert(&self, id: &str) -> Option<(Box<payload::Alert>, Option<Ack>)> {
        match self.alerts.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(FeedItem::Alert { alert, ack }) => Some((alert.clone(), ack.clone())),
            _ => None,
        }
    }

    /// Marks an alert acknowledged in the recent list and tells open pages.
    pub(super) fn acknowledge(&self, id: &str, ack: &Ack) {
        let set = |item: &mut FeedItem| {
            if let FeedItem::Alert { alert, ack: slot } = item {
                if alert.id == id {
                    *slot = Some(ack.clone());
                }
            }
        };
        if let Some(item) = self.alerts.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            set(item);
        }
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).iter_mut().for_each(set);
        self.publish(FeedItem::Ack { alert: id.to_string(), ack: ack.clone() });
    }

    /// Refills the recent list from the logs on disk after a restart: the last day's events, the last
    /// alerts and their dispositions; alerts of the last week not yet disposed of stay open (on the page
    /// until disposed of).
    pub fn restore(&self, events: &EventLog, alerts: &EventLog, audit: &AuditLog) {
        let now = chrono::Utc::now();
        let acks: HashMap<String, Ack> = audit
            .recent(31)
            .into_iter()
            .filter(|r| matches!(r.action, AuditAction::Acknowledge | AuditAction::Dispose))
            .filter_map(|r| Some((r.alert?, Ack { by: r.by.unwrap_or_default(), at: r.at, disposal: r.disposal })))
            .collect();
        let mut items: Vec<(String, FeedItem)> = Vec::new();
        // A line that does not read as a payload (a torn last line, another schema) is skipped; fields added
        // to the v1 schema after its first lines were logged read back with their defaults.
        for line in events.recent_lines(now, 2).iter().rev().take(200) {
            if let Ok(event) = serde_json::from_str::<Box<payload::Event>>(line) {
                items.push((event.ts.clone(), FeedItem::Event { event }));
            }
        }
        for (i, line) in alerts.recent_lines(now, 7).iter().rev().enumerate() {
            let Ok(alert) = serde_json::from_str::<Box<payload::Alert>>(line) else { continue };
            let (ts, ack) = (alert.ts.clone(), acks.get(&alert.id).cloned());
            let item = FeedItem::Alert { alert, ack };
            if i < 100 {
                items.push((ts, item));
            } else if let (FeedItem::Alert { ack: None, .. }, Some(id)) = (&item, item.alert_id()) {
                self.alerts.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), item.clone());
            }
        }
        items.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, item) in items {
            self.publish(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// An alert as the alerts log holds it: keys the payload may leave out are missing.
    fn logged_alert(id: &str) -> Box<payload::Alert> {
        let grid = json!({"city": "a", "district": "b", "town": "c", "village": "d", "checkpoint": "e"});
        let line = json!({"schema": payload::ALERT_SCHEMA, "id": id, "site": "a/b/c/d/e", "grid": grid, "camera": "gate", "ts": "2026-11-28T08:00:00.000Z",
            "rule": "r", "kind": "watch_list", "severity": "critical", "event_id": "e1", "event_ids": ["e1"], "type": "vehicle"});
        serde_json::from_value(line).expect("an alert payload")
    }

    #[test]
    fn items_serialise_with_their_type_tag() {
        let ack = Ack { by: "duty".into(), at: "2026-11-28T08:00:00.000Z".into(), disposal: Disposal::default() };
        let v: Value = serde_json::from_str(&FeedItem::Ack { alert: "a1".into(), ack: ack.clone() }.to_json()).unwrap_or_default();
        assert_eq!(v, json!({"type": "ack", "alert": "a1", "ack": {"by": "duty", "at": "2026-11-28T08:00:00.000Z"}}));
        let alert = logged_alert("a1");
        let v: Value = serde_json::from_str(&FeedItem::alert(alert.clone()).to_json()).unwrap_or_default();
        assert_eq!(v, json!({"type": "alert", "alert": serde_json::to_value(&alert).unwrap_or_default(), "ack": null}));
        assert_eq!((v["alert"]["id"].as_str(), v["alert"]["type"].as_str(), v["alert"]["plate"].is_null()), (Some("a1"), Some("vehicle"), true));
        assert_eq!(FeedItem::Resync.to_json(), r#"{"type":"resync"}"#);
    }

    #[test]
    fn lines_an_earlier_version_logged_read_back_into_the_payload_types() {
        // No grid, and a plate without min_char_confidence, rows and votes.
        let end = json!({"schema": payload::EVENT_SCHEMA, "id": "e1", "seq": 3, "site": "s", "camera": "gate", "type": "vehicle", "phase": "end", "label": "truck",
            "track_id": 1, "started_at": "t", "ended_at": "t", "ts": "t", "direction": "in", "crossings": [], "zones": [], "score": 0.9, "box": [0, 0, 1, 1],
            "frame": {"width": 1280, "height": 720}, "plate": {"text": "苏EA0001", "color": "yellow", "confidence": 0.9, "reads": 3}, "snapshot": null});
        let event: payload::Event = serde_json::from_value(end).expect("an event of an earlier version");
        let plate = event.plate.expect("its plate");
        assert_eq!((plate.text.as_str(), plate.rows, plate.reads, plate.votes, event.grid), ("苏EA0001", 1, 3, 0, payload::Grid::default()));
        let alert = json!({"schema": payload::ALERT_SCHEMA, "id": "a1", "site": "s", "camera": "gate", "ts": "t", "rule": "watched", "kind": "watch_list",
            "severity": "critical", "event_id": null, "event_ids": [], "type": "vehicle", "label": "car", "direction": "in",
            "plate": {"text": "苏EA0001", "color": "blue", "confidence": 0.9}});
        let alert: payload::Alert = serde_json::from_value(alert).expect("an alert of an earlier version");
        assert_eq!((alert.id.as_str(), alert.camera.as_str(), alert.rule.as_str()), ("a1", "gate", "watched"));
        // What is not a payload at all still fails, so restore skips it.
        assert!(serde_json::from_str::<payload::Event>(r#"{"schema": "edge-agent/event/v1", "id": "e1", "se"#).is_err());
    }

    #[test]
    fn an_acknowledged_alert_is_marked_in_memory_and_announced() {
        let feed = Feed::new();
        let mut rx = feed.subscribe();
        feed.publish(FeedItem::alert(logged_alert("a1")));
        let ack = Ack { by: "duty".into(), at: "t".into(), disposal: Disposal::default() };
        feed.acknowledge("a1", &ack);
        assert_eq!(feed.alert("a1").map(|(a, ack)| (a.camera, ack)), Some(("gate".to_string(), Some(ack))));
        assert!(matches!(feed.recent().first(), Some(FeedItem::Alert { ack: Some(_), .. })));
        let _ = rx.try_recv();
        let announced = rx.try_recv().map(|t| t.to_string()).unwrap_or_default();
        assert!(announced.contains("\"type\":\"ack\""), "{announced}");
    }
}
