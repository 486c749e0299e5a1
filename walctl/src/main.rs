//! `walctl`: look inside a softadastra-wal log directory, verify it, follow it, salvage what is
//! left of a damaged one, and measure the disk it lives on.
//!
//! Every command reads without taking the log's lock, so it runs beside the application that
//! has the log open; only `salvage` (into a new directory) and `bench` (in its own directory)
//! write. The inspection itself is `softadastra_wal::inspect`; this crate parses arguments and
//! prints.
//!
//! Exit codes: 0 success, 1 a failure or (for `verify` and `dump`) problems found, 2 a usage
//! error. Errors are one line on stderr: `walctl: <message>`.

mod bench;
mod dump;
mod info;
mod logdir;
mod render;
mod salvage;
mod tail;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect, verify, follow and salvage softadastra-wal logs.
#[derive(Debug, Parser)]
#[command(name = "walctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The format version, writer lock state and one line per segment; for a segment file,
    /// its header and footer field by field.
    Info(info::InfoArgs),
    /// One line (or JSON object) per record, with damage reported where it is.
    Dump(dump::DumpArgs),
    /// One record by sequence number.
    Get(dump::GetArgs),
    /// Checks every byte recovery relies on; exit 0 when the log is sound, 1 when not.
    Verify(verify::VerifyArgs),
    /// The last records; with -f, the records appended after them, as they come.
    Tail(tail::TailArgs),
    /// Copies every valid record into a new log, leaving the damaged one untouched.
    Salvage(salvage::SalvageArgs),
    /// A short append and replay measurement on this disk.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let result = match cli.command {
        Command::Info(args) => info::run(&args),
        Command::Dump(args) => dump::run(&args),
        Command::Get(args) => dump::run_get(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Tail(args) => tail::run(args),
        Command::Salvage(args) => salvage::run(&args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("walctl: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version go to stdout as clap writes them. Any other argument error becomes one
/// line on stderr and exit code 2, like the other errors but distinguishable by its code.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        // Nothing useful is left to do if stdout is closed.
        let _ = e.print();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    }
    // clap's message spans several lines (the error, the values it accepts, a tip, the usage);
    // the lines before the tip and the usage make one readable sentence.
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| {
            !l.starts_with("tip:") && !l.starts_with("Usage:") && !l.starts_with("For more")
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("walctl: {message} (see walctl --help)");
    ExitCode::from(2)
}
