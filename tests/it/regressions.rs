//! Regression tests for library bugs the reliability harnesses found (tests/reliability/).
//! Each names the harness and what went wrong.

#[cfg(feature = "fault-injection")]
use std::sync::{Arc, Mutex};

#[cfg(feature = "fault-injection")]
use softadastra_wal::SyncMode;
use softadastra_wal::{RecordType, WalStore};

use crate::common::tempdir;
use crate::common::{assert_log, collect, patch_file, record_extents, segment_paths, small_config};

/// power-loss: records a crashed (or unsynced, `Manual`) process left only in the page cache were
/// published at reopen without being flushed, and the next record's `unsynced_before` vouched
/// for them; a power cut then made the log unopenable. Opening must flush them first.
#[cfg(feature = "fault-injection")]
#[test]
fn open_flushes_the_records_it_recovers_before_publishing_them() {
    use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};
    let dir = tempdir();
    let end = {
        let store = WalStore::open(small_config(dir.path()).sync_mode(SyncMode::Manual)).unwrap();
        store
            .writer()
            .append(RecordType::Put, &[5u8; 5000])
            .unwrap();
        store.writer().append(RecordType::Put, b"two").unwrap();
        // Dropped without sync: the records are only in the page cache.
        let last = segment_paths(dir.path()).pop().unwrap();
        record_extents(&last).last().unwrap().end()
    };
    let flushes = Arc::new(Mutex::new(Vec::new()));
    let plan = Arc::new(FaultPlan::new());
    let seen = flushes.clone();
    plan.observe(Box::new(move |call: &SysCall<'_>| {
        if call.op == SysOp::Flush && call.done {
            seen.lock().unwrap().push(call.range.unwrap());
        }
    }));
    let store = WalStore::open(small_config(dir.path()).fault_plan(plan)).unwrap();
    let flushed = flushes.lock().unwrap().clone();
    assert!(
        flushed
            .iter()
            .any(|&(off, len)| off <= 64 && off + len >= end),
        "open must flush bytes 64..{end} of the recovered records; it flushed {flushed:?}"
    );
    assert_eq!(store.last_seq(), Some(2));
}

/// power-loss: truncate_before unlinked several segments and then synced the directory once; a
/// file system may persist those unlinks in any order, and a crash that kept a younger deletion
/// but not an older one left a hole that recovery refuses. Each deletion is now made durable
/// before the next.
#[cfg(feature = "fault-injection")]
#[test]
fn truncation_syncs_the_directory_after_each_deletion() {
    use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};
    let dir = tempdir();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(small_config(dir.path()).fault_plan(plan.clone())).unwrap();
    let w = store.writer();
    while segment_paths(dir.path()).len() < 5 {
        w.append(RecordType::Put, &[1u8; 3000]).unwrap();
    }
    // The background preparer's own calls (the next spare) are not part of the truncation.
    store.settle_background();
    let seen = calls.clone();
    plan.observe(Box::new(move |call: &SysCall<'_>| {
        if call.done {
            seen.lock().unwrap().push(call.op);
        }
    }));
    let last = store.last_seq().unwrap();
    assert_eq!(store.truncate_before(last).unwrap(), 4);
    let ops = calls.lock().unwrap().clone();
    let pair = [SysOp::Unlink, SysOp::SyncDir];
    assert_eq!(ops, pair.repeat(4), "unlink, directory fsync, unlink, ...");
}

/// fuzz (segment_loader): a sealed newest segment whose records were all damaged was scanned
/// instead, its records cut as a torn tail while the footer vouching for them stayed; after the
/// next append a reopen trusted that footer again and showed records that did not exist. A seal
/// whose first record does not check out is damage to acknowledged data.
#[test]
fn sealed_segment_whose_first_record_is_damaged_is_refused() {
    let dir = tempdir();
    let want = {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        while segment_paths(dir.path()).len() < 3 {
            w.append(RecordType::Put, &[7u8; 2000]).unwrap();
        }
        collect(&store.reader())
    };
    // Remove the active segment: the newest left is sealed.
    let mut segs = segment_paths(dir.path());
    std::fs::remove_file(segs.pop().unwrap()).unwrap();
    let sealed_last = segs.pop().unwrap();
    let records = record_extents(&sealed_last);
    // Damage every record: no later valid record is left to prove the first one was durable.
    let flip = |b: &mut Vec<u8>| {
        for r in &records {
            b[r.offset as usize + 40] ^= 0x10;
        }
    };
    let before = {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        collect(&store.reader())
    };
    assert!(before.len() < want.len() && !before.is_empty());
    patch_file(&sealed_last, flip);
    let err = WalStore::open(small_config(dir.path()))
        .map(|_| ())
        .unwrap_err();
    assert!(err.is_corruption(), "{err}");
    // Nothing was cut: repairing the byte gives back the same log.
    patch_file(&sealed_last, flip);
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &before, "after the repair");
    let seq = store.writer().append(RecordType::Put, b"next").unwrap();
    assert_eq!(seq, before.len() as u64 + 1);
}
