//! commitlog 0.2: `append` writes the message set to the segment file with `write` (no
//! buffering); `flush` only msyncs the memory-mapped index and calls `File::flush`, which does
//! nothing: the data is never fsynced. Unsynced tier only. Reads by position with
//! `read(offset, limit)` through the index; every message's CRC-32C is checked as it is read.

use std::path::Path;

use commitlog::message::{MessageBuf, MessageSet};
use commitlog::{CommitLog, LogOptions, ReadLimit};

use crate::subject::*;
use crate::util::{Payloads, Res, err, payload_number};

pub fn subject() -> Subject {
    Subject {
        name: "commitlog",
        version: "0.2.0",
        sync: "write per append; never fsyncs data (flush msyncs only its index)",
        durable: Err("no fsync"),
        bulk: Err("no fsync"),
        unsynced: Ok(Box::new(Tiers)),
        replay: Ok(Box::new(Tiers)),
        get: Ok(Box::new(Tiers)),
    }
}

struct Tiers;

fn open(dir: &Path) -> Res<CommitLog> {
    Ok(CommitLog::new(LogOptions::new(dir))?)
}

struct Log {
    log: CommitLog,
    buf: MessageBuf,
}

impl UnsyncedTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>> {
        Ok(Box::new(Log {
            log: open(dir)?,
            buf: MessageBuf::default(),
        }))
    }
}

impl UnsyncedLog for Log {
    fn append(&mut self, payload: &[u8]) -> Res<()> {
        self.buf.clear();
        self.buf.push(payload).map_err(|e| format!("{e:?}"))?;
        self.log.append(&mut self.buf).map_err(err)?;
        Ok(())
    }
}

fn fill(log: &mut CommitLog, payload_len: usize, count: u64) -> Res<()> {
    let mut p = Payloads::new(payload_len);
    // A message set must stay under the default 1,000,000-byte message limit.
    let per_set = ((512 << 10) / payload_len.max(1)).clamp(1, 1000) as u64;
    let mut buf = MessageBuf::default();
    let mut i = 0;
    while i < count {
        let n = per_set.min(count - i);
        buf.clear();
        for j in i..i + n {
            buf.push(p.get(j)).map_err(|e| format!("{e:?}"))?;
        }
        log.append(&mut buf).map_err(err)?;
        i += n;
    }
    log.flush()?;
    Ok(())
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        fill(&mut open(dir)?, payload_len, count)
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let log = open(dir)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut at = 0u64;
        loop {
            // The read checks every message's CRC (MessageBuf::from_bytes).
            let set = log.read(at, ReadLimit::max_bytes(1 << 20)).map_err(err)?;
            let mut last = None;
            for m in set.iter() {
                n += 1;
                bytes += m.payload().len() as u64;
                last = Some(m.offset());
            }
            match last {
                Some(o) => at = o + 1,
                None => break,
            }
        }
        Ok((n, bytes))
    }
}

struct Get {
    log: CommitLog,
    limit: usize,
}

impl GetTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>> {
        let mut log = open(dir)?;
        fill(&mut log, payload_len, count)?;
        // Enough for one message with its header, not two.
        Ok(Box::new(Get {
            log,
            limit: payload_len + 64,
        }))
    }
}

impl Getter for Get {
    fn get(&mut self, i: u64) -> Res<usize> {
        let set = self
            .log
            .read(i, ReadLimit::max_bytes(self.limit))
            .map_err(err)?;
        let m = set.iter().next().ok_or("record missing")?;
        if m.offset() != i || payload_number(m.payload()) != Some(i) {
            return Err("wrong record".into());
        }
        Ok(m.payload().len())
    }
}
