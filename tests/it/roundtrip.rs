//! Round trips: what is appended is read back byte-exact, through every read path, across many
//! rotations, reopens, configuration changes and concurrent writers.

use softadastra_wal::{RecordType, WalConfig, WalReader, WalRecord, WalStore};
use std::collections::BTreeMap;

use crate::common::{Rng, assert_log, rec, seg_info, segment_paths, small_config, tempdir};

/// Appends `n` records with random sizes in `0..=max_len`, types and timestamps; returns them.
fn append_random(
    store: &WalStore,
    rng: &mut Rng,
    n: usize,
    max_len: u64,
    expected: &mut Vec<WalRecord>,
) {
    let w = store.writer();
    for _ in 0..n {
        let len = match rng.below(10) {
            0 => 0,
            1 => rng.below(9), // tiny, unaligned
            _ => rng.below(max_len + 1),
        } as usize;
        let payload = rng.bytes(len);
        let t = rng.record_type();
        let ts = rng.timestamp();
        let want_seq = expected.last().map_or(1, |r| r.seq + 1);
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        assert_eq!(seq, want_seq, "sequence numbers are dense");
        expected.push(rec(seq, t, ts, &payload));
    }
}

#[test]
fn random_sizes_across_many_rotations() {
    let dir = tempdir();
    let config = small_config(dir.path());
    let mut rng = Rng::new(0x5eed_0001);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(config.clone()).unwrap();
        append_random(&store, &mut rng, 300, 6000, &mut expected);
        // Also the largest payload a segment can take, and an empty one right after it.
        let max = config.max_payload().unwrap() as usize;
        let big = rng.bytes(max);
        let seq = store
            .writer()
            .append_with_timestamp(RecordType::Custom(200), 7, &big)
            .unwrap();
        expected.push(rec(seq, RecordType::Custom(200), 7, &big));
        let seq = store
            .writer()
            .append_with_timestamp(RecordType::Noop, 8, b"")
            .unwrap();
        expected.push(rec(seq, RecordType::Noop, 8, b""));

        let segments = segment_paths(dir.path()).len();
        assert!(
            segments >= 40,
            "expected many rotations, got {segments} segments"
        );
        assert_eq!(store.first_seq(), Some(1));
        assert_eq!(store.last_seq(), Some(expected.len() as u64));
        assert_log(&store.reader(), &expected, "store reader, before reopen");
        // A lock-free reader of the same directory while the store is open.
        assert_log(
            &WalReader::open(dir.path()).unwrap(),
            &expected,
            "WalReader::open while the store is open",
        );
    }
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "WalReader::open after close",
    );
    {
        let store = WalStore::open(config.clone()).unwrap();
        assert_log(&store.reader(), &expected, "store reader after reopen");
        append_random(&store, &mut rng, 60, 6000, &mut expected);
        assert_log(&store.reader(), &expected, "after appending post-reopen");
    }
    let store = WalStore::open(config).unwrap();
    assert_log(&store.reader(), &expected, "after second reopen");
    // Every segment header names this log and follows on from the previous segment.
    let infos: Vec<_> = segment_paths(dir.path())
        .iter()
        .map(|p| seg_info(p))
        .collect();
    for (i, pair) in infos.windows(2).enumerate() {
        assert_eq!(pair[0].log_id, pair[1].log_id, "log id of segment #{i}");
        assert_eq!(pair[0].segment_id + 1, pair[1].segment_id);
        assert!(pair[0].base_seq < pair[1].base_seq);
    }
}

