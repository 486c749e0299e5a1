//! [`WalStore`]: the log directory, its writer lock, the list of segments, and what has been
//! published to readers.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::config::WalConfig;
use crate::error::{Error, Result};
use crate::events::event;
use crate::format::Layout;
use crate::names;
use crate::prepare::Preparer;
use crate::reader::WalReader;
use crate::recovery::{self, TornTail};
use crate::segment::SegmentView;
use crate::segment::create;
use crate::shared::{Published, Shared};
use crate::stats::Stats;
use crate::sys::Sys;
use crate::writer::{WalWriter, WriterState, Writing};

/// An open log directory: the exclusive writer lock, the recovered segments, and the factory of
/// [`WalWriter`]s and [`WalReader`]s.
///
/// Dropping the store does not close the log while writers made from it are alive: the lock is
/// released when the store and its last writer are dropped (readers do not keep it). Closing also
/// stops the store's background thread (which prepares the next segment and seals full ones)
/// after its pending work.
#[derive(Clone, Debug)]
pub struct WalStore {
    shared: Arc<Shared>,
    writing: Arc<Writing>,
    torn_tail: Option<TornTail>,
    /// Records in the log when it was opened.
    recovered_records: u64,
}

impl WalStore {
    /// Opens (creating if needed) the log in `config`'s directory: takes the directory's exclusive
    /// lock, recovers the segments (cutting a torn tail, refusing damaged acknowledged data) and
    /// continues the sequence after the last durable record.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for out-of-range settings, [`Error::Locked`] if another store holds
    /// the directory, [`Error::Corruption`] for damage recovery must not cut, [`Error::Io`] for a
    /// failed system call.
    pub fn open(config: WalConfig) -> Result<WalStore> {
        config.validate()?;
        let layout = Layout::new(config.segment_size, config.index_interval)?;
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let lock = lock_dir(&dir)?;
        #[cfg(feature = "fault-injection")]
        let sys = Sys::new(config.faults.clone());
        #[cfg(not(feature = "fault-injection"))]
        let sys = Sys::new();

        let recovered = recovery::recover(&dir, true, &sys)?;
        let mut views = recovered.views;
        let log_id = recovered.log_id.unwrap_or_else(random_log_id);
        let last_sealed = recovered.last_sealed;
        let torn_tail = recovered.torn_tail;
        let active = match views.pop() {
            Some(view) => view,
            None => {
                let seg = create::segment(&sys, &dir, 1, log_id, 1, layout)?;
                SegmentView::empty(Arc::new(seg), 1)
            }
        };
        let recovered_records = views
            .iter()
            .chain(std::iter::once(&active))
            .map(|v| v.next_seq - v.first_seq)
            .sum();
        event!(
            info,
            "opened {}: {} segment(s), {recovered_records} record(s) from sequence {}",
            dir.display(),
            views.len() + 1,
            views.first().unwrap_or(&active).first_seq
        );
        let writer = WriterState::resume(&active, last_sealed);
        let preparer = Preparer::start(dir.clone(), layout, sys.clone())?;
        preparer.want_spare(active.seg.id() + 1);
        let published = Published {
            sealed: Arc::new(views),
            active,
        };
        let shared = Shared::new(dir, config, layout, log_id, sys, published, preparer, lock);
        Ok(WalStore {
            shared: Arc::new(shared),
            writing: Arc::new(Writing::new(writer)),
            torn_tail,
            recovered_records,
        })
    }

    /// The bytes this open cut from the end of the log, if it found a torn tail (see
    /// [`TornTail`]); `None` when the log ended with a complete record.
    ///
    /// A crash during an unacknowledged append is the normal cause. Since damage to the very last
    /// flushed write looks the same, an application that tracks what it was acknowledged can
    /// compare: if it holds an acknowledgement for `next_seq` or later, acknowledged data was lost.
    #[must_use]
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// A handle that appends to the log. Cheap; every handle shares one writer.
    #[must_use]
    pub fn writer(&self) -> WalWriter {
        WalWriter::new(self.shared.clone(), self.writing.clone())
    }

    /// A reader over a snapshot of the durable log as it is now. See [`WalReader::refresh`].
    #[must_use]
    pub fn reader(&self) -> WalReader {
        WalReader::from_store(self.shared.clone())
    }

