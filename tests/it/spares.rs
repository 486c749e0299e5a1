//! Spare segments (made ahead of need by the background preparer) and the recovery rules for
//! them (FORMAT.md, "Spare segments"): an unused spare is removed, a spare whose activating rename
//! a crash lost joins the log, anything else is damage.

use std::path::{Path, PathBuf};

use softadastra_wal::{RecordType, WalReader, WalRecord, WalStore};

use crate::common::{assert_log, collect, patch_file, segment_paths, small_config, tempdir};

fn spare_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(softadastra_wal::names::spare(id))
}

fn spares(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "spare"))
        .collect();
    v.sort();
    v
}

/// A closed log whose second segment holds `in_second` records of 3000 bytes, each appended (and
/// flushed) on its own.
fn two_segment_log(in_second: usize) -> (tempfile::TempDir, Vec<WalRecord>) {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let w = store.writer();
    let mut second = 0;
    while second < in_second {
        w.append(RecordType::Put, &[7u8; 3000]).unwrap();
        if segment_paths(dir.path()).len() == 2 {
            second += 1;
        }
    }
    let records = collect(&store.reader());
    drop((w, store));
    (dir, records)
}

#[test]
fn a_spare_is_ready_while_the_store_is_open_and_removed_when_it_closes() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while spares(dir.path()) != [spare_path(dir.path(), 2)] {
        assert!(std::time::Instant::now() < deadline, "no spare was made");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // A reader in another process ignores it.
    store.writer().append(RecordType::Put, b"one").unwrap();
    assert_eq!(collect(&WalReader::open(dir.path()).unwrap()).len(), 1);
    drop(store);
    assert!(spares(dir.path()).is_empty());
}

#[test]
fn an_unused_spare_left_by_a_crash_is_removed_at_open() {
    let (dir, records) = two_segment_log(1);
    let spare = spare_path(dir.path(), 3);
    std::fs::write(&spare, vec![0u8; 16 << 10]).unwrap();
    assert_log(&WalReader::open(dir.path()).unwrap(), &records, "reader");
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &records, "store");
    drop(store);
    assert!(spares(dir.path()).is_empty());
}

#[test]
fn a_spare_whose_activating_rename_was_lost_joins_the_log() {
    let (dir, records) = two_segment_log(3);
    let second = segment_paths(dir.path()).pop().unwrap();
    std::fs::rename(&second, spare_path(dir.path(), 2)).unwrap();
    assert_log(&WalReader::open(dir.path()).unwrap(), &records, "reader");
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &records, "store");
    assert!(second.exists(), "the open renamed it back");
    let seq = store.writer().append(RecordType::Put, b"next").unwrap();
    assert_eq!(seq, records.len() as u64 + 1);
}

#[test]
fn a_spare_with_a_header_that_does_not_continue_the_log_is_corruption() {
    let (dir, _) = two_segment_log(1);
    let second = segment_paths(dir.path()).pop().unwrap();
    std::fs::copy(&second, spare_path(dir.path(), 5)).unwrap();
    assert!(
        WalStore::open(small_config(dir.path()))
            .unwrap_err()
            .is_corruption()
    );
    assert!(WalReader::open(dir.path()).unwrap_err().is_corruption());
}

#[test]
fn a_spare_whose_header_flush_was_torn_is_unused() {
    let (dir, records) = two_segment_log(1);
    let spare = spare_path(dir.path(), 3);
    let mut bytes = vec![0u8; 16 << 10];
    bytes[..64].fill(0xA7);
    std::fs::write(&spare, &bytes).unwrap();
    assert_log(&WalReader::open(dir.path()).unwrap(), &records, "reader");
    let store = WalStore::open(small_config(dir.path())).unwrap();
    assert_log(&store.reader(), &records, "store");
    assert!(store.torn_tail().is_none());
    drop(store);
    assert!(spares(dir.path()).is_empty());
}

#[test]
fn a_spare_without_a_header_that_holds_data_is_corruption() {
    let (dir, _) = two_segment_log(2);
    let second = segment_paths(dir.path()).pop().unwrap();
    let spare = spare_path(dir.path(), 3);
    std::fs::copy(&second, &spare).unwrap();
    patch_file(&spare, |b| b[..64].fill(0));
    assert!(
        WalStore::open(small_config(dir.path()))
            .unwrap_err()
            .is_corruption()
    );
}

/// The append that crosses into a new segment makes the calls any append makes (one flush) plus
/// the new segment's header flush and the spare's rename: no file creation, allocation, file
/// sync or directory sync.
#[cfg(feature = "fault-injection")]
#[test]
fn a_rotating_append_flushes_twice_and_creates_nothing() {
    use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};
    use std::sync::{Arc, Mutex};

    let dir = tempdir();
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(small_config(dir.path()).fault_plan(plan.clone())).unwrap();
    let w = store.writer();
    while segment_paths(dir.path()).len() < 2 {
        w.append(RecordType::Put, &[3u8; 3000]).unwrap();
    }
    let mut rotations = 0;
    for _ in 0..3 {
        let before = segment_paths(dir.path()).len();
        // Fill the segment up to the append that rotates.
        let mut last_calls = Vec::new();
        while segment_paths(dir.path()).len() == before {
            store.settle_background();
            let calls = Arc::new(Mutex::new(Vec::new()));
            let seen = calls.clone();
            let me = std::thread::current().id();
            plan.observe(Box::new(move |call: &SysCall<'_>| {
                if !call.done && std::thread::current().id() == me {
                    seen.lock().unwrap().push(call.op);
                }
            }));
            w.append(RecordType::Put, &[3u8; 3000]).unwrap();
            last_calls = calls.lock().unwrap().clone();
        }
        assert_eq!(
            last_calls,
            [SysOp::Flush, SysOp::Rename, SysOp::Flush],
            "rotation {rotations}"
        );
        rotations += 1;
    }
    assert_eq!(rotations, 3);
}
