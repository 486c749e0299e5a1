//! Open-time recovery: a torn last record is cut (at every byte offset), stale records past the
//! tail are never replayed, and a segment of another log is refused.

use std::path::Path;

use softadastra_wal::{Error, RecordType, WalReader, WalRecord, WalStore};

use crate::common::{
    Rng, assert_log, copy_dir, file_names, patch_file, rec, record_extents, room_left, seg_info,
    segment_name, segment_paths, small_config, tempdir,
};

/// Writes records (several sealed segments) and returns them.
fn write_prefix(store: &WalStore, rng: &mut Rng, n: usize, expected: &mut Vec<WalRecord>) {
    let w = store.writer();
    for _ in 0..n {
        let len = rng.range(100, 3000) as usize;
        let payload = rng.bytes(len);
        let (t, ts) = (rng.record_type(), rng.timestamp());
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        assert_eq!(seq, expected.len() as u64 + 1);
        expected.push(rec(seq, t, ts, &payload));
    }
}

#[derive(Clone, Copy, Debug)]
enum Fill {
    Zero,
    Garbage,
}

impl Fill {
    fn byte(self) -> u8 {
        match self {
            Fill::Zero => 0,
            Fill::Garbage => 0xA5,
        }
    }
}

/// For every byte offset `k` of the last record's header + payload: in a copy of the log,
/// overwrite `k..end` with `fill`, then check that recovery cuts exactly that record, that the
/// next append reuses its sequence number, and that recovery is repeatable.
fn torn_tail_at_every_offset(src: &Path, expected: &[WalRecord], fill: Fill) {
    let n = expected.len() as u64;
    let last_seg = segment_paths(src).pop().unwrap();
    let seg_name = last_seg.file_name().unwrap().to_owned();
    let ext = *record_extents(&last_seg).last().unwrap();
    assert_eq!(
        ext.seq, n,
        "the newest record is the last one of the newest segment"
    );
    let survivors = &expected[..expected.len() - 1];
    for k in ext.offset..ext.end() {
        let what = format!(
            "{fill:?} from offset {k} (record {n} spans {}..{})",
            ext.offset,
            ext.end()
        );
        let copy = copy_dir(src);
        let seg = copy.path().join(&seg_name);
        patch_file(&seg, |b| {
            b[k as usize..ext.end() as usize].fill(fill.byte())
        });
        let left_nonzero = std::fs::read(&seg).unwrap()[ext.offset as usize..ext.end() as usize]
            .iter()
            .any(|&b| b != 0);

        // A read-only opener does not repair anything but must show the same log.
        assert_log(
            &WalReader::open(copy.path())
                .unwrap_or_else(|e| panic!("{what}: WalReader::open: {e}")),
            survivors,
            &format!("{what}: WalReader::open"),
        );
        {
            let store = WalStore::open(small_config(copy.path()))
                .unwrap_or_else(|e| panic!("{what}: first open: {e}"));
            assert_log(&store.reader(), survivors, &format!("{what}: first open"));
            assert_eq!(store.last_seq(), Some(n - 1), "{what}");
            // A cut record that left a non-zero byte is reported as a torn tail; one left all
            // zeros looks like a record never written.
            match store.torn_tail() {
                None => assert!(!left_nonzero, "{what}: the cut is reported"),
                Some(torn) => {
                    assert_eq!(
                        (torn.offset, torn.next_seq, torn.file.file_name()),
                        (ext.offset, n, Some(seg_name.as_os_str())),
                        "{what}"
                    );
                    assert!(
                        torn.len > 0 && torn.offset + torn.len <= ext.padded_end(),
                        "{what}"
                    );
                }
            }
        }
        let new = {
            let store = WalStore::open(small_config(copy.path()))
                .unwrap_or_else(|e| panic!("{what}: second open: {e}"));
            assert_log(&store.reader(), survivors, &format!("{what}: second open"));
            assert_eq!(
                store.torn_tail(),
                None,
                "{what}: the first open zeroed the tail"
            );
            let seq = store
                .writer()
                .append_with_timestamp(RecordType::Custom(99), 1234, b"after the cut")
                .unwrap();
            assert_eq!(
                seq, n,
                "{what}: the next append reuses the cut record's sequence"
            );
            rec(n, RecordType::Custom(99), 1234, b"after the cut")
        };
        let mut want = survivors.to_vec();
        want.push(new);
        let store = WalStore::open(small_config(copy.path()))
            .unwrap_or_else(|e| panic!("{what}: third open: {e}"));
        assert_log(
            &store.reader(),
            &want,
            &format!("{what}: after appending past the cut"),
        );
    }
}

