//! Readers on other threads keep working while writers append, rotate and truncate: every
//! snapshot is a gap-free run of intact records, and no reader ever sees a torn one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use softadastra_wal::{RecordRef, RecordType, WalReader, WalStore};

use crate::common::{small_config, tempdir};

/// A payload that proves its own integrity: `[writer, counter, len]` then a byte pattern derived
/// from them.
fn payload(writer: u8, counter: u32) -> Vec<u8> {
    let len = 8 + (counter as usize * 131 + writer as usize * 17) % 900;
    let mut p = vec![0u8; len];
    p[0] = writer;
    p[1..5].copy_from_slice(&counter.to_le_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = (i as u8) ^ writer ^ (counter as u8);
    }
    p
}

fn check_record(r: &RecordRef<'_>) {
    let p = r.payload();
    assert!(p.len() >= 8, "record {} too short", r.seq());
    let writer = p[0];
    let counter = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
    assert_eq!(
        p,
        &payload(writer, counter)[..],
        "record {} altered",
        r.seq()
    );
}

#[test]
fn readers_see_gap_free_intact_prefixes_during_appends_rotation_and_truncation() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..4u8)
            .map(|id| {
                let w = store.writer();
                s.spawn(move || {
                    let mut last = 0;
                    for counter in 0..400u32 {
                        let seq = w.append(RecordType::Put, &payload(id, counter)).unwrap();
                        assert!(seq > last, "sequence went backwards for writer {id}");
                        last = seq;
                    }
                })
            })
            .collect();
        let truncator = {
            let (store, stop) = (store.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(last) = store.last_seq() {
                        store.truncate_before(last.saturating_sub(300)).unwrap();
                    }
                    std::thread::yield_now();
                }
            })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                s.spawn(move || {
                    let mut snapshots = 0u32;
                    while !stop.load(Ordering::Relaxed) || snapshots < 5 {
                        let reader = store.reader();
                        let (Some(first), Some(last)) = (reader.first_seq(), reader.last_seq())
                        else {
                            continue;
                        };
                        let mut expected = first;
                        for r in reader.iter() {
                            let r = r.unwrap();
                            assert_eq!(r.seq(), expected, "gap in a snapshot");
                            check_record(&r);
                            expected += 1;
                        }
                        assert_eq!(expected, last + 1, "snapshot ended early");
                        for seq in [first, (first + last) / 2, last] {
                            let r = reader.get(seq).unwrap().expect("record in snapshot");
                            assert_eq!(r.seq(), seq);
                            check_record(&r);
                        }
                        snapshots += 1;
                    }
                    snapshots
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        truncator.join().unwrap();
        for r in readers {
            assert!(r.join().unwrap() >= 5);
        }
    });
    assert_eq!(store.last_seq(), Some(1600));
    drop(store);
    let reopened = WalStore::open(small_config(dir.path())).unwrap();
    assert_eq!(reopened.last_seq(), Some(1600));
    reopened.reader().for_each(|r| check_record(&r)).unwrap();
}

/// Readers without the lock (`WalReader::open`, then `refresh`, as another process would read)
/// scan the newest segment while the writer is still changing it: they read those bytes by copy,
/// and every snapshot they make is a gap-free run of intact records that only grows at its end,
/// while the writer appends, rotates and truncates.
#[test]
fn directory_readers_see_intact_prefixes_of_a_live_log() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let path = dir.path().to_path_buf();
    std::thread::scope(|s| {
        let writer = {
            let w = store.writer();
            s.spawn(move || {
                for counter in 0..1500u32 {
                    let payload = payload(0, counter);
                    if counter % 7 == 0 {
                        let batch = [
                            (RecordType::Put, &payload[..]),
                            (RecordType::Put, &b"x"[..]),
                        ];
                        w.append_batch(batch).unwrap();
                    } else {
                        w.append(RecordType::Put, &payload).unwrap();
                    }
                }
            })
        };
        let truncator = {
            let (store, stop) = (store.clone(), stop.clone());
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(last) = store.last_seq() {
                        store.truncate_before(last.saturating_sub(200)).unwrap();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (path, stop) = (path.clone(), stop.clone());
                s.spawn(move || {
                    let mut reader = WalReader::open(&path).unwrap();
                    let (mut snapshots, mut newest) = (0u32, 0u64);
                    while !stop.load(Ordering::Relaxed) || snapshots < 5 {
                        reader.refresh().unwrap();
                        snapshots += 1;
                        let (Some(first), Some(last)) = (reader.first_seq(), reader.last_seq())
                        else {
                            continue;
                        };
                        assert!(last >= newest, "the log went backwards: {last} < {newest}");
                        newest = last;
                        let mut expected = first;
                        for r in reader.iter() {
                            let r = r.unwrap();
                            assert_eq!(r.seq(), expected, "gap in a snapshot");
                            if r.payload() != b"x" {
                                check_record(&r);
                            }
                            expected += 1;
                        }
                        assert_eq!(expected, last + 1, "snapshot ended early");
                        let r = reader
                            .get(last)
                            .unwrap()
                            .expect("newest record in snapshot");
                        assert_eq!(r.seq(), last);
                    }
                    snapshots
                })
            })
            .collect();
        writer.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        truncator.join().unwrap();
        for r in readers {
            assert!(r.join().unwrap() >= 5);
        }
    });
    let last = store.last_seq();
    let reader = WalReader::open(dir.path()).unwrap();
    assert_eq!(reader.last_seq(), last);
}
