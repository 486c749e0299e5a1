//! [`WalWriter`]: appends, atomic batches, group commit, rotation and poisoning.
//!
//! One `WriterState` behind the store's mutex owns the write position. Records are copied into
//! the active segment's mapping past the published end, flushed, and only then published to
//! readers and acknowledged. The first failed flush poisons the writer for good.
//!
//! **Group commit.** A flush runs without the mutex. The appender that finds no flush in flight
//! becomes the leader: it flushes everything copied so far and publishes it. Appenders that
//! arrive meanwhile copy their records behind it and wait on the store's condition variable; when
//! the flush ends, one of them leads the next flush, which covers them all. Each caller returns
//! only once its own records are durable, and sequence order is log order because records are
//! numbered and placed under the mutex.

use std::io;
use std::ops::RangeInclusive;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::SyncMode;
use crate::error::{Error, Result};
use crate::events::event;
use crate::format::{self, FLAG_BATCH_CONTINUES};
use crate::index;
use crate::record::RecordType;
use crate::segment::create;
use crate::segment::{Segment, SegmentView};
use crate::shared::{Shared, panicked};
use crate::stats::Counters;

/// The writer's lock: its state, and the condition variable group-commit followers wait on.
/// One per store, shared by every [`WalWriter`] made from it.
#[derive(Debug)]
pub(crate) struct Writing {
    state: Mutex<WriterState>,
    /// Signalled (with `state`) whenever a flush ends: group-commit followers wait on it.
    durable: Condvar,
}

impl Writing {
    pub(crate) fn new(state: WriterState) -> Writing {
        Writing {
            state: Mutex::new(state),
            durable: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, WriterState>> {
        self.state.lock().map_err(|_| panicked())
    }

    /// Releases the writer mutex until the next flush ends (or a spurious wake-up), then takes
    /// it again.
    fn wait_durable<'g>(
        &self,
        guard: MutexGuard<'g, WriterState>,
    ) -> Result<MutexGuard<'g, WriterState>> {
        self.durable.wait(guard).map_err(|_| panicked())
    }
}

/// The writer's position in the log. Lives behind [`Writing`].
#[derive(Debug)]
pub(crate) struct WriterState {
    active: Arc<Segment>,
    /// The active segment came sealed from disk: rotate before writing into it.
    active_sealed: bool,
    /// Next sequence number to hand out.
    next_seq: u64,
    /// End of the bytes copied into the active segment.
    write_off: u64,
    /// First sequence number not yet known durable.
    durable_seq: u64,
    /// End of the bytes known durable in the active segment.
    durable_off: u64,
    /// Which record gets the next index entry.
    index_cursor: index::Cursor,
    /// A leader is flushing (without the mutex). Nobody else flushes or rotates meanwhile.
    flushing: bool,
    poisoned: Option<String>,
    counters: Counters,
}