/// A log whose last record sits after other records of the same (active) segment.
fn log_with_last_record_mid_segment() -> (tempfile::TempDir, Vec<WalRecord>) {
    let dir = tempdir();
    let mut rng = Rng::new(0x7042);
    let mut expected = Vec::new();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    write_prefix(&store, &mut rng, 25, &mut expected);
    // Make sure the last record shares its segment with earlier ones (the file is read while the
    // store has it mapped; every record was flushed).
    while room_left(dir.path()) < 600
        || record_extents(&segment_paths(dir.path()).pop().unwrap()).is_empty()
    {
        write_prefix(&store, &mut rng, 1, &mut expected);
    }
    let payload = rng.bytes_without(203, 0xA5);
    let seq = store
        .writer()
        .append_with_timestamp(RecordType::Put, 42, &payload)
        .unwrap();
    expected.push(rec(seq, RecordType::Put, 42, &payload));
    drop(store);
    let last = segment_paths(dir.path()).pop().unwrap();
    assert!(record_extents(&last).len() >= 2);
    assert!(segment_paths(dir.path()).len() >= 3);
    (dir, expected)
}

/// A log whose last record is the first one of a segment a rotation just created.
fn log_with_last_record_first_in_segment() -> (tempfile::TempDir, Vec<WalRecord>) {
    let dir = tempdir();
    let mut rng = Rng::new(0x7043);
    let mut expected = Vec::new();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    write_prefix(&store, &mut rng, 12, &mut expected);
    drop(store);
    // Fill the newest segment with small records until little room is left, then append a
    // record that does not fit, so it opens a new segment.
    while room_left(dir.path()) > 160 {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let payload = rng.bytes(40);
        let seq = store
            .writer()
            .append_with_timestamp(RecordType::Noop, 5, &payload)
            .unwrap();
        expected.push(rec(seq, RecordType::Noop, 5, &payload));
    }
    let segments = segment_paths(dir.path()).len();
    let len = room_left(dir.path()) as usize; // header + len > room: does not fit
    let payload = Rng::new(9).bytes_without(len, 0xA5);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let seq = store
        .writer()
        .append_with_timestamp(RecordType::Update, 43, &payload)
        .unwrap();
    expected.push(rec(seq, RecordType::Update, 43, &payload));
    drop(store);
    assert_eq!(
        segment_paths(dir.path()).len(),
        segments + 1,
        "the last append rotated"
    );
    assert_eq!(
        record_extents(&segment_paths(dir.path()).pop().unwrap()).len(),
        1
    );
    (dir, expected)
}

#[test]
fn torn_tail_zeroed_at_every_offset_mid_segment() {
    let (dir, expected) = log_with_last_record_mid_segment();
    torn_tail_at_every_offset(dir.path(), &expected, Fill::Zero);
}

#[test]
fn torn_tail_garbage_at_every_offset_mid_segment() {
    let (dir, expected) = log_with_last_record_mid_segment();
    torn_tail_at_every_offset(dir.path(), &expected, Fill::Garbage);
}

#[test]
fn torn_tail_zeroed_at_every_offset_first_in_segment() {
    let (dir, expected) = log_with_last_record_first_in_segment();
    torn_tail_at_every_offset(dir.path(), &expected, Fill::Zero);
}

#[test]
fn torn_tail_garbage_at_every_offset_first_in_segment() {
    let (dir, expected) = log_with_last_record_first_in_segment();
    torn_tail_at_every_offset(dir.path(), &expected, Fill::Garbage);
}

