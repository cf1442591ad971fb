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
//!
//! A message the broker refuses for what it is shows only as a lost connection under MQTT 3.1.1 (Mosquitto
//! closes the connection on a packet over its `max_packet_size` or a topic it cannot take). When the
//! connection is lost within [`POISON_WINDOW_MS`] of sending the oldest unacknowledged message, that
//! message is the suspect; the same suspect [`POISON_AFTER`] times in a row, with no acknowledgement of it
//! between, is a message the broker will never take, and the machine says to move it to the dead letters
//! ([`Delivery::on_connection_lost`]) so the messages behind it go on. A broker restart or a network
//! outage does not repeat that pattern: the message is acknowledged after the next connection.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// Times in a row the connection must drop right after a message was sent before it counts as refused.
pub const POISON_AFTER: u32 = 3;
/// "Right after": within this many milliseconds of sending it.
pub const POISON_WINDOW_MS: u64 = 5_000;

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

/// A message the broker dropped the connection on every time it was sent: move it to the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub key: u64,
    /// Connections lost right after sending it, in a row.
    pub times: u32,
}

/// One message in flight: its outbox key, when it was made and when it was sent (ms since the epoch).
#[derive(Debug, Clone, Copy)]
struct InFlight {
    key: u64,
    created_ms: u64,
    sent_ms: u64,
}

/// The delivery state of one connection.
#[derive(Debug)]
pub struct Delivery {
    window: usize,
    /// What was queued and has not been given a packet id yet, in order: `(key, created ms)` or `None` for
    /// a publish that is not from the outbox.
    queued: VecDeque<Option<(u64, u64)>>,
    /// Packet id → the message.
    inflight: HashMap<u16, InFlight>,
    /// Highest key queued (or skipped) since the connection started.
    cursor: u64,
    /// Keys settled — acknowledged, or moved to the dead letters — whose removal may not be on disk yet.
    settled: BTreeSet<u64>,
    /// Acknowledged keys not yet handed to the writer.
    pending_acks: Vec<u64>,
    /// The message the last lost connections dropped right after, and how many times in a row.
    suspect: Option<Refused>,
}

