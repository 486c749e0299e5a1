//! Reopen continuity: after a clean close the sequence continues densely, also when truncation
//! left only the active segment and when the active segment is empty right after a rotation.

use softadastra_wal::{RecordType, WalReader, WalRecord, WalStore};

use crate::common::{
    Rng, assert_log, craft_next_empty_segment, rec, record_extents, seg_info, segment_paths,
    small_config, tempdir,
};

fn append_n(
    store: &WalStore,
    rng: &mut Rng,
    n: usize,
    max_len: u64,
    expected: &mut Vec<WalRecord>,
) {
    let w = store.writer();
    for _ in 0..n {
        let payload = rng.payload(max_len);
        let t = rng.record_type();
        let ts = rng.timestamp();
        let want = expected.last().map_or(1, |r| r.seq + 1);
        assert_eq!(w.next_seq().unwrap(), want, "next_seq before append");
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        assert_eq!(seq, want, "sequence continues densely");
        expected.push(rec(seq, t, ts, &payload));
    }
}

#[test]
fn sequence_continues_densely_across_reopens() {
    let dir = tempdir();
    let mut rng = Rng::new(11);
    let mut expected = Vec::new();
    // Include an open of an empty log, reopens with nothing appended, and reopens right after a
    // rotation.
    for (round, n) in [0usize, 1, 0, 7, 25, 3, 0, 40].into_iter().enumerate() {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(
            &store.reader(),
            &expected,
            &format!("round {round} after open"),
        );
        assert_eq!(
            store.writer().next_seq().unwrap(),
            expected.len() as u64 + 1,
            "round {round}"
        );
        append_n(&store, &mut rng, n, 4000, &mut expected);
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &expected, "final");
    assert!(segment_paths(dir.path()).len() > 3);
}

#[test]
fn sequence_continues_after_truncating_all_but_the_active_segment() {
    let dir = tempdir();
    let mut rng = Rng::new(12);
    let mut expected = Vec::new();
    let active_base;
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        append_n(&store, &mut rng, 60, 3000, &mut expected);
        let before = segment_paths(dir.path());
        assert!(before.len() >= 5);
        let active = before.last().unwrap().clone();
        active_base = seg_info(&active).base_seq;
        let next = expected.len() as u64 + 1;
        let deleted = store.truncate_before(next).unwrap();
        assert_eq!(deleted, before.len() - 1, "every sealed segment is deleted");
        assert_eq!(
            segment_paths(dir.path()),
            vec![active],
            "only the active segment remains"
        );
        let kept = &expected[active_base as usize - 1..];
        assert_log(&store.reader(), kept, "after truncation");
        assert_eq!(store.first_seq(), Some(active_base));
    }
    let kept_from = active_base as usize - 1;
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_eq!(store.first_seq(), Some(active_base));
        assert_log(
            &store.reader(),
            &expected[kept_from..],
            "reopened after truncation",
        );
        append_n(&store, &mut rng, 30, 3000, &mut expected);
        assert_log(
            &store.reader(),
            &expected[kept_from..],
            "appended after truncation",
        );
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &expected[kept_from..], "second reopen");
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected[kept_from..],
        "dir reader",
    );
}

/// The state a crash leaves right after a rotation created the next segment: the old segment
/// unsealed, the new one empty. Reopening continues in the empty segment.
#[test]
fn sequence_continues_with_an_empty_active_segment_after_rotation() {
    let dir = tempdir();
    let mut rng = Rng::new(13);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        append_n(&store, &mut rng, 20, 3000, &mut expected);
    }
    let crafted = craft_next_empty_segment(dir.path());
    let n = expected.len() as u64;
    assert_eq!(seg_info(&crafted).base_seq, n + 1);
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "dir reader with an empty newest segment",
    );
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(
            &store.reader(),
            &expected,
            "reopened with an empty active segment",
        );
        assert_eq!(store.last_seq(), Some(n));
        assert_eq!(store.writer().next_seq().unwrap(), n + 1);
    }
    {
        // Reopen once more with the empty segment still empty.
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(&store.reader(), &expected, "second reopen, still empty");
        append_n(&store, &mut rng, 1, 100, &mut expected);
    }
    // The record went into the crafted segment.
    let ext = record_extents(&crafted);
    assert_eq!(ext.len(), 1, "the new record is in the empty segment");
    assert_eq!(ext[0].seq, n + 1);
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        append_n(&store, &mut rng, 30, 3000, &mut expected);
        assert_log(&store.reader(), &expected, "after continuing");
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &expected, "final reopen");
}

