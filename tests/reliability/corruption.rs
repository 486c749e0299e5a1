//! Reliability harness 4, `corruption`: damage injected into a closed reference log, in its
//! sealed segments and in its active one, and every open and read of the damaged copy judged.
//!
//! The reference log (16 KiB segments, 256-byte index interval, single appends of mixed sizes
//! and batches, `SyncMode::Always`, so every record is acknowledged) is built once and kept in
//! memory. Each case writes a damaged copy of it to a fresh directory (under /dev/shm when there
//! is one) and then:
//!
//! * opens it with `WalReader::open` (read-only, no repair, first) and with `WalStore::open`; an
//!   open either fails with an error that reports the damage (`Error::Corruption`, or
//!   `Error::UnsupportedVersion` naming the version when a header declares another format
//!   version), or succeeds; the two must agree, since they run the same checks;
//! * after a successful open, iterates over every record and `get`s a sample (every damaged
//!   record among it): every record returned must be byte-exact the reference record with its
//!   sequence number (I3), and every read that meets damage must be a typed error (I5); a
//!   damaged record inside the log's range must be an error when read (sealed segments are only
//!   checked when read);
//! * requires the log to hold every acknowledged record unless the cut is reported: a log that
//!   ends early must have `WalStore::torn_tail()` naming the newest segment and the sequence
//!   number the log continues with, and the cut may start no earlier than the write (append or
//!   batch) holding the first damaged record. Deleted front segments (what `truncate_before`
//!   does) make a log that starts later, the rest exact. Deleting the newest segment, putting
//!   back an older copy of it, or zeroing its data from a record's first byte to the end leaves
//!   files byte for byte like a log whose last appends never happened: undetectable by design
//!   (docs/guide.md and FORMAT.md, "Recovery"); those cases must give exactly the shorter prefix
//!   and are counted apart;
//! * after a reported cut, opens the store a second time: the same log, nothing left to cut (I4);
//! * classifies what happened: refused at open, error on read, reported tail cut, or damage
//!   confined to caches the format rebuilds (index, footer) or to bytes it never reads
//!   (padding, unused index slots, free space) with the whole log read back exact. Damage to a
//!   segment header or a record that none of these explains is a violation.
//!
//! Run: `cargo test --all-features --test corruption`. Replay: `SOFTADASTRA_WAL_SEED=<seed>`
//! (only the random kinds use it). Volume: `volume(50_000)` cases, the exhaustive kinds first,
//! then random ones up to the volume.

mod support;

#[path = "corruption/check.rs"]
mod check;
#[path = "corruption/kinds.rs"]
mod kinds;
#[path = "corruption/reference.rs"]
mod reference;

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use check::Outcome;
use kinds::{Case, Kind};
use reference::Reference;
use support::{Report, Rng};

const HARNESS: &str = "corruption";
/// Cases at volume 1 (exhaustive and random together).
const BASE_CASES: u64 = 50_000;
/// Random cases at least, even when the exhaustive kinds alone reach the volume.
const MIN_RANDOM: u64 = 3_000;
/// Worker threads: the cases are independent, and CI has 2 cores.
const WORKERS: usize = 2;
/// The plans of the reference log and of the foreign log whose segments are spliced in: fixed,
/// so the exhaustive kinds cover the same structures on every run.
const REFERENCE_PLAN: u64 = 0xC0_22_0F_7E;
const FOREIGN_PLAN: u64 = 0xF0_2E_16_4E;

fn main() -> ExitCode {
    let seed = support::seed();
    println!(
        "{HARNESS}: seed={seed} (replay with SOFTADASTRA_WAL_SEED={seed}; only the random kinds use it)"
    );
    let started = Instant::now();
    let mut report = Report::new(HARNESS);
    let scratch = scratch_dir();
    let built =
        reference::build(&scratch.path().join("reference"), 1, REFERENCE_PLAN).and_then(|r| {
            reference::build(&scratch.path().join("foreign"), 2, FOREIGN_PLAN).map(|f| (r, f))
        });
    let (reference, foreign) = match built {
        Ok(both) => both,
        Err(e) => {
            report.violation(format!("building the reference log failed: {e}"));
            return report.finish();
        }
    };
    describe(&reference);
    let tally = run_all(&reference, &foreign, seed, scratch.path());
    tally.print_summary();
    tally.into_report(&mut report);
    println!("{HARNESS}: elapsed {:.1}s", started.elapsed().as_secs_f64());
    report.finish()
}

/// Where the copies go: /dev/shm when it exists (copies are then memory copies), else the
/// default temporary directory.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new()
        .prefix("softadastra-corruption-")
        .tempdir_in(shm);
    match builder {
        Ok(dir) if shm.is_dir() => dir,
        _ => tempfile::tempdir().expect("create a temporary directory"),
    }
}

fn describe(r: &Reference) {
    let sealed = r.segments.iter().filter(|s| s.sealed).count();
    let index: u64 = r.segments.iter().map(|s| s.index_count).sum();
    // A record is in a batch when its write started before it or goes on after it.
    let batched = (1..=r.len())
        .filter(|&q| {
            r.write_start(q) != q || (q < r.len() && r.write_start(q + 1) == r.write_start(q))
        })
        .count();
    println!(
        "{HARNESS}: reference log: {} records ({batched} in batches), {sealed} sealed segments with {index} index entries, active segment with {} records",
        r.len(),
        r.active().extents.len()
    );
}

