//! `walctl dump` and `walctl get`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use softadastra_wal::RecordType;
use softadastra_wal::inspect::{Entry, Record, Severity};

use crate::logdir;
use crate::render::{self, Line, PayloadView};

/// Output format of `dump`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per record or finding, and a count at the end.
    Text,
    /// One JSON object per line: records (`"kind":"record"`), findings (`"kind":"damage"`) and
    /// a last `"kind":"summary"` object.
    Json,
}

/// Print every record in log order, with damage reported where it is.
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    /// The log directory.
    dir: PathBuf,
    /// First sequence number to print.
    #[arg(long, value_name = "SEQ", value_parser = render::parse_seq)]
    from: Option<u64>,
    /// Last sequence number to print.
    #[arg(long, value_name = "SEQ", value_parser = render::parse_seq)]
    to: Option<u64>,
    /// Print only records of this type: put, update, delete, checkpoint, noop or a code.
    #[arg(long = "type", value_name = "T", value_parser = render::parse_type)]
    record_type: Option<RecordType>,
    /// How to show payloads.
    #[arg(long, value_enum, value_name = "VIEW", default_value_t = PayloadView::Hex)]
    payload: PayloadView,
    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Text)]
    format: Format,
}

fn line(r: &Record) -> Line<'_> {
    Line {
        seq: r.seq,
        segment: Some(r.segment),
        offset: Some(r.offset),
        record_type: r.record_type,
        timestamp: r.timestamp,
        payload: &r.payload,
        in_log: r.in_log,
    }
}

fn write_failed(e: &io::Error) -> String {
    format!("cannot write the output: {}", logdir::io_message(e))
}

/// Exit code 1 when corruption (or an unreadable file) was reported, 0 otherwise.
pub fn run(args: &DumpArgs) -> Result<ExitCode, String> {
    let log = logdir::open(&args.dir)?;
    let (from, to) = (args.from.unwrap_or(1), args.to.unwrap_or(u64::MAX));
    if from > to {
        return Err(format!("--from {from} is after --to {to}"));
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut shown, mut outside, mut by_severity) = (0u64, 0u64, [0u64; 5]);
    for entry in log.entries_between(from, to) {
        let text = match entry.map_err(|e| logdir::describe(&e))? {
            Entry::Record(r) => {
                if !(from..=to).contains(&r.seq)
                    || args.record_type.is_some_and(|t| t != r.record_type)
                {
                    continue;
                }
                shown += 1;
                outside += u64::from(!r.in_log);
                match args.format {
                    Format::Text => render::text(&line(&r), args.payload),
                    Format::Json => render::json(&line(&r), Some(r.flags), args.payload),
                }
            }
            Entry::Damage(f) => {
                by_severity[severity_index(f.severity)] += 1;
                match args.format {
                    Format::Text => render::finding_text(&f),
                    Format::Json => render::finding_json(&f),
                }
            }
            _ => continue,
        };
        writeln!(out, "{text}").map_err(|e| write_failed(&e))?;
    }
    let [notes, warnings, torn, unreadable, corruption] = by_severity;
    let summary = match args.format {
        Format::Text => {
            let mut s = format!("{shown} records");
            if outside > 0 {
                s.push_str(&format!(" ({outside} outside the log)"));
            }
            let findings = by_severity.iter().sum::<u64>();
            let plural = if findings == 1 { "" } else { "s" };
            s.push_str(&format!("; {findings} finding{plural}"));
            let parts: Vec<String> = [
                (corruption, "corruption"),
                (unreadable, "unreadable"),
                (torn, "torn tail"),
                (warnings, "warning"),
                (notes, "note"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
            if !parts.is_empty() {
                s.push_str(&format!(" ({})", parts.join(", ")));
            }
            s
        }
        Format::Json => format!(
            "{{\"kind\":\"summary\",\"records\":{shown},\"outside_log\":{outside},\
             \"corruption\":{corruption},\"unreadable\":{unreadable},\"torn_tail\":{torn},\
             \"warnings\":{warnings},\"notes\":{notes}}}"
        ),
    };
    writeln!(out, "{summary}").map_err(|e| write_failed(&e))?;
    out.flush().map_err(|e| write_failed(&e))?;
    Ok(if corruption + unreadable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Note => 0,
        Severity::Warning => 1,
        Severity::TornTail => 2,
        Severity::Unreadable => 3,
        _ => 4,
    }
}

/// Print one record by its sequence number.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The log directory.
    dir: PathBuf,
    /// The record's sequence number.
    #[arg(value_parser = render::parse_seq)]
    seq: u64,
    /// Write the payload bytes, and nothing else, to stdout.
    #[arg(long)]
    raw: bool,
}

pub fn run_get(args: &GetArgs) -> Result<ExitCode, String> {
    let log = logdir::open(&args.dir)?;
    let seq = args.seq;
    let record = match log.get(seq) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(match (log.first_seq(), log.last_seq()) {
                (Some(first), Some(last)) if (first..=last).contains(&seq) => format!(
                    "record {seq} is not in any readable segment (the log spans \
                     {first}..={last}; walctl verify says what is missing)"
                ),
                (Some(first), Some(last)) => {
                    format!("record {seq} is not in the log (it holds {first}..={last})")
                }
                _ => format!("record {seq} is not in the log (it holds no records)"),
            });
        }
        Err(e) => return Err(format!("record {seq} is damaged: {e}")),
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let text = if args.raw {
        None
    } else {
        Some(describe(&record))
    };
    match text {
        None => out.write_all(&record.payload),
        Some(text) => out.write_all(text.as_bytes()),
    }
    .and_then(|()| out.flush())
    .map_err(|e| write_failed(&e))?;
    Ok(ExitCode::SUCCESS)
}

fn describe(r: &Record) -> String {
    let mut s = String::new();
    let batch = if r.batch_continues() {
        "yes (more records of its batch follow)"
    } else {
        "no"
    };
    let rows = [
        ("seq", r.seq.to_string()),
        ("segment", r.segment.to_string()),
        ("offset", r.offset.to_string()),
        (
            "type",
            format!(
                "{} (code {})",
                render::type_name(r.record_type),
                r.record_type.code()
            ),
        ),
        (
            "timestamp",
            format!("{} ({})", r.timestamp, render::utc(r.timestamp)),
        ),
        ("batch continues", batch.to_string()),
        ("unsynced before", r.unsynced_before.to_string()),
        ("length", format!("{} bytes", r.payload.len())),
    ];
    for (name, value) in rows {
        s.push_str(&format!("{name:<16} {value}\n"));
    }
    match std::str::from_utf8(&r.payload) {
        Ok(text)
            if !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t') =>
        {
            s.push_str("payload (UTF-8):\n");
            s.push_str(text);
            if !text.ends_with('\n') {
                s.push('\n');
            }
        }
        _ => {
            s.push_str("payload (hex):\n");
            s.push_str(&hexdump(&r.payload));
        }
    }
    s
}

/// `xxd`-style lines: offset, 16 bytes in hexadecimal, the printable ones as text.
fn hexdump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, row) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = row.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = row
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            })
            .collect();
        s.push_str(&format!("{:08x}: {:<47}  {text}\n", i * 16, hex.join(" ")));
    }
    s
}
