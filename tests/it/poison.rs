//! Poisoning through the fault-injection seam: the first failed flush, allocation, file sync,
//! rename, directory sync or unlink poisons the writer for good; nothing is acknowledged after it;
//! a reopen recovers every record acknowledged before it. A full disk while preparing a new
//! segment is the one failure that does not poison.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use softadastra_wal::fault::{FaultPlan, SysOp};
use softadastra_wal::format::{Layout, record_size};
use softadastra_wal::{Error, RecordType, SyncMode, WalConfig, WalRecord, WalStore, WalWriter};

use crate::common::{
    Rng, assert_log, assert_records_eq, collect, file_names, rec, segment_paths, small_config,
    tempdir,
};

fn with_plan(dir: &Path, plan: &Arc<FaultPlan>) -> WalConfig {
    small_config(dir).fault_plan(plan.clone())
}

fn layout() -> Layout {
    let c = small_config(Path::new("unused"));
    Layout::new(c.get_segment_size(), c.get_index_interval()).unwrap()
}

#[track_caller]
fn assert_poisoned<T: std::fmt::Debug>(result: softadastra_wal::Result<T>, what: &str) {
    match result {
        Err(e) => assert!(e.is_poisoned(), "{what}: expected Poisoned, got {e}"),
        Ok(v) => panic!("{what}: acknowledged after poisoning: {v:?}"),
    }
}

/// Every way to append or make durable is refused once poisoned, through every handle, again
/// and again (the injected fault is long gone, so a retry would succeed if it were allowed).
fn assert_stays_poisoned(store: &WalStore, w: &WalWriter) {
    for round in 0..3 {
        let what = |op: &str| format!("round {round}: {op}");
        assert_poisoned(w.append(RecordType::Put, b"x"), &what("append"));
        assert_poisoned(
            w.append_with_timestamp(RecordType::Put, 1, &[1u8; 5000]),
            &what("append_with_timestamp"),
        );
        assert_poisoned(
            w.append_batch([(RecordType::Put, &b"a"[..]), (RecordType::Put, &b"b"[..])]),
            &what("append_batch"),
        );
        assert_poisoned(
            w.append_batch(std::iter::empty()),
            &what("empty append_batch"),
        );
        assert_poisoned(w.sync(), &what("sync"));
        assert_poisoned(
            store.writer().append(RecordType::Noop, b""),
            &what("new writer"),
        );
        assert_poisoned(w.clone().sync(), &what("cloned writer sync"));
        assert_poisoned(store.truncate_before(u64::MAX), &what("truncate_before"));
    }
}

/// Reopens `dir` without faults and checks: every acknowledged record present and exact, then
/// at most the records that were in flight (a prefix of them), nothing else; no temporary file
/// left; the log continues. Returns the recovered records.
fn reopen_and_check(
    dir: &Path,
    acked: &[WalRecord],
    in_flight: &[WalRecord],
    what: &str,
) -> Vec<WalRecord> {
    let store = WalStore::open(small_config(dir)).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let got = collect(&store.reader());
    assert!(
        got.len() >= acked.len(),
        "{what}: {} acknowledged records, only {} recovered",
        acked.len(),
        got.len()
    );
    assert_records_eq(
        &got[..acked.len()],
        acked,
        &format!("{what}: acknowledged records"),
    );
    let extra = &got[acked.len()..];
    assert!(
        extra.len() <= in_flight.len(),
        "{what}: {} records recovered past the acknowledged ones, {} were in flight",
        extra.len(),
        in_flight.len()
    );
    for (g, w) in extra.iter().zip(in_flight) {
        // Timestamps of batch records are the writer's clock: compare the rest.
        assert_eq!(
            (g.seq, g.record_type, &g.payload),
            (w.seq, w.record_type, &w.payload),
            "{what}: unacknowledged record recovered with other contents"
        );
    }
    // (The reopened store's preparer makes a temporary file of its own: let it finish.)
    store.settle_background();
    assert!(
        !file_names(dir).iter().any(|n| n.ends_with(".tmp")),
        "{what}: temporary file left: {:?}",
        file_names(dir)
    );
    let next = got.len() as u64 + 1;
    let seq = store
        .writer()
        .append(RecordType::Checkpoint, b"after reopen")
        .unwrap();
    assert_eq!(
        seq, next,
        "{what}: the log continues after the recovered records"
    );
    drop(store);
    let store = WalStore::open(small_config(dir)).unwrap();
    let again = collect(&store.reader());
    assert_records_eq(&again[..got.len()], &got, &format!("{what}: second reopen"));
    assert_eq!(again.len(), got.len() + 1, "{what}");
    got
}

