//! The outbox's single writer: appends and acknowledgements arrive on a bounded channel and are committed
//! in groups (everything that arrived within a few milliseconds shares one fsync). The MQTT task is woken
//! after each commit that added messages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendError, Sender, TrySendError};
use tokio::sync::Notify;

use super::{Bounds, Message, Outbox, OutboxError};

/// Longest a group waits for more work before committing.
const GROUP_WINDOW: Duration = Duration::from_millis(5);
/// Most operations in one commit.
const GROUP_MAX: usize = 512;
/// How often the age bound is applied when nothing else happens.
const IDLE_SWEEP: Duration = Duration::from_secs(30);

enum Op {
    Append(Message),
    Ack(Vec<u64>),
    /// Answered once everything queued before it is committed.
    Flush(Sender<()>),
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

/// Counters kept by the writer.
#[derive(Debug, Default)]
pub struct WriterCounters {
    pub appended_total: AtomicU64,
    pub acked_total: AtomicU64,
    pub evicted_total: AtomicU64,
    pub commits_total: AtomicU64,
    pub commit_errors_total: AtomicU64,
}

/// A cloneable handle to append to and acknowledge in the outbox.
#[derive(Clone)]
pub struct OutboxHandle {
    tx: Sender<Op>,
    outbox: Arc<Outbox>,
    committed: Arc<Notify>,
    counters: Arc<WriterCounters>,
}

/// The writer thread. [`OutboxWriter::stop`] commits what was queued before it and stops, whether or not
/// every handle is gone: a camera thread stuck at shutdown must not keep the agent from stopping. An append
/// after that is handed back.
pub struct OutboxWriter {
    thread: Option<JoinHandle<()>>,
    tx: Sender<Op>,
}

impl OutboxWriter {
    /// Starts the writer for `outbox`.
    pub fn start(outbox: Outbox, bounds: Bounds) -> Result<(Self, OutboxHandle), OutboxError> {
        let (tx, rx) = bounded::<Op>(4096);
        let outbox = Arc::new(outbox);
        let committed = Arc::new(Notify::new());
        let counters = Arc::new(WriterCounters::default());
        let handle = OutboxHandle { tx: tx.clone(), outbox: outbox.clone(), committed: committed.clone(), counters: counters.clone() };
        let thread = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || run(&outbox, bounds, &rx, &committed, &counters))
            .map_err(|e| OutboxError::Store { path: handle.outbox.path().to_path_buf(), reason: format!("cannot start writer thread: {e}") })?;
        Ok((Self { thread: Some(thread), tx }, handle))
    }