/// Garbage that never was a record (e.g. a torn write of a record whose header never made it)
/// anywhere in the free space after the tail is cut, and the space is usable again.
#[test]
fn garbage_after_the_tail_is_cut_and_zeroed() {
    let dir = tempdir();
    let mut rng = Rng::new(0x7044);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        write_prefix(&store, &mut rng, 10, &mut expected);
    }
    let last = segment_paths(dir.path()).pop().unwrap();
    let tail = record_extents(&last).last().unwrap().padded_end();
    let room = room_left(dir.path());
    assert!(room > 800, "room {room}");
    for (gap, len) in [(0u64, 1usize), (0, 700), (8, 5), (4000, 100), (1, 3)] {
        // Keep the garbage inside the data region.
        let gap = gap.min(room - len as u64);
        let copy = copy_dir(dir.path());
        let seg = copy.path().join(last.file_name().unwrap());
        let at = (tail + gap) as usize;
        patch_file(&seg, |b| b[at..at + len].fill(0x5A));
        {
            let store = WalStore::open(small_config(copy.path())).unwrap();
            assert_log(
                &store.reader(),
                &expected,
                &format!("garbage at +{gap}, {len} bytes"),
            );
            let torn = store.torn_tail().expect("the cut is reported");
            assert_eq!(
                (torn.offset, torn.next_seq),
                (tail, expected.len() as u64 + 1)
            );
            assert!(torn.offset + torn.len >= (at + len) as u64);
        }
        let bytes = std::fs::read(&seg).unwrap();
        assert!(
            bytes[at..at + len].iter().all(|&b| b == 0),
            "recovery zeroes the torn tail before the first new append"
        );
        let store = WalStore::open(small_config(copy.path())).unwrap();
        let seq = store.writer().append(RecordType::Put, &[7u8; 900]).unwrap();
        assert_eq!(seq, expected.len() as u64 + 1);
        drop(store);
        let store = WalStore::open(small_config(copy.path())).unwrap();
        let r = store.reader();
        assert_eq!(r.get(seq).unwrap().unwrap().payload(), &[7u8; 900][..]);
    }
}

fn expect_corruption(dir: &Path, what: &str) -> Error {
    let err = WalStore::open(small_config(dir)).map(|_| ()).unwrap_err();
    assert!(err.is_corruption(), "{what}: WalStore::open: {err}");
    let err2 = WalReader::open(dir).map(|_| ()).unwrap_err();
    assert!(err2.is_corruption(), "{what}: WalReader::open: {err2}");
    err
}

/// A valid record of the active segment copied to just past its tail (as a reused or stale
/// region would look): its sequence number is older than the next expected one, so it must never
/// be replayed; per the design it is reported as corruption.
#[test]
fn stale_copy_of_an_earlier_record_past_the_tail_is_refused() {
    let dir = tempdir();
    let mut rng = Rng::new(0x57a1e);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        write_prefix(&store, &mut rng, 10, &mut expected);
        let w = store.writer();
        // Small records until the active segment holds at least 4 and has room for the copies.
        let mut i = 0u8;
        while record_extents(&segment_paths(dir.path()).pop().unwrap()).len() < 4
            || room_left(dir.path()) < 1500
        {
            i += 1;
            let payload = vec![i; 50 + usize::from(i % 8)];
            let seq = w
                .append_with_timestamp(RecordType::Put, 9, &payload)
                .unwrap();
            expected.push(rec(seq, RecordType::Put, 9, &payload));
        }
    }
    let active = segment_paths(dir.path()).pop().unwrap();
    let extents = record_extents(&active);
    assert!(extents.len() >= 4);
    let tail = extents.last().unwrap().padded_end();
    let original = std::fs::read(&active).unwrap();
    for (which, gap) in [(0, 0u64), (1, 0), (extents.len() - 1, 0), (1, 8), (2, 512)] {
        let e = extents[which];
        let what = format!("copy of record {} placed {gap} bytes past the tail", e.seq);
        let copy = copy_dir(dir.path());
        let seg = copy.path().join(active.file_name().unwrap());
        patch_file(&seg, |b| {
            let src = &original[e.offset as usize..e.padded_end() as usize];
            let at = (tail + gap) as usize;
            b[at..at + src.len()].copy_from_slice(src);
        });
        let err = expect_corruption(copy.path(), &what);
        if let Error::Corruption { file, .. } = &err {
            assert_eq!(file.file_name(), active.file_name(), "{what}: {err}");
        }
        // Refusing must not have changed the files: removing the stale bytes restores the log.
        patch_file(&seg, |b| b.copy_from_slice(&original));
        let store = WalStore::open(small_config(copy.path())).unwrap();
        assert_log(&store.reader(), &expected, &format!("{what}, after repair"));
    }
}

