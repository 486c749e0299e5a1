//! `walctl tail`: the last records of a log and, with `-f`, the records appended after them.
//!
//! It reads through `WalReader::open`, the library's path for a reader in another process: no
//! lock is taken and nothing is written, so it runs beside the application that owns the log.
//! Following polls with `refresh`: a reader in another process cannot be woken by the writer.
//! It rescans 1 ms after a scan that found records, backing off to every 50 ms while the log is
//! idle, and never sooner than ten times the last scan took. (`WalReader::wait_for` polls the
//! same way but without that last bound, which matters for a log of many gigabytes: each scan
//! costs about 10 ms per gigabyte.)

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use softadastra_wal::WalReader;

use crate::logdir;
use crate::render::{self, Line, PayloadView};

/// Pause after a scan that found new records.
const MIN_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two scans of an idle log (unless scans are slow, see below).
const MAX_PAUSE: Duration = Duration::from_millis(50);
/// The pause after a scan is at least this many times the scan's duration.
const SCAN_COST_RATIO: u32 = 10;

/// Print the last records of a log; with -f, keep printing new records as they are appended.
#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// The log directory.
    dir: PathBuf,
    /// How many of the last records to print.
    #[arg(short = 'n', long = "records", value_name = "N", default_value_t = 10)]
    records: u64,
    /// Keep running and print records appended (by another process) after the last ones,
    /// until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How to show payloads.
    #[arg(long, value_enum, value_name = "VIEW", default_value_t = PayloadView::Hex)]
    payload: PayloadView,
}

/// Runs `walctl tail`.
///
/// # Errors
///
/// One readable line: the directory is missing or holds no log, or the log is damaged.
pub fn run(args: TailArgs) -> Result<ExitCode, String> {
    match tail(&args) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `walctl tail -f | head` ends the way `head` wants it to: quietly.
        Err(Stop::Closed) => Ok(ExitCode::SUCCESS),
        Err(Stop::Failed(message)) => Err(message),
    }
}

/// Why printing stopped early.
enum Stop {
    /// Whoever reads stdout has gone.
    Closed,
    Failed(String),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop::Closed
        } else {
            Stop::Failed(format!(
                "cannot write to stdout: {}",
                logdir::io_message(&e)
            ))
        }
    }
}

fn tail(args: &TailArgs) -> Result<(), Stop> {
    let dir = &args.dir;
    // The same checks and messages as the other commands (missing, not a directory, not a
    // log); the listing itself is not needed after that.
    logdir::open(dir).map_err(Stop::Failed)?;
    let unreadable = |e: softadastra_wal::Error| Stop::Failed(logdir::describe(&e));
    let mut reader = WalReader::open(dir).map_err(unreadable)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();

    let mut next = match (reader.first_seq(), reader.last_seq()) {
        (Some(first), Some(last)) => {
            let from = last
                .saturating_sub(args.records)
                .saturating_add(1)
                .max(first);
            print_from(&reader, from, args.payload, &mut out)?
        }
        // Nothing yet: a log whose first record has not been written.
        _ => 1,
    };
    out.flush()?;
    if !args.follow {
        return Ok(());
    }

    let mut pause = MIN_PAUSE;
    loop {
        thread::sleep(pause);
        let scan = Instant::now();
        reader.refresh().map_err(unreadable)?;
        let scan = scan.elapsed();
        if reader.last_seq().is_some_and(|last| last >= next) {
            // Truncation may have deleted records this loop had not printed yet (a slow
            // follower of a busy log): say so rather than skip them silently.
            if let Some(first) = reader.first_seq().filter(|&first| first > next) {
                eprintln!(
                    "walctl: records {next} to {} were deleted by truncation before they were shown",
                    first - 1
                );
                next = first;
            }
            next = print_from(&reader, next, args.payload, &mut out)?;
            out.flush()?;
            pause = MIN_PAUSE;
        } else {
            pause = (pause * 2).min(MAX_PAUSE);
        }
        // A scan costs about as much as opening the log (every segment is mapped again and the
        // newest one rescanned): on a large log, space the scans out so that following never
        // takes more than about a tenth of a core.
        pause = pause.max(scan * SCAN_COST_RATIO);
    }
}

/// Prints every record of `reader` from `from` on and returns the sequence number after the
/// last one printed.
fn print_from(
    reader: &WalReader,
    from: u64,
    view: PayloadView,
    out: &mut impl Write,
) -> Result<u64, Stop> {
    let mut next = from;
    for record in reader.iter_from(from) {
        let record = record.map_err(|e| Stop::Failed(logdir::describe(&e)))?;
        // The library's reader does not say where a record lies: no segment or offset.
        let line = Line {
            seq: record.seq(),
            segment: None,
            offset: None,
            record_type: record.record_type(),
            timestamp: record.timestamp(),
            payload: record.payload(),
            in_log: true,
        };
        writeln!(out, "{}", render::text(&line, view))?;
        next = record.seq() + 1;
    }
    Ok(next)
}
