//! [`WalReader`]: snapshots of the durable log, random access by sequence number, and iteration.
//!
//! A reader holds a list of segment views (each an `Arc` of a mapped segment plus the range of it
//! that was durable when the snapshot was taken). It only ever slices bytes below a view's end,
//! which the writer never writes again, so readers need no lock while they read. Every record
//! handed out has had its checksum verified.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::format::{self, Located};
use crate::record::{RecordRef, RecordType};
use crate::recovery;
use crate::rules::{Damage, DamageKind};
use crate::segment::SegmentView;
use crate::shared::Shared;
use crate::sys::Sys;

/// Longest pause between two polls of the directory in [`WalReader::wait_for`].
const MAX_POLL_PAUSE: Duration = Duration::from_millis(50);

/// Longest a waiting reader holds its store alive at a time (see [`WalReader::wait_for`]).
const MAX_WAIT_SLICE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone)]
enum Source {
    /// Made by a store. Weak, so that a forgotten reader does not keep the writer lock; once the
    /// store is gone, `refresh` reads the directory instead.
    Store(Weak<Shared>, PathBuf),
    Dir(PathBuf),
}

/// A consistent, read-only snapshot of the durable log.
///
/// Made by [`WalStore::reader`](crate::WalStore::reader) (same process as the writer) or
/// [`WalReader::open`] (any process, no lock). It sees exactly the records that were durable when
/// it was made, even while the writer appends, rotates or truncates; [`refresh`](Self::refresh)
/// moves it to the current state. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct WalReader {
    source: Source,
    views: Vec<SegmentView>,
}

impl WalReader {
    pub(crate) fn from_store(shared: Arc<Shared>) -> WalReader {
        let views = shared
            .read_published()
            .map(|p| p.views())
            .unwrap_or_default();
        WalReader {
            source: Source::Store(Arc::downgrade(&shared), shared.dir.clone()),
            views,
        }
    }

    /// Opens the log in `dir` for reading only: takes no lock, never writes, and works while
    /// another process appends to the log.
    ///
    /// A torn tail is left on disk and simply not shown. Reading a log that another process is
    /// writing shows every record that is complete and valid in the page cache; in
    /// [`SyncMode::Manual`](crate::SyncMode::Manual) that can include records the writer has not
    /// synced yet.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory cannot be read, [`Error::Corruption`] if the log is damaged
    /// in a way recovery must not cut.
    pub fn open(dir: impl AsRef<Path>) -> Result<WalReader> {
        let dir = dir.as_ref().to_path_buf();
        let views = Self::scan_dir(&dir)?;
        Ok(WalReader {
            source: Source::Dir(dir),
            views,
        })
    }

    fn scan_dir(dir: &Path) -> Result<Vec<SegmentView>> {
        #[cfg(feature = "fault-injection")]
        let sys = Sys::new(None);
        #[cfg(not(feature = "fault-injection"))]
        let sys = Sys::new();
        Ok(recovery::recover(dir, false, &sys)?.views)
    }

    /// Moves the snapshot forward to what is durable now (for a reader made by
    /// [`WalReader::open`], or by a store that has since been closed, what is on disk now).
    /// A reader does not keep its store open: the directory's lock is released when the store and
    /// its writers are dropped, even while readers live.
    ///
    /// # Errors
    ///
    /// As [`WalReader::open`] for a reader opened from a directory.
    pub fn refresh(&mut self) -> Result<()> {
        self.views = match &self.source {
            Source::Store(shared, dir) => match shared.upgrade() {
                Some(shared) => shared.read_published()?.views(),
                None => Self::scan_dir(dir)?,
            },
            Source::Dir(dir) => Self::scan_dir(dir)?,
        };
        Ok(())
    }

