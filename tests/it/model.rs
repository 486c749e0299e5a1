//! Model-based property test: random operation sequences against an in-memory oracle.
//!
//! Always mode: every acknowledged append survives every reopen. Manual mode: everything up to
//! the last successful `sync` is guaranteed; later records may be lost by a reopen but what
//! survives is always a gap-free prefix of what was appended.

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use softadastra_wal::format::{Layout, record_size};
use softadastra_wal::{Error, RecordType, SyncMode, WalConfig, WalRecord, WalStore};

use crate::common::{collect, describe, small_config, tempdir};

#[derive(Clone, Debug)]
enum Op {
    Append {
        len: u16,
        code: u8,
        ts: u64,
        fill: u8,
    },
    Batch(Vec<(u16, u8)>),
    Sync,
    Reopen,
    /// Truncate before `first + frac * (next - first) / 4`.
    Truncate {
        frac: u8,
    },
    /// Check a reader's view against the model.
    Read,
}

fn arbitrary_len(g: &mut Gen) -> u16 {
    match u8::arbitrary(g) % 10 {
        0..=4 => u16::arbitrary(g) % 64,
        5..=8 => u16::arbitrary(g) % 4000,
        // Occasionally nearly a whole segment, or more than one can hold.
        _ => 14_900 + u16::arbitrary(g) % 600,
    }
}