impl WriterState {
    /// The writer state that continues after the recovered `active` segment.
    pub(crate) fn resume(active: &SegmentView, sealed: bool) -> WriterState {
        WriterState {
            active: active.seg.clone(),
            active_sealed: sealed,
            next_seq: active.next_seq,
            write_off: active.end,
            durable_seq: active.next_seq,
            durable_off: active.end,
            index_cursor: active.seg.index_cursor(),
            flushing: false,
            poisoned: None,
            counters: Counters::default(),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Poisons the writer with `err` as the cause and gives `err` back.
    pub(crate) fn poison(&mut self, err: Error) -> Error {
        if self.poisoned.is_none() {
            event!(
                error,
                "writer poisoned (reopen the store to continue): {err}"
            );
            self.poisoned = Some(err.to_string());
        }
        err
    }

    /// Copies one record into the mapping past the published end. Not yet durable or visible.
    #[allow(unsafe_code)]
    fn write_record(&mut self, code: u8, timestamp: u64, flags: u8, payload: &[u8]) -> Result<u64> {
        let seg = &self.active;
        let (seq, off) = (self.next_seq, self.write_off);
        let unsynced = u32::try_from(seq - self.durable_seq).unwrap_or(u32::MAX);
        let header = format::encode_record_header(
            seg.binding(),
            seq,
            timestamp,
            code,
            flags,
            unsynced,
            payload,
        );
        // SAFETY: `self` lives behind the writer's mutex, which the caller holds, so this is the
        // segment's one writer; `write_off` is at or past `durable_off`, the end published to
        // readers, and bytes past it are in no reader's slice.
        unsafe { seg.write_record(off, &header, payload) }
            .map_err(|e| Error::io("writing a record into", seg.path(), e))?;
        if self.index_cursor.due(off) {
            seg.push_index(seq, off);
            self.index_cursor.advance(off);
        }
        self.write_off = off + format::record_size(payload.len() as u64);
        self.next_seq = seq + 1;
        Ok(seq)
    }

    /// Forgets the records written from offset `off` (sequence `seq`) on; their bytes stay past
    /// the durable end and are overwritten or zeroed later. Used when a batch fails half-way: only
    /// its own records go, not those other appenders copied before it and are waiting to flush.
    fn discard_from(&mut self, off: u64, seq: u64) {
        self.index_cursor = self.active.truncate_index(off);
        self.next_seq = seq;
        self.write_off = off;
    }

    /// Records that everything before sequence `seq`, ending at `off` in the active segment, is
    /// durable.
    fn mark_durable(&mut self, off: u64, seq: u64) {
        self.durable_off = off;
        self.durable_seq = seq;
    }
}

/// Appends records to the log. Clone it freely and share it between threads: all clones append to
/// the same log, in one total order.
#[derive(Clone, Debug)]
pub struct WalWriter {
    shared: Arc<Shared>,
    writing: Arc<Writing>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl WalWriter {
    pub(crate) fn new(shared: Arc<Shared>, writing: Arc<Writing>) -> WalWriter {
        WalWriter { shared, writing }
    }

    /// Appends one record stamped with the current time (milliseconds since the Unix epoch) and
    /// returns its sequence number. With [`SyncMode::Always`] the record is durable when this
    /// returns.
    ///
    /// # Errors
    ///
    /// [`Error::RecordTooLarge`] if it cannot fit a segment, [`Error::InvalidRecordType`] for a
    /// reserved custom code (both before anything is written and without using a sequence number),
    /// [`Error::Io`] if a flush fails (which poisons the writer), [`Error::Poisoned`] after that.
    pub fn append(&self, record_type: RecordType, payload: &[u8]) -> Result<u64> {
        self.append_with_timestamp(record_type, now_ms(), payload)
    }

    /// Like [`append`](Self::append) with an explicit timestamp.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append).
    pub fn append_with_timestamp(
        &self,
        record_type: RecordType,
        timestamp: u64,
        payload: &[u8],
    ) -> Result<u64> {
        let code = record_type.checked_code()?;
        let payload = check_payload_len(payload)?;
        let st = self.writing.lock()?;
        st.check_poisoned()?;
        let mut st = self.make_room(st, format::record_size(payload.len() as u64))?;
        let seq = st.write_record(code, timestamp, 0, payload)?;
        st.counters.count_appends(1, payload.len());
        self.commit(st, seq + 1)?;
        Ok(seq)
    }

    /// Appends records as one atomic batch: after a crash either all of them are in the log or
    /// none is. The batch costs one flush, gets consecutive sequence numbers and the same
    /// timestamp, and must fit in one segment. An empty batch writes nothing and returns an empty
    /// range starting at the next sequence number.
    ///
    /// # Errors
    ///
    /// As [`append`](Self::append); `RecordTooLarge` reports the size of the whole batch.
    pub fn append_batch<'a, I>(&self, records: I) -> Result<RangeInclusive<u64>>
    where
        I: IntoIterator<Item = (RecordType, &'a [u8])>,
    {
        let records = records
            .into_iter()
            .map(|(t, p)| Ok((t.checked_code()?, check_payload_len(p)?)))
            .collect::<Result<Vec<_>>>()?;
        let timestamp = now_ms();
        let st = self.writing.lock()?;
        st.check_poisoned()?;
        let Some(last_index) = records.len().checked_sub(1) else {
            let next = st.next_seq;
            return Ok(next..=next - 1);
        };
        let total = records
            .iter()
            .map(|(_, p)| format::record_size(p.len() as u64))
            .sum();
        let mut st = self.make_room(st, total)?;
        let (first, start) = (st.next_seq, st.write_off);
        for (i, (code, payload)) in records.iter().enumerate() {
            let flags = if i < last_index {
                FLAG_BATCH_CONTINUES
            } else {
                0
            };
            if let Err(e) = st.write_record(*code, timestamp, flags, payload) {
                st.discard_from(start, first);
                return Err(e);
            }
        }
        let last = st.next_seq - 1;
        let bytes = records.iter().map(|(_, p)| p.len()).sum();
        st.counters.count_appends(last + 1 - first, bytes);
        self.commit(st, last + 1)?;
        Ok(first..=last)
    }

    /// Makes every record appended so far durable and visible to readers. Needed only with
    /// [`SyncMode::Manual`]; with [`SyncMode::Always`] there is never anything left to flush.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the flush fails (which poisons the writer), [`Error::Poisoned`] after that.
    pub fn sync(&self) -> Result<()> {
        let st = self.writing.lock()?;
        st.check_poisoned()?;
        let target = st.next_seq;
        self.await_durable(st, target).map(drop)
    }

    /// True once a failed flush (or allocation, rename, directory sync, unlink) has poisoned the
    /// writer; every append and sync then fails with [`Error::Poisoned`] until the store is
    /// reopened.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.writing.lock().map_or(true, |st| st.poisoned.is_some())
    }

    /// The sequence number the next append will get.
    ///
    /// # Errors
    ///
    /// [`Error::Poisoned`] if a thread panicked while appending.
    pub fn next_seq(&self) -> Result<u64> {
        Ok(self.writing.lock()?.next_seq)
    }

    /// Makes the record(s) just written durable as the sync mode asks: everything before
    /// sequence `target`.
    fn commit(&self, st: MutexGuard<'_, WriterState>, target: u64) -> Result<()> {
        match self.shared.config.sync_mode {
            SyncMode::Always => self.await_durable(st, target).map(drop),
            SyncMode::Manual => Ok(()),
        }
    }

    /// Returns once every record before sequence `target` is durable and published: flushing as
    /// the leader when no flush is in flight, waiting for the leader's flush otherwise (group
    /// commit; see the module docs).
    fn await_durable<'g>(
        &'g self,
        mut st: MutexGuard<'g, WriterState>,
        target: u64,
    ) -> Result<MutexGuard<'g, WriterState>> {
        loop {
            st.check_poisoned()?;
            if st.durable_seq >= target {
                return Ok(st);
            }
            if st.flushing {
                st = self.writing.wait_durable(st)?;
                continue;
            }
            let pending = Pending::of(&st);
            st.flushing = true;
            drop(st);
            let (flushed, took) = pending.flush(&self.shared);
            st = self.writing.lock()?;
            st.flushing = false;
            self.finish_flush(&mut st, &pending, flushed, took)?;
        }
    }

    /// Records the end of `pending`'s flush: counts it, publishes the records or poisons the
    /// writer, and wakes the followers whatever happened (to return, to lead the next flush, or
    /// to find the writer poisoned).
    fn finish_flush(
        &self,
        st: &mut WriterState,
        pending: &Pending,
        flushed: io::Result<()>,
        took: Duration,
    ) -> Result<()> {
        st.counters.record_flush(took);
        let outcome = match flushed {
            Ok(()) => self.publish_durable(st, pending.end, pending.upto),
            Err(e) => Err(st.poison(Error::io("flushing", pending.seg.path(), e))),
        };
        self.writing.durable.notify_all();
        outcome
    }

    /// Marks the active segment durable up to `end` (sequence `upto`) and shows it to readers.
    fn publish_durable(&self, st: &mut WriterState, end: u64, upto: u64) -> Result<()> {
        st.mark_durable(end, upto);
        {
            let mut p = self.shared.write_published()?;
            p.active.next_seq = upto;
            p.active.end = end;
        }
        self.shared.wakeup.notify();
        Ok(())
    }

    /// Flushes everything written so far while holding the mutex (no leader is flushing: the
    /// caller checked). Used by rotation, which must not let anything else happen meanwhile.
    fn flush_locked(&self, st: &mut WriterState) -> Result<()> {
        debug_assert!(!st.flushing);
        if st.write_off == st.durable_off {
            return Ok(());
        }
        let pending = Pending::of(st);
        let (flushed, took) = pending.flush(&self.shared);
        self.finish_flush(st, &pending, flushed, took)
    }

    /// Rotates to a new segment if `need` bytes do not fit in the active one, first waiting for
    /// a leader's flush in flight (rotation changes the active segment under it).
    fn make_room<'g>(
        &'g self,
        mut st: MutexGuard<'g, WriterState>,
        need: u64,
    ) -> Result<MutexGuard<'g, WriterState>> {
        let fresh = &self.shared.layout;
        if need > fresh.capacity() {
            return Err(Error::RecordTooLarge {
                needed: need,
                max: fresh.capacity(),
            });
        }
        loop {
            if !st.active_sealed && st.write_off + need <= st.active.layout().data_limit {
                return Ok(st);
            }
            if st.flushing {
                st = self.writing.wait_durable(st)?;
                st.check_poisoned()?;
                continue;
            }
            self.rotate(&mut st)?;
        }
    }

    /// Continues in a new segment; the old one is sealed in the background. Everything in the
    /// old segment is flushed first, so the existence of a newer segment proves the older one
    /// complete.
    ///
    /// The new segment is the spare the preparer made ahead of need: given its header (one small
    /// flush) and renamed here. Only when no spare is ready is the segment created here,
    /// synchronously.
    fn rotate(&self, st: &mut WriterState) -> Result<()> {
        self.flush_locked(st)?;
        let shared = &self.shared;
        let old = st.active.clone();
        let id = old.id() + 1;
        let spare = match shared.preparer.take_spare(id) {
            Ok(spare) => spare,
            // The preparer's failure, reported as the writer's own (see `prepare`).
            Err(e) if is_storage_full(&e) => return Err(e),
            Err(e) => return Err(st.poison(e)),
        };
        let new = match spare {
            Some(spare) => spare
                .activate(&shared.sys, &shared.dir, shared.log_id, st.next_seq)
                .map(Arc::new)
                .map_err(|e| st.poison(e))?,
            None => match create::segment(
                &shared.sys,
                &shared.dir,
                id,
                shared.log_id,
                st.next_seq,
                shared.layout,
            ) {
                Ok(seg) => Arc::new(seg),
                // A full disk while preparing a segment that is not part of the log yet loses
                // nothing: report it and let the application retry once space is freed.
                Err(e @ Error::Io { .. }) if is_storage_full(&e) => return Err(e),
                Err(e) => return Err(st.poison(e)),
            },
        };
        if !st.active_sealed && st.next_seq > old.base_seq() {
            let first = old.base_seq();
            shared
                .preparer
                .seal(old, first, st.next_seq - 1, st.write_off);
        }
        shared.preparer.want_spare(id + 1);
        let start = new.layout().data_start();
        {
            let mut p = shared.write_published()?;
            let mut sealed = Vec::with_capacity(p.sealed.len() + 1);
            sealed.extend(p.sealed.iter().cloned());
            sealed.push(p.active.clone());
            p.sealed = Arc::new(sealed);
            p.active = SegmentView::empty(new.clone(), st.next_seq);
        }
        st.active = new;
        st.active_sealed = false;
        st.write_off = start;
        st.durable_off = start;
        st.index_cursor = index::Cursor::new(st.active.layout());
        st.counters.rotations += 1;
        event!(
            info,
            "rotated to segment {} at sequence {}",
            st.active.path().display(),
            st.next_seq
        );
        Ok(())
    }
}

