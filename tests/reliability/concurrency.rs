//! Reliability harness 9, `concurrency`: in one process, 8 threads append (singles and batches,
//! small segments so rotation never stops), a thread truncates behind them, and 4 readers
//! (store readers and `WalReader::open` readers, refreshed or made anew) check every snapshot
//! they take: no torn record, gap-free, each writer's records in order, batches whole, `get` and
//! `iter_from` agreeing with the iteration, and every sequence number holding the same record for
//! every reader and for the writer it was acknowledged to. At the end the log is recovered and
//! checked against everything acknowledged (I1-I5). A `SIGBUS` or a panic kills the process,
//! which fails the run.
//!
//! Run: `cargo test --all-features --test concurrency`. Replay the decisions with
//! `SOFTADASTRA_WAL_SEED=<seed>` (the interleaving is the scheduler's). Duration: 20 s times the
//! soak multiplier. cases = snapshots fully verified + `get` calls checked.

mod support;

#[path = "kill9/batch.rs"]
mod batch;
#[path = "kill9/check.rs"]
mod check;
#[path = "concurrency/snapshot.rs"]
mod snapshot;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use softadastra_wal::{WalConfig, WalReader, WalStore};

use snapshot::{Bounds, Fingerprint};
use support::{Expected, Ident, Report, Rng};

const WRITERS: u32 = 8;
const READERS: u64 = 4;
/// Seconds of concurrent traffic at volume 1.
const BASE_SECONDS: u64 = 20;

fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(16 << 10)
        .index_interval(256)
}

/// Everything the threads share.
struct Shared {
    store: WalStore,
    dir: PathBuf,
    stop: AtomicBool,
    seed: u64,
    /// Sequence number -> identity, for every acknowledged append.
    acked: Mutex<HashMap<u64, Ident>>,
    /// The highest acknowledged sequence number (everything up to it is durable).
    acked_high: AtomicU64,
    /// The largest `truncate_before` target requested (set before the call) and acknowledged.
    truncate_requested: AtomicU64,
    truncated: AtomicU64,
    /// What readers have seen at each sequence number.
    seen: Mutex<HashMap<u64, Fingerprint>>,
    report: Mutex<Report>,
    start_ms: u64,
    max_payload: usize,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    appended: AtomicU64,
    truncations: AtomicU64,
    snapshots: AtomicU64,
    gets: AtomicU64,
}

impl Shared {
    fn violation(&self, who: &str, detail: impl std::fmt::Display) {
        if let Ok(mut report) = self.report.lock() {
            report.violation(format!("seed {} {who}: {detail}", self.seed));
        }
    }

