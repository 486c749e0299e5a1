//! simple_wal 0.3: `write` seeks to the end and issues three `write` calls (length, data, CRC)
//! on an unbuffered file; `flush` is `File::flush`, which does nothing: never fsyncs. Unsynced
//! tier only. Opening scans the whole log; `seek(index)` walks every entry from the first one
//! (one read and one lseek per entry), so there is no read by position.

use std::path::Path;

use simple_wal::LogFile;

use crate::subject::*;
use crate::util::{Payloads, Res, err};

pub fn subject() -> Subject {
    Subject {
        name: "simple_wal",
        version: "0.3.0",
        sync: "3 writes per append; never fsyncs (flush is a no-op)",
        durable: Err("no fsync"),
        bulk: Err("no fsync"),
        unsynced: Ok(Box::new(Tiers)),
        replay: Ok(Box::new(Tiers)),
        get: Err("no positioned read: seek walks every entry from the first"),
    }
}

struct Tiers;

fn open(dir: &Path) -> Res<LogFile> {
    std::fs::create_dir_all(dir)?;
    LogFile::open(dir.join("log")).map_err(err)
}

struct Log {
    log: LogFile,
    buf: Vec<u8>,
}

impl UnsyncedTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>> {
        Ok(Box::new(Log {
            log: open(dir)?,
            buf: Vec::new(),
        }))
    }
}

impl UnsyncedLog for Log {
    fn append(&mut self, payload: &[u8]) -> Res<()> {
        // `write` wants a mutable buffer; the copy costs far less than its three system calls.
        self.buf.clear();
        self.buf.extend_from_slice(payload);
        self.log.write(&mut self.buf)?;
        Ok(())
    }
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        let mut log = open(dir)?;
        let mut p = Payloads::new(payload_len);
        let mut buf = Vec::new();
        for i in 0..count {
            buf.clear();
            buf.extend_from_slice(p.get(i));
            log.write(&mut buf)?;
        }
        log.flush()?;
        Ok(())
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let mut log = open(dir)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for r in log.iter(..).map_err(err)? {
            let r = r.map_err(err)?;
            n += 1;
            bytes += r.len() as u64;
        }
        Ok((n, bytes))
    }
}
