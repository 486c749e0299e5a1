//! The checks of one reader snapshot, taken while writers append, rotate and truncate: every
//! record intact and what its identity says (no torn read), gap-free from `first_seq` to
//! `last_seq`, each writer's records in order, batches whole, every sequence number mapping to
//! the same record for every reader and for the writer that was told it, and `get` / `iter_from`
//! agreeing with the iteration.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use softadastra_wal::{WalReader, WalRecord};

use crate::batch;
use crate::support::{self, Expected, Ident, Rng};

/// What a snapshot must be consistent with, read just before and just after it was taken.
pub struct Bounds {
    /// Every sequence number up to this one had been acknowledged before the snapshot.
    pub acked_high: u64,
    /// The largest `truncate_before` target requested by the time the snapshot was taken: the
    /// segment holding that record is never deleted, so the snapshot starts at or before it.
    pub truncate_requested: u64,
    /// The same reader's previous range, if it was refreshed (ranges never move backwards).
    pub previous: Option<(u64, u64)>,
    /// Timestamps batches may carry.
    pub window: RangeInclusive<u64>,
}

/// The result of checking one snapshot.
#[derive(Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    /// The snapshot's records (as read), for the cross-reader checks.
    pub records: Vec<WalRecord>,
    /// `get` calls checked.
    pub gets: u64,
}

/// Checks `reader`'s snapshot on its own (the cross-reader checks are the caller's).
pub fn check(reader: &WalReader, bounds: &Bounds, rng: &mut Rng) -> Verdict {
    let mut v = Verdict::default();
    let (first, last) = match (reader.first_seq(), reader.last_seq()) {
        (Some(f), Some(l)) => (f, l),
        (None, None) => {
            if bounds.acked_high > 0 {
                v.problems.push(format!(
                    "empty snapshot although seq {} was acknowledged before it",
                    bounds.acked_high
                ));
            }
            return v;
        }
        other => {
            v.problems
                .push(format!("snapshot range is half empty: {other:?}"));
            return v;
        }
    };
    check_range(first, last, bounds, &mut v.problems);
    match read_all(reader) {
        Ok(records) => v.records = records,
        Err(e) => {
            v.problems
                .push(format!("iterating snapshot {first}..={last}: {e}"));
            return v;
        }
    }
    check_records(&v.records, first, last, &bounds.window, &mut v.problems);
    if v.problems.is_empty() {
        v.gets = check_gets(reader, &v.records, rng, &mut v.problems);
        check_iter_from(reader, &v.records, rng, &mut v.problems);
    }
    v
}

/// The snapshot's range against what had been acknowledged and truncated, and against the same
/// reader's previous range.
fn check_range(first: u64, last: u64, bounds: &Bounds, bad: &mut Vec<String>) {
    if first > last {
        bad.push(format!("snapshot first_seq {first} > last_seq {last}"));
    }
    if last < bounds.acked_high {
        bad.push(format!(
            "snapshot ends at seq {last}, but seq {} was acknowledged before it was taken",
            bounds.acked_high
        ));
    }
    let keep = bounds.truncate_requested.max(1);
    if keep <= last && first > keep {
        bad.push(format!(
            "snapshot starts at seq {first}, but no truncation asked to remove seq {keep}"
        ));
    }
    if let Some((prev_first, prev_last)) = bounds.previous
        && (first < prev_first || last < prev_last)
    {
        bad.push(format!(
            "refresh moved the snapshot backwards: {prev_first}..={prev_last} -> {first}..={last}"
        ));
    }
}

fn read_all(reader: &WalReader) -> softadastra_wal::Result<Vec<WalRecord>> {
    reader.iter().map(|r| r.map(|r| r.to_record())).collect()
}

