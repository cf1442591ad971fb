//! The store on its own: order, acknowledgements, bounds, dead letters, reopening.

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
    let Committed { keys, evicted, .. } = outbox.commit(&msgs, &[], &[], ROOMY).unwrap();
    assert_eq!((keys.len(), evicted), (5, 0));
    let read: Vec<String> = outbox.read_after(0, 10, usize::MAX).unwrap().into_iter().map(|(_, m)| m.topic).collect();
    assert_eq!(read, ["t/0", "t/1", "t/2", "t/3", "t/4"]);
    outbox.commit(&[], &keys[..2], &[], ROOMY).unwrap();
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
        outbox.commit(&[Message::new(Kind::Event, "x".into(), b"one".to_vec())], &[], &[], ROOMY).unwrap().keys
    };
    let outbox = Outbox::open(&path).unwrap();
    let second = outbox.commit(&[Message::new(Kind::Event, "x".into(), b"two".to_vec())], &[], &[], ROOMY).unwrap().keys;
    assert!(second[0] > first[0]);
    assert_eq!(outbox.read_after(0, 10, usize::MAX).unwrap().len(), 2);
}

#[test]
fn the_oldest_are_evicted_beyond_the_size_bound() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox.redb")).unwrap();
    let msgs: Vec<Message> = (0..10).map(|i| Message::new(Kind::Event, "t".into(), vec![i as u8; 1000])).collect();
    let bound = Bounds { max_bytes: 5 * msgs[0].stored_len(), ..Bounds::UNLIMITED };
    let Committed { keys, evicted, .. } = outbox.commit(&msgs, &[], &[], bound).unwrap();
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
    let evicted = outbox.commit(&[old, new], &[], &[], Bounds { max_age_ms: 5_000, ..Bounds::UNLIMITED }).unwrap().evicted;
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
    outbox.commit(&[at(Kind::Event, old), at(Kind::Snapshot, old), at(Kind::Event, old), at(Kind::Snapshot, now)], &[], &[], ROOMY).unwrap();
    assert_eq!(outbox.expire_snapshots(now - 5_000).unwrap(), 1);
    let kinds: Vec<Kind> = outbox.read_after(0, 10, 1 << 20).unwrap().into_iter().map(|(_, m)| m.kind).collect();
    assert_eq!(kinds, [Kind::Event, Kind::Event, Kind::Snapshot], "old events stay, the recent snapshot stays");
    assert_eq!(outbox.stats().unwrap().evicted_total, 1);
}

#[test]
fn a_dead_letter_leaves_the_queue_with_its_reason_and_the_rest_stay_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("o.redb")).unwrap();
    let msgs: Vec<Message> = (0..3).map(|i| Message::new(Kind::Event, format!("t/{i}"), vec![i as u8; 10])).collect();
    let keys = outbox.commit(&msgs, &[], &[], ROOMY).unwrap().keys;
    let moved = outbox.commit(&[], &[], &[(keys[1], "the broker refused it".into()), (999, "not there".into())], ROOMY).unwrap();
    assert_eq!(moved.dead_lettered, 1, "a key no longer queued is not a dead letter");
    let topics: Vec<String> = outbox.read_after(0, 10, usize::MAX).unwrap().into_iter().map(|(_, m)| m.topic).collect();
    assert_eq!(topics, ["t/0", "t/2"]);
    let letters = outbox.dead_letters(10).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].key, letters[0].reason.as_str(), letters[0].message.topic.as_str()), (keys[1], "the broker refused it", "t/1"));
    let stats = outbox.stats().unwrap();
    assert_eq!((stats.depth, stats.bytes, stats.dead_letters, stats.dead_letters_total), (2, 2 * msgs[0].stored_len(), 1, 1));
}
