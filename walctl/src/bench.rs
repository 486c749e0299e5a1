//! `walctl bench`: a short measurement of the log on the user's own disk.
//!
//! Four phases, each bounded in time so that the whole run stays under ten seconds (one with
//! `--quick`): durable appends from one thread (latency percentiles), durable appends from eight
//! threads (group commit throughput), unsynced bulk appends (bandwidth) and a replay of
//! everything written (checksums verified). The log is created in a directory that must be empty
//! or new, and removed at the end unless `--keep` is given.

use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalStore};

use crate::logdir;

/// Measure append and replay speed of a log on the disk holding DIR.
///
/// DIR must be empty or not exist; the test log created there is removed at the end.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Where to create the test log: on the disk to measure; empty or not existing.
    dir: PathBuf,
    /// About one second instead of about ten (fewer samples, rougher figures).
    #[arg(long)]
    quick: bool,
    /// Leave the test log in DIR afterwards (to look at it with the other commands).
    #[arg(long)]
    keep: bool,
}

/// Time and volume limits of one run.
struct Budget {
    /// Each of the three append phases.
    phase: Duration,
    /// Most single-thread durable appends (enough for a stable p99).
    latency_appends: usize,
    /// Most bytes of bulk payload.
    bulk_bytes: u64,
}

const FULL: Budget = Budget {
    phase: Duration::from_millis(2500),
    latency_appends: 20_000,
    bulk_bytes: 1 << 30,
};

const QUICK: Budget = Budget {
    phase: Duration::from_millis(150),
    latency_appends: 1_500,
    bulk_bytes: 16 << 20,
};

/// Payload of the durable phases: a typical small change record.
const SMALL: usize = 128;
/// Payload of the bulk phase.
const BULK: usize = 4096;
/// Threads of the group-commit phase.
const THREADS: usize = 8;

/// Runs `walctl bench`.
///
/// # Errors
///
/// One readable line: DIR is not empty or not a directory, or the log failed (a full disk, for
/// example). What was created is removed in every case unless `--keep` was given.
pub fn run(args: BenchArgs) -> Result<ExitCode, String> {
    let budget = if args.quick { QUICK } else { FULL };
    let workspace = Workspace::claim(&args.dir, args.keep)?;
    let dir = workspace.dir.clone();
    let config = WalConfig::new(&dir);
    println!(
        "walctl bench in {} ({}), {} MiB segments{}",
        dir.display(),
        file_system(&dir),
        config.get_segment_size() >> 20,
        if args.quick { ", quick run" } else { "" }
    );

    let fail = |e: softadastra_wal::Error| logdir::describe(&e);
    let store = WalStore::open(config.clone()).map_err(fail)?;
    let latency = durable_latency(&store, &budget).map_err(fail)?;
    let flushes_before = store.stats().map_err(fail)?.flushes;
    let group = durable_group(&store, &budget)?;
    let group_flushes = (store.stats().map_err(fail)?.flushes).saturating_sub(flushes_before);
    drop(store);

    let store = WalStore::open(config.sync_mode(SyncMode::Manual)).map_err(fail)?;
    let bulk = bulk(&store, &budget).map_err(fail)?;
    drop(store);

    let replay = replay(&dir).map_err(fail)?;

    // Aligned columns; each line ends with "(N records" so that scripts can check the counts.
    println!(
        "durable append, 1 thread, {SMALL} B:   p50 {}  p99 {}  ({} records)",
        micros(latency.p50),
        micros(latency.p99),
        latency.count
    );
    println!(
        "durable append, {THREADS} threads, {SMALL} B:  {:.1} k records/s  ({} records, {:.1} per flush)",
        group.count as f64 / group.took.as_secs_f64() / 1e3,
        group.count,
        group.count as f64 / group_flushes.max(1) as f64
    );
    println!(
        "unsynced bulk, {} KiB records:      {:.0} MB/s  ({} records, {} MiB, one sync at the end)",
        BULK >> 10,
        bulk.bytes as f64 / bulk.took.as_secs_f64() / 1e6,
        bulk.count,
        bulk.bytes >> 20
    );
    println!(
        "replay, checksums verified:        {:.2} GB/s  ({} records, {} MiB, open included)",
        replay.bytes as f64 / replay.took.as_secs_f64() / 1e9,
        replay.count,
        replay.bytes >> 20
    );
    if workspace.keep {
        println!("the test log is kept in {}", dir.display());
    }
    workspace.finish()?;
    Ok(ExitCode::SUCCESS)
}

