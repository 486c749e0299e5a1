//! open-wal 0.2: single writer (`&mut self`). `append` only sequences and buffers the record in
//! process memory (no system call); `commit` writes everything buffered with one `pwrite` per
//! segment and calls `File::sync_data` (fdatasync on Linux). Segments are preallocated. Its
//! reader streams from the oldest segment: there is no read by position.

use std::path::Path;
use std::sync::Mutex;

use open_wal::{Lsn, NullObserver, Wal, WalConfig};

use crate::subject::*;
use crate::util::{Payloads, Res, err};

pub fn subject() -> Subject {
    Subject {
        name: "open-wal",
        version: "0.2.1",
        sync: "append buffers in memory; commit = write + fdatasync",
        durable: Ok(Box::new(Tiers)),
        bulk: Ok(Box::new(Tiers)),
        unsynced: Err("append stays in process memory; only commit writes, and it fdatasyncs"),
        replay: Ok(Box::new(Tiers)),
        get: Err("no positioned read: reader_from walks from the oldest segment"),
    }
}

struct Tiers;

fn open(dir: &Path) -> Res<Wal<NullObserver>> {
    std::fs::create_dir_all(dir)?;
    Ok(Wal::open(dir, WalConfig::default()).map_err(err)?.0)
}

/// Single writer by construction: threads take turns through a mutex, one commit each.
struct Shared(Mutex<Wal<NullObserver>>);

impl DurableTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn DurableLog>> {
        Ok(Box::new(Shared(Mutex::new(open(dir)?))))
    }
}

impl DurableLog for Shared {
    fn append_sync(&self, _thread: usize, payload: &[u8]) -> Res<()> {
        let mut wal = self.0.lock().map_err(err)?;
        wal.append(payload).map_err(err)?;
        wal.commit().map_err(err)?;
        Ok(())
    }
}

struct Own(Wal<NullObserver>);

impl BulkTier for Tiers {
    fn open(&self, dir: &Path) -> Res<Box<dyn BulkLog>> {
        Ok(Box::new(Own(open(dir)?)))
    }
}

impl BulkLog for Own {
    fn write_group(&mut self, payloads: &mut Payloads, first: u64, n: u64) -> Res<()> {
        for i in first..first + n {
            self.0.append(payloads.get(i)).map_err(err)?;
        }
        self.0.commit().map_err(err)?;
        Ok(())
    }
}

impl ReplayTier for Tiers {
    fn build(&self, dir: &Path, payload_len: usize, count: u64) -> Res<()> {
        let mut wal = open(dir)?;
        let mut p = Payloads::new(payload_len);
        let per_commit = ((1 << 20) / payload_len.max(1)).max(1) as u64;
        for i in 0..count {
            wal.append(p.get(i)).map_err(err)?;
            if (i + 1) % per_commit == 0 {
                wal.commit().map_err(err)?;
            }
        }
        wal.commit().map_err(err)?;
        Ok(())
    }

    fn replay(&self, dir: &Path) -> Res<(u64, u64)> {
        let wal = open(dir)?;
        let mut reader = wal.reader_from(Lsn(0)).map_err(err)?;
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(r) = reader.next() {
            let (_lsn, payload) = r.map_err(err)?;
            n += 1;
            bytes += payload.len() as u64;
        }
        Ok((n, bytes))
    }
}
