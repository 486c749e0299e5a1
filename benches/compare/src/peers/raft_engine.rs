//! raft-engine 0.4 (`default-features = false`): `Engine::write(batch, sync)` appends the batch
//! with `pwrite`, and with `sync = true` calls fdatasync (nix) before returning; concurrent
//! writers are merged into one write group (group commit). Entries are protobuf messages: here
//! `protobuf::well_known_types::BytesValue` with the raft index in the first 8 bytes. Batch
//! compression is turned off (`batch_compression_threshold = 0`), as no other log compresses.
//! Reads by position: `get_entry(region, index)` (in-memory index, then a read of the batch's
//! block). Replay: `Engine::open` (recovery scans every file and rebuilds the index) followed by
//! `fetch_entries_to` over every entry.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

use crate::subject::*;
use crate::util::{Payloads, Res, err, payload_number};

pub fn subject() -> Subject {
    Subject {
        name: "raft-engine",
        version: "0.4.2",
        sync: "pwrite per batch; fdatasync when the batch's sync flag is set, write groups",
        durable: Ok(Box::new(Tiers)),
        bulk: Ok(Box::new(Tiers)),
        unsynced: Ok(Box::new(Tiers)),
        replay: Ok(Box::new(Tiers)),
        get: Ok(Box::new(Tiers)),
    }
}

#[derive(Clone)]
struct M;
impl MessageExt for M {
    type Entry = BytesValue;
    fn index(e: &BytesValue) -> u64 {
        payload_number(&e.value).unwrap_or(0)
    }
}

fn entry(index: u64, payload: &[u8]) -> BytesValue {
    let mut value = payload.to_vec();
    value[..8].copy_from_slice(&index.to_le_bytes());
    let mut e = BytesValue::new();
    e.value = value;
    e
}

fn open(dir: &Path) -> Res<Engine> {
    let cfg = Config {
        dir: dir.to_string_lossy().into_owned(),
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    };
    Engine::open(cfg).map_err(err)
}

struct Tiers;

/// One raft group per thread, each with its next index.
struct Log {
    engine: Engine,
    next: Vec<AtomicU64>,
}

impl Log {
    fn new(engine: Engine) -> Log {
        Log {
            engine,
            next: (0..64).map(|_| AtomicU64::new(1)).collect(),
        }
    }

    fn write_one(&self, thread: usize, payload: &[u8], sync: bool) -> Res<()> {
        let index = self.next[thread].fetch_add(1, Ordering::Relaxed);
        let mut batch = LogBatch::default();
        batch
            .add_entries::<M>(thread as u64 + 1, &[entry(index, payload)])
            .map_err(err)?;
        self.engine.write(&mut batch, sync).map_err(err)?;
        Ok(())
    }
}

impl DurableTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>> {
        Ok(Box::new(Log::new(open(dir)?)))
    }
}

impl DurableLog for Log {
    fn append_sync(&self, thread: usize, payload: &[u8]) -> Res<()> {
        self.write_one(thread, payload, true)
    }
}

impl BulkTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>> {
        Ok(Box::new(Log::new(open(dir)?)))
    }
}

/// Writes records `first .. first + n` as one batch of region 1 (indexes `first + 1 ..`).
fn write_batch(engine: &Engine, p: &mut Payloads, first: u64, n: u64, sync: bool) -> Res<()> {
    let entries: Vec<BytesValue> = (first..first + n).map(|i| entry(i + 1, p.get(i))).collect();
    let mut batch = LogBatch::default();
    batch.add_entries::<M>(1, &entries).map_err(err)?;
    engine.write(&mut batch, sync).map_err(err)?;
    Ok(())
}

impl BulkLog for Log {
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()> {
        write_batch(&self.engine, payloads, first, n, true)
    }
}

impl UnsyncedTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>> {
        Ok(Box::new(Log::new(open(dir)?)))
    }
}

impl UnsyncedLog for Log {
    fn append(&mut self, payload: &[u8]) -> Res<()> {
        self.write_one(0, payload, false)
    }
}

/// Writes `count` records in batches of `per_batch`, unsynced, then one sync.
fn fill(engine: &Engine, payload_len: usize, count: u64, per_batch: u64) -> Res<()> {
    let mut p = Payloads::new(payload_len);
    let mut i = 0;
    while i < count {
        let n = per_batch.min(count - i);
        write_batch(engine, &mut p, i, n, false)?;
        i += n;
    }
    engine.sync().map_err(err)
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        let per_batch = ((1 << 20) / payload_len.max(1)).max(1) as u64;
        fill(&open(dir)?, payload_len, count, per_batch)
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let engine = open(dir)?;
        let (first, last) = match (engine.first_index(1), engine.last_index(1)) {
            (Some(f), Some(l)) => (f, l),
            _ => return Ok((0, 0)),
        };
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut buf = Vec::new();
        let mut at = first;
        while at <= last {
            let end = (at + 1024).min(last + 1);
            buf.clear();
            engine
                .fetch_entries_to::<M>(1, at, end, None, &mut buf)
                .map_err(err)?;
            for e in &buf {
                n += 1;
                bytes += e.value.len() as u64;
            }
            at = end;
        }
        Ok((n, bytes))
    }
}

struct Get(Engine);

/// Entries per batch when building the log for reads by position (small batches, as a raft
/// log's appends usually are; a read decodes its whole batch block).
const GET_BATCH: u64 = 16;

impl GetTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>> {
        let engine = open(dir)?;
        fill(&engine, payload_len, count, GET_BATCH)?;
        Ok(Box::new(Get(engine)))
    }
}

impl Getter for Get {
    fn get(&mut self, i: u64) -> Res<usize> {
        let e = self
            .0
            .get_entry::<M>(1, i + 1)
            .map_err(err)?
            .ok_or("record missing")?;
        if payload_number(&e.value) != Some(i + 1) {
            return Err("wrong record".into());
        }
        Ok(e.value.len())
    }
}
