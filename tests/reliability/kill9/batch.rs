//! Batch identities: records appended by `append_batch`, which cannot carry an [`Ident`]'s
//! timestamp (a batch is stamped with the clock), described so that a checker still knows
//! everything about them.
//!
//! A batch member's writer has [`BATCH_BIT`] set and its counter packs the batch number, the
//! batch's size and the member's index. From one record a checker therefore knows which batch it
//! belongs to and how many records that batch has, so it can check atomicity (all or none,
//! consecutive, one timestamp) and then compare payload and type with [`check_records`]
//! after replacing the clock timestamp by the identity's (see [`normalized`]).
//!
//! [`check_records`]: crate::support::check_records

#![allow(dead_code)]

use std::ops::RangeInclusive;

use softadastra_wal::WalRecord;

use crate::support::Ident;

/// Set in the writer of every batch member; single appends use writers without it. (The same
/// bit as `support::BATCH_WRITER_BIT`, so the conventions of all harnesses agree.)
pub const BATCH_BIT: u32 = crate::support::BATCH_WRITER_BIT;

/// The largest batch a harness makes (the size is packed into 4 bits).
pub const MAX_BATCH: usize = 15;

/// Where a batch member sits: batch `batch` (per writer, increasing), `size` records, index
/// `index` in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub batch: u64,
    pub size: usize,
    pub index: usize,
}

/// The identities of batch number `batch` of writer `writer` (without [`BATCH_BIT`]), `size`
/// records (1..=15). Counters increase with the batch number and the index, as
/// `check_records` requires of one writer.
pub fn idents(writer: u32, batch: u64, size: usize) -> Vec<Ident> {
    assert!((1..=MAX_BATCH).contains(&size), "batch size {size}");
    (0..size)
        .map(|index| {
            let counter = (batch << 8) | ((size as u64) << 4) | index as u64;
            Ident::new(writer | BATCH_BIT, counter)
        })
        .collect()
}

/// The batch position of `who`, if it is a batch member.
pub fn tag(who: Ident) -> Option<Tag> {
    (who.writer & BATCH_BIT != 0).then_some(Tag {
        batch: who.counter >> 8,
        size: ((who.counter >> 4) & 0xF) as usize,
        index: (who.counter & 0xF) as usize,
    })
}

/// The batch position of a record, if its payload names a batch member.
pub fn tag_of(record: &WalRecord) -> Option<(Ident, Tag)> {
    let who = Ident::of_payload(&record.payload)?;
    tag(who).map(|t| (who, t))
}

/// Milliseconds since the Unix epoch, the clock `append_batch` stamps records with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The timestamps a batch appended between `start_ms` and now may carry (a second of slack each
/// side for clock steps).
pub fn clock_window(start_ms: u64) -> RangeInclusive<u64> {
    start_ms.saturating_sub(1_000)..=now_ms() + 1_000
}

/// Checks every batch in `records`, a gap-free run of a log: each batch is complete (all of its
/// members, consecutive, in order, none cut off by the end of `records` or missing at its start),
/// and its members share one timestamp inside `window`. Returns the violations found.
pub fn check_batches(records: &[WalRecord], window: &RangeInclusive<u64>) -> Vec<String> {
    let mut bad = Vec::new();
    let mut k = 0;
    while k < records.len() {
        let Some((who, t)) = tag_of(&records[k]) else {
            k += 1;
            continue;
        };
        if t.index != 0 || t.size < 1 {
            bad.push(format!(
                "seq {}: member {} of a {}-record batch without the members before it",
                records[k].seq, t.index, t.size
            ));
            k += 1;
            continue;
        }
        if let Some(problem) = check_one_batch(&records[k..], who, t.size, window) {
            bad.push(problem);
        }
        k += t.size.max(1);
    }
    bad
}

/// Checks the batch starting at `run[0]` (member 0 of `size`, identity `first`).
fn check_one_batch(
    run: &[WalRecord],
    first: Ident,
    size: usize,
    window: &RangeInclusive<u64>,
) -> Option<String> {
    let seq = run[0].seq;
    if run.len() < size {
        return Some(format!(
            "seq {seq}: batch of {size} records ends after {} of them (not atomic)",
            run.len()
        ));
    }
    let stamp = run[0].timestamp;
    if !window.contains(&stamp) {
        return Some(format!(
            "seq {seq}: batch timestamp {stamp} is outside the append window {window:?}"
        ));
    }
    for (i, r) in run[..size].iter().enumerate() {
        let want = Ident::new(first.writer, first.counter + i as u64);
        if Ident::of_payload(&r.payload) != Some(want) {
            return Some(format!(
                "seq {}: member {i} of the batch starting at seq {seq} is not the next record of \
                 that batch (not atomic or out of order)",
                r.seq
            ));
        }
        if r.timestamp != stamp {
            return Some(format!(
                "seq {}: batch member timestamp {} differs from the batch's {stamp}",
                r.seq, r.timestamp
            ));
        }
    }
    None
}

/// `records` with every batch member's clock timestamp replaced by its identity's, so that
/// [`Ident::matches`] (and `check_records`) compares payload and type as for single appends.
/// Check the real timestamps with [`check_batches`] first.
pub fn normalized(records: &[WalRecord]) -> Vec<WalRecord> {
    records
        .iter()
        .map(|r| match tag_of(r) {
            Some((who, _)) => WalRecord {
                timestamp: who.timestamp(),
                ..r.clone()
            },
            None => r.clone(),
        })
        .collect()
}
