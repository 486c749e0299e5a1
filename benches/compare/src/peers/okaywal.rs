//! okaywal 0.3: `EntryWriter::commit` writes the entry and calls `File::sync_data` (fdatasync on
//! Linux) before returning; concurrent commits share one fdatasync (its own batching). Every
//! commit syncs: there is no unsynced mode. Reads by position with `read_at(LogPosition)` (opens
//! the segment file and reads through a `BufReader`). Replay happens inside `recover` (open),
//! through the `LogManager::recover` callback.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, LogPosition, ReadChunkResult, SegmentReader,
    WriteAheadLog,
};

use crate::subject::*;
use crate::util::{Payloads, Res, payload_number};

pub fn subject() -> Subject {
    Subject {
        name: "okaywal",
        version: "0.3.1",
        sync: "fdatasync per commit (always), concurrent commits share one",
        durable: Ok(Box::new(Tiers)),
        bulk: Ok(Box::new(Tiers)),
        unsynced: Err("always syncs"),
        replay: Ok(Box::new(Tiers)),
        get: Ok(Box::new(Tiers)),
    }
}

/// A log manager that checkpoints nothing and, during recovery, reads every chunk and checks
/// its CRC, counting records and bytes.
#[derive(Debug, Default, Clone)]
struct Manager {
    records: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        let mut buf = Vec::new();
        loop {
            let mut chunk = match entry.read_chunk()? {
                ReadChunkResult::Chunk(chunk) => chunk,
                ReadChunkResult::EndOfEntry | ReadChunkResult::AbortedEntry => break,
            };
            let len = chunk.bytes_remaining() as usize;
            buf.resize(len, 0);
            chunk.read_exact(&mut buf)?;
            if !chunk.check_crc()? {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "crc mismatch"));
            }
            self.records.fetch_add(1, Ordering::Relaxed);
            self.bytes.fetch_add(len as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

struct Tiers;

/// An open log that is shut down when dropped: that joins okaywal's checkpoint thread, which
/// otherwise may still rename and recycle files while the benchmark removes the directory.
struct Log(Option<WriteAheadLog>);

impl Log {
    fn open(dir: &Path) -> Res<Log> {
        // The crate's defaults (1 MiB preallocation, checkpoint every 768 KiB).
        Ok(Log(Some(WriteAheadLog::recover(dir, Manager::default())?)))
    }

    fn wal(&self) -> &WriteAheadLog {
        self.0.as_ref().expect("open until dropped")
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Some(wal) = self.0.take() {
            let _ = wal.shutdown();
        }
    }
}

/// A configuration that never checkpoints, so that every record stays in the log (replay and
/// reads by position need them; checkpointed segment files are recycled).
fn keep_all(dir: &Path) -> Configuration {
    Configuration::default_for(dir).checkpoint_after_bytes(u64::MAX)
}

impl DurableTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>> {
        Ok(Box::new(Log::open(dir)?))
    }
}

impl DurableLog for Log {
    fn append_sync(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        let mut w = self.wal().begin_entry()?;
        w.write_chunk(payload)?;
        w.commit()?;
        Ok(())
    }
}

impl BulkTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>> {
        Ok(Box::new(Log::open(dir)?))
    }
}

impl BulkLog for Log {
    /// One entry of `n` chunks, one commit (one fdatasync).
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()> {
        let mut w = self.wal().begin_entry()?;
        for i in first..first + n {
            w.write_chunk(payloads.get(i))?;
        }
        w.commit()?;
        Ok(())
    }
}

/// Writes `count` records as entries of about 1 MiB of chunks, one commit each.
fn fill(log: &WriteAheadLog, payload_len: usize, count: u64) -> Res<Vec<LogPosition>> {
    let mut p = Payloads::new(payload_len);
    let per_entry = ((1 << 20) / payload_len.max(1)).max(1) as u64;
    let mut positions = Vec::new();
    let mut i = 0;
    while i < count {
        let n = per_entry.min(count - i);
        let mut w = log.begin_entry()?;
        for j in i..i + n {
            positions.push(w.write_chunk(p.get(j))?.position);
        }
        w.commit()?;
        i += n;
    }
    Ok(positions)
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        let log = keep_all(dir).open(Manager::default())?;
        fill(&log, payload_len, count)?;
        log.shutdown()?;
        Ok(())
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let m = Manager::default();
        let log = keep_all(dir).open(m.clone())?;
        let r = (
            m.records.load(Ordering::Relaxed),
            m.bytes.load(Ordering::Relaxed),
        );
        log.shutdown()?;
        Ok(r)
    }
}

struct Get {
    log: Log,
    positions: Vec<LogPosition>,
    buf: Vec<u8>,
}

impl GetTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>> {
        let log = Log(Some(keep_all(dir).open(Manager::default())?));
        let positions = fill(log.wal(), payload_len, count)?;
        Ok(Box::new(Get {
            log,
            positions,
            buf: vec![0; payload_len],
        }))
    }
}

impl Getter for Get {
    fn get(&mut self, i: u64) -> Res<usize> {
        let pos = *self.positions.get(i as usize).ok_or("no such record")?;
        let mut r = self.log.wal().read_at(pos)?;
        let len = r.chunk_length() as usize;
        self.buf.resize(len, 0);
        r.read_exact(&mut self.buf)?;
        if !r.crc_is_valid()? {
            return Err("crc mismatch".into());
        }
        if payload_number(&self.buf) != Some(i) {
            return Err("wrong record".into());
        }
        Ok(len)
    }
}
