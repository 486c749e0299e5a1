//! Shared by the walctl tests: running the binary, and logs built through the library with a
//! known layout, so that a test can damage a chosen record at a computed offset.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use softadastra_wal::{RecordType, WalConfig, WalStore};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// 8 KiB segments with a 256-byte index interval: a data region of 7,536 bytes.
pub const SEGMENT_SIZE: u64 = 8192;
/// Every record built here has a 100-byte payload: 32 + 104 bytes on disk.
pub const RECORD_LEN: u64 = 136;
/// 55 records fill a segment (55 × 136 = 7,480 of 7,536 bytes).
pub const PER_SEGMENT: u64 = 55;
/// Timestamp of record 1 (2023-11-14T22:13:20Z); record `s` gets `T0 + s - 1`.
pub const T0: u64 = 1_700_000_000_000;

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

impl Run {
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// True if some stdout line, with runs of spaces collapsed, contains `want`.
    pub fn has_line(&self, want: &str) -> bool {
        self.stdout.lines().any(|l| squeeze(l).contains(want))
    }
}

/// `text` with every run of whitespace replaced by one space (table columns vary in width).
pub fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_walctl"))
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    }
}

/// Runs `walctl` with `args`.
pub fn walctl(args: &[&dyn AsRef<OsStr>]) -> Run {
    match bin().args(args.iter().map(|a| a.as_ref())).output() {
        Ok(out) => finish(out),
        Err(e) => panic!("cannot run walctl: {e}"),
    }
}

pub fn config(dir: &Path) -> WalConfig {
    WalConfig::new(dir)
        .segment_size(SEGMENT_SIZE)
        .index_interval(256)
}

/// The payload of record `seq`: `record 00042` padded with dots to 100 bytes.
pub fn payload(seq: u64) -> Vec<u8> {
    let mut p = format!("record {seq:05}").into_bytes();
    p.resize(100, b'.');
    p
}

/// Every tenth record is a checkpoint, the others puts.
pub fn record_type(seq: u64) -> RecordType {
    if seq.is_multiple_of(10) {
        RecordType::Checkpoint
    } else {
        RecordType::Put
    }
}

/// A log of records `1..=n` (single durable appends, fixed timestamps), closed again.
pub fn build_log(dir: &Path, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let store = WalStore::open(config(dir))?;
    let writer = store.writer();
    for seq in 1..=n {
        let got = writer.append_with_timestamp(record_type(seq), T0 + seq - 1, &payload(seq))?;
        assert_eq!(got, seq, "the log should number records from 1");
    }
    Ok(())
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(softadastra_wal::names::segment(id))
}

/// Segment number and offset of record `seq` in a log made by [`build_log`].
pub fn locate(seq: u64) -> (u64, u64) {
    let index = seq - 1;
    (
        index / PER_SEGMENT + 1,
        64 + (index % PER_SEGMENT) * RECORD_LEN,
    )
}

/// Flips one bit of the byte at `offset` of `path`.
pub fn flip(path: &Path, offset: u64) -> TestResult {
    let mut bytes = std::fs::read(path)?;
    let i = usize::try_from(offset)?;
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Flips a payload byte of record `seq`; returns the segment file and the record's offset.
pub fn damage_record(dir: &Path, seq: u64) -> Result<(PathBuf, u64), Box<dyn std::error::Error>> {
    let (segment, offset) = locate(seq);
    let path = segment_path(dir, segment);
    flip(&path, offset + 32 + 10)?;
    Ok((path, offset))
}

/// Writes `bytes` at `offset` of `path`.
pub fn write_at(path: &Path, offset: u64, data: &[u8]) -> TestResult {
    let mut bytes = std::fs::read(path)?;
    let i = usize::try_from(offset)?;
    bytes[i..i + data.len()].copy_from_slice(data);
    std::fs::write(path, bytes)?;
    Ok(())
}

/// File names with their contents.
pub type Files = Vec<(String, Vec<u8>)>;

/// Every file of `dir` with its contents, sorted by name: to show that a command changed
/// nothing.
pub fn snapshot(dir: &Path) -> Result<Files, Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        files.push((
            entry.file_name().to_string_lossy().into_owned(),
            std::fs::read(entry.path())?,
        ));
    }
    files.sort();
    Ok(files)
}

/// The sequence numbers of the record lines (`seq=N ...`) of `dump` or `tail` output.
pub fn seqs(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("seq=")?.split(' ').next()?.parse().ok())
        .collect()
}