/// The directory the bench writes in, and what it must remove at the end.
struct Workspace {
    dir: PathBuf,
    /// DIR did not exist: remove it whole at the end.
    created: bool,
    keep: bool,
}

impl Workspace {
    /// Checks that `dir` is new or empty and creates it if needed.
    fn claim(dir: &Path, keep: bool) -> Result<Workspace, String> {
        let created = match fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(format!(
                        "{} is not empty: give bench a new or empty directory to create its test log in",
                        dir.display()
                    ));
                }
                false
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                true
            }
            Err(e) => {
                return Err(format!(
                    "cannot use {} for the test log: {e}",
                    dir.display()
                ));
            }
        };
        Ok(Workspace {
            dir: dir.to_path_buf(),
            created,
            keep,
        })
    }

    /// Removes the test log (unless kept), reporting a failure.
    fn finish(mut self) -> Result<(), String> {
        let result = self.clean();
        self.keep = true; // done: nothing left for Drop
        result
    }

    fn clean(&self) -> Result<(), String> {
        if self.keep {
            return Ok(());
        }
        let failed =
            |e: io::Error| format!("cannot remove the test log in {}: {e}", self.dir.display());
        if self.created {
            return fs::remove_dir_all(&self.dir).map_err(failed);
        }
        // DIR was the user's empty directory: remove only the files the log creates in it.
        for entry in fs::read_dir(&self.dir).map_err(failed)? {
            let path = entry.map_err(failed)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if softadastra_wal::names::parse(name).is_some() {
                fs::remove_file(&path).map_err(failed)?;
            }
        }
        Ok(())
    }
}

impl Drop for Workspace {
    /// An error ended the run early: do not leave a gigabyte behind.
    fn drop(&mut self) {
        if let Err(e) = self.clean() {
            eprintln!("walctl: {e}");
        }
    }
}

struct Latency {
    p50: Duration,
    p99: Duration,
    count: usize,
}

/// Durable appends one after another: each pays a whole flush.
fn durable_latency(store: &WalStore, budget: &Budget) -> softadastra_wal::Result<Latency> {
    let writer = store.writer();
    let payload = [0x5a_u8; SMALL];
    let mut samples = Vec::with_capacity(budget.latency_appends);
    let mut progress = Progress::new("durable appends, 1 thread", budget.phase);
    let start = Instant::now();
    while samples.len() < budget.latency_appends && start.elapsed() < budget.phase {
        let t = Instant::now();
        writer.append(RecordType::Put, &payload)?;
        samples.push(t.elapsed());
        progress.show(samples.len() as f64 / budget.latency_appends as f64);
    }
    progress.finish();
    samples.sort_unstable();
    Ok(Latency {
        p50: percentile(&samples, 50),
        p99: percentile(&samples, 99),
        count: samples.len(),
    })
}

struct Throughput {
    count: u64,
    bytes: u64,
    took: Duration,
}

