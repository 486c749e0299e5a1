//! One writer per directory: a second store is refused while any handle of the first lives;
//! lock-free readers work alongside.

use softadastra_wal::{Error, RecordType, WalReader, WalStore};

use crate::common::{assert_log, rec, small_config, tempdir};

fn assert_locked(dir: &std::path::Path, what: &str) {
    match WalStore::open(small_config(dir)) {
        Err(e) => {
            assert!(e.is_locked(), "{what}: expected Locked, got {e}");
            assert!(
                matches!(&e, Error::Locked { dir: d } if d == dir),
                "{what}: {e:?}"
            );
        }
        Ok(_) => panic!("{what}: a second store opened a locked directory"),
    }
}

#[test]
fn second_store_is_refused_while_the_first_lives() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    let mut expected = Vec::new();
    for i in 0..30u64 {
        let payload = vec![i as u8; (i * 97 % 1500) as usize];
        let seq = w
            .append_with_timestamp(RecordType::Put, i, &payload)
            .unwrap();
        expected.push(rec(seq, RecordType::Put, i, &payload));
    }
    assert_locked(dir.path(), "store open");
    assert_locked(dir.path(), "store open, second attempt");

    // A lock-free reader works concurrently and sees every durable record.
    let ro = WalReader::open(dir.path()).unwrap();
    assert_log(&ro, &expected, "WalReader::open while locked");

    // The failed attempts did not disturb the open store.
    let seq = w
        .append_with_timestamp(RecordType::Delete, 99, b"still writing")
        .unwrap();
    expected.push(rec(seq, RecordType::Delete, 99, b"still writing"));
    assert_log(&store.reader(), &expected, "store after refused opens");

    // A writer made from the store keeps the lock...
    let reader = store.reader();
    drop(store);
    assert_locked(dir.path(), "only a writer and a reader alive");
    drop(w);
    // ... a reader does not (it must not keep the writer lock; it keeps its snapshot).
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&reader, &expected, "reader outliving its store");
    let seq = store
        .writer()
        .append(RecordType::Put, b"new store")
        .unwrap();
    assert_eq!(seq, expected.len() as u64 + 1);
    assert_log(
        &reader,
        &expected,
        "old reader after the new store appended",
    );
    let mut refreshed = reader.clone();
    refreshed.refresh().unwrap();
    expected.push(rec(
        seq,
        RecordType::Put,
        refreshed.get(seq).unwrap().unwrap().timestamp(),
        b"new store",
    ));
    assert_log(
        &refreshed,
        &expected,
        "old reader refreshed after its store was closed",
    );
    drop((reader, refreshed));
    drop(store);

    // Everything dropped: the directory opens again, with all records.
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(
        &store.reader(),
        &expected,
        "reopened after the lock was released",
    );
    // The earlier dir reader still works and does not hold the lock.
    assert_log(
        &ro,
        &expected[..expected.len() - 2],
        "old dir reader snapshot",
    );
    drop(store);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.last_seq(), Some(expected.len() as u64));
}

#[test]
fn lock_is_per_directory_and_clones_share_it() {
    let a = tempdir();
    let b = tempdir();
    let sa = WalStore::open(small_config(a.path())).unwrap();
    // Another directory is independent.
    let sb = WalStore::open(small_config(b.path())).unwrap();
    sa.writer().append(RecordType::Put, b"a").unwrap();
    sb.writer().append(RecordType::Put, b"b").unwrap();
    let clone = sa.clone();
    drop(sa);
    assert_locked(a.path(), "a clone of the store is alive");
    assert_eq!(clone.writer().append(RecordType::Put, b"a2").unwrap(), 2);
    drop(clone);
    let sa = WalStore::open(small_config(a.path())).unwrap();
    assert_eq!(sa.last_seq(), Some(2));
    assert_eq!(sb.last_seq(), Some(1));
}

/// `WalReader::open` is documented to work while another process appends. Whatever it sees must
/// be a dense, correct prefix, and opening must not report corruption just because records were
/// appended while it was looking. (Large segments make the open take long enough for the writer
/// to append several records during it.)
#[test]
fn readers_open_while_another_thread_writes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempdir();
    let config = softadastra_wal::WalConfig::new(dir.path()).segment_size(4 << 20);
    let store = WalStore::open(config).unwrap();
    let w = store.writer();
    let total = 1500u64;
    let payload_of = |i: u64| vec![(i % 251) as u8; (i * 41 % 300) as usize];
    let done = AtomicBool::new(false);
    let opened = std::sync::atomic::AtomicU64::new(0);
    let opens = std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..total {
                assert_eq!(w.append(RecordType::Put, &payload_of(i)).unwrap(), i + 1);
                // On a fast file system the writer could finish before the reader's first open:
                // hold the second half back until opens have happened during the first.
                while i == total / 2 && opened.load(Ordering::SeqCst) < 3 {
                    std::thread::yield_now();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let reader = s.spawn(|| {
            let (mut last, mut opens) = (0, 0);
            while !done.load(Ordering::SeqCst) {
                let ro = WalReader::open(dir.path()).unwrap_or_else(|e| {
                    panic!(
                        "WalReader::open #{opens} during appends (after seeing {last} records): {e}"
                    )
                });
                opens += 1;
                opened.store(opens, Ordering::SeqCst);
                let seen: Vec<_> = ro.iter().map(|r| r.unwrap().to_record()).collect();
                for (i, r) in seen.iter().enumerate() {
                    let i = i as u64;
                    assert_eq!(r.seq, i + 1);
                    assert_eq!(r.payload, payload_of(i));
                }
                assert!(seen.len() as u64 >= last, "a later snapshot never shrinks");
                last = seen.len() as u64;
            }
            opens
        });
        reader.join().unwrap()
    });
    assert!(opens > 0);
    assert_eq!(WalReader::open(dir.path()).unwrap().last_seq(), Some(total));
}

/// `WalReader::open` while the writer appends, rotates and truncates old segments: it must not
/// fail because a segment it listed was deleted a moment later (the log it shows is then simply
/// the newer one), and what it shows is a correct, gap-free run of records.
#[test]
fn readers_open_while_another_thread_truncates() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    let total = 1500u64;
    let payload_of = |i: u64| vec![(i % 251) as u8; (i * 53 % 1200) as usize];
    let done = AtomicBool::new(false);
    let (opens, failures) = std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..total {
                assert_eq!(w.append(RecordType::Put, &payload_of(i)).unwrap(), i + 1);
                if i % 10 == 9 {
                    store.truncate_before(i.saturating_sub(30)).unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let reader = s.spawn(|| {
            let (mut opens, mut failures) = (0u64, Vec::new());
            while !done.load(Ordering::SeqCst) {
                match WalReader::open(dir.path()) {
                    Ok(ro) => {
                        opens += 1;
                        let mut prev = None;
                        for r in ro.iter() {
                            let r = r.unwrap();
                            assert_eq!(r.payload(), &payload_of(r.seq() - 1)[..]);
                            if let Some(p) = prev {
                                assert_eq!(r.seq(), p + 1, "gap-free");
                            }
                            prev = Some(r.seq());
                        }
                    }
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (opens, failures)
        });
        reader.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} of {} WalReader::open calls failed during truncation, e.g.: {}",
        failures.len(),
        opens + failures.len() as u64,
        failures[0]
    );
}
