//! Reliability harness 1, `kill9`: a child process appends through the real mmap path and reports
//! each sequence number only after its append returned `Ok`; the parent `SIGKILL`s it at a random
//! moment (before it opened the log, during recovery, mid-append, mid-rotation), recovers the log
//! and checks I1-I5 against everything acknowledged so far. Now and then the recovery itself runs
//! in a child that is killed part-way, and the log recovered afterwards must equal the one a clean
//! recovery of the same crash image gives (I4).
//!
//! Run: `cargo test --all-features --test kill9`. Replay: `SOFTADASTRA_WAL_SEED=<seed>` (the kill
//! moments depend on timing, so a replay takes the same decisions but not the same interleaving).
//! Volume: `volume(2000)` kill/recover cycles.

mod support;

#[path = "kill9/batch.rs"]
mod batch;
#[path = "kill9/check.rs"]
mod check;
#[path = "kill9/child.rs"]
mod child;
#[path = "kill9/cycle.rs"]
mod cycle;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use softadastra_wal::{WalConfig, WalRecord};
use tempfile::TempDir;

use child::{Mode, Msg, Spec, THREADS};
use cycle::{KillAt, Outcome};
use support::{Expected, Ident, Report, Rng};

/// Kill/recover cycles at volume 1.
const BASE_CYCLES: u64 = 2_000;
/// The longest a child appends before it is killed.
const MAX_APPEND_MS: u64 = 40;

fn main() -> ExitCode {
    if let Some(code) = child::run_if_child() {
        return code;
    }
    let seed = support::seed();
    println!("kill9: seed={seed} (replay with SOFTADASTRA_WAL_SEED={seed})");
    let started = Instant::now();
    let mut harness = Harness::new(seed);
    for _ in 0..support::volume(BASE_CYCLES) {
        harness.cycle();
    }
    harness.print_stats(started.elapsed());
    harness.report.finish()
}

/// The log being crashed over and over, and what it must hold.
struct Log {
    dir: PathBuf,
    expected: Expected,
    /// Cycles run on this directory, and after how many it is replaced by a fresh one.
    cycles: u64,
    reset_after: u64,
}

/// How the kills fell, for the closing summary.
#[derive(Default)]
struct Stats {
    before_open: u64,
    during_open: u64,
    appending: u64,
    acks: u64,
    truncations: u64,
    recovery_kills: u64,
    recoveries_interrupted: u64,
    /// Of those, recoveries of a crash image with a torn tail to cut.
    repairs_interrupted: u64,
    /// Crash images whose recovery cut a torn tail.
    torn: u64,
    /// Crash images with traces of a rotation in progress: a half-made segment, and a full
    /// segment not sealed yet.
    temp_files: u64,
    unsealed: u64,
    resets: u64,
    /// Wall time spent running children, and checking.
    in_children: Duration,
    in_checks: Duration,
}

struct Harness {
    seed: u64,
    rng: Rng,
    report: Report,
    /// Holds every directory of the run; removed at the end.
    root: TempDir,
    log: Log,
    /// The next child's first writer id; never reused, so identities never repeat.
    next_writer: u32,
    /// Batches are stamped with the clock; their timestamps must fall after this.
    start_ms: u64,
    cycle: u64,
    /// A running average of how long `WalStore::open` takes in a child (microseconds), so that
    /// kills aimed at recovery land inside it.
    open_micros: u64,
    stats: Stats,
}

impl Harness {
    fn new(seed: u64) -> Harness {
        let root = check::scratch_dir("softadastra-kill9-");
        let mut rng = Rng::new(seed);
        let log = Log {
            dir: root.path().join("log-0"),
            expected: Expected::default(),
            cycles: 0,
            reset_after: rng.range(10, 40),
        };
        Harness {
            seed,
            rng,
            report: Report::new("kill9"),
            root,
            log,
            next_writer: 0,
            start_ms: batch::now_ms(),
            cycle: 0,
            open_micros: 500,
            stats: Stats::default(),
        }
    }