    /// Waits until record `seq` is durable, then moves the snapshot forward to include it.
    /// Returns `Ok(true)` once the snapshot reaches `seq` (at once if it already does), `Ok(false)`
    /// if `timeout` passed first. `Duration::MAX` waits for ever.
    ///
    /// This is the live-tailing call: read what the snapshot holds, then wait for the sequence
    /// number after [`last_seq`](Self::last_seq).
    ///
    /// * A reader made by [`WalStore::reader`](crate::WalStore::reader) sleeps until the writer
    ///   publishes new records (no polling, and nothing costs the writer while nobody waits).
    /// * A reader made by [`WalReader::open`] (another process), or whose store has been
    ///   dropped, polls the directory with [`refresh`](Self::refresh), pausing 1 ms at first and
    ///   up to 50 ms between attempts. Each attempt reads the directory the way
    ///   [`WalReader::open`] does (it maps every segment and rescans the newest one), which for
    ///   a log of a gigabyte costs about 10 ms: an idle follower of a large log uses a fifth of
    ///   a core. Waiting in slices with your own pause between them bounds that.
    ///
    /// The snapshot "reaches" `seq` when its newest record is `seq` or later. If `seq` has been
    /// truncated away meanwhile, [`get`](Self::get) then returns `None` for it.
    ///
    /// # Errors
    ///
    /// As [`refresh`](Self::refresh).
    pub fn wait_for(&mut self, seq: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now().checked_add(timeout);
        // The polling pause grows across the wait, not per slice.
        let mut pause = Duration::from_millis(1);
        while !self.reaches(seq) {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Ok(false);
            }
            // Slices of at most this long hold the store alive, so that a reader waiting with a
            // long timeout does not keep the directory locked after the application closed it.
            let slice_end = now + MAX_WAIT_SLICE;
            let slice_end = deadline.map_or(slice_end, |d| d.min(slice_end));
            let store = match &self.source {
                Source::Store(shared, _) => shared.upgrade(),
                Source::Dir(_) => None,
            };
            match store {
                Some(shared) => {
                    let published = || Ok(shared.read_published()?.active.next_seq > seq);
                    shared.wakeup.wait_until(published, slice_end)?;
                    self.views = shared.read_published()?.views();
                }
                None => self.poll_until(seq, slice_end, &mut pause)?,
            }
        }
        Ok(true)
    }

    /// The polling half of [`wait_for`](Self::wait_for): refreshes until the snapshot reaches
    /// `seq` or `until` passes, sleeping `pause` between refreshes and doubling it up to
    /// [`MAX_POLL_PAUSE`].
    fn poll_until(&mut self, seq: u64, until: Instant, pause: &mut Duration) -> Result<()> {
        loop {
            self.refresh()?;
            let now = Instant::now();
            if self.reaches(seq) || now >= until {
                return Ok(());
            }
            std::thread::sleep((*pause).min(until - now));
            *pause = (*pause * 2).min(MAX_POLL_PAUSE);
        }
    }

    /// The snapshot holds records up to `seq` (or past it).
    fn reaches(&self, seq: u64) -> bool {
        self.views.last().is_some_and(|v| v.next_seq > seq)
    }

    /// Sequence number of the oldest record in the snapshot.
    #[must_use]
    pub fn first_seq(&self) -> Option<u64> {
        self.views
            .iter()
            .find(|v| !v.is_empty())
            .map(|v| v.first_seq)
    }

    /// Sequence number of the newest record in the snapshot.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        self.views
            .iter()
            .rev()
            .find(|v| !v.is_empty())
            .map(|v| v.next_seq - 1)
    }

    /// The record with sequence number `seq`, or `None` if the snapshot does not hold it (not yet
    /// written, or truncated away). Positioned by the sparse index: at most one index interval of
    /// record headers is walked, and only the record returned has its checksum computed.
    ///
    /// # Errors
    ///
    /// [`Error::Corruption`] if the record or the headers leading to it are damaged. Damaged data
    /// is never returned as a record.
    pub fn get(&self, seq: u64) -> Result<Option<RecordRef<'_>>> {
        let Some(view) = self.view_of(seq) else {
            return Ok(None);
        };
        let loc = locate(view, seq)?;
        let region = view.seg.bytes(view.end)?;
        let payload = format::payload(region, &loc);
        format::verify_record(view.seg.binding(), &loc, payload).map_err(|e| {
            let at = loc.payload_offset - format::RECORD_HEADER_LEN;
            damaged(view, at, seq, DamageKind::Record(e))
        })?;
        to_ref(view, &loc, payload).map(Some)
    }

    /// Iterates over every record in the snapshot, oldest first. Each item is a record whose
    /// checksum was verified, or the error that ends the iteration.
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        Iter::new(&self.views, 0, None, None)
    }

    /// Iterates over the records with sequence numbers `>= seq`, positioned by the sparse index.
    /// Starts at the oldest record if `seq` is older; yields nothing if it is newer than
    /// [`last_seq`](Self::last_seq).
    #[must_use]
    pub fn iter_from(&self, seq: u64) -> Iter<'_> {
        if self.first_seq().is_none_or(|first| seq <= first) {
            return self.iter();
        }
        let Some(view) = self.view_of(seq) else {
            return Iter::exhausted(&self.views);
        };
        let vi = self
            .views
            .partition_point(|v| v.next_seq <= seq)
            .min(self.views.len());
        match locate(view, seq) {
            Ok(loc) => {
                let off = loc.payload_offset - format::RECORD_HEADER_LEN;
                Iter::new(&self.views, vi, Some((seq, off)), None)
            }
            Err(e) => Iter::new(&self.views, vi, None, Some(e)),
        }
    }

    /// Calls `apply` with every record, oldest first, stopping at the first error. This is the
    /// deterministic replay of the C++ original: the same log always yields the same calls.
    ///
    /// # Errors
    ///
    /// The first [`Error::Corruption`] met; records before it were applied.
    pub fn for_each<F>(&self, mut apply: F) -> Result<()>
    where
        F: FnMut(RecordRef<'_>),
    {
        for record in self.iter() {
            apply(record?);
        }
        Ok(())
    }

    fn view_of(&self, seq: u64) -> Option<&SegmentView> {
        let i = self.views.partition_point(|v| v.next_seq <= seq);
        self.views
            .get(i)
            .filter(|v| v.first_seq <= seq && seq < v.next_seq)
    }
}

