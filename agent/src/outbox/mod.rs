//! The durable outbox between the event builder and MQTT.
//!
//! Design: every message that must not be lost (events, snapshots, alerts) is appended here and committed
//! to disk before it can be published; it is deleted only after the broker's PUBACK. The store is redb: an
//! embedded, pure-Rust, ACID key-value store whose commits are checksummed and fsynced (two-phase with
//! quick repair here), so a SIGKILL or a power cut leaves either the last commit or the one before, never a
//! torn file, and reopening after a crash is immediate. Keys are one global, increasing sequence, so
//! reading in key order gives the order messages were made in — per camera as well.
//!
//! Appends and acknowledgements go through one writer thread ([`writer`]) that batches them into group
//! commits (one fsync for everything that arrived within a few milliseconds). The outbox is bounded by
//! bytes and by age; when a bound is hit the oldest messages are evicted, counted and logged.
//!
//! A message that can never be delivered as it is (a topic the broker refuses, a size over its limit) is
//! moved to the `dead_letters` table with the reason, so the messages behind it go on; the table keeps the
//! most recent [`DEAD_LETTERS_KEPT`].
//!
//! When the disk fails (full, or an I/O error) redb refuses every later transaction until the database is
//! closed and opened again: [`Outbox::reopen`] does that, and the writer calls it before each retry. Readers
//! see [`Fault::Closed`] while it is closed.

mod record;
pub mod senders;
pub mod writer;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

pub use crate::store::Fault;
use crate::store::Store;

pub use record::{DeadLetter, Kind, Message};
pub use writer::{OutboxHandle, OutboxWriter, Rejected, StopReport, Ticket, TicketState, WriterCounters};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Outbox key → `[dead at ms: u64 LE][reason length: u16 LE][reason][the message's record]`.
const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
const NEXT_KEY: &str = "next_key";
const BYTES: &str = "bytes";
const EVICTED: &str = "evicted_total";
const DEAD_TOTAL: &str = "dead_letters_total";
const RECORD_VERSION: u8 = 1;
/// Dead letters kept (the oldest go first); each one is logged when it is moved aside.
pub const DEAD_LETTERS_KEPT: u64 = 1000;

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {reason}")]
    Store { path: PathBuf, fault: Fault, reason: String },
    #[error("outbox writer has stopped")]
    Stopped,
    #[error("outbox writer did not answer within {0:?}")]
    NoAnswer(std::time::Duration),
}

impl OutboxError {
    /// The store's fault, when the store failed.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            OutboxError::Store { fault, .. } => Some(*fault),
            OutboxError::Stopped | OutboxError::NoAnswer(_) => None,
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Limits of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_bytes: u64,
    pub max_age_ms: u64,
    /// Snapshots (pictures of people and vehicles) are kept no longer than the snapshot retention, even
    /// when the outbox keeps other messages longer.
    pub snapshot_max_age_ms: u64,
    /// Most bytes of messages the writer holds in memory while the disk fails.
    pub held_max_bytes: u64,
}

impl Bounds {
    /// No limits (tests and benchmarks).
    pub const UNLIMITED: Bounds = Bounds { max_bytes: u64::MAX, max_age_ms: u64::MAX, snapshot_max_age_ms: u64::MAX, held_max_bytes: u64::MAX };
    /// The default memory for messages held while the disk fails: days of events at a busy gate.
    pub const HELD_MAX_BYTES: u64 = 64 << 20;
}

/// A point-in-time view of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    pub depth: u64,
    pub bytes: u64,
    /// Age of the oldest message, milliseconds.
    pub oldest_age_ms: Option<u64>,
    /// Messages evicted since the outbox was created.
    pub evicted_total: u64,
    /// Dead letters kept now, and moved aside since the outbox was created.
    pub dead_letters: u64,
    pub dead_letters_total: u64,
}

/// The store itself. Cheap to share (`Arc`); reads never block the writer.
pub struct Outbox {
    store: Store,
}