    /// Waits for the writer to commit everything queued so far and stop.
    pub fn stop(mut self) {
        let _ = self.tx.send(Op::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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
    /// Queues a message; it is on disk once the next group commits. Blocks while the queue is full (the
    /// disk is slower than the cameras), which makes the camera drop frames rather than messages. When the
    /// writer has stopped the message is handed back, so the caller can log and count it.
    pub fn append(&self, message: Message) -> Result<(), Rejected> {
        match self.tx.send(Op::Append(message)) {
            Err(SendError(Op::Append(message))) => Err(Rejected { message, reason: OutboxError::Stopped }),
            // `send` hands back exactly what it was given.
            Ok(()) | Err(_) => Ok(()),
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

    /// Blocks until everything queued so far is committed.
    pub fn flush(&self) -> Result<(), OutboxError> {
        let (tx, rx) = bounded(1);
        self.tx.send(Op::Flush(tx)).map_err(|_| OutboxError::Stopped)?;
        rx.recv().map_err(|_| OutboxError::Stopped)
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

fn run(outbox: &Outbox, bounds: Bounds, rx: &Receiver<Op>, committed: &Notify, counters: &WriterCounters) {
    let mut messages: Vec<Message> = Vec::new();
    let mut acked: Vec<u64> = Vec::new();
    let mut waiters: Vec<Sender<()>> = Vec::new();
    let mut disconnected = false;
    let mut last_commit = Instant::now();
    // The first sweep runs at start.
    let mut last_snapshot_sweep = Instant::now().checked_sub(IDLE_SWEEP).unwrap_or_else(Instant::now);
    while !disconnected || !messages.is_empty() || !acked.is_empty() {
        // Wait for the first operation of a group (or sweep for age now and then).
        if messages.is_empty() && acked.is_empty() && waiters.is_empty() && !disconnected {
            match rx.recv_timeout(IDLE_SWEEP) {
                Ok(op) => disconnected |= take(op, &mut messages, &mut acked, &mut waiters),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
        }
        // Gather the rest of the group.
        let start = Instant::now();
        while !disconnected && messages.len() + acked.len() < GROUP_MAX {
            let left = GROUP_WINDOW.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(op) => disconnected |= take(op, &mut messages, &mut acked, &mut waiters),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
        }
        if last_snapshot_sweep.elapsed() >= IDLE_SWEEP {
            last_snapshot_sweep = Instant::now();
            match outbox.expire_snapshots(super::now_ms().saturating_sub(bounds.snapshot_max_age_ms)) {
                Ok(0) => {}
                Ok(n) => {
                    counters.evicted_total.fetch_add(n, Ordering::Relaxed);
                    tracing::info!(snapshots = n, "snapshots older than the snapshot retention removed from the outbox undelivered");
                }
                Err(e) => tracing::warn!(error = %e, "cannot expire old snapshots in the outbox"),
            }
        }
        let idle_sweep = messages.is_empty() && acked.is_empty() && last_commit.elapsed() >= IDLE_SWEEP;
        if messages.is_empty() && acked.is_empty() && !idle_sweep {
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
            continue;
        }
        match outbox.commit(&messages, &acked, bounds) {
            Ok((keys, evicted)) => {
                last_commit = Instant::now();
                counters.commits_total.fetch_add(1, Ordering::Relaxed);
                counters.appended_total.fetch_add(keys.len() as u64, Ordering::Relaxed);
                counters.acked_total.fetch_add(acked.len() as u64, Ordering::Relaxed);
                if evicted > 0 {
                    counters.evicted_total.fetch_add(evicted, Ordering::Relaxed);
                    tracing::warn!(evicted, max_bytes = bounds.max_bytes, max_age_h = bounds.max_age_ms / 3_600_000, "outbox full or messages too old: evicted the oldest");
                }
                let added = !messages.is_empty();
                messages.clear();
                acked.clear();
                for w in waiters.drain(..) {
                    let _ = w.send(());
                }
                if added {
                    committed.notify_one();
                }
            }
            Err(e) => {
                // Keep everything and try again: nothing is dropped because the disk hiccuped.
                counters.commit_errors_total.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, pending = messages.len(), "outbox commit failed, retrying in 1 s");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    for w in waiters.drain(..) {
        let _ = w.send(());
    }
}

/// Adds `op` to the group; true when it says to stop.
fn take(op: Op, messages: &mut Vec<Message>, acked: &mut Vec<u64>, waiters: &mut Vec<Sender<()>>) -> bool {
    match op {
        Op::Append(m) => messages.push(m),
        Op::Ack(keys) => acked.extend(keys),
        Op::Flush(w) => waiters.push(w),
        Op::Stop => return true,
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Kind;

    /// A writer on a fresh outbox in a temporary directory (kept alive by the caller).
    fn started() -> (tempfile::TempDir, OutboxWriter, OutboxHandle) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("o.redb")).unwrap();
        let (writer, handle) = OutboxWriter::start(outbox, Bounds { max_bytes: 1 << 30, ..Bounds::UNLIMITED }).unwrap();
        (dir, writer, handle)
    }

    #[test]
    fn appends_are_committed_in_groups_and_acks_delete() {
        let (_dir, writer, handle) = started();
        for i in 0..100 {
            handle.append(Message::new(Kind::Event, format!("t/{i}"), vec![1; 100])).unwrap();
        }
        handle.flush().unwrap();
        let keys = handle.outbox().keys().unwrap();
        assert_eq!(keys.len(), 100);
        let commits = handle.counters().commits_total.load(Ordering::Relaxed);
        assert!(commits < 100, "grouped: {commits} commits for 100 appends");
        handle.ack(keys[..60].to_vec()).unwrap();
        handle.flush().unwrap();
        assert_eq!(handle.outbox().keys().unwrap(), &keys[60..]);
        drop(handle);
        writer.stop();
    }

    #[test]
    fn an_append_after_the_writer_stopped_hands_the_message_back() {
        let (_dir, writer, handle) = started();
        let (tx, rx) = bounded::<Op>(1);
        drop(rx);
        let orphan = OutboxHandle { tx, ..handle.clone() };
        let rejected = orphan.append(Message::new(Kind::Alert, "t/a".into(), b"kept".to_vec())).unwrap_err();
        assert_eq!(rejected.message.topic, "t/a");
        assert_eq!(rejected.message.payload, b"kept");
        assert!(matches!(rejected.reason, OutboxError::Stopped));
        drop((orphan, handle));
        writer.stop();
    }

    #[test]
    fn stopping_commits_what_was_queued_while_a_handle_is_still_held() {
        // A camera thread stuck at shutdown still holds its handle: stopping must not wait for it.
        let (_dir, writer, handle) = started();
        for i in 0..10 {
            handle.append(Message::new(Kind::Event, format!("t/{i}"), vec![1; 10])).unwrap();
        }
        let (stopped_tx, stopped) = bounded(1);
        std::thread::spawn(move || {
            writer.stop();
            let _ = stopped_tx.send(());
        });
        stopped.recv_timeout(Duration::from_secs(10)).expect("the writer stops while a handle is held");
        assert_eq!(handle.outbox().keys().unwrap().len(), 10);
        let rejected = handle.append(Message::new(Kind::Event, "t/late".into(), vec![2])).unwrap_err();
        assert!(matches!(rejected.reason, OutboxError::Stopped));
    }
}
