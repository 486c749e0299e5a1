//! Damage inside a sealed segment (not the newest file): never returned as data. Either opening
//! refuses the log with a corruption error, or reading the damaged record is one.

use std::collections::BTreeSet;
use std::path::Path;

use softadastra_wal::format::Layout;
use softadastra_wal::{WalReader, WalRecord, WalStore};

use crate::common::{
    Extent, Rng, assert_log, copy_dir, describe, patch_file, rec, record_extents, seg_info,
    segment_paths, small_config, tempdir,
};

/// A closed log of several segments; returns it with its records.
fn build() -> (tempfile::TempDir, Vec<WalRecord>) {
    let dir = tempdir();
    let mut rng = Rng::new(0xc0de);
    let mut expected = Vec::new();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    while segment_paths(dir.path()).len() < 5 {
        let len = rng.range(1, 1200) as usize;
        let payload = rng.bytes(len);
        let (t, ts) = (rng.record_type(), rng.timestamp());
        let seq = w.append_with_timestamp(t, ts, &payload).unwrap();
        expected.push(rec(seq, t, ts, &payload));
    }
    drop(store);
    (dir, expected)
}

/// The records (header + payload) whose bytes differ between `before` and `after`.
fn damaged_seqs(extents: &[Extent], before: &[u8], after: &[u8]) -> BTreeSet<u64> {
    extents
        .iter()
        .filter(|e| {
            let r = e.offset as usize..e.end() as usize;
            before[r.clone()] != after[r]
        })
        .map(|e| e.seq)
        .collect()
}

/// Every read of `reader` either returns exactly the expected record or a corruption error; the
/// damaged records are never returned; iteration stops with an error at the first damaged one.
fn check_reads(reader: &WalReader, expected: &[WalRecord], damaged: &BTreeSet<u64>, what: &str) {
    let first_bad = *damaged.first().expect("some record was damaged");
    for want in expected {
        match reader.get(want.seq) {
            Ok(Some(r)) => {
                let got = r.to_record();
                assert!(
                    &got == want,
                    "{what}: get({}) returned different data: [{}] instead of [{}]",
                    want.seq,
                    describe(&got),
                    describe(want)
                );
                assert!(
                    !damaged.contains(&want.seq),
                    "{what}: damaged record {} returned by get",
                    want.seq
                );
            }
            Ok(None) => panic!("{what}: get({}) is None", want.seq),
            Err(e) => assert!(e.is_corruption(), "{what}: get({}): {e}", want.seq),
        }
    }
    for &bad in damaged {
        let err = reader.get(bad).map(|_| ()).unwrap_err();
        assert!(err.is_corruption(), "{what}: get({bad}): {err}");
    }

    let mut it = reader.iter();
    for want in &expected[..first_bad as usize - 1] {
        let got = it
            .next()
            .unwrap_or_else(|| panic!("{what}: iteration ended before {}", want.seq))
            .unwrap_or_else(|e| panic!("{what}: iteration failed at {}: {e}", want.seq))
            .to_record();
        assert!(
            &got == want,
            "{what}: iteration returned different data at {}",
            want.seq
        );
    }
    match it.next() {
        Some(Err(e)) => assert!(e.is_corruption(), "{what}: iteration at {first_bad}: {e}"),
        Some(Ok(r)) => panic!(
            "{what}: iteration returned damaged record {} as data ({})",
            first_bad,
            describe(&r.to_record())
        ),
        None => panic!("{what}: iteration ended silently at damaged record {first_bad}"),
    }
    assert!(
        it.next().is_none(),
        "{what}: iteration continues after an error"
    );
    let err = reader.for_each(|_| {}).unwrap_err();
    assert!(err.is_corruption(), "{what}: for_each: {err}");

    // iter_from anywhere: records in order and correct, or an error that ends it.
    for start in (1..=expected.len() as u64).step_by(5) {
        let mut next = start;
        for item in reader.iter_from(start) {
            match item {
                Ok(r) => {
                    let got = r.to_record();
                    let want = &expected[next as usize - 1];
                    assert!(
                        &got == want,
                        "{what}: iter_from({start}) returned [{}] where [{}] belongs",
                        describe(&got),
                        describe(want)
                    );
                    assert!(!damaged.contains(&next), "{what}: damaged {next} returned");
                    next += 1;
                }
                Err(e) => {
                    assert!(e.is_corruption(), "{what}: iter_from({start}): {e}");
                    break;
                }
            }
        }
    }
}

