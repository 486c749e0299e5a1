//! Harness 3, `power-cut`: real power cuts of an ext4 file system on a loop device.
//!
//! Each cut: a child process (this binary re-executed) opens the store on the loop-mounted file
//! system and appends from one to three threads (single records and atomic batches, now and
//! then a truncation), reporting every acknowledged sequence number on a pipe only after the
//! append returned `Ok`. At a random moment the parent issues `FS_IOC_SHUTDOWN` with
//! `NOLOGFLUSH`: whatever ext4 had not committed is gone, and every later I/O fails with `EIO`.
//! The child should then see its flush fail and its writer poison (or die of `SIGBUS` touching a
//! mapped page, which is a crash too). The parent kills it, unmounts, mounts again (ext4 replays
//! its journal) and checks I1-I5 against everything acknowledged so far on that log, plus batch
//! atomicity.
//!
//! Which acknowledgements count: unlike a real power cut, the shutdown leaves the child running,
//! and a flush that races with it can return success although its data did not make it (ext4
//! does not report the failed conversion of unwritten extents to such a flush). No real power cut
//! lets anyone see such an acknowledgement. So each acknowledgement carries two wall-clock stamps
//! (append called, append returned): returned before the cut began means it must survive; called
//! after the shutdown ioctl returned means it must not exist at all (a violation: every flush
//! fails then); in between it is counted (`acks_during_cut`, and how many of those were lost)
//! but not required. Inside the child, an append that starts after another one failed must fail
//! too, and a failed append must leave the writer poisoned.
//!
//! Logs live across many cuts; a new log (and now and then a new file system, sometimes with
//! 1 KiB blocks) is started from time to time. Some checks are deferred, so that the next child
//! is the first to recover the log, and is often cut while it does (an interrupted recovery, I4).
//!
//! `SOFTADASTRA_WAL_SEED` replays the decisions (not the timing) of a run;
//! `SOFTADASTRA_WAL_POWER_CUT_KEEP=<dir>` keeps a copy of every log that fails its check, as the
//! cut left it, with what the children said.

mod support;

#[path = "support/loopfs.rs"]
mod loopfs;

use std::process::ExitCode;

/// Set in a child's environment: the child's job, see [`child::Job`].
const CHILD_VAR: &str = "SOFTADASTRA_WAL_POWER_CUT_CHILD";
/// The log directory of a child.
const CHILD_DIR_VAR: &str = "SOFTADASTRA_WAL_POWER_CUT_DIR";

fn main() -> ExitCode {
    match std::env::var(CHILD_VAR) {
        Ok(job) => child::run(&job),
        Err(_) => parent::run(),
    }
}

/// The geometry of one log; every child and every check of that log uses it.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    segment_size: u64,
    index_interval: u64,
}

impl Geometry {
    fn config(self, dir: &std::path::Path) -> softadastra_wal::WalConfig {
        softadastra_wal::WalConfig::new(dir)
            .segment_size(self.segment_size)
            .index_interval(self.index_interval)
            .sync_mode(softadastra_wal::SyncMode::Always)
    }
}

/// The wall clock in nanoseconds since the epoch. Parent and child read the same system clock,
/// so an acknowledgement stamped before the parent's stamp of the cut was returned before the
/// cut began.
fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The child: appends and reports, until the file system goes away under it.
mod child {
    use std::io::Write as _;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    use softadastra_wal::{Error, WalStore, WalWriter};

    use super::Geometry;
    use crate::support::{BATCH_WRITER_BIT, Ident, Rng, append_idents};

    /// What the parent asks of a child, passed as one environment variable.
    pub struct Job {
        pub seed: u64,
        pub writer_base: u32,
        pub threads: u32,
        pub geometry: Geometry,
    }

    impl Job {
        pub fn encode(&self) -> String {
            format!(
                "{} {} {} {} {}",
                self.seed,
                self.writer_base,
                self.threads,
                self.geometry.segment_size,
                self.geometry.index_interval
            )
        }

