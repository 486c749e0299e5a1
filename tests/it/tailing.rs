//! Live tailing: `WalReader::wait_for` in the writer's process (woken by the writer) and from a
//! directory (polling), timeouts, Manual mode, and a store closed under a waiting reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, SyncMode, WalReader, WalStore};

use crate::common::{small_config, tempdir};

const LONG: Duration = Duration::from_secs(30);

/// Follows `total` records with `wait_for`, checking each arrives in order, byte-exact.
fn follow(mut reader: WalReader, total: u64) -> Result<u64, String> {
    let mut next = 1;
    while next <= total {
        if !reader.wait_for(next, LONG).map_err(|e| e.to_string())? {
            return Err(format!("timed out waiting for {next}"));
        }
        let last = reader.last_seq().ok_or("reached, yet empty")?;
        for rec in reader.iter_from(next) {
            let rec = rec.map_err(|e| e.to_string())?;
            if rec.seq() != next || rec.payload() != payload(next).as_slice() {
                return Err(format!("expected record {next}, got {}", rec.seq()));
            }
            next += 1;
        }
        if next != last + 1 {
            return Err(format!(
                "iteration stopped at {next}, snapshot ends at {last}"
            ));
        }
    }
    Ok(next - 1)
}

fn payload(seq: u64) -> Vec<u8> {
    format!("record {seq}").into_bytes()
}

fn append_all(store: &WalStore, total: u64) {
    let w = store.writer();
    for seq in 1..=total {
        assert_eq!(w.append(RecordType::Put, &payload(seq)).unwrap(), seq);
    }
}

#[test]
fn a_store_reader_follows_appends_across_rotations() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let follower = {
        let reader = store.reader();
        thread::spawn(move || follow(reader, 600))
    };
    append_all(&store, 600);
    assert_eq!(follower.join().unwrap(), Ok(600));
    assert!(
        store.stats().unwrap().rotations > 0,
        "the test must cross segments"
    );
}

#[test]
fn a_directory_reader_follows_appends_by_polling() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    let follower = {
        let reader = WalReader::open(dir.path()).unwrap();
        thread::spawn(move || follow(reader, 300))
    };
    append_all(&store, 300);
    assert_eq!(follower.join().unwrap(), Ok(300));
}

#[test]
fn wait_for_returns_false_at_the_timeout_and_true_at_once_for_present_records() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    append_all(&store, 3);
    let mut reader = store.reader();
    assert!(reader.wait_for(3, Duration::ZERO).unwrap());
    let start = Instant::now();
    assert!(!reader.wait_for(4, Duration::from_millis(30)).unwrap());
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(reader.last_seq(), Some(3));
}

#[test]
fn wait_for_does_not_show_unsynced_records_in_manual_mode() {
    let dir = tempdir();
    let config = small_config(dir.path()).sync_mode(SyncMode::Manual);
    let store = WalStore::open(config).unwrap();
    let w = store.writer();
    w.append(RecordType::Put, b"not yet durable").unwrap();
    let mut reader = store.reader();
    assert!(!reader.wait_for(1, Duration::from_millis(20)).unwrap());
    let waiter = thread::spawn(move || {
        let reached = reader.wait_for(1, LONG);
        (
            reached.map_err(|e| e.to_string()),
            reader.get(1).ok().flatten().map(|r| r.to_record()),
        )
    });
    thread::sleep(Duration::from_millis(20));
    w.sync().unwrap();
    let (reached, record) = waiter.join().unwrap();
    assert_eq!(reached, Ok(true));
    assert_eq!(record.map(|r| r.payload), Some(b"not yet durable".to_vec()));
}

#[test]
fn a_waiting_reader_does_not_keep_a_closed_store_locked() {
    let dir = tempdir();
    let store = WalStore::open(small_config(dir.path())).unwrap();
    append_all(&store, 1);
    let reader = store.reader();
    let waiting = Arc::new(AtomicBool::new(true));
    let follower = {
        let waiting = waiting.clone();
        thread::spawn(move || {
            let got = follow(reader, 2);
            waiting.store(false, Ordering::SeqCst);
            got
        })
    };
    drop(store);
    // The waiter holds the store for at most one wait slice; then the directory can be opened
    // again, and the waiter (now polling the directory) sees the next append.
    let deadline = Instant::now() + LONG;
    let reopened = loop {
        match WalStore::open(small_config(dir.path())) {
            Ok(store) => break store,
            Err(e) if e.is_locked() && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reopen: {e}"),
        }
    };
    assert!(waiting.load(Ordering::SeqCst), "the follower ended early");
    assert_eq!(
        reopened
            .writer()
            .append(RecordType::Put, &payload(2))
            .unwrap(),
        2
    );
    assert_eq!(follower.join().unwrap(), Ok(2));
}