    /// One kill of an appending child, then recovery and the check.
    fn cycle(&mut self) {
        self.cycle += 1;
        if self.log.cycles >= self.log.reset_after {
            self.reset();
        }
        self.log.cycles += 1;
        let spec = self.next_spec();
        let kill_at = self.pick_kill();
        let child_started = Instant::now();
        let outcome = match cycle::run_child(Mode::Append, &spec, kill_at) {
            Ok(o) => o,
            Err(e) => return self.fail(kill_at, vec![format!("could not run the child: {e}")]),
        };
        self.stats.in_children += child_started.elapsed();
        let check_started = Instant::now();
        self.count_kill(&outcome);
        let mut problems = child_problems(&outcome, "appending child");
        let unfinished_truncation = self.apply_acks(&outcome, &mut problems);
        // A truncation that was started but not acknowledged may or may not have happened: the
        // records below it may be gone, but only for this check.
        let mut expected = self.log.expected.clone();
        if let Some(seq) = unfinished_truncation {
            expected.truncated_before = expected.truncated_before.max(seq);
        }
        let recovered = self.recover(&spec, &expected);
        self.stats.in_checks += check_started.elapsed();
        match recovered {
            Ok(records) if problems.is_empty() => self.passed(&records),
            Ok(_) => self.fail(kill_at, problems),
            Err(bad) => {
                problems.extend(bad);
                self.fail(kill_at, problems);
            }
        }
    }

    /// Recovers the crash image and checks it. A copy is recovered first (the reference). Mostly
    /// the log then continues on that copy and the untouched original is kept as the crash image;
    /// sometimes (usually when the image has a torn tail to repair) the original is recovered by
    /// children killed part-way, and then must recover to exactly the reference (I4).
    fn recover(&mut self, spec: &Spec, expected: &Expected) -> Result<Vec<WalRecord>, Vec<String>> {
        let traces = check::rotation_traces(&self.log.dir);
        self.stats.temp_files += u64::from(traces.temp_file);
        self.stats.unsealed += u64::from(traces.unsealed_predecessor);
        let reference_dir = self.root.path().join("reference");
        check::copy_dir(&self.log.dir, &reference_dir)
            .map_err(|e| vec![format!("could not copy the crash image: {e}")])?;
        let window = self.window();
        // On failure the log directory still is the crash image, and is kept as such.
        let reference =
            check::recover_and_check(&reference_dir, config_of(spec), expected, &window)
                .inspect_err(|_| self.keep_log_as_crash_image())?;
        self.stats.torn += u64::from(reference.torn);
        let interrupt = if reference.torn {
            self.rng.one_in(2)
        } else {
            self.rng.one_in(10)
        };
        if !interrupt {
            self.keep_log_as_crash_image();
            std::fs::rename(&reference_dir, &self.log.dir)
                .map_err(|e| vec![format!("could not move the recovered copy: {e}")])?;
            return Ok(reference.records);
        }
        check::copy_dir(&self.log.dir, &self.crash_image())
            .map_err(|e| vec![format!("could not copy the crash image: {e}")])?;
        self.recover_interrupted(spec, expected, &reference)
    }

    /// Moves the log directory (a crash image nobody recovered yet) to where a failure keeps it.
    fn keep_log_as_crash_image(&self) {
        let image = self.crash_image();
        let _ = std::fs::remove_dir_all(&image);
        if std::fs::rename(&self.log.dir, &image).is_err() {
            // No log directory yet (the child died before creating it).
            let _ = std::fs::create_dir_all(&image);
        }
    }

    /// The child for this cycle: the current log, a configuration that varies between cycles
    /// (existing segments keep theirs), fresh writer ids and a seed.
    fn next_spec(&mut self) -> Spec {
        const SEGMENTS: [u64; 4] = [16 << 10, 32 << 10, 64 << 10, 64 << 10];
        const INTERVALS: [u64; 4] = [64, 256, 256, 4096];
        let spec = Spec {
            dir: self.log.dir.clone(),
            segment_size: SEGMENTS[self.rng.below(4) as usize],
            index_interval: INTERVALS[self.rng.below(4) as usize],
            writer_base: self.next_writer,
            seed: self.rng.next_u64(),
        };
        self.next_writer += THREADS;
        spec
    }

