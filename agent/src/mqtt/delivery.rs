//! Which outbox messages to publish and which to delete: a state machine without I/O (like rumqtt's
//! `state.rs`). The MQTT task reads the outbox, publishes and hands acknowledged keys to the outbox writer;
//! this module only decides, and returns its decisions as values.
//!
//! Design: rumqttc assigns packet ids itself and reports each QoS 1 publish as `Outgoing::Publish(pkid)` in
//! the order the requests were queued. Since the MQTT task is the only code that queues QoS 1 publishes, the
//! machine keeps a FIFO of what was queued (an outbox key, or "other" for the retained status) and pairs each
//! reported packet id with the front of that FIFO. A PUBACK then names the outbox key to delete. At most
//! `window` outbox messages are unacknowledged at a time. After a disconnect everything is forgotten and
//! delivery restarts from the oldest message still in the outbox; keys acknowledged but not yet deleted on
//! disk are skipped so they are not sent twice.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// What a reported packet id belonged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Outbox(u64),
    /// A QoS 1 publish that is not from the outbox (the status).
    Other,
    /// QoS 0, or nothing we queued.
    Untracked,
}

/// An outbox message the broker acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    pub key: u64,
    /// When the message was made, milliseconds since the epoch (for the latency figure).
    pub created_ms: u64,
}

/// The delivery state of one connection.
#[derive(Debug)]
pub struct Delivery {
    window: usize,
    /// What was queued and has not been given a packet id yet, in order: `(key, created ms)` or `None` for
    /// a publish that is not from the outbox.
    queued: VecDeque<Option<(u64, u64)>>,
    /// Packet id → (outbox key, created ms).
    inflight: HashMap<u16, (u64, u64)>,
    /// Highest key queued (or skipped) since the connection started.
    cursor: u64,
    /// Acknowledged keys whose deletion may not be on disk yet.
    acked: BTreeSet<u64>,
    /// Acknowledged keys not yet handed to the writer.
    pending_acks: Vec<u64>,
}

