//! `truncate_before`: deletes whole sealed segments below a sequence number, never the active one,
//! never a record at or above it; readers that still see deleted segments keep reading them.

use softadastra_wal::{RecordType, WalReader, WalRecord, WalStore};

use crate::common::{
    Rng, assert_log, file_names, rec, seg_info, segment_paths, small_config, tempdir,
};

fn build(store: &WalStore, rng: &mut Rng, segments: usize) -> Vec<WalRecord> {
    let w = store.writer();
    let mut expected = Vec::new();
    while segment_paths(store.dir()).len() < segments {
        let payload = rng.payload(2500);
        let (t, ts) = (rng.record_type(), rng.timestamp());
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        expected.push(rec(seq, t, ts, &payload));
    }
    // A few records in the newest segment too.
    for _ in 0..2 {
        let payload = rng.payload(100);
        let seq = w
            .append_with_timestamp(RecordType::Noop, 1, &payload)
            .unwrap();
        expected.push(rec(seq, RecordType::Noop, 1, &payload));
    }
    expected
}

#[test]
fn old_readers_keep_reading_truncated_segments() {
    let dir = tempdir();
    let mut rng = Rng::new(0x7a);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let expected = build(&store, &mut rng, 7);
    let segs = segment_paths(dir.path());
    let bases: Vec<u64> = segs.iter().map(|p| seg_info(p).base_seq).collect();

    let old = store.reader();
    let old_dir = WalReader::open(dir.path()).unwrap();
    // Borrow records from the old reader before the truncation, check them after.
    let borrowed: Vec<_> = old.iter().take(5).map(|r| r.unwrap()).collect();

    // Cut in the middle of segment #3: segments #0..#2 (all records below the cut) go, #3 stays.
    let cut = bases[3] + 1;
    assert_eq!(store.truncate_before(cut).unwrap(), 3);
    for p in &segs[..3] {
        assert!(!p.exists(), "{} should be deleted", p.display());
    }
    for p in &segs[3..] {
        assert!(p.exists(), "{} should remain", p.display());
    }
    assert_eq!(store.first_seq(), Some(bases[3]));

    // Old readers: every record, byte-exact, through iter, get and iter_from.
    for (r, want) in borrowed.iter().zip(&expected) {
        assert_eq!(&r.to_record(), want);
    }
    assert_log(&old, &expected, "store reader taken before truncation");
    assert_log(&old_dir, &expected, "dir reader opened before truncation");
    for s in [1, bases[1], bases[2] + 1] {
        let got: Vec<u64> = old.iter_from(s).map(|r| r.unwrap().seq()).collect();
        assert_eq!(got, (s..=expected.len() as u64).collect::<Vec<_>>());
    }

    // New readers see only what remains.
    let kept = &expected[bases[3] as usize - 1..];
    assert_log(&store.reader(), kept, "store reader after truncation");
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        kept,
        "dir reader after truncation",
    );
    let from_zero: Vec<u64> = store
        .reader()
        .iter_from(0)
        .map(|r| r.unwrap().seq())
        .collect();
    assert_eq!(
        from_zero[0], bases[3],
        "iter_from below the first record starts at it"
    );
    let mut refreshed = old.clone();
    refreshed.refresh().unwrap();
    assert_log(&refreshed, kept, "refreshed old reader");

    // Appending continues, then a reopen shows the moved start.
    let seq = store
        .writer()
        .append(RecordType::Put, b"after truncation")
        .unwrap();
    assert_eq!(seq, expected.len() as u64 + 1);
    drop(borrowed);
    drop((old, refreshed));
    drop(store);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.first_seq(), Some(bases[3]));
    assert_eq!(store.last_seq(), Some(seq));
    let mut want = kept.to_vec();
    want.push(store.reader().get(seq).unwrap().unwrap().to_record());
    assert_eq!(want.last().unwrap().payload, b"after truncation");
    assert_log(&store.reader(), &want, "reopened after truncation");
    // The dir reader opened before everything still reads the deleted files.
    assert_log(&old_dir, &expected, "old dir reader, at the end");
}

#[test]
fn truncate_before_never_deletes_the_active_segment_or_newer_records() {
    let dir = tempdir();
    let mut rng = Rng::new(0x7b);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let expected = build(&store, &mut rng, 5);
    let segs = segment_paths(dir.path());
    let bases: Vec<u64> = segs.iter().map(|p| seg_info(p).base_seq).collect();
    let n = expected.len() as u64;

    // Nothing below the first record, or only part of the first segment: nothing deleted.
    assert_eq!(store.truncate_before(0).unwrap(), 0);
    assert_eq!(store.truncate_before(1).unwrap(), 0);
    assert_eq!(store.truncate_before(bases[1] - 1).unwrap(), 0);
    assert_eq!(segment_paths(dir.path()), segs);
    assert_log(&store.reader(), &expected, "nothing truncated");

    // Exactly the first segment.
    assert_eq!(store.truncate_before(bases[1]).unwrap(), 1);
    assert_log(
        &store.reader(),
        &expected[bases[1] as usize - 1..],
        "first segment gone",
    );
    // Repeating it deletes nothing more.
    assert_eq!(store.truncate_before(bases[1]).unwrap(), 0);

    // Far past the end: every sealed segment, never the active one.
    assert_eq!(store.truncate_before(u64::MAX).unwrap(), segs.len() - 2);
    let active = segs.last().unwrap();
    assert_eq!(segment_paths(dir.path()), vec![active.clone()]);
    let kept = &expected[bases[bases.len() - 1] as usize - 1..];
    assert!(!kept.is_empty());
    assert_log(&store.reader(), kept, "only the active segment left");
    assert_eq!(store.truncate_before(u64::MAX).unwrap(), 0);
    assert!(file_names(dir.path()).contains(&"wal.lock".to_string()));

    // The log keeps counting.
    assert_eq!(store.writer().append(RecordType::Put, b"z").unwrap(), n + 1);
    drop(store);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_eq!(store.first_seq(), Some(kept[0].seq));
    assert_eq!(store.last_seq(), Some(n + 1));
}

#[test]
fn truncation_while_appending_across_rotations() {
    let dir = tempdir();
    let mut rng = Rng::new(0x7c);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    let mut all = Vec::new();
    let reader_at_start = store.reader();
    for round in 0..10u64 {
        for _ in 0..15 {
            let payload = rng.payload(2000);
            let seq = w
                .append_with_timestamp(RecordType::Put, round, &payload)
                .unwrap();
            all.push(rec(seq, RecordType::Put, round, &payload));
        }
        let keep_from = all.len() as u64 - 10;
        store.truncate_before(keep_from).unwrap();
        let r = store.reader();
        let first = r.first_seq().unwrap();
        assert!(
            first <= keep_from,
            "round {round}: record {keep_from} must survive"
        );
        assert_log(&r, &all[first as usize - 1..], &format!("round {round}"));
        assert!(
            segment_paths(dir.path()).len() <= 4,
            "old segments are deleted"
        );
    }
    assert_log(
        &reader_at_start,
        &[],
        "a snapshot of the empty log stays empty",
    );
}