    /// A random kill moment over the child's whole life: during start-up, during recovery, and
    /// (mostly) while it appends, sometimes at once.
    fn pick_kill(&mut self) -> KillAt {
        match self.rng.below(100) {
            0..=11 => KillAt::Spawned(Duration::from_micros(self.rng.range(0, 4_000))),
            12..=29 => self.during_recovery(),
            30..=36 => KillAt::Ready(Duration::ZERO),
            _ => KillAt::Ready(Duration::from_micros(
                self.rng.range(0, MAX_APPEND_MS * 1000),
            )),
        }
    }

    /// A kill aimed inside `WalStore::open`: within its usual duration after the child said it
    /// is starting it (the message's way through the pipe adds a little).
    fn during_recovery(&mut self) -> KillAt {
        let micros = self.rng.range(0, self.open_micros);
        KillAt::Opening(Duration::from_micros(micros))
    }

    /// Folds the child's acknowledgements into the log's expectations: acknowledged appends, and
    /// acknowledged truncations (only once `truncate_before` returned `Ok`). A sequence number
    /// acknowledged for two different records is a violation (a reused number). Returns the
    /// target of a truncation the child started but was killed before it was acknowledged.
    fn apply_acks(&mut self, outcome: &Outcome, problems: &mut Vec<String>) -> Option<u64> {
        let mut unfinished = None;
        for msg in &outcome.msgs {
            match *msg {
                Msg::Ack(seq, who) => {
                    self.stats.acks += 1;
                    if let Some(&held) = self.log.expected.acked.get(&seq)
                        && held != who
                    {
                        problems.push(format!(
                            "seq {seq} acknowledged for writer {} record {}, but it already held \
                             writer {} record {}",
                            who.writer, who.counter, held.writer, held.counter
                        ));
                    }
                    self.log.expected.ack(seq, who);
                }
                Msg::TruncateIntent(seq) => unfinished = Some(seq),
                Msg::Truncated(seq) => {
                    self.stats.truncations += 1;
                    unfinished = None;
                    let tb = &mut self.log.expected.truncated_before;
                    *tb = (*tb).max(seq);
                }
                _ => {}
            }
        }
        unfinished
    }