/// Generates every case (exhaustive kinds, then random ones up to the volume) and runs them on
/// [`WORKERS`] threads, each with its own scratch directory.
fn run_all(reference: &Reference, foreign: &Reference, seed: u64, scratch: &Path) -> Tally {
    let (tx, rx) = mpsc::sync_channel::<(u64, Case)>(WORKERS * 8);
    let rx = Mutex::new(rx);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (rx, dir) = (&rx, scratch.join(format!("case-{w}")));
                scope.spawn(move || worker(reference, &dir, rx))
            })
            .collect();
        let generated = Cell::new(0u64);
        let mut send = |case: Case| {
            // A closed channel means every worker is gone; their join below reports why.
            let _ = tx.send((generated.get(), case));
            generated.set(generated.get() + 1);
        };
        kinds::exhaustive(reference, foreign, &mut send);
        let exhaustive = generated.get();
        let random = support::volume(BASE_CASES)
            .saturating_sub(exhaustive)
            .max(support::volume(MIN_RANDOM));
        kinds::random(reference, &mut Rng::new(seed), random, &mut send);
        drop(tx);
        let mut total = Tally::new(exhaustive);
        for handle in workers {
            match handle.join() {
                Ok(t) => total.merge(t),
                Err(_) => total.violation("a worker thread panicked outside a case".to_string()),
            }
        }
        total
    })
}

/// Runs cases from `rx` until it is closed.
fn worker(reference: &Reference, dir: &Path, rx: &Mutex<Receiver<(u64, Case)>>) -> Tally {
    let mut tally = Tally::new(0);
    loop {
        // The guard is dropped at the end of this statement: the case runs unlocked.
        let next = rx.lock().ok().and_then(|rx| rx.recv().ok());
        let Some((no, case)) = next else {
            return tally;
        };
        // A panic in the library is a violation (I5) of this case, not the end of the run.
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
            check::run_case(reference, dir, &case, no)
        }));
        let (outcome, violations) = run.unwrap_or_else(|_| {
            (
                Outcome::Violation,
                vec!["panicked (see the message above)".to_string()],
            )
        });
        tally.record(&case, outcome, violations);
    }
}

/// Cases per kind and outcome, and the violations found.
struct Tally {
    exhaustive: u64,
    /// `[kind][outcome]` counts.
    counts: Vec<[u64; Outcome::ALL.len()]>,
    violations: u64,
    /// The first [`KEPT_VIOLATIONS`] violations, described.
    kept: Vec<String>,
}

/// Violation details kept per thread (every violation is counted).
const KEPT_VIOLATIONS: usize = 200;

impl Tally {
    fn new(exhaustive: u64) -> Tally {
        Tally {
            exhaustive,
            counts: vec![[0; Outcome::ALL.len()]; Kind::ALL.len()],
            violations: 0,
            kept: Vec::new(),
        }
    }

    fn record(&mut self, case: &Case, outcome: Outcome, violations: Vec<String>) {
        self.counts[case.kind.index()][outcome.index()] += 1;
        for v in violations {
            self.violation(format!("[{}] {}: {v}", case.kind.name(), case.label));
        }
    }

    fn violation(&mut self, detail: String) {
        self.violations += 1;
        if self.kept.len() < KEPT_VIOLATIONS {
            self.kept.push(detail);
        }
    }

    fn merge(&mut self, other: Tally) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
        self.violations += other.violations;
        self.kept.extend(other.kept);
    }

    fn cases(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    fn count(&self, outcome: Outcome) -> u64 {
        self.counts.iter().map(|row| row[outcome.index()]).sum()
    }

    /// Hands every case and violation to the report (which prints the first ones).
    fn into_report(self, report: &mut Report) {
        report.cases(self.cases());
        let unkept = self.violations - self.kept.len() as u64;
        for v in self.kept {
            report.violation(v);
        }
        for _ in 0..unkept {
            report.violation("(details not kept)");
        }
    }

    fn print_summary(&self) {
        println!(
            "{HARNESS}: {} exhaustive cases, {} random cases",
            self.exhaustive,
            self.cases() - self.exhaustive
        );
        let mut header = format!("{HARNESS}: {:<20} {:>7}", "kind", "cases");
        for o in Outcome::ALL {
            header.push_str(&format!(" {:>13}", o.name()));
        }
        println!("{header}");
        for kind in Kind::ALL {
            let row = &self.counts[kind.index()];
            let mut line = format!(
                "{HARNESS}: {:<20} {:>7}",
                kind.name(),
                row.iter().sum::<u64>()
            );
            for n in row {
                line.push_str(&format!(" {n:>13}"));
            }
            println!("{line}");
        }
        let damaging = self.cases()
            - self.count(Outcome::Rebuilt)
            - self.count(Outcome::Ignored)
            - self.count(Outcome::FrontDeleted)
            - self.count(Outcome::Undetectable);
        let detected = self.count(Outcome::OpenRefused)
            + self.count(Outcome::ReadError)
            + self.count(Outcome::TailCut)
            + self.count(Outcome::TailGarbage);
        println!(
            "{HARNESS}: {} cases were reported tail cuts of the active segment; {} more cut only non-zero bytes after the last record (reported, no record lost)",
            self.count(Outcome::TailCut),
            self.count(Outcome::TailGarbage)
        );
        println!(
            "{HARNESS}: {} cases left files byte for byte like a log whose last appends never happened (newest segment deleted, an older copy of it put back, or its data zeroed from a record's first byte): undetectable by design (docs/guide.md, \"Recovery\"); each gave exactly the shorter prefix",
            self.count(Outcome::Undetectable)
        );
        println!(
            "{HARNESS}: detected {detected} of {damaging} cases that damaged records, headers or the tail ({:.2}%); {} only damaged caches (rebuilt), {} only bytes the format never reads",
            100.0 * detected as f64 / damaging.max(1) as f64,
            self.count(Outcome::Rebuilt),
            self.count(Outcome::Ignored)
        );
    }
}