fn damaged(view: &SegmentView, offset: u64, seq: u64, kind: DamageKind) -> Error {
    Damage::new(view.seg.path(), offset, Some(seq), kind).into()
}

fn to_ref<'a>(view: &SegmentView, loc: &Located, payload: &'a [u8]) -> Result<RecordRef<'a>> {
    let seq = loc.header.seq.get();
    let record_type = RecordType::from_code(loc.header.record_type).ok_or_else(|| {
        damaged(
            view,
            loc.payload_offset - format::RECORD_HEADER_LEN,
            seq,
            DamageKind::TypeZero,
        )
    })?;
    Ok(RecordRef {
        seq,
        record_type,
        timestamp: loc.header.timestamp.get(),
        payload,
    })
}

/// Finds the header of record `seq` inside `view`: from the index entry at or before it, walking
/// record headers (structure checked, checksums not). A persisted index entry that does not match
/// its record is not trusted: the walk restarts from the segment's first record.
fn locate(view: &SegmentView, seq: u64) -> Result<Located> {
    let region = view.seg.bytes(view.end)?;
    let start = view.seg.layout().data_start();
    let (entry_seq, entry_off) = view.seg.index_floor(seq)?;
    let from_index =
        (view.first_seq..=seq).contains(&entry_seq) && (start..view.end).contains(&entry_off);
    // The index entry first; if the walk from it fails, from the segment's first record.
    let attempts = [
        from_index.then_some((entry_seq, entry_off)),
        Some((view.first_seq, start)),
    ];
    let mut last_err = None;
    for (first_seq, first_off) in attempts.into_iter().flatten() {
        let (mut s, mut off) = (first_seq, first_off);
        let result = loop {
            let loc = match format::locate_record(region, off, view.end) {
                Ok(loc) => loc,
                Err(e) => break Err(damaged(view, off, s, DamageKind::Record(e))),
            };
            if loc.header.seq.get() != s {
                let found = loc.header.seq.get();
                let wrong = DamageKind::WrongSeq { found, expected: s };
                break Err(damaged(view, off, s, wrong));
            }
            if s == seq {
                break Ok(loc);
            }
            s += 1;
            off = loc.next;
        };
        match result {
            Ok(loc) => return Ok(loc),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| damaged(view, start, seq, DamageKind::NotFound)))
}

