//! `WalStore::stats`: counters since open and the log's extent.

use softadastra_wal::{RecordType, SyncMode, WalStore};

use crate::common::{garbage_after_last_record, small_config, tempdir};

#[test]
fn counters_follow_appends_batches_flushes_and_rotations() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let fresh = store.stats().unwrap();
    assert_eq!(
        (
            fresh.appends,
            fresh.appended_bytes,
            fresh.flushes,
            fresh.rotations,
            fresh.segments
        ),
        (0, 0, 0, 0, 1)
    );
    assert_eq!(
        (fresh.first_seq, fresh.last_seq, fresh.recovered_records),
        (None, None, 0)
    );

    let w = store.writer();
    for _ in 0..100 {
        w.append(RecordType::Put, &[7; 200]).unwrap();
    }
    w.append_batch([
        (RecordType::Put, &b"abc"[..]),
        (RecordType::Put, &b"de"[..]),
    ])
    .unwrap();
    let s = store.stats().unwrap();
    assert_eq!(s.appends, 102);
    assert_eq!(s.appended_bytes, 100 * 200 + 5);
    // 16 KiB segments hold fewer than 100 records of 232 bytes: rotations happened, and every
    // append in Always mode flushed once (plus nothing extra: no flush is empty).
    assert!(s.rotations >= 1);
    assert_eq!(s.segments as u64, s.rotations + 1);
    assert_eq!(s.flushes, 101);
    assert!(s.flush_time > std::time::Duration::ZERO);
    assert_eq!((s.first_seq, s.last_seq), (Some(1), Some(102)));
    assert!(store.truncate_before(90).unwrap() > 0);
    let after = store.stats().unwrap();
    assert!(after.segments < s.segments);
    assert!(after.first_seq.unwrap() > 1 && after.first_seq.unwrap() <= 90);
}

#[test]
fn manual_mode_counts_one_flush_per_sync() {
    let dir = tempdir();
    let config = small_config(dir.path())
        .segment_size(1 << 20)
        .sync_mode(SyncMode::Manual);
    let store = WalStore::open(config).unwrap();
    let w = store.writer();
    for _ in 0..10 {
        w.append(RecordType::Put, b"x").unwrap();
    }
    assert_eq!(store.stats().unwrap().flushes, 0);
    assert_eq!(
        store.stats().unwrap().last_seq,
        None,
        "nothing is durable yet"
    );
    w.sync().unwrap();
    w.sync().unwrap();
    let s = store.stats().unwrap();
    assert_eq!((s.flushes, s.appends, s.last_seq), (1, 10, Some(10)));
}

#[test]
fn reopening_reports_recovered_records_and_the_cut_tail() {
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        for i in 0..40u8 {
            w.append(RecordType::Put, &[i; 64]).unwrap();
        }
    }
    let clean = WalStore::open(small_config(dir.path())).unwrap();
    let s = clean.stats().unwrap();
    assert_eq!(
        (s.recovered_records, s.truncated_bytes, s.appends),
        (40, 0, 0)
    );
    drop(clean);

    // A torn record after the last one: garbage where its header would start.
    garbage_after_last_record(dir.path(), 24, 0xA5);

    let torn = WalStore::open(small_config(dir.path())).unwrap();
    let s = torn.stats().unwrap();
    assert_eq!(s.recovered_records, 40);
    assert_eq!(Some(s.truncated_bytes), torn.torn_tail().map(|t| t.len));
    assert!(s.truncated_bytes >= 24);
}
