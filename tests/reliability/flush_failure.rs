//! Harness 5, `flush-failure`: every durability system call of a scripted workload fails in turn.
//!
//! The workload goes through every kind of call the fault-injection seam knows: appends and
//! batches of mixed sizes in small segments (rotations create and seal segments), both sync
//! modes (`Manual` with `sync()`), `truncate_before` (unlinks and a directory sync), and reopens
//! whose recovery repairs something (a torn tail crafted while the log is closed is zeroed and
//! flushed; an unsealed segment followed by a crafted newer one is sealed; a leftover temporary
//! file is unlinked).
//!
//! A fault-free dry run counts the calls of each kind. Then, for every kind and every `n` up to
//! that count, the workload runs again with the `n`-th call of that kind failing (EIO, and also
//! `StorageFull` for allocations), and the harness checks:
//!
//! * the failing call returns `Error::Io`, and the writer is poisoned: `is_poisoned()`, and every
//!   later append, batch, sync and truncation fails with `Error::Poisoned` (nothing is
//!   acknowledged after the failure); readers keep seeing every acknowledged record;
//! * except for a full disk while allocating a new segment: that append fails without poisoning,
//!   uses no sequence number, leaves no file behind, and its retry succeeds;
//! * a failure inside `WalStore::open` (creating the first segment, recovery's repairs) is a typed
//!   `Error::Io`;
//! * afterwards, a fault-free reopen recovers a valid log holding every acknowledged record
//!   byte-exact (invariants I1-I5), twice identically, and the log continues after it.
//!
//! Besides the fixed script, variants of it with payload sizes perturbed from a seed run
//! (`SOFTADASTRA_WAL_SEED` replays them): seven at the CI volume, `8k - 1` with
//! `SOFTADASTRA_WAL_SOAK=k`.

mod support;

use std::collections::HashSet;
use std::fmt::Debug;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use softadastra_wal::fault::{FaultPlan, SysCall, SysOp};
use softadastra_wal::format::{self, Binding, Layout, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};
use softadastra_wal::{Error, SyncMode, WalConfig, WalRecord, WalStore, WalWriter};

use support::{Expected, Ident, Report, Rng};

/// Small segments, so the workload rotates often: 7 536 bytes of records each.
const SEGMENT_SIZE: u64 = 8 << 10;
const INDEX_INTERVAL: u64 = 256;
/// The workload's records are `Ident`s of this writer.
const WRITER: u32 = 1;
/// Appends tried after poisoning (they must all be refused) are `Ident`s of this writer.
const PROBE_WRITER: u32 = 7;
/// The record appended by the final continuation check.
const AFTER_WRITER: u32 = 9;
/// The largest payload the workload uses (a segment holds at most 7 504).
const MAX_LEN: usize = 7_400;
/// The smallest: an `Ident` payload needs 20 bytes.
const MIN_LEN: usize = 20;
/// Workload variants at soak 1: the fixed script and seven with perturbed sizes (under a second
/// each, in memory).
const VARIANTS: u64 = 8;

fn main() -> ExitCode {
    let started = Instant::now();
    let mut report = Report::new("flush-failure");
    let variants = support::volume(VARIANTS);
    let seed = support::seed();
    eprintln!("flush-failure: {variants} workload variant(s), seed {seed}");
    for variant in 0..variants {
        let script = Script::new(variant, seed);
        run_variant(&script, &mut report);
    }
    eprintln!(
        "flush-failure: {} cases in {:.1} s",
        report.count(),
        started.elapsed().as_secs_f64()
    );
    report.finish()
}

/// Runs the dry run of one workload variant, then every fault case it makes possible.
fn run_variant(script: &Script, report: &mut Report) {
    let Some(counts) = dry_run(script, report) else {
        return;
    };
    for (op, calls) in counts {
        for nth in 1..=calls {
            for kind in kinds_for(op) {
                let fault = Fault { op, nth, kind };
                report.case();
                for v in run_case(script, Some(fault)).violations {
                    report.violation(format!("{} {fault:?}: {v}", script.label()));
                }
            }
        }
    }
}

