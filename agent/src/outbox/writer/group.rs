//! The writer thread's loop: groups what arrives, commits it, holds it in memory while the disk fails and
//! retries with a back-off, and keeps what it holds within its bound.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use tokio::sync::Notify;

use super::{Op, StoreFailure, WriterCounters};
use crate::outbox::{Bounds, Fault, Kind, Message, Outbox, OutboxError};

/// Longest a group waits for more work before committing.
const GROUP_WINDOW: Duration = Duration::from_millis(5);
/// Most operations in one commit.
const GROUP_MAX: usize = 512;
/// How often the age bound is applied when nothing else happens.
const IDLE_SWEEP: Duration = Duration::from_secs(30);
/// First and longest wait before retrying a failed commit.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// While failing, a repeated failure is logged at most this often.
const RETRY_LOG_EVERY: Duration = Duration::from_secs(60);

/// A batch waiting to be committed; a message dropped from memory is `None`.
struct Held {
    messages: Vec<Option<Message>>,
    reply: Option<Sender<Vec<bool>>>,
}

/// The writer is retrying after a failed commit.
struct Failing {
    delay: Duration,
    retry_at: Instant,
    last_logged: Instant,
    since: Instant,
    attempts: u64,
}

pub(super) struct Writer<'a> {
    outbox: &'a Outbox,
    bounds: Bounds,
    committed: &'a Notify,
    counters: &'a WriterCounters,
    held: VecDeque<Held>,
    held_messages: u64,
    held_bytes: u64,
    acked: Vec<u64>,
    dead: Vec<(u64, String)>,
    waiters: Vec<Sender<()>>,
    failing: Option<Failing>,
}

impl<'a> Writer<'a> {
    pub fn new(outbox: &'a Outbox, bounds: Bounds, committed: &'a Notify, counters: &'a WriterCounters) -> Self {
        Self {
            outbox,
            bounds,
            committed,
            counters,
            held: VecDeque::new(),
            held_messages: 0,
            held_bytes: 0,
            acked: Vec::new(),
            dead: Vec::new(),
            waiters: Vec::new(),
            failing: None,
        }
    }

    fn has_work(&self) -> bool {
        self.held_messages > 0 || !self.acked.is_empty() || !self.dead.is_empty() || self.held.iter().any(|h| h.reply.is_some())
    }

    fn ops(&self) -> usize {
        self.held_messages as usize + self.acked.len() + self.dead.len()
    }

    pub fn run(mut self, rx: &Receiver<Op>) {
        let mut stopping = false;
        let mut last_commit = Instant::now();
        // The first sweep runs at start.
        let mut last_snapshot_sweep = Instant::now().checked_sub(IDLE_SWEEP).unwrap_or_else(Instant::now);
        loop {
            if !stopping {
                // Wait for the first operation of a group, the next retry, or the next sweep.
                let now = Instant::now();
                let until = match &self.failing {
                    Some(f) => f.retry_at,
                    None if self.has_work() || !self.waiters.is_empty() => now,
                    None => now + IDLE_SWEEP,
                };
                if until > now {
                    match rx.recv_timeout(until - now) {
                        Ok(op) => stopping |= self.take(op),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => stopping = true,
                    }
                }
                match &self.failing {
                    // Retrying: take what comes (answering pings) until the retry is due.
                    Some(f) if !stopping && Instant::now() < f.retry_at => continue,
                    Some(_) => {}
                    None => {
                        // Gather the rest of the group.
                        let start = Instant::now();
                        while !stopping && self.ops() < GROUP_MAX {
                            match rx.recv_timeout(GROUP_WINDOW.saturating_sub(start.elapsed())) {
                                Ok(op) => stopping |= self.take(op),
                                Err(RecvTimeoutError::Timeout) => break,
                                Err(RecvTimeoutError::Disconnected) => stopping = true,
                            }
                        }
                    }
                }
            }
            if self.failing.is_none() && last_snapshot_sweep.elapsed() >= IDLE_SWEEP {
                last_snapshot_sweep = Instant::now();
                self.expire_snapshots();
            }
            let idle_sweep = !self.has_work() && self.failing.is_none() && last_commit.elapsed() >= IDLE_SWEEP;
            // A failure with nothing held (an idle sweep's commit) is retried too, so it can clear.
            let probe = self.failing.as_ref().is_some_and(|f| Instant::now() >= f.retry_at);
            if !self.has_work() && !idle_sweep && !probe {
                for w in self.waiters.drain(..) {
                    let _ = w.send(());
                }
                if stopping {
                    break;
                }
                continue;
            }
            if self.commit() {
                last_commit = Instant::now();
            }
            if stopping {
                // One last try was made (a failing writer retries at once when asked to stop).
                break;
            }
        }
        self.give_up();
    }

