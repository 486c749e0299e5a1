//! The `log` feature: recovery, rotation and truncation events reach the application's logger.

use std::sync::{Mutex, OnceLock};

use log::{Level, Log, Metadata, Record};
use softadastra_wal::{RecordType, WalStore};

use crate::common::{garbage_after_last_record, small_config, tempdir};

/// Keeps every event of the crate; tests pick theirs by their directory's path.
struct Capture(Mutex<Vec<(Level, String)>>);

impl Log for Capture {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "softadastra_wal"
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata())
            && let Ok(mut events) = self.0.lock()
        {
            events.push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    })
}

/// The events so far that mention `dir`.
fn events_about(dir: &std::path::Path) -> Vec<(Level, String)> {
    let needle = dir.display().to_string();
    capture()
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, msg)| msg.contains(&needle))
        .cloned()
        .collect()
}

#[test]
fn open_rotation_truncation_and_a_torn_tail_are_logged() {
    capture();
    let dir = tempdir();
    {
        let store = WalStore::open(small_config(dir.path())).unwrap();
        let w = store.writer();
        for _ in 0..200 {
            w.append(RecordType::Put, &[1; 200]).unwrap();
        }
        store.truncate_before(100).unwrap();
    }
    let events = events_about(dir.path());
    let count = |level: Level, what: &str| {
        events
            .iter()
            .filter(|(l, m)| *l == level && m.contains(what))
            .count()
    };
    assert_eq!(count(Level::Info, "opened"), 1, "{events:?}");
    assert!(count(Level::Info, "rotated to segment") >= 3, "{events:?}");
    assert_eq!(count(Level::Info, "truncate_before(100) deleted"), 1);

    let end = garbage_after_last_record(dir.path(), 16, 0x5A);
    let _store = WalStore::open(small_config(dir.path())).unwrap();
    let events = events_about(dir.path());
    let torn: Vec<_> = events
        .iter()
        .filter(|(l, m)| *l == Level::Warn && m.contains("torn tail"))
        .collect();
    assert_eq!(torn.len(), 1, "{events:?}");
    assert!(torn[0].1.contains(&format!("at offset {end}")), "{torn:?}");
}
