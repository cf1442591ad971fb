//! Threads that send from a queue of their own (an outbox of the same machinery as MQTT's), and that
//! queue's writer: the work-group notification channels and the GA/T 1400 uplink.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::OutboxWriter;

pub struct QueueSenders {
    threads: Vec<JoinHandle<()>>,
    writer: Option<OutboxWriter>,
    cancel: CancellationToken,
}

impl QueueSenders {
    /// `cancel` stops `threads`; `writer` is their queue's.
    pub fn new(threads: Vec<JoinHandle<()>>, writer: OutboxWriter, cancel: CancellationToken) -> Self {
        Self { threads, writer: Some(writer), cancel }
    }

    /// Stops the threads (a request in flight ends within its timeout; one still running at the deadline is
    /// left behind) and then the queue's writer.
    pub fn stop(mut self, deadline: Duration) {
        self.cancel.cancel();
        let until = Instant::now() + deadline;
        for t in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        if let Some(w) = self.writer.take() {
            w.stop(until.saturating_duration_since(Instant::now()).max(Duration::from_millis(500)));
        }
    }
}

/// A sender's settled messages: keys handed to the writer for deletion and not yet gone from the queue
/// (never sent again, even before the deletion commits), and deletions the writer had no room for (handed
/// over with the next).
#[derive(Debug, Default)]
pub struct Settled {
    done: std::collections::BTreeSet<u64>,
    unacked: Vec<u64>,
}

impl Settled {
    /// Whether `key` was settled.
    pub fn contains(&self, key: u64) -> bool {
        self.done.contains(&key)
    }

    /// Marks `key` settled without deleting it (a dead letter moves it).
    pub fn insert(&mut self, key: u64) {
        self.done.insert(key);
    }

    /// After a read of the whole queue: forgets the keys it no longer holds (`seen` are those it still did).
    pub fn forget_gone(&mut self, seen: &std::collections::BTreeSet<u64>) {
        let unacked = &self.unacked;
        self.done.retain(|k| seen.contains(k) || unacked.contains(k));
    }

    /// Deletes `keys` from `queue`; `false` when the writer was busy (they are deleted with the next).
    pub fn ack(&mut self, queue: &super::OutboxHandle, keys: Vec<u64>) -> bool {
        self.done.extend(keys.iter().copied());
        let mut keys = keys;
        keys.append(&mut self.unacked);
        if keys.is_empty() {
            return true;
        }
        match queue.ack(keys) {
            Ok(()) => true,
            Err(keys) => {
                self.unacked = keys;
                false
            }
        }
    }
}
