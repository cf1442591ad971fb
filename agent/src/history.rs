//! The history index: every passing (an `end` event as published) kept in `{state_dir}/history.redb` for
//! the duty desk's search, by plate (full or partial), camera, type, direction and time.
//!
//! Two tables in the redb store the outbox already uses:
//! - `passings`: (time of the `end` message in ms, event id) → a short record (camera, type, label, times,
//!   direction, plate, snapshot id). A search without a plate walks the asked time range newest first.
//! - `plate_suffixes`: (suffix of the plate, time, event id) → (). Every suffix of every plate is a key, so
//!   a partial plate (`苏E`, `D517`, `51712`) is a range scan over the keys that start with it, whatever part
//!   of the plate it is; it never reads a passing whose plate does not contain it.
//!
//! The JSON-lines event log stays the record; the index is built from the same lines (live as each `end`
//! event is committed, and at start from the logs for anything it lacks), and retention deletes old
//! passings and their suffixes with the logs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use models::plates::normalise_plate;

use crate::eventlog::EventLog;
use crate::store::{Fault, Store};

const PASSINGS: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("passings");
const PLATE_SUFFIXES: TableDefinition<(&str, i64, &str), ()> = TableDefinition::new("plate_suffixes");

/// Most results one page holds.
pub const MAX_PAGE: usize = 200;

#[derive(Debug, thiserror::Error)]
#[error("history index {path}: {reason}")]
pub struct HistoryError {
    path: PathBuf,
    reason: String,
}

/// A plate as the history keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateSeen {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// The event's snapshot, by id (served at `/snapshots/{id}` within the snapshot retention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSeen {
    pub id: String,
}

/// One passing: the fields of an `end` event the search shows. Read straight from the event's wire JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passing {
    pub id: String,
    pub camera: String,
    /// `person` or `vehicle`.
    #[serde(rename = "type")]
    pub kind: String,
    pub label: String,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    /// When the `end` message was made: the passing's time in the index (as in the flow counts).
    pub ts: String,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub plate: Option<PlateSeen>,
    #[serde(default)]
    pub snapshot: Option<SnapshotSeen>,
    /// Only `end` events are kept; not stored.
    #[serde(default, skip_serializing)]
    phase: String,
    /// An `end` merged into another chain is not a passing; not stored.
    #[serde(default, skip_serializing)]
    merged_into: Option<String>,
}

impl Passing {
    /// The passing in an event message, when it is an `end` event (and not one merged into another chain).
    pub fn from_event_json(line: &[u8]) -> Option<Self> {
        let p: Passing = serde_json::from_slice(line).ok()?;
        (p.phase == "end" && p.merged_into.is_none()).then_some(p)
    }

    fn at_ms(&self) -> Option<i64> {
        Some(DateTime::parse_from_rfc3339(&self.ts).ok()?.timestamp_millis())
    }
}

/// `in`, `out`, or no line crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectionFilter {
    In,
    Out,
    None,
}

/// What to look for. Every field narrows; an empty query lists everything, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Full or partial plate, normalised by [`normalise_plate`].
    pub plate: Option<String>,
    pub camera: Option<String>,
    /// `person` or `vehicle`.
    pub kind: Option<String>,
    pub direction: Option<DirectionFilter>,
    /// From this time (inclusive), in ms since the epoch.
    pub from_ms: Option<i64>,
    /// Until this time (exclusive).
    pub to_ms: Option<i64>,
    /// The page after this cursor (a previous page's `next`).
    pub after: Option<Cursor>,
    pub limit: usize,
}

/// Where a page ended: the last passing's key. Written `{ms}_{id}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub ms: i64,
    pub id: String,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, id) = text.split_once('_')?;
        Some(Self { ms: ms.parse().ok()?, id: id.to_string() })
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.ms, self.id)
    }
}

/// One page of results, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<Passing>,
    /// How many passings match in all.
    pub total: usize,
    /// The cursor for the next page; `None` on the last.
    pub next: Option<String>,
}

/// Every suffix of a plate, the whole of it first: the keys under which a part of it is found.
fn plate_suffixes(text: &str) -> impl Iterator<Item = &str> {
    text.char_indices().map(|(i, _)| &text[i..])
}

pub struct History {
    store: Store,
    /// A write failed (the disk): passings may be missing until the next [`History::catch_up`].
    stale: AtomicBool,
}

/// Makes the index's tables.
fn init(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(PASSINGS)?;
    txn.open_table(PLATE_SUFFIXES)?;
    Ok(())
}

