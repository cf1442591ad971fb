//! The outbox's single writer: appends and acknowledgements arrive on a bounded channel and are committed
//! in groups (everything that arrived within a few milliseconds shares one fsync). The MQTT task is woken
//! after each commit that added messages.
//!
//! A failing disk does not stop it. When a commit fails (the file system is full, or an I/O error), the
//! writer keeps everything it was given in memory, in order, closes the database and retries — reopening
//! it first, as redb asks — with a back-off of 0.5 s doubling to 5 s, while it goes on taking appends, so
//! camera threads never wait for the disk. What it holds is bounded ([`Bounds::held_max_bytes`]): past the
//! bound the oldest snapshots are dropped first, then (only when no snapshot is left) the oldest other
//! messages, each one counted. When a commit succeeds again everything held is committed in one go, in the
//! order it arrived. A batch appended with [`OutboxHandle::append_batch`] gets a [`Ticket`] that says when
//! (and which of) its messages are on disk, so the local record never runs ahead of the outbox.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendError, SendTimeoutError, Sender, TrySendError};
use tokio::sync::Notify;

use super::{Bounds, Fault, Kind, Message, Outbox, OutboxError};

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

enum Op {
    /// Messages to commit; the reply (when given) says which of them are in the outbox once committed.
    Append(Vec<Message>, Option<Sender<Vec<bool>>>),
    Ack(Vec<u64>),
    /// Move a message to the dead letters, with the reason.
    DeadLetter(u64, String),
    /// Answered once everything queued before it is committed.
    Flush(Sender<()>),
    /// Answered at once: the writer is alive (even while the disk fails).
    Ping(Sender<()>),
    /// Commit everything queued before it, then stop.
    Stop,
}

/// A message the outbox did not take, handed back with the reason (the writer has stopped).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    pub message: Message,
    pub reason: OutboxError,
}

/// A batch the outbox did not take, handed back with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct RejectedBatch {
    pub messages: Vec<Message>,
    pub reason: OutboxError,
}

/// Says when a batch is on disk.
#[derive(Debug)]
pub struct Ticket(Receiver<Vec<bool>>);

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// Committed: for each message of the batch, whether it is in the outbox (`false`: dropped from memory
    /// while the disk was failing).
    Committed(Vec<bool>),
    /// Not on disk yet.
    Pending,
    /// Never will be: the writer stopped before it could commit the batch.
    Lost,
}

impl Ticket {
    /// A ticket and the sender that answers it (for queues other than the writer).
    pub fn pair() -> (Sender<Vec<bool>>, Ticket) {
        let (tx, rx) = bounded(1);
        (tx, Ticket(rx))
    }

    /// Waits up to `timeout` for the commit.
    pub fn wait(&self, timeout: Duration) -> TicketState {
        match self.0.recv_timeout(timeout) {
            Ok(kept) => TicketState::Committed(kept),
            Err(RecvTimeoutError::Timeout) => TicketState::Pending,
            Err(RecvTimeoutError::Disconnected) => TicketState::Lost,
        }
    }
}

/// Why the store is failing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFailure {
    pub fault: Fault,
    pub reason: String,
    /// When the failure started, milliseconds since the epoch.
    pub since_ms: u64,
}

/// Counters and gauges kept by the writer.
#[derive(Debug, Default)]
pub struct WriterCounters {
    pub appended_total: AtomicU64,
    pub acked_total: AtomicU64,
    pub evicted_total: AtomicU64,
    pub commits_total: AtomicU64,
    pub commit_errors_total: AtomicU64,
    /// Times the database was closed and opened again after a failure.
    pub reopens_total: AtomicU64,
    /// Messages moved to the dead letters by this process.
    pub dead_letters_total: AtomicU64,
    /// Snapshots dropped from memory while the disk was failing (the bound was reached).
    pub shed_snapshots_total: AtomicU64,
    /// Other messages that never reached the disk: dropped from memory with no snapshot left to drop, or
    /// still held when the agent stopped.
    pub lost_total: AtomicU64,
    /// Messages and bytes held in memory, not yet committed.
    pub held_messages: AtomicU64,
    pub held_bytes: AtomicU64,
    failure: Mutex<Option<StoreFailure>>,
}