/// The error kinds each call kind fails with: EIO (as `Other`: std has no stable kind for it),
/// and a full disk where it means something different (allocating a segment).
fn kinds_for(op: SysOp) -> Vec<ErrorKind> {
    if op == SysOp::Allocate {
        vec![ErrorKind::Other, ErrorKind::StorageFull]
    } else {
        vec![ErrorKind::Other]
    }
}

/// Runs the workload without faults, checks that it reaches every kind of call and every repair
/// it is meant to reach, and returns how many calls of each kind it makes.
fn dry_run(script: &Script, report: &mut Report) -> Option<Vec<(SysOp, u64)>> {
    report.case();
    let outcome = run_case(script, None);
    let mut bad = outcome.violations;
    let counts: Vec<(SysOp, u64)> = SysOp::ALL
        .iter()
        .map(|&op| (op, outcome.plan.calls(op)))
        .collect();
    for &(op, calls) in &counts {
        if calls == 0 {
            bad.push(format!("the workload never makes a {op:?} call"));
        }
    }
    bad.extend(outcome.opens.iter().filter_map(OpenCalls::missing_repair));
    eprintln!(
        "flush-failure: {} dry run: calls {counts:?}",
        script.label()
    );
    if bad.is_empty() {
        return Some(counts);
    }
    for v in bad {
        report.violation(format!("{} dry run: {v}", script.label()));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The workload script
// ---------------------------------------------------------------------------------------------

/// Payload sizes of one variant of the workload: the fixed script, or (variants after the first)
/// each size perturbed by up to a quarter, from the seed.
struct Script {
    variant: u64,
    seed: u64,
    rng: std::cell::RefCell<Rng>,
}

impl Script {
    fn new(variant: u64, seed: u64) -> Script {
        Script {
            variant,
            seed,
            rng: std::cell::RefCell::new(Rng::new(seed ^ variant.wrapping_mul(0x9E37))),
        }
    }

    fn label(&self) -> String {
        if self.variant == 0 {
            "variant 0 (fixed)".to_string()
        } else {
            format!("variant {} (seed {})", self.variant, self.seed)
        }
    }

    /// Restarts the size sequence, so every run of a variant uses the same sizes.
    fn restart(&self) {
        *self.rng.borrow_mut() = Rng::new(self.seed ^ self.variant.wrapping_mul(0x9E37));
    }

    /// The size to use where the fixed script says `len`.
    fn len(&self, len: usize) -> usize {
        if self.variant == 0 {
            return len;
        }
        let spread = (len / 4) as u64;
        let delta = self.rng.borrow_mut().range(0, 2 * spread) as usize;
        (len + delta)
            .saturating_sub(spread as usize)
            .clamp(MIN_LEN, MAX_LEN)
    }

    /// The sizes to use for a batch the fixed script gives as `lens`: perturbed like single
    /// sizes, then shrunk until the whole batch fits one segment, as a batch must.
    fn batch(&self, lens: &[usize]) -> Vec<usize> {
        let mut lens: Vec<usize> = lens.iter().map(|&len| self.len(len)).collect();
        let capacity = Layout::new(SEGMENT_SIZE, INDEX_INTERVAL).map_or(0, |l| l.capacity());
        let total = |lens: &[usize]| -> u64 {
            lens.iter()
                .map(|&len| format::record_size(len as u64))
                .sum()
        };
        while total(&lens) > capacity && lens.iter().any(|&len| len > MIN_LEN) {
            for len in &mut lens {
                *len = (*len * 7 / 8).max(MIN_LEN);
            }
        }
        lens
    }
}

/// The workload. Stops at the first failure (which the `Run` has already checked).
fn workload(run: &mut Run, s: &Script) -> Step {
    // Phase 1, SyncMode::Always on a fresh log: appends and batches across rotations, then a
    // truncation that deletes several sealed segments.
    run.open(SyncMode::Always, "fresh log")?;
    for len in [
        20, 300, 1500, 64, 4000, 200, 7000, 25, 2500, 2500, 2500, 100,
    ] {
        run.append(s.len(len))?;
    }
    run.batch(&s.batch(&[300, 20, 1200]))?;
    run.batch(&s.batch(&[3000, 3000]))?;
    for len in [MAX_LEN, 50, 50] {
        run.append(s.len(len))?;
    }
    let keep_from = run.next_seq;
    run.batch(&s.batch(&[1000; 7]))?;
    run.truncate_before(keep_from)?;
    run.append(s.len(40))?;
    run.close();

    // Phase 2, SyncMode::Manual: syncs now and then, rotations between syncs, a batch; it ends
    // with records that were never synced, and a torn record after them is crafted.
    run.open(SyncMode::Manual, "manual")?;
    for len in [200, 200, 200] {
        run.append(s.len(len))?;
    }
    run.sync()?;
    for len in [3000, 3000, 3000] {
        run.append(s.len(len))?;
    }
    run.sync()?;
    run.batch(&s.batch(&[500, 500]))?;
    run.append(s.len(20))?;
    run.sync()?;
    run.append(s.len(7000))?;
    run.sync()?;
    for len in [100, 100] {
        run.append(s.len(len))?;
    }
    run.close();
    craft_torn_tail(&run.dir);

    // Phase 3, Always: recovery zeroes the torn tail (a flush during open).
    run.open(SyncMode::Always, "torn tail")?;
    for len in [300, 300] {
        run.append(s.len(len))?;
    }
    run.close();
    craft_crash_after_create(&run.dir);

    // Phase 4, Manual: recovery removes a leftover temporary file (an unlink) and seals the
    // segment followed by the crafted empty one (a flush); then appends, a truncation, syncs.
    run.open(SyncMode::Manual, "unsealed segment")?;
    for len in [1500, 1500, 1500, 1500, 3000] {
        run.append(s.len(len))?;
    }
    run.sync()?;
    let keep_from = run.next_seq;
    run.append(s.len(2000))?;
    run.truncate_before(keep_from)?;
    run.batch(&s.batch(&[64, 64, 64]))?;
    run.sync()?;
    run.close();

    // Phase 5, Always: a plain reopen and one more append.
    run.open(SyncMode::Always, "plain reopen")?;
    run.append(s.len(20))?;
    run.close();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One run of the workload, with or without a fault
// ---------------------------------------------------------------------------------------------

/// Which call fails, and how.
#[derive(Clone, Copy, Debug)]
struct Fault {
    op: SysOp,
    nth: u64,
    kind: ErrorKind,
}

impl Fault {
    /// The one documented failure that does not poison: a full disk while allocating the blocks
    /// of a segment that is not part of the log yet.
    fn poisons(self) -> bool {
        !(self.op == SysOp::Allocate && self.kind == ErrorKind::StorageFull)
    }
}

/// The workload stopped at its first failure, which was checked already.
struct Stop;
type Step = Result<(), Stop>;

/// What one open of the workload made: its label and the calls of each kind it made.
struct OpenCalls {
    label: &'static str,
    flushes: u64,
    unlinks: u64,
}

impl OpenCalls {
    /// The repair this open exists for, if it did not happen (dry run only).
    fn missing_repair(&self) -> Option<String> {
        let ok = match self.label {
            "torn tail" => self.flushes > 0,
            "unsealed segment" => self.flushes > 0 && self.unlinks > 0,
            _ => true,
        };
        (!ok).then(|| {
            format!(
                "the {:?} open made {} flushes and {} unlinks: its repair did not happen",
                self.label, self.flushes, self.unlinks
            )
        })
    }
}

/// What a run leaves for the caller.
struct Outcome {
    plan: Arc<FaultPlan>,
    opens: Vec<OpenCalls>,
    violations: Vec<String>,
}

/// The state of one run of the workload.
struct Run {
    dir: PathBuf,
    plan: Arc<FaultPlan>,
    fault: Option<Fault>,
    store: Option<(WalStore, WalWriter)>,
    mode: SyncMode,
    /// Acknowledged records (and the truncation point).
    expected: Expected,
    /// `Manual` mode: appended, not yet acknowledged by a `sync()`.
    pending: Vec<(u64, Ident)>,
    /// The sequence number the next record must get.
    next_seq: u64,
    counter: u64,
    batches: Batches,
    /// The non-poisoning failure happened and its operation is being retried.
    retrying: bool,
    opens: Vec<OpenCalls>,
    violations: Vec<String>,
}

/// Runs the workload once in a fresh directory, then checks a fault-free recovery.
fn run_case(script: &Script, fault: Option<Fault>) -> Outcome {
    let tmp = case_dir();
    let plan = Arc::new(FaultPlan::new());
    let in_background = Arc::new(AtomicBool::new(false));
    if let Some(f) = fault {
        plan.fail_nth(f.op, f.nth, f.kind);
        plan.observe(background_watch(f, in_background.clone()));
    }
    let mut run = Run {
        dir: tmp.path().to_path_buf(),
        plan: plan.clone(),
        fault,
        store: None,
        mode: SyncMode::Always,
        expected: Expected::default(),
        pending: Vec::new(),
        next_seq: 1,
        counter: 0,
        batches: Batches::new(),
        retrying: false,
        opens: Vec::new(),
        violations: Vec::new(),
    };
    script.restart();
    let completed = workload(&mut run, script).is_ok();
    run.close();
    // A failure of the background preparer's work is reported at the next rotation; the work
    // after a store's last rotation (its last seal, its next spare) is never needed, and its
    // failure is reported to nobody (it loses nothing). tests/it/poison.rs checks that a later
    // rotation does report it.
    let unreported_ok = in_background.load(Ordering::SeqCst);
    if completed && fault.is_some_and(Fault::poisons) && !unreported_ok {
        run.violations
            .push("the workload completed: the injected fault was never reached".into());
    }
    if fault.is_some_and(|f| !f.poisons()) && completed && !run.retrying && !unreported_ok {
        run.violations
            .push("the full disk was never reported to the workload".into());
    }
    let found = verify_recovery(&run.dir, &run.expected, &run.batches);
    run.violations.extend(found);
    Outcome {
        plan,
        opens: run.opens,
        violations: run.violations,
    }
}

/// An observer that notes whether the call `fault` fails is made by the store's background
/// preparer thread.
fn background_watch(
    fault: Fault,
    in_background: Arc<AtomicBool>,
) -> softadastra_wal::fault::Observer {
    let seen = AtomicU64::new(0);
    Box::new(move |call: &SysCall<'_>| {
        if call.done || call.op != fault.op {
            return;
        }
        if seen.fetch_add(1, Ordering::SeqCst) + 1 == fault.nth {
            let preparer = std::thread::current().name() == Some("softadastra-wal-prepare");
            in_background.store(preparer, Ordering::SeqCst);
        }
    })
}

/// A fresh directory for one case: in memory (`/dev/shm`) where there is one, since the harness
/// tests the writer's reaction to failures, not the disk, and makes tens of thousands of
/// flushes whose latency on a busy disk would dominate its time.
fn case_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let mut builder = tempfile::Builder::new();
    builder.prefix("sawal-flushfail-");
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("create temp dir")
}

impl Run {
    fn config(&self, mode: SyncMode) -> WalConfig {
        store_config(&self.dir)
            .sync_mode(mode)
            .fault_plan(self.plan.clone())
    }

    fn next_ident(&mut self) -> Ident {
        self.counter += 1;
        Ident::new(WRITER, self.counter)
    }

    fn violation(&mut self, detail: String) {
        self.violations.push(detail);
    }

    /// Whether the planned fault has been injected yet.
    fn fault_hit(&self) -> bool {
        self.fault.is_some_and(|f| self.plan.calls(f.op) >= f.nth)
    }

    fn writer(&self) -> Option<WalWriter> {
        self.store.as_ref().map(|(_, w)| w.clone())
    }

    /// Opens the store in `mode` (with the fault plan), retrying once after the non-poisoning
    /// failure.
    fn open(&mut self, mode: SyncMode, label: &'static str) -> Step {
        self.close();
        self.mode = mode;
        loop {
            // A repair writes through a flush (a torn tail zeroed) or a seal.
            let writes = |plan: &FaultPlan| plan.calls(SysOp::Flush) + plan.calls(SysOp::Seal);
            let (flushes, unlinks) = (writes(&self.plan), self.plan.calls(SysOp::Unlink));
            match WalStore::open(self.config(mode)) {
                Ok(store) => {
                    self.opens.push(OpenCalls {
                        label,
                        flushes: writes(&self.plan) - flushes,
                        unlinks: self.plan.calls(SysOp::Unlink) - unlinks,
                    });
                    return self.opened(store, label);
                }
                Err(e) => self.failed(&format!("open ({label})"), e)?,
            }
        }
    }

    /// Checks that the opened store continues after every acknowledged record, and keeps it.
    fn opened(&mut self, store: WalStore, label: &str) -> Step {
        let w = store.writer();
        match w.next_seq() {
            Ok(next) if next > self.expected.last_acked().unwrap_or(0) => self.next_seq = next,
            Ok(next) => self.violation(format!(
                "open ({label}) continues at seq {next}, acknowledged seq {:?} would be reused",
                self.expected.last_acked()
            )),
            Err(e) => self.violation(format!("open ({label}): next_seq failed: {e}")),
        }
        self.store = Some((store, w));
        Ok(())
    }

    fn close(&mut self) {
        // Records never synced are not acknowledged; they may or may not survive.
        self.pending.clear();
        self.store = None;
    }

    /// Records what an append acknowledged (`Always`) or left pending (`Manual`).
    fn appended(&mut self, seq: u64, who: Ident) {
        if seq != self.next_seq {
            self.violation(format!(
                "record {who:?} got seq {seq}, the next one was {}",
                self.next_seq
            ));
        }
        self.next_seq = seq + 1;
        match self.mode {
            SyncMode::Always => self.expected.ack(seq, who),
            SyncMode::Manual => self.pending.push((seq, who)),
        }
    }

    fn append(&mut self, len: usize) -> Step {
        let who = self.next_ident();
        let payload = who.payload(len);
        loop {
            let w = self.writer().ok_or(Stop)?;
            match w.append_with_timestamp(who.record_type(), who.timestamp(), &payload) {
                Ok(seq) => {
                    self.appended(seq, who);
                    return Ok(());
                }
                Err(e) => self.failed("append", e)?,
            }
        }
    }

    fn batch(&mut self, lens: &[usize]) -> Step {
        let members: Vec<Ident> = lens.iter().map(|_| self.next_ident()).collect();
        let payloads: Vec<Vec<u8>> = members
            .iter()
            .zip(lens)
            .map(|(who, &len)| who.payload(len))
            .collect();
        self.batches.members.extend(members.iter().copied());
        loop {
            let w = self.writer().ok_or(Stop)?;
            let records = members
                .iter()
                .zip(&payloads)
                .map(|(who, p)| (who.record_type(), p.as_slice()));
            match w.append_batch(records) {
                Ok(range) => {
                    let seqs: Vec<u64> = range.collect();
                    if seqs.len() != members.len() {
                        self.violation(format!(
                            "a batch of {} records got {} sequence numbers",
                            members.len(),
                            seqs.len()
                        ));
                    }
                    for (seq, who) in seqs.into_iter().zip(members) {
                        self.appended(seq, who);
                    }
                    return Ok(());
                }
                Err(e) => self.failed("append_batch", e)?,
            }
        }
    }

    fn sync(&mut self) -> Step {
        loop {
            let w = self.writer().ok_or(Stop)?;
            match w.sync() {
                Ok(()) => {
                    for (seq, who) in std::mem::take(&mut self.pending) {
                        self.expected.ack(seq, who);
                    }
                    return Ok(());
                }
                Err(e) => self.failed("sync", e)?,
            }
        }
    }

    fn truncate_before(&mut self, seq: u64) -> Step {
        // Records below `seq` may disappear as soon as the call starts, whatever it returns.
        self.expected.truncated_before = self.expected.truncated_before.max(seq);
        loop {
            let (store, _) = self.store.as_ref().ok_or(Stop)?;
            match store.truncate_before(seq) {
                Ok(_) => return Ok(()),
                Err(e) => self.failed("truncate_before", e)?,
            }
        }
    }

    /// Handles the first failure of an operation. `Ok` means: retry it (the non-poisoning
    /// failure, checked); `Err(Stop)` ends the workload after checking the poisoned state.
    fn failed(&mut self, what: &str, err: Error) -> Step {
        let Some(fault) = self.fault.filter(|_| self.fault_hit()) else {
            self.violation(format!("{what} failed with no fault injected yet: {err}"));
            return Err(Stop);
        };
        if self.retrying {
            self.violation(format!("{what}: the retry after a full disk failed: {err}"));
            return Err(Stop);
        }
        if !fault.poisons() {
            self.retrying = true;
            self.check_full_disk(what, &err);
            return Ok(());
        }
        if !matches!(err, Error::Io { .. }) {
            self.violation(format!(
                "{what}: the failing call returned {err}, not Error::Io"
            ));
        }
        self.check_poisoned(what);
        Err(Stop)
    }

    /// A full disk while allocating a segment: reported as such, nothing poisoned, no sequence
    /// number used, no file left behind.
    fn check_full_disk(&mut self, what: &str, err: &Error) {
        match err {
            Error::Io { source, .. } if source.kind() == ErrorKind::StorageFull => {}
            other => self.violation(format!("{what}: a full disk was reported as {other}")),
        }
        if let Some((_, w)) = &self.store {
            let (poisoned, next) = (w.is_poisoned(), w.next_seq());
            if poisoned {
                self.violation(format!("{what}: a full disk while allocating poisoned"));
            }
            match next {
                Ok(n) if n == self.next_seq => {}
                other => self.violation(format!(
                    "{what}: after a full disk next_seq is {other:?}, not {}",
                    self.next_seq
                )),
            }
            self.check_reader(what);
        }
        let leftovers = temp_files(&self.dir);
        if !leftovers.is_empty() {
            self.violation(format!("{what}: a full disk left {leftovers:?} behind"));
        }
    }

    /// After a poisoning failure: the writer says so, refuses everything, again and again, and
    /// readers still see every acknowledged record.
    fn check_poisoned(&mut self, what: &str) {
        let Some((store, w)) = self.store.clone() else {
            return; // the open failed: there is no writer
        };
        if !w.is_poisoned() {
            self.violation(format!("{what} failed but is_poisoned() is false"));
        }
        for round in 0..2u64 {
            let probe = Ident::new(PROBE_WRITER, round);
            let p = probe.payload(100);
            let (t, ts) = (probe.record_type(), probe.timestamp());
            let refusals = [
                refused(w.append_with_timestamp(t, ts, &p), "append"),
                refused(w.append_batch([(t, &p[..]), (t, &p[..])]), "append_batch"),
                refused(w.append_batch(std::iter::empty()), "empty append_batch"),
                refused(w.sync(), "sync"),
                refused(store.writer().append(t, &p), "append through a new writer"),
                refused(store.truncate_before(u64::MAX), "truncate_before"),
            ];
            for detail in refusals.into_iter().flatten() {
                self.violation(format!("after {what} failed, round {round}: {detail}"));
            }
        }
        self.check_reader(what);
    }

    /// A reader made now sees a valid log with every acknowledged record.
    fn check_reader(&mut self, what: &str) {
        let Some((store, _)) = &self.store else {
            return;
        };
        let reader = store.reader();
        let records: Result<Vec<WalRecord>, Error> =
            reader.iter().map(|r| r.map(|r| r.to_record())).collect();
        let bad = match records {
            Ok(records) => self.batches.check(&records, &self.expected),
            Err(e) => vec![format!("reading failed: {e}")],
        };
        for detail in bad {
            self.violation(format!("store reader after {what} failed: {detail}"));
        }
    }
}

/// `None` if `result` is the `Error::Poisoned` a poisoned writer must give, else what is wrong.
fn refused<T: Debug>(result: Result<T, Error>, what: &str) -> Option<String> {
    match result {
        Err(Error::Poisoned { .. }) => None,
        Err(e) => Some(format!("{what} returned {e}, not Error::Poisoned")),
        Ok(v) => Some(format!("{what} was acknowledged ({v:?})")),
    }
}

fn store_config(dir: &Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(SEGMENT_SIZE)
        .index_interval(INDEX_INTERVAL)
}

// ---------------------------------------------------------------------------------------------
// Checking the recovered log
// ---------------------------------------------------------------------------------------------

/// The records appended in batches. A batch stamps its records with the writer's clock instead
/// of the timestamp their `Ident` implies, so those are checked against the run's time window
/// (and one timestamp per batch is not required: the CRC covers it anyway) and then replaced by
/// the `Ident`'s before the shared checks.
struct Batches {
    members: HashSet<Ident>,
    from_ms: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Batches {
    fn new() -> Batches {
        Batches {
            members: HashSet::new(),
            from_ms: now_ms().saturating_sub(1_000),
        }
    }

    /// `support::check_records` (I1-I3) after putting batch records' timestamps in the form the
    /// check expects.
    fn check(&self, records: &[WalRecord], expected: &Expected) -> Vec<String> {
        let until = now_ms() + 1_000;
        let mut bad = Vec::new();
        let normalized: Vec<WalRecord> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                if let Some(who) = Ident::of_payload(&r.payload)
                    && self.members.contains(&who)
                {
                    if (self.from_ms..=until).contains(&r.timestamp) {
                        r.timestamp = who.timestamp();
                    } else {
                        bad.push(format!(
                            "seq {}: batch record with timestamp {} outside the run",
                            r.seq, r.timestamp
                        ));
                    }
                }
                r
            })
            .collect();
        bad.extend(support::check_records(&normalized, expected));
        bad
    }
}