/// Appends records of 500 bytes until the next one of them would still fit the active segment
/// but a record of `room + 1` bytes would not; returns the free room in the active segment.
fn fill_active_segment(w: &WalWriter, acked: &mut Vec<WalRecord>, used: &mut u64) -> u64 {
    let l = layout();
    let small = 500u64;
    loop {
        let need = record_size(small);
        if *used + 2 * need > l.data_limit {
            return l.data_limit - *used;
        }
        let payload = vec![(acked.len() % 200) as u8 + 1; small as usize];
        let seq = w
            .append_with_timestamp(RecordType::Put, 7, &payload)
            .unwrap();
        acked.push(rec(seq, RecordType::Put, 7, &payload));
        *used = if *used + need > l.data_limit {
            l.data_start() + need
        } else {
            *used + need
        };
    }
}

#[test]
fn failed_flush_poisons_and_nothing_is_acknowledged_after_it() {
    let dir = tempdir();
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(with_plan(dir.path(), &plan)).unwrap();
    let w = store.writer();
    let mut acked = Vec::new();
    for i in 0..10u64 {
        let payload = vec![i as u8 + 1; 300];
        let seq = w
            .append_with_timestamp(RecordType::Put, i, &payload)
            .unwrap();
        acked.push(rec(seq, RecordType::Put, i, &payload));
    }
    plan.fail_nth(SysOp::Flush, plan.calls(SysOp::Flush) + 1, ErrorKind::Other);
    let payload = vec![0xEEu8; 300];
    let err = w
        .append_with_timestamp(RecordType::Update, 99, &payload)
        .unwrap_err();
    assert!(
        !err.is_poisoned(),
        "the failing call reports its cause: {err}"
    );
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let in_flight = rec(acked.len() as u64 + 1, RecordType::Update, 99, &payload);

    assert_stays_poisoned(&store, &w);
    // Readers keep working and never see the unacknowledged record.
    assert_log(&store.reader(), &acked, "store reader after poisoning");
    assert_eq!(store.last_seq(), Some(acked.len() as u64));
    drop(w);
    drop(store);
    reopen_and_check(dir.path(), &acked, &[in_flight], "flush failure");
}

#[test]
fn failed_sync_poisons_in_manual_mode() {
    let dir = tempdir();
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(with_plan(dir.path(), &plan).sync_mode(SyncMode::Manual)).unwrap();
    let w = store.writer();
    let mut synced = Vec::new();
    for i in 0..5u64 {
        let seq = w
            .append_with_timestamp(RecordType::Put, i, &[i as u8; 100])
            .unwrap();
        synced.push(rec(seq, RecordType::Put, i, &[i as u8; 100]));
    }
    w.sync().unwrap();
    let mut unsynced = Vec::new();
    for i in 5..9u64 {
        let seq = w
            .append_with_timestamp(RecordType::Put, i, &[i as u8; 100])
            .unwrap();
        unsynced.push(rec(seq, RecordType::Put, i, &[i as u8; 100]));
    }
    // Unsynced records are not visible to readers.
    assert_log(&store.reader(), &synced, "before the failing sync");
    plan.fail_nth(SysOp::Flush, plan.calls(SysOp::Flush) + 1, ErrorKind::Other);
    let err = w.sync().unwrap_err();
    assert!(
        !err.is_poisoned() && matches!(err, Error::Io { .. }),
        "{err}"
    );
    assert_stays_poisoned(&store, &w);
    assert_log(&store.reader(), &synced, "after the failing sync");
    drop(w);
    drop(store);
    reopen_and_check(dir.path(), &synced, &unsynced, "manual sync failure");
}