/// Makes the outbox's tables.
fn init(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(MESSAGES)?;
    txn.open_table(META)?;
    txn.open_table(DEAD_LETTERS)?;
    Ok(())
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, repairing it if the last run crashed.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let fail = |fault, reason: String| OutboxError::Store { path: path.to_path_buf(), fault, reason };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(Fault::Io, format!("cannot create directory: {e}")))?;
        }
        let store = Store::open(path, init).map_err(|e| fail(Fault::of(&e), e.to_string()))?;
        Ok(Self { store })
    }

    /// An outbox on a storage backend made by `backend` (each reopening calls it again).
    #[cfg(test)]
    pub(crate) fn with_backend(name: &str, backend: impl Fn() -> Box<dyn redb::StorageBackend> + Send + Sync + 'static) -> Result<Self, OutboxError> {
        let store = Store::with_backend(name, init, backend).map_err(|e| OutboxError::Store { path: name.into(), fault: Fault::of(&e), reason: e.to_string() })?;
        Ok(Self { store })
    }

    /// Closes the database and opens it again (redb's answer to an earlier I/O error: "close and re-open
    /// the database"); opening repairs what a failed commit left.
    pub fn reopen(&self) -> Result<(), OutboxError> {
        self.store.reopen().map_err(|e| self.err(e))
    }

    /// Closes the database (after a failure, until [`Outbox::reopen`]).
    pub fn close(&self) {
        self.store.close();
    }

    pub fn path(&self) -> &Path {
        self.store.path()
    }

    fn err(&self, e: impl Into<redb::Error>) -> OutboxError {
        let e: redb::Error = e.into();
        OutboxError::Store { path: self.path().to_path_buf(), fault: Fault::of(&e), reason: e.to_string() }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, OutboxError> {
        let db = self.store.db().map_err(|e| self.err(e))?;
        let mut txn = db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate).map_err(|e| self.err(e))?;
        txn.set_quick_repair(true);
        Ok(txn)
    }

    fn begin_read(&self) -> Result<crate::store::Reading<'_>, OutboxError> {
        self.store.begin_read().map_err(|e| self.err(e))
    }

    /// Appends `messages`, deletes `acked`, moves `dead` to the dead letters (with their reasons) and
    /// enforces `bounds`, in one durable commit. Returns the keys given to the new messages, how many old
    /// ones were evicted and how many were moved to the dead letters.
    pub fn commit<'m>(&self, messages: impl IntoIterator<Item = &'m Message>, acked: &[u64], dead: &[(u64, String)], bounds: Bounds) -> Result<Committed, OutboxError> {
        let txn = self.begin_write()?;
        let mut keys = Vec::new();
        let evicted;
        let mut dead_lettered = 0u64;
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let get = |meta: &redb::Table<&str, u64>, k: &str| meta.get(k).map(|v| v.map_or(0, |g| g.value()));
            let mut next = get(&meta, NEXT_KEY).map_err(|e| self.err(e))?.max(1);
            let mut bytes = get(&meta, BYTES).map_err(|e| self.err(e))?;
            for key in acked {
                if let Some(old) = table.remove(key).map_err(|e| self.err(e))? {
                    bytes = bytes.saturating_sub(old.value().len() as u64);
                }
            }
            if !dead.is_empty() {
                let mut letters = txn.open_table(DEAD_LETTERS).map_err(|e| self.err(e))?;
                let now = now_ms();
                for (key, reason) in dead {
                    let Some(old) = table.remove(key).map_err(|e| self.err(e))? else { continue };
                    let record = old.value().to_vec();
                    drop(old);
                    bytes = bytes.saturating_sub(record.len() as u64);
                    let Some(message) = Message::decode(&record) else { continue };
                    let letter = DeadLetter { key: *key, reason: reason.clone(), dead_at_ms: now, message };
                    letters.insert(*key, letter.encode().as_slice()).map_err(|e| self.err(e))?;
                    dead_lettered += 1;
                }
                while letters.len().map_err(|e| self.err(e))? > DEAD_LETTERS_KEPT {
                    if letters.pop_first().map_err(|e| self.err(e))?.is_none() {
                        break;
                    }
                }
                let total = get(&meta, DEAD_TOTAL).map_err(|e| self.err(e))? + dead_lettered;
                meta.insert(DEAD_TOTAL, total).map_err(|e| self.err(e))?;
            }
            for m in messages {
                let encoded = m.encode();
                table.insert(next, encoded.as_slice()).map_err(|e| self.err(e))?;
                bytes += encoded.len() as u64;
                keys.push(next);
                next += 1;
            }
            // Bounds: oldest first, by size and by age.
            let cutoff = now_ms().saturating_sub(bounds.max_age_ms);
            let mut n = 0u64;
            loop {
                let Some((k, v)) = table.first().map_err(|e| self.err(e))?.map(|(k, v)| (k.value(), v.value().to_vec())) else { break };
                let too_old = Message::decode(&v).is_none_or(|m| m.created_ms < cutoff);
                if bytes <= bounds.max_bytes && !too_old {
                    break;
                }
                table.remove(k).map_err(|e| self.err(e))?;
                bytes = bytes.saturating_sub(v.len() as u64);
                n += 1;
            }
            evicted = n;
            let total_evicted = get(&meta, EVICTED).map_err(|e| self.err(e))? + n;
            meta.insert(NEXT_KEY, next).map_err(|e| self.err(e))?;
            meta.insert(BYTES, bytes).map_err(|e| self.err(e))?;
            meta.insert(EVICTED, total_evicted).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(Committed { keys, evicted, dead_lettered })
    }

    /// Deletes snapshot messages made before `cutoff_ms` (the snapshot retention) wherever they are in the
    /// queue; returns how many.
    pub fn expire_snapshots(&self, cutoff_ms: u64) -> Result<u64, OutboxError> {
        let txn = self.begin_write()?;
        let mut n = 0u64;
        {
            let mut table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut expired = Vec::new();
            for item in table.iter().map_err(|e| self.err(e))? {
                let (k, v) = item.map_err(|e| self.err(e))?;
                let Some(m) = Message::decode(v.value()) else { continue };
                if m.created_ms >= cutoff_ms {
                    break;
                }
                if m.kind == Kind::Snapshot {
                    expired.push((k.value(), v.value().len() as u64));
                }
            }
            let mut freed = 0;
            for (k, len) in expired {
                table.remove(k).map_err(|e| self.err(e))?;
                freed += len;
                n += 1;
            }
            if n > 0 {
                let get = |meta: &redb::Table<&str, u64>, k: &str| meta.get(k).map(|v| v.map_or(0, |g| g.value()));
                let bytes = get(&meta, BYTES).map_err(|e| self.err(e))?.saturating_sub(freed);
                let total = get(&meta, EVICTED).map_err(|e| self.err(e))? + n;
                meta.insert(BYTES, bytes).map_err(|e| self.err(e))?;
                meta.insert(EVICTED, total).map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Up to `limit` messages with keys after `after` (and at most `max_bytes` of payload, but always one),
    /// oldest first.
    pub fn read_after(&self, after: u64, limit: usize, max_bytes: usize) -> Result<Vec<(u64, Message)>, OutboxError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in table.range(after.saturating_add(1)..).map_err(|e| self.err(e))? {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            if out.len() >= limit || (!out.is_empty() && bytes + v.value().len() > max_bytes) {
                break;
            }
            bytes += v.value().len();
            match Message::decode(v.value()) {
                Some(m) => out.push((k.value(), m)),
                None => tracing::error!(outbox = %self.path().display(), key = k.value(), "unreadable outbox record skipped"),
            }
        }
        Ok(out)
    }

    /// Keys of every message waiting, oldest first.
    pub fn keys(&self) -> Result<Vec<u64>, OutboxError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            out.push(entry.map_err(|e| self.err(e))?.0.value());
        }
        Ok(out)
    }

    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let letters = txn.open_table(DEAD_LETTERS).map_err(|e| self.err(e))?;
        let get = |k: &str| meta.get(k).map(|v| v.map_or(0, |g| g.value())).map_err(|e| self.err(e));
        let oldest = table.first().map_err(|e| self.err(e))?.and_then(|(_, v)| Message::decode(v.value())).map(|m| now_ms().saturating_sub(m.created_ms));
        Ok(OutboxStats {
            depth: table.len().map_err(|e| self.err(e))?,
            bytes: get(BYTES)?,
            oldest_age_ms: oldest,
            evicted_total: get(EVICTED)?,
            dead_letters: letters.len().map_err(|e| self.err(e))?,
            dead_letters_total: get(DEAD_TOTAL)?,
        })
    }

    /// The most recent dead letters, newest first.
    pub fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, OutboxError> {
        let txn = self.begin_read()?;
        let letters = txn.open_table(DEAD_LETTERS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in letters.iter().map_err(|e| self.err(e))?.rev().take(limit) {
            let (k, v) = entry.map_err(|e| self.err(e))?;
            if let Some(letter) = DeadLetter::decode(k.value(), v.value()) {
                out.push(letter);
            }
        }
        Ok(out)
    }
}

/// What one commit did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Committed {
    /// The keys given to the new messages, in order.
    pub keys: Vec<u64>,
    /// Old messages evicted by the bounds.
    pub evicted: u64,
    /// Messages moved to the dead letters.
    pub dead_lettered: u64,
}

#[cfg(test)]
mod tests;
