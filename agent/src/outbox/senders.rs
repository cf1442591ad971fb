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
