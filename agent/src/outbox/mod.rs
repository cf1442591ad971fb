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

pub mod writer;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

pub use writer::{OutboxHandle, OutboxWriter, Rejected};

const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_KEY: &str = "next_key";
const BYTES: &str = "bytes";
const EVICTED: &str = "evicted_total";
const RECORD_VERSION: u8 = 1;

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("outbox writer has stopped")]
    Stopped,
}

/// What a message is (for stats and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Event,
    Snapshot,
    Alert,
    /// The result of a command from the platform.
    Result,
    /// A period's flow counts.
    Counts,
    /// An alert disposed of.
    Disposition,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Event => 1,
            Kind::Snapshot => 2,
            Kind::Alert => 3,
            Kind::Result => 4,
            Kind::Counts => 5,
            Kind::Disposition => 6,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Kind::Event),
            2 => Some(Kind::Snapshot),
            3 => Some(Kind::Alert),
            4 => Some(Kind::Result),
            5 => Some(Kind::Counts),
            6 => Some(Kind::Disposition),
            _ => None,
        }
    }
}

/// One message waiting for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    pub topic: String,
    pub payload: Vec<u8>,
    /// Milliseconds since the Unix epoch when the message was made.
    pub created_ms: u64,
}

impl Message {
    pub fn new(kind: Kind, topic: String, payload: Vec<u8>) -> Self {
        Self { kind, topic, payload, created_ms: now_ms() }
    }

    /// `[version][kind][created_ms: u64 LE][topic_len: u16 LE][topic][payload]`.
    fn encode(&self) -> Vec<u8> {
        let topic = self.topic.as_bytes();
        let topic_len = topic.len().min(u16::MAX as usize);
        let mut out = Vec::with_capacity(12 + topic_len + self.payload.len());
        out.push(RECORD_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.created_ms.to_le_bytes());
        out.extend_from_slice(&(topic_len as u16).to_le_bytes());
        out.extend_from_slice(&topic[..topic_len]);
        out.extend_from_slice(&self.payload);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 12 || bytes[0] != RECORD_VERSION {
            return None;
        }
        let kind = Kind::from_code(bytes[1])?;
        let created_ms = u64::from_le_bytes(bytes[2..10].try_into().ok()?);
        let topic_len = u16::from_le_bytes(bytes[10..12].try_into().ok()?) as usize;
        let topic = std::str::from_utf8(bytes.get(12..12 + topic_len)?).ok()?.to_string();
        Some(Self { kind, topic, payload: bytes[12 + topic_len..].to_vec(), created_ms })
    }

    /// Bytes this message takes in the store (for the size bound).
    pub fn stored_len(&self) -> u64 {
        12 + self.topic.len() as u64 + self.payload.len() as u64
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
}

impl Bounds {
    /// No limits (tests and benchmarks).
    pub const UNLIMITED: Bounds = Bounds { max_bytes: u64::MAX, max_age_ms: u64::MAX, snapshot_max_age_ms: u64::MAX };
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
}

/// The store itself. Cheap to share (`Arc`); reads never block the writer.
pub struct Outbox {
    db: Database,
    path: PathBuf,
}

impl Outbox {
    /// Opens (or creates) the outbox at `path`, repairing it if the last run crashed.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let err = |reason: String| OutboxError::Store { path: path.to_path_buf(), reason };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
        }
        let db = Database::create(path).map_err(|e| err(e.to_string()))?;
        let outbox = Self { db, path: path.to_path_buf() };
        // Make sure both tables exist so readers never see a missing table.
        let txn = outbox.begin_write()?;
        {
            txn.open_table(MESSAGES).map_err(|e| err(e.to_string()))?;
            txn.open_table(META).map_err(|e| err(e.to_string()))?;
        }
        txn.commit().map_err(|e| err(e.to_string()))?;
        Ok(outbox)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> OutboxError {
        OutboxError::Store { path: self.path.clone(), reason: e.to_string() }
    }