impl History {
    /// Opens (or creates) the index. A file that cannot be opened is moved aside (`.broken-{time}`) and a
    /// new one made, to be refilled from the logs: the index is derived data.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let err = |reason: String| HistoryError { path: path.to_path_buf(), reason };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create directory: {e}")))?;
        }
        let store = match Store::open(path, init) {
            Ok(store) => store,
            Err(e) if path.exists() && Fault::of(&e) != Fault::NoSpace => {
                let aside = path.with_extension(format!("redb.broken-{}", Utc::now().format("%Y%m%dT%H%M%S")));
                tracing::error!(path = %path.display(), moved_to = %aside.display(), error = %e, "history index unreadable: moved aside, rebuilding from the event logs");
                std::fs::rename(path, &aside).map_err(|e| err(format!("cannot move the unreadable index aside: {e}")))?;
                Store::open(path, init).map_err(|e| err(e.to_string()))?
            }
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self { store, stale: AtomicBool::new(false) })
    }

    fn err(&self, e: impl Into<redb::Error>) -> HistoryError {
        HistoryError { path: self.store.path().to_path_buf(), reason: e.into().to_string() }
    }

    /// Whether a write failed since the last successful [`History::catch_up`].
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    /// Runs a write transaction, reopening the database first when an earlier write failed; a failure
    /// closes it (redb needs that after an I/O error) and marks the index stale.
    fn write<T>(&self, f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>) -> Result<T, HistoryError> {
        let run = || -> Result<T, redb::Error> {
            if !self.store.is_open() {
                self.store.reopen()?;
            }
            let db = self.store.db()?;
            let txn = db.begin_write()?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|e| {
            self.store.close();
            self.stale.store(true, Ordering::Relaxed);
            self.err(e)
        })
    }

    fn read(&self) -> Result<crate::store::Reading<'_>, HistoryError> {
        if !self.store.is_open() {
            self.store.reopen().map_err(|e| self.err(e))?;
        }
        self.store.begin_read().map_err(|e| self.err(e))
    }

    /// Adds the `end` events among event messages (others are ignored) in one durable commit; returns how
    /// many were new.
    pub fn add_events<'a>(&self, lines: impl IntoIterator<Item = &'a [u8]>) -> Result<usize, HistoryError> {
        let passings: Vec<Passing> = lines.into_iter().filter_map(Passing::from_event_json).collect();
        if passings.is_empty() {
            return Ok(0);
        }
        self.insert(&passings)
    }

    fn insert(&self, passings: &[Passing]) -> Result<usize, HistoryError> {
        self.write(|txn| {
            let mut added = 0;
            let mut table = txn.open_table(PASSINGS)?;
            let mut suffixes = txn.open_table(PLATE_SUFFIXES)?;
            for p in passings {
                let Some(ms) = p.at_ms() else {
                    tracing::warn!(event = %p.id, ts = %p.ts, "history: event time unreadable, not indexed");
                    continue;
                };
                let Ok(record) = serde_json::to_vec(p) else { continue };
                if table.insert((ms, p.id.as_str()), record.as_slice())?.is_some() {
                    continue;
                }
                added += 1;
                if let Some(plate) = &p.plate {
                    for suffix in plate_suffixes(&normalise_plate(&plate.text)) {
                        suffixes.insert((suffix, ms, p.id.as_str()), ())?;
                    }
                }
            }
            Ok(added)
        })
    }

    /// Indexes what the event log holds and the index lacks: everything when the index is empty, otherwise
    /// the days from the newest passing indexed (a crash between the log and the index loses nothing).
    pub fn catch_up(&self, log: &EventLog, now: DateTime<Utc>) -> Result<usize, HistoryError> {
        let newest = self.newest_ms()?;
        let days = match newest.and_then(DateTime::<Utc>::from_timestamp_millis) {
            Some(t) => (now.date_naive() - t.date_naive()).num_days().clamp(0, i64::from(log.retention_days())) as u32 + 1,
            None => log.retention_days(),
        };
        let lines = log.recent_lines(now, days);
        let mut added = 0;
        for chunk in lines.chunks(1000) {
            added += self.add_events(chunk.iter().map(|l| l.as_bytes()))?;
        }
        self.stale.store(false, Ordering::Relaxed);
        Ok(added)
    }

    /// Gives the space of a bulk build back to the file system (after a large [`History::catch_up`]).
    pub fn compact(&mut self) -> Result<(), HistoryError> {
        self.store.compact().map(|_| ()).map_err(|e| self.err(e))
    }

    fn newest_ms(&self) -> Result<Option<i64>, HistoryError> {
        let txn = self.read()?;
        let table = txn.open_table(PASSINGS).map_err(|e| self.err(e))?;
        let newest = table.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value().0);
        Ok(newest)
    }

    /// How many passings the index holds.
    pub fn len(&self) -> Result<u64, HistoryError> {
        let txn = self.read()?;
        txn.open_table(PASSINGS).map_err(|e| self.err(e))?.len().map_err(|e| self.err(e))
    }

    pub fn is_empty(&self) -> Result<bool, HistoryError> {
        Ok(self.len()? == 0)
    }

    /// Deletes passings older than `cutoff` and their plate suffixes; returns how many.
    pub fn expire(&self, cutoff: DateTime<Utc>) -> Result<usize, HistoryError> {
        let cutoff = cutoff.timestamp_millis();
        self.write(|txn| {
            let mut table = txn.open_table(PASSINGS)?;
            let mut suffixes = txn.open_table(PLATE_SUFFIXES)?;
            let mut old: Vec<(i64, String, Option<String>)> = Vec::new();
            for entry in table.range(..(cutoff, ""))? {
                let (k, v) = entry?;
                let (ms, id) = k.value();
                let plate = serde_json::from_slice::<Passing>(v.value()).ok().and_then(|p| p.plate).map(|p| normalise_plate(&p.text));
                old.push((ms, id.to_string(), plate));
            }
            for (ms, id, plate) in &old {
                table.remove((*ms, id.as_str()))?;
                if let Some(text) = plate {
                    for suffix in plate_suffixes(text) {
                        suffixes.remove((suffix, *ms, id.as_str()))?;
                    }
                }
            }
            Ok(old.len())
        })
    }

    /// Applies the retention of the event log it is built from: passings of days the log no longer keeps.
    pub fn sweep(&self, now: DateTime<Utc>, retention_days: u32) -> Result<usize, HistoryError> {
        self.expire(crate::eventlog::oldest_kept_day(now, retention_days).and_time(chrono::NaiveTime::MIN).and_utc())
    }

    /// One page of passings matching `q`, newest first, with the number matching in all.
    pub fn search(&self, q: &Query) -> Result<Page, HistoryError> {
        let txn = self.read()?;
        let table = txn.open_table(PASSINGS).map_err(|e| self.err(e))?;
        let (from, to) = (q.from_ms.unwrap_or(i64::MIN), q.to_ms.unwrap_or(i64::MAX));
        let limit = q.limit.clamp(1, MAX_PAGE);
        let mut items = Vec::new();
        let mut total = 0;
        let mut last: Option<Cursor> = None;
        // Matches after the page: there is a next page when there are any.
        let mut beyond = 0;
        let mut take = |key: (i64, &str), p: Passing| {
            if !matches(q, &p) {
                return;
            }
            total += 1;
            let after_cursor = q.after.as_ref().is_none_or(|c| (key.0, key.1) < (c.ms, c.id.as_str()));
            if !after_cursor {
                return;
            }
            if items.len() < limit {
                last = Some(Cursor { ms: key.0, id: key.1.to_string() });
                items.push(p);
            } else {
                beyond += 1;
            }
        };
        let plate = q.plate.as_deref().map(normalise_plate).filter(|p| !p.is_empty());
        if let Some(plate) = plate {
            // The keys of every suffix that starts with the text: the passings whose plate contains it.
            let suffixes = txn.open_table(PLATE_SUFFIXES).map_err(|e| self.err(e))?;
            let mut keys: BTreeSet<(i64, String)> = BTreeSet::new();
            for entry in suffixes.range((plate.as_str(), i64::MIN, "")..).map_err(|e| self.err(e))? {
                let (k, _) = entry.map_err(|e| self.err(e))?;
                let (suffix, ms, id) = k.value();
                if !suffix.starts_with(plate.as_str()) {
                    break;
                }
                if (from..to).contains(&ms) {
                    keys.insert((ms, id.to_string()));
                }
            }
            for (ms, id) in keys.iter().rev() {
                if let Some(v) = table.get((*ms, id.as_str())).map_err(|e| self.err(e))? {
                    if let Ok(p) = serde_json::from_slice::<Passing>(v.value()) {
                        take((*ms, id), p);
                    }
                }
            }
        } else {
            for entry in table.range((from, "")..(to, "")).map_err(|e| self.err(e))?.rev() {
                let (k, v) = entry.map_err(|e| self.err(e))?;
                if let Ok(p) = serde_json::from_slice::<Passing>(v.value()) {
                    take(k.value(), p);
                }
            }
        }
        let next = last.filter(|_| beyond > 0).map(|c| c.to_string());
        Ok(Page { items, total, next })
    }
}

fn matches(q: &Query, p: &Passing) -> bool {
    q.camera.as_deref().is_none_or(|c| c == p.camera)
        && q.kind.as_deref().is_none_or(|k| k == p.kind)
        && q.direction.is_none_or(|d| match d {
            DirectionFilter::In => p.direction.as_deref() == Some("in"),
            DirectionFilter::Out => p.direction.as_deref() == Some("out"),
            DirectionFilter::None => p.direction.is_none(),
        })
}

#[cfg(test)]
mod tests;
