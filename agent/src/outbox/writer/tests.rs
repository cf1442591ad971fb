use std::sync::RwLock;

use super::*;
use crate::outbox::Kind;

/// A writer on a fresh outbox in a temporary directory (kept alive by the caller).
fn started() -> (tempfile::TempDir, OutboxWriter, OutboxHandle) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("o.redb")).unwrap();
    let (writer, handle) = OutboxWriter::start(outbox, Bounds { max_bytes: 1 << 30, ..Bounds::UNLIMITED }).unwrap();
    (dir, writer, handle)
}

/// A disk in memory that can be made to fail like a real one: full (`ENOSPC`) or broken (`EIO`). Reads
/// keep working; growing, writing and syncing fail while it is faulty. Clones share the same bytes, so the
/// outbox can close and reopen it.
#[derive(Debug, Clone, Default)]
struct Disk(Arc<DiskInner>);

#[derive(Debug, Default)]
struct DiskInner {
    bytes: RwLock<Vec<u8>>,
    errno: Mutex<Option<i32>>,
}

impl Disk {
    fn fail(&self, errno: i32) {
        *self.0.errno.lock().unwrap() = Some(errno);
    }

    fn heal(&self) {
        *self.0.errno.lock().unwrap() = None;
    }

    fn check(&self) -> Result<(), std::io::Error> {
        match *self.0.errno.lock().unwrap() {
            Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl redb::StorageBackend for Disk {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.0.bytes.read().unwrap().len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let bytes = self.0.bytes.read().unwrap();
        let start = offset as usize;
        let src = bytes.get(start..start + out.len()).ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        let mut bytes = self.0.bytes.write().unwrap();
        if len as usize > bytes.len() {
            self.check()?;
        }
        bytes.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check()?;
        let mut bytes = self.0.bytes.write().unwrap();
        let end = offset as usize + data.len();
        if end > bytes.len() {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

/// A writer on a [`Disk`], with `held_max_bytes` of memory for what a failing disk cannot take.
fn on_disk(held_max_bytes: u64) -> (Disk, OutboxWriter, OutboxHandle) {
    let disk = Disk::default();
    let backend = disk.clone();
    let outbox = Outbox::with_backend("memory-disk", move || Box::new(backend.clone())).unwrap();
    let (writer, handle) = OutboxWriter::start(outbox, Bounds { held_max_bytes, ..Bounds::UNLIMITED }).unwrap();
    (disk, writer, handle)
}

fn event(i: usize) -> Message {
    Message::new(Kind::Event, format!("t/{i}"), vec![1; 100])
}

fn topics(handle: &OutboxHandle) -> Vec<String> {
    handle.outbox().read_after(0, usize::MAX, usize::MAX).unwrap().into_iter().map(|(_, m)| m.topic).collect()
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
    assert_eq!(writer.stop(Duration::from_secs(10)), StopReport { finished: true, lost: 0 });
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
    let rejected = orphan.append_batch(vec![event(1), event(2)]).unwrap_err();
    assert_eq!(rejected.messages.len(), 2);
    drop((orphan, handle));
    writer.stop(Duration::from_secs(10));
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
        let report = writer.stop(Duration::from_secs(10));
        let _ = stopped_tx.send(report);
    });
    let report = stopped.recv_timeout(Duration::from_secs(10)).expect("the writer stops while a handle is held");
    assert_eq!(report, StopReport { finished: true, lost: 0 });
    assert_eq!(handle.outbox().keys().unwrap().len(), 10);
    let rejected = handle.append(Message::new(Kind::Event, "t/late".into(), vec![2])).unwrap_err();
    assert!(matches!(rejected.reason, OutboxError::Stopped));
}

#[test]
fn a_ticket_says_when_its_batch_is_on_disk() {
    let (_dir, writer, handle) = started();
    let ticket = handle.append_batch(vec![event(1), event(2)]).unwrap();
    assert_eq!(ticket.wait(Duration::from_secs(10)), TicketState::Committed(vec![true, true]));
    assert_eq!(topics(&handle), ["t/1", "t/2"]);
    writer.stop(Duration::from_secs(10));
}

#[test]
fn a_full_disk_holds_messages_in_memory_and_commits_them_in_order_when_space_returns() {
    let (disk, writer, handle) = on_disk(Bounds::HELD_MAX_BYTES);
    let first = handle.append_batch(vec![event(0)]).unwrap();
    assert_eq!(first.wait(Duration::from_secs(10)), TicketState::Committed(vec![true]));
    disk.fail(libc::ENOSPC);
    let held: Vec<Ticket> = (1..=3).map(|i| handle.append_batch(vec![event(i), event(10 + i)]).unwrap()).collect();
    assert_eq!(held[0].wait(Duration::from_secs(1)), TicketState::Pending, "nothing is on disk while it is full");
    let failure = handle.counters().failure().expect("the failure is visible");
    assert_eq!(failure.fault, Fault::NoSpace, "{failure:?}");
    handle.ping(Duration::from_secs(2)).expect("the writer answers while it retries");
    assert_eq!(handle.counters().held_messages.load(Ordering::Relaxed), 6);
    assert!(handle.flush_within(Duration::from_millis(300)).is_err(), "a flush does not pretend");
    // Appends never block the caller meanwhile.
    let started = Instant::now();
    let more: Vec<Ticket> = (4..50).map(|i| handle.append_batch(vec![event(i)]).unwrap()).collect();
    assert!(started.elapsed() < Duration::from_secs(1));

    disk.heal();
    for t in held.iter().chain(&more) {
        assert!(matches!(t.wait(Duration::from_secs(15)), TicketState::Committed(k) if k.iter().all(|kept| *kept)));
    }
    let mut expected: Vec<String> = vec!["t/0".into()];
    for i in 1..=3 {
        expected.extend([format!("t/{i}"), format!("t/{}", 10 + i)]);
    }
    expected.extend((4..50).map(|i| format!("t/{i}")));
    assert_eq!(topics(&handle), expected, "everything held arrives once, in order");
    assert!(handle.counters().failure().is_none());
    assert!(handle.counters().reopens_total.load(Ordering::Relaxed) >= 1);
    assert_eq!(handle.counters().held_messages.load(Ordering::Relaxed), 0);
    assert_eq!(writer.stop(Duration::from_secs(10)), StopReport { finished: true, lost: 0 });
}

#[test]
fn an_io_error_is_survived_by_reopening_the_database() {
    let (disk, writer, handle) = on_disk(Bounds::HELD_MAX_BYTES);
    handle.append(event(0)).unwrap();
    handle.flush().unwrap();
    disk.fail(libc::EIO);
    let t = handle.append_batch(vec![event(1)]).unwrap();
    assert_eq!(t.wait(Duration::from_secs(1)), TicketState::Pending);
    assert_eq!(handle.counters().failure().map(|f| f.fault), Some(Fault::Io));
    disk.heal();
    assert_eq!(t.wait(Duration::from_secs(15)), TicketState::Committed(vec![true]));
    assert_eq!(topics(&handle), ["t/0", "t/1"]);
    writer.stop(Duration::from_secs(10));
}

#[test]
fn memory_held_while_the_disk_fails_is_bounded_and_snapshots_go_first() {
    let snapshot = |i: usize| Message::new(Kind::Snapshot, format!("s/{i}"), vec![7; 10_000]);
    // Room for about three snapshots and the events.
    let (disk, writer, handle) = on_disk(3 * snapshot(0).stored_len() + 20 * event(0).stored_len());
    disk.fail(libc::ENOSPC);
    let tickets: Vec<Ticket> = (0..6).map(|i| handle.append_batch(vec![snapshot(i), event(i)]).unwrap()).collect();
    handle.ping(Duration::from_secs(2)).unwrap();
    assert_eq!(handle.counters().shed_snapshots_total.load(Ordering::Relaxed), 3, "the three oldest snapshots were dropped");
    assert_eq!(handle.counters().lost_total.load(Ordering::Relaxed), 0, "no event was");
    disk.heal();
    let kept: Vec<Vec<bool>> = tickets
        .iter()
        .map(|t| match t.wait(Duration::from_secs(15)) {
            TicketState::Committed(k) => k,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(kept, [[false, true], [false, true], [false, true], [true, true], [true, true], [true, true]]);
    let on_disk = topics(&handle);
    assert_eq!(on_disk, ["t/0", "t/1", "t/2", "s/3", "t/3", "s/4", "t/4", "s/5", "t/5"]);
    writer.stop(Duration::from_secs(10));
}

#[test]
fn stopping_while_the_disk_fails_ends_and_counts_what_is_lost() {
    let (disk, writer, handle) = on_disk(Bounds::HELD_MAX_BYTES);
    disk.fail(libc::ENOSPC);
    let t = handle.append_batch((0..5).map(event).collect()).unwrap();
    handle.ping(Duration::from_secs(2)).unwrap();
    let started = Instant::now();
    let report = writer.stop(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report, StopReport { finished: true, lost: 5 });
    assert_eq!(t.wait(Duration::from_secs(1)), TicketState::Lost);
}

#[test]
fn dead_letters_go_through_the_writer() {
    let (_dir, writer, handle) = started();
    handle.append(event(0)).unwrap();
    handle.append(event(1)).unwrap();
    handle.flush().unwrap();
    let keys = handle.outbox().keys().unwrap();
    handle.dead_letter(keys[0], "the broker closed the connection every time it was sent".into()).unwrap();
    handle.flush().unwrap();
    assert_eq!(topics(&handle), ["t/1"]);
    assert_eq!(handle.outbox().dead_letters(10).unwrap()[0].message.topic, "t/0");
    assert_eq!(handle.counters().dead_letters_total.load(Ordering::Relaxed), 1);
    writer.stop(Duration::from_secs(10));
}
