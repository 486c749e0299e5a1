//! Reliability harness 2, `power-loss`: crash images at the durability calls of a real workload.
//!
//! A single writer appends records of mixed sizes (single appends and atomic batches) to a log of
//! small segments, so that rotations (segment creation and sealing) happen often, truncates old
//! segments now and then, and reopens the log cleanly now and then; in `SyncMode::Always` and in
//! `SyncMode::Manual` with explicit `sync()` calls. The fault seam shows every durability call
//! to a [`crash_image::DurableState`]; at sampled crash points (just before a call is made, and
//! between operations) it produces crash images: the durable bytes plus a random fate for every
//! page not yet durable and every directory operation not yet synced. Each image is recovered in
//! a fresh directory and checked against what had been acknowledged before the crash point
//! (I1-I5). Some recoveries are themselves observed, and interrupted by a second crash at each of
//! their durability calls; that image's recovery must give the same log (I4).
//!
//! Run: `cargo test --all-features --test power_loss`; `SOFTADASTRA_WAL_SEED=<seed>` replays a
//! run, `SOFTADASTRA_WAL_SOAK=<n>` makes n times as many images, `SOFTADASTRA_WAL_TRACE=<run>`
//! prints the operations of one run. A violating image is kept (recovered) in the scratch
//! directory named in the message.

#[path = "support/crash_image.rs"]
mod crash_image;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crash_image::{Captured, CrashPoints, DurableState, Sampling};
use softadastra_wal::format::{Layout, record_size};
use softadastra_wal::{SyncMode, WalConfig, WalRecord, WalStore};
use support::{BATCH_WRITER_BIT, Expected, Ident, Report, Rng};

/// Crash images per CI run (times the soak factor).
const BASE_IMAGES: u64 = 20_000;
/// Enough violations to stop early (they are all counted, the first few printed).
const MAX_VIOLATIONS: u64 = 1_000;
/// One recovery in this many is observed and interrupted by a second crash.
const NESTED_ONE_IN: u64 = 4;

fn main() -> ExitCode {
    let seed = support::seed();
    println!("power-loss: seed {seed} (SOFTADASTRA_WAL_SEED={seed} replays this run)");
    let target = support::volume(BASE_IMAGES);
    let root = scratch_root();
    let mut report = Report::new("power-loss");
    let started = Instant::now();
    let mut kept = false;
    let (mut run, mut unsynced, mut second) = (0, 0, 0);
    // Stop early once failures are plentiful: a run that fails at once makes no images.
    while report.count() < target && report.violation_count() < MAX_VIOLATIONS {
        let mut r = Run::new(seed, run, &root);
        r.execute(&mut report);
        kept |= r.kept;
        unsynced += r.unsynced_images;
        second += r.second_images;
        run += 1;
    }
    if !kept {
        let _ = std::fs::remove_dir_all(&root);
    }
    eprintln!(
        "power-loss: {} images from {run} runs ({unsynced} taken with something not durable, \
         {second} in the middle of a recovery) in {:.1}s (seed {seed})",
        report.count(),
        started.elapsed().as_secs_f64()
    );
    report.finish()
}

