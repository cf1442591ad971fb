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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendError, SendTimeoutError, Sender, TrySendError};
use tokio::sync::Notify;

use super::{Bounds, Fault, Message, Outbox, OutboxError};
use group::Writer;

mod group;

/// What the handles ask of the writer thread.
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

#[cfg(test)]
mod tests;