    fn begin_write(&self) -> Result<redb::WriteTransaction, OutboxError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(redb::Durability::Immediate).map_err(|e| self.err(e))?;
        txn.set_quick_repair(true);
        Ok(txn)
    }

    /// Appends `messages`, deletes `acked`, and enforces `bounds`, in one durable commit. Returns the keys
    /// given to the new messages and how many old ones were evicted.
    pub fn commit(&self, messages: &[Message], acked: &[u64], bounds: Bounds) -> Result<(Vec<u64>, u64), OutboxError> {
        let txn = self.begin_write()?;
        let mut keys = Vec::with_capacity(messages.len());
        let evicted;
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
        Ok((keys, evicted))
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
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
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
                None => tracing::error!(outbox = %self.path.display(), key = k.value(), "unreadable outbox record skipped"),
            }
        }
        Ok(out)
    }

    /// Keys of every message waiting, oldest first.
    pub fn keys(&self) -> Result<Vec<u64>, OutboxError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.err(e))? {
            out.push(entry.map_err(|e| self.err(e))?.0.value());
        }
        Ok(out)
    }

    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let get = |k: &str| meta.get(k).map(|v| v.map_or(0, |g| g.value())).map_err(|e| self.err(e));
        let oldest = table.first().map_err(|e| self.err(e))?.and_then(|(_, v)| Message::decode(v.value())).map(|m| now_ms().saturating_sub(m.created_ms));
        Ok(OutboxStats { depth: table.len().map_err(|e| self.err(e))?, bytes: get(BYTES)?, oldest_age_ms: oldest, evicted_total: get(EVICTED)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: Bounds = Bounds { max_bytes: 1 << 30, ..Bounds::UNLIMITED };

    #[test]
    fn records_round_trip() {
        let m = Message { kind: Kind::Snapshot, topic: "a/b/c".into(), payload: vec![0, 1, 2, 255], created_ms: 1234 };
        assert_eq!(Message::decode(&m.encode()), Some(m));
        assert_eq!(Message::decode(&[9, 1, 0]), None);
    }

    #[test]
    fn messages_come_back_in_order_and_acks_delete_them() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
        let msgs: Vec<Message> = (0..5).map(|i| Message::new(Kind::Event, format!("t/{i}"), vec![i as u8; 10])).collect();
        let (keys, evicted) = outbox.commit(&msgs, &[], ROOMY).unwrap();
        assert_eq!((keys.len(), evicted), (5, 0));
        let read: Vec<String> = outbox.read_after(0, 10, usize::MAX).unwrap().into_iter().map(|(_, m)| m.topic).collect();
        assert_eq!(read, ["t/0", "t/1", "t/2", "t/3", "t/4"]);
        outbox.commit(&[], &keys[..2], ROOMY).unwrap();
        assert_eq!(outbox.keys().unwrap(), &keys[2..]);
        assert_eq!(outbox.read_after(keys[2], 10, usize::MAX).unwrap().len(), 2);
        let s = outbox.stats().unwrap();
        assert_eq!(s.depth, 3);
        assert_eq!(s.bytes, 3 * msgs[0].stored_len());
    }

    #[test]
    fn survives_reopening_and_keeps_counting_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.redb");
        let first = {
            let outbox = Outbox::open(&path).unwrap();
            outbox.commit(&[Message::new(Kind::Event, "x".into(), b"one".to_vec())], &[], ROOMY).unwrap().0
        };
        let outbox = Outbox::open(&path).unwrap();
        let second = outbox.commit(&[Message::new(Kind::Event, "x".into(), b"two".to_vec())], &[], ROOMY).unwrap().0;
        assert!(second[0] > first[0]);
        assert_eq!(outbox.read_after(0, 10, usize::MAX).unwrap().len(), 2);
    }

    #[test]
    fn the_oldest_are_evicted_beyond_the_size_bound() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
        let msgs: Vec<Message> = (0..10).map(|i| Message::new(Kind::Event, "t".into(), vec![i as u8; 1000])).collect();
        let bound = Bounds { max_bytes: 5 * msgs[0].stored_len(), ..Bounds::UNLIMITED };
        let (keys, evicted) = outbox.commit(&msgs, &[], bound).unwrap();
        assert_eq!(evicted, 5);
        assert_eq!(outbox.keys().unwrap(), &keys[5..]);
        assert_eq!(outbox.stats().unwrap().evicted_total, 5);
    }

    #[test]
    fn messages_older_than_the_age_bound_are_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
        let mut old = Message::new(Kind::Event, "t".into(), b"old".to_vec());
        old.created_ms -= 10_000;
        let new = Message::new(Kind::Event, "t".into(), b"new".to_vec());
        let (_, evicted) = outbox.commit(&[old, new], &[], Bounds { max_age_ms: 5_000, ..Bounds::UNLIMITED }).unwrap();
        assert_eq!(evicted, 1);
        assert_eq!(outbox.read_after(0, 10, usize::MAX).unwrap()[0].1.payload, b"new");
    }

    #[test]
    fn snapshots_older_than_their_retention_are_expired_wherever_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("o.redb")).unwrap();
        let at = |kind, created_ms| Message { kind, topic: "t".into(), payload: vec![0; 10], created_ms };
        let now = now_ms();
        let old = now - 10_000;
        outbox.commit(&[at(Kind::Event, old), at(Kind::Snapshot, old), at(Kind::Event, old), at(Kind::Snapshot, now)], &[], ROOMY).unwrap();
        assert_eq!(outbox.expire_snapshots(now - 5_000).unwrap(), 1);
        let kinds: Vec<Kind> = outbox.read_after(0, 10, 1 << 20).unwrap().into_iter().map(|(_, m)| m.kind).collect();
        assert_eq!(kinds, [Kind::Event, Kind::Event, Kind::Snapshot], "old events stay, the recent snapshot stays");
        assert_eq!(outbox.stats().unwrap().evicted_total, 1);
    }
}