/// A scratch directory for this process: on /dev/shm when there is one (images are written and
/// read thousands of times), else in the temp dir.
fn scratch_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let root = base.join(format!("sawal-power-loss-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("create the scratch directory");
    root
}

/// The shape of one run's log.
#[derive(Clone, Copy, Debug)]
struct Shape {
    segment_size: u64,
    index_interval: u64,
    mode: SyncMode,
}

impl Shape {
    fn random(rng: &mut Rng) -> Shape {
        Shape {
            segment_size: rng.range(4, 16) * 4096,
            index_interval: [256, 1024, 4096][rng.below(3) as usize],
            mode: if rng.one_in(2) {
                SyncMode::Always
            } else {
                SyncMode::Manual
            },
        }
    }

    fn config(self, dir: &Path) -> WalConfig {
        WalConfig::new(dir)
            .segment_size(self.segment_size)
            .index_interval(self.index_interval)
            .sync_mode(self.mode)
    }

    fn layout(self) -> Layout {
        Layout::new(self.segment_size, self.index_interval).expect("a valid layout")
    }
}

/// One operation of the workload.
#[derive(Clone, Copy, Debug)]
enum Op {
    Append,
    Batch(usize),
    Sync,
    Truncate,
    Reopen,
}

fn random_op(rng: &mut Rng) -> Op {
    match rng.below(100) {
        0..=54 => Op::Append,
        55..=69 => Op::Batch(rng.range(2, 5) as usize),
        70..=86 => Op::Sync,
        87..=96 => Op::Truncate,
        _ => Op::Reopen,
    }
}

/// What an operation changes in the acknowledged state once it has returned.
enum Acked {
    Nothing,
    Records(Vec<(u64, Ident)>),
    /// Every record appended so far (a `sync` returned).
    AllAppended,
    /// The log was reopened: what it holds now is what it holds (checked first), and the
    /// writer continues at the sequence number given.
    Reopened(Vec<WalRecord>, u64),
}

/// One workload on one log directory.
struct Run {
    seed: u64,
    run: u64,
    shape: Shape,
    /// Draws the workload.
    rng: Rng,
    /// Draws everything about checking (nested crashes), so the workload does not depend on it.
    check_rng: Rng,
    root: PathBuf,
    dir: PathBuf,
    points: CrashPoints,
    /// Every record appended (acknowledged or not) that may still be in the log: seq -> identity.
    appended: BTreeMap<u64, Ident>,
    expected: Expected,
    counter: u64,
    /// Start of the run in ms: batch timestamps must lie between it and the check.
    since_ms: u64,
    /// An image directory was kept for a violation.
    kept: bool,
    images_checked: u64,
    /// Images taken while something was not durable (the others are just the current files).
    unsynced_images: u64,
    /// Images taken in the middle of recovering another image.
    second_images: u64,
    /// Print every operation (`SOFTADASTRA_WAL_TRACE=<run>`), to follow a reproduced failure.
    trace: bool,
}

impl Run {
    fn new(seed: u64, run: u64, root: &Path) -> Run {
        let mut rng = Rng::new(seed ^ run.wrapping_mul(0xA24B_AED4_963E_E407));
        let shape = Shape::random(&mut rng);
        let dir = root.join(format!("run-{run}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the run directory");
        let sampling = Sampling {
            one_in: 3,
            images: 2,
        };
        let points = CrashPoints::new(DurableState::empty(&dir), rng.next_u64(), sampling);
        let check_rng = Rng::new(rng.next_u64());
        Run {
            seed,
            run,
            shape,
            rng,
            check_rng,
            root: root.to_path_buf(),
            dir,
            points,
            appended: BTreeMap::new(),
            expected: Expected::default(),
            counter: 0,
            since_ms: support::now_ms(),
            kept: false,
            images_checked: 0,
            unsynced_images: 0,
            second_images: 0,
            trace: std::env::var("SOFTADASTRA_WAL_TRACE").is_ok_and(|v| v == run.to_string()),
        }
    }

    fn config(&self) -> WalConfig {
        self.shape.config(&self.dir).fault_plan(self.points.plan())
    }

    fn label(&self) -> String {
        format!(
            "seed {} run {} ({:?}, segments of {} KiB)",
            self.seed,
            self.run,
            self.shape.mode,
            self.shape.segment_size / 1024
        )
    }

    fn execute(&mut self, report: &mut Report) {
        let mut store = match WalStore::open(self.config()) {
            Ok(s) => Some(s),
            Err(e) => return report.violation(format!("{}: creating the log: {e}", self.label())),
        };
        self.check_captured(report, "open");
        let steps = self.rng.range(40, 120);
        for step in 0..steps {
            let op = random_op(&mut self.rng);
            let what = format!("step {step} {op:?}");
            if self.trace {
                eprintln!("run {} {what}", self.run);
            }
            let acked = match self.apply(&mut store, op) {
                Ok(acked) => acked,
                Err(e) => {
                    self.check_captured(report, &what);
                    return report.violation(format!("{}: {what}: {e}", self.label()));
                }
            };
            self.points.here(&format!("after {what}"), false);
            self.check_captured(report, &what);
            if let Err(e) = self.acknowledge(acked) {
                return report.violation(format!("{}: {what}: {e}", self.label()));
            }
        }
        drop(store);
        self.points.here("end of run", true);
        self.check_captured(report, "end");
        if let Some(e) = self.points.error() {
            report.violation(format!("{}: the crash model lost track: {e}", self.label()));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn next_ident(&mut self, writer: u32) -> Ident {
        self.counter += 1;
        Ident::new(writer, self.counter)
    }

    /// Runs one operation. An error is a violation: nothing fails in this harness.
    fn apply(&mut self, slot: &mut Option<WalStore>, op: Op) -> Result<Acked, String> {
        let always = self.shape.mode == SyncMode::Always;
        let layout = self.shape.layout();
        let store = slot.as_ref().ok_or("the store is gone")?;
        match op {
            Op::Append => {
                let who = self.next_ident(0);
                let payload = who.payload(who.len(layout.max_payload() as usize));
                let seq = store
                    .writer()
                    .append_with_timestamp(who.record_type(), who.timestamp(), &payload)
                    .map_err(|e| format!("append failed: {e}"))?;
                self.appended.insert(seq, who);
                Ok(if always {
                    Acked::Records(vec![(seq, who)])
                } else {
                    Acked::Nothing
                })
            }
            Op::Batch(n) => {
                // Each record gets at most an n-th of a segment, so the batch always fits.
                let share = ((layout.capacity() / n as u64 - record_size(0)) & !7) as usize;
                let items: Vec<(Ident, Vec<u8>)> = (0..n)
                    .map(|_| {
                        let who = self.next_ident(BATCH_WRITER_BIT);
                        (who, who.payload(who.len(share)))
                    })
                    .collect();
                let range = store
                    .writer()
                    .append_batch(items.iter().map(|(w, p)| (w.record_type(), &p[..])))
                    .map_err(|e| format!("batch failed: {e}"))?;
                let recs: Vec<(u64, Ident)> = range.zip(items.iter().map(|(w, _)| *w)).collect();
                self.appended.extend(recs.iter().copied());
                self.expected
                    .batches
                    .push(items.iter().map(|(w, _)| *w).collect());
                Ok(if always {
                    Acked::Records(recs)
                } else {
                    Acked::Nothing
                })
            }
            Op::Sync => {
                store
                    .writer()
                    .sync()
                    .map_err(|e| format!("sync failed: {e}"))?;
                Ok(Acked::AllAppended)
            }
            Op::Truncate => {
                let first = store.first_seq().unwrap_or(1);
                let next = store.writer().next_seq().map_err(|e| e.to_string())?;
                let before = self.rng.range(first, next);
                // From the call on, a crash may leave the records below `before` gone.
                self.expected.truncated_before = self.expected.truncated_before.max(before);
                store
                    .truncate_before(before)
                    .map_err(|e| format!("truncate_before({before}) failed: {e}"))?;
                Ok(Acked::Nothing)
            }
            Op::Reopen => {
                // A clean close: nothing is flushed on drop (as after a process crash).
                *slot = None;
                let store = WalStore::open(self.config()).map_err(|e| format!("reopen: {e}"))?;
                let records = store
                    .reader()
                    .iter()
                    .map(|r| r.map(|r| r.to_record()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("reading after reopen: {e}"))?;
                let next = store.writer().next_seq().map_err(|e| e.to_string())?;
                *slot = Some(store);
                Ok(Acked::Reopened(records, next))
            }
        }
    }

    /// Moves the acknowledged state forward once an operation returned.
    fn acknowledge(&mut self, acked: Acked) -> Result<(), String> {
        match acked {
            Acked::Nothing => {}
            Acked::Records(recs) => {
                for (seq, who) in recs {
                    self.expected.ack(seq, who);
                }
            }
            Acked::AllAppended => {
                for (&seq, &who) in &self.appended {
                    self.expected.ack(seq, who);
                }
            }
            Acked::Reopened(records, next) => self.adopt(&records, next)?,
        }
        Ok(())
    }

    /// After a clean reopen the store's reader shows only durable records (README, "Readers see
    /// durable records only"), so every record it shows is acknowledged from now on; records
    /// appended but not recovered are gone, and their numbers will be reused.
    fn adopt(&mut self, records: &[WalRecord], next: u64) -> Result<(), String> {
        let window = self.since_ms..=support::now_ms();
        let (normalized, mut bad) = support::normalize_batch_timestamps(records, window);
        bad.extend(support::check_records(&normalized, &self.expected));
        if !bad.is_empty() {
            return Err(format!("after a clean reopen: {}", bad.join("; ")));
        }
        if records.last().is_some_and(|r| r.seq + 1 != next) {
            return Err(format!("after a clean reopen the log ends before {next}"));
        }
        self.appended.retain(|&seq, _| seq < next);
        for r in records {
            if let Some(who) = Ident::of_payload(&r.payload) {
                self.appended.insert(r.seq, who);
                self.expected.ack(r.seq, who);
            }
        }
        Ok(())
    }

    /// Recovers and checks every image captured since the last call, against what was
    /// acknowledged before the operation that produced them.
    fn check_captured(&mut self, report: &mut Report, what: &str) {
        for cap in self.points.take() {
            self.check_image(report, what, &cap);
        }
    }

    fn check_image(&mut self, report: &mut Report, what: &str, cap: &Captured) {
        self.images_checked += 1;
        self.unsynced_images += u64::from(cap.unsynced);
        let case = format!(
            "{}: {what}, crash point {} ({}), image {}",
            self.label(),
            cap.point,
            cap.what,
            self.images_checked
        );
        let dir = self.root.join("image");
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = cap.image.write_to(&dir) {
            report.case();
            return report.violation(format!("{case}: writing the image: {e}"));
        }
        let nested = self.check_rng.one_in(NESTED_ONE_IN);
        let bad = if nested {
            self.recover_interrupted(report, &dir)
        } else {
            report.case();
            self.recover(&dir).err().unwrap_or_default()
        };
        if bad.is_empty() {
            let _ = std::fs::remove_dir_all(&dir);
        } else {
            let keep = self
                .root
                .join(format!("violation-{}-{}", self.run, self.images_checked));
            let _ = std::fs::rename(&dir, &keep);
            self.kept = true;
            report.violation(format!(
                "{case}: {} (image kept, recovered, in {})",
                bad.join("; "),
                keep.display()
            ));
        }
    }

    fn recover(&self, dir: &Path) -> Result<Vec<WalRecord>, Vec<String>> {
        let window = self.since_ms..=support::now_ms();
        let shape = self.shape;
        support::recover_and_check_batches(dir, |d| shape.config(d), &self.expected, window)
    }

    /// Recovers `dir` under observation, taking a second crash image at each durability call
    /// of that recovery; then checks `dir` (I1-I5) and that each second image recovers to the
    /// same log (I4). Returns the violations.
    fn recover_interrupted(&mut self, report: &mut Report, dir: &Path) -> Vec<String> {
        let state = match DurableState::all_durable(dir) {
            Ok(s) => s,
            Err(e) => return vec![format!("reading the image back: {e}")],
        };
        let sampling = Sampling {
            one_in: 1,
            images: 1,
        };
        let inner = CrashPoints::new(state, self.check_rng.next_u64(), sampling);
        let observed = open_and_collect(self.shape.config(dir).fault_plan(inner.plan()));
        let interrupted = inner.take();
        report.case();
        let first = match self.recover(dir) {
            Ok(records) => records,
            Err(bad) => return bad,
        };
        let mut bad = Vec::new();
        match observed {
            Ok(records) if records != first => bad.push(format!(
                "the observed recovery saw {} records, the next one {}",
                records.len(),
                first.len()
            )),
            Ok(_) => {}
            Err(e) => bad.push(format!("observed recovery failed: {e}")),
        }
        if let Some(e) = inner.error() {
            bad.push(format!("the crash model lost track during recovery: {e}"));
        }
        for (k, cap) in interrupted.iter().enumerate() {
            report.case();
            self.second_images += 1;
            let more = self.check_second_image(cap, &first);
            if !more.is_empty() {
                let keep = format!(
                    "violation-{}-{}-interrupted-{k}",
                    self.run, self.images_checked
                );
                bad.push(format!("(second image kept in {keep})"));
                let _ = std::fs::rename(self.root.join("image-interrupted"), self.root.join(keep));
                self.kept = true;
            }
            bad.extend(more);
        }
        let _ = std::fs::remove_dir_all(self.root.join("image-interrupted"));
        bad
    }

    /// Recovers an image taken in the middle of a recovery: it must give the log the
    /// uninterrupted recovery gave (`first`), and pass I1-I5.
    fn check_second_image(&self, cap: &Captured, first: &[WalRecord]) -> Vec<String> {
        let dir = self.root.join("image-interrupted");
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = cap.image.write_to(&dir) {
            return vec![format!("writing the second image: {e}")];
        }
        match self.recover(&dir) {
            Ok(records) if records != first => vec![format!(
                "recovery interrupted at {} gives {} records, uninterrupted {}",
                cap.what,
                records.len(),
                first.len()
            )],
            Ok(_) => Vec::new(),
            Err(more) => more
                .into_iter()
                .map(|m| format!("recovery interrupted at {}: {m}", cap.what))
                .collect(),
        }
    }
}

/// Opens a store and reads every record it shows; the store is closed before returning.
fn open_and_collect(config: WalConfig) -> Result<Vec<WalRecord>, String> {
    let store = WalStore::open(config).map_err(|e| e.to_string())?;
    store
        .reader()
        .iter()
        .map(|r| r.map(|r| r.to_record()).map_err(|e| e.to_string()))
        .collect()
}