/// The bytes of the active segment written but not yet known durable, and the sequence number
/// that follows them.
struct Pending {
    seg: Arc<Segment>,
    start: u64,
    end: u64,
    upto: u64,
}

impl Pending {
    fn of(st: &WriterState) -> Pending {
        Pending {
            seg: st.active.clone(),
            start: st.durable_off,
            end: st.write_off,
            upto: st.next_seq,
        }
    }

    /// Flushes the bytes (with or without the writer mutex held) and says how long it took.
    fn flush(&self, shared: &Shared) -> (io::Result<()>, Duration) {
        let began = Instant::now();
        let flushed = self
            .seg
            .flush(&shared.sys, self.start, self.end - self.start);
        (flushed, began.elapsed())
    }
}

/// The format stores payload lengths in 32 bits.
fn check_payload_len(payload: &[u8]) -> Result<&[u8]> {
    match u32::try_from(payload.len()) {
        Ok(_) => Ok(payload),
        Err(_) => Err(Error::RecordTooLarge {
            needed: format::record_size(payload.len() as u64),
            max: u64::from(u32::MAX),
        }),
    }
}

/// A full disk (no blocks, or no inodes) while creating a new segment's temporary file or
/// allocating its blocks: nothing of the log was touched yet (the temporary file is removed), so
/// the writer need not poison. Any later step of the creation (sync, rename, directory sync)
/// failing leaves the directory in an unknown state and poisons.
fn is_storage_full(err: &Error) -> bool {
    matches!(err, Error::Io { action: create::ALLOCATING | create::CREATING, source, .. }
        if source.kind() == io::ErrorKind::StorageFull)
}