/// Durable appends from several threads at once: concurrent appends share flushes.
fn durable_group(store: &WalStore, budget: &Budget) -> Result<Throughput, String> {
    let appended = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + budget.phase;
    let mut progress = Progress::new("durable appends, 8 threads", budget.phase);
    let results = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let writer = store.writer();
                let appended = &appended;
                s.spawn(move || -> softadastra_wal::Result<()> {
                    let payload = [0xa5_u8; SMALL];
                    while Instant::now() < deadline {
                        writer.append(RecordType::Put, &payload)?;
                        appended.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        while Instant::now() < deadline && !workers.iter().all(|w| w.is_finished()) {
            thread::sleep(Duration::from_millis(20));
            progress.show(0.0);
        }
        workers
            .into_iter()
            .map(|w| match w.join() {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("a bench thread panicked".to_string()),
            })
            .collect::<Vec<_>>()
    });
    let took = start.elapsed();
    progress.finish();
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    let count = appended.load(Ordering::Relaxed);
    Ok(Throughput {
        count,
        bytes: count * SMALL as u64,
        took,
    })
}

/// Large unsynced appends, then one sync: the bandwidth of the write path.
fn bulk(store: &WalStore, budget: &Budget) -> softadastra_wal::Result<Throughput> {
    let writer = store.writer();
    let payload = vec![0x3c_u8; BULK];
    let mut progress = Progress::new("unsynced bulk appends", budget.phase);
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while bytes < budget.bulk_bytes && start.elapsed() < budget.phase {
        writer.append(RecordType::Put, &payload)?;
        count += 1;
        bytes += BULK as u64;
        progress.show(bytes as f64 / budget.bulk_bytes as f64);
    }
    writer.sync()?;
    let took = start.elapsed();
    progress.finish();
    Ok(Throughput { count, bytes, took })
}

/// Reads every record of the log from a fresh reader, as an application does at start-up.
fn replay(dir: &Path) -> softadastra_wal::Result<Throughput> {
    let start = Instant::now();
    let reader = WalReader::open(dir)?;
    let last = reader.last_seq().unwrap_or(0).max(1);
    let mut progress = Progress::new("replay", Duration::ZERO);
    let (mut count, mut bytes) = (0u64, 0u64);
    for record in reader.iter() {
        let record = record?;
        count += 1;
        bytes += record.payload().len() as u64;
        if count.is_multiple_of(4096) {
            progress.show(record.seq() as f64 / last as f64);
        }
    }
    let took = start.elapsed();
    progress.finish();
    Ok(Throughput { count, bytes, took })
}

/// A one-line progress bar on stderr, `[#####.....] 45% what`, drawn only when stderr is a
/// terminal and only once a phase has run for a second, at most ten times a second.
struct Progress {
    what: &'static str,
    start: Instant,
    /// Expected length of the phase (zero: unknown, use the fraction given).
    budget: Duration,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    const WIDTH: usize = 30;

    fn new(what: &'static str, budget: Duration) -> Progress {
        Progress {
            what,
            start: Instant::now(),
            budget,
            last_draw: None,
            enabled: io::stderr().is_terminal(),
        }
    }

    /// Redraws if due; `done` is the fraction of the phase's volume done (the phase ends at
    /// its time budget or its volume, whichever comes first).
    fn show(&mut self, done: f64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let elapsed = now - self.start;
        if elapsed < Duration::from_secs(1)
            || self
                .last_draw
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        let by_time = if self.budget.is_zero() {
            0.0
        } else {
            elapsed.as_secs_f64() / self.budget.as_secs_f64()
        };
        let fraction = done.max(by_time).clamp(0.0, 1.0);
        let filled = (fraction * Self::WIDTH as f64) as usize;
        let mut err = io::stderr().lock();
        // A failure to draw the bar is not worth stopping the measurement for.
        let _ = write!(
            err,
            "\r[{}{}] {:3.0}% {}",
            "#".repeat(filled),
            ".".repeat(Self::WIDTH - filled),
            fraction * 100.0,
            self.what
        );
        let _ = err.flush();
        self.last_draw = Some(now);
    }

    /// Erases the bar if it was drawn.
    fn finish(&mut self) {
        if self.last_draw.take().is_some() {
            let blank = " ".repeat(Self::WIDTH + 8 + self.what.len());
            let _ = write!(io::stderr(), "\r{blank}\r");
        }
    }
}

/// The `percent`-th percentile of sorted durations (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    let rank = (sorted.len() * percent).div_ceil(100);
    sorted
        .get(rank.saturating_sub(1))
        .copied()
        .unwrap_or_default()
}

fn micros(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

/// The type of the file system holding `dir` (Linux: the longest mount point containing it in
/// /proc/self/mountinfo), or "file system unknown". On tmpfs a flush costs nothing, which the
/// reader of the figures must know.
fn file_system(dir: &Path) -> String {
    let unknown = || "file system unknown".to_string();
    let (Ok(dir), Ok(mounts)) = (
        dir.canonicalize(),
        fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return unknown();
    };
    // Fields: id parent major:minor root mount-point options [optional...] - fstype source ...
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let Some(mount_point) = fields.nth(4) else {
            continue;
        };
        let Some(fs_type) = fields.skip_while(|f| *f != "-").nth(1) else {
            continue;
        };
        let mount_point = unescape_mount(mount_point);
        if dir.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), fs_type.to_string()));
        }
    }
    best.map_or_else(unknown, |(_, t)| t)
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo` octal.
fn unescape_mount(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}