/// Applies `damage` to segment file number `seg_index` (0-based, must not be the newest) in a copy
/// of `src`, then opens it both ways. Returns how many of the two opens succeeded (and so went
/// through the read checks).
fn damage_and_check(
    src: &Path,
    expected: &[WalRecord],
    seg_index: usize,
    what: &str,
    damage: impl FnOnce(&mut Vec<u8>, &Layout),
) -> usize {
    let segs = segment_paths(src);
    assert!(seg_index + 1 < segs.len(), "damage a sealed segment");
    let name = segs[seg_index].file_name().unwrap().to_owned();
    let info = seg_info(&segs[seg_index]);
    let layout = Layout::new(info.size, info.index_interval).unwrap();
    let extents = record_extents(&segs[seg_index]);
    let before = std::fs::read(&segs[seg_index]).unwrap();
    let copy = copy_dir(src);
    let path = copy.path().join(&name);
    patch_file(&path, |b| damage(b, &layout));
    let after = std::fs::read(&path).unwrap();
    let damaged = damaged_seqs(&extents, &before, &after);
    assert!(!damaged.is_empty(), "{what}: the damage changed no record");

    let mut opened = 0;
    match WalReader::open(copy.path()) {
        Ok(reader) => {
            opened += 1;
            check_reads(
                &reader,
                expected,
                &damaged,
                &format!("{what} (WalReader::open)"),
            );
        }
        Err(e) => assert!(e.is_corruption(), "{what}: WalReader::open: {e}"),
    }
    match WalStore::open(small_config(copy.path())) {
        Ok(store) => {
            opened += 1;
            check_reads(
                &store.reader(),
                expected,
                &damaged,
                &format!("{what} (WalStore::open)"),
            );
            // The writer is not affected by damage in old data.
            let seq = store
                .writer()
                .append(softadastra_wal::RecordType::Put, b"new")
                .unwrap();
            assert_eq!(seq, expected.len() as u64 + 1, "{what}");
        }
        Err(e) => assert!(e.is_corruption(), "{what}: WalStore::open: {e}"),
    }
    opened
}

#[test]
fn bit_flips_in_sealed_records_are_errors_never_data() {
    let (dir, expected) = build();
    let segs = segment_paths(dir.path());
    for seg_index in [1, 0] {
        let extents = record_extents(&segs[seg_index]);
        assert!(extents.len() >= 3);
        // The first record of a segment may make opening fail (recovery checks it); any other
        // record is only checked when read.
        for (ri, must_open) in [(1, true), (extents.len() - 1, true), (0, false)] {
            let e = extents[ri];
            let mut positions: Vec<u64> = (0..32).collect();
            if e.payload_len > 0 {
                positions.extend([32, 32 + e.payload_len / 2, 32 + e.payload_len - 1]);
            }
            for p in positions {
                let at = (e.offset + p) as usize;
                let bit = (p % 8) as u8;
                let what = format!("segment #{seg_index}, record {} byte {p} bit {bit}", e.seq);
                let n = damage_and_check(dir.path(), &expected, seg_index, &what, |b, _| {
                    b[at] ^= 1 << bit;
                });
                if must_open {
                    assert_eq!(
                        n, 2,
                        "{what}: damage in a non-first record of a sealed segment is found when it is read, not at open"
                    );
                }
            }
        }
    }
}