/// An empty active segment after a rotation, then every sealed segment truncated away: the log
/// holds no record, yet the sequence must still continue where it was (never restart at 1 or
/// reuse a number).
#[test]
fn sequence_continues_when_the_only_segment_left_is_empty() {
    let dir = tempdir();
    let mut rng = Rng::new(14);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        append_n(&store, &mut rng, 25, 3000, &mut expected);
    }
    craft_next_empty_segment(dir.path());
    let n = expected.len() as u64;
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let sealed = segment_paths(dir.path()).len() - 1;
        assert_eq!(store.truncate_before(u64::MAX).unwrap(), sealed);
        assert_eq!(segment_paths(dir.path()).len(), 1);
        assert_eq!(store.first_seq(), None);
        assert_eq!(store.last_seq(), None);
        assert_log(&store.reader(), &[], "nothing left");
        assert_eq!(store.writer().next_seq().unwrap(), n + 1);
    }
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(&store.reader(), &[], "reopened, nothing left");
        assert_eq!(store.writer().next_seq().unwrap(), n + 1);
        let seq = store.writer().append(RecordType::Put, b"after").unwrap();
        assert_eq!(seq, n + 1);
    }
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let r = store.reader();
    assert_eq!(r.first_seq(), Some(n + 1));
    assert_eq!(r.get(n + 1).unwrap().unwrap().payload(), b"after");
    assert!(r.get(n).unwrap().is_none());
}

/// The newest segment is sealed and has no successor (e.g. the empty segment a rotation created
/// was removed): the writer must start a new segment rather than write into the sealed one.
#[test]
fn last_segment_sealed_without_a_successor() {
    let dir = tempdir();
    let mut rng = Rng::new(15);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        append_n(&store, &mut rng, 15, 3000, &mut expected);
    }
    let crafted = craft_next_empty_segment(dir.path());
    {
        // Recovery seals the segment before the empty one.
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(&store.reader(), &expected, "with the empty segment");
    }
    std::fs::remove_file(&crafted).unwrap();
    let sealed = segment_paths(dir.path()).pop().unwrap();
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_log(&store.reader(), &expected, "sealed last segment");
        append_n(&store, &mut rng, 3, 100, &mut expected);
        assert_log(
            &store.reader(),
            &expected,
            "appended after a sealed last segment",
        );
    }
    assert_eq!(
        std::fs::read(&sealed).unwrap(),
        sealed_bytes,
        "a sealed segment is never written again"
    );
    let newest = segment_paths(dir.path()).pop().unwrap();
    assert_eq!(newest, crafted, "the new segment takes the next id");
    assert_eq!(seg_info(&newest).base_seq, expected.len() as u64 - 2);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &expected, "final");
}

/// A log created with small segments and reopened with large ones: the first append does not fit
/// the (empty) small active segment and rotates away from it, leaving it empty for good.
#[test]
fn empty_segment_left_behind_by_a_larger_segment_size() {
    let dir = tempdir();
    drop(
        WalStore::open(softadastra_wal::WalConfig::new(dir.path()).segment_size(8 << 10)).unwrap(),
    );
    let large = softadastra_wal::WalConfig::new(dir.path()).segment_size(64 << 10);
    let mut rng = Rng::new(16);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(large.clone()).unwrap();
        let payload = rng.bytes(20_000);
        let seq = store
            .writer()
            .append_with_timestamp(RecordType::Put, 1, &payload)
            .unwrap();
        assert_eq!(seq, 1);
        expected.push(rec(1, RecordType::Put, 1, &payload));
        append_n(&store, &mut rng, 10, 5000, &mut expected);
        assert_eq!(segment_paths(dir.path()).len(), 2);
        assert_log(
            &store.reader(),
            &expected,
            "after leaving the empty segment",
        );
        for s in 0..=expected.len() as u64 + 1 {
            let from: Vec<u64> = store
                .reader()
                .iter_from(s)
                .map(|r| r.unwrap().seq())
                .collect();
            assert_eq!(
                from,
                (s.max(1)..=expected.len() as u64).collect::<Vec<_>>(),
                "iter_from({s})"
            );
        }
    }
    assert_log(
        &WalReader::open(dir.path()).unwrap(),
        &expected,
        "dir reader",
    );
    {
        let store = WalStore::open(large.clone()).unwrap();
        assert_log(&store.reader(), &expected, "reopened");
        append_n(&store, &mut rng, 5, 5000, &mut expected);
        // The empty segment holds nothing below 1: truncating before 1 must keep everything.
        store.truncate_before(1).unwrap();
        assert_log(&store.reader(), &expected, "after truncate_before(1)");
    }
    let store = WalStore::open(large).unwrap();
    assert_log(&store.reader(), &expected, "final");
}
