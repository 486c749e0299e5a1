//! `get` and `iter_from` for every sequence number of a multi-segment log, from every kind of
//! reader, with several index densities.

use softadastra_wal::{WalConfig, WalReader, WalRecord, WalStore};

use crate::common::{Rng, assert_records_eq, describe, rec, segment_paths, tempdir};

fn check_every_seq(reader: &WalReader, expected: &[WalRecord], what: &str) {
    let last = expected.len() as u64;
    assert_eq!(reader.first_seq(), Some(1), "{what}");
    assert_eq!(reader.last_seq(), Some(last), "{what}");
    for want in expected {
        let s = want.seq;
        let got = reader
            .get(s)
            .unwrap_or_else(|e| panic!("{what}: get({s}): {e}"))
            .unwrap_or_else(|| panic!("{what}: get({s}) is None"))
            .to_record();
        assert!(
            &got == want,
            "{what}: get({s}) = [{}], want [{}]",
            describe(&got),
            describe(want)
        );

        // The first few records from `s` exactly, and for some `s` the whole tail.
        let whole = s % 7 == 0 || s == last;
        let take = if whole { usize::MAX } else { 3 };
        let from: Vec<WalRecord> = reader
            .iter_from(s)
            .take(take)
            .map(|r| {
                r.unwrap_or_else(|e| panic!("{what}: iter_from({s}): {e}"))
                    .to_record()
            })
            .collect();
        let end = if whole {
            expected.len()
        } else {
            (s as usize - 1 + 3).min(expected.len())
        };
        assert_records_eq(
            &from,
            &expected[s as usize - 1..end],
            &format!("{what}: iter_from({s})"),
        );
    }
    assert_records_eq(
        &reader
            .iter_from(0)
            .map(|r| r.unwrap().to_record())
            .collect::<Vec<_>>(),
        expected,
        &format!("{what}: iter_from(0)"),
    );
    assert_records_eq(
        &reader
            .iter()
            .map(|r| r.unwrap().to_record())
            .collect::<Vec<_>>(),
        expected,
        &format!("{what}: iter()"),
    );
    let mut via_for_each = Vec::new();
    reader
        .for_each(|r| via_for_each.push(r.to_record()))
        .unwrap();
    assert_records_eq(&via_for_each, expected, &format!("{what}: for_each"));
    assert_eq!(
        reader.iter_from(last + 1).count(),
        0,
        "{what}: iter_from(last + 1)"
    );
    assert_eq!(
        reader.iter_from(u64::MAX).count(),
        0,
        "{what}: iter_from(MAX)"
    );
    assert!(reader.get(0).unwrap().is_none(), "{what}: get(0)");
    assert!(
        reader.get(last + 1).unwrap().is_none(),
        "{what}: get(last + 1)"
    );
    assert!(reader.get(u64::MAX).unwrap().is_none(), "{what}: get(MAX)");
}

fn run(index_interval: u64, seed: u64) {
    let dir = tempdir();
    let config = WalConfig::new(dir.path())
        .segment_size(16 << 10)
        .index_interval(index_interval);
    let mut rng = Rng::new(seed);
    let mut expected = Vec::new();
    let what = |s: &str| format!("interval {index_interval}, {s}");
    {
        let store = WalStore::open(config.clone()).unwrap();
        let w = store.writer();
        for i in 0..160u64 {
            // Mostly small records (several per index interval), some large ones.
            let len = if i % 9 == 0 {
                rng.below(5000)
            } else {
                rng.below(300)
            } as usize;
            let payload = rng.bytes(len);
            let (t, ts) = (rng.record_type(), rng.timestamp());
            let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
            assert_eq!(seq, i + 1);
            expected.push(rec(seq, t, ts, &payload));
        }
        assert!(segment_paths(dir.path()).len() >= 4);
        check_every_seq(&store.reader(), &expected, &what("store reader"));
        check_every_seq(
            &WalReader::open(dir.path()).unwrap(),
            &expected,
            &what("WalReader::open while the store is open"),
        );
    }
    // After a close the sealed segments are opened through their persisted index.
    check_every_seq(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        &what("WalReader::open after close"),
    );
    let store = WalStore::open(config).unwrap();
    check_every_seq(&store.reader(), &expected, &what("reopened store reader"));
}

#[test]
fn get_and_iter_from_every_seq_dense_index() {
    run(64, 21);
}

#[test]
fn get_and_iter_from_every_seq_default_small_index() {
    run(256, 22);
}

#[test]
fn get_and_iter_from_every_seq_sparse_index() {
    run(4096, 23);
}

#[test]
fn get_and_iter_from_every_seq_index_interval_equals_segment() {
    run(16 << 10, 24);
}

#[test]
fn empty_log_reads_nothing() {
    let dir = tempdir();
    let store = WalStore::open(crate::common::small_config(dir.path())).unwrap();
    for reader in [store.reader(), WalReader::open(dir.path()).unwrap()] {
        assert_eq!(reader.first_seq(), None);
        assert_eq!(reader.last_seq(), None);
        assert_eq!(reader.iter().count(), 0);
        assert_eq!(reader.iter_from(0).count(), 0);
        assert_eq!(reader.iter_from(1).count(), 0);
        for s in [0, 1, 2, u64::MAX] {
            assert!(reader.get(s).unwrap().is_none());
        }
    }
    assert_eq!(store.first_seq(), None);
    assert_eq!(store.last_seq(), None);
}
