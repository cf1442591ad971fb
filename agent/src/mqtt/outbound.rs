//! The I/O around [`Delivery`]: reads the outbox, publishes through the client, hands acknowledged keys
//! to the outbox writer and keeps the link's counters. Only the MQTT task uses it.

use std::sync::atomic::Ordering;

use rumqttc::{AsyncClient, QoS};

use super::delivery::{Delivery, Sent};
use super::LinkState;
use crate::outbox::{now_ms, OutboxHandle};

/// Most payload bytes read from the outbox in one go.
const READ_BYTES: usize = 4 << 20;
/// Recent acknowledgement latencies kept for stats.
const LATENCIES_KEPT: usize = 4096;

/// The outbox and the delivery state of the current connection.
pub struct Outbound {
    pub machine: Delivery,
    outbox: OutboxHandle,
}

impl Outbound {
    pub fn new(outbox: OutboxHandle, window: usize) -> Self {
        Self { machine: Delivery::new(window), outbox }
    }

    pub fn outbox(&self) -> &OutboxHandle {
        &self.outbox
    }

    /// Publishes outbox messages after the cursor until the window is full or the client's queue is.
    pub fn fill(&mut self, client: &AsyncClient, state: &LinkState) {
        while let Some((after, room)) = self.machine.wants() {
            let batch = match self.outbox.outbox().read_after(after, room, READ_BYTES) {
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
                if !self.machine.offer(key) {
                    continue;
                }
                let created = message.created_ms;
                match client.try_publish(message.topic, QoS::AtLeastOnce, false, message.payload) {
                    Ok(()) => {
                        self.machine.queued(key, created);
                        state.sent_total.fetch_add(1, Ordering::Relaxed);
                    }
                    // The request queue is full: try again on the next acknowledgement.
                    Err(_) => return,
                }
            }
        }
    }

    /// Pairs a reported packet id.
    pub fn on_publish(&mut self, pkid: u16) -> Sent {
        self.machine.on_publish(pkid)
    }

    /// Records an acknowledgement; returns whether it freed room in the window.
    pub fn on_puback(&mut self, pkid: u16, state: &LinkState) -> bool {
        let Some(acked) = self.machine.on_puback(pkid) else { return false };
        state.acked_total.fetch_add(1, Ordering::Relaxed);
        let mut latencies = state.ack_latencies_ms.lock().unwrap_or_else(|p| p.into_inner());
        if latencies.len() == LATENCIES_KEPT {
            latencies.pop_front();
        }
        latencies.push_back(now_ms().saturating_sub(acked.created_ms));
        true
    }

    /// Hands acknowledged keys to the outbox writer (it deletes them in its next group commit).
    pub fn flush_acks(&mut self) {
        let keys = self.machine.take_acks();
        if !keys.is_empty() {
            if let Err(keys) = self.outbox.ack(keys) {
                self.machine.acks_not_taken(keys);
            }
        }
        if self.machine.wants_prune() {
            if let Ok(oldest) = self.outbox.outbox().read_after(0, 1, 0) {
                self.machine.forget_below(oldest.first().map_or(u64::MAX, |(k, _)| *k));
            }
        }
    }
}