/// Gap-free from `first` to `last`, batches whole, every record intact and in its writer's order.
fn check_records(
    records: &[WalRecord],
    first: u64,
    last: u64,
    window: &RangeInclusive<u64>,
    bad: &mut Vec<String>,
) {
    let starts = records.first().map(|r| r.seq);
    let ends = records.last().map(|r| r.seq);
    if starts != Some(first) || ends != Some(last) {
        bad.push(format!(
            "iteration gives seq {starts:?}..={ends:?}, the snapshot says {first}..={last}"
        ));
    }
    bad.extend(batch::check_batches(records, window));
    // Nothing acknowledged to look for here: the gap, identity, byte-exactness and per-writer
    // order checks (I2, I3) of `check_records` are what a snapshot must pass.
    bad.extend(support::check_records(
        &batch::normalized(records),
        &Expected::default(),
    ));
}

/// Random `get` calls, inside and around the snapshot: the record returned is the one the
/// iteration gave for that sequence number; outside the snapshot it is `None`.
fn check_gets(
    reader: &WalReader,
    records: &[WalRecord],
    rng: &mut Rng,
    bad: &mut Vec<String>,
) -> u64 {
    let (first, last) = (records[0].seq, records[records.len() - 1].seq);
    let mut gets = 0;
    for _ in 0..16 {
        let seq = rng.range(first.saturating_sub(3), last + 3);
        let want = seq.checked_sub(first).and_then(|i| records.get(i as usize));
        let got = reader.get(seq).map(|r| r.map(|r| r.to_record()));
        match (got, want) {
            (Ok(Some(r)), Some(w)) if r == *w => {}
            (Ok(None), None) => {}
            (Ok(got), want) => bad.push(format!(
                "get({seq}) returned {:?}, iteration had {:?}",
                got.map(|r| (r.seq, Ident::of_payload(&r.payload))),
                want.map(|r| (r.seq, Ident::of_payload(&r.payload)))
            )),
            (Err(e), _) => bad.push(format!("get({seq}) in snapshot {first}..={last}: {e}")),
        }
        gets += 1;
    }
    gets
}

/// `iter_from` a random sequence number yields the iteration's records from there on.
fn check_iter_from(
    reader: &WalReader,
    records: &[WalRecord],
    rng: &mut Rng,
    bad: &mut Vec<String>,
) {
    let first = records[0].seq;
    let seq = rng.range(first, records[records.len() - 1].seq);
    let want = &records[(seq - first) as usize..];
    for (i, got) in reader.iter_from(seq).take(8).enumerate() {
        match got {
            Ok(r) if want.get(i) == Some(&r.to_record()) => {}
            Ok(r) => {
                bad.push(format!(
                    "iter_from({seq}) item {i} is seq {}, not what iteration had",
                    r.seq()
                ));
                return;
            }
            Err(e) => {
                bad.push(format!("iter_from({seq}) item {i}: {e}"));
                return;
            }
        }
    }
}

/// What identifies a record completely once its payload has been checked against its identity
/// (the payload is then a function of identity and length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    who: Option<Ident>,
    len: usize,
    timestamp: u64,
    record_type: u8,
}

impl Fingerprint {
    fn of(r: &WalRecord) -> Fingerprint {
        Fingerprint {
            who: Ident::of_payload(&r.payload),
            len: r.payload.len(),
            timestamp: r.timestamp,
            record_type: r.record_type.code(),
        }
    }
}

/// Every sequence number maps to one record for everyone: the first reader to see a sequence
/// number records what it holds, every later sighting must be identical, and the writer that
/// was told that number must have appended exactly that identity.
pub fn check_agreement(
    records: &[WalRecord],
    seen: &mut HashMap<u64, Fingerprint>,
    acked: &HashMap<u64, Ident>,
    bad: &mut Vec<String>,
) {
    for r in records {
        let print = Fingerprint::of(r);
        let held = *seen.entry(r.seq).or_insert(print);
        if held != print {
            bad.push(format!(
                "seq {} held {held:?} for one reader and {print:?} for another",
                r.seq
            ));
        }
        if let Some(&who) = acked.get(&r.seq)
            && print.who != Some(who)
        {
            bad.push(format!(
                "seq {} was acknowledged to writer {} for its record {}, a reader sees {:?}",
                r.seq, who.writer, who.counter, print.who
            ));
        }
    }
}