impl Delivery {
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1), queued: VecDeque::new(), inflight: HashMap::new(), cursor: 0, acked: BTreeSet::new(), pending_acks: Vec::new() }
    }

    fn outstanding(&self) -> usize {
        self.queued.iter().filter(|q| q.is_some()).count() + self.inflight.len()
    }

    /// Whether there is room in the window: read up to `.1` outbox messages with keys after `.0`.
    pub fn wants(&self) -> Option<(u64, usize)> {
        let outstanding = self.outstanding();
        (outstanding < self.window).then(|| (self.cursor, self.window - outstanding))
    }

    /// Offers a message read from the outbox: `true` when it should be published now (then report
    /// [`Delivery::queued`] once the client took it), `false` when it was acknowledged already and is
    /// skipped.
    pub fn offer(&mut self, key: u64) -> bool {
        if self.acked.contains(&key) {
            self.cursor = self.cursor.max(key);
            return false;
        }
        true
    }

    /// The client accepted the publish of outbox message `key`.
    pub fn queued(&mut self, key: u64, created_ms: u64) {
        self.queued.push_back(Some((key, created_ms)));
        self.cursor = self.cursor.max(key);
    }

    /// The client accepted a QoS 1 publish that is not from the outbox, so packet ids stay paired.
    pub fn queued_other(&mut self) {
        self.queued.push_back(None);
    }

    /// QoS 1 publishes not from the outbox that are queued and not yet given a packet id.
    pub fn others_queued(&self) -> usize {
        self.queued.iter().filter(|q| q.is_none()).count()
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

    /// Records an acknowledgement; returns the outbox message it acknowledged (room in the window).
    pub fn on_puback(&mut self, pkid: u16) -> Option<Acked> {
        let (key, created_ms) = self.inflight.remove(&pkid)?;
        self.acked.insert(key);
        self.pending_acks.push(key);
        Some(Acked { key, created_ms })
    }

    /// Keys to delete from the outbox now; give back with [`Delivery::acks_not_taken`] when the writer is
    /// busy.
    pub fn take_acks(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.pending_acks)
    }

    pub fn acks_not_taken(&mut self, mut keys: Vec<u64>) {
        keys.append(&mut self.pending_acks);
        self.pending_acks = keys;
    }

    /// Whether the memory of acknowledged keys has grown enough to prune with [`Delivery::forget_below`].
    pub fn wants_prune(&self) -> bool {
        self.acked.len() > 4 * self.window
    }

    /// Keys below the oldest message still stored are certainly deleted: forget them.
    pub fn forget_below(&mut self, oldest: u64) {
        self.acked = self.acked.split_off(&oldest);
    }

    /// Forgets the connection's state; delivery starts again from the oldest message.
    pub fn reset(&mut self) {
        self.queued.clear();
        self.inflight.clear();
        self.cursor = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Queues outbox keys as the task would: offered, then accepted by the client.
    fn send(d: &mut Delivery, keys: &[u64]) -> Vec<u64> {
        let mut sent = Vec::new();
        for &k in keys {
            if d.offer(k) {
                d.queued(k, 1000 + k);
                sent.push(k);
            }
        }
        sent
    }

    #[test]
    fn packet_ids_pair_with_what_was_queued_in_order() {
        let mut d = Delivery::new(10);
        send(&mut d, &[1, 2]);
        d.queued_other();
        send(&mut d, &[3]);
        assert_eq!(d.others_queued(), 1);
        assert_eq!(d.on_publish(0), Sent::Untracked, "QoS 0 has no packet id");
        assert_eq!(d.on_publish(7), Sent::Outbox(1));
        assert_eq!(d.on_publish(8), Sent::Outbox(2));
        assert_eq!(d.on_publish(9), Sent::Other);
        assert_eq!(d.on_publish(10), Sent::Outbox(3));
        assert_eq!(d.on_publish(11), Sent::Untracked, "nothing left to pair");
    }

    #[test]
    fn a_puback_names_the_outbox_key_to_delete() {
        let mut d = Delivery::new(10);
        send(&mut d, &[5, 6]);
        d.on_publish(1);
        d.on_publish(2);
        assert_eq!(d.on_puback(2), Some(Acked { key: 6, created_ms: 1006 }));
        assert_eq!(d.on_puback(2), None, "a repeated PUBACK deletes nothing more");
        assert_eq!(d.on_puback(42), None, "an unknown packet id deletes nothing");
        assert_eq!(d.take_acks(), vec![6]);
        assert!(d.take_acks().is_empty());
        // The writer was busy: the keys come back and go out with the next ones.
        d.on_puback(1);
        let keys = d.take_acks();
        d.acks_not_taken(keys);
        assert_eq!(d.take_acks(), vec![5]);
    }

    #[test]
    fn the_window_bounds_what_is_unacknowledged_and_reads_continue_after_the_cursor() {
        let mut d = Delivery::new(2);
        assert_eq!(d.wants(), Some((0, 2)));
        send(&mut d, &[1, 2]);
        assert_eq!(d.wants(), None, "window full");
        d.on_publish(1);
        d.on_publish(2);
        d.on_puback(1);
        assert_eq!(d.wants(), Some((2, 1)), "one slot, after key 2");
        send(&mut d, &[3]);
        assert_eq!(d.wants(), None);
    }

    #[test]
    fn a_reconnect_mid_window_resends_from_the_oldest_skipping_what_was_acknowledged() {
        let mut d = Delivery::new(3);
        send(&mut d, &[1, 2, 3]);
        d.on_publish(1);
        d.on_publish(2);
        assert_eq!(d.on_puback(2).map(|a| a.key), Some(2));
        // The connection drops: key 1 was in flight, key 3 never got a packet id.
        d.reset();
        assert_eq!(d.wants(), Some((0, 3)));
        assert_eq!(send(&mut d, &[1, 2, 3]), vec![1, 3], "key 2 is acknowledged already and not sent twice");
        assert_eq!(d.on_publish(1), Sent::Outbox(1));
        assert_eq!(d.on_publish(2), Sent::Outbox(3));
        assert_eq!(d.wants(), Some((3, 1)));
        // Once the writer has deleted everything below 4, the memory of acknowledged keys is pruned.
        d.forget_below(4);
        assert!(d.offer(2), "forgotten keys are offered again (they are no longer stored anyway)");
    }
}