    /// Recovers the log in children killed part-way (one to three times), then in this process,
    /// and requires the log a clean recovery of the same crash image gave (I4).
    fn recover_interrupted(
        &mut self,
        spec: &Spec,
        expected: &Expected,
        reference: &check::Recovered,
    ) -> Result<Vec<WalRecord>, Vec<String>> {
        let window = self.window();
        let mut bad = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            let kill_at = self.during_recovery();
            match cycle::run_child(Mode::Recover, spec, kill_at) {
                Ok(out) => {
                    self.stats.recovery_kills += 1;
                    if out.killed && !out.opened() {
                        self.stats.recoveries_interrupted += 1;
                        self.stats.repairs_interrupted += u64::from(reference.torn);
                    }
                    bad.extend(child_problems_recovering(&out));
                }
                Err(e) => bad.push(format!("could not run the recovering child: {e}")),
            }
        }
        let records =
            check::recover_and_check(&self.log.dir, config_of(spec), expected, &window)?.records;
        let reference = &reference.records;
        if records != *reference {
            bad.push(format!(
                "I4: recovery after an interrupted recovery gives {} records (last {:?}), a clean \
                 recovery of the same crash image {} (last {:?})",
                records.len(),
                records.last().map(|r| r.seq),
                reference.len(),
                reference.last().map(|r| r.seq),
            ));
        }
        if bad.is_empty() {
            Ok(records)
        } else {
            Err(bad)
        }
    }

    /// The cycle passed: the recovered log is now what the log must hold (a later crash cannot
    /// take back a record recovery kept).
    fn passed(&mut self, records: &[WalRecord]) {
        let expected = &mut self.log.expected;
        expected.acked.clear();
        for r in records {
            if let Some(who) = Ident::of_payload(&r.payload) {
                expected.ack(r.seq, who);
            }
        }
        self.report.case();
    }

    /// Counts a violation (with everything needed to look into it), keeps the crash image, and
    /// starts over on a fresh log.
    fn fail(&mut self, kill_at: KillAt, problems: Vec<String>) {
        let kept = std::env::temp_dir().join(format!(
            "softadastra-kill9-seed{}-cycle{}",
            self.seed, self.cycle
        ));
        let kept = match check::copy_dir(&self.crash_image(), &kept) {
            Ok(()) => kept.display().to_string(),
            Err(e) => format!("(not kept: {e})"),
        };
        for p in &problems {
            self.report.violation(format!(
                "seed {} cycle {} (kill {kill_at:?}, crash image {kept}): {p}",
                self.seed, self.cycle
            ));
        }
        if problems.is_empty() {
            self.report.violation(format!(
                "seed {} cycle {}: unknown failure",
                self.seed, self.cycle
            ));
        }
        self.reset();
    }

    /// Replaces the log by a fresh, empty one.
    fn reset(&mut self) {
        self.stats.resets += 1;
        let _ = std::fs::remove_dir_all(&self.log.dir);
        self.log = Log {
            dir: self.root.path().join(format!("log-{}", self.cycle)),
            expected: Expected::default(),
            cycles: 0,
            reset_after: self.rng.range(10, 40),
        };
    }

    fn crash_image(&self) -> PathBuf {
        self.root.path().join("crash-image")
    }

    fn window(&self) -> std::ops::RangeInclusive<u64> {
        batch::clock_window(self.start_ms)
    }

    fn count_kill(&mut self, outcome: &Outcome) {
        if let Some(took) = outcome.open_time() {
            let micros = took.as_micros() as u64;
            self.open_micros = (self.open_micros * 7 + micros) / 8;
        }
        let s = &mut self.stats;
        match (outcome.began_open(), outcome.opened()) {
            (false, _) => s.before_open += 1,
            (true, false) => s.during_open += 1,
            (true, true) => s.appending += 1,
        }
    }

    fn print_stats(&self, elapsed: Duration) {
        let s = &self.stats;
        println!(
            "kill9: kills before open={} during open={} while appending={}; crash images with a torn \
             tail={}, a half-made segment={}, an unsealed full segment={}; acks={} \
             truncations={}; recovery children killed={} (interrupted mid-recovery={}, \
             of a torn tail={}); fresh logs={}; open takes ~{}us; {:.1}s ({:.1}s in appending \
             children, {:.1}s recovering and checking)",
            s.before_open,
            s.during_open,
            s.appending,
            s.torn,
            s.temp_files,
            s.unsealed,
            s.acks,
            s.truncations,
            s.recovery_kills,
            s.recoveries_interrupted,
            s.repairs_interrupted,
            s.resets,
            self.open_micros,
            elapsed.as_secs_f64(),
            s.in_children.as_secs_f64(),
            s.in_checks.as_secs_f64(),
        );
    }
}

fn config_of(spec: &Spec) -> impl Fn(&Path) -> WalConfig + use<> {
    let (segment, interval) = (spec.segment_size, spec.index_interval);
    move |dir: &Path| {
        WalConfig::new(dir)
            .segment_size(segment)
            .index_interval(interval)
    }
}

/// What an appending child did wrong by itself: a failure it reported (a library error or a
/// panic), hanging before its kill, or ending without being killed.
fn child_problems(outcome: &Outcome, who: &str) -> Vec<String> {
    let mut bad: Vec<String> = outcome
        .failures()
        .map(|why| format!("{who} failed: {why}"))
        .collect();
    if outcome.hung {
        bad.push(format!(
            "{who} did not reach its kill moment within the timeout (hung?)"
        ));
    }
    if !outcome.killed && bad.is_empty() {
        bad.push(format!("{who} ended on its own ({})", outcome.status));
    }
    bad
}

/// As [`child_problems`] for a child that only recovers: exiting on its own after a complete
/// recovery is expected.
fn child_problems_recovering(outcome: &Outcome) -> Vec<String> {
    if !outcome.killed && outcome.opened() && outcome.exited_ok {
        return Vec::new();
    }
    child_problems(outcome, "recovering child")
}
