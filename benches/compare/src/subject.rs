//! What a benchmarked log (this crate or a peer) can do: one small trait per tier. A subject that
//! lacks a tier gives the reason instead, and the table prints it as "n/a (...)".

use std::path::Path;

use crate::util::{Payloads, Res};

/// Durable appends: `append_sync` returns once the record is on stable storage (W1, W2).
pub trait DurableTier: Sync {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>>;
}

/// An open log that appends durably, shareable between threads (`thread` is the caller's index,
/// for peers that keep per-thread state such as a raft group).
pub trait DurableLog: Send + Sync {
    fn append_sync(&self, thread: usize, payload: &[u8]) -> Res<()>;
}

/// Bulk durable writing: many appends, then one flush that makes them durable (W3).
pub trait BulkTier: Sync {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>>;
}

pub trait BulkLog {
    /// Appends records `first .. first + n` (payloads from `payloads`), then makes them durable
    /// with one flush.
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()>;
}

/// Unsynced appends: the record reaches the page cache or a shared mapping (it survives a crash
/// of the process) but no flush is requested (W4).
pub trait UnsyncedTier: Sync {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>>;
}

pub trait UnsyncedLog {
    fn append(&mut self, payload: &[u8]) -> Res<()>;
}

/// Replay: build a log, then open it and read every record back with its checksum verified (W5).
pub trait ReplayTier: Sync {
    /// Writes `count` records of `payload_len` bytes (made durable before returning).
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()>;
    /// Opens the log and visits every record. Returns (records, payload bytes).
    fn replay(&self, dir: &Path) -> Res<(u64, u64)>;
}

/// Reads by position: build a log, then read records chosen at random (W6).
pub trait GetTier: Sync {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>>;
}

pub trait Getter {
    /// Reads record number `i` (0-based, in write order) with its checksum verified; returns the
    /// payload length.
    fn get(&mut self, i: u64) -> Res<usize>;
}

/// A tier implementation, or the reason this subject has none.
pub type Tier<T> = Result<Box<T>, &'static str>;

/// One benchmarked log.
pub struct Subject {
    /// Short name, the table's column.
    pub name: &'static str,
    /// Crate version as built.
    pub version: &'static str,
    /// What its durability call does, in a few words.
    pub sync: &'static str,
    pub durable: Tier<dyn DurableTier>,
    pub bulk: Tier<dyn BulkTier>,
    pub unsynced: Tier<dyn UnsyncedTier>,
    pub replay: Tier<dyn ReplayTier>,
    pub get: Tier<dyn GetTier>,
}
