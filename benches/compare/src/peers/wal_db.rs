//! wal-db 1.1: `append` is one `pwrite` into a single growing file (not preallocated); `sync`
//! calls `File::sync_data` (fdatasync on Linux); concurrent `sync`/`append_and_sync` calls
//! coalesce into one fdatasync (group commit). Reads by position with `iter_from(Lsn)` (an LSN
//! is a byte offset).

use std::path::Path;

use wal_db::{FileStore, Lsn, Wal};

use crate::subject::*;
use crate::util::{Payloads, Res, err, payload_number};

pub fn subject() -> Subject {
    Subject {
        name: "wal-db",
        version: "1.1.0",
        sync: "pwrite per append; fdatasync per sync, group commit",
        durable: Ok(Box::new(Tiers)),
        bulk: Ok(Box::new(Tiers)),
        unsynced: Ok(Box::new(Tiers)),
        replay: Ok(Box::new(Tiers)),
        get: Ok(Box::new(Tiers)),
    }
}

struct Tiers;
struct Log(Wal<FileStore>);

fn open(dir: &Path) -> Res<Wal<FileStore>> {
    std::fs::create_dir_all(dir)?;
    Wal::open(dir.join("app.wal")).map_err(err)
}

impl DurableTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>> {
        Ok(Box::new(Log(open(dir)?)))
    }
}

impl DurableLog for Log {
    fn append_sync(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        let _ = self.0.append_and_sync(payload).map_err(err)?;
        Ok(())
    }
}

impl BulkTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>> {
        Ok(Box::new(Log(open(dir)?)))
    }
}

impl BulkLog for Log {
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()> {
        for i in first..first + n {
            let _ = self.0.append(payloads.get(i)).map_err(err)?;
        }
        self.0.sync().map_err(err)
    }
}

impl UnsyncedTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn UnsyncedLog>> {
        Ok(Box::new(Log(open(dir)?)))
    }
}

impl UnsyncedLog for Log {
    fn append(&mut self, payload: &[u8]) -> Res<()> {
        let _ = self.0.append(payload).map_err(err)?;
        Ok(())
    }
}

fn fill(wal: &Wal<FileStore>, payload_len: usize, count: u64) -> Res<Vec<Lsn>> {
    let mut p = Payloads::new(payload_len);
    let mut lsns = Vec::with_capacity(count as usize);
    let per_sync = ((1 << 20) / payload_len.max(1)).max(1) as u64;
    for i in 0..count {
        lsns.push(wal.append(p.get(i)).map_err(err)?);
        if (i + 1) % per_sync == 0 {
            wal.sync().map_err(err)?;
        }
    }
    wal.sync().map_err(err)?;
    Ok(lsns)
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        fill(&open(dir)?, payload_len, count)?;
        Ok(())
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let wal = open(dir)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        for r in wal.iter().map_err(err)? {
            let r = r.map_err(err)?;
            n += 1;
            bytes += r.data().len() as u64;
        }
        Ok((n, bytes))
    }
}

struct Get {
    wal: Wal<FileStore>,
    lsns: Vec<Lsn>,
}

impl GetTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<Box<dyn Getter>> {
        let wal = open(dir)?;
        let lsns = fill(&wal, payload_len, count)?;
        Ok(Box::new(Get { wal, lsns }))
    }
}

impl Getter for Get {
    fn get(&mut self, i: u64) -> Res<usize> {
        let lsn = *self.lsns.get(i as usize).ok_or("no such record")?;
        let r = self
            .wal
            .iter_from(lsn)
            .map_err(err)?
            .next()
            .ok_or("record missing")?;
        let r = r.map_err(err)?;
        if payload_number(r.data()) != Some(i) {
            return Err("wrong record".into());
        }
        Ok(r.data().len())
    }
}
