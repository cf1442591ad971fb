//! Delivering the outbox over one MQTT connection.
//!
//! Design: rumqttc assigns packet ids itself and reports each QoS 1 publish as `Outgoing::Publish(pkid)` in
//! the order the requests were queued. Since the MQTT task is the only code that queues QoS 1 publishes, it
//! keeps a FIFO of what it queued (an outbox key, or "other" for the retained status) and pairs each
//! reported packet id with the front of that FIFO. A PUBACK then names the outbox key to delete. At most
//! `window` outbox messages are unacknowledged at a time. After a disconnect everything is forgotten and
//! delivery restarts from the oldest message still in the outbox; keys acknowledged but not yet deleted on
//! disk are skipped so they are not sent twice.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;

use rumqttc::{AsyncClient, QoS};

use super::LinkState;
use crate::outbox::{now_ms, OutboxHandle};

/// Most payload bytes read from the outbox in one go.
const READ_BYTES: usize = 4 << 20;
/// Recent acknowledgement latencies kept for stats.
const LATENCIES_KEPT: usize = 4096;

/// What a reported packet id belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Outbox(u64),
    /// A QoS 1 publish that is not from the outbox (the status).
    Other,
    /// QoS 0, or nothing we queued.
    Untracked,
}

pub struct Delivery {
    outbox: OutboxHandle,
    window: usize,
    /// What was queued and has not been given a packet id yet, in order.
    queued: VecDeque<Option<(u64, u64)>>,
    /// Packet id → (outbox key, created ms).
    inflight: HashMap<u16, (u64, u64)>,
    /// Highest key queued since the connection started.
    cursor: u64,
    /// Acknowledged keys whose deletion may not be on disk yet.
    acked: BTreeSet<u64>,
    /// Acknowledged keys not yet handed to the writer.
    pending_acks: Vec<u64>,
}

impl Delivery {
    pub fn new(outbox: OutboxHandle, window: usize) -> Self {
        Self {
            outbox,
            window: window.max(1),
            queued: VecDeque::new(),
            inflight: HashMap::new(),
            cursor: 0,
            acked: BTreeSet::new(),
            pending_acks: Vec::new(),
        }
    }

    pub fn outbox(&self) -> &OutboxHandle {
        &self.outbox
    }

    fn outstanding(&self) -> usize {
        self.queued.iter().filter(|q| q.is_some()).count() + self.inflight.len()
    }

    /// Queues outbox messages after the cursor until the window is full.
    pub fn fill(&mut self, client: &AsyncClient, state: &LinkState) {
        while self.outstanding() < self.window {
            let room = self.window - self.outstanding();
            let batch = match self.outbox.outbox().read_after(self.cursor, room, READ_BYTES) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for (key, message) in batch {
                if self.acked.contains(&key) {
                    self.cursor = key;
                    continue;
                }
                match client.try_publish(message.topic, QoS::AtLeastOnce, false, message.payload) {
                    Ok(()) => {
                        self.queued.push_back(Some((key, message.created_ms)));
                        self.cursor = key;
                        state.sent_total.fetch_add(1, Ordering::Relaxed);
                    }
                    // The request queue is full: try again on the next acknowledgement.
                    Err(_) => return,
                }
            }
        }
    }

    /// QoS 1 publishes not from the outbox that are queued and not yet given a packet id.
    pub fn others_queued(&self) -> usize {
        self.queued.iter().filter(|q| q.is_none()).count()
    }

    /// Notes a QoS 1 publish that is not from the outbox, so packet ids stay paired.
    pub fn sent_other(&mut self) {
        self.queued.push_back(None);
    }

    /// Pairs a packet id reported by rumqttc with what was queued.
    pub fn on_publish(&mut self, pkid: u16) -> Sent {
        if pkid == 0 {
            return Sent::Untracked;
        }
        match self.queued.pop_front() {
            Some(Some((key, created))) => {
                self.inflight.insert(pkid, (key, created));
                Sent::Outbox(key)
            }
            Some(None) => Sent::Other,
            None => Sent::Untracked,
        }
    }

    /// Records an acknowledgement; returns whether it freed room in the window.
    pub fn on_puback(&mut self, pkid: u16, state: &LinkState) -> bool {
        let Some((key, created)) = self.inflight.remove(&pkid) else { return false };
        self.acked.insert(key);
        self.pending_acks.push(key);
        state.acked_total.fetch_add(1, Ordering::Relaxed);
        let mut latencies = state.ack_latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
        if latencies.len() == LATENCIES_KEPT {
            latencies.pop_front();
        }
        latencies.push_back(now_ms().saturating_sub(created));
        true
    }

    /// Hands acknowledged keys to the outbox writer (it deletes them in its next group commit).
    pub fn flush_acks(&mut self) {
        if self.pending_acks.is_empty() {
            return;
        }
        match self.outbox.ack(std::mem::take(&mut self.pending_acks)) {
            Ok(()) => {}
            Err(keys) => self.pending_acks = keys,
        }
        // Keys below the oldest message still stored are certainly deleted.
        if self.acked.len() > 4 * self.window {
            if let Ok(keys) = self.outbox.outbox().read_after(0, 1, 0) {
                let oldest = keys.first().map_or(u64::MAX, |(k, _)| *k);
                self.acked = self.acked.split_off(&oldest);
            }
        }
    }

    /// Forgets the connection's state; the next [`Delivery::fill`] starts from the oldest message.
    pub fn reset(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.cursor = 0;
    }
}
