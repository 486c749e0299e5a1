//! [`Stats`]: counters a store keeps about itself, read with [`WalStore::stats`](crate::WalStore::stats).

use std::time::Duration;

/// A snapshot of what a store has done since it was opened, and of the log's extent now.
///
/// Plain numbers, cheap to take (one short lock of the writer): poll it for a dashboard or a log
/// line; no metrics crate is involved. New fields may be added in later versions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Records appended since the store was opened (each record of a batch counts).
    pub appends: u64,
    /// Payload bytes of those records (headers and padding not included).
    pub appended_bytes: u64,
    /// Flushes of appended records to stable storage (one per group commit, one per `sync` that
    /// had something to flush, one before each rotation).
    pub flushes: u64,
    /// Wall-clock time spent in those flushes.
    pub flush_time: Duration,
    /// Rotations to a new segment since the store was opened.
    pub rotations: u64,
    /// Segment files in the log now.
    pub segments: usize,
    /// Records found in the log when the store was opened.
    pub recovered_records: u64,
    /// Bytes of torn tail cut when the store was opened (see [`TornTail`](crate::TornTail)).
    pub truncated_bytes: u64,
    /// Sequence number of the oldest durable record now, if any.
    pub first_seq: Option<u64>,
    /// Sequence number of the newest durable record now, if any.
    pub last_seq: Option<u64>,
}

/// The counters the writer keeps (under its mutex).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) appends: u64,
    pub(crate) appended_bytes: u64,
    pub(crate) flushes: u64,
    pub(crate) flush_time: Duration,
    pub(crate) rotations: u64,
}

impl Counters {
    pub(crate) fn count_appends(&mut self, records: u64, payload_bytes: usize) {
        self.appends += records;
        self.appended_bytes += payload_bytes as u64;
    }

    pub(crate) fn record_flush(&mut self, took: Duration) {
        self.flushes += 1;
        self.flush_time += took;
    }
}
