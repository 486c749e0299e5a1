//! `walctl verify DIR [--strict]`.

use std::path::PathBuf;
use std::process::ExitCode;

use softadastra_wal::inspect::{Severity, Tail};

use crate::logdir;
use crate::render::{self, file_name};

/// Read the whole log: every record's checksum and sequence number, every segment header and
/// seal, every persisted index entry against its record, and the tail. Exit 0 when the log is
/// sound, 1 when problems were found.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The log directory.
    dir: PathBuf,
    /// Also fail on a torn tail and on warnings: pass only if the files are exactly as a
    /// cleanly working writer leaves them.
    #[arg(long)]
    strict: bool,
}

pub fn run(args: &VerifyArgs) -> Result<ExitCode, String> {
    let log = logdir::open(&args.dir)?;
    let report = log.verify().map_err(|e| logdir::describe(&e))?;
    let records = match (report.first_seq, report.last_seq) {
        (Some(first), Some(last)) => format!("{} records ({first}..={last})", report.records),
        _ => "no records".to_string(),
    };
    println!(
        "verified {}: {} segments, {records}, {} index entries",
        report.dir.display(),
        report.segments.len(),
        report.index_entries
    );
    if report.records_outside > 0 {
        println!(
            "{} valid records outside the log (past damage or in a torn tail)",
            report.records_outside
        );
    }
    for f in &report.findings {
        println!("{}", render::finding_text(f));
    }
    let tail = match &report.tail {
        Tail::Clean => "clean".to_string(),
        Tail::Torn {
            file,
            offset,
            len,
            next_seq,
        } => format!(
            "torn: {len} bytes at offset {offset} of {}; recovery cuts them and the log \
             continues at {next_seq}",
            file_name(file)
        ),
        Tail::Corrupt { file, offset } => format!(
            "corrupt: damaged durable data at offset {offset} of {}",
            file_name(file)
        ),
        _ => "unknown".to_string(),
    };
    println!("tail: {tail}");
    println!("writer lock: {}", report.writer);
    let passes = report.passes(args.strict);
    let mut verdict = format!("result: {}", report.verdict());
    if let Some(first) = report
        .findings
        .iter()
        .find(|f| f.severity == Severity::Corruption)
    {
        verdict.push_str(&format!(
            " (first at offset {} of {})",
            first.offset.unwrap_or(0),
            file_name(&first.file)
        ));
    }
    if args.strict
        && !passes
        && report
            .findings
            .iter()
            .all(|f| f.severity <= Severity::TornTail)
    {
        let n = report
            .findings
            .iter()
            .filter(|f| f.severity > Severity::Note)
            .count();
        verdict.push_str(&format!("; --strict: {n} problems"));
    }
    println!("{verdict}");
    Ok(if passes {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