/// Appends 500-byte records until one fails, across at most three rotations. Returns the error
/// and the record whose append failed.
fn append_until_failure(w: &WalWriter, acked: &mut Vec<WalRecord>) -> (Error, WalRecord) {
    let per_segment = layout().capacity() / record_size(500) + 1;
    for _ in 0..3 * per_segment {
        let seq = acked.len() as u64 + 1;
        let payload = vec![(seq % 200) as u8 + 1; 500];
        match w.append_with_timestamp(RecordType::Put, 7, &payload) {
            Ok(got) => {
                assert_eq!(got, seq);
                acked.push(rec(seq, RecordType::Put, 7, &payload));
            }
            Err(e) => return (e, rec(seq, RecordType::Put, 7, &payload)),
        }
    }
    panic!("no append failed across three rotations");
}

/// The work of a rotation fails at each of its system calls in turn: on the append path, the
/// rename that turns the spare into the new segment and the new segment's first flush; in the
/// background after a rotation, the creation of the next spare (allocate, file sync, rename,
/// directory sync) and the seal of the full segment, which are reported at the next rotation.
/// An append fails with the call's error, the writer is poisoned, and a reopen recovers every
/// acknowledged record (the failed one only if its own flush was the failing call).
#[test]
fn failures_during_rotation_poison() {
    let cases = [
        (SysOp::Allocate, ErrorKind::Other),
        (SysOp::SyncFile, ErrorKind::Other),
        (SysOp::Rename, ErrorKind::Other),
        (SysOp::SyncDir, ErrorKind::Other),
        (SysOp::Flush, ErrorKind::Other),
        (SysOp::Seal, ErrorKind::Other),
        // A full disk is harmless only while allocating; later steps of the creation (or the
        // seal) failing with it leave the directory or the old segment in an unknown state.
        (SysOp::SyncFile, ErrorKind::StorageFull),
        (SysOp::Rename, ErrorKind::StorageFull),
        (SysOp::SyncDir, ErrorKind::StorageFull),
        (SysOp::Flush, ErrorKind::StorageFull),
        (SysOp::Seal, ErrorKind::StorageFull),
    ];
    for (op, kind) in cases {
        let what = format!("{op:?} failing with {kind:?} around a rotation");
        let dir = tempdir();
        let plan = Arc::new(FaultPlan::new());
        let store = WalStore::open(with_plan(dir.path(), &plan)).unwrap();
        let w = store.writer();
        let mut acked = Vec::new();
        let mut used = layout().data_start();
        // Go through one rotation first, so the failing one is not the first.
        fill_active_segment(&w, &mut acked, &mut used);
        let big = vec![0x42u8; 3000];
        let seq = w.append_with_timestamp(RecordType::Put, 1, &big).unwrap();
        acked.push(rec(seq, RecordType::Put, 1, &big));
        assert_eq!(segment_paths(dir.path()).len(), 2, "{what}");
        store.settle_background();

        plan.fail_nth(op, plan.calls(op) + 1, kind);
        let (err, failed) = append_until_failure(&w, &mut acked);
        assert!(
            !err.is_poisoned(),
            "{what}: the failing call reports its cause: {err}"
        );
        assert!(matches!(err, Error::Io { .. }), "{what}: {err}");
        assert!(plan.calls(op) > 0);
        assert!(w.is_poisoned(), "{what}");
        assert_stays_poisoned(&store, &w);
        assert_log(
            &store.reader(),
            &acked,
            &format!("{what}: reader after poisoning"),
        );
        drop(w);
        drop(store);
        let got = reopen_and_check(dir.path(), &acked, &[failed], &what);
        if op != SysOp::Flush {
            assert_eq!(
                got.len(),
                acked.len(),
                "{what}: the failed record was never written"
            );
        }
    }
}