impl WriterCounters {
    /// The failure the writer is retrying now, if any.
    pub fn failure(&self) -> Option<StoreFailure> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_failure(&self, failure: Option<StoreFailure>) {
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = failure;
    }
}

/// A cloneable handle to append to and acknowledge in the outbox.
#[derive(Clone)]
pub struct OutboxHandle {
    tx: Sender<Op>,
    outbox: Arc<Outbox>,
    committed: Arc<Notify>,
    counters: Arc<WriterCounters>,
}

/// How the writer stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Whether the thread ended within the deadline.
    pub finished: bool,
    /// Messages that never reached the disk (held in memory when it stopped, or still held by a writer that
    /// did not end).
    pub lost: u64,
}

/// The writer thread. [`OutboxWriter::stop`] commits what was queued before it and stops, whether or not
/// every handle is gone: a camera thread stuck at shutdown must not keep the agent from stopping. An append
/// after that is handed back.
pub struct OutboxWriter {
    thread: Option<JoinHandle<()>>,
    tx: Sender<Op>,
    counters: Arc<WriterCounters>,
}

impl OutboxWriter {
    /// Starts the writer for `outbox`.
    pub fn start(outbox: Outbox, bounds: Bounds) -> Result<(Self, OutboxHandle), OutboxError> {
        let (tx, rx) = bounded::<Op>(4096);
        let outbox = Arc::new(outbox);
        let committed = Arc::new(Notify::new());
        let counters = Arc::new(WriterCounters::default());
        let handle = OutboxHandle { tx: tx.clone(), outbox: outbox.clone(), committed: committed.clone(), counters: counters.clone() };
        let shared = (outbox, committed, counters.clone());
        let thread = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || {
                let (outbox, committed, counters) = shared;
                Writer::new(&outbox, bounds, &committed, &counters).run(&rx);
            })
            .map_err(|e| OutboxError::Store { path: handle.outbox.path().to_path_buf(), fault: Fault::Other, reason: format!("cannot start writer thread: {e}") })?;
        Ok((Self { thread: Some(thread), tx, counters }, handle))
    }

    /// Asks the writer to commit everything queued so far and stop, and waits up to `deadline` for it. A
    /// writer whose disk is failing tries once more, then gives up what it holds (counted, logged).
    pub fn stop(mut self, deadline: Duration) -> StopReport {
        let until = Instant::now() + deadline;
        let _ = self.tx.send_timeout(Op::Stop, deadline);
        let Some(thread) = self.thread.take() else { return StopReport { finished: true, lost: 0 } };
        while !thread.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
            StopReport { finished: true, lost: self.counters.lost_total.load(Ordering::Relaxed) }
        } else {
            StopReport { finished: false, lost: self.counters.lost_total.load(Ordering::Relaxed) + self.counters.held_messages.load(Ordering::Relaxed) }
        }
    }
}

impl Drop for OutboxWriter {
    /// A writer dropped without [`OutboxWriter::stop`] still stops (without being waited for).
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.tx.try_send(Op::Stop);
        }
    }
}

impl OutboxHandle {
    /// Queues a message; it is on disk once the next group commits. Blocks only while the writer's queue is
    /// full (it never is while the writer runs: a failing disk makes it hold messages in memory instead).
    /// When the writer has stopped the message is handed back, so the caller can log and count it.
    pub fn append(&self, message: Message) -> Result<(), Rejected> {
        match self.tx.send(Op::Append(vec![message], None)) {
            Err(SendError(op)) => match into_messages(op).pop() {
                Some(message) => Err(Rejected { message, reason: OutboxError::Stopped }),
                None => Ok(()),
            },
            Ok(()) => Ok(()),
        }
    }

    /// Queues messages that belong together (what one frame produced); the ticket says when they are on
    /// disk.
    pub fn append_batch(&self, messages: Vec<Message>) -> Result<Ticket, RejectedBatch> {
        let (reply, ticket) = Ticket::pair();
        match self.tx.send(Op::Append(messages, Some(reply))) {
            Ok(()) => Ok(ticket),
            Err(SendError(op)) => Err(RejectedBatch { messages: into_messages(op), reason: OutboxError::Stopped }),
        }
    }