#[test]
fn reader_refresh_follows_the_writer() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let mut rng = Rng::new(77);
    let mut expected = Vec::new();
    let mut reader = store.reader();
    assert_log(&reader, &[], "empty log");
    for round in 0..5 {
        append_random(&store, &mut rng, 20, 3000, &mut expected);
        // The old snapshot still shows what it showed.
        let before = expected.len() - 20;
        assert_log(
            &reader,
            &expected[..before],
            &format!("stale snapshot {round}"),
        );
        reader.refresh().unwrap();
        assert_log(&reader, &expected, &format!("refreshed snapshot {round}"));
    }
    let mut ro = WalReader::open(dir.path()).unwrap();
    append_random(&store, &mut rng, 10, 3000, &mut expected);
    assert_log(
        &ro,
        &expected[..expected.len() - 10],
        "dir reader before refresh",
    );
    ro.refresh().unwrap();
    assert_log(&ro, &expected, "dir reader after refresh");
}

#[test]
fn segment_size_and_index_interval_can_change_between_opens() {
    let dir = tempdir();
    let mut rng = Rng::new(0x00c0_ffee);
    let mut expected = Vec::new();
    let small = small_config(dir.path());
    let large = WalConfig::new(dir.path())
        .segment_size(64 << 10)
        .index_interval(4096);
    let tiny = WalConfig::new(dir.path())
        .segment_size(8 << 10)
        .index_interval(64);
    {
        let store = WalStore::open(small.clone()).unwrap();
        append_random(&store, &mut rng, 30, 5000, &mut expected);
    }
    {
        let store = WalStore::open(large.clone()).unwrap();
        // Payloads larger than a small segment could hold now fit.
        append_random(&store, &mut rng, 20, 30_000, &mut expected);
        assert_log(&store.reader(), &expected, "after growing segments");
    }
    {
        let store = WalStore::open(tiny.clone()).unwrap();
        let max = tiny.max_payload().unwrap();
        let err = store
            .writer()
            .append(RecordType::Put, &vec![1u8; max as usize + 1])
            .unwrap_err();
        assert!(
            matches!(err, softadastra_wal::Error::RecordTooLarge { .. }),
            "{err}"
        );
        append_random(&store, &mut rng, 40, max, &mut expected);
        assert_log(&store.reader(), &expected, "after shrinking segments");
    }
    let sizes: Vec<u64> = segment_paths(dir.path())
        .iter()
        .map(|p| seg_info(p).size)
        .collect();
    for want in [16 << 10, 64 << 10, 8 << 10] {
        assert!(
            sizes.contains(&want),
            "no segment of {want} bytes in {sizes:?}"
        );
    }
    let store = WalStore::open(small).unwrap();
    assert_log(&store.reader(), &expected, "final reopen");
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "final dir reader",
    );
}

#[test]
fn concurrent_writers_get_dense_unique_sequences() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let threads = 4u64;
    let per_thread = 40u64;
    let results: Vec<Vec<(u64, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let w = store.writer();
                s.spawn(move || {
                    let mut rng = Rng::new(1000 + t);
                    (0..per_thread)
                        .map(|i| {
                            let mut payload = format!("thread {t} record {i} ").into_bytes();
                            let extra = rng.below(2000) as usize;
                            payload.extend(rng.bytes(extra));
                            let seq = w.append(RecordType::Put, &payload).unwrap();
                            (seq, payload)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_seq = BTreeMap::new();
    for (seq, payload) in results.into_iter().flatten() {
        assert!(
            by_seq.insert(seq, payload).is_none(),
            "seq {seq} handed out twice"
        );
    }
    let seqs: Vec<u64> = by_seq.keys().copied().collect();
    assert_eq!(seqs, (1..=threads * per_thread).collect::<Vec<_>>());
    let reader = store.reader();
    for item in reader.iter() {
        let r = item.unwrap();
        assert_eq!(r.payload(), &by_seq[&r.seq()][..], "seq {}", r.seq());
    }
    drop(reader);
    drop(store);
    let reopened = WalStore::open(small_config(dir.path())).unwrap();
    let got: Vec<(u64, Vec<u8>)> = reopened
        .reader()
        .iter()
        .map(|r| {
            let r = r.unwrap();
            (r.seq(), r.payload().to_vec())
        })
        .collect();
    assert_eq!(got, by_seq.into_iter().collect::<Vec<_>>());
}