/// A full disk while preparing a segment loses nothing: the append that needs the segment fails,
/// the writer is not poisoned, no number is used, and once space is back appending continues.
#[test]
fn storage_full_while_allocating_a_segment_does_not_poison() {
    let dir = tempdir();
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(with_plan(dir.path(), &plan)).unwrap();
    let w = store.writer();
    let mut acked = Vec::new();
    store.settle_background();
    // Fail the next allocation (the background one of the spare after next, reported at the
    // rotation that needs it) and the one after (the writer's own retry).
    let first = plan.calls(SysOp::Allocate) + 1;
    plan.fail_nth(SysOp::Allocate, first, ErrorKind::StorageFull);
    plan.fail_nth(SysOp::Allocate, first + 1, ErrorKind::StorageFull);
    let (err, failed) = append_until_failure(&w, &mut acked);
    let segments = segment_paths(dir.path());
    for attempt in 0..2 {
        let err = if attempt == 0 {
            err.to_string()
        } else {
            let e = w
                .append_with_timestamp(failed.record_type, failed.timestamp, &failed.payload)
                .unwrap_err();
            assert!(!e.is_poisoned(), "attempt {attempt}: {e}");
            match &e {
                Error::Io { source, .. } => assert_eq!(source.kind(), ErrorKind::StorageFull),
                other => panic!("attempt {attempt}: {other}"),
            }
            e.to_string()
        };
        assert!(!w.is_poisoned(), "attempt {attempt}: {err}");
        assert_eq!(segment_paths(dir.path()), segments, "no segment was added");
        assert!(!file_names(dir.path()).iter().any(|n| n.ends_with(".tmp")));
        assert_eq!(w.next_seq().unwrap(), failed.seq, "no number used");
        assert_log(&store.reader(), &acked, "after a full disk");
    }
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == ErrorKind::StorageFull),
        "{err}"
    );
    let seq = w
        .append_with_timestamp(failed.record_type, failed.timestamp, &failed.payload)
        .unwrap();
    assert_eq!(seq, failed.seq);
    acked.push(failed);
    w.sync().unwrap();
    store.truncate_before(1).unwrap();
    assert_eq!(segment_paths(dir.path()).len(), segments.len() + 1);
    assert_log(&store.reader(), &acked, "after space came back");
    drop(w);
    drop(store);
    reopen_and_check(dir.path(), &acked, &[], "storage full");
}

/// Builds a closed log of several segments with a plan attached on the next open.
fn multi_segment_log(dir: &Path) -> Vec<WalRecord> {
    let store = WalStore::open(small_config(dir)).unwrap();
    let w = store.writer();
    let mut rng = Rng::new(0xdead);
    let mut acked = Vec::new();
    while segment_paths(dir).len() < 5 {
        let payload = rng.payload(3000);
        let seq = w
            .append_with_timestamp(RecordType::Put, 3, &payload)
            .unwrap();
        acked.push(rec(seq, RecordType::Put, 3, &payload));
    }
    acked
}