    /// Adds `op` to the group; true when it says to stop.
    fn take(&mut self, op: Op) -> bool {
        match op {
            Op::Append(messages, reply) => {
                self.held_messages += messages.len() as u64;
                self.held_bytes += messages.iter().map(Message::stored_len).sum::<u64>();
                self.held.push_back(Held { messages: messages.into_iter().map(Some).collect(), reply });
                self.enforce_bound();
                self.publish_held();
            }
            Op::Ack(keys) => self.acked.extend(keys),
            Op::DeadLetter(key, reason) => self.dead.push((key, reason)),
            Op::Flush(w) => self.waiters.push(w),
            Op::Ping(w) => {
                let _ = w.send(());
            }
            Op::Stop => return true,
        }
        false
    }

    /// Keeps what is held in memory within the bound: the oldest snapshots go first, then the oldest of the
    /// rest (each one counted and logged).
    fn enforce_bound(&mut self) {
        while self.held_bytes > self.bounds.held_max_bytes {
            let oldest = |held: &mut VecDeque<Held>, snapshots_only: bool| {
                held.iter_mut().flat_map(|h| h.messages.iter_mut()).find(|m| m.as_ref().is_some_and(|m| !snapshots_only || m.kind == Kind::Snapshot)).and_then(Option::take)
            };
            let (dropped, snapshot) = match oldest(&mut self.held, true) {
                Some(m) => (m, true),
                None => match oldest(&mut self.held, false) {
                    Some(m) => (m, false),
                    None => break,
                },
            };
            self.held_messages -= 1;
            self.held_bytes = self.held_bytes.saturating_sub(dropped.stored_len());
            if snapshot {
                self.counters.shed_snapshots_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %dropped.topic, held_mb = self.held_bytes >> 20, "outbox: the disk is failing and memory for held messages is full: oldest snapshot dropped");
            } else {
                self.counters.lost_total.fetch_add(1, Ordering::Relaxed);
                tracing::error!(topic = %dropped.topic, kind = ?dropped.kind, held_mb = self.held_bytes >> 20, "outbox: the disk is failing and memory for held messages is full with no snapshot left to drop: oldest message lost");
            }
        }
    }

    /// Publishes what is held because the disk cannot take it: while commits fail, everything held; otherwise
    /// none (a group waiting the few milliseconds for its commit is not held, and must not show as such on
    /// the desk, in the status or in the gauge).
    fn publish_held(&self) {
        let (messages, bytes) = if self.failing.is_some() { (self.held_messages, self.held_bytes) } else { (0, 0) };
        self.counters.held_messages.store(messages, Ordering::Relaxed);
        self.counters.held_bytes.store(bytes, Ordering::Relaxed);
    }

    fn expire_snapshots(&self) {
        match self.outbox.expire_snapshots(crate::outbox::now_ms().saturating_sub(self.bounds.snapshot_max_age_ms)) {
            Ok(0) => {}
            Ok(n) => {
                self.counters.evicted_total.fetch_add(n, Ordering::Relaxed);
                tracing::info!(snapshots = n, "snapshots older than the snapshot retention removed from the outbox undelivered");
            }
            Err(e) => tracing::warn!(error = %e, "cannot expire old snapshots in the outbox"),
        }
    }

    /// Commits everything held (reopening the database first after a failure); true when it succeeded.
    fn commit(&mut self) -> bool {
        let result = self.reopen_if_failing().and_then(|()| {
            let messages = self.held.iter().flat_map(|h| h.messages.iter().flatten());
            self.outbox.commit(messages, &self.acked, &self.dead, self.bounds)
        });
        match result {
            Ok(done) => {
                let c = self.counters;
                c.commits_total.fetch_add(1, Ordering::Relaxed);
                c.appended_total.fetch_add(done.keys.len() as u64, Ordering::Relaxed);
                c.acked_total.fetch_add(self.acked.len() as u64, Ordering::Relaxed);
                c.dead_letters_total.fetch_add(done.dead_lettered, Ordering::Relaxed);
                if done.evicted > 0 {
                    c.evicted_total.fetch_add(done.evicted, Ordering::Relaxed);
                    tracing::warn!(
                        evicted = done.evicted,
                        max_bytes = self.bounds.max_bytes,
                        max_age_h = self.bounds.max_age_ms / 3_600_000,
                        "outbox full or messages too old: evicted the oldest"
                    );
                }
                if let Some(f) = self.failing.take() {
                    c.set_failure(None);
                    tracing::info!(
                        after_s = f.since.elapsed().as_secs(),
                        attempts = f.attempts,
                        committed = done.keys.len(),
                        "outbox writable again: everything held in memory is committed"
                    );
                }
                for h in self.held.drain(..) {
                    if let Some(reply) = h.reply {
                        let _ = reply.send(h.messages.iter().map(Option::is_some).collect());
                    }
                }
                self.held_messages = 0;
                self.held_bytes = 0;
                self.publish_held();
                self.acked.clear();
                self.dead.clear();
                for w in self.waiters.drain(..) {
                    let _ = w.send(());
                }
                if !done.keys.is_empty() {
                    self.committed.notify_one();
                }
                true
            }
            Err(e) => {
                self.failed(&e);
                false
            }
        }
    }

    fn reopen_if_failing(&self) -> Result<(), OutboxError> {
        if self.failing.is_some() {
            self.counters.reopens_total.fetch_add(1, Ordering::Relaxed);
            self.outbox.reopen()?;
        }
        Ok(())
    }

    /// A commit (or the reopening before it) failed: close the database, keep everything, retry later.
    fn failed(&mut self, e: &OutboxError) {
        self.counters.commit_errors_total.fetch_add(1, Ordering::Relaxed);
        // redb refuses every transaction after an I/O error until it is opened again.
        self.outbox.close();
        let fault = e.fault().unwrap_or(Fault::Other);
        let now = Instant::now();
        match &mut self.failing {
            None => {
                tracing::error!(error = %e, fault = fault.as_str(), held = self.held_messages, "outbox commit failed: holding messages in memory and retrying");
                self.counters.set_failure(Some(StoreFailure { fault, reason: e.to_string(), since_ms: crate::outbox::now_ms() }));
                self.failing = Some(Failing { delay: RETRY_FIRST, retry_at: now + RETRY_FIRST, last_logged: now, since: now, attempts: 1 });
            }
            Some(f) => {
                f.attempts += 1;
                f.delay = (f.delay * 2).min(RETRY_MAX);
                f.retry_at = now + f.delay;
                if f.last_logged.elapsed() >= RETRY_LOG_EVERY {
                    f.last_logged = now;
                    tracing::warn!(error = %e, fault = fault.as_str(), held = self.held_messages, attempts = f.attempts, failing_s = f.since.elapsed().as_secs(), "outbox still cannot commit");
                }
                let since_ms = self.counters.failure().map_or_else(crate::outbox::now_ms, |s| s.since_ms);
                self.counters.set_failure(Some(StoreFailure { fault, reason: e.to_string(), since_ms }));
            }
        }
        self.publish_held();
    }

    /// Stopping with messages that could not be committed: they are lost; say how many.
    fn give_up(&mut self) {
        if self.held_messages > 0 {
            self.counters.lost_total.fetch_add(self.held_messages, Ordering::Relaxed);
            tracing::error!(lost = self.held_messages, bytes = self.held_bytes, "outbox stopped with messages it could not write to disk: they are lost");
        }
        self.held.clear();
        self.held_messages = 0;
        self.held_bytes = 0;
        self.publish_held();
        // Flush waiters are dropped unanswered: their flush did not happen.
        self.waiters.clear();
    }
}
