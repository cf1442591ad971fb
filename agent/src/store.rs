//! A redb database that survives its disk failing: after an I/O error (a full disk, a failing one) redb
//! answers every later transaction with `PreviousIo` until the database is closed and opened again, so the
//! owner — the outbox's writer, the history index — calls [`Store::reopen`] before it tries again.
//! Opening repairs what the failed commit left (quick repair). Readers see [`redb::Error::DatabaseClosed`]
//! while it is closed.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use redb::{Database, ReadableDatabase};

/// What kind of failure a store met: it decides what its owner does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The file system has no room left (ENOSPC, or the quota): wait for space.
    NoSpace,
    /// Reading or writing the file failed otherwise; the database must be closed and opened again.
    Io,
    /// The file is damaged.
    Corrupted,
    /// The database is closed for reopening.
    Closed,
    /// Anything else redb reports (a mistake in how it is used, not the disk).
    Other,
}

impl Fault {
    /// Classifies a redb error by its type (never by its message).
    pub fn of(e: &redb::Error) -> Self {
        match e {
            redb::Error::Io(io) if is_no_space(io) => Fault::NoSpace,
            redb::Error::Io(_) | redb::Error::PreviousIo => Fault::Io,
            redb::Error::DatabaseClosed => Fault::Closed,
            redb::Error::Corrupted(_) => Fault::Corrupted,
            _ => Fault::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Fault::NoSpace => "no_space",
            Fault::Io => "io_error",
            Fault::Corrupted => "corrupted",
            Fault::Closed => "closed",
            Fault::Other => "error",
        }
    }
}

/// Whether an I/O error says the file system is full.
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Makes the tables a store needs (run at every opening, so readers never meet a missing table).
pub type Init = fn(&redb::WriteTransaction) -> Result<(), redb::Error>;

/// Where the database lives: a file, or (in tests) a storage backend that can be made to fail.
enum Source {
    File,
    #[cfg(test)]
    Backend(Box<dyn Fn() -> Box<dyn redb::StorageBackend> + Send + Sync>),
}

/// A database that can be closed and opened again.
pub struct Store {
    /// `None` while closed after a failure.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    source: Source,
    init: Init,
}

/// The open database, held for the length of one transaction (a reopening waits for it).
pub struct Open<'a>(RwLockReadGuard<'a, Option<Database>>);

impl Deref for Open<'_> {
    type Target = Database;

    fn deref(&self) -> &Database {
        // `Store::db` only hands out guards over an open database.
        self.0.as_ref().unwrap_or_else(|| unreachable!("an Open guard always holds a database"))
    }
}

/// A read transaction that keeps the database open (fields drop in order: the transaction first).
pub struct Reading<'a> {
    txn: redb::ReadTransaction,
    _db: Open<'a>,
}

impl Deref for Reading<'_> {
    type Target = redb::ReadTransaction;

    fn deref(&self) -> &redb::ReadTransaction {
        &self.txn
    }
}

impl Store {
    /// Opens (or creates) the database at `path`, repairing it if the last run crashed.
    pub fn open(path: &Path, init: Init) -> Result<Self, redb::Error> {
        let store = Self { db: RwLock::new(None), path: path.to_path_buf(), source: Source::File, init };
        store.reopen()?;
        Ok(store)
    }

    /// A store on a storage backend made by `backend` (each reopening calls it again).
    #[cfg(test)]
    pub fn with_backend(name: &str, init: Init, backend: impl Fn() -> Box<dyn redb::StorageBackend> + Send + Sync + 'static) -> Result<Self, redb::Error> {
        let store = Self { db: RwLock::new(None), path: PathBuf::from(name), source: Source::Backend(Box::new(backend)), init };
        store.reopen()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the database and opens it again.
    pub fn reopen(&self) -> Result<(), redb::Error> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old one must be gone before the file is opened again (redb locks the file).
        *slot = None;
        let db = match &self.source {
            Source::File => Database::create(&self.path)?,
            #[cfg(test)]
            Source::Backend(make) => Database::builder().create_with_backend(DynBackend(make()))?,
        };
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::Immediate)?;
        (self.init)(&txn)?;
        txn.commit()?;
        *slot = Some(db);
        Ok(())
    }

    /// Closes the database until the next [`Store::reopen`].
    pub fn close(&self) {
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.db.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The open database, or [`redb::Error::DatabaseClosed`].
    pub fn db(&self) -> Result<Open<'_>, redb::Error> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            return Err(redb::Error::DatabaseClosed);
        }
        Ok(Open(guard))
    }

    /// A read transaction; the database stays open until it is dropped.
    pub fn begin_read(&self) -> Result<Reading<'_>, redb::Error> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        Ok(Reading { txn, _db: db })
    }

    /// Compacts the file (needs the database to itself).
    pub fn compact(&self) -> Result<bool, redb::Error> {
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(db) => Ok(db.compact()?),
            None => Err(redb::Error::DatabaseClosed),
        }
    }
}

/// A boxed backend as redb wants it (a concrete type).
#[cfg(test)]
#[derive(Debug)]
struct DynBackend(Box<dyn redb::StorageBackend>);

#[cfg(test)]
impl redb::StorageBackend for DynBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_space_and_other_io_errors_are_told_apart_by_type() {
        let full = redb::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(Fault::of(&full), Fault::NoSpace);
        assert_eq!(Fault::of(&redb::Error::Io(std::io::Error::from(std::io::ErrorKind::StorageFull))), Fault::NoSpace);
        assert_eq!(Fault::of(&redb::Error::Io(std::io::Error::from_raw_os_error(libc::EIO))), Fault::Io);
        assert_eq!(Fault::of(&redb::Error::PreviousIo), Fault::Io);
        assert_eq!(Fault::of(&redb::Error::DatabaseClosed), Fault::Closed);
    }
}