#[test]
fn failed_unlink_or_directory_sync_during_truncation_poisons() {
    // (op, which call of the truncation fails)
    for (op, nth) in [
        (SysOp::Unlink, 1u64),
        (SysOp::Unlink, 2),
        (SysOp::Unlink, 3),
        (SysOp::SyncDir, 1),
        (SysOp::SyncDir, 2),
        (SysOp::SyncDir, 3),
    ] {
        let what = format!("{op:?} #{nth} of a truncation failing");
        let dir = tempdir();
        let acked = multi_segment_log(dir.path());
        let segs = segment_paths(dir.path());
        let bases: Vec<u64> = segs
            .iter()
            .map(|p| crate::common::seg_info(p).base_seq)
            .collect();
        let plan = Arc::new(FaultPlan::new());
        let store = WalStore::open(with_plan(dir.path(), &plan)).unwrap();
        let w = store.writer();
        let old_reader = store.reader();
        store.settle_background();
        plan.fail_nth(op, plan.calls(op) + nth, ErrorKind::Other);
        // Would delete the first three segments.
        let err = store.truncate_before(bases[3]).unwrap_err();
        assert!(
            !err.is_poisoned() && matches!(err, Error::Io { .. }),
            "{what}: {err}"
        );
        assert_stays_poisoned(&store, &w);
        let deleted = segs.iter().filter(|p| !p.exists()).count();
        // Each deletion is made durable (directory fsync) before the next one starts.
        let expected_deleted = if op == SysOp::Unlink {
            nth as usize - 1
        } else {
            nth as usize
        };
        assert_eq!(deleted, expected_deleted, "{what}");
        assert!(
            segs[3..].iter().all(|p| p.exists()),
            "{what}: kept segments must stay"
        );
        // Readers: an old snapshot still reads everything; a new one what is left.
        assert_log(&old_reader, &acked, &format!("{what}: old reader"));
        let first = bases[deleted];
        assert_log(
            &store.reader(),
            &acked[first as usize - 1..],
            &format!("{what}: new reader"),
        );
        drop((old_reader, w, store));

        let store = WalStore::open(small_config(dir.path())).unwrap();
        assert_eq!(store.first_seq(), Some(first), "{what}");
        assert_log(
            &store.reader(),
            &acked[first as usize - 1..],
            &format!("{what}: reopened"),
        );
        let seq = store.writer().append(RecordType::Put, b"more").unwrap();
        assert_eq!(seq, acked.len() as u64 + 1, "{what}");
    }
}

/// One workload (appends across rotations, in both sync modes, with syncs in Manual mode) run
/// once per durability system call it makes, failing that call. Whatever fails: everything
/// acknowledged before is recovered, nothing is acknowledged after.
#[test]
fn every_durability_call_of_a_workload_failing_in_turn() {
    fn payloads() -> Vec<Vec<u8>> {
        let mut rng = Rng::new(0xe0);
        (0..45).map(|_| rng.payload(2500)).collect()
    }
    /// Runs the workload; returns (acknowledged, in flight) records.
    fn run(dir: &Path, config: WalConfig) -> Option<(Vec<WalRecord>, Vec<WalRecord>)> {
        let manual = config.get_sync_mode() == SyncMode::Manual;
        let store = match WalStore::open(config) {
            Ok(s) => s,
            Err(e) => {
                assert!(matches!(e, Error::Io { .. }), "open: {e}");
                return None;
            }
        };
        let w = store.writer();
        let (mut acked, mut pending) = (Vec::new(), Vec::new());
        let mut failed = false;
        for (i, p) in payloads().iter().enumerate() {
            let i = i as u64;
            let r = rec(
                acked.len() as u64 + pending.len() as u64 + 1,
                RecordType::Put,
                i,
                p,
            );
            match w.append_with_timestamp(RecordType::Put, i, p) {
                Ok(seq) => {
                    assert_eq!(seq, r.seq);
                    if manual {
                        pending.push(r);
                    } else {
                        acked.push(r);
                    }
                }
                Err(e) => {
                    assert!(!e.is_poisoned(), "first failure reports its cause: {e}");
                    pending.push(r);
                    failed = true;
                    break;
                }
            }
            if manual && i % 4 == 3 {
                match w.sync() {
                    Ok(()) => acked.append(&mut pending),
                    Err(e) => {
                        assert!(!e.is_poisoned(), "{e}");
                        failed = true;
                        break;
                    }
                }
            }
        }
        if manual && !failed {
            match w.sync() {
                Ok(()) => acked.append(&mut pending),
                Err(e) => {
                    assert!(!e.is_poisoned(), "{e}");
                    failed = true;
                }
            }
        }
        if failed {
            assert_stays_poisoned(&store, &w);
        }
        let _ = dir;
        Some((acked, pending))
    }

    for mode in [SyncMode::Always, SyncMode::Manual] {
        // A dry run counts the calls.
        let dry = tempdir();
        let plan = Arc::new(FaultPlan::new());
        let (all, _) = run(dry.path(), with_plan(dry.path(), &plan).sync_mode(mode)).unwrap();
        assert_eq!(all.len(), 45);
        assert!(segment_paths(dry.path()).len() >= 5);
        for op in [
            SysOp::Flush,
            SysOp::Allocate,
            SysOp::SyncFile,
            SysOp::Rename,
            SysOp::SyncDir,
            SysOp::Seal,
        ] {
            let calls = plan.calls(op);
            assert!(calls > 0, "{op:?} is used by the workload");
            for n in 1..=calls {
                let what = format!("{mode:?}: {op:?} call #{n} of {calls} failing");
                let dir = tempdir();
                let plan = Arc::new(FaultPlan::new());
                plan.fail_nth(op, n, ErrorKind::Other);
                let outcome = run(dir.path(), with_plan(dir.path(), &plan).sync_mode(mode));
                match outcome {
                    None => {
                        // The open itself failed (creating the first segment): nothing lost.
                        let store = WalStore::open(small_config(dir.path())).unwrap();
                        assert_log(&store.reader(), &[], &what);
                    }
                    Some((acked, in_flight)) => {
                        // The background work after the last rotation (the seal of the segment
                        // before it, the next spare: the last call of those kinds) is reported
                        // only at a rotation the workload does not reach. It loses nothing.
                        let unreported = op != SysOp::Flush && n == calls;
                        assert!(
                            acked.len() < 45 || unreported,
                            "{what}: the fault was never hit"
                        );
                        reopen_and_check(dir.path(), &acked, &in_flight, &what);
                    }
                }
            }
        }
    }
}

