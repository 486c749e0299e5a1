//! This crate (`softadastra-wal`) behind the same traits as the peers, plus the workloads only it
//! runs (W7 open time, W8 memory).

use std::path::Path;
use std::time::{Duration, Instant};

use softadastra_wal::format;
use softadastra_wal::{RecordType, SyncMode, WalConfig, WalReader, WalStore, WalWriter};

use crate::subject::*;
use crate::util::{Payloads, Res, payload_number};

pub fn subject() -> Subject {
    Subject {
        name: "softadastra-wal",
        version: "path",
        sync: "copy into a mapping; Always: msync(MS_SYNC) of the appended pages before returning, concurrent appends share one (group commit); Manual: sync(); a rotation flushes the full segment",
        durable: Ok(Box::new(Durable)),
        bulk: Ok(Box::new(Bulk)),
        unsynced: Ok(Box::new(Unsynced)),
        replay: Ok(Box::new(Replay)),
        get: Ok(Box::new(Get)),
    }
}

fn open(dir: &Path, mode: SyncMode) -> Res<(WalStore, WalWriter)> {
    let store = WalStore::open(WalConfig::new(dir).sync_mode(mode))?;
    let writer = store.writer();
    Ok((store, writer))
}

struct Durable;
struct DurableLogImpl {
    _store: WalStore,
    writer: WalWriter,
}

impl DurableTier for Durable {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>> {
        let (store, writer) = open(dir, SyncMode::Always)?;
        Ok(Box::new(DurableLogImpl {
            _store: store,
            writer,
        }))
    }
}

impl DurableLog for DurableLogImpl {
    fn append_sync(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        self.writer.append(RecordType::Put, payload)?;
        Ok(())
    }
}

struct Bulk;
struct ManualLog {
    _store: WalStore,
    writer: WalWriter,
}

impl BulkTier for Bulk {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>> {
        let (store, writer) = open(dir, SyncMode::Manual)?;
        Ok(Box::new(ManualLog {
            _store: store,
            writer,
        }))
    }
}

impl BulkLog for ManualLog {
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()> {
        for i in first..first + n {
            self.writer.append(RecordType::Put, payloads.get(i))?;
        }
        self.writer.sync()?;
        Ok(())
    }
}

struct Unsynced;
impl UnsyncedTier for Unsynced {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>> {
        let (store, writer) = open(dir, SyncMode::Manual)?;
        Ok(Box::new(ManualLog {
            _store: store,
            writer,
        }))
    }
}

impl UnsyncedLog for ManualLog {
    fn append(&mut self, payload: &[u8]) -> Res<()> {
        self.writer.append(RecordType::Put, payload)?;
        Ok(())
    }
}

/// Writes `count` records in Manual mode, one sync per MiB, and a last sync.
fn fill(writer: &WalWriter, payload_len: usize, count: u64) -> Res<()> {
    let mut p = Payloads::new(payload_len);
    let per_sync = ((1 << 20) / payload_len.max(1)).max(1) as u64;
    for i in 0..count {
        writer.append(RecordType::Put, p.get(i))?;
        if (i + 1) % per_sync == 0 {
            writer.sync()?;
        }
    }
    writer.sync()?;
    Ok(())
}

struct Replay;

/// How long the open of the last W5 replay took (the rest is the iteration), for the notes.
pub static LAST_OPEN_NS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
impl ReplayTier for Replay {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        let (_store, writer) = open(dir, SyncMode::Manual)?;
        fill(&writer, payload_len, count)
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let t = Instant::now();
        let store = WalStore::open(WalConfig::new(dir))?;
        LAST_OPEN_NS.store(
            t.elapsed().as_nanos() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let reader = store.reader();
        let (mut n, mut bytes) = (0u64, 0u64);
        reader.for_each(|r| {
            n += 1;
            bytes += r.payload().len() as u64;
        })?;
        Ok((n, bytes))
    }
}

struct Get;
struct Getter_ {
    _store: WalStore,
    reader: WalReader,
}

impl GetTier for Get {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>> {
        // Diagnosis knob (not used by the reported runs): another sparse-index interval.
        let mut config = WalConfig::new(dir).sync_mode(SyncMode::Manual);
        if let Some(v) = std::env::var("COMPARE_INDEX_INTERVAL")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            config = config.index_interval(v);
        }
        let store = WalStore::open(config)?;
        let writer = store.writer();
        fill(&writer, payload_len, count)?;
        let reader = store.reader();
        Ok(Box::new(Getter_ {
            _store: store,
            reader,
        }))
    }
}

impl Getter for Getter_ {
    #[inline]
    fn get(&mut self, i: u64) -> Res<usize> {
        let r = self.reader.get(i + 1)?.ok_or("record missing")?;
        let p = r.payload();
        if payload_number(p) != Some(i) {
            return Err("wrong record".into());
        }
        Ok(p.len())
    }
}

// ---- W7 / W8: this crate only ----------------------------------------------------------------

/// Records of `payload_len` bytes that fill one segment of `segment_size` bytes.
pub fn records_per_segment(segment_size: u64, payload_len: u64) -> Res<u64> {
    let layout = format::Layout::new(segment_size, 4096)?;
    Ok(layout.capacity() / format::record_size(payload_len))
}

/// Builds a log of `count` records of `payload_len` bytes in segments of `segment_size`.
pub fn build_log(dir: &Path, segment_size: u64, payload_len: usize, count: u64) -> Res<()> {
    let store = WalStore::open(
        WalConfig::new(dir)
            .segment_size(segment_size)
            .sync_mode(SyncMode::Manual),
    )?;
    let writer = store.writer();
    let mut p = Payloads::new(payload_len);
    // Rotation flushes each full segment; one sync at the end makes the tail durable.
    for i in 0..count {
        writer.append(RecordType::Put, p.get(i))?;
    }
    writer.sync()?;
    Ok(())
}

/// Time of one `WalStore::open` (recovery included) of the log in `dir`, and its record count.
pub fn open_time(dir: &Path) -> Res<(Duration, u64)> {
    let t = Instant::now();
    let store = WalStore::open(WalConfig::new(dir))?;
    let d = t.elapsed();
    let last = store.last_seq().unwrap_or(0);
    drop(store);
    Ok((d, last))
}

/// Opens and replays the log in `dir` (for W8); returns the records seen.
pub fn open_and_replay(dir: &Path) -> Res<u64> {
    let store = WalStore::open(WalConfig::new(dir))?;
    let reader = store.reader();
    let mut n = 0u64;
    let mut x = 0u8;
    reader.for_each(|r| {
        n += 1;
        x ^= r.payload().first().copied().unwrap_or(0);
    })?;
    std::hint::black_box(x);
    Ok(n)
}