/// Reopens the log without faults and checks I1-I5: every acknowledged record present and
/// byte-exact in a gap-free log of records the workload appended; two replays, two recoveries
/// and a plain reader identical; lookups by sequence agree; the log continues after its last
/// record. (`support::recover_and_check` does the same, but cannot know batch timestamps.)
fn verify_recovery(dir: &Path, expected: &Expected, batches: &Batches) -> Vec<String> {
    let first = match open_and_replay(dir) {
        Ok(records) => records,
        Err(e) => return vec![format!("fault-free recovery failed: {e}")],
    };
    let mut bad = batches.check(&first, expected);
    match open_and_replay(dir) {
        Ok(second) if second != first => bad.push(format!(
            "second recovery differs: {} records, then {}",
            first.len(),
            second.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("second recovery failed: {e}")),
    }
    match support::read_all(dir) {
        Ok(plain) if plain != first => bad.push(format!(
            "a plain reader sees {} records where recovery saw {}",
            plain.len(),
            first.len()
        )),
        Ok(_) => {}
        Err(e) => bad.push(format!("a plain reader failed: {e}")),
    }
    if let Err(e) = continues_after(dir, first.last()) {
        bad.push(e);
    }
    bad
}

/// Opens the store, replays it twice (identical) and looks every record up by sequence.
fn open_and_replay(dir: &Path) -> Result<Vec<WalRecord>, String> {
    let store = WalStore::open(store_config(dir)).map_err(|e| e.to_string())?;
    let reader = store.reader();
    let replay = || -> Result<Vec<WalRecord>, String> {
        reader
            .iter()
            .map(|r| r.map(|r| r.to_record()).map_err(|e| e.to_string()))
            .collect()
    };
    let once = replay()?;
    if replay()? != once {
        return Err("two replays of one store differ".into());
    }
    for r in &once {
        match reader.get(r.seq) {
            Ok(Some(got)) if got.to_record() == *r => {}
            Ok(other) => {
                return Err(format!(
                    "get({}) gives {:?}, iteration gave another record",
                    r.seq,
                    other.map(|g| g.seq())
                ));
            }
            Err(e) => return Err(format!("get({}) failed: {e}", r.seq)),
        }
    }
    Ok(once)
}

/// A store opened on the recovered log appends right after its last record.
fn continues_after(dir: &Path, last: Option<&WalRecord>) -> Result<(), String> {
    let store = WalStore::open(store_config(dir)).map_err(|e| format!("reopen: {e}"))?;
    let who = Ident::new(AFTER_WRITER, 0);
    let seq = store
        .writer()
        .append_with_timestamp(who.record_type(), who.timestamp(), &who.payload(64))
        .map_err(|e| format!("appending after recovery failed: {e}"))?;
    match last {
        Some(last) if seq != last.seq + 1 => Err(format!(
            "after recovery the log continues at seq {seq}, its last record is {}",
            last.seq
        )),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Crafting crash states in a closed log (harness setup: failures here are bugs of the harness)
// ---------------------------------------------------------------------------------------------

/// The segment files of `dir`, oldest first.
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list log dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list log dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

/// What the harness needs to know of the newest segment of a closed log.
struct Newest {
    path: PathBuf,
    bytes: Vec<u8>,
    layout: Layout,
    binding: Binding,
    /// Offset just past its last valid record.
    end: u64,
    /// The sequence number after its last valid record.
    next_seq: u64,
}

fn newest_segment(dir: &Path) -> Newest {
    let path = segment_files(dir).pop().expect("the log has a segment");
    let bytes = std::fs::read(&path).expect("read segment");
    let (header, layout) = format::decode_segment_header(&bytes).expect("valid segment header");
    let binding = Binding {
        log_id: header.log_id.get(),
        segment_id: header.segment_id.get(),
    };
    let (mut end, mut next_seq) = (SEGMENT_HEADER_LEN, header.base_seq.get());
    while let Ok((loc, _)) = format::decode_record(&bytes, end, layout.data_limit, binding) {
        end = loc.next;
        next_seq = loc.header.seq.get() + 1;
    }
    Newest {
        path,
        bytes,
        layout,
        binding,
        end,
        next_seq,
    }
}

/// The 32 bytes of a record header, serialized from the documented layout (FORMAT.md, Records).
fn record_header_bytes(h: &format::RecordHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECORD_HEADER_LEN as usize);
    b.extend_from_slice(&h.crc.get().to_le_bytes());
    b.extend_from_slice(&h.len.get().to_le_bytes());
    b.extend_from_slice(&h.seq.get().to_le_bytes());
    b.extend_from_slice(&h.timestamp.get().to_le_bytes());
    b.extend_from_slice(&[h.record_type, h.flags]);
    b.extend_from_slice(&h.reserved);
    b.extend_from_slice(&h.unsynced_before.get().to_le_bytes());
    b
}

/// The 64 bytes of a segment header, serialized from the documented layout.
fn segment_header_bytes(h: &format::SegmentHeader) -> Vec<u8> {
    let mut b = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    b.extend_from_slice(&h.magic);
    b.extend_from_slice(&h.version.get().to_le_bytes());
    b.extend_from_slice(&h.header_len.get().to_le_bytes());
    for v in [
        h.segment_size.get(),
        h.log_id.get(),
        h.segment_id.get(),
        h.base_seq.get(),
        h.index_interval.get(),
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&h.reserved);
    b.extend_from_slice(&h.crc.get().to_le_bytes());
    b
}

/// The state a crash leaves in the middle of an unsynced append: after the last record of the
/// newest segment, the header of the next record and part of its payload (its CRC fails).
fn craft_torn_tail(dir: &Path) {
    let mut seg = newest_segment(dir);
    let payload = vec![0xA5u8; 600];
    let header = format::encode_record_header(seg.binding, seg.next_seq, 1, 1, 0, 3, &payload);
    let mut torn = record_header_bytes(&header);
    torn.extend_from_slice(&payload[..200]);
    let room = (seg.layout.data_limit - seg.end) as usize;
    torn.truncate(room);
    let at = seg.end as usize;
    seg.bytes[at..at + torn.len()].copy_from_slice(&torn);
    std::fs::write(&seg.path, &seg.bytes).expect("write torn tail");
}

/// The state a crash leaves right after a rotation created the next segment, before it sealed
/// the full one: a newer empty segment, and the temporary file of a creation after it.
fn craft_crash_after_create(dir: &Path) {
    let seg = newest_segment(dir);
    let id = seg.binding.segment_id + 1;
    let header = format::encode_segment_header(&seg.layout, seg.binding.log_id, id, seg.next_seq);
    let mut bytes = vec![0u8; seg.layout.size as usize];
    bytes[..SEGMENT_HEADER_LEN as usize].copy_from_slice(&segment_header_bytes(&header));
    std::fs::write(dir.join(softadastra_wal::names::segment(id)), &bytes)
        .expect("write crafted segment");
    std::fs::write(dir.join(softadastra_wal::names::temp(id + 1)), [1u8; 64])
        .expect("write leftover temporary file");
}