    /// Queues the deletion of acknowledged messages without blocking; hands the keys back when the queue is
    /// full so the caller can try again later.
    pub fn ack(&self, keys: Vec<u64>) -> Result<(), Vec<u64>> {
        match self.tx.try_send(Op::Ack(keys)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Op::Ack(keys)) | TrySendError::Disconnected(Op::Ack(keys))) => Err(keys),
            Err(_) => Ok(()),
        }
    }

    /// Queues moving message `key` to the dead letters, without blocking; hands it back when the queue is
    /// full.
    pub fn dead_letter(&self, key: u64, reason: String) -> Result<(), (u64, String)> {
        match self.tx.try_send(Op::DeadLetter(key, reason)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Op::DeadLetter(k, r)) | TrySendError::Disconnected(Op::DeadLetter(k, r))) => Err((k, r)),
            Err(_) => Ok(()),
        }
    }

    /// Blocks until everything queued so far is committed.
    pub fn flush(&self) -> Result<(), OutboxError> {
        let (tx, rx) = bounded(1);
        self.tx.send(Op::Flush(tx)).map_err(|_| OutboxError::Stopped)?;
        rx.recv().map_err(|_| OutboxError::Stopped)
    }

    /// [`OutboxHandle::flush`], giving up after `timeout` (the disk is failing).
    pub fn flush_within(&self, timeout: Duration) -> Result<(), OutboxError> {
        self.ask(Op::Flush, timeout)
    }

    /// Whether the writer answers within `timeout`: it does while it retries a failing disk, not while it is
    /// stuck inside the file system or has stopped.
    pub fn ping(&self, timeout: Duration) -> Result<(), OutboxError> {
        self.ask(Op::Ping, timeout)
    }

    /// Sends the operation `op` makes from a reply channel and waits, `timeout` in all, for the answer.
    fn ask(&self, op: fn(Sender<()>) -> Op, timeout: Duration) -> Result<(), OutboxError> {
        let until = Instant::now() + timeout;
        let (tx, rx) = bounded(1);
        self.tx.send_timeout(op(tx), timeout).map_err(|e| match e {
            SendTimeoutError::Timeout(_) => OutboxError::NoAnswer(timeout),
            SendTimeoutError::Disconnected(_) => OutboxError::Stopped,
        })?;
        rx.recv_timeout(until.saturating_duration_since(Instant::now())).map_err(|e| match e {
            RecvTimeoutError::Timeout => OutboxError::NoAnswer(timeout),
            RecvTimeoutError::Disconnected => OutboxError::Stopped,
        })
    }

    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Notified after each commit that added messages.
    pub fn committed(&self) -> &Arc<Notify> {
        &self.committed
    }

    pub fn counters(&self) -> &Arc<WriterCounters> {
        &self.counters
    }
}

/// The messages an unsent operation carried.
fn into_messages(op: Op) -> Vec<Message> {
    match op {
        Op::Append(messages, _) => messages,
        _ => Vec::new(),
    }
}

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

struct Writer<'a> {
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
    fn new(outbox: &'a Outbox, bounds: Bounds, committed: &'a Notify, counters: &'a WriterCounters) -> Self {
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

    fn run(mut self, rx: &Receiver<Op>) {
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

    fn publish_held(&self) {
        self.counters.held_messages.store(self.held_messages, Ordering::Relaxed);
        self.counters.held_bytes.store(self.held_bytes, Ordering::Relaxed);
    }

    fn expire_snapshots(&self) {
        match self.outbox.expire_snapshots(super::now_ms().saturating_sub(self.bounds.snapshot_max_age_ms)) {
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
                self.counters.set_failure(Some(StoreFailure { fault, reason: e.to_string(), since_ms: super::now_ms() }));
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
                let since_ms = self.counters.failure().map_or_else(super::now_ms, |s| s.since_ms);
                self.counters.set_failure(Some(StoreFailure { fault, reason: e.to_string(), since_ms }));
            }
        }
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

#[cfg(test)]
mod tests;