#[test]
fn every_bit_of_one_sealed_record_header_is_covered() {
    let (dir, expected) = build();
    let segs = segment_paths(dir.path());
    let e = record_extents(&segs[2])[2];
    for byte in 0..32u64 {
        for bit in 0..8 {
            let at = (e.offset + byte) as usize;
            let what = format!("record {} header byte {byte} bit {bit}", e.seq);
            damage_and_check(dir.path(), &expected, 2, &what, |b, _| b[at] ^= 1 << bit);
        }
    }
}

#[test]
fn bursts_zeroed_sectors_and_swapped_blocks_in_sealed_segments() {
    let (dir, expected) = build();
    let segs = segment_paths(dir.path());
    let seg_index = 2;
    let extents = record_extents(&segs[seg_index]);
    let data_end = extents.last().unwrap().end();
    let mid = extents[extents.len() / 2];
    // A burst of flipped bytes in the middle of a record.
    let burst_at = (mid.offset + 20) as usize;
    damage_and_check(dir.path(), &expected, seg_index, "16-byte burst", |b, _| {
        for x in &mut b[burst_at..burst_at + 16] {
            *x ^= 0xFF;
        }
    });
    // Zeroed 512-byte sectors anywhere in the records but the first one.
    let mut sector = 512u64;
    while sector + 512 <= data_end {
        let s = sector as usize;
        let what = format!("zeroed sector at {sector}");
        let before = std::fs::read(&segs[seg_index]).unwrap();
        if before[s..s + 512].iter().any(|&x| x != 0) {
            damage_and_check(dir.path(), &expected, seg_index, &what, |b, _| {
                b[s..s + 512].fill(0);
            });
        }
        sector += 512;
    }
    // Two 4 KiB blocks of the record region swapped, or one duplicated over the other.
    if data_end > 3 * 4096 {
        damage_and_check(
            dir.path(),
            &expected,
            seg_index,
            "swapped blocks",
            |b, _| {
                let (lo, hi) = b.split_at_mut(8192);
                lo[4096..8192].swap_with_slice(&mut hi[..4096]);
            },
        );
        damage_and_check(
            dir.path(),
            &expected,
            seg_index,
            "duplicated block",
            |b, _| {
                let block = b[4096..8192].to_vec();
                b[8192..12288].copy_from_slice(&block);
            },
        );
    }
}

/// The persisted index and the seal footer are a cache of what the records say: damage there
/// costs a rescan, never an error and never wrong data.
#[test]
fn damaged_index_or_footer_is_rebuilt_from_the_records() {
    let (dir, expected) = build();
    let segs = segment_paths(dir.path());
    let info = seg_info(&segs[1]);
    let layout = Layout::new(info.size, info.index_interval).unwrap();
    let name = segs[1].file_name().unwrap().to_owned();
    let index_at = layout.index_offset();
    let footer_at = layout.footer_offset;
    let mut positions: Vec<u64> = (0..16).map(|i| index_at + i).collect();
    positions.extend((0..64).map(|i| footer_at + i));
    for p in positions {
        for bit in [0u8, 5] {
            let what =
                format!("flip at {p} bit {bit} (index at {index_at}, footer at {footer_at})");
            let copy = copy_dir(dir.path());
            patch_file(&copy.path().join(&name), |b| b[p as usize] ^= 1 << bit);
            let reader = WalReader::open(copy.path())
                .unwrap_or_else(|e| panic!("{what}: WalReader::open: {e}"));
            assert_log(&reader, &expected, &what);
            for s in (1..=expected.len() as u64).step_by(3) {
                let got: Vec<u64> = reader.iter_from(s).map(|r| r.unwrap().seq()).collect();
                assert_eq!(
                    got,
                    (s..=expected.len() as u64).collect::<Vec<_>>(),
                    "{what}"
                );
            }
            {
                let store = WalStore::open(small_config(copy.path()))
                    .unwrap_or_else(|e| panic!("{what}: WalStore::open: {e}"));
                assert_log(&store.reader(), &expected, &format!("{what}, store"));
            }
            let store = WalStore::open(small_config(copy.path())).unwrap();
            assert_log(&store.reader(), &expected, &format!("{what}, second open"));
        }
    }
}
