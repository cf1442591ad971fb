//! The I/O around [`Delivery`]: reads the outbox, publishes through the client, hands acknowledged keys
//! to the outbox writer and keeps the link's counters. Only the MQTT task uses it.
//!
//! A message that can never be published as it is goes to the dead letters instead of blocking the queue:
//! one whose topic MQTT forbids or whose packet would exceed what the client may send (found here before
//! publishing, by type), and one the broker drops the connection on every time it is sent (found by the
//! delivery machine). Only a transient refusal — the client's request queue is full — waits.

use std::sync::atomic::Ordering;

use rumqttc::{AsyncClient, QoS};

use super::delivery::{Delivery, Refused, Sent, POISON_WINDOW_MS};
use super::{LinkState, MAX_PACKET_BYTES};
use crate::outbox::{now_ms, Message, OutboxHandle};
use crate::topics::{check_topic, TopicError};

/// Most payload bytes read from the outbox in one go.
const READ_BYTES: usize = 4 << 20;
/// Recent acknowledgement latencies kept for stats.
const LATENCIES_KEPT: usize = 4096;

/// Why a message can never be delivered as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undeliverable {
    #[error("{0}")]
    Topic(#[from] TopicError),
    #[error("the message is {bytes} bytes, more than the {max} bytes an MQTT packet may carry here")]
    TooLarge { bytes: usize, max: usize },
    #[error("the broker closed the connection each of the {0} times this message was sent, within {POISON_WINDOW_MS} ms: it refuses it (larger than the broker's max_packet_size, or a topic it does not take)")]
    Refused(u32),
}

/// Whether `message` can be published at all: its topic is a valid topic name and its packet (fixed header,
/// topic, packet id, payload) fits the packet size the client is allowed.
pub fn publishable(message: &Message) -> Result<(), Undeliverable> {
    check_topic(&message.topic)?;
    let bytes = 5 + 2 + message.topic.len() + 2 + message.payload.len();
    if bytes > MAX_PACKET_BYTES {
        return Err(Undeliverable::TooLarge { bytes, max: MAX_PACKET_BYTES });
    }
    Ok(())
}

/// The outbox and the delivery state of the current connection.
pub struct Outbound {
    pub machine: Delivery,
    outbox: OutboxHandle,
    /// Dead letters not yet handed to the writer (its queue was full).
    dead: Vec<(u64, String)>,
    /// Dead letters committed when the status last heard of them.
    dead_reported: u64,
}

impl Outbound {
    pub fn new(outbox: OutboxHandle, window: usize) -> Self {
        Self { machine: Delivery::new(window), outbox, dead: Vec::new(), dead_reported: 0 }
    }

    pub fn outbox(&self) -> &OutboxHandle {
        &self.outbox
    }