fn arbitrary_code(g: &mut Gen) -> u8 {
    // Mostly valid codes, sometimes reserved ones (refused, nothing written).
    if u8::arbitrary(g) % 16 == 0 {
        u8::arbitrary(g) % 6
    } else {
        1 + u8::arbitrary(g) % 255
    }
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        match u8::arbitrary(g) % 20 {
            0..=9 => Op::Append {
                len: arbitrary_len(g),
                code: arbitrary_code(g),
                ts: u64::arbitrary(g),
                fill: u8::arbitrary(g),
            },
            10..=12 => {
                let n = usize::from(u8::arbitrary(g) % 5);
                Op::Batch(
                    (0..n)
                        .map(|_| (u16::arbitrary(g) % 4000, arbitrary_code(g)))
                        .collect(),
                )
            }
            13 | 14 => Op::Sync,
            15 | 16 => Op::Reopen,
            17 => Op::Truncate {
                frac: u8::arbitrary(g) % 5,
            },
            _ => Op::Read,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Op>> {
        match self {
            Op::Append {
                len,
                code,
                ts,
                fill,
            } if *len > 0 => {
                let (code, ts, fill) = (*code, *ts, *fill);
                Box::new([0, len / 2].into_iter().map(move |len| Op::Append {
                    len,
                    code,
                    ts,
                    fill,
                }))
            }
            Op::Batch(v) if !v.is_empty() => Box::new(v.shrink().map(Op::Batch)),
            _ => quickcheck::empty_shrinker(),
        }
    }
}

/// What the oracle knows.
struct Model {
    /// Every record ever acknowledged by `append`, by sequence number - 1, and whether its
    /// timestamp is known (batch records carry the writer's clock).
    records: Vec<(WalRecord, bool)>,
    /// Sequence numbers below this are guaranteed (durable): Always: all; Manual: synced.
    durable: u64,
    /// The log starts at or after this (truncation may have removed records below it)...
    first: u64,
    /// ... and at or before this (records at or above it were never truncated away).
    keep_from: u64,
}

impl Model {
    fn next(&self) -> u64 {
        self.records.len() as u64 + 1
    }

    /// Checks a list of records read from the log: a gap-free run of the model starting
    /// between `first` and `keep_from`, reaching at least the last durable record.
    fn check(&self, got: &[WalRecord], what: &str) -> Result<(), String> {
        let Some(head) = got.first() else {
            if self.durable > self.keep_from {
                return Err(format!(
                    "{what}: log empty but records {}..{} are durable",
                    self.keep_from, self.durable
                ));
            }
            return Ok(());
        };
        if head.seq < self.first || head.seq > self.keep_from {
            return Err(format!(
                "{what}: log starts at {}, must start in {}..={}",
                head.seq, self.first, self.keep_from
            ));
        }
        for (i, g) in got.iter().enumerate() {
            let seq = head.seq + i as u64;
            let Some((want, exact_ts)) = self.records.get(seq as usize - 1) else {
                return Err(format!(
                    "{what}: record {seq} was never acknowledged: {}",
                    describe(g)
                ));
            };
            let same = g.seq == want.seq
                && g.record_type == want.record_type
                && g.payload == want.payload
                && (!exact_ts || g.timestamp == want.timestamp);
            if !same {
                return Err(format!(
                    "{what}: record #{i} is [{}], the model has [{}]",
                    describe(g),
                    describe(want)
                ));
            }
        }
        let end = head.seq + got.len() as u64; // one past the last record read
        if end < self.durable {
            return Err(format!(
                "{what}: log ends before {end} but records up to {} are durable",
                self.durable - 1
            ));
        }
        Ok(())
    }
}

fn config(dir: &std::path::Path, mode: SyncMode) -> WalConfig {
    small_config(dir).sync_mode(mode)
}

fn run(ops: Vec<Op>, always: bool) -> TestResult {
    match run_inner(&ops, always) {
        Ok(()) => TestResult::passed(),
        Err(msg) => TestResult::error(msg),
    }
}

fn run_inner(ops: &[Op], always: bool) -> Result<(), String> {
    let mode = if always {
        SyncMode::Always
    } else {
        SyncMode::Manual
    };
    let dir = tempdir();
    let layout = Layout::new(16 << 10, 256).unwrap();
    let max_payload = layout.max_payload();
    let mut store = WalStore::open(config(dir.path(), mode)).map_err(|e| e.to_string())?;
    let mut m = Model {
        records: Vec::new(),
        durable: 1,
        first: 1,
        keep_from: 1,
    };
    let e2s = |e: Error| e.to_string();
    for (step, op) in ops.iter().enumerate() {
        let what = format!("step {step} {op:?}");
        let w = store.writer();
        match op {
            Op::Append {
                len,
                code,
                ts,
                fill,
            } => {
                let payload = vec![*fill; usize::from(*len)];
                // Codes 1..=5 as the named types, or (sometimes) as reserved custom codes.
                let t = match RecordType::from_code(*code) {
                    Some(_) if *code <= 5 && fill % 2 == 0 => RecordType::Custom(*code),
                    Some(t) => t,
                    None => RecordType::Custom(0),
                };
                let result = w.append_with_timestamp(t, *ts, &payload);
                let reserved = matches!(t, RecordType::Custom(c) if c <= 5);
                match result {
                    Err(Error::InvalidRecordType { .. }) if reserved => {}
                    Err(Error::RecordTooLarge { .. }) if u64::from(*len) > max_payload => {}
                    Ok(seq) if !reserved && u64::from(*len) <= max_payload => {
                        if seq != m.next() {
                            return Err(format!("{what}: got seq {seq}, want {}", m.next()));
                        }
                        m.records.push((
                            WalRecord {
                                seq,
                                record_type: t,
                                timestamp: *ts,
                                payload,
                            },
                            true,
                        ));
                        if always {
                            m.durable = m.next();
                        }
                    }
                    other => return Err(format!("{what}: unexpected {other:?}")),
                }
            }
            Op::Batch(items) => {
                let payloads: Vec<(RecordType, Vec<u8>)> = items
                    .iter()
                    .enumerate()
                    .map(|(i, (len, code))| {
                        (
                            RecordType::Custom(*code),
                            vec![(i as u8).wrapping_mul(37).wrapping_add(1); usize::from(*len)],
                        )
                    })
                    .collect();
                let reserved = payloads.iter().any(|(t, _)| t.code() <= 5);
                let total: u64 = items
                    .iter()
                    .map(|(len, _)| record_size(u64::from(*len)))
                    .sum();
                let result = w.append_batch(payloads.iter().map(|(t, p)| (*t, &p[..])));
                match result {
                    Err(Error::InvalidRecordType { .. }) if reserved => {}
                    Err(Error::RecordTooLarge { .. }) if !reserved && total > layout.capacity() => {
                    }
                    Ok(range) if !reserved && total <= layout.capacity() => {
                        if *range.start() != m.next() || range.clone().count() != payloads.len() {
                            return Err(format!(
                                "{what}: got range {range:?}, next is {}",
                                m.next()
                            ));
                        }
                        for (seq, (t, p)) in range.zip(payloads) {
                            m.records.push((
                                WalRecord {
                                    seq,
                                    record_type: t,
                                    timestamp: 0,
                                    payload: p,
                                },
                                false,
                            ));
                        }
                        if always {
                            m.durable = m.next();
                        }
                    }
                    other => return Err(format!("{what}: unexpected {other:?}")),
                }
            }
            Op::Sync => {
                w.sync().map_err(e2s)?;
                m.durable = m.next();
                // After a sync the reader sees everything.
                let got = collect(&store.reader());
                m.check(&got, &what)?;
                if let Some(last) = got.last()
                    && last.seq + 1 != m.next()
                {
                    return Err(format!("{what}: reader does not show every synced record"));
                }
            }
            Op::Reopen => {
                drop(w);
                drop(store);
                store =
                    WalStore::open(config(dir.path(), mode)).map_err(|e| format!("{what}: {e}"))?;
                let got = collect(&store.reader());
                m.check(&got, &what)?;
                // Whatever survived is the log now; it continues after it.
                let next = store.writer().next_seq().map_err(e2s)?;
                let end = got.last().map_or(next, |r| r.seq + 1);
                if end != next || next > m.next() || next < m.durable {
                    return Err(format!(
                        "{what}: next_seq {next}, log ends before {end}, model next {} durable {}",
                        m.next(),
                        m.durable
                    ));
                }
                m.records.truncate(next as usize - 1);
                m.durable = next;
                m.keep_from = m.keep_from.min(next);
                if let Some(head) = got.first() {
                    (m.first, m.keep_from) = (head.seq, head.seq);
                }
            }
            Op::Truncate { frac } => {
                let first = store.first_seq().unwrap_or(m.first);
                let before = first + u64::from(*frac) * (m.next() - first) / 4;
                store
                    .truncate_before(before)
                    .map_err(|e| format!("{what}: {e}"))?;
                // Records at or above `before` stay; those below may go.
                m.keep_from = m.keep_from.max(before).min(m.next());
                let got = collect(&store.reader());
                m.check(&got, &what)?;
                if let Some(head) = got.first() {
                    (m.first, m.keep_from) = (head.seq, head.seq);
                }
            }
            Op::Read => {
                let got = collect(&store.reader());
                m.check(&got, &what)?;
                let ro = softadastra_wal::WalReader::open(dir.path())
                    .map_err(|e| format!("{what}: {e}"))?;
                m.check(&collect(&ro), &format!("{what} (WalReader::open)"))?;
            }
        }
    }
    // Finally: a clean reopen keeps everything durable, twice the same.
    drop(store);
    let store = WalStore::open(config(dir.path(), mode)).map_err(e2s)?;
    let first = collect(&store.reader());
    m.check(&first, "final reopen")?;
    drop(store);
    let store = WalStore::open(config(dir.path(), mode)).map_err(e2s)?;
    let second = collect(&store.reader());
    if first != second {
        return Err("two recoveries differ".into());
    }
    Ok(())
}

#[test]
fn random_operation_sequences_match_the_model() {
    QuickCheck::new()
        .tests(500)
        .rng(Gen::new(60))
        .quickcheck(run as fn(Vec<Op>, bool) -> TestResult);
}