/// Iterator over records of a [`WalReader`] snapshot; see [`WalReader::iter`].
#[derive(Debug)]
pub struct Iter<'a> {
    views: &'a [SegmentView],
    view: usize,
    offset: u64,
    next_seq: u64,
    /// The last record read had "batch continues" set.
    in_batch: bool,
    pending: Option<Error>,
    done: bool,
}

impl<'a> Iter<'a> {
    fn new(
        views: &'a [SegmentView],
        view: usize,
        start: Option<(u64, u64)>,
        pending: Option<Error>,
    ) -> Iter<'a> {
        let (next_seq, offset) = match (start, views.get(view)) {
            (Some(s), _) => s,
            (None, Some(v)) => (v.first_seq, v.seg.layout().data_start()),
            (None, None) => (0, 0),
        };
        Iter {
            views,
            view,
            offset,
            next_seq,
            in_batch: false,
            pending,
            done: views.get(view).is_none(),
        }
    }

    fn exhausted(views: &'a [SegmentView]) -> Iter<'a> {
        Iter {
            views,
            view: views.len(),
            offset: 0,
            next_seq: 0,
            in_batch: false,
            pending: None,
            done: true,
        }
    }

    fn fail(&mut self, err: Error) -> Option<Result<RecordRef<'a>>> {
        self.done = true;
        Some(Err(err))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Result<RecordRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(err) = self.pending.take() {
            return self.fail(err);
        }
        if self.done {
            return None;
        }
        loop {
            let views: &'a [SegmentView] = self.views;
            let Some(view) = views.get(self.view) else {
                self.done = true;
                return None;
            };
            if self.next_seq >= view.next_seq {
                // The records must end exactly where the segment says, with no batch left open
                // (get() checks the same through the index): otherwise the two read paths of one
                // snapshot could disagree about a segment whose seal does not match its records.
                if self.offset != view.end || self.in_batch {
                    let (offset, seq) = (self.offset, self.next_seq);
                    let end = DamageKind::RecordsEnd {
                        at: offset,
                        end: view.end,
                        in_batch: self.in_batch,
                    };
                    return self.fail(damaged(view, offset, seq, end));
                }
                self.view += 1;
                if let Some(next) = views.get(self.view) {
                    if next.first_seq != self.next_seq {
                        let seq = self.next_seq;
                        return self.fail(damaged(next, 0, seq, DamageKind::SegmentGap));
                    }
                    self.offset = next.seg.layout().data_start();
                }
                continue;
            }
            let seq = self.next_seq;
            let region = match view.seg.bytes(view.end) {
                Ok(r) => r,
                Err(e) => return self.fail(e),
            };
            let (loc, payload) =
                match format::decode_record(region, self.offset, view.end, view.seg.binding()) {
                    Ok(found) => found,
                    Err(e) => {
                        return self.fail(damaged(view, self.offset, seq, DamageKind::Record(e)));
                    }
                };
            if loc.header.seq.get() != seq {
                let found = loc.header.seq.get();
                let wrong = DamageKind::WrongSeq {
                    found,
                    expected: seq,
                };
                return self.fail(damaged(view, self.offset, seq, wrong));
            }
            self.offset = loc.next;
            self.next_seq += 1;
            self.in_batch = loc.header.flags & format::FLAG_BATCH_CONTINUES != 0;
            return Some(to_ref(view, &loc, payload));
        }
    }
}

impl<'a> IntoIterator for &'a WalReader {
    type Item = Result<RecordRef<'a>>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}
