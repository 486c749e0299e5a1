//! Group commit: appenders that arrive while a flush is in flight share the next flush, and each
//! still returns only once its own record is durable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};
use softadastra_wal::{RecordType, WalStore};

use crate::common::{small_config, tempdir};

/// One appender's flush is held for a while; seven appenders arrive meanwhile. They must be
/// covered by one more flush (not seven), and none may return before that flush ended.
#[test]
fn appenders_arriving_during_a_flush_share_the_next_one() {
    let dir = tempdir();
    let plan = Arc::new(FaultPlan::new());
    let store = WalStore::open(small_config(dir.path()).fault_plan(plan.clone())).unwrap();
    let before = plan.calls(SysOp::Flush);

    let (started_tx, started_rx) = mpsc::channel();
    let first = Arc::new(AtomicBool::new(true));
    let finished_flushes = Arc::new(AtomicU64::new(0));
    let (gate, done) = (first.clone(), finished_flushes.clone());
    let started_tx = std::sync::Mutex::new(started_tx);
    plan.observe(Box::new(move |call: &SysCall<'_>| {
        if call.op != SysOp::Flush {
            return;
        }
        if call.done {
            done.fetch_add(1, Ordering::SeqCst);
        } else if gate.swap(false, Ordering::SeqCst) {
            let _ = started_tx.lock().unwrap().send(());
            std::thread::sleep(Duration::from_millis(500));
        }
    }));

    std::thread::scope(|s| {
        let leader = store.writer();
        s.spawn(move || leader.append(RecordType::Put, b"leader").unwrap());
        started_rx.recv().unwrap();
        let followers: Vec<_> = (0..7)
            .map(|i| {
                let w = store.writer();
                let done = finished_flushes.clone();
                s.spawn(move || {
                    let seq = w.append(RecordType::Put, format!("follower {i}").as_bytes());
                    // Acknowledged only after a flush that started after this record was copied:
                    // the leader's (held) flush does not count.
                    assert!(
                        done.load(Ordering::SeqCst) >= 2,
                        "acknowledged before its flush"
                    );
                    seq.unwrap()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = followers.into_iter().map(|f| f.join().unwrap()).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (2..=8).collect::<Vec<u64>>());
    });

    let flushes = plan.calls(SysOp::Flush) - before;
    assert!(
        flushes <= 3,
        "8 appends, 7 of them while a flush was in flight, took {flushes} flushes"
    );
    let reader = store.reader();
    assert_eq!(reader.last_seq(), Some(8));
    assert_eq!(reader.get(1).unwrap().unwrap().payload(), b"leader");
}