/// A record copied from an older segment to past the tail of the active one fails its checksum
/// there (records are bound to their segment): it is an ordinary torn tail, cut, never replayed.
#[test]
fn record_copied_from_another_segment_past_the_tail_is_not_replayed() {
    let dir = tempdir();
    let mut rng = Rng::new(0x57a1f);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        write_prefix(&store, &mut rng, 16, &mut expected);
        while segment_paths(dir.path()).len() < 3 || room_left(dir.path()) < 3100 {
            write_prefix(&store, &mut rng, 1, &mut expected);
        }
    }
    let segs = segment_paths(dir.path());
    let active = segs.last().unwrap();
    let tail = record_extents(active).last().unwrap().padded_end();
    let first_seg = std::fs::read(&segs[0]).unwrap();
    let donor = record_extents(&segs[0])[1];
    let bytes = &first_seg[donor.offset as usize..donor.padded_end() as usize];
    let copy = copy_dir(dir.path());
    let seg = copy.path().join(active.file_name().unwrap());
    // Placed with the sequence number the log expects next, it would look like a real record
    // if the checksum did not bind the segment: give it that number (the checksum stays the
    // donor's).
    let mut forged = bytes.to_vec();
    forged[8..16].copy_from_slice(&(expected.len() as u64 + 1).to_le_bytes());
    for candidate in [bytes.to_vec(), forged] {
        patch_file(&seg, |b| {
            let at = tail as usize;
            b[at..at + candidate.len()].copy_from_slice(&candidate);
        });
        assert_log(
            &WalReader::open(copy.path()).unwrap(),
            &expected,
            "dir reader",
        );
        {
            let store = WalStore::open(small_config(copy.path())).unwrap();
            assert_log(&store.reader(), &expected, "stale record cut");
        }
        let store = WalStore::open(small_config(copy.path())).unwrap();
        assert_log(&store.reader(), &expected, "second recovery");
    }
    let store = WalStore::open(small_config(copy.path())).unwrap();
    assert_eq!(
        store.writer().append(RecordType::Put, b"x").unwrap(),
        expected.len() as u64 + 1
    );
}

/// A segment file of another log, carrying the next segment id, is refused at open.
#[test]
fn segment_of_another_log_is_refused() {
    let a = tempdir();
    let b = tempdir();
    let mut rng = Rng::new(0xf0e1);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(a.path())).unwrap();
        write_prefix(&store, &mut rng, 12, &mut expected);
    }
    let a_segs = segment_paths(a.path());
    let next_id = seg_info(a_segs.last().unwrap()).segment_id + 1;
    {
        let store = WalStore::open(small_config(b.path())).unwrap();
        let (mut other, mut rng2) = (Vec::new(), Rng::new(0xb));
        while segment_paths(b.path()).len() < next_id as usize {
            write_prefix(&store, &mut rng2, 1, &mut other);
        }
    }
    let foreign = b.path().join(segment_name(next_id));
    assert_ne!(seg_info(&foreign).log_id, seg_info(&a_segs[0]).log_id);
    let intruded = a.path().join(segment_name(next_id));
    std::fs::copy(&foreign, &intruded).unwrap();
    let err = expect_corruption(a.path(), "foreign segment");
    match &err {
        Error::Corruption { file, .. } => assert_eq!(file, &intruded, "{err}"),
        other => panic!("{other}"),
    }
    // The foreign file was not touched and the log itself is intact once it is removed.
    assert_eq!(
        std::fs::read(&intruded).unwrap(),
        std::fs::read(&foreign).unwrap()
    );
    std::fs::remove_file(&intruded).unwrap();
    let store = WalStore::open(small_config(a.path())).unwrap();
    assert_log(
        &store.reader(),
        &expected,
        "after removing the foreign segment",
    );
    assert_eq!(
        store.writer().append(RecordType::Put, b"y").unwrap(),
        expected.len() as u64 + 1
    );
    assert!(!file_names(a.path()).iter().any(|n| n.ends_with(".tmp")));
}

/// A segment of another log that replaces the FIRST segment is refused as well (the log id of
/// the first segment must not simply be adopted when others disagree).
#[test]
fn foreign_first_segment_is_refused() {
    let a = tempdir();
    let b = tempdir();
    let mut rng = Rng::new(0xf0e2);
    let mut expected = Vec::new();
    for d in [a.path(), b.path()] {
        let store = WalStore::open(small_config(d)).unwrap();
        expected.clear();
        write_prefix(&store, &mut rng, 12, &mut expected);
    }
    assert!(segment_paths(a.path()).len() >= 2);
    std::fs::copy(
        b.path().join(segment_name(1)),
        a.path().join(segment_name(1)),
    )
    .unwrap();
    expect_corruption(a.path(), "foreign first segment");
}