    /// The directory of the log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The configuration the store was opened with.
    #[must_use]
    pub fn config(&self) -> &WalConfig {
        &self.shared.config
    }

    /// Sequence number of the oldest durable record still in the log, if any.
    #[must_use]
    pub fn first_seq(&self) -> Option<u64> {
        let p = self.shared.read_published().ok()?;
        p.sealed
            .iter()
            .chain(std::iter::once(&p.active))
            .find(|v| !v.is_empty())
            .map(|v| v.first_seq)
    }

    /// Sequence number of the newest durable record, if any.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        let p = self.shared.read_published().ok()?;
        std::iter::once(&p.active)
            .chain(p.sealed.iter().rev())
            .find(|v| !v.is_empty())
            .map(|v| v.next_seq - 1)
    }

    /// Test-only (feature `fault-injection`): waits until the background preparer is idle, so
    /// that a test can count system calls without racing it.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn settle_background(&self) {
        self.shared.preparer.settle();
    }

    /// What the store has done since it was opened, and the log's extent now (see [`Stats`]).
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if a thread panicked while holding the log's lock.
    pub fn stats(&self) -> Result<Stats> {
        let counters = self.writing.lock()?.counters();
        let segments = self.shared.read_published()?.sealed.len() + 1;
        Ok(Stats {
            appends: counters.appends,
            appended_bytes: counters.appended_bytes,
            flushes: counters.flushes,
            flush_time: counters.flush_time,
            rotations: counters.rotations,
            segments,
            recovered_records: self.recovered_records,
            truncated_bytes: self.torn_tail.as_ref().map_or(0, |t| t.len),
            first_seq: self.first_seq(),
            last_seq: self.last_seq(),
        })
    }

    /// Deletes every sealed segment whose records all have sequence numbers below `seq`. The
    /// active segment is never deleted, so a log keeps counting after it is truncated; records
    /// `>= seq` are never touched. Readers that still see a deleted segment keep reading it (its
    /// mapping lives as long as they do).
    ///
    /// Returns how many segments were deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if the writer is poisoned; [`Error::Io`] if an unlink or the directory
    /// sync fails (which poisons the writer: the directory's state is then unknown).
    pub fn truncate_before(&self, seq: u64) -> Result<usize> {
        let shared = &self.shared;
        let mut st = self.writing.lock()?;
        st.check_poisoned()?;
        let sealed = shared.read_published()?.sealed.clone();
        let doomed = sealed.iter().take_while(|v| v.next_seq <= seq).count();
        if doomed == 0 {
            return Ok(0);
        }
        // No seal may be written into a file after it is deleted.
        shared.preparer.settle();
        // Oldest first, each deletion made durable before the next: the order in which a file
        // system persists unlinks that share one directory fsync is not promised, and a crash
        // that kept a younger segment's deletion but lost an older one's would leave a hole in
        // the segment list, which recovery must refuse as corruption.
        let mut deleted = 0;
        let mut failure = None;
        for view in &sealed[..doomed] {
            let path = view.seg.path();
            if let Err(e) = shared.sys.unlink(path) {
                failure = Some(Error::io("deleting", path, e));
                break;
            }
            deleted += 1;
            if let Err(e) = shared.sys.sync_dir(&shared.dir) {
                failure = Some(Error::io("syncing directory", &shared.dir, e));
                break;
            }
        }
        shared.write_published()?.sealed = Arc::new(sealed[deleted..].to_vec());
        event!(
            info,
            "truncate_before({seq}) deleted {deleted} segment(s) of {}",
            shared.dir.display()
        );
        match failure {
            Some(err) => Err(st.poison(err)),
            None => Ok(deleted),
        }
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(names::LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("opening the lock file", &path, e))?;
    match fs2::FileExt::try_lock_exclusive(&file) {
        Ok(()) => Ok(file),
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error() =>
        {
            Err(Error::Locked {
                dir: dir.to_path_buf(),
            })
        }
        Err(e) => Err(Error::io("locking", &path, e)),
    }
}

/// A log identifier that differs between logs: std's randomly keyed hasher over the clock and
/// the process id. It only has to make a segment of another log fail the checks.
fn random_log_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish()
}
