//! `walctl salvage DIR --out NEWDIR`: every valid record of a damaged log, copied into a new one.
//!
//! The source is only read (through `inspect`, which neither maps, writes nor locks). The new
//! log is written through the library like any application's log, so it is valid by
//! construction and verified again at the end. Its sequence numbers are dense from 1; the old to
//! new mapping is printed as ranges, and so is everything that was left behind.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use softadastra_wal::inspect::{Entry, Log, Record, Severity};
use softadastra_wal::{SyncMode, WalConfig, WalStore, WalWriter};

use crate::logdir;
use crate::render;

/// Copy every valid record of a log into a new log, leaving the source untouched.
#[derive(Debug, clap::Args)]
pub struct SalvageArgs {
    /// The (damaged) log directory to read.
    dir: PathBuf,
    /// Where to create the new log: a directory that does not exist or is empty.
    #[arg(long, value_name = "NEWDIR")]
    out: PathBuf,
}

/// A run of records whose old and new sequence numbers both increase by one.
#[derive(Debug)]
struct Run {
    old: u64,
    new: u64,
    len: u64,
}

pub fn run(args: &SalvageArgs) -> Result<ExitCode, String> {
    let log = logdir::open(&args.dir)?;
    check_out_dir(&args.out)?;
    let config = config_like(&log, &args.out);
    let store = WalStore::open(config)
        .map_err(|e| format!("cannot create the new log: {}", logdir::describe(&e)))?;
    let mut copy = Copy {
        writer: store.writer(),
        runs: Vec::new(),
        batch: Vec::new(),
        last_old: None,
        copied: 0,
        outside: 0,
        skipped: Vec::new(),
    };
    for entry in log.entries() {
        match entry.map_err(|e| logdir::describe(&e))? {
            Entry::Record(r) => copy.record(r)?,
            Entry::Damage(f) => {
                copy.interrupt_batch();
                if f.severity >= Severity::TornTail {
                    let at = f
                        .offset
                        .map(|o| format!(" at offset {o}"))
                        .unwrap_or_default();
                    copy.skipped.push(format!(
                        "{} in {}{at}: {}",
                        f.severity,
                        render::file_name(&f.file),
                        f.what
                    ));
                }
            }
            _ => {}
        }
    }
    copy.interrupt_batch();
    copy.writer
        .sync()
        .map_err(|e| format!("cannot write the new log: {}", logdir::describe(&e)))?;
    let Copy {
        runs,
        copied,
        outside,
        skipped,
        ..
    } = copy;
    drop(store);

    println!(
        "salvaged {copied} records from {} into {}",
        args.dir.display(),
        args.out.display()
    );
    if outside > 0 {
        println!(
            "{outside} of them lay outside the log (past damage or in a torn tail): recovery \
             would not have returned them"
        );
    }
    for run in &runs {
        let range = |start: u64| {
            if run.len == 1 {
                start.to_string()
            } else {
                format!("{start}..={}", start + run.len - 1)
            }
        };
        println!("old {} -> new {}", range(run.old), range(run.new));
    }
    for line in &skipped {
        println!("skipped: {line}");
    }
    // The new log was written through the library; reading it back proves it opens cleanly.
    let check = Log::open(&args.out)
        .and_then(|l| l.verify())
        .map_err(|e| format!("cannot verify the new log: {}", logdir::describe(&e)))?;
    println!("new log: {} records, {}", check.records, check.verdict());
    Ok(if check.passes(false) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

struct Copy {
    writer: WalWriter,
    runs: Vec<Run>,
    /// Records of a batch whose last record has not been seen yet.
    batch: Vec<Record>,
    last_old: Option<u64>,
    copied: u64,
    outside: u64,
    skipped: Vec<String>,
}

impl Copy {
    fn record(&mut self, r: Record) -> Result<(), String> {
        if self.last_old.is_some_and(|last| r.seq <= last)
            || self.batch.last().is_some_and(|b| r.seq <= b.seq)
        {
            self.interrupt_batch();
            self.skipped.push(format!(
                "record {} in {} at offset {}: its sequence number is not after the records \
                 already copied (a stale or duplicated record)",
                r.seq,
                segment_name(r.segment),
                r.offset
            ));
            return Ok(());
        }
        if self
            .batch
            .last()
            .is_some_and(|b| r.seq != b.seq + 1 || r.segment != b.segment)
        {
            self.interrupt_batch();
        }
        let ends_batch = !r.batch_continues();
        self.batch.push(r);
        if ends_batch {
            for r in std::mem::take(&mut self.batch) {
                self.append(&r)?;
            }
        }
        Ok(())
    }

    /// Leaves behind the records of a batch that never got its last record: they were never
    /// acknowledged together, and copying part of a batch would break its atomicity.
    fn interrupt_batch(&mut self) {
        if let (Some(first), Some(last)) = (self.batch.first(), self.batch.last()) {
            self.skipped.push(format!(
                "records {}..={}: a batch without its last record",
                first.seq, last.seq
            ));
        }
        self.batch.clear();
    }

    fn append(&mut self, r: &Record) -> Result<(), String> {
        let new = self
            .writer
            .append_with_timestamp(r.record_type, r.timestamp, &r.payload)
            .map_err(|e| format!("cannot copy record {}: {}", r.seq, logdir::describe(&e)))?;
        self.copied += 1;
        self.outside += u64::from(!r.in_log);
        match self.runs.last_mut() {
            Some(run) if run.old + run.len == r.seq && run.new + run.len == new => run.len += 1,
            _ => self.runs.push(Run {
                old: r.seq,
                new,
                len: 1,
            }),
        }
        self.last_old = Some(r.seq);
        Ok(())
    }
}

fn segment_name(id: u64) -> String {
    softadastra_wal::names::segment(id)
}

/// Refuses an output directory that has anything in it: salvage never mixes its records into
/// an existing log, and never writes into the source.
fn check_out_dir(out: &Path) -> Result<(), String> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "{} is not empty; salvage writes only into a new or empty directory",
                    out.display()
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {}", out.display(), logdir::io_message(&e))),
    }
}

/// The new log gets the largest segment size of the old one (so that every record that fitted
/// there fits here) and its index interval, when the library accepts them; its defaults
/// otherwise. Appends are made durable once, at the end.
fn config_like(log: &Log, out: &Path) -> WalConfig {
    let largest = log
        .segments()
        .into_iter()
        .filter_map(|s| s.header)
        .max_by_key(|h| h.segment_size);
    let mut config = WalConfig::new(out).sync_mode(SyncMode::Manual);
    if let Some(h) = largest {
        let size = h.segment_size.div_ceil(4096) * 4096;
        let candidate = WalConfig::new(out)
            .segment_size(size)
            .index_interval(h.index_interval.clamp(WalConfig::MIN_INDEX_INTERVAL, size))
            .sync_mode(SyncMode::Manual);
        if candidate.max_payload().is_ok() {
            config = candidate;
        }
    }
    config
}