    /// Publishes outbox messages after the cursor until the window is full or the client's queue is.
    pub fn fill(&mut self, client: &AsyncClient, state: &LinkState) {
        while let Some((after, room)) = self.machine.wants() {
            let batch = match self.outbox.outbox().read_after(after, room, READ_BYTES) {
                Ok(b) => b,
                Err(e) if e.fault() == Some(crate::outbox::Fault::Closed) => {
                    tracing::debug!(error = %e, "outbox being reopened: delivery waits");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for (key, message) in batch {
                if !self.machine.offer(key) {
                    continue;
                }
                if let Err(why) = publishable(&message) {
                    self.dead_letter(key, &message, &why);
                    continue;
                }
                let created = message.created_ms;
                match client.try_publish(message.topic, QoS::AtLeastOnce, false, message.payload) {
                    Ok(()) => {
                        self.machine.queued(key, created);
                        state.sent_total.fetch_add(1, Ordering::Relaxed);
                    }
                    // The topic was checked above, so the client refuses only because its request queue is
                    // full: try again on the next acknowledgement.
                    Err(_) => return,
                }
            }
            state.unacknowledged.store(self.machine.unacknowledged() as u64, Ordering::Relaxed);
        }
    }

    /// Moves a message to the dead letters (through the writer) and skips it from now on.
    fn dead_letter(&mut self, key: u64, message: &Message, why: &Undeliverable) {
        tracing::error!(key, topic = %message.topic, kind = ?message.kind, bytes = message.payload.len(), reason = %why, "message moved to the dead letters: it can never be delivered as it is; the ones behind it go on");
        self.machine.dead_letter(key);
        self.dead.push((key, why.to_string()));
    }

    /// Pairs a reported packet id.
    pub fn on_publish(&mut self, pkid: u16) -> Sent {
        self.machine.on_publish(pkid, now_ms())
    }

    /// Records an acknowledgement; returns whether it freed room in the window.
    pub fn on_puback(&mut self, pkid: u16, state: &LinkState) -> bool {
        let Some(acked) = self.machine.on_puback(pkid) else { return false };
        state.acked_total.fetch_add(1, Ordering::Relaxed);
        state.progress();
        state.unacknowledged.store(self.machine.unacknowledged() as u64, Ordering::Relaxed);
        let mut latencies = state.ack_latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
        if latencies.len() == LATENCIES_KEPT {
            latencies.pop_front();
        }
        latencies.push_back(now_ms().saturating_sub(acked.created_ms));
        true
    }

    /// The connection was lost: forgets its state; a message the broker keeps dropping the connection on
    /// goes to the dead letters.
    pub fn on_connection_lost(&mut self, state: &LinkState) {
        state.unacknowledged.store(0, Ordering::Relaxed);
        let Some(Refused { key, times }) = self.machine.on_connection_lost(now_ms()) else { return };
        let message = self.outbox.outbox().read_after(key.saturating_sub(1), 1, 0).ok().and_then(|b| b.into_iter().next()).filter(|(k, _)| *k == key);
        match message {
            Some((_, message)) => self.dead_letter(key, &message, &Undeliverable::Refused(times)),
            None => self.machine.dead_letter(key),
        }
    }

    /// Hands acknowledged keys and dead letters to the outbox writer (it applies them in its next group
    /// commit). Returns true when dead letters were committed since the last call (the status should say
    /// so).
    pub fn flush_acks(&mut self) -> bool {
        let keys = self.machine.take_acks();
        if !keys.is_empty() {
            if let Err(keys) = self.outbox.ack(keys) {
                self.machine.acks_not_taken(keys);
            }
        }
        let mut waiting = std::mem::take(&mut self.dead).into_iter();
        for (key, reason) in waiting.by_ref() {
            if let Err(back) = self.outbox.dead_letter(key, reason) {
                self.dead.push(back);
                break;
            }
        }
        self.dead.extend(waiting);
        let committed = self.outbox.counters().dead_letters_total.load(Ordering::Relaxed);
        let news = committed != self.dead_reported;
        self.dead_reported = committed;
        if self.machine.wants_prune() {
            if let Ok(oldest) = self.outbox.outbox().read_after(0, 1, 0) {
                self.machine.forget_below(oldest.first().map_or(u64::MAX, |(k, _)| *k));
            }
        }
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Kind;

    #[test]
    fn a_topic_with_wildcards_or_a_packet_over_the_limit_cannot_be_published() {
        let ok = Message::new(Kind::Snapshot, "checkpoint/a/b/c/d/e/gate/snapshots/cmd-1".into(), vec![0; 1000]);
        assert_eq!(publishable(&ok), Ok(()));
        let wildcard = Message::new(Kind::Snapshot, "checkpoint/a/b/c/d/e/gate/snapshots/x#y".into(), vec![0; 10]);
        assert_eq!(publishable(&wildcard), Err(Undeliverable::Topic(TopicError::Forbidden('#'))));
        let huge = Message::new(Kind::Snapshot, "t".into(), vec![0; MAX_PACKET_BYTES]);
        assert!(matches!(publishable(&huge), Err(Undeliverable::TooLarge { .. })));
        assert!(Undeliverable::Refused(3).to_string().contains("3 times"));
    }
}
