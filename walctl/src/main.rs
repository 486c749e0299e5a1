//! `walctl`: inspection tool for softadastra-wal logs (work in progress).

use clap::Parser;

/// Inspect a softadastra-wal log directory.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