    fn cases(&self, n: u64) {
        if let Ok(mut report) = self.report.lock() {
            report.cases(n);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn main() -> ExitCode {
    let seed = support::seed();
    println!("concurrency: seed={seed} (replay with SOFTADASTRA_WAL_SEED={seed})");
    let started = Instant::now();
    let root = check::scratch_dir("softadastra-concurrency-");
    let dir = root.path().join("log");
    let mut report = Report::new("concurrency");
    let store = match WalStore::open(config(&dir)) {
        Ok(s) => s,
        Err(e) => {
            report.violation(format!("seed {seed}: opening a new log: {e}"));
            return report.finish();
        }
    };
    let max_payload = match store.config().max_payload() {
        Ok(m) => m as usize,
        Err(e) => {
            report.violation(format!("seed {seed}: max_payload: {e}"));
            return report.finish();
        }
    };
    let shared = Shared {
        store,
        dir: dir.clone(),
        stop: AtomicBool::new(false),
        seed,
        acked: Mutex::new(HashMap::new()),
        acked_high: AtomicU64::new(0),
        truncate_requested: AtomicU64::new(0),
        truncated: AtomicU64::new(0),
        seen: Mutex::new(HashMap::new()),
        report: Mutex::new(report),
        start_ms: batch::now_ms(),
        max_payload,
        stats: Stats::default(),
    };
    run_threads(&shared, Duration::from_secs(support::volume(BASE_SECONDS)));
    print_stats(&shared, started.elapsed());
    let expected = expected_of(&shared);
    let Shared {
        store,
        report,
        start_ms,
        ..
    } = shared;
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    // Every handle is gone with the store: recover as after a restart.
    drop(store);
    let window = batch::clock_window(start_ms);
    match check::recover_and_check(&dir, config, &expected, &window) {
        Ok(_) => report.case(),
        Err(bad) => {
            for b in bad {
                report.violation(format!("seed {seed} final recovery: {b}"));
            }
        }
    }
    report.finish()
}

/// Runs the writers, the truncator and the readers for `duration`.
fn run_threads(shared: &Shared, duration: Duration) {
    std::thread::scope(|s| {
        for t in 0..WRITERS {
            s.spawn(move || write_loop(shared, t));
        }
        s.spawn(|| truncate_loop(shared));
        for r in 0..READERS {
            s.spawn(move || read_loop(shared, r));
        }
        std::thread::sleep(duration);
        shared.stop.store(true, Ordering::Relaxed);
    });
}

/// What the final recovery must hold: every acknowledged record not truncated away.
fn expected_of(shared: &Shared) -> Expected {
    let acked = shared.acked.lock().map(|a| a.clone()).unwrap_or_default();
    Expected {
        acked,
        truncated_before: shared.truncated.load(Ordering::SeqCst),
        ..Expected::default()
    }
}

/// One appending thread: writer `t` for single appends, `t | BATCH_BIT` for batches.
fn write_loop(shared: &Shared, t: u32) {
    let writer = shared.store.writer();
    let mut rng = Rng::new(shared.seed ^ (u64::from(t) + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let (mut counter, mut batches, mut last_seq) = (0u64, 0u64, 0u64);
    let who_am_i = format!("writer {t}");
    while !shared.stopped() {
        let (idents, result) = if rng.one_in(4) {
            batches += 1;
            let idents = batch::idents(t, batches, rng.range(2, 5) as usize);
            let max = (shared.max_payload / idents.len()).saturating_sub(48);
            let result = support::append_idents(&writer, &idents, max);
            (idents, result)
        } else {
            let idents = vec![Ident::new(t, counter)];
            counter += 1;
            let result = support::append_idents(&writer, &idents, shared.max_payload);
            (idents, result)
        };
        let first = match result {
            Ok(first) => first,
            Err(e) => return shared.violation(&who_am_i, format!("append failed: {e}")),
        };
        if first <= last_seq {
            shared.violation(
                &who_am_i,
                format!("got seq {first} after seq {last_seq}: not increasing"),
            );
        }
        last_seq = first + idents.len() as u64 - 1;
        acknowledge(shared, first, &idents);
    }
}

/// Records an acknowledged append (or batch) starting at `first`.
fn acknowledge(shared: &Shared, first: u64, idents: &[Ident]) {
    if let Ok(mut acked) = shared.acked.lock() {
        for (seq, who) in (first..).zip(idents) {
            acked.insert(seq, *who);
        }
    }
    let last = first + idents.len() as u64 - 1;
    shared.acked_high.fetch_max(last, Ordering::SeqCst);
    shared
        .stats
        .appended
        .fetch_add(idents.len() as u64, Ordering::Relaxed);
}

/// Now and then removes the segments well behind the end of the log.
fn truncate_loop(shared: &Shared) {
    let mut rng = Rng::new(shared.seed ^ 0x7275_6E63);
    while !shared.stopped() {
        std::thread::sleep(Duration::from_millis(rng.range(2, 30)));
        let Some(last) = shared.store.last_seq() else {
            continue;
        };
        let target = last.saturating_sub(rng.range(200, 2_000));
        if target <= 1 {
            continue;
        }
        shared
            .truncate_requested
            .fetch_max(target, Ordering::SeqCst);
        match shared.store.truncate_before(target) {
            Ok(_) => {
                shared.truncated.fetch_max(target, Ordering::SeqCst);
                shared.stats.truncations.fetch_add(1, Ordering::Relaxed);
                forget_before(shared, target);
            }
            Err(e) => {
                return shared.violation("truncator", format!("truncate_before({target}): {e}"));
            }
        }
    }
}

/// Drops the oracle's entries for records truncated away, so that memory stays bounded however
/// long the run. (A reader still holding an older snapshot re-adds what it sees.)
fn forget_before(shared: &Shared, seq: u64) {
    if let Ok(mut seen) = shared.seen.lock() {
        seen.retain(|&s, _| s >= seq);
    }
    if let Ok(mut acked) = shared.acked.lock() {
        acked.retain(|&s, _| s >= seq);
    }
}

/// How a reader thread gets its snapshots.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// One `store.reader()`, refreshed.
    Store,
    /// One `WalReader::open(dir)`, refreshed (rescans the directory).
    Dir,
    /// A new reader of either kind for every snapshot.
    Fresh,
}

/// One reader thread: takes snapshots until stopped and checks each.
fn read_loop(shared: &Shared, r: u64) {
    let kind = match r {
        0 | 1 => Kind::Store,
        2 => Kind::Dir,
        _ => Kind::Fresh,
    };
    let who = format!("reader {r} ({kind:?})");
    let mut rng = Rng::new(shared.seed ^ (r + 100).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut reader = match kind {
        Kind::Dir => match open_dir(shared) {
            Ok(r) => r,
            Err(e) => return shared.violation(&who, e),
        },
        Kind::Store | Kind::Fresh => shared.store.reader(),
    };
    let mut previous = None;
    while !shared.stopped() {
        let acked_high = shared.acked_high.load(Ordering::SeqCst);
        if let Err(e) = next_snapshot(shared, kind, &mut reader, &mut previous, &mut rng) {
            shared.violation(&who, e);
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let bounds = Bounds {
            acked_high,
            truncate_requested: shared.truncate_requested.load(Ordering::SeqCst),
            previous,
            window: batch::clock_window(shared.start_ms),
        };
        let mut verdict = snapshot::check(&reader, &bounds, &mut rng);
        agree(shared, &mut verdict);
        previous = reader.first_seq().zip(reader.last_seq());
        if verdict.problems.is_empty() {
            shared.cases(1 + verdict.gets);
            shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            shared.stats.gets.fetch_add(verdict.gets, Ordering::Relaxed);
        }
        for p in verdict.problems {
            shared.violation(&who, p);
        }
    }
}

/// Moves `reader` to a new snapshot: `refresh` it, or (for [`Kind::Fresh`]) make a new reader,
/// which has no previous range to compare with.
fn next_snapshot(
    shared: &Shared,
    kind: Kind,
    reader: &mut WalReader,
    previous: &mut Option<(u64, u64)>,
    rng: &mut Rng,
) -> Result<(), String> {
    match kind {
        Kind::Store | Kind::Dir => reader.refresh().map_err(|e| format!("refresh: {e}")),
        Kind::Fresh => {
            *previous = None;
            *reader = if rng.one_in(2) {
                shared.store.reader()
            } else {
                open_dir(shared)?
            };
            Ok(())
        }
    }
}

fn open_dir(shared: &Shared) -> Result<WalReader, String> {
    WalReader::open(&shared.dir).map_err(|e| format!("WalReader::open: {e}"))
}

/// The cross-reader check of a verified snapshot: every sequence number holds the same record for
/// everyone, and the identity its writer was told.
fn agree(shared: &Shared, verdict: &mut snapshot::Verdict) {
    if !verdict.problems.is_empty() {
        return;
    }
    // Lock order: seen, then acked (writers take only acked).
    let (Ok(mut seen), Ok(acked)) = (shared.seen.lock(), shared.acked.lock()) else {
        verdict
            .problems
            .push("a thread panicked holding the oracle".to_string());
        return;
    };
    snapshot::check_agreement(&verdict.records, &mut seen, &acked, &mut verdict.problems);
}

fn print_stats(shared: &Shared, elapsed: Duration) {
    let s = &shared.stats;
    println!(
        "concurrency: appended={} truncations={} snapshots verified={} gets={} {:.1}s",
        s.appended.load(Ordering::Relaxed),
        s.truncations.load(Ordering::Relaxed),
        s.snapshots.load(Ordering::Relaxed),
        s.gets.load(Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
}