/// Damage to an acknowledged record of the active segment that is followed by further
/// acknowledged records is not a torn tail: it is refused, with its location.
#[test]
fn damaged_acknowledged_record_in_the_active_segment_is_refused() {
    let dir = tempdir();
    let mut rng = Rng::new(0xacc);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        write_prefix(&store, &mut rng, 8, &mut expected);
        let w = store.writer();
        while record_extents(&segment_paths(dir.path()).pop().unwrap()).len() < 5 {
            let payload = rng.bytes_without(120, 0);
            let seq = w
                .append_with_timestamp(RecordType::Put, 1, &payload)
                .unwrap();
            expected.push(rec(seq, RecordType::Put, 1, &payload));
        }
    }
    let active = segment_paths(dir.path()).pop().unwrap();
    let extents = record_extents(&active);
    let n = extents.len();
    for (which, what) in [(0, "first"), (n / 2, "middle"), (n - 2, "second to last")] {
        let e = extents[which];
        let copy = copy_dir(dir.path());
        let seg = copy.path().join(active.file_name().unwrap());
        patch_file(&seg, |b| b[(e.offset + 40) as usize] ^= 0x10);
        let err = expect_corruption(copy.path(), what);
        match &err {
            Error::Corruption { offset, seq, .. } => {
                assert_eq!(*offset, e.offset, "{what}: {err}");
                assert_eq!(*seq, Some(e.seq), "{what}: {err}");
            }
            other => panic!("{other}"),
        }
    }
}

/// Manual mode: records appended after the last sync may be lost (a torn unsynced tail is cut,
/// even if later unsynced records look valid), but damage to synced records that later records
/// prove durable is refused.
#[test]
fn manual_mode_unsynced_tail_is_cut_but_damaged_synced_data_is_refused() {
    let dir = tempdir();
    let config = small_config(dir.path()).sync_mode(softadastra_wal::SyncMode::Manual);
    let mut expected = Vec::new();
    {
        let store = WalStore::open(config.clone()).unwrap();
        let w = store.writer();
        for i in 0..20u64 {
            let payload = vec![i as u8 + 1; 150];
            let seq = w
                .append_with_timestamp(RecordType::Put, i, &payload)
                .unwrap();
            expected.push(rec(seq, RecordType::Put, i, &payload));
            if seq == 10 {
                w.sync().unwrap();
            }
        }
        // Dropped without a sync: 11..=20 are in the page cache only.
        assert_eq!(segment_paths(dir.path()).len(), 1);
    }
    let seg = segment_paths(dir.path()).pop().unwrap();
    let extents = record_extents(&seg);
    assert_eq!(extents.len(), 20);
    // A clean drop keeps everything.
    {
        let copy = copy_dir(dir.path());
        let store = WalStore::open(small_config(copy.path())).unwrap();
        assert_log(&store.reader(), &expected, "clean drop");
    }
    // Unsynced record 15 never reached the disk: the log is 1..=14, the rest is cut.
    {
        let copy = copy_dir(dir.path());
        let e = extents[14];
        patch_file(&copy.path().join(seg.file_name().unwrap()), |b| {
            b[e.offset as usize + 32..e.end() as usize].fill(0);
        });
        assert_log(
            &WalReader::open(copy.path()).unwrap(),
            &expected[..14],
            "unsynced cut, dir reader",
        );
        {
            let store = WalStore::open(
                small_config(copy.path()).sync_mode(softadastra_wal::SyncMode::Manual),
            )
            .unwrap();
            assert_log(&store.reader(), &expected[..14], "unsynced record lost");
            assert_eq!(store.writer().next_seq().unwrap(), 15);
        }
        let store = WalStore::open(small_config(copy.path())).unwrap();
        assert_log(
            &store.reader(),
            &expected[..14],
            "unsynced record lost, second recovery",
        );
    }
    // Synced record 5 damaged: record 11 was written after 1..=10 were durable: refused.
    {
        let copy = copy_dir(dir.path());
        let e = extents[4];
        patch_file(&copy.path().join(seg.file_name().unwrap()), |b| {
            b[e.offset as usize + 32..e.end() as usize].fill(0);
        });
        let err = expect_corruption(copy.path(), "damaged synced record");
        if let Error::Corruption { seq, .. } = &err {
            assert_eq!(*seq, Some(5), "{err}");
        }
    }
}