impl Delivery {
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1), queued: VecDeque::new(), inflight: HashMap::new(), cursor: 0, settled: BTreeSet::new(), pending_acks: Vec::new(), suspect: None }
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
        if self.settled.contains(&key) {
            self.cursor = self.cursor.max(key);
            return false;
        }
        true
    }

    /// Message `key` can never be delivered as it is and goes to the dead letters: it is skipped from now
    /// on.
    pub fn dead_letter(&mut self, key: u64) {
        self.settled.insert(key);
        self.cursor = self.cursor.max(key);
        if self.suspect.is_some_and(|s| s.key == key) {
            self.suspect = None;
        }
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

    /// Pairs a packet id reported by rumqttc (the publish was written out at `now_ms`) with what was queued.
    pub fn on_publish(&mut self, pkid: u16, now_ms: u64) -> Sent {
        if pkid == 0 {
            return Sent::Untracked;
        }
        match self.queued.pop_front() {
            Some(Some((key, created_ms))) => {
                self.inflight.insert(pkid, InFlight { key, created_ms, sent_ms: now_ms });
                Sent::Outbox(key)
            }
            Some(None) => Sent::Other,
            None => Sent::Untracked,
        }
    }

    /// Records an acknowledgement; returns the outbox message it acknowledged (room in the window).
    pub fn on_puback(&mut self, pkid: u16) -> Option<Acked> {
        let InFlight { key, created_ms, .. } = self.inflight.remove(&pkid)?;
        self.settled.insert(key);
        self.pending_acks.push(key);
        if self.suspect.is_some_and(|s| s.key == key) {
            self.suspect = None;
        }
        Some(Acked { key, created_ms })
    }

    /// Messages sent on this connection and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.inflight.len()
    }

    /// The connection was lost at `now_ms`: forgets its state (see [`Delivery::reset`]) and returns the
    /// message to move to the dead letters when the broker has now dropped the connection right after it
    /// [`POISON_AFTER`] times in a row.
    pub fn on_connection_lost(&mut self, now_ms: u64) -> Option<Refused> {
        let oldest = self.inflight.values().min_by_key(|m| m.key).copied();
        self.reset();
        let m = oldest.filter(|m| now_ms.saturating_sub(m.sent_ms) <= POISON_WINDOW_MS)?;
        let times = match self.suspect {
            Some(s) if s.key == m.key => s.times + 1,
            _ => 1,
        };
        if times >= POISON_AFTER {
            self.suspect = None;
            return Some(Refused { key: m.key, times });
        }
        self.suspect = Some(Refused { key: m.key, times });
        None
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
        self.settled.len() > 4 * self.window
    }

    /// Keys below the oldest message still stored are certainly deleted: forget them.
    pub fn forget_below(&mut self, oldest: u64) {
        self.settled = self.settled.split_off(&oldest);
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
        assert_eq!(d.on_publish(0, 0), Sent::Untracked, "QoS 0 has no packet id");
        assert_eq!(d.on_publish(7, 0), Sent::Outbox(1));
        assert_eq!(d.on_publish(8, 0), Sent::Outbox(2));
        assert_eq!(d.on_publish(9, 0), Sent::Other);
        assert_eq!(d.on_publish(10, 0), Sent::Outbox(3));
        assert_eq!(d.on_publish(11, 0), Sent::Untracked, "nothing left to pair");
    }

    #[test]
    fn a_puback_names_the_outbox_key_to_delete() {
        let mut d = Delivery::new(10);
        send(&mut d, &[5, 6]);
        d.on_publish(1, 0);
        d.on_publish(2, 0);
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
        d.on_publish(1, 0);
        d.on_publish(2, 0);
        d.on_puback(1);
        assert_eq!(d.wants(), Some((2, 1)), "one slot, after key 2");
        send(&mut d, &[3]);
        assert_eq!(d.wants(), None);
    }

    #[test]
    fn a_reconnect_mid_window_resends_from_the_oldest_skipping_what_was_acknowledged() {
        let mut d = Delivery::new(3);
        send(&mut d, &[1, 2, 3]);
        d.on_publish(1, 0);
        d.on_publish(2, 0);
        assert_eq!(d.on_puback(2).map(|a| a.key), Some(2));
        // The connection drops: key 1 was in flight, key 3 never got a packet id.
        d.reset();
        assert_eq!(d.wants(), Some((0, 3)));
        assert_eq!(send(&mut d, &[1, 2, 3]), vec![1, 3], "key 2 is acknowledged already and not sent twice");
        assert_eq!(d.on_publish(1, 0), Sent::Outbox(1));
        assert_eq!(d.on_publish(2, 0), Sent::Outbox(3));
        assert_eq!(d.wants(), Some((3, 1)));
        // Once the writer has deleted everything below 4, the memory of acknowledged keys is pruned.
        d.forget_below(4);
        assert!(d.offer(2), "forgotten keys are offered again (they are no longer stored anyway)");
    }

    #[test]
    fn a_message_the_broker_drops_the_connection_on_three_times_in_a_row_is_refused() {
        let mut d = Delivery::new(4);
        let mut now = 1_000_000;
        for round in 1..=POISON_AFTER {
            d.wants();
            // Key 1 is acknowledged in every round; key 2 is what the broker cannot take.
            let sent = send(&mut d, &[1, 2, 3]);
            assert_eq!(sent.contains(&1), round == 1, "key 1 is sent once");
            for (i, _) in sent.iter().enumerate() {
                d.on_publish(10 + i as u16, now);
            }
            if round == 1 {
                d.on_puback(10);
            }
            now += 50;
            let refused = d.on_connection_lost(now);
            if round < POISON_AFTER {
                assert_eq!(refused, None, "round {round}");
            } else {
                assert_eq!(refused, Some(Refused { key: 2, times: POISON_AFTER }));
            }
            now += 2_000;
        }
        d.dead_letter(2);
        assert_eq!(send(&mut d, &[2, 3]), vec![3], "the refused message is skipped, the next goes");
    }

    #[test]
    fn broker_restarts_and_slow_outages_do_not_make_a_message_refused() {
        let mut d = Delivery::new(4);
        // Lost long after the message was sent (a keep-alive timeout): not the message's fault.
        send(&mut d, &[1]);
        d.on_publish(1, 0);
        assert_eq!(d.on_connection_lost(POISON_WINDOW_MS + 1), None);
        // Lost right after sending it twice, then acknowledged on the next connection: the streak ends.
        for _ in 0..POISON_AFTER - 1 {
            send(&mut d, &[1]);
            d.on_publish(1, 100);
            assert_eq!(d.on_connection_lost(200), None);
        }
        send(&mut d, &[1]);
        d.on_publish(1, 300);
        d.on_puback(1);
        send(&mut d, &[2]);
        d.on_publish(2, 400);
        assert_eq!(d.on_connection_lost(500), None, "a new suspect starts from one");
        // Nothing in flight: a lost connection says nothing about any message.
        assert_eq!(d.on_connection_lost(600), None);
    }
}