/// Faults while recovery repairs the log at open (zeroing a torn tail, sealing a segment a crash
/// left unsealed) fail the open with an I/O error; a later open without faults recovers the same
/// log.
#[test]
fn faults_during_recovery_fail_the_open_cleanly() {
    let dir = tempdir();
    let mut expected = Vec::new();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        for i in 0..20u64 {
            let payload = vec![i as u8 + 1; 1500];
            let seq = w
                .append_with_timestamp(RecordType::Put, i, &payload)
                .unwrap();
            expected.push(rec(seq, RecordType::Put, i, &payload));
        }
    }
    // Two repairs: a torn tail to zero, or an unsealed segment (followed by the empty segment a
    // rotation created) to seal.
    let last = segment_paths(dir.path()).pop().unwrap();
    let tail = crate::common::record_extents(&last)
        .last()
        .unwrap()
        .padded_end() as usize;
    let torn = crate::common::copy_dir(dir.path());
    crate::common::patch_file(&torn.path().join(last.file_name().unwrap()), |b| {
        b[tail..tail + 100].fill(0x66);
    });
    let unsealed = crate::common::copy_dir(dir.path());
    crate::common::craft_next_empty_segment(unsealed.path());
    for (src, repair, op) in [
        (torn.path(), "zeroing a torn tail", SysOp::Flush),
        (unsealed.path(), "sealing", SysOp::Seal),
    ] {
        let what = format!("{op:?} failing while {repair}");
        let copy = crate::common::copy_dir(src);
        let plan = Arc::new(FaultPlan::new());
        plan.fail_nth(op, 1, ErrorKind::Other);
        match WalStore::open(with_plan(copy.path(), &plan)) {
            Err(e) => assert!(matches!(e, Error::Io { .. }), "{what}: {e}"),
            Ok(_) => panic!("{what}: the open succeeded"),
        }
        assert_eq!(
            plan.calls(op),
            1,
            "{what}: recovery repairs through the seam"
        );
        reopen_and_check(copy.path(), &expected, &[], &what);
    }
}