        fn decode(text: &str) -> Option<Job> {
            let v: Vec<u64> = text
                .split_whitespace()
                .map(|w| w.parse().ok())
                .collect::<Option<_>>()?;
            let [seed, writer_base, threads, segment_size, index_interval] = v[..] else {
                return None;
            };
            Some(Job {
                seed,
                writer_base: u32::try_from(writer_base).ok()?,
                threads: u32::try_from(threads).ok()?,
                geometry: Geometry {
                    segment_size,
                    index_interval,
                },
            })
        }
    }

    /// Lines to the parent, written whole under stdout's lock (threads never interleave) and
    /// flushed at once: what the parent reads was acknowledged, even if the child dies next.
    fn say(line: &str) {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The parent is gone; nobody is left to report to.
            std::process::exit(3);
        }
    }

    pub fn run(job: &str) -> ExitCode {
        let (Some(job), Ok(dir)) = (Job::decode(job), std::env::var(super::CHILD_DIR_VAR)) else {
            eprintln!("power-cut child: bad job {job:?}");
            return ExitCode::from(2);
        };
        let store = match WalStore::open(job.geometry.config(dir.as_ref())) {
            Ok(store) => store,
            Err(e) => {
                say(&format!("OPENERR {}\n", one_line(&e)));
                park();
            }
        };
        say("READY\n");
        let shared = Arc::new(Shared {
            store,
            failed: AtomicBool::new(false),
            last_acked: AtomicU64::new(0),
        });
        let threads: Vec<_> = (0..job.threads)
            .map(|t| {
                let shared = shared.clone();
                let rng = Rng::new(job.seed ^ (u64::from(t) << 32));
                let writer = job.writer_base + t;
                std::thread::spawn(move || append_until_failure(&shared, writer, rng))
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        say("DONE\n");
        park();
    }

    /// Waits to be killed (the parent always kills its child after the cut). A child whose
    /// parent died exits on its own after a while.
    fn park() -> ! {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(4);
    }

    fn one_line(e: &Error) -> String {
        e.to_string().replace('\n', " ")
    }

    struct Shared {
        store: WalStore,
        /// Set once any thread's append failed: every append that starts later must fail too.
        failed: AtomicBool,
        last_acked: AtomicU64,
    }

    /// One thread's appends: single records as writer `writer`, batches as writer
    /// `writer | BATCH_WRITER_BIT` (their timestamps come from the clock), each with counters 0,
    /// 1, 2, ... (a counter is used once, whether its append is acknowledged or not).
    fn append_until_failure(shared: &Shared, writer: u32, mut rng: Rng) {
        let w = shared.store.writer();
        let max = shared
            .store
            .config()
            .max_payload()
            .map_or(4096, |m| m as usize);
        let (mut single, mut batched) = (0u64, 0u64);
        loop {
            if writer.is_multiple_of(8) && rng.one_in(150) {
                truncate(shared, &mut rng);
            }
            let started_after_failure = shared.failed.load(Ordering::SeqCst);
            let started = super::wall_ns();
            let result = if rng.one_in(5) {
                let len = rng.range(2, 6);
                let first = Ident::new(writer | BATCH_WRITER_BIT, batched);
                batched += len;
                // Announced before it is appended: the parent checks it is all or nothing.
                say(&format!("B {} {} {len}\n", first.writer, first.counter));
                let idents: Vec<Ident> = (0..len)
                    .map(|i| Ident::new(first.writer, first.counter + i))
                    .collect();
                append_idents(&w, &idents, max / 8).map(|seq| (seq, idents))
            } else {
                let one = Ident::new(writer, single);
                single += 1;
                append_idents(&w, &[one], max).map(|seq| (seq, vec![one]))
            };
            match result {
                Ok((first, idents)) => {
                    if started_after_failure {
                        say(&format!("LATE {first}\n"));
                    }
                    ack(shared, first, &idents, started);
                }
                Err(e) => {
                    after_failure(shared, &w, &e, Ident::new(writer, single), max);
                    return;
                }
            }
        }
    }

    /// Reports an acknowledgement with two wall-clock stamps: when the append was called
    /// (`started`) and right after it returned. The parent compares them with the cut.
    fn ack(shared: &Shared, first: u64, idents: &[Ident], started: u64) {
        let at = super::wall_ns();
        let mut lines = String::new();
        for (seq, who) in (first..).zip(idents) {
            lines.push_str(&format!(
                "A {seq} {} {} {started} {at}\n",
                who.writer, who.counter
            ));
        }
        say(&lines);
        let last = first + idents.len() as u64 - 1;
        shared.last_acked.fetch_max(last, Ordering::SeqCst);
    }

    /// After an append failed: the writer must be poisoned, and a further append must fail.
    fn after_failure(shared: &Shared, w: &WalWriter, e: &Error, next: Ident, max: usize) {
        shared.failed.store(true, Ordering::SeqCst);
        say(&format!("E {}\n", one_line(e)));
        if w.is_poisoned() {
            say("P\n");
        } else {
            say(&format!("NP {}\n", one_line(e)));
        }
        let started = super::wall_ns();
        if let Ok(seq) = append_idents(w, &[next], max) {
            say(&format!("LATE {seq}\n"));
            ack(shared, seq, &[next], started);
        }
    }

    /// Deletes old segments. The intent is reported first: a truncation that fails half-way
    /// may still have deleted some segments, and records below the target may then be gone.
    fn truncate(shared: &Shared, rng: &mut Rng) {
        let last = shared.last_acked.load(Ordering::SeqCst);
        if last < 2 {
            return;
        }
        let target = rng.range(1, last);
        say(&format!("T {target}\n"));
        // A failure here poisons the writer; the next append reports it.
        let _ = shared.store.truncate_before(target);
    }
}

/// The parent: cuts, remounts and checks.
mod parent {
    use std::collections::HashMap;
    use std::io::{BufRead as _, BufReader, Read as _};
    use std::os::unix::process::ExitStatusExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::sync::mpsc::{Receiver, RecvTimeoutError};
    use std::time::{Duration, Instant};

    use super::child::Job;
    use super::{CHILD_DIR_VAR, CHILD_VAR, Geometry};
    use crate::loopfs::{Format, LoopFs};
    use crate::support::{self, Expected, Ident, Report, Rng};
    use softadastra_wal::WalRecord;

    const HARNESS: &str = "power-cut";
    /// Keeps a copy of each log that fails its check (see [`keep_copy`]).
    const KEEP_VAR: &str = "SOFTADASTRA_WAL_POWER_CUT_KEEP";
    /// Cuts per run at soak 1.
    const BASE_CUTS: u64 = 200;
    /// Size of the loop-mounted file system.
    const FS_SIZE: u64 = 192 << 20;
    /// A log whose segments take more than this is replaced by a new one.
    const MAX_LOG_BYTES: u64 = 40 << 20;

    /// One log on the file system, checked across the cuts that wrote it.
    struct Log {
        dir: PathBuf,
        geometry: Geometry,
        expected: Expected,
        /// Every batch announced on this log: first identity -> number of records.
        batches: HashMap<Ident, u64>,
        /// The last cut was not followed by a check yet.
        unchecked: bool,
        /// When the log was started (ms since the epoch): batch timestamps are later.
        started_ms: u64,
        /// What the children said since the last check (kept with a failing log).
        lines: Vec<String>,
        /// Acknowledged after the cut began, since the last check: seq -> identity.
        during_cut: HashMap<u64, Ident>,
    }

    impl Log {
        fn new(fs: &LoopFs, n: u64, rng: &mut Rng) -> Log {
            let segment_size = [64 << 10, 128 << 10, 256 << 10][rng.below(3) as usize];
            let index_interval = [256, 1024, 4096][rng.below(3) as usize];
            Log {
                dir: fs.path().join(format!("log-{n}")),
                geometry: Geometry {
                    segment_size,
                    index_interval,
                },
                expected: Expected::default(),
                batches: HashMap::new(),
                unchecked: false,
                started_ms: support::now_ms(),
                lines: Vec::new(),
                during_cut: HashMap::new(),
            }
        }

        fn bytes_on_disk(&self) -> u64 {
            std::fs::read_dir(&self.dir)
                .map(|d| {
                    d.filter_map(|e| e.ok()?.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0)
        }
    }

    /// What the children did, over the whole run.
    #[derive(Default)]
    struct Tally {
        acks: u64,
        acks_during_cut: u64,
        /// Of those, how many did not survive the cut.
        acks_during_cut_lost: u64,
        children_with_error: u64,
        children_poisoned: u64,
        open_errors: u64,
        cut_before_ready: u64,
        sigbus: u64,
        killed: u64,
        exited: u64,
        deferred_checks: u64,
        new_logs: u64,
        new_fs: u64,
        cuts_small_blocks: u64,
    }

    pub fn run() -> ExitCode {
        let mut report = Report::new(HARNESS);
        let seed = support::seed();
        let cuts = support::volume(BASE_CUTS);
        println!("{HARNESS}: seed={seed} cuts={cuts} (replay with SOFTADASTRA_WAL_SEED={seed})");
        if let Err(reason) = crate::loopfs::unavailable() {
            eprintln!("{HARNESS}: no loop-mounted ext4 here: {reason}");
            report.skip(skip_reason(&reason));
            return report.finish();
        }
        let mut fs = match LoopFs::create(FS_SIZE, Format::default()) {
            Ok(fs) => fs,
            // Root and loop devices are here: not being able to use them is a failure, never a
            // silent skip (a missing tool, a broken mount).
            Err(reason) => {
                report.violation(format!("could not make the loop-mounted ext4: {reason}"));
                return report.finish();
            }
        };
        let started = Instant::now();
        let tally = run_cuts(&mut fs, seed, cuts, &mut report);
        print_tally(&tally, started.elapsed());
        drop(fs);
        report.finish()
    }

    /// A short reason for the result line.
    fn skip_reason(reason: &str) -> String {
        if reason.starts_with("not root") {
            "not_root".into()
        } else if reason.starts_with("no /dev/loop-control") {
            "no_loop_device".into()
        } else {
            "loop_mount_failed".into()
        }
    }

    fn run_cuts(fs: &mut LoopFs, seed: u64, cuts: u64, report: &mut Report) -> Tally {
        let mut rng = Rng::new(seed);
        let mut tally = Tally::default();
        let mut logs = 0;
        let mut log = Log::new(fs, logs, &mut rng);
        for cut in 0..cuts {
            if cut > 0 && !log.unchecked && rng.one_in(25) {
                // Mostly 4 KiB blocks as on real disks; sometimes 1 KiB, where a page is
                // written back in pieces.
                let format = Format {
                    block_size: if rng.one_in(3) { 1024 } else { 4096 },
                    inodes: None,
                };
                if let Err(e) = fs.reformat(format) {
                    report.violation(format!(
                        "cut {cut}: could not format a new file system: {e}"
                    ));
                    break;
                }
                tally.new_fs += 1;
                logs += 1;
                log = Log::new(fs, logs, &mut rng);
            } else if cut > 0
                && !log.unchecked
                && (rng.one_in(15) || log.bytes_on_disk() > MAX_LOG_BYTES)
            {
                let _ = std::fs::remove_dir_all(&log.dir);
                tally.new_logs += 1;
                logs += 1;
                log = Log::new(fs, logs, &mut rng);
            }
            let cut_seed = rng.next_u64();
            tally.cuts_small_blocks += u64::from(fs.block_size() < 4096);
            let ok = one_cut(fs, &mut log, cut, cut_seed, &mut tally, report);
            report.case();
            if !ok {
                break;
            }
        }
        if log.unchecked {
            check(&mut log, cuts, &mut tally, report);
        }
        tally
    }

    /// One cut of one child, then (usually) a check. False when the file system is unusable.
    fn one_cut(
        fs: &mut LoopFs,
        log: &mut Log,
        cut: u64,
        cut_seed: u64,
        tally: &mut Tally,
        report: &mut Report,
    ) -> bool {
        let mut rng = Rng::new(cut_seed);
        let job = Job {
            seed: rng.next_u64(),
            writer_base: u32::try_from(cut * 8).unwrap_or(u32::MAX - 8),
            threads: rng.range(1, 3) as u32,
            geometry: log.geometry,
        };
        // After an unchecked cut the child recovers the log itself: cut that recovery often.
        let before_ready = rng.one_in(if log.unchecked { 2 } else { 8 });
        let child = match run_child(fs, log, &job, before_ready, &mut rng, cut) {
            Ok(child) => child,
            Err(e) => {
                report.violation(format!("cut {cut} (cut seed {cut_seed}): {e}"));
                return false;
            }
        };
        tally.cut_before_ready += u64::from(before_ready);
        apply_lines(&child, log, cut, tally, report);
        if let Err(e) = fs.remount() {
            report.violation(format!("cut {cut}: remount after the cut failed: {e}"));
            return false;
        }
        log.unchecked = true;
        if rng.one_in(5) {
            tally.deferred_checks += 1;
        } else {
            check(log, cut, tally, report);
        }
        true
    }

    /// Recovers the log and checks I1-I5 against everything acknowledged on it, and that every
    /// batch is in it whole or not at all.
    fn check(log: &mut Log, cut: u64, tally: &mut Tally, report: &mut Report) {
        let geometry = log.geometry;
        let config = move |d: &Path| geometry.config(d);
        // Batch records carry the clock of the run that appended them.
        let window = log.started_ms.saturating_sub(1_000)..=support::now_ms() + 1_000;
        let kept = keep_copy(log);
        let bad = match support::recover_and_check_batches(&log.dir, config, &log.expected, window)
        {
            Ok(records) => {
                let during_cut = &log.during_cut;
                tally.acks_during_cut_lost += lost(&records, during_cut, &log.expected);
                // What a recovery found after a remount is on disk: later cuts must keep it.
                for r in &records {
                    if let Some(who) = Ident::of_payload(&r.payload) {
                        log.expected.ack(r.seq, who);
                    }
                }
                check_batches(&records, &log.batches)
            }
            Err(bad) => bad,
        };
        if let Some(copy) = kept
            && !bad.is_empty()
        {
            let to = copy.with_file_name(format!("cut-{cut}"));
            let _ = std::fs::rename(&copy, &to);
            let _ = std::fs::write(to.join("child-lines.txt"), log.lines.join("\n"));
            eprintln!(
                "{HARNESS}: the log before recovery is kept in {}",
                to.display()
            );
        }
        for b in bad {
            report.violation(format!("after cut {cut}, log {}: {b}", log.dir.display()));
        }
        log.lines.clear();
        log.during_cut.clear();
        log.unchecked = false;
    }

    /// How many of `acked` (seq -> identity) are not in `records` (and were not truncated).
    fn lost(records: &[WalRecord], acked: &HashMap<u64, Ident>, expected: &Expected) -> u64 {
        let present: HashMap<u64, Option<Ident>> = records
            .iter()
            .map(|r| (r.seq, Ident::of_payload(&r.payload)))
            .collect();
        acked
            .iter()
            .filter(|(seq, who)| {
                **seq >= expected.truncated_before && present.get(seq) != Some(&Some(**who))
            })
            .count() as u64
    }

    /// With `SOFTADASTRA_WAL_POWER_CUT_KEEP=<dir>`, copies the log as the cut left it to
    /// `<dir>/pending`, to be kept (as `<dir>/cut-N`, with the child's report) if the check
    /// finds a violation.
    fn keep_copy(log: &Log) -> Option<PathBuf> {
        let keep = PathBuf::from(std::env::var_os(KEEP_VAR)?);
        let pending = keep.join("pending");
        let _ = std::fs::remove_dir_all(&pending);
        let _ = std::fs::create_dir_all(&keep);
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&log.dir)
            .arg(&pending)
            .status()
            .is_ok_and(|s| s.success());
        copied.then_some(pending)
    }

    /// Batch atomicity: each announced batch is absent, or present whole with consecutive
    /// sequence numbers and one timestamp.
    fn check_batches(records: &[WalRecord], batches: &HashMap<Ident, u64>) -> Vec<String> {
        let by_ident: HashMap<Ident, &WalRecord> = records
            .iter()
            .filter_map(|r| Some((Ident::of_payload(&r.payload)?, r)))
            .collect();
        let mut bad = Vec::new();
        for (&first, &len) in batches {
            let members: Vec<&WalRecord> = (0..len)
                .filter_map(|i| by_ident.get(&Ident::new(first.writer, first.counter + i)))
                .copied()
                .collect();
            let whole = members.len() as u64 == len
                && members
                    .windows(2)
                    .all(|p| p[1].seq == p[0].seq + 1 && p[1].timestamp == p[0].timestamp);
            if !members.is_empty() && !whole {
                bad.push(format!(
                    "batch of {len} records from writer {:#x} counter {} is torn: {} of them \
                     present (seqs {:?})",
                    first.writer,
                    first.counter,
                    members.len(),
                    members.iter().map(|r| r.seq).collect::<Vec<_>>()
                ));
            }
        }
        bad
    }

    /// Runs one child, cuts the power under it, kills it and returns what it said.
    fn run_child(
        fs: &LoopFs,
        log: &Log,
        job: &Job,
        before_ready: bool,
        rng: &mut Rng,
        cut: u64,
    ) -> Result<ChildRun, String> {
        let exe = std::env::current_exe().map_err(|e| format!("no current exe: {e}"))?;
        let mut child = Command::new(exe)
            .env(CHILD_VAR, job.encode())
            .env(CHILD_DIR_VAR, &log.dir)
            // Nothing of the child may keep the file system busy but its log files.
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a child: {e}"))?;
        let (lines, stderr) = read_output(&mut child);
        let result = cut_at_random(fs, &lines, before_ready, rng);
        // Kill whatever happened: a child left running would keep the file system busy.
        let _ = child.kill();
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for the child: {e}"))?;
        let cut_span = result?;
        let stderr = stderr.join().unwrap_or_default();
        Ok(ChildRun {
            lines: lines.iter().collect(),
            span: cut_span,
            signal: status.signal(),
            code: status.code(),
            stderr,
            cut,
        })
    }

    /// Everything known about one child after it died.
    pub struct ChildRun {
        lines: Vec<String>,
        /// When the cut began and when it was complete (wall clock, ns since the epoch; see
        /// [`cut_at_random`]).
        span: (u64, u64),
        signal: Option<i32>,
        code: Option<i32>,
        stderr: String,
        cut: u64,
    }

    /// Starts threads that collect the child's stdout (line by line) and its stderr.
    fn read_output(child: &mut Child) -> (Receiver<String>, std::thread::JoinHandle<String>) {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut err = child.stderr.take();
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut text);
            }
            text
        });
        (rx, stderr)
    }

    /// Waits a random time (from the start, or from the child's READY), then cuts the power.
    /// Returns when the cut began and when the ioctl had returned, on the wall clock the child
    /// stamps its acknowledgements with.
    fn cut_at_random(
        fs: &LoopFs,
        lines: &Receiver<String>,
        before_ready: bool,
        rng: &mut Rng,
    ) -> Result<(u64, u64), String> {
        if !before_ready {
            wait_ready(lines)?;
        }
        let delay = if before_ready {
            rng.below(30)
        } else {
            rng.below(150)
        };
        std::thread::sleep(Duration::from_millis(delay));
        let cut_ns = super::wall_ns();
        fs.power_cut()
            .map_err(|e| format!("FS_IOC_SHUTDOWN failed: {e}"))?;
        let cut_done = super::wall_ns();
        // The cut must be real: the file system now refuses every write.
        if std::fs::File::create(fs.path().join("after-the-cut")).is_ok() {
            return Err("the file system still accepts writes after FS_IOC_SHUTDOWN".into());
        }
        // Give the child a moment to run into the dead file system (and poison).
        std::thread::sleep(Duration::from_millis(rng.below(15)));
        Ok((cut_ns, cut_done))
    }

    /// Waits for the child's READY line (it has opened the store).
    fn wait_ready(lines: &Receiver<String>) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(l) if l == "READY" => return Ok(()),
                Ok(l) if l.starts_with("OPENERR") => {
                    return Err(format!(
                        "the child could not open the store before the cut: {l}"
                    ));
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err("the child did not open the store within 30 s".into());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err("the child died before it opened the store".into());
                }
            }
        }
    }

    /// Turns the child's report into acknowledgements and counts; flags what must not happen.
    fn apply_lines(
        run: &ChildRun,
        log: &mut Log,
        cut: u64,
        tally: &mut Tally,
        report: &mut Report,
    ) {
        let (mut error, mut poisoned) = (false, false);
        log.lines.push(format!("--- cut {cut}"));
        for line in &run.lines {
            log.lines.push(line.clone());
            let mut words = line.split_whitespace();
            match words.next() {
                Some("A") => match parse_ack(words) {
                    // Returned before the cut began: must survive it.
                    Some((seq, who, _, done)) if done < run.span.0 => {
                        log.expected.ack(seq, who);
                        tally.acks += 1;
                    }
                    // Called after the file system was dead: every flush fails, so this is an
                    // acknowledgement without a successful flush.
                    Some((seq, _, started, _)) if started > run.span.1 => {
                        report.violation(format!(
                            "cut {cut}: seq {seq} was acknowledged though its append began after \
                             the power cut"
                        ));
                    }
                    // Returned while the power went: no real power cut lets anyone see this
                    // acknowledgement, so the record need not survive (it usually does; ext4
                    // can report a flush racing with the shutdown as successful).
                    Some((seq, who, _, _)) => {
                        log.during_cut.insert(seq, who);
                        tally.acks_during_cut += 1;
                    }
                    None => report.violation(format!("cut {cut}: bad line {line:?}")),
                },
                Some("T") => {
                    if let Some(seq) = words.next().and_then(|w| w.parse::<u64>().ok()) {
                        let t = &mut log.expected.truncated_before;
                        *t = (*t).max(seq);
                    }
                }
                Some("B") => match parse_batch(words) {
                    Some((first, len)) => {
                        log.batches.insert(first, len);
                    }
                    None => report.violation(format!("cut {cut}: bad line {line:?}")),
                },
                Some("E") => error = true,
                Some("P") => poisoned = true,
                Some("OPENERR") => tally.open_errors += 1,
                Some("NP") => report.violation(format!(
                    "cut {cut}: an append failed but the writer is not poisoned: {line}"
                )),
                Some("LATE") => report.violation(format!(
                    "cut {cut}: an append that started after another had failed was acknowledged \
                     ({line})"
                )),
                _ => {}
            }
        }
        tally.children_with_error += u64::from(error);
        tally.children_poisoned += u64::from(poisoned);
        judge_exit(run, tally, report);
    }

    /// `A <seq> <writer> <counter> <called ns> <returned ns>`, after the `A`.
    fn parse_ack<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<(u64, Ident, u64, u64)> {
        let seq = words.next()?.parse().ok()?;
        let writer = words.next()?.parse().ok()?;
        let counter = words.next()?.parse().ok()?;
        let started = words.next()?.parse().ok()?;
        let done = words.next()?.parse().ok()?;
        Some((seq, Ident::new(writer, counter), started, done))
    }

    /// `B <writer> <counter> <len>`, after the `B`.
    fn parse_batch<'a>(mut words: impl Iterator<Item = &'a str>) -> Option<(Ident, u64)> {
        let writer = words.next()?.parse().ok()?;
        let counter = words.next()?.parse().ok()?;
        let len = words.next()?.parse().ok()?;
        Some((Ident::new(writer, counter), len))
    }

    /// SIGKILL (ours) and SIGBUS (a mapped page of the dead file system) are crashes; a panic
    /// or any other death is a violation (I5).
    fn judge_exit(run: &ChildRun, tally: &mut Tally, report: &mut Report) {
        const SIGBUS: i32 = 7;
        const SIGKILL: i32 = 9;
        match (run.signal, run.code) {
            (Some(SIGKILL), _) => tally.killed += 1,
            (Some(SIGBUS), _) => tally.sigbus += 1,
            (_, Some(4)) => tally.exited += 1,
            _ => report.violation(format!(
                "cut {}: the child died of signal {:?} / exit code {:?}: {}",
                run.cut,
                run.signal,
                run.code,
                run.stderr.trim()
            )),
        }
    }

    fn print_tally(t: &Tally, elapsed: Duration) {
        println!(
            "{HARNESS}: acks={} acks_during_cut={} (lost: {}) children_with_error={} \
             children_poisoned={} open_errors={} cut_before_ready={} sigbus={} killed={} \
             exited={} deferred_checks={} new_logs={} new_fs={} cuts_on_1k_blocks={} \
             elapsed={:.1}s",
            t.acks,
            t.acks_during_cut,
            t.acks_during_cut_lost,
            t.children_with_error,
            t.children_poisoned,
            t.open_errors,
            t.cut_before_ready,
            t.sigbus,
            t.killed,
            t.exited,
            t.deferred_checks,
            t.new_logs,
            t.new_fs,
            t.cuts_small_blocks,
            elapsed.as_secs_f64()
        );
    }
}
